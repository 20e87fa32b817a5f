package sched

import "testing"

func TestRRSequence(t *testing.T) {
	for _, tc := range []struct {
		weights []int
		want    string
	}{
		{[]int{1, 1, 1}, "ABCABCABC"},
		{[]int{4, 3, 2}, "ABCABCABC"}, // rr ignores weights but 0
		{[]int{1, 0, 1}, "ACACACACA"}, // quiescent skipped
		{[]int{0, 0, 5}, "CCCCCCCCC"},
		{[]int{7}, "AAAAAAAAA"},
	} {
		s := mustNew(t, "rr", mkDests(tc.weights...), Options{})
		if got := seq(s, len(tc.want)); got != tc.want {
			t.Errorf("weights %v: sequence %s, want %s", tc.weights, got, tc.want)
		}
	}
}

func TestRROverloaded(t *testing.T) {
	// The scheduler holds a copy of ds that shares its counters; thresholds
	// are part of the (immutable) Dest, so they are set before New.
	ds := mkDests(1, 1, 1, 1)
	ds[1].Upper = 1
	s := mustNew(t, "rr", ds, Options{})
	if got := seq(s, 4); got != "ABCD" {
		t.Fatalf("none overloaded: %s, want ABCD", got)
	}
	ds[1].C.Active.Store(1) // B reaches its upper threshold
	if got := seq(s, 6); got != "ACDACD" {
		t.Fatalf("B overloaded: %s, want ACDACD", got)
	}
	ds[1].C.Active.Store(0) // B drops below 3/4 of upper
	if got := seq(s, 7); got != "ABCDABC" {
		t.Fatalf("B back: %s, want ABCDABC (the cycle goes on after D)", got)
	}
}

func TestRRNoneAvailable(t *testing.T) {
	ds := mkDests(1, 1, 1)
	for i := range ds {
		ds[i].Upper = 1
	}
	s := mustNew(t, "rr", ds, Options{})
	if got := seq(s, 2); got != "AB" {
		t.Fatalf("got %s, want AB", got)
	}
	for i := range ds {
		ds[i].C.Active.Store(1)
	}
	if got := seq(s, 3); got != "---" {
		t.Fatalf("all overloaded: %s, want ---", got)
	}
	relieve(&ds[0])
	if got := seq(s, 2); got != "AA" {
		t.Fatalf("only A back: %s, want AA", got)
	}
	relieve(&ds[2])
	if got := seq(s, 3); got != "CAC" {
		t.Fatalf("A and C: %s, want CAC", got)
	}
}

func BenchmarkRRPick(b *testing.B) { benchPick(b, "rr", Options{}) }
