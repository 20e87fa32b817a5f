package sched

import (
	"math/bits"
	"math/rand/v2"
)

// twos is the kernel's weighted random twos choice (ip_vs_twos): draw two
// dests at random in proportion to their weights and give the connection to
// the one with the lower overhead/weight (overhead = Active*256 + Inactive),
// the first draw on a tie. Two choices keep most of least-connection's
// balance at the cost of two draws, and spread a burst of new connections
// that all see the same counters (which wlc sends to one dest).
//
// As the kernel: each draw is uniform in [0, W] (W the sum of the available
// weights, the bound included) and selects the first available dest, in list
// order, at which the running sum of weights reaches the draw — the first
// dest therefore has one value more than its weight.
//
// The random source is per instance (PCG, seeded from the runtime's random
// source in New): Pick takes no lock and allocates nothing.
type twos struct {
	dests []Dest
	rng   rand.PCG
}

func newTWOS(ds []Dest) *twos {
	s := &twos{dests: ds}
	s.rng.Seed(rand.Uint64(), rand.Uint64())
	return s
}

func (s *twos) Name() string { return TWOS }

// below returns a uniform integer in [0, n), n > 0, from r (Lemire's
// multiply and reject).
func below(r *rand.PCG, n uint64) uint64 {
	for {
		hi, lo := bits.Mul64(r.Uint64(), n)
		if lo >= n || lo >= -n%n {
			return hi
		}
	}
}

func (s *twos) Pick(*Flow) int {
	var total int64
	for i := range s.dests {
		if d := &s.dests[i]; d.Available() {
			total += int64(d.Weight)
		}
	}
	if total == 0 {
		return -1
	}
	r1 := int64(below(&s.rng, uint64(total+1)))
	r2 := int64(below(&s.rng, uint64(total+1)))
	c1, c2 := -1, -1
	var oh1, oh2 int64
	for i := range s.dests {
		d := &s.dests[i]
		// Available again, as the kernel reads the flags again: a dest
		// that became overloaded in between is skipped.
		if !d.Available() {
			continue
		}
		w := int64(d.Weight)
		r1 -= w
		r2 -= w
		if r1 <= 0 && c1 < 0 {
			c1, oh1 = i, d.overhead()
		}
		if r2 <= 0 && c2 < 0 {
			c2, oh2 = i, d.overhead()
		}
		if c1 >= 0 && c2 >= 0 {
			break
		}
	}
	switch {
	case c1 < 0 && c2 < 0:
		return -1 // every dest became unavailable between the passes
	case c1 < 0:
		return c2
	case c2 >= 0 && int64(s.dests[c2].Weight)*oh1 > int64(s.dests[c1].Weight)*oh2:
		return c2
	}
	return c1
}
