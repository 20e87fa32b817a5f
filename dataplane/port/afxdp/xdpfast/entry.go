package xdpfast

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/gvs-lb/gvs/header"
)

// Sentinel errors. Add returns ErrFull when the connection map has no free
// entry (the connection stays on the slow path); Delete and Lookup return
// ErrNotExist for a key that has no entry.
var (
	ErrFull     = errors.New("xdpfast: connection map full")
	ErrNotExist = errors.New("xdpfast: no such entry")
)

// Table is the part of a loaded fast path that the workers use (Fast
// implements it): the entries of one port's connection map.
type Table interface {
	Add(Key, Rewrite) error
	Delete(Key) error
	Lookup(Key) (Entry, error)
	Arm(Key, Mark) error
}

// Mark is the workers' mark of an armed entry: how far they transmitted
// its direction, and the segment they transmitted last. The program
// forwards a segment only when it starts at Seq and the segment the
// program passed to the workers last is that one (LastEnd, LastAck).
type Mark struct {
	Seq     uint32 // just past the newest segment of the direction they transmitted
	LastEnd uint32 // just past the segment of the direction they transmitted last
	LastAck uint32 // that segment's acknowledgment number
}

// Key is one direction of a connection: a packet's transport protocol,
// addresses and ports as it arrives. Both addresses are of one family.
type Key struct {
	Proto            uint8 // header.ProtoTCP or header.ProtoUDP
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
}

func (k Key) String() string {
	p := "tcp"
	if k.Proto == header.ProtoUDP {
		p = "udp"
	}
	return fmt.Sprintf("%s %s -> %s", p, netip.AddrPortFrom(k.Src, k.SrcPort), netip.AddrPortFrom(k.Dst, k.DstPort))
}

// Rewrite is what a packet of a Key becomes and where it goes.
type Rewrite struct {
	Src, Dst         netip.Addr // of the Key's family (no NAT64 here)
	SrcPort, DstPort uint16
	SrcMAC, DstMAC   [6]byte // the egress port's and the next hop's
	Ifindex          int     // egress port; must be added with AddEgress
	MTU              int     // egress MTU: longer IP packets go to the workers
	Slow             bool    // keep the entry but send its packets to the workers
	// Armed (TCP): forward nothing until a segment starts at the workers'
	// mark (Arm); read back, it says the program has not yet forwarded a
	// segment.
	Armed bool
}

// Entry is an entry as read back: its rewrite and what the program counted.
type Entry struct {
	Rewrite
	// LastSeen is the CLOCK_MONOTONIC_COARSE time of the last packet the
	// program forwarded for this entry, 0 if none (compare with Now).
	LastSeen time.Duration
	Packets  uint64  // packets forwarded by the program (not those sent to the workers)
	Bytes    uint64  // their IP lengths
	Seq      SeqEnds // TCP: where the segments the program forwarded ended
}

// SeqEnds are the sequence numbers of a TCP direction's segments that the
// program forwarded, noted as the workers note the real server's
// (session.Ends): a segment that acknowledges less than the one noted
// changes nothing, one that ends before it keeps the noted end.
type SeqEnds struct {
	Known bool   // the program forwarded a segment of the entry
	End   uint32 // just past the newest one (its sequence number plus its data)
	Ack   uint32 // the acknowledgment number of the segment noted last
}

// check validates k and r together; addresses must already be unmapped.
func check(k Key, r *Rewrite) error {
	switch {
	case k.Proto != header.ProtoTCP && k.Proto != header.ProtoUDP:
		return fmt.Errorf("protocol %d: only TCP (6) and UDP (17) are offloaded", k.Proto)
	case !k.Src.IsValid() || !k.Dst.IsValid() || k.Src.Is4() != k.Dst.Is4():
		return errors.New("key addresses must be valid and of one family")
	case !r.Src.IsValid() || !r.Dst.IsValid() || r.Src.Is4() != r.Dst.Is4():
		return errors.New("rewrite addresses must be valid and of one family")
	case r.Src.Is4() != k.Src.Is4():
		return errors.New("the rewrite changes the address family (NAT64 stays on the slow path)")
	case r.Ifindex <= 0:
		return fmt.Errorf("egress ifindex %d: must be a positive interface index", r.Ifindex)
	case r.MTU < 68 || r.MTU > 65535:
		return fmt.Errorf("egress MTU %d: must be 68..65535", r.MTU)
	}
	return nil
}

// csumDiffs returns the folded one's-complement differences the program
// adds to the IPv4 header checksum (addresses, and the TTL it decrements)
// and to the TCP/UDP checksum (addresses and ports) for packets of k
// rewritten to r (RFC 1624: the sum of ~old + new over the changed words).
func csumDiffs(k Key, r *Rewrite) (l3, l4 uint16) {
	var addrs uint64
	words := func(a netip.Addr, neg bool) {
		b := a.AsSlice()
		for i := 0; i+1 < len(b); i += 2 {
			w := uint16(b[i])<<8 | uint16(b[i+1])
			if neg {
				w = ^w
			}
			addrs += uint64(w)
		}
	}
	words(k.Src, true)
	words(k.Dst, true)
	words(r.Src, false)
	words(r.Dst, false)
	ports := uint64(^k.SrcPort) + uint64(^k.DstPort) + uint64(r.SrcPort) + uint64(r.DstPort)
	// the TTL is the high byte of the word it shares with the protocol:
	// minus one there is minus 0x100, i.e. plus ^0x0100
	const ttlDec = uint64(^uint16(0x0100))
	if k.Src.Is4() {
		l3 = header.Fold(addrs + ttlDec)
	}
	return l3, header.Fold(addrs + ports)
}
