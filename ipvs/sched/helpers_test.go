package sched

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// mkDests returns dests 10.0.0.1:80, 10.0.0.2:80, … with the given weights
// and fresh counters.
func mkDests(weights ...int) []Dest {
	ds := make([]Dest, len(weights))
	for i, w := range weights {
		ds[i] = Dest{
			Addr:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i + 1)}), 80),
			Weight: w,
			C:      new(DestCounters),
		}
	}
	return ds
}

func mustNew(t testing.TB, name string, ds []Dest, o Options) Scheduler {
	t.Helper()
	s, err := New(name, ds, o)
	if err != nil {
		t.Fatalf("New(%q): %v", name, err)
	}
	if s.Name() != name {
		t.Fatalf("New(%q).Name() = %q", name, s.Name())
	}
	return s
}

// seq picks n times and spells the picks as letters: dest 0 is A, -1 is '-'.
func seq(s Scheduler, n int) string {
	var b strings.Builder
	f := &Flow{}
	for range n {
		if i := s.Pick(f); i < 0 {
			b.WriteByte('-')
		} else {
			b.WriteByte(byte('A' + i))
		}
	}
	return b.String()
}

// overload fills d up to its upper threshold. Thresholds are part of the
// immutable Dest, so Upper must have been set before New: the scheduler holds
// a copy of the dest that shares only the counters.
func overload(d *Dest) {
	if d.Upper == 0 {
		panic("overload: dest has no upper threshold")
	}
	d.C.Active.Store(int64(d.Upper))
}

// relieve drops d's connections so that it is no longer overloaded.
func relieve(d *Dest) {
	d.C.Active.Store(0)
	d.C.Inactive.Store(0)
}

// randFlows returns n flows from random IPv4 sources and ports to one VIP,
// the same ones for the same seed.
func randFlows(seed uint64, n int) []Flow {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	fs := make([]Flow, n)
	vip := netip.MustParseAddr("192.0.2.1")
	for i := range fs {
		var a [4]byte
		u := r.Uint32()
		a[0], a[1], a[2], a[3] = byte(u>>24), byte(u>>16), byte(u>>8), byte(u)
		fs[i] = Flow{Src: netip.AddrFrom4(a), SrcPort: uint16(r.Uint32()), Dst: vip, DstPort: 80, Proto: 6}
	}
	return fs
}

// checkShares picks once per flow and asserts that each dest's share of the
// picks is within tol (absolute, as a fraction) of weight/sum(weights).
func checkShares(t *testing.T, s Scheduler, weights []int, fs []Flow, tol float64) {
	t.Helper()
	counts := make([]int, len(weights))
	for i := range fs {
		d := s.Pick(&fs[i])
		if d < 0 {
			t.Fatalf("flow %d: no dest", i)
		}
		counts[d]++
	}
	sum := 0
	for _, w := range weights {
		sum += w
	}
	for i, w := range weights {
		want := float64(w) / float64(sum)
		got := float64(counts[i]) / float64(len(fs))
		if got < want-tol || got > want+tol {
			t.Errorf("dest %d (weight %d): share %.4f, want %.4f ± %.3f (counts %v)", i, w, got, want, tol, counts)
		}
	}
	t.Logf("%s: counts %v over %d flows", s.Name(), counts, len(fs))
}

// benchPick benchmarks Pick over 10 dests and 1024 different flows.
func benchPick(b *testing.B, name string, o Options) {
	ds := mkDests(1, 2, 3, 4, 5, 1, 2, 3, 4, 5)
	for i := range ds {
		ds[i].C.Active.Store(int64(i % 3))
		ds[i].C.Inactive.Store(int64(i * 7 % 5))
	}
	s := mustNew(b, name, ds, o)
	fs := randFlows(1, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if s.Pick(&fs[i&1023]) < 0 {
			b.Fatal("no dest")
		}
	}
}

// checkSpread asserts that the picks counted in spread went to the dests in
// to only, in equal shares within tol (absolute, as a fraction).
func checkSpread(t *testing.T, spread map[int]int, to []int, tol float64) {
	t.Helper()
	total := 0
	for _, c := range spread {
		total += c
	}
	if total == 0 {
		t.Fatal("no pick to spread")
	}
	if len(spread) != len(to) {
		t.Fatalf("picks went to %v, want dests %v", spread, to)
	}
	want := 1 / float64(len(to))
	for _, d := range to {
		if got := float64(spread[d]) / float64(total); got < want-tol || got > want+tol {
			t.Errorf("dest %d got %.3f of the picks, want %.3f ± %.2f (%v)", d, got, want, tol, spread)
		}
	}
}
