package sched

// lc is LVS least connection: the available dest with the lowest overhead
// (Active*256 + Inactive), the first in list order on a tie. Weights only
// matter as 0 (quiescent) or not; wlc weighs them.
type lc struct {
	dests []Dest
}

func newLC(ds []Dest) *lc { return &lc{dests: ds} }

func (s *lc) Name() string { return LC }

func (s *lc) Pick(*Flow) int {
	best := -1
	var least int64
	for i := range s.dests {
		d := &s.dests[i]
		if !d.Available() {
			continue
		}
		if oh := d.overhead(); best < 0 || oh < least {
			best, least = i, oh
		}
	}
	return best
}
