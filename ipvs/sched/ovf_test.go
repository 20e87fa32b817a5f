package sched

import "testing"

// modelOVF is ip_vs_ovf_schedule: skip dests that are overloaded, have no
// weight or more active connections than their weight; of the rest the
// highest weight, the first on a tie.
func modelOVF(k *kstate) int {
	h, hw := -1, 0
	for i := range k.w {
		w := k.w[i]
		if !k.notOver(i) || k.act[i] > int64(w) || w == 0 {
			continue
		}
		if h < 0 || w > hw {
			h, hw = i, w
		}
	}
	return h
}

func TestOVFMatchesKernelModel(t *testing.T) { checkAgainstModel(t, "ovf", modelOVF) }

// Weights are active-connection budgets: B (weight 3) takes connections
// until it holds 4 (3 is still eligible), then A (2) until 3, then C (1)
// until 2; then there is no dest. Inactive connections do not count.
func TestOVFOverflow(t *testing.T) {
	ds := mkDests(2, 3, 1)
	ds[1].C.Inactive.Store(1000)
	s := mustNew(t, "ovf", ds, Options{})
	var got []int
	for range 10 {
		d := s.Pick(nil)
		got = append(got, d)
		if d >= 0 {
			ds[d].C.Active.Add(1)
		}
	}
	want := []int{1, 1, 1, 1, 0, 0, 0, 2, 2, -1}
	if !equalInts(got, want) {
		t.Fatalf("picks %v, want %v", got, want)
	}
	ds[0].C.Active.Store(1) // one of A's ends: back under budget
	if d := s.Pick(nil); d != 0 {
		t.Fatalf("after a close on A: Pick = %d, want 0", d)
	}
}

// 100k connections with a steady 5 active: they stay on the heaviest dest.
func TestOVFDistribution(t *testing.T) {
	ds := mkDests(2, 8, 4)
	s := mustNew(t, "ovf", ds, Options{})
	counts := make([]int, 3)
	for range 100_000 {
		d := s.Pick(nil)
		counts[d]++
		if ds[d].C.Active.Add(1) > 5 {
			ds[d].C.Active.Add(-1)
		}
	}
	if counts[1] != 100_000 {
		t.Fatalf("counts %v: want all on dest 1", counts)
	}
}

func BenchmarkOVFPick(b *testing.B) { benchPick(b, "ovf", Options{}) }
