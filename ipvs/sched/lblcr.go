package sched

// lblcr is LVS locality-based least connection with replication: like lblc,
// but a destination address is remembered with a set of dests, and the flow
// goes to the least loaded of them (lowest overhead/weight, the newest in
// the set on a tie). When that one is unavailable or overloaded in lblc's
// sense, wlc picks a dest over the whole service and it joins the set: a
// busy destination is replicated over several dests. A set that has not
// changed for lblcExpiration (a day) loses its most loaded dest each time
// it is used, so replicas that are no longer needed go away.
//
// As LVS: the set is searched and trimmed before the overload test, the
// newest dest is put first, the most loaded dest to trim is the first with
// the highest overhead/weight among dests with a weight.
//
// Bounds (see locality.go for the table): a set holds at most lblcrMaxSet
// dests; a full set makes room by dropping its most loaded dest (LVS lets a
// set grow to every dest of the service). Deviation shared with lblc: dests
// over their thresholds (-x) are not used from the set.
type lblcr struct {
	dests []Dest
	t     *locTable
}

func newLBLCR(ds []Dest, o Options) (*lblcr, error) {
	t, err := newLocTable(LBLCR, len(ds), o.CacheSize)
	if err != nil {
		return nil, err
	}
	return &lblcr{dests: ds, t: t}, nil
}

func (s *lblcr) Name() string { return LBLCR }

func (s *lblcr) Pick(f *Flow) int {
	now := s.t.now()
	key := f.Dst.As16()
	e := s.t.lookup(&key, now)
	if e == nil {
		i := leastOverhead(s.dests)
		if i < 0 {
			return -1
		}
		if e = s.t.insert(&key, now); e != nil {
			e.set[0], e.n, e.lastmod = uint16(i), 1, now
		}
		return i
	}
	e.lastuse = now
	i := s.setMin(e)
	if e.n > 1 && now-e.lastmod > lblcExpiration {
		if m := s.setMax(e); m >= 0 {
			s.erase(e, m)
			e.lastmod = now
		}
	}
	if i >= 0 && !lblcOverloaded(s.dests, i) {
		return i
	}
	if i = leastOverhead(s.dests); i < 0 {
		return -1
	}
	s.insert(e, i, now)
	return i
}

// setMin is the available dest of e's set with the lowest overhead/weight,
// the first in the set on a tie; -1 if none is available.
func (s *lblcr) setMin(e *locEntry) int {
	best := -1
	var least, lw int64
	for _, x := range e.set[:e.n] {
		i := int(x)
		d := &s.dests[i]
		if !d.Available() {
			continue
		}
		oh, w := d.overhead(), int64(d.Weight)
		if best < 0 || least*w > oh*lw {
			best, least, lw = i, oh, w
		}
	}
	return best
}

// setMax is the dest of e's set with a weight and the highest
// overhead/weight, the first in the set on a tie; -1 if none has a weight.
func (s *lblcr) setMax(e *locEntry) int {
	best := -1
	var most, mw int64
	for _, x := range e.set[:e.n] {
		i := int(x)
		d := &s.dests[i]
		if d.Weight <= 0 {
			continue
		}
		oh, w := d.overhead(), int64(d.Weight)
		if best < 0 || most*w < oh*mw {
			best, most, mw = i, oh, w
		}
	}
	return best
}

func (s *lblcr) erase(e *locEntry, i int) {
	for k := range int(e.n) {
		if int(e.set[k]) == i {
			copy(e.set[k:e.n], e.set[k+1:e.n])
			e.n--
			return
		}
	}
}

// insert puts dest i first in e's set unless it is already there, making
// room by dropping the most loaded dest (or the oldest) of a full set.
func (s *lblcr) insert(e *locEntry, i int, now int64) {
	for _, x := range e.set[:e.n] {
		if int(x) == i {
			return
		}
	}
	if int(e.n) == lblcrMaxSet {
		m := s.setMax(e)
		if m < 0 {
			m = int(e.set[e.n-1])
		}
		s.erase(e, m)
	}
	copy(e.set[1:e.n+1], e.set[:e.n])
	e.set[0] = uint16(i)
	e.n++
	e.lastmod = now
}
