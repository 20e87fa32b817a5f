package sched

// rr is LVS round robin: each pick takes the next available dest after the
// previous pick, in list order, wrapping around; quiescent and overloaded
// dests are skipped. The cursor is per instance, i.e. per worker, as in DPVS
// where every lcore schedules on its own.
type rr struct {
	dests []Dest
	last  int // index of the previous pick; -1 before the first
}

func newRR(ds []Dest) *rr { return &rr{dests: ds, last: -1} }

func (s *rr) Name() string { return RR }

func (s *rr) Pick(*Flow) int {
	n := len(s.dests)
	// Start after the previous pick and end on it (it may be the only one
	// available); before the first pick, start at the head.
	for i := 1; i <= n; i++ {
		j := s.last + i
		if j >= n {
			j -= n
		}
		if s.dests[j].Available() {
			s.last = j
			return j
		}
	}
	return -1
}
