package ipvs

// The service index: the virtual services by protocol, address and port,
// for the packet path. A Go map keyed by ServiceKey hashes its netip.Addr
// (zone pointer included) and its Match string for every new connection;
// here the key is the address's two 64-bit words (IPv4 v4-mapped) and
// the protocol with the port in a third, hashed as internal/addrmap hashes
// (a few multiplications, a per-process random seed), and found by linear
// probing in a table kept at most half full. Like the Table it belongs
// to, it is built once and only read.

import (
	"math/bits"

	"github.com/gvs-lb/gvs/internal/addrmap"
)

type svcSlot struct {
	hi, lo uint64
	pp     uint32 // protocol << 16 | port
	svc    *Service
}

type svcIndex struct {
	slots []svcSlot
	shift uint8
}

// index is the home slot of (hi, lo, pp): addrmap's seeded hash, the
// protocol and port folded into the high word first (zero for every IPv4
// address).
func (x *svcIndex) index(hi, lo uint64, pp uint32) uint64 {
	return addrmap.Hash(hi^uint64(pp)<<32, lo) >> x.shift
}

// buildSvcIndex indexes the virtual services of svcs (not SNAT match
// services, which have no address and port).
func buildSvcIndex(svcs []*Service) svcIndex {
	var x svcIndex
	size := 8
	for size < 2*len(svcs) {
		size <<= 1
	}
	x.slots = make([]svcSlot, size)
	x.shift = uint8(64 - bits.TrailingZeros(uint(size)))
	mask := uint64(size - 1)
	for _, s := range svcs {
		k := s.Spec.Key
		if k.Match != "" {
			continue
		}
		hi, lo := addrmap.Words(k.Addr)
		pp := uint32(k.Proto)<<16 | uint32(k.Port)
		for i := x.index(hi, lo, pp); ; i = (i + 1) & mask {
			if e := &x.slots[i]; e.svc == nil {
				*e = svcSlot{hi: hi, lo: lo, pp: pp, svc: s}
				break
			}
		}
	}
	return x
}

// get returns the service of (hi, lo, pp), or nil.
func (x *svcIndex) get(hi, lo uint64, pp uint32) *Service {
	mask := uint64(len(x.slots) - 1)
	for i := x.index(hi, lo, pp); ; i = (i + 1) & mask {
		e := &x.slots[i]
		if e.svc == nil {
			return nil
		}
		if e.lo == lo && e.hi == hi && e.pp == pp {
			return e.svc
		}
	}
}
