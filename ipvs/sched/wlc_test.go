package sched

import "testing"

func TestWLCPick(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		weights []int
		conns   [][2]int64 // active, inactive
		want    int
	}{
		{"all idle: first", []int{1, 2, 3}, [][2]int64{{0, 0}, {0, 0}, {0, 0}}, 0},
		{"per weight", []int{1, 2}, [][2]int64{{1, 0}, {1, 0}}, 1},             // 256/1 vs 256/2
		{"tie: first in list", []int{1, 3}, [][2]int64{{0, 100}, {0, 300}}, 0}, // 100·3 = 300·1
		{"tie: first in list, later pair", []int{1, 1, 3}, [][2]int64{{0, 200}, {0, 100}, {0, 300}}, 1},
		{"just below", []int{2, 1}, [][2]int64{{2, 0}, {0, 255}}, 1}, // 256/weight vs 255
		{"active weighs 256 inactive", []int{3, 1}, [][2]int64{{3, 0}, {0, 256}}, 0},
		{"heavier wins at equal load", []int{1, 4}, [][2]int64{{0, 10}, {0, 10}}, 1},
		{"quiescent skipped though idle", []int{0, 1}, [][2]int64{{0, 0}, {9, 9}}, 1},
		{"quiescent first, then a tie", []int{0, 2, 2}, [][2]int64{{0, 0}, {1, 0}, {1, 0}}, 1},
		{"none", []int{0}, [][2]int64{{0, 0}}, -1},
	} {
		ds := mkDests(tc.weights...)
		setConns(ds, tc.conns...)
		s := mustNew(t, "wlc", ds, Options{})
		if got := s.Pick(&Flow{}); got != tc.want {
			t.Errorf("%s: Pick = %d, want %d", tc.desc, got, tc.want)
		}
	}
}

func TestWLCOverloaded(t *testing.T) {
	ds := mkDests(10, 1)
	ds[0].Upper = 2
	s := mustNew(t, "wlc", ds, Options{})
	setConns(ds, [2]int64{1, 0}, [2]int64{5, 0})
	if got := s.Pick(nil); got != 0 {
		t.Fatalf("Pick = %d, want 0", got)
	}
	ds[0].C.Active.Store(2) // at the upper threshold
	if got := s.Pick(nil); got != 1 {
		t.Fatalf("dest 0 overloaded: Pick = %d, want 1", got)
	}
}

// Counting each pick as a new active connection shares them by weight.
func TestWLCSharesByWeight(t *testing.T) {
	ds := mkDests(1, 2, 3)
	s := mustNew(t, "wlc", ds, Options{})
	for range 600 {
		ds[s.Pick(nil)].C.Active.Add(1)
	}
	for i, want := range []int64{100, 200, 300} {
		if got := ds[i].C.Active.Load(); got != want {
			t.Errorf("dest %d (weight %d): %d connections after 600 picks, want %d", i, ds[i].Weight, got, want)
		}
	}
}

func BenchmarkWLCPick(b *testing.B) { benchPick(b, "wlc", Options{}) }
