package sched

import (
	"math/rand/v2"
	"testing"
)

// modelSED is ip_vs_sed_schedule step by step: the first dest that is not
// overloaded and has a weight, then every later dest that is not overloaded
// replaces it when (Active_least+1)·weight_dest > (Active_dest+1)·weight_least.
func modelSED(k *kstate) int {
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
	loh := k.act[least] + 1
	for i := least + 1; i < len(k.w); i++ {
		if !k.notOver(i) {
			continue
		}
		doh := k.act[i] + 1
		if loh*int64(k.w[i]) > doh*int64(k.w[least]) {
			least, loh = i, doh
		}
	}
	return least
}

// Random states and traffic, one pick at a time, against the model.
func TestSEDMatchesKernelModel(t *testing.T) {
	checkAgainstModel(t, "sed", modelSED)
}

// checkAgainstModel runs 300 random services for 300 picks each, with
// connections coming and going between picks, and compares every pick with
// the model's.
func checkAgainstModel(t *testing.T, name string, model func(*kstate) int) {
	t.Helper()
	r := rand.New(rand.NewPCG(11, uint64(len(name))))
	for round := range 300 {
		k := randKState(r)
		ds := k.dests()
		s := mustNew(t, name, ds, Options{})
		for pick := range 300 {
			want := model(k)
			if got := s.Pick(&Flow{}); got != want {
				t.Fatalf("round %d pick %d: weights %v active %v inactive %v upper %v: got %d, want %d",
					round, pick, k.w, k.act, k.inact, k.upper, got, want)
			}
			k.churn(r, want)
			k.apply(ds)
		}
	}
}

func TestSEDPick(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		weights []int
		conns   [][2]int64
		want    int
	}{
		{"all idle: heaviest", []int{1, 3, 2}, [][2]int64{{0, 0}, {0, 0}, {0, 0}}, 1}, // 1/1, 1/3, 1/2
		{"expected delay", []int{1, 3}, [][2]int64{{0, 0}, {3, 0}}, 0},                // 1/1 < 4/3
		{"inactive ignored", []int{1, 1}, [][2]int64{{0, 1000}, {1, 0}}, 0},           // 1 vs 2
		{"tie: first", []int{2, 1}, [][2]int64{{1, 0}, {0, 0}}, 0},                    // 2/2 = 1/1
		{"quiescent skipped", []int{0, 1}, [][2]int64{{0, 0}, {50, 0}}, 1},
		{"none", []int{0, 0}, [][2]int64{{0, 0}, {0, 0}}, -1},
	} {
		ds := mkDests(tc.weights...)
		setConns(ds, tc.conns...)
		if got := mustNew(t, "sed", ds, Options{}).Pick(nil); got != tc.want {
			t.Errorf("%s: Pick = %d, want %d", tc.desc, got, tc.want)
		}
	}
}

// 100k connections, each active while 1000 others are: shares follow the
// weights.
func TestSEDDistribution(t *testing.T) {
	checkLoadShares(t, "sed", []int{1, 2, 3, 4})
}

// checkLoadShares opens 100k connections, each one active until 1000 later
// ones have been opened (a steady load of 1000), and checks the shares of
// the picks against the weights.
func checkLoadShares(t *testing.T, name string, w []int) {
	t.Helper()
	checkLoadSharesTol(t, name, w, 0.01)
}

// checkLoadSharesTol is checkLoadShares with an absolute tolerance.
func checkLoadSharesTol(t *testing.T, name string, w []int, tol float64) {
	t.Helper()
	ds := mkDests(w...)
	s := mustNew(t, name, ds, Options{})
	const n, live = 100_000, 1000
	picks := make([]int, n)
	counts := make([]int, len(w))
	for i := range n {
		if i >= live {
			ds[picks[i-live]].C.Active.Add(-1)
		}
		d := s.Pick(&Flow{})
		if d < 0 {
			t.Fatalf("connection %d: no dest", i)
		}
		picks[i] = d
		counts[d]++
		ds[d].C.Active.Add(1)
	}
	sum := 0
	for _, x := range w {
		sum += x
	}
	for i, x := range w {
		want := float64(x) / float64(sum)
		if got := float64(counts[i]) / n; got < want-tol || got > want+tol {
			t.Errorf("dest %d (weight %d): share %.4f, want %.4f ± %.3f (counts %v)", i, x, got, want, tol, counts)
		}
	}
	t.Logf("%s: counts %v", name, counts)
}

func BenchmarkSEDPick(b *testing.B) { benchPick(b, "sed", Options{}) }
