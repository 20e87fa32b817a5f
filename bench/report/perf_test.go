package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPerfSplit: perf report's three texts (self time by binary, by
// symbol, and each symbol with its callees) give the CPU time per
// forwarded packet split into the veth receive, the system's own binary
// and the rest of the kernel, idle time left out; without the call
// graphs there is no split.
func TestPerfSplit(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "sep-gvs1rt-udp-1")
	write := func(ext, text string) {
		t.Helper()
		if err := os.WriteFile(base+ext, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(".perf-dso.txt", `    75.00%  [kernel.kallsyms]
    20.00%  gvs-dataplane
     5.00%  [vdso]
`)
	write(".perf-sym.txt", `    30.00%  [kernel.kallsyms]  [k] page_frag_free
    10.00%  [kernel.kallsyms]  [k] pv_native_safe_halt
     8.00%  gvs-dataplane      [.] github.com/gvs-lb/gvs/dataplane.(*Worker).lbConn
`)
	if _, ok := perfSplitOf(base, "gvs-dataplane", 1e6); ok {
		t.Fatal("a split without call graphs")
	}
	write(".perf-children.txt", `    99.33%     0.36%  [.] github.com/gvs-lb/gvs/dataplane.(*Worker).iterate
    45.00%     1.93%  [k] veth_poll
    30.00%    30.00%  [k] page_frag_free
`)
	s, ok := perfSplitOf(base, "gvs-dataplane", 1e6) // 1 Mpps: 1000 ns of CPU per packet
	if !ok {
		t.Fatal("no split")
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-6 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("idle %", s.idle, 10)
	near("ns per packet", s.perPkt, 900)
	near("veth receive", s.rx, 450)
	near("own binary", s.own, 200)
	near("rest of the kernel", s.kernel, 200) // 75 - 10 idle - 45
	if _, ok := perfSplitOf(base, "gvs-dataplane", 0); ok {
		t.Fatal("a split without a rate")
	}
}

// FuzzParsePerf: any text gives rows with percentages between 0 and 100,
// and never a panic.
func FuzzParsePerf(f *testing.F) {
	f.Add("    75.00%  [kernel.kallsyms]\n")
	f.Add("    30.00%  [kernel.kallsyms]  [k] page_frag_free\n")
	f.Add("    45.00%     1.93%  [k] veth_poll\n")
	f.Add("NaN% x\n-1% y\n1e400% z\n")
	f.Fuzz(func(t *testing.T, text string) {
		for _, r := range parsePerf(strings.NewReader(text)) {
			if !(r.pct >= 0 && r.pct <= 100) {
				t.Fatalf("row %+v: percentage out of range", r)
			}
		}
	})
}
