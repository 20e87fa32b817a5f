package sched

// ovf is LVS weighted overflow: the available dest with the highest weight
// (the first in list order among equals) whose active connections do not
// exceed its weight. The weight is a connection budget: connections stay on
// the heaviest dest until it holds more than weight active ones, then
// overflow to the next. As LVS, a dest with exactly weight active
// connections is still eligible, inactive connections do not count (ovf
// suits TCP better than UDP) and when every dest is over its budget the
// connection is refused.
type ovf struct {
	dests []Dest
}

func newOVF(ds []Dest) *ovf { return &ovf{dests: ds} }

func (s *ovf) Name() string { return OVF }

func (s *ovf) Pick(*Flow) int {
	best, hw := -1, 0
	for i := range s.dests {
		d := &s.dests[i]
		if d.Weight <= hw || d.C.Active.Load() > int64(d.Weight) || !d.Available() {
			continue
		}
		best, hw = i, d.Weight
	}
	return best
}
