package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/pktgen"
)

// TestWorkerLoad: the load is the workers' busy time over the cell's wall
// time and their number, read from the counters bench/run.sh keeps
// (dp_delta's line); a cell without them has none.
func TestWorkerLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sep-gvs2-cps-1.dp")
	if err := os.WriteFile(p, []byte("busy_ns=5000000000 wall_ns=5000000000 workers=2 loops=12 \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, ok := workerLoad(&cell{dp: readKV(p)}); !ok || v != 0.5 {
		t.Errorf("two workers busy 5 s in total over 5 s: load %v (%v), want 0.5", v, ok)
	}
	if v, ok := workerLoad(&cell{dp: readKV(p + ".absent")}); ok {
		t.Errorf("no counters: load %v", v)
	}
	if v, ok := workerLoad(&cell{dp: map[string]float64{"busy_ns": 1, "wall_ns": 0, "workers": 1}}); ok {
		t.Errorf("no wall time: load %v", v)
	}
}

// TestIssueBudgetLoad: the CPS target's verdict says when GVS's worker did
// not set the cell's rate (its load below 1), and says nothing of it when
// the worker was saturated.
func TestIssueBudgetLoad(t *testing.T) {
	for _, c := range []struct {
		load float64
		want bool
	}{{0.7, true}, {0.99, false}} {
		d := &data{cells: []*cell{
			{place: "sep", sys: "gvs1rt", test: "cps", rep: 1, res: &pktgen.Result{CPS: 64000},
				dp: map[string]float64{"busy_ns": c.load * 5e9, "wall_ns": 5e9, "workers": 1}},
			{place: "sep", sys: "nft", test: "cps", rep: 1, res: &pktgen.Result{CPS: 57000}},
		}}
		var b strings.Builder
		cps := map[string]stat{"gvs1rt": d.metric("gvs1rt", "cps", cps), "nft": d.metric("nft", "cps", cps)}
		d.issueBudget(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }, nil, cps, nil)
		got := strings.Contains(b.String(), fmt.Sprintf("the worker's load in the cell was %.2f", c.load))
		if got != c.want || !strings.Contains(b.String(), "CPS ≥ 2 × nftables (gvs-pktgen tcp) | 1.12 × | **not met**") {
			t.Errorf("load %.2f: the verdict names it %v, want %v:\n%s", c.load, got, c.want, b.String())
		}
	}
}
