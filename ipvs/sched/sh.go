package sched

import (
	"encoding/binary"
	"net/netip"
)

// sh is LVS source hashing: a 256-bucket table filled with the dests by
// weight, indexed by a hash of the flow's source address (and source port
// with Options.Port, LVS sh-port). A client keeps its dest as long as the
// dest set and weights do not change; sh is not consistent hashing — any
// change refills the table (mh is the consistent one).
//
// Table fill, as LVS: walk the dests in list order, each taking weight
// consecutive buckets, around and around until the 256 buckets are full; a
// quiescent dest (weight 0) still takes one bucket, so quiescing a weight-1
// dest moves no other client, and clients that hash to it get no dest (or,
// with Options.Fallback, another one). Deviation: weights are first divided
// by their gcd, which changes nothing when the gcd is 1 and keeps weights
// such as 100/200/300 proportional (LVS would give them 100/156/0 buckets).
// Weights are still quantised to the 256 buckets: a dest whose weight/gcd is
// 256 or more fills the table alone; only the first 256 dests can appear.
//
// Hash, as LVS: the source address (IPv6 folded to 32 bits by xor) plus the
// source port, times 0x61C88647 (the 32-bit golden-ratio multiplier), top 8
// bits.
//
// Fallback (LVS sh-fallback): when the bucket's dest is unavailable, try
// other buckets until one holds an available dest. The choice depends only on
// the source and on which dests are available. Deviation: LVS probes buckets
// 2h, 2h+1, … (h the first bucket), which with equal weights sends all the
// clients of one dest to the same other dest; here the first probes rehash
// the source (probeHash), so those clients spread over the available dests by
// weight, and only if they all miss does a walk through the buckets follow.
type sh struct {
	dests    []Dest
	table    [shTableSize]uint8 // dest index per bucket
	empty    bool               // no dests: every pick fails
	fallback bool
	port     bool
}

const shTableSize = 256

func newSH(ds []Dest, o Options) (*sh, error) {
	s := &sh{dests: ds, fallback: o.Fallback, port: o.Port, empty: len(ds) == 0}
	if s.empty {
		return s, nil
	}
	g := max(weightGCD(ds), 1)
	i, count := 0, 0
	for b := range s.table {
		s.table[b] = uint8(i)
		count++
		if count >= ds[i].Weight/g {
			count = 0
			if i++; i == len(ds) {
				i = 0
			}
		}
	}
	return s, nil
}

func (s *sh) Name() string { return SH }

func (s *sh) Pick(f *Flow) int {
	if s.empty {
		return -1
	}
	var port uint16
	if s.port {
		port = f.SrcPort
	}
	b := shBucket(f.Src, port)
	if i := int(s.table[b]); s.dests[i].Available() {
		return i
	}
	if !s.fallback {
		return -1
	}
	for k := 1; k <= fallbackProbes; k++ {
		b = uint8(probeHash(k, f.Src, port) >> 56)
		if i := int(s.table[b]); s.dests[i].Available() {
			return i
		}
	}
	// Unlucky, or nothing is available: walk the whole table once.
	for k := 1; k < shTableSize; k++ {
		if i := int(s.table[b+uint8(k)]); s.dests[i].Available() {
			return i
		}
	}
	return -1
}

// shBucket is LVS's sh hash of a source address and port. IPv4 (also in its
// IPv4-mapped form) hashes its 32 bits; IPv6 the xor of its four words.
func shBucket(a netip.Addr, port uint16) uint8 {
	b := a.As16()
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	fold := uint32(lo)
	if hi != 0 || lo>>32 != 0xffff {
		fold ^= uint32(hi>>32) ^ uint32(hi) ^ uint32(lo>>32)
	}
	return uint8((fold + uint32(port)) * 0x61C88647 >> 24)
}
