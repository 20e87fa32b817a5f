package main

import (
	"os"
	"path/filepath"
	"testing"
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
