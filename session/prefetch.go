package session

// Prefetching a burst's lookups. With many connections the index slot and
// the connection a packet reads are rarely in the nearest caches: each is a
// cache miss, and one packet after another they add up (two misses per
// packet of an established connection). The worker names what a burst's
// packets will read before it processes them, in two passes as DPDK's
// l3fwd does: the index slots of all of them, then (those slots now near)
// the connections they point at, so the misses overlap. Only a hint:
// lookups give the same answers with or without it.

import (
	"encoding/binary"
	"unsafe"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/internal/prefetch"
)

// PrefetchWorth is the number of connections from which prefetching pays:
// below it the index and the connections fit the core's own caches and
// the prefetch passes would only add their cost.
const PrefetchWorth = 16384

// PrefetchSlot4 starts loading the index slot where the connection of the
// IPv4 TCP or UDP packet pkt (its IP header onwards, not yet validated)
// would be found, and returns the hash LookupAt will compute for it, for
// PrefetchConn. ok is false for anything else (IPv6, another protocol, a
// later fragment, a packet too short): nothing is loaded.
func (t *Table) PrefetchSlot4(pkt []byte) (h uint32, ok bool) {
	if len(pkt) < header.IPv4MinSize || pkt[0]>>4 != 4 {
		return 0, false
	}
	ip := header.IPv4(pkt)
	hl, proto := ip.HeaderLen(), ip.Protocol()
	if proto != header.ProtoTCP && proto != header.ProtoUDP || hl < header.IPv4MinSize || len(pkt) < hl+4 ||
		ip.FlagsFrag()&header.IPv4FragOffset != 0 {
		return 0, false
	}
	sp, dp := binary.BigEndian.Uint16(pkt[hl:]), binary.BigEndian.Uint16(pkt[hl+2:])
	h = t.hashWords(proto, addrWords{0, mapped4(ip.SrcBytes())}, addrWords{0, mapped4(ip.DstBytes())}, sp, dp)
	prefetch.T0(unsafe.Pointer(&t.index[h&t.imask]))
	return h, true
}

// PrefetchConn starts loading the connection of the first entry tagged h
// at or after hash h's home slot: the one LookupAt will most likely compare
// first. It looks no further than prefetchScan slots (an entry pushed
// further along is rare at the index's load) and stops at an empty one.
// Called after PrefetchSlot4 brought the home slot near.
func (t *Table) PrefetchConn(h uint32) {
	mask := t.imask
	i := h & mask
	for range prefetchScan {
		s := t.index[i]
		if s.ref == 0 {
			return
		}
		if s.tag == h {
			c := &t.conns[refID(s.ref)]
			prefetch.T0(unsafe.Pointer(c))
			prefetch.T0(unsafe.Pointer(&c.Mark)) // its last byte: a Conn may span two lines
			return
		}
		i = (i + 1) & mask
	}
}

// prefetchScan is how many index slots PrefetchConn reads at most.
const prefetchScan = 4
