package sched

import "testing"

// setConns sets each dest's (active, inactive) counters.
func setConns(ds []Dest, conns ...[2]int64) {
	for i, c := range conns {
		ds[i].C.Active.Store(c[0])
		ds[i].C.Inactive.Store(c[1])
	}
}

func TestLCPick(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		weights []int
		conns   [][2]int64 // active, inactive
		want    int
	}{
		{"all idle: first", []int{1, 1, 1}, [][2]int64{{0, 0}, {0, 0}, {0, 0}}, 0},
		{"least overhead", []int{1, 1, 1}, [][2]int64{{1, 0}, {0, 100}, {0, 300}}, 1}, // 256, 100, 300
		{"active weighs 256 inactive", []int{1, 1}, [][2]int64{{1, 0}, {0, 256}}, 0},  // 256 vs 256: tie → first
		{"255 inactive beat 1 active", []int{1, 1}, [][2]int64{{1, 0}, {0, 255}}, 1},
		{"tie: first in list", []int{1, 1, 1}, [][2]int64{{0, 6}, {0, 5}, {0, 5}}, 1},
		{"weights ignored", []int{10, 1}, [][2]int64{{0, 10}, {0, 5}}, 1},
		{"quiescent skipped", []int{1, 0, 1}, [][2]int64{{3, 0}, {0, 0}, {2, 0}}, 2},
		{"none", []int{0, 0}, [][2]int64{{0, 0}, {0, 0}}, -1},
	} {
		ds := mkDests(tc.weights...)
		setConns(ds, tc.conns...)
		s := mustNew(t, "lc", ds, Options{})
		if got := s.Pick(&Flow{}); got != tc.want {
			t.Errorf("%s: Pick = %d, want %d", tc.desc, got, tc.want)
		}
	}
}

func TestLCOverloaded(t *testing.T) {
	ds := mkDests(1, 1, 1)
	ds[0].Upper = 5
	ds[1].Upper = 5
	setConns(ds, [2]int64{0, 5}, [2]int64{0, 4}, [2]int64{1, 0})
	s := mustNew(t, "lc", ds, Options{})
	if got := s.Pick(nil); got != 1 { // A overloaded at 5; B 4 < C 256
		t.Fatalf("Pick = %d, want 1", got)
	}
	ds[1].C.Inactive.Store(5)
	if got := s.Pick(nil); got != 2 {
		t.Fatalf("A and B overloaded: Pick = %d, want 2", got)
	}
	ds[2].C.Active.Store(0)
	ds[2].C.Inactive.Store(0)
	ds[0].C.Inactive.Store(3)         // A: 3 < 3/4 of 5 → back
	if got := s.Pick(nil); got != 2 { // C has 0, A 3
		t.Fatalf("A back: Pick = %d, want 2", got)
	}
}

// Counting each pick as a new active connection spreads them evenly.
func TestLCSpreads(t *testing.T) {
	ds := mkDests(1, 5, 1)
	s := mustNew(t, "lc", ds, Options{})
	for range 300 {
		ds[s.Pick(nil)].C.Active.Add(1)
	}
	for i := range ds {
		if got := ds[i].C.Active.Load(); got != 100 {
			t.Fatalf("dest %d: %d connections after 300 picks, want 100", i, got)
		}
	}
	if got := s.Pick(nil); got != 0 {
		t.Fatalf("at 100 each: Pick = %d, want 0 (tie: first in list)", got)
	}
}

func BenchmarkLCPick(b *testing.B) { benchPick(b, "lc", Options{}) }
