package sched

// fo is LVS weighted failover: every new connection goes to the available
// dest with the highest weight (the first in list order among equals), so
// the others only get connections when it is quiescent or overloaded —
// which, with thresholds (-x/-y), makes fo an overflow by connection count.
type fo struct {
	dests []Dest
}

func newFO(ds []Dest) *fo { return &fo{dests: ds} }

func (s *fo) Name() string { return FO }

func (s *fo) Pick(*Flow) int {
	best, hw := -1, 0
	for i := range s.dests {
		d := &s.dests[i]
		if d.Weight > hw && d.Available() {
			best, hw = i, d.Weight
		}
	}
	return best
}
