package sched

import "slices"

// conhash is DPVS's consistent hashing: each dest owns 160 points per
// weight/gcd on a 64-bit ring, and a flow goes to the owner of the first
// point at or after the hash of its target (wrapping around). Adding or
// removing a dest moves only the flows of the ring arcs it gains or loses;
// changing a weight moves only the arcs of that dest's added or removed
// points.
//
// Hash targets (Options.HashTarget, DPVS --hash-target): the source address
// ("sip", the default; with Options.Port, flag-2, the source port too), or
// the QUIC destination connection ID of the first datagram ("qid", UDP
// services: Flow.Payload, see quic.go), falling back to the source address
// when the datagram carries none, as DPVS does.
//
// As DPVS: a quiescent dest (weight 0) owns no point, so its flows move to
// the others; a flow whose dest is overloaded is refused (no fallback).
// Deviations: points are hashed from the dest's address and port with GVS's
// deterministic hash (DPVS uses MD5 of the address text), so GVS and DPVS
// place flows differently, but every GVS worker and appliance alike; the
// ring is capped at maxConhashPoints points, scaling the replicas down
// proportionally (at least one each) when weights would exceed it.
//
// The ring is built in New and only read afterwards: one instance may be
// shared by all workers.
type conhash struct {
	dests  []Dest
	points []conPoint // sorted by hash; nil when no dest has a weight
	target HashTarget
	port   bool
}

type conPoint struct {
	hash uint64
	dest uint32
}

const (
	conhashReplicas  = 160 // DPVS's points per weight unit
	maxConhashPoints = 1 << 20
	seedConhashPoint = 0x5851f42d4c957f2d
	seedConhashKey   = 0x14057b7ef767814f
	udpProto         = 17
)

func newConhash(ds []Dest, o Options) (*conhash, error) {
	s := &conhash{dests: ds, target: o.HashTarget, port: o.Port}
	g := weightGCD(ds)
	if g == 0 {
		return s, nil
	}
	total := 0
	for i := range ds {
		total += ds[i].Weight / g * conhashReplicas
	}
	s.points = make([]conPoint, 0, min(total, maxConhashPoints+len(ds)))
	for i := range ds {
		d := &ds[i]
		r := d.Weight / g * conhashReplicas
		if r == 0 {
			continue
		}
		if total > maxConhashPoints {
			r = max(1, int(int64(r)*maxConhashPoints/int64(total)))
		}
		for k := range r {
			h := hashAddrPort(seedConhashPoint+uint64(k)*0x9e3779b97f4a7c15, d.Addr.Addr(), d.Addr.Port())
			s.points = append(s.points, conPoint{hash: h, dest: uint32(i)})
		}
	}
	// Equal hashes (rare) are ordered by dest address, so the ring does not
	// depend on the order the dests are listed in.
	slices.SortFunc(s.points, func(a, b conPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return ds[a.dest].Addr.Compare(ds[b.dest].Addr)
	})
	return s, nil
}

func (s *conhash) Name() string { return CONHASH }

// key is the ring position of a flow's hash target.
func (s *conhash) key(f *Flow) uint64 {
	if s.target == HashQUICID && f.Proto == udpProto {
		if id := quicDCID(f.Payload); id != nil {
			return hashBytes(seedConhashKey, id)
		}
	}
	var port uint16
	if s.port {
		port = f.SrcPort
	}
	return hashAddrPort(seedConhashKey, f.Src, port)
}

func (s *conhash) Pick(f *Flow) int {
	if s.points == nil {
		return -1
	}
	i := int(s.points[s.search(s.key(f))].dest)
	if !s.dests[i].Available() {
		return -1
	}
	return i
}

// search returns the index of the first point at or after h, wrapping to 0.
func (s *conhash) search(h uint64) int {
	lo, hi := 0, len(s.points)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.points[m].hash < h {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(s.points) {
		return 0
	}
	return lo
}
