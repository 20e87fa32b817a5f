package sched

// wlc is LVS weighted least connection, the default scheduler: the available
// dest with the lowest overhead/weight, overhead being Active*256 +
// Inactive. As LVS, it compares overhead_a*weight_b with overhead_b*weight_a
// (no division) and keeps the first dest in list order on a tie.
//
// Products fit in int64: 2^31 connections × 256 × 65535 < 2^63.
type wlc struct {
	dests []Dest
}

func newWLC(ds []Dest) *wlc { return &wlc{dests: ds} }

func (s *wlc) Name() string { return WLC }

func (s *wlc) Pick(*Flow) int { return leastOverhead(s.dests) }

// leastOverhead is wlc's choice over ds; lblc and lblcr schedule with it too.
func leastOverhead(ds []Dest) int {
	best := -1
	var least int64 // overhead of best
	var lw int64    // weight of best
	for i := range ds {
		d := &ds[i]
		if !d.Available() {
			continue
		}
		oh := d.overhead()
		w := int64(d.Weight)
		if best < 0 || least*w > oh*lw {
			best, least, lw = i, oh, w
		}
	}
	return best
}
