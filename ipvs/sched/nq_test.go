package sched

import "testing"

// modelNQ is ip_vs_nq_schedule step by step: skip dests that are overloaded
// or have no weight; the first one without active connections wins at once;
// otherwise the lowest (Active+1)/weight, the first on a tie.
func modelNQ(k *kstate) int {
	least := -1
	var loh int64
	for i := range k.w {
		if !k.notOver(i) || k.w[i] == 0 {
			continue
		}
		doh := k.act[i] + 1
		if k.act[i] == 0 {
			return i
		}
		if least < 0 || loh*int64(k.w[i]) > doh*int64(k.w[least]) {
			least, loh = i, doh
		}
	}
	return least
}

func TestNQMatchesKernelModel(t *testing.T) { checkAgainstModel(t, "nq", modelNQ) }

func TestNQPick(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		weights []int
		conns   [][2]int64
		want    int
	}{
		{"idle wins over weight", []int{1, 100}, [][2]int64{{0, 0}, {0, 0}}, 0}, // sed would pick 1
		{"first idle", []int{5, 1, 1}, [][2]int64{{1, 0}, {0, 9}, {0, 0}}, 1},
		{"all busy: sed", []int{1, 3}, [][2]int64{{1, 0}, {4, 0}}, 1}, // 2/1 > 5/3
		{"quiescent idle skipped", []int{0, 1}, [][2]int64{{0, 0}, {5, 0}}, 1},
	} {
		ds := mkDests(tc.weights...)
		setConns(ds, tc.conns...)
		if got := mustNew(t, "nq", ds, Options{}).Pick(nil); got != tc.want {
			t.Errorf("%s: Pick = %d, want %d", tc.desc, got, tc.want)
		}
	}
}

func TestNQDistribution(t *testing.T) { checkLoadShares(t, "nq", []int{1, 2, 3, 4}) }

func BenchmarkNQPick(b *testing.B) { benchPick(b, "nq", Options{}) }
