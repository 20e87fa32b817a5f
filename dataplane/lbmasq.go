package dataplane

// NAT (masquerading, ipvsadm -m, LVS "Masq"): the client's packet goes to
// the real server with only its destination rewritten (VIP:vport →
// server:port); the server sees the client's own address and answers it
// through GVS — its route to the clients points here — and the reply's
// source is rewritten back (server:port → VIP:vport).
//
// A NAT connection is a conn without a local address (like direct
// routing: its reply key is the server's packet to the client) marked in
// the worker's bit set w.masq, so the FullNAT translation code serves it
// unchanged: with the local address equal to the client's, "local →
// server" and "VIP → client" are exactly the NAT rewrites. It gets no TOA
// and no MSS clamp (nothing grows).
//
// Replies on any worker. The client's packets reach the worker that made
// the connection (RSS hashes the client→VIP flow the same way every
// time), but the server's reply is another flow, hashed by the NIC onto
// any queue, and nothing in it (unlike a FullNAT reply's local port) names
// the owner. Replies are recognised by their source, a NAT real server's
// address (ipvs.Table.MasqAddrs, checked only for forwarded packets and
// only while NAT servers exist), and looked up in the worker's own table;
// on a miss the worker asks the dataplane's owner index
// (session.OwnerIndex: lock-free, read-mostly, one atomic slot per
// connection written by its owner when it makes and ends the connection)
// and hands the packet to the owner over the worker-pair ring
// (lbredirect.go), as FullNAT replies are handed over. A packet from a NAT
// server that no worker owns is the server's own traffic and is forwarded
// as it is. With one worker there is no index.
//
// The index is made by the control path when the first NAT or SNAT
// destination is added, sized for two entries per connection slot of every
// worker's table (32 bytes per slot); it is never freed. Session sync's NAT
// connections and SNAT connections also enter their client key (masqMade).

import (
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/nat"
	"github.com/gvs-lb/gvs/session"
)

// masqIndex returns the owner index; nil with one worker. The control
// path makes it when a NAT or SNAT destination is added (makeMasqIndex),
// so a worker only finds it made.
func (w *Worker) masqIndex() *session.OwnerIndex {
	w.dp.makeMasqIndex()
	return w.dp.masqIdx.Load()
}

// makeMasqIndex makes the owner index once (with two workers or more),
// sized for two entries per connection slot of every worker's table.
func (d *Dataplane) makeMasqIndex() {
	if len(d.workers) < 2 {
		return
	}
	d.masqOnce.Do(func() {
		d.masqIdx.Store(session.NewOwnerIndex(2 * d.workers[0].sess.Capacity() * len(d.workers)))
	})
}

// isMasq reports whether connection id is a NAT one, or (with a local
// address) an SNAT one.
func (w *Worker) isMasq(id uint32) bool {
	return w.masq != nil && w.masq[id>>6]&(1<<(id&63)) != 0
}

// masqMade records a new connection: NAT and SNAT ones are marked (no
// TOA, no clamp) and entered in the owner index by the keys whose packets
// may reach another worker: a NAT connection's reply key (the server
// answers the client; RSS hashes that flow anywhere), and the client's key
// of a NAT connection installed by session sync (on a worker of its own
// choosing) and of an SNAT connection (a fragment of the inside host's
// flow may land elsewhere first). An SNAT connection's replies need none:
// its port's owner bits name the worker. Any other connection clears a
// mark its id may still carry.
func (w *Worker) masqMade(id uint32, c *session.Conn, masq bool) {
	if !masq {
		if w.masq != nil {
			w.masq[id>>6] &^= 1 << (id & 63)
		}
		return
	}
	if w.masq == nil {
		w.masq = make([]uint64, (w.sess.Capacity()+64)/64+1)
	}
	w.masq[id>>6] |= 1 << (id & 63)
	x := w.masqIndex()
	if x == nil {
		return
	}
	if !c.HasLocal() && !x.Add(c.OutKey(), uint8(w.id)) ||
		(c.HasLocal() || c.Flags&session.FlagSynced != 0) && !x.Add(c.InKey(), uint8(w.id)) {
		w.ctr.inc(CtrLBMasqIndexFull)
	}
}

// masqGone forgets a NAT or SNAT connection that ends.
func (w *Worker) masqGone(id uint32, c *session.Conn) {
	w.masq[id>>6] &^= 1 << (id & 63)
	x := w.dp.masqIdx.Load()
	if x == nil {
		return
	}
	if !c.HasLocal() {
		x.Remove(c.OutKey(), uint8(w.id))
	}
	if c.HasLocal() || c.Flags&session.FlagSynced != 0 {
		x.Remove(c.InKey(), uint8(w.id))
	}
}

// lbMasqReply takes a forwarded packet from a NAT real server's address
// (the caller checked): a reply of a connection here is translated, one of
// another worker's is handed over, anything else passes on as transit.
func (w *Worker) lbMasqReply(b *pktbuf.Buf, l3 []byte, t header.Transport) verdict {
	if t.Fragment() && !t.HasL4() {
		return w.fragFollow(b, l3, t)
	}
	var key session.Key
	switch t.Proto {
	case header.ProtoTCP, header.ProtoUDP:
		k, ok := session.KeyAt(l3, t)
		if !ok {
			return pass
		}
		key = k
	case header.ProtoICMP, header.ProtoICMPv6:
		// an error the server sends the client about the connection: it
		// quotes the client's packet to the server, whose reverse is the key
		e, err := nat.ParseICMPError(l3)
		if err != nil {
			return pass
		}
		key = session.MakeKey(e.InnerProto, netip.AddrPortFrom(e.Inner.Dst, e.Inner.DstPort), netip.AddrPortFrom(e.Inner.Src, e.Inner.SrcPort))
	default:
		return pass
	}
	id, dir, found := w.sess.Lookup(key)
	if found && dir == session.Out && w.isMasq(id) {
		if t.Proto == header.ProtoICMP || t.Proto == header.ProtoICMPv6 {
			return w.lbICMP(b, l3)
		}
		w.lbConn(b, l3, t, id, dir)
		return stolen
	}
	if found {
		return pass // a direct-routing server's own reply (lbdr.go): transit
	}
	if w.toOwner(b, l3, t, &key, session.Out) {
		return stolen
	}
	w.ctr.inc(CtrLBMasqTransit)
	return pass
}

// toOwner hands b (key, going dir) to the worker the owner index names
// for it, when that is another worker: true when b was taken. A first
// fragment records where it went, so the datagram's later fragments
// follow it (lbfrag.go).
func (w *Worker) toOwner(b *pktbuf.Buf, l3 []byte, t header.Transport, key *session.Key, dir session.Direction) bool {
	x := w.dp.masqIdx.Load()
	if x == nil {
		return false
	}
	owner, ok := x.Owner(key)
	if !ok || int(owner) == w.id || int(owner) >= len(w.dp.workers) {
		return false
	}
	if t.Fragment() {
		w.fragRecord(l3, t, session.NoID, dir, int32(owner))
	}
	w.redirect(b, int(owner))
	return true
}

// masqSource reports whether a forwarded packet comes from a NAT real
// server (one map lookup, only while NAT servers exist).
func (w *Worker) masqSource(l3 []byte) bool {
	if !w.lb.Masq {
		return false
	}
	if l3[0]>>4 == 4 {
		return w.lb.MasqAddrs.Has4(header.IPv4(l3).SrcBytes())
	}
	return w.lb.MasqAddrs.Has16(header.IPv6(l3).SrcBytes())
}

// fragFollow sends a later fragment of a forwarded datagram (a NAT reply,
// an SNAT host's packet) as its first fragment went when that one was
// translated here (lbfrag.go); any other passes as it is. One that comes
// before its first therefore passes untranslated: holding every fragment
// a NAT server or an inside host sends would hold their own traffic too.
func (w *Worker) fragFollow(b *pktbuf.Buf, l3 []byte, t header.Transport) verdict {
	if k, ok := fragKeyOf(l3, t); ok && w.frag.lookup(&k, w.now) != nil {
		return w.lbFragLater(b, l3, t)
	}
	return pass
}
