package main

import "testing"

func TestLoopHist(t *testing.T) {
	h := make([]uint64, 32)
	h[10], h[11], h[20], h[31] = 812, 20, 1, 2
	if got, want := loopHist(h), "1.024µs 812 2.048µs 20 1.048576ms 1 ∞ 2"; got != want {
		t.Errorf("loopHist = %q, want %q", got, want)
	}
	if got := loopHist(make([]uint64, 32)); got != "" {
		t.Errorf("no loops: %q, want nothing", got)
	}
}
