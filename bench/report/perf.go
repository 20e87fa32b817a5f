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
	var rows []perfRow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 || !strings.HasSuffix(fs[0], "%") {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(fs[0], "%"), 64)
		if err != nil {
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

// perfSection writes a table per profiled cell of the separate-core
// placement.
func (d *data) perfSection(w func(string, ...any)) {
	var out []string
	for _, c := range d.cells {
		if c.place != "sep" || (c.test != "udp" && c.test != "over-5x" && c.test != "synp-udp" && c.test != "synp-flood") {
			continue
		}
		base := filepath.Join(d.dir, "raw", fmt.Sprintf("%s-%s-%s-%d", c.place, c.sys, c.test, c.rep))
		dsos := readPerf(base + ".perf-dso.txt")
		if len(dsos) == 0 {
			continue
		}
		var kernel, own, other float64
		for _, r := range dsos {
			switch {
			case r.dso == "[kernel.kallsyms]":
				kernel += r.pct
			case binaryOf(c.sys) != "" && r.dso == binaryOf(c.sys):
				own += r.pct
			default:
				other += r.pct
			}
		}
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
}
