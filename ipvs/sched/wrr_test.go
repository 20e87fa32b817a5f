package sched

import (
	"math/rand/v2"
	"testing"
)

// The sequences LVS's ip_vs_wrr produces for these weights (one or more
// whole cycles of sum(weight)/gcd picks).
func TestWRRSequence(t *testing.T) {
	for _, tc := range []struct {
		weights []int
		want    string
	}{
		{[]int{4, 3, 2}, "AABABCABC" + "AABABCABC"}, // levels 4: A; 3: AB; 2: ABC; 1: ABC
		{[]int{1, 1, 1}, "ABCABC"},
		{[]int{5, 1}, "AAAAAB" + "AAAAAB"},
		{[]int{1, 2, 3}, "CBCABC" + "CBCABC"}, // levels 3: C; 2: BC; 1: ABC
		{[]int{4, 2}, "AAB" + "AAB"},          // gcd 2: levels 3: A; 1: AB
		{[]int{100, 200, 300}, "CBCABC"},      // same as 1, 2, 3: steps of the gcd
		{[]int{4, 0, 2}, "AAC" + "AAC"},       // quiescent skipped and out of the gcd
		{[]int{0, 3}, "BBB"},
	} {
		s := mustNew(t, "wrr", mkDests(tc.weights...), Options{})
		if got := seq(s, len(tc.want)); got != tc.want {
			t.Errorf("weights %v: sequence %s, want %s", tc.weights, got, tc.want)
		}
	}
}

// Overloaded dests are skipped; the others keep LVS's interleaving, and the
// cycle resumes with the dest when it comes back.
func TestWRROverloaded(t *testing.T) {
	ds := mkDests(4, 3, 2)
	ds[0].Upper = 1
	s := mustNew(t, "wrr", ds, Options{})
	if got := seq(s, 3); got != "AAB" {
		t.Fatalf("start: %s, want AAB", got)
	}
	ds[0].C.Active.Store(1) // A overloaded at level 3, after B
	// rest of level 3: -; level 2: B C; level 1: B C; level 4: -; level 3: B; …
	if got := seq(s, 10); got != "BCBCBBCBCB" {
		t.Fatalf("A overloaded: %s, want BCBCBBCBCB", got)
	}
	relieve(&ds[0]) // at level 3 after B
	if got := seq(s, 9); got != "ABCABCAAB" {
		t.Fatalf("A back: %s, want ABCABCAAB", got)
	}
}

func TestWRRNoneAvailable(t *testing.T) {
	ds := mkDests(3, 1)
	ds[0].Upper, ds[1].Upper = 1, 1
	s := mustNew(t, "wrr", ds, Options{})
	if got := seq(s, 2); got != "AA" {
		t.Fatalf("start: %s, want AA", got)
	}
	overload(&ds[0])
	overload(&ds[1])
	if got := seq(s, 3); got != "---" {
		t.Fatalf("all overloaded: %s, want ---", got)
	}
	relieve(&ds[0])
	relieve(&ds[1])
	// A failed pick leaves the sequence where it was: the cycle AAAB goes on.
	if got := seq(s, 6); got != "ABAAAB" {
		t.Fatalf("after: %s, want ABAAAB", got)
	}
}

// refWRR is LVS's wrr walked literally: one dest at a time, one level at a
// time, no shortcut. It fails (without moving) only when nothing is available.
type refWRR struct {
	w          []int
	avail      []bool
	i          int // previous pick, -1 = head
	cw, mw, di int
}

func newRefWRR(w []int) *refWRR {
	r := &refWRR{w: w, avail: make([]bool, len(w)), i: -1}
	maxw := 0
	for _, x := range w {
		if x > 0 {
			r.di = gcd(x, r.di)
		}
		maxw = max(maxw, x)
	}
	if r.di > 0 {
		r.mw = maxw - (r.di - 1)
	}
	r.cw = r.mw
	return r
}

func (r *refWRR) next() int {
	any := false
	for i, x := range r.w {
		any = any || (x > 0 && r.avail[i])
	}
	if !any {
		return -1
	}
	for {
		r.i++
		if r.i == len(r.w) {
			r.i = -1
			if r.cw -= r.di; r.cw <= 0 {
				r.cw = r.mw
			}
			continue
		}
		if r.avail[r.i] && r.w[r.i] >= r.cw {
			return r.i
		}
	}
}

// The shortcut over empty levels changes no pick: random weights, random
// overloads between picks, compared with the literal walk.
func TestWRRMatchesLiteralLVS(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 43))
	for round := range 300 {
		n := 1 + rng.IntN(6)
		w := make([]int, n)
		for i := range w {
			w[i] = rng.IntN(7) * (1 + rng.IntN(3)) // 0–18, often sharing factors
		}
		ds := mkDests(w...)
		for i := range ds {
			ds[i].Upper = 1
		}
		s := mustNew(t, "wrr", ds, Options{})
		ref := newRefWRR(w)
		for i := range ref.avail {
			ref.avail[i] = true
		}
		for pick := range 200 {
			if rng.IntN(4) == 0 { // toggle one dest
				k := rng.IntN(n)
				ref.avail[k] = !ref.avail[k]
				if ref.avail[k] {
					relieve(&ds[k])
				} else {
					overload(&ds[k])
				}
			}
			want := ref.next()
			if got := s.Pick(nil); got != want {
				t.Fatalf("round %d, weights %v, pick %d (available %v): got %d, want %d", round, w, pick, ref.avail, got, want)
			}
		}
	}
}

func TestWRRDistribution(t *testing.T) {
	w := []int{1, 2, 3}
	s := mustNew(t, "wrr", mkDests(w...), Options{})
	checkShares(t, s, w, randFlows(1, 100_000), 0.02)

	// Exact on whole cycles: 6 picks give 1, 2, 3.
	s = mustNew(t, "wrr", mkDests(w...), Options{})
	counts := make([]int, 3)
	for range 6 * 1000 {
		counts[s.Pick(nil)]++
	}
	if counts[0] != 1000 || counts[1] != 2000 || counts[2] != 3000 {
		t.Fatalf("1000 cycles: counts %v, want [1000 2000 3000]", counts)
	}
}

func BenchmarkWRRPick(b *testing.B) { benchPick(b, "wrr", Options{}) }
