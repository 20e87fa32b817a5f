package sched

// sed is LVS shortest expected delay: the available dest with the lowest
// (Active+1)/weight, the expected delay of a new connection if every active
// one is served at the dest's weight. Unlike wlc only active connections
// count (inactive ones cost nothing here). As LVS, it compares
// (Active_a+1)·weight_b with (Active_b+1)·weight_a and keeps the first dest
// in list order on a tie.
type sed struct {
	dests []Dest
}

func newSED(ds []Dest) *sed { return &sed{dests: ds} }

func (s *sed) Name() string { return SED }

func (s *sed) Pick(*Flow) int { return leastExpectedDelay(s.dests, false) }

// leastExpectedDelay is sed's choice; with idleFirst (nq) the first
// available dest without active connections wins at once.
func leastExpectedDelay(ds []Dest, idleFirst bool) int {
	best := -1
	var least, lw int64 // expected-delay numerator and weight of best
	for i := range ds {
		d := &ds[i]
		if !d.Available() {
			continue
		}
		active := d.C.Active.Load()
		if idleFirst && active == 0 {
			return i
		}
		oh := active + 1
		w := int64(d.Weight)
		if best < 0 || least*w > oh*lw {
			best, least, lw = i, oh, w
		}
	}
	return best
}
