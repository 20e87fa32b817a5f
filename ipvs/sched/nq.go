package sched

// nq is LVS never queue: an available dest without active connections gets
// the connection at once (the first in list order); when every dest is busy
// it falls back to sed's shortest expected delay, (Active+1)/weight.
type nq struct {
	dests []Dest
}

func newNQ(ds []Dest) *nq { return &nq{dests: ds} }

func (s *nq) Name() string { return NQ }

func (s *nq) Pick(*Flow) int { return leastExpectedDelay(s.dests, true) }
