package sched

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// modelLBLC is ip_vs_lblc_schedule step by step over an unbounded map (the
// kernel's hash table), with entries idle for a day gone (the kernel's
// lblc_expiration, applied exactly):
//
//	entry found → lastuse = now; its dest is used if available and not
//	overloaded in lblc's sense (more active connections than weight while
//	some dest has fewer than half its weight);
//	else wlc over the service; none → no dest; the entry is created or
//	pointed at the new dest.
//
// "available" includes the connection thresholds (GVS's documented
// deviation: the kernel checks them only when scheduling anew).
type modelLBLC struct {
	m map[netip.Addr]*mlEntry
}

type mlEntry struct {
	set     []int // lblc: one dest; lblcr: newest first
	lastuse int64
	lastmod int64
}

func (m *modelLBLC) get(dst netip.Addr, now int64) *mlEntry {
	en := m.m[dst]
	if en != nil && now-en.lastuse >= int64(24*time.Hour) {
		delete(m.m, dst)
		return nil
	}
	return en
}

// modelWLC is __ip_vs_lblc_schedule (and lblcr's): the first dest not
// overloaded with a weight, replaced by any later one not overloaded with
// loh·w_dest > doh·w_least.
func modelWLC(k *kstate) int {
	least := -1
	for i := range k.w {
		if k.notOver(i) && k.w[i] > 0 {
			least = i
			break
		}
	}
	if least < 0 {
		return -1
	}
	loh := k.overhead(least)
	for i := least + 1; i < len(k.w); i++ {
		if !k.notOver(i) {
			continue
		}
		if doh := k.overhead(i); loh*int64(k.w[i]) > doh*int64(k.w[least]) {
			least, loh = i, doh
		}
	}
	return least
}

// modelLBLCOverloaded is the kernel's is_overloaded of lblc and lblcr.
func modelLBLCOverloaded(k *kstate, d int) bool {
	if k.act[d] <= int64(k.w[d]) {
		return false
	}
	for j := range k.w {
		if k.act[j]*2 < int64(k.w[j]) {
			return true
		}
	}
	return false
}

func (m *modelLBLC) pick(k *kstate, dst netip.Addr, now int64) int {
	en := m.get(dst, now)
	if en != nil {
		en.lastuse = now
		if d := en.set[0]; k.avail(d) && !modelLBLCOverloaded(k, d) {
			return d
		}
	}
	d := modelWLC(k)
	if d < 0 {
		return -1
	}
	if en != nil {
		en.set[0] = d
	} else {
		m.m[dst] = &mlEntry{set: []int{d}, lastuse: now}
	}
	return d
}

// fakeClock returns a clock for locality tables and a pointer to its time.
func fakeClock() (func() int64, *int64) {
	now := int64(1)
	return func() int64 { return now }, &now
}

// randDsts returns n destination addresses (some IPv6).
func randDsts(r *rand.Rand, n int) []netip.Addr {
	as := make([]netip.Addr, n)
	for i := range as {
		if i%4 == 3 {
			as[i] = netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 15: byte(r.Uint32())})
		} else {
			as[i] = netip.AddrFrom4([4]byte{198, 18, byte(r.Uint32()), byte(r.Uint32())})
		}
	}
	return as
}

// checkLocalityModel runs random services, destinations, traffic and time
// steps (up to 3 hours, sometimes 2 days) through the scheduler and the
// model and compares every pick.
func checkLocalityModel(t *testing.T, name string, model func(*kstate, netip.Addr, int64) int, reset func()) {
	t.Helper()
	r := rand.New(rand.NewPCG(51, uint64(len(name))))
	for round := range 200 {
		k := randKState(r)
		ds := k.dests()
		s := mustNew(t, name, ds, Options{})
		clock, now := fakeClock()
		switch x := s.(type) {
		case *lblc:
			x.t.now = clock
		case *lblcr:
			x.t.now = clock
		}
		reset()
		dsts := randDsts(r, 1+r.IntN(40))
		for pick := range 400 {
			dst := dsts[r.IntN(len(dsts))]
			want := model(k, dst, *now)
			if got := s.Pick(&Flow{Dst: dst}); got != want {
				t.Fatalf("round %d pick %d: weights %v active %v inactive %v upper %v, dst %s: got %d, want %d",
					round, pick, k.w, k.act, k.inact, k.upper, dst, got, want)
			}
			k.churn(r, want)
			k.apply(ds)
			if r.IntN(100) == 0 {
				*now += int64(48 * time.Hour)
			}
			*now += int64(r.IntN(int(3*time.Hour/time.Second))) * int64(time.Second)
		}
	}
}

func TestLBLCMatchesKernelModel(t *testing.T) {
	m := &modelLBLC{}
	checkLocalityModel(t, "lblc", m.pick, func() { m.m = map[netip.Addr]*mlEntry{} })
}

// One destination sticks to its dest while that dest is not overloaded in
// lblc's sense; destinations spread by wlc.
func TestLBLCLocality(t *testing.T) {
	ds := mkDests(4, 4, 4)
	s := mustNew(t, "lblc", ds, Options{})
	fs := randFlows(13, 100_000)
	dsts := randDsts(rand.New(rand.NewPCG(1, 2)), 300)
	first := map[netip.Addr]int{}
	counts := make([]int, 3)
	for i := range fs {
		fs[i].Dst = dsts[i%len(dsts)]
		d := s.Pick(&fs[i])
		if d < 0 {
			t.Fatal("no dest")
		}
		if w, ok := first[fs[i].Dst]; !ok {
			first[fs[i].Dst] = d
			ds[d].C.Inactive.Add(1) // spreads the first picks (wlc)
			counts[d]++
		} else if w != d {
			t.Fatalf("flow %d to %s: dest %d, first went to %d (no dest is overloaded)", i, fs[i].Dst, d, w)
		}
	}
	checkSpread(t, map[int]int{0: counts[0], 1: counts[1], 2: counts[2]}, []int{0, 1, 2}, 0.01)
	// dest of dsts[0] gets more active conns than its weight while another
	// has fewer than half: the destination moves, and stays moved
	d0 := first[dsts[0]]
	ds[d0].C.Active.Store(5)
	d1 := s.Pick(&Flow{Dst: dsts[0]})
	if d1 == d0 || d1 < 0 {
		t.Fatalf("overloaded dest %d: Pick = %d", d0, d1)
	}
	ds[d0].C.Active.Store(0)
	if got := s.Pick(&Flow{Dst: dsts[0]}); got != d1 {
		t.Fatalf("after the move: Pick = %d, want %d", got, d1)
	}
}

// The table is fixed in size: a flood of new destinations allocates
// nothing, never evicts an entry used within 6 minutes, and evicts an idle
// one.
func TestLBLCBoundedTable(t *testing.T) {
	for _, name := range []string{"lblc", "lblcr"} {
		ds := mkDests(1, 1, 1)
		s := mustNew(t, name, ds, Options{CacheSize: 64})
		var tb *locTable
		switch x := s.(type) {
		case *lblc:
			tb = x.t
		case *lblcr:
			tb = x.t
		}
		clock, now := fakeClock()
		tb.now = clock
		if len(tb.ents) != 64 {
			t.Fatalf("%s: %d entries for CacheSize 64", name, len(tb.ents))
		}
		hot := netip.MustParseAddr("192.0.2.80")
		hd := s.Pick(&Flow{Dst: hot})
		ds[hd].C.Inactive.Add(10) // the next picks go elsewhere
		i := 0
		flood, hf := &Flow{}, &Flow{Dst: hot}
		if a := testing.AllocsPerRun(100_000, func() {
			i++
			*now += int64(time.Millisecond)
			flood.Dst = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			s.Pick(flood)
			if i%10_000 == 0 { // the hot one is used every 10 s
				s.Pick(hf)
			}
		}); a != 0 {
			t.Fatalf("%s: %v allocations per Pick in a flood", name, a)
		}
		if got := s.Pick(&Flow{Dst: hot}); got != hd {
			t.Fatalf("%s: hot destination moved from %d to %d by a flood", name, hd, got)
		}
		live := 0
		for j := range tb.ents {
			if tb.ents[j].lastuse != 0 {
				live++
			}
		}
		if live > 64 {
			t.Fatalf("%s: %d live entries in 64", name, live)
		}
		*now += int64(7 * time.Minute) // idle past the entry timeout
		for j := range 1000 {
			s.Pick(&Flow{Dst: netip.AddrFrom4([4]byte{172, 16, byte(j >> 8), byte(j)})})
		}
		if tb.lookup(ptr(hot.As16()), *now) != nil {
			t.Fatalf("%s: an entry idle for 7 minutes survived a flood", name)
		}
	}
	if _, err := New("lblc", mkDests(1), Options{CacheSize: MaxCacheSize + 1}); err == nil {
		t.Fatal("CacheSize above the maximum accepted")
	}
}

func ptr[T any](v T) *T { return &v }

func BenchmarkLBLCPick(b *testing.B) { benchLocality(b, "lblc") }

// benchLocality picks over 1024 destinations (hits after the first round).
func benchLocality(b *testing.B, name string) {
	ds := mkDests(1, 2, 3, 4, 5, 1, 2, 3, 4, 5)
	s := mustNew(b, name, ds, Options{})
	fs := randFlows(1, 1024)
	for i := range fs {
		fs[i].Dst = fs[i].Src
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if s.Pick(&fs[i&1023]) < 0 {
			b.Fatal("no dest")
		}
	}
}
