package sched

import (
	"encoding/binary"
	"net/netip"
)

// dh is LVS destination hashing: a 256-bucket table of dests indexed by a
// hash of the flow's destination address, so that every flow to one
// destination (a cache cluster in front of origin servers, a firewall
// farm) gets the same dest. For a service with one VIP every flow goes to one
// dest; dh is meant for services that see many destination addresses.
//
// Table fill, as LVS: the dests in list order, one bucket each, around and
// around until the 256 buckets are full. Weights do not shape the table: a
// dest with weight 0 keeps its buckets and the flows that hash to them get no
// dest (LVS has no dh-fallback); only the first 256 dests can appear.
//
// Hash, as LVS: the destination address (IPv6 folded to 32 bits by xor)
// times 2654435761, the low 8 bits — which depend on the low 8 bits of the
// folded address only: for IPv4, on the last octet.
//
// The table is built in New and only read afterwards: one instance may be
// shared by all workers.
type dh struct {
	dests []Dest
	table [dhTableSize]uint8
	empty bool
}

const dhTableSize = 256

func newDH(ds []Dest) *dh {
	s := &dh{dests: ds, empty: len(ds) == 0}
	if s.empty {
		return s
	}
	for b := range s.table {
		s.table[b] = uint8(b % len(ds))
	}
	return s
}

func (s *dh) Name() string { return DH }

func (s *dh) Pick(f *Flow) int {
	if s.empty {
		return -1
	}
	if i := int(s.table[dhBucket(f.Dst)]); s.dests[i].Available() {
		return i
	}
	return -1
}

// dhBucket is LVS's dh hash of a destination address.
func dhBucket(a netip.Addr) uint8 {
	return uint8(foldAddr(a) * 2654435761)
}

// foldAddr is LVS's 32-bit form of an address: IPv4 (also IPv4-mapped) as
// is, IPv6 the xor of its four words.
func foldAddr(a netip.Addr) uint32 {
	b := a.As16()
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	fold := uint32(lo)
	if hi != 0 || lo>>32 != 0xffff {
		fold ^= uint32(hi>>32) ^ uint32(hi) ^ uint32(lo>>32)
	}
	return fold
}
