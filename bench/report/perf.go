package main

// Where the system under test's CPU goes: bench/run.sh records its CPU
// with perf during the udp and over-5x cells (separate cores: only the
// system's kernel and user work runs there, plus the sink's receive copy
// when the system transmits to it); the report splits the samples into
// the kernel, the system's own binary and the rest, and lists the top
// symbols, so a gap between GVS and the zero-work forwarder can be told
// apart from the kernel's copy-mode path both pay.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// binaryOf is the executable whose samples count as a system's own code.
func binaryOf(sys string) string {
	switch {
	case strings.HasPrefix(sys, "gvs"):
		return "gvs-dataplane"
	case strings.HasPrefix(sys, "xsk"):
		return "xskfwd"
	case sys == "haproxy":
		return "haproxy"
	}
	return ""
}

// perfRow is one "NN.NN%  dso  [.] symbol" line.
type perfRow struct {
	pct      float64
	dso, sym string
}

func readPerf(path string) []perfRow {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	return parsePerf(f)
}

// parsePerf reads perf report's text: "NN.NN%  dso  [.] symbol" lines
// (--sort dso,sym; --sort dso has no symbol) and, with --children --sort
// sym, "NN.NN%  NN.NN%  [k] symbol" lines, where pct is the symbol with
// its callees and dso holds the second percentage. Other lines are
// skipped.
func parsePerf(r io.Reader) []perfRow {
	var rows []perfRow
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 || !strings.HasSuffix(fs[0], "%") {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(fs[0], "%"), 64)
		if err != nil || !(pct >= 0 && pct <= 100) { // NaN too
			continue
		}
		r := perfRow{pct: pct, dso: fs[1]}
		if len(fs) > 3 {
			r.sym = strings.Join(fs[3:], " ")
		}
		rows = append(rows, r)
	}
	return rows
}

// isIdle tells a kernel symbol where an idle CPU spends its samples.
func isIdle(sym string) bool {
	return strings.Contains(sym, "idle") || strings.Contains(sym, "safe_halt") || strings.Contains(sym, "mwait")
}

// perfSplit is one profiled cell's CPU time per forwarded packet, in ns,
// split by where it went (perfSplitOf).
type perfSplit struct {
	perPkt, rx, own, kernel float64
	idle                    float64 // % of the samples
}

// perfSplitOf splits the CPU time per forwarded packet (busy time ÷
// forwarded rate) of the cell at base: the veth receive this CPU ran
// (veth_poll with its callees, from the call graphs of PERF_GRAPH=1),
// the system's own binary, and the rest of the kernel. false without
// call graphs or a rate.
func perfSplitOf(base, bin string, pps float64) (perfSplit, bool) {
	children := readPerf(base + ".perf-children.txt")
	if len(children) == 0 || pps <= 0 {
		return perfSplit{}, false
	}
	var s perfSplit
	for _, r := range children {
		if r.sym == "veth_poll" {
			s.rx = r.pct
			break
		}
	}
	kernel, own, _ := dsoShares(readPerf(base+".perf-dso.txt"), bin)
	for _, r := range readPerf(base + ".perf-sym.txt") {
		if r.dso == "[kernel.kallsyms]" && isIdle(r.sym) {
			s.idle += r.pct
		}
	}
	busy := 100 - s.idle
	if busy <= 0 {
		return perfSplit{}, false
	}
	ns := func(pct float64) float64 { return pct / 100 / pps * 1e9 }
	s.perPkt, s.rx, s.own, s.kernel = ns(busy), ns(s.rx), ns(own), ns(max(kernel-s.idle-s.rx, 0))
	return s, true
}

// dsoShares adds up perf's shares by binary: the kernel's, the system's
// own binary's (bin; "" for none) and everything else.
func dsoShares(rows []perfRow, bin string) (kernel, own, other float64) {
	for _, r := range rows {
		switch {
		case r.dso == "[kernel.kallsyms]":
			kernel += r.pct
		case bin != "" && r.dso == bin:
			own += r.pct
		default:
			other += r.pct
		}
	}
	return kernel, own, other
}

// perfBase is the path of cell c's raw files without their extension.
func (d *data) perfBase(c *cell) string {
	return filepath.Join(d.dir, "raw", fmt.Sprintf("%s-%s-%s-%d", c.place, c.sys, c.test, c.rep))
}

// perfSection writes a table per profiled cell of the separate-core
// placement.
func (d *data) perfSection(w func(string, ...any)) {
	var out []string
	for _, c := range d.cells {
		if c.place != "sep" || (c.test != "udp" && c.test != "over-5x" && c.test != "synp-udp" && c.test != "synp-flood") {
			continue
		}
		base := d.perfBase(c)
		dsos := readPerf(base + ".perf-dso.txt")
		if len(dsos) == 0 {
			continue
		}
		kernel, own, other := dsoShares(dsos, binaryOf(c.sys))
		var top []string
		for _, r := range readPerf(base + ".perf-sym.txt") {
			if len(top) == 6 {
				break
			}
			dso := r.dso
			if dso == "[kernel.kallsyms]" {
				dso = "k"
			}
			top = append(top, fmt.Sprintf("%s %.0f%% (%s)", r.sym, r.pct, dso))
		}
		fwd := "–"
		switch {
		case c.res != nil && c.test == "synp-flood":
			fwd = fmt.Sprintf("%.3f SYN-ACKs", c.res.SynAckPPS/1e6)
		case c.res != nil:
			fwd = fmt.Sprintf("%.3f", c.res.ArrivedPPS/1e6)
		}
		out = append(out, fmt.Sprintf("| %s | %s | %d | %s | %.0f%% | %.0f%% | %.0f%% | %s |", label(c.sys), c.test, c.rep, fwd,
			kernel, own, other, strings.Join(top, "; ")))
	}
	if len(out) == 0 {
		return
	}
	w("## Where the system's CPU goes (perf, separate cores)\n\n")
	w("`perf record -C <system CPU> -F 999` over each cell's measurement window (`raw/*.perf.cmd`), split by where the samples fall: the kernel ")
	w("(copy-mode AF_XDP receive and transmit, skb work, the veth, and the sink's receive copy when the system transmits to it), the system's own binary, the rest. ")
	w("Top symbols: k = kernel. The system's own share is what GVS's code costs beside the zero-work forwarder's; the kernel share is the I/O path both pay.\n\n")
	w("| system | cell | rep | forwarded Mpps | kernel | own binary | other | top symbols |\n|---|---|---|---|---|---|---|---|\n%s\n\n", strings.Join(out, "\n"))
	d.perfSplitSection(w)
}

// perfSplitSection writes, for the cells profiled with call graphs, the
// CPU time per forwarded packet split into the veth receive run on the
// system's CPU, its own code and the rest of the kernel, and the
// difference between GVS and the tuned zero-work forwarder in each part.
func (d *data) perfSplitSection(w func(string, ...any)) {
	type key struct{ sys, test string }
	parts := map[key][][4]float64{}
	var rows []string
	for _, c := range d.cells {
		if c.place != "sep" || c.res == nil || (c.test != "udp" && c.test != "over-5x") {
			continue
		}
		s, ok := perfSplitOf(d.perfBase(c), binaryOf(c.sys), c.res.ArrivedPPS)
		if !ok {
			continue
		}
		k := key{c.sys, c.test}
		parts[k] = append(parts[k], [4]float64{s.perPkt, s.rx, s.own, s.kernel})
		rows = append(rows, fmt.Sprintf("| %s | %s | %d | %.3f | %.0f%% | %.0f | %.0f | %.0f | %.0f |", label(c.sys), c.test, c.rep,
			c.res.ArrivedPPS/1e6, 100-s.idle, s.perPkt, s.rx, s.own, s.kernel))
	}
	if len(rows) == 0 {
		return
	}
	w("### CPU time per forwarded packet (call graphs, PERF_GRAPH=1)\n\n")
	w("The system's busy CPU time divided by the forwarded rate, in ns, split into: the veth receive run on the system's CPU (`veth_poll` with ")
	w("everything it calls: the sink's receive, XDP program, copy into the sink's UMEM and its wake-up, which the system's own transmit raises there; ")
	w("with SUT_RX=own also the system's own receive), the system's own binary, and the rest of the kernel (its AF_XDP receive and transmit, skb work).\n\n")
	w("| system | cell | rep | forwarded Mpps | CPU busy | ns per packet | veth receive | own binary | rest of the kernel |\n|---|---|---|---|---|---|---|---|---|\n%s\n\n", strings.Join(rows, "\n"))
	for _, test := range []string{"udp", "over-5x"} {
		g, x := parts[key{"gvs1rt", test}], parts[key{"xsk1", test}]
		if len(g) == 0 || len(x) == 0 {
			continue
		}
		med := func(v [][4]float64, i int) float64 {
			var s []float64
			for _, p := range v {
				s = append(s, p[i])
			}
			return summarize(s).med
		}
		w("GVS 1 worker against the tuned zero-work forwarder, %s cell, medians: %.0f ns more per packet, of which the veth receive %+.0f, GVS's own code %+.0f, the rest of the kernel %+.0f.\n\n",
			test, med(g, 0)-med(x, 0), med(g, 1)-med(x, 1), med(g, 2)-med(x, 2), med(g, 3)-med(x, 3))
	}
}
