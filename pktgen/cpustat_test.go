package pktgen

import (
	"math"
	"strings"
	"testing"
)

const statBefore = `cpu  300 0 300 1400 0 0 100 0 0 0
cpu0 100 0 200 600 0 0 100 0 0 0
cpu1 200 0 100 800 0 0 0 0 0 0
intr 12345
ctxt 678
`

// 1 000 ticks later on each CPU: CPU 0 spent 100 in user, 500 in system,
// 300 in softirq and 50 idle, 50 in iowait; CPU 1 spent all 1 000 idle.
const statAfter = `cpu  400 0 800 2500 50 0 400 0 0 0
cpu0 200 0 700 650 50 0 400 0 0 0
cpu1 200 0 100 1800 0 0 0 0 0 0
intr 23456
`

func TestCPUUseBetween(t *testing.T) {
	got := CPUUseBetween(strings.NewReader(statBefore), strings.NewReader(statAfter))
	want := []CPUUse{{CPU: 0, BusyPct: 90, SoftIRQPct: 30}, {CPU: 1, BusyPct: 0, SoftIRQPct: 0}}
	if len(got) != len(want) {
		t.Fatalf("got %d CPUs (%+v), want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("CPU %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if u := CPUUseBetween(strings.NewReader(statBefore), strings.NewReader("cpu0 1 2 3 4 5 6 7 8\n")); u != nil {
		t.Errorf("snapshots of different CPUs: got %+v, want nil", u)
	}
}

// FuzzCPUUseBetween: no pair of inputs crashes it, and every share it
// reports is a percentage.
func FuzzCPUUseBetween(f *testing.F) {
	f.Add(statBefore, statAfter)
	f.Add(statAfter, statBefore)
	f.Add("cpu0 18446744073709551615 1 1 1 1 1 1 1\n", "cpu0 0 0 0 0 0 0 0 0\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, u := range CPUUseBetween(strings.NewReader(a), strings.NewReader(b)) {
			for _, v := range []float64{u.BusyPct, u.SoftIRQPct} {
				if math.IsNaN(v) || v < 0 || v > 100 {
					t.Fatalf("share %v outside [0, 100] in %+v", v, u)
				}
			}
		}
	})
}
