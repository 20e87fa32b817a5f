package sched

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func mhOf(t *testing.T, ds []Dest, o Options) *mh {
	t.Helper()
	return mustNew(t, "mh", ds, o).(*mh)
}

// owners returns the table as the identity of each slot's dest, so that
// tables over different dest lists compare.
func owners(s *mh) []netip.AddrPort {
	o := make([]netip.AddrPort, len(s.table))
	for c, i := range s.table {
		o[c] = s.dests[i].Addr
	}
	return o
}

func slotShares(s *mh) []float64 {
	sh := make([]float64, len(s.dests))
	for _, i := range s.table {
		sh[i]++
	}
	for i := range sh {
		sh[i] /= float64(len(s.table))
	}
	return sh
}

func TestMHTableSize(t *testing.T) {
	for _, tc := range []struct {
		size int
		want string
	}{
		{65536, "not a prime: use a prime such as 65537"},
		{4095, "not a prime: use a prime such as 4099"},
		{1, "out of range"},
		{241, "out of range"}, // a prime below MinTableSize
		{1<<20 + 7, "out of range"},
		{-5, "out of range"},
	} {
		_, err := New("mh", mkDests(1, 1), Options{TableSize: tc.size})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("table size %d: err = %v, want %q", tc.size, err, tc.want)
		}
	}
	for _, m := range []int{251, 4093, 65521, 131071} {
		if s := mhOf(t, mkDests(1, 1), Options{TableSize: m}); len(s.table) != m {
			t.Errorf("table size %d: %d slots", m, len(s.table))
		}
	}
	if s := mhOf(t, mkDests(1, 1), Options{}); len(s.table) != DefaultTableSize {
		t.Errorf("default table size: %d slots, want %d", len(s.table), DefaultTableSize)
	}
	if _, err := New("mh", mkDests(make([]int, 300)...), Options{TableSize: 251}); err != nil {
		t.Errorf("300 quiescent dests in 251 slots: %v", err) // they own no slot
	}
	w := make([]int, 300)
	for i := range w {
		w[i] = 1
	}
	if _, err := New("mh", mkDests(w...), Options{TableSize: 251}); err == nil || !strings.Contains(err.Error(), "smaller than the 300 weighted dests") {
		t.Errorf("300 dests in 251 slots: err = %v", err)
	}
}

func TestIsPrime(t *testing.T) {
	var got []int
	for n := -3; n < 50; n++ {
		if isPrime(n) {
			got = append(got, n)
		}
	}
	want := []int{2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47}
	if !equalInts(got, want) {
		t.Fatalf("primes below 50: %v", got)
	}
	for _, p := range []int{251, 4093, 65521, 65537, 131071} {
		if !isPrime(p) {
			t.Errorf("%d: not prime", p)
		}
	}
	for _, c := range []int{65535, 65536, 65541, 257 * 263} {
		if isPrime(c) {
			t.Errorf("%d: prime", c)
		}
	}
}

// Weights are honoured in the table: each dest owns the floor or the ceiling
// of its weighted share M·w/W of the slots, except that every weighted dest
// owns at least one (and then the heaviest give back one each).
func TestMHWeights(t *testing.T) {
	for _, tc := range []struct {
		weights  []int
		size     int
		giveBack bool // light dests raised to one slot: the others give slots back
	}{
		{[]int{1, 2, 3}, 0, false},
		{[]int{100, 200, 300}, 0, false},
		{[]int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 0, false},
		{[]int{5, 0, 5, 10}, 4093, false},
		{[]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 4093, false},
		{[]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 251, false},
		{[]int{65535, 1}, 0, false},
		{[]int{65535, 1, 65535, 1}, 251, true}, // a share below one slot still gets one
		{[]int{7, 65535, 300, 1, 12345}, 0, false},
		{append([]int{1000}, make100(1)...), 0, false}, // one heavy among many light
		{append([]int{1000}, make100(1)...), 4093, false},
		{append([]int{1}, make100(1000)...), 0, false}, // one light among many heavy
		{append([]int{1}, make100(1000)...), 251, true},
		{append(make100(1), 60000), 251, true},
	} {
		s := mhOf(t, mkDests(tc.weights...), Options{TableSize: tc.size})
		m := float64(len(s.table))
		sum := 0
		for _, w := range tc.weights {
			sum += w
		}
		owned := make([]int, len(tc.weights))
		for _, i := range s.table {
			owned[i]++
		}
		for i, w := range tc.weights {
			want := m * float64(w) / float64(sum)
			d := float64(owned[i]) - want
			switch {
			case w == 0:
			case want < 1:
				if owned[i] != 1 {
					t.Errorf("weights %v (M=%.0f): dest %d owns %d slots, want 1 (quota %.2f)", short(tc.weights), m, i, owned[i], want)
				}
			case tc.giveBack:
				if d >= 1 {
					t.Errorf("weights %v (M=%.0f): dest %d owns %d slots, want at most %.2f rounded up", short(tc.weights), m, i, owned[i], want)
				}
			case d <= -1 || d >= 1:
				t.Errorf("weights %v (M=%.0f): dest %d owns %d slots, want %.2f rounded down or up", short(tc.weights), m, i, owned[i], want)
			}
			if w > 0 && owned[i] == 0 {
				t.Errorf("weights %v (M=%.0f): dest %d owns no slot", tc.weights, m, i)
			}
		}
	}
}

// short abbreviates a long weight list for messages.
func short(w []int) []int {
	if len(w) > 12 {
		return w[:12]
	}
	return w
}

// Whatever the weights and M, the targets add up to M, every weighted dest
// gets a slot, and the table is full.
func TestMHApportion(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 15))
	sizes := []int{251, 257, 4093, 65537}
	for round := range 200 {
		m := sizes[rng.IntN(len(sizes))]
		n := 1 + rng.IntN(min(m, 400))
		w := make([]int, n)
		for i := range w {
			switch rng.IntN(3) {
			case 0:
				w[i] = 1 + rng.IntN(3)
			case 1:
				w[i] = 1 + rng.IntN(MaxWeight)
			default:
				w[i] = rng.IntN(2) // some quiescent
			}
		}
		ds := mkDests(w...)
		var order []int
		for i := range ds {
			if ds[i].Weight > 0 {
				order = append(order, i)
			}
		}
		if len(order) == 0 {
			continue
		}
		var sum uint64
		for p, tg := range apportion(ds, order, m) {
			if tg == 0 {
				t.Fatalf("round %d: dest %d (weight %d) gets no slot", round, order[p], w[order[p]])
			}
			sum += tg
		}
		if sum != uint64(m) {
			t.Fatalf("round %d: targets add up to %d, want %d", round, sum, m)
		}
		for c, i := range populate(ds, order, m) {
			if i == mhFree || w[i] == 0 {
				t.Fatalf("round %d: slot %d holds %d", round, c, i)
			}
		}
	}
}

// make100 returns 100 times w.
func make100(w int) []int {
	ws := make([]int, 100)
	for i := range ws {
		ws[i] = w
	}
	return ws
}

func TestMHDistribution(t *testing.T) {
	w := []int{1, 2, 3}
	fs := randFlows(6, 100_000)
	checkShares(t, mustNew(t, "mh", mkDests(w...), Options{}), w, fs, 0.02)
	checkShares(t, mustNew(t, "mh", mkDests(w...), Options{Port: true}), w, fs, 0.02)
	checkShares(t, mustNew(t, "mh", mkDests(w...), Options{TableSize: 4093}), w, fs, 0.02)
}

// The table depends only on the dests and weights: every worker and every
// appliance builds the same one, whatever the order of the list.
func TestMHDeterministic(t *testing.T) {
	ds := mkDests(1, 2, 3, 4, 5, 6, 7)
	a := owners(mhOf(t, ds, Options{}))
	shuffled := append([]Dest(nil), ds...)
	rand.New(rand.NewPCG(9, 9)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	b := owners(mhOf(t, shuffled, Options{}))
	for c := range a {
		if a[c] != b[c] {
			t.Fatalf("slot %d: %s from the list in order, %s from a shuffled one", c, a[c], b[c])
		}
	}
	// Same source, same dest; the port only matters with mh-port.
	s := mustNew(t, "mh", ds, Options{})
	for _, f := range randFlows(8, 2000) {
		want := s.Pick(&f)
		g := f
		g.SrcPort++
		if got := s.Pick(&g); got != want {
			t.Fatalf("%s: port %d → %d, port %d → %d", f.Src, f.SrcPort, want, g.SrcPort, got)
		}
	}
}

// changed counts the slots whose owner differs.
func changed(a, b []netip.AddrPort) int {
	n := 0
	for c := range a {
		if a[c] != b[c] {
			n++
		}
	}
	return n
}

// Maglev's minimal disruption, with N = 10 equal dests and M = 65537:
//   - removing one: the removed dest's slots (≈ M/N) all move, and at least
//     95% of the slots of the other dests keep their dest; in all, the slots
//     that change are between 0.99 and 1.1 × M/N (measured: 1.02);
//   - adding an 11th: it takes M/(N+1) ± 1% slots and the slots that change
//     are between 0.99 and 1.1 × M/(N+1) (measured: 1.02);
//   - removing it again gives back exactly the first table.
func TestMHDisruption(t *testing.T) {
	const n = 10
	w := make([]int, n+1)
	for i := range w {
		w[i] = 1
	}
	all := mkDests(w...)
	ten := owners(mhOf(t, all[:n], Options{}))
	m := float64(len(ten))

	// Remove dest 3.
	nine := append(append([]Dest(nil), all[:3]...), all[4:n]...)
	after := owners(mhOf(t, nine, Options{}))
	removed := all[3].Addr
	var own, kept int
	for c := range ten {
		if ten[c] == removed {
			continue
		}
		own++
		if after[c] == ten[c] {
			kept++
		}
	}
	moved := changed(ten, after)
	t.Logf("remove 1 of %d: %d slots changed (M/N = %.0f); %d of the %d slots of the others kept (%.2f%%)",
		n, moved, m/n, kept, own, 100*float64(kept)/float64(own))
	if float64(kept) < 0.95*float64(own) {
		t.Errorf("remove: only %d of %d slots of the remaining dests kept (< 95%%)", kept, own)
	}
	if f := float64(moved); f < m/n*0.99 || f > m/n*1.1 {
		t.Errorf("remove: %d slots changed, want between 0.99 and 1.1 × M/N = %.0f", moved, m/n)
	}

	// Add an 11th.
	eleven := owners(mhOf(t, all, Options{}))
	moved = changed(ten, eleven)
	taken := 0
	for c := range eleven {
		if eleven[c] == all[n].Addr {
			taken++
		}
	}
	t.Logf("add an 11th: %d slots changed, %d taken by it (M/(N+1) = %.0f)", moved, taken, m/(n+1))
	if f := float64(moved); f < m/(n+1)*0.99 || f > m/(n+1)*1.1 {
		t.Errorf("add: %d slots changed, want between 0.99 and 1.1 × M/(N+1) = %.0f", moved, m/(n+1))
	}
	if f := float64(taken); f < m/(n+1)*0.99 || f > m/(n+1)*1.01 {
		t.Errorf("add: the new dest took %d slots, want M/(N+1) = %.0f ± 1%%", taken, m/(n+1))
	}

	// And back.
	if back := owners(mhOf(t, all[:n], Options{})); changed(ten, back) != 0 {
		t.Errorf("removing the 11th again: %d slots differ from the first table", changed(ten, back))
	}
}

// An unavailable dest: its flows get no dest, or with mh-fallback another
// one, always the same and spread over the others; other flows keep theirs.
func TestMHUnavailable(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		ds := mkDests(1, 1, 1, 1, 1)
		for i := range ds {
			ds[i].Upper = 10
		}
		s := mustNew(t, "mh", ds, Options{Fallback: fallback})
		fs := randFlows(10, 20_000)
		before := make([]int, len(fs))
		for i := range fs {
			before[i] = s.Pick(&fs[i])
		}
		overload(&ds[2])
		spread := map[int]int{}
		for i := range fs {
			got := s.Pick(&fs[i])
			switch {
			case before[i] != 2 && got != before[i]:
				t.Fatalf("fallback %v: flow %d moved from %d to %d", fallback, i, before[i], got)
			case before[i] == 2 && !fallback && got != -1:
				t.Fatalf("no fallback: flow %d of the overloaded dest got %d, want -1", i, got)
			case before[i] == 2 && fallback:
				if got < 0 || got == 2 {
					t.Fatalf("fallback: flow %d got %d", i, got)
				}
				if again := s.Pick(&fs[i]); again != got {
					t.Fatalf("fallback: flow %d got %d then %d", i, got, again)
				}
				spread[got]++
			}
		}
		if fallback {
			t.Logf("flows of the overloaded dest went to %v", spread)
			checkSpread(t, spread, []int{0, 1, 3, 4}, 0.04)
		}
		// Hysteresis: below 3/4 of 10 the dest is back with its own flows.
		ds[2].C.Active.Store(7)
		for i := range fs {
			if got := s.Pick(&fs[i]); got != before[i] {
				t.Fatalf("fallback %v, dest back: flow %d got %d, want %d", fallback, i, got, before[i])
			}
		}
		// Nothing available: -1, with or without fallback.
		for i := range ds {
			overload(&ds[i])
		}
		if got := s.Pick(&fs[0]); got != -1 {
			t.Fatalf("fallback %v, all overloaded: Pick = %d", fallback, got)
		}
	}
}

// When the probes miss (the only available dest owns one slot of 251), the
// fallback walks the table to it.
func TestMHFallbackWalk(t *testing.T) {
	w := make([]int, 200)
	for i := range w {
		w[i] = 1
	}
	ds := mkDests(w...)
	for i := range ds {
		ds[i].Upper = 1
	}
	s := mustNew(t, "mh", ds, Options{Fallback: true, TableSize: 251})
	for i := range ds {
		if i != 123 {
			overload(&ds[i])
		}
	}
	for _, f := range randFlows(12, 200) {
		if got := s.Pick(&f); got != 123 {
			t.Fatalf("%s: Pick = %d, want 123, the only available dest", f.Src, got)
		}
	}
}

// Quiescing a dest (weight 0) moves about its own flows only.
func TestMHQuiesce(t *testing.T) {
	a := mhOf(t, mkDests(1, 1, 1, 1, 1), Options{})
	b := mhOf(t, mkDests(1, 1, 0, 1, 1), Options{})
	var others, kept int
	for c := range a.table {
		if a.table[c] == 2 {
			continue
		}
		others++
		if b.table[c] == a.table[c] {
			kept++
		}
		if b.table[c] == 2 {
			t.Fatalf("slot %d: owned by the quiescent dest", c)
		}
	}
	if float64(kept) < 0.95*float64(others) {
		t.Fatalf("quiescing one of 5: %d of %d other slots kept", kept, others)
	}
}

func TestMHPort(t *testing.T) {
	s := mustNew(t, "mh", mkDests(1, 1, 1, 1), Options{Port: true})
	f := Flow{Src: netip.MustParseAddr("2001:db8::7")}
	seen := map[int]int{}
	for p := range 1000 {
		f.SrcPort = uint16(1024 + p)
		d := s.Pick(&f)
		seen[d]++
		if again := s.Pick(&f); again != d {
			t.Fatalf("port %d: %d then %d", f.SrcPort, d, again)
		}
	}
	if len(seen) != 4 {
		t.Fatalf("1000 ports of one source reached dests %v, want all 4", seen)
	}
}

// An IPv4 source and its IPv4-mapped form are one client.
func TestMHMappedSource(t *testing.T) {
	s := mustNew(t, "mh", mkDests(1, 1, 1, 1, 1, 1, 1), Options{})
	for _, f := range randFlows(11, 500) {
		g := f
		g.Src = netip.AddrFrom16(f.Src.As16())
		if a, b := s.Pick(&f), s.Pick(&g); a != b {
			t.Fatalf("%s → %d, %s → %d", f.Src, a, g.Src, b)
		}
	}
}

func TestMHUnsupportedNothing(t *testing.T) {
	if _, err := New("mh", mkDests(1), Options{Fallback: true, Port: true, TableSize: 251}); errors.Is(err, ErrUnsupported) || err != nil {
		t.Fatalf("mh with every option: %v", err)
	}
}

func BenchmarkMHPick(b *testing.B) { benchPick(b, "mh", Options{}) }

func BenchmarkMHPickFallbackPort(b *testing.B) {
	benchPick(b, "mh", Options{Fallback: true, Port: true})
}

// BenchmarkMHBuild is the cost of New for one mh instance (once per worker
// per dest change).
func BenchmarkMHBuild(b *testing.B) {
	ds := mkDests(1, 2, 3, 4, 5, 1, 2, 3, 4, 5)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New("mh", ds, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
