package sched

// lblc is LVS locality-based least connection: a flow goes to the dest that
// last served its destination address, unless that dest is unavailable or
// overloaded in lblc's sense (more active connections than its weight while
// another dest has fewer than half its weight); then wlc picks a dest and
// the address is remembered with it. Made for cache clusters, where sending
// one destination to one cache keeps hit rates up; for a service with a
// single VIP it sends everything to one dest until that one fills up.
//
// The addresses are remembered in a bounded locality table (locality.go).
// Deviation: a remembered dest over its connection thresholds (-x) is not
// used either (LVS checks them only when scheduling anew).
type lblc struct {
	dests []Dest
	t     *locTable
}

func newLBLC(ds []Dest, o Options) (*lblc, error) {
	t, err := newLocTable(LBLC, len(ds), o.CacheSize)
	if err != nil {
		return nil, err
	}
	return &lblc{dests: ds, t: t}, nil
}

func (s *lblc) Name() string { return LBLC }

func (s *lblc) Pick(f *Flow) int {
	now := s.t.now()
	key := f.Dst.As16()
	e := s.t.lookup(&key, now)
	if e != nil {
		e.lastuse = now
		if i := int(e.set[0]); s.dests[i].Available() && !lblcOverloaded(s.dests, i) {
			return i
		}
	}
	i := leastOverhead(s.dests)
	if i < 0 {
		return -1
	}
	if e == nil {
		e = s.t.insert(&key, now)
	}
	if e != nil {
		e.set[0], e.n = uint16(i), 1
	}
	return i
}
