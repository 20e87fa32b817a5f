package session

// Ends are the sequence numbers a TCP connection's real server showed
// last (DPVS's rs_end_seq and rs_end_ack): enough for the balancer to
// reset both ends of a connection it ends itself (expiry, eviction), with
// sequence numbers each end accepts (RFC 5961 §3.2: a RST is taken at once
// only at the receiver's next expected sequence number).
//
// A table keeps them when Options.Ends is set, in an array beside the slab
// (8 bytes per conn; the Conn stays 96 bytes). Insert clears a conn's
// entry; the caller notes the server's segments (NoteEnds) and clears the
// entry when what it noted no longer holds (ClearEnds: another node
// carries the flow on).
type Ends struct {
	// Next is just past the server's last segment (its sequence number plus
	// its length, SYN and FIN counted), in the server's sequence space: the
	// client's next expected sequence number, before any translation.
	Next uint32
	// Ack is the server's last acknowledgment number: the sequence number
	// it expects next from the balancer's side.
	Ack uint32
}

// Set reports whether the entry holds a server segment's numbers.
func (e Ends) Set() bool { return e.Next != 0 || e.Ack != 0 }

// seqBefore reports whether a comes before b in sequence space.
func seqBefore(a, b uint32) bool { return int32(a-b) < 0 }

// NoteEnds records a server segment of conn id that ends at next and
// acknowledges ack. A segment that acknowledges less than the one noted
// (reordered, or an old retransmission) changes nothing; one that ends
// before it keeps the noted end. A table without Ends ignores it.
func (t *Table) NoteEnds(id uint32, next, ack uint32) {
	if t.ends == nil {
		return
	}
	e := &t.ends[id]
	if e.Set() {
		if seqBefore(ack, e.Ack) {
			return
		}
		if seqBefore(next, e.Next) {
			next = e.Next
		}
	}
	e.Next, e.Ack = next, ack
}

// Ends returns what NoteEnds recorded for conn id since it was inserted or
// last cleared; the zero Ends (not Set) when nothing was, or the table
// keeps none.
func (t *Table) Ends(id uint32) Ends {
	if t.ends == nil {
		return Ends{}
	}
	return t.ends[id]
}

// ClearEnds forgets conn id's server numbers.
func (t *Table) ClearEnds(id uint32) {
	if t.ends != nil {
		t.ends[id] = Ends{}
	}
}

// KeepsEnds reports whether the table keeps Ends (Options.Ends).
func (t *Table) KeepsEnds() bool { return t.ends != nil }
