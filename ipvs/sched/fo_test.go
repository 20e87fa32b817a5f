package sched

import "testing"

// modelFO is ip_vs_fo_schedule: the dest that is not overloaded with the
// highest weight above 0, the first on a tie.
func modelFO(k *kstate) int {
	best, hw := -1, 0
	for i := range k.w {
		if k.notOver(i) && k.w[i] > hw {
			best, hw = i, k.w[i]
		}
	}
	return best
}

func TestFOMatchesKernelModel(t *testing.T) { checkAgainstModel(t, "fo", modelFO) }

// Everything goes to the heaviest dest; when it fills up (upper threshold)
// the next heaviest takes over, and it comes back below its lower one.
func TestFOFailover(t *testing.T) {
	ds := mkDests(1, 5, 3, 5)
	ds[1].Upper, ds[1].Lower = 100, 50
	s := mustNew(t, "fo", ds, Options{})
	counts := make([]int, len(ds))
	for range 100_000 {
		d := s.Pick(nil)
		if d < 0 {
			t.Fatal("no dest")
		}
		counts[d]++
		if d == 1 {
			ds[1].C.Active.Add(1)
		}
	}
	// B takes 100, then D (weight 5, after B in list order) the rest
	if counts[0] != 0 || counts[1] != 100 || counts[2] != 0 || counts[3] != 99_900 {
		t.Fatalf("counts %v, want [0 100 0 99900]", counts)
	}
	ds[1].C.Active.Store(50) // not below the lower threshold
	if got := s.Pick(nil); got != 3 {
		t.Fatalf("B at its lower threshold: Pick = %d, want 3", got)
	}
	ds[1].C.Active.Store(49)
	if got := s.Pick(nil); got != 1 {
		t.Fatalf("B below its lower threshold: Pick = %d, want 1", got)
	}
	q := mkDests(0, 0)
	if got := mustNew(t, "fo", q, Options{}).Pick(nil); got != -1 {
		t.Fatalf("all quiescent: Pick = %d", got)
	}
}

func BenchmarkFOPick(b *testing.B) { benchPick(b, "fo", Options{}) }
