package sched

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// modelLBLCR is ip_vs_lblcr_schedule step by step over an unbounded map
// (entries idle for a day gone, applied exactly as in modelLBLC):
//
//	entry found → lastuse = now; n = the set's least loaded dest (first
//	not overloaded with a weight, then later ones not overloaded with
//	loh·w_dest > doh·w_least); if the set has more than one dest and was
//	last changed more than a day ago, its most loaded dest with a weight
//	is erased (lastmod = now); n is used if it exists and is not
//	overloaded in lblc's sense; else wlc over the service (none → no
//	dest), inserted at the head of the set unless present (lastmod = now);
//	no entry → wlc, a new entry with a one-dest set.
func modelLBLCR(m *modelLBLC) func(*kstate, netip.Addr, int64) int {
	return func(k *kstate, dst netip.Addr, now int64) int {
		en := m.get(dst, now)
		if en == nil {
			d := modelWLC(k)
			if d >= 0 {
				m.m[dst] = &mlEntry{set: []int{d}, lastuse: now, lastmod: now}
			}
			return d
		}
		en.lastuse = now
		least := -1
		var loh int64
		for _, d := range en.set {
			if least < 0 {
				if k.notOver(d) && k.w[d] > 0 {
					least, loh = d, k.overhead(d)
				}
				continue
			}
			if !k.notOver(d) {
				continue
			}
			if doh := k.overhead(d); loh*int64(k.w[d]) > doh*int64(k.w[least]) {
				least, loh = d, doh
			}
		}
		if len(en.set) > 1 && now > en.lastmod+int64(24*time.Hour) {
			most := -1
			var moh int64
			for _, d := range en.set {
				if k.w[d] <= 0 {
					continue
				}
				if doh := k.overhead(d); most < 0 || moh*int64(k.w[d]) < doh*int64(k.w[most]) {
					most, moh = d, doh
				}
			}
			if most >= 0 {
				en.set = slices.DeleteFunc(en.set, func(d int) bool { return d == most })
				en.lastmod = now
			}
		}
		if least >= 0 && !modelLBLCOverloaded(k, least) {
			return least
		}
		d := modelWLC(k)
		if d < 0 {
			return -1
		}
		if !slices.Contains(en.set, d) {
			en.set = append([]int{d}, en.set...)
			en.lastmod = now
		}
		return d
	}
}

func TestLBLCRMatchesKernelModel(t *testing.T) {
	m := &modelLBLC{}
	checkLocalityModel(t, "lblcr", modelLBLCR(m), func() { m.m = map[netip.Addr]*mlEntry{} })
}

// A busy destination is replicated: when its dest is overloaded in lblc's
// sense another joins the set and the load spreads over both; after a day
// without change the set shrinks back as it is used.
func TestLBLCRReplication(t *testing.T) {
	ds := mkDests(2, 2, 2)
	s := mustNew(t, "lblcr", ds, Options{}).(*lblcr)
	clock, now := fakeClock()
	s.t.now = clock
	dst := &Flow{Dst: netip.MustParseAddr("198.51.100.7")}
	a := s.Pick(dst)
	ds[a].C.Active.Store(3) // > weight 2, and the others have 0 < 1
	b := s.Pick(dst)
	if b == a || b < 0 {
		t.Fatalf("overloaded %d: Pick = %d", a, b)
	}
	e := s.t.lookup(ptr(dst.Dst.As16()), *now)
	if e.n != 2 || int(e.set[0]) != b || int(e.set[1]) != a {
		t.Fatalf("set %v (n %d), want [%d %d]", e.set[:e.n], e.n, b, a)
	}
	// 100k connections to this destination, each active while 1000 others
	// are: spread over the set as dests overload in turn, never refused
	counts := make([]int, 3)
	picks := make([]int, 0, 100_000)
	for i := range 100_000 {
		if i >= 1000 {
			ds[picks[i-1000]].C.Active.Add(-1)
		}
		d := s.Pick(dst)
		if d < 0 {
			t.Fatalf("connection %d: no dest", i)
		}
		picks = append(picks, d)
		counts[d]++
		ds[d].C.Active.Add(1)
		*now += int64(time.Millisecond)
	}
	checkSpread(t, map[int]int{0: counts[0], 1: counts[1], 2: counts[2]}, []int{0, 1, 2}, 0.02)
	if e = s.t.lookup(ptr(dst.Dst.As16()), *now); e.n != 3 {
		t.Fatalf("busy destination: set of %d dests, want all 3", e.n)
	}
	// a day later, still used: the set loses its most loaded dest at each use
	for i := range ds {
		ds[i].C.Active.Store(int64(i)) // dest 2 most loaded, then 1
	}
	*now += int64(25 * time.Hour / 2)
	s.Pick(dst) // used within the day
	*now += int64(25 * time.Hour / 2)
	s.Pick(dst)
	if e = s.t.lookup(ptr(dst.Dst.As16()), *now); e.n != 2 || slices.Contains(e.set[:e.n], 2) {
		t.Fatalf("after a day: set %v, want dest 2 erased", e.set[:e.n])
	}
}

// A full set (lblcrMaxSet dests) makes room by dropping its most loaded.
func TestLBLCRSetBound(t *testing.T) {
	w := make([]int, lblcrMaxSet+2)
	for i := range w {
		w[i] = 1
	}
	ds := mkDests(w...)
	s := mustNew(t, "lblcr", ds, Options{}).(*lblcr)
	f := &Flow{Dst: netip.MustParseAddr("198.51.100.8")}
	for range len(ds) {
		d := s.Pick(f)
		ds[d].C.Active.Add(5) // overloaded in lblc's sense: the next pick adds another
	}
	e := s.t.lookup(ptr(f.Dst.As16()), s.t.now())
	if int(e.n) != lblcrMaxSet {
		t.Fatalf("set of %d, want the bound %d", e.n, lblcrMaxSet)
	}
}

func BenchmarkLBLCRPick(b *testing.B) { benchLocality(b, "lblcr") }
