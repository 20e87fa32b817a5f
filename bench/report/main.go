// Command report turns a bench/run.sh result directory into report.md and
// chart.png: medians with min/max over the repetitions of every cell, the
// ratios to the kernel-side limit (XDP redirect), the userspace limit (the
// zero-work AF_XDP forwarder with as many queues as GVS has workers) and
// nftables, the overload curves and the one-core placement (over.go), the
// connection rates of real Linux TCP (wrk → nginx), the DESIGN.md and
// issue budgets next to what was measured, the micro benchmarks, and the
// exact command of every cell. The tables of the first sections are the
// separate-core placement's ("sep").
//
//	report --dir bench/results/2026-01-01-120000 --reps 3
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gvs-lb/gvs/pktgen"
)

func main() {
	dir := flag.String("dir", "", "result directory of bench/run.sh")
	reps := flag.Int("reps", 3, "repetitions per cell (for the text)")
	elapsed := flag.Int("elapsed", 0, "seconds the run took")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "report: give --dir")
		os.Exit(2)
	}
	d, err := load(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	d.reps, d.elapsed = *reps, *elapsed
	if err := d.write(); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// systems in report order, with their labels
var systems = []struct{ id, label string }{
	{"xdp", "XDP redirect, zero work (kernel-side limit)"},
	{"xsk1", "AF_XDP zero-work forwarder, 1 queue (userspace limit; one UMEM shared by both ports)"},
	{"xsk1pp", "AF_XDP zero-work forwarder, 1 queue, a UMEM per port (frames copied between the ports)"},
	{"xsk1w", "AF_XDP forwarder, 1 queue, spinning XSK_WORK_NS (default 130) ns per packet: a forwarder whose own code costs that much more (see its setup)"},
	{"xsk2", "AF_XDP zero-work forwarder, 2 queues"},
	{"gvs1", "GVS FullNAT, 1 worker, normal scheduling (rt_priority 0)"},
	{"gvs1rt", "GVS FullNAT, 1 worker, rt_priority 50 (the default with adaptive idle)"},
	{"gvs1rtpp", "GVS FullNAT, 1 worker, rt_priority 50, workers.umem per-port (frames copied between the ports)"},
	{"gvs1rtref", "GVS FullNAT, 1 worker, rt_priority 50, another build (GVS_REF_BIN: the reference for before/after)"},
	{"gvs2", "GVS FullNAT, 2 workers"},
	{"gvsdpdk1", "GVS FullNAT, 1 worker, dpdk driver on net_af_packet vdevs (rt_priority 0)"},
	{"gvsdpdkxdp1", "GVS FullNAT, 1 worker, dpdk driver on net_af_xdp vdevs (rt_priority 0)"},
	{"gvsafp1", "GVS FullNAT, 1 worker, afpacket driver (rt_priority 0)"},
	{"gvs1xdp", "GVS FullNAT, 1 worker, XDP fast path on (ipvs.xdp_offload, rt_priority 0)"},
	{"gvs2xdp", "GVS FullNAT, 2 workers, XDP fast path on, generated from every CPU as for the XDP redirect"},
	{"nft", "nftables DNAT + conntrack"},
	{"haproxy", "haproxy 2.6, mode tcp"},
}

func label(id string) string {
	for _, s := range systems {
		if s.id == id {
			return s.label
		}
	}
	return id
}

type cell struct {
	place     string // sep, one, free
	sys, test string
	rep       int
	cmd       string
	res       *pktgen.Result
	wrk       *wrkResult
	iperf     *iperfResult
	cpu       []pktgen.CPUUse // wrk cells: from the /proc/stat snapshots around the cell
	mem       map[string]float64
	dp        map[string]float64 // GVS cells: what its counters moved by (raw/….dp)
	failed    bool
}

type data struct {
	dir     string
	cells   []*cell
	env     []string
	micro   []string
	reps    int
	elapsed int
}

func load(dir string) (*data, error) {
	d := &data{dir: dir}
	f, err := os.Open(filepath.Join(dir, "cells.tsv"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		p := strings.SplitN(sc.Text(), "\t", 5)
		var c *cell
		var base string
		switch len(p) {
		case 5: // place, system, test, rep, command
			rep, _ := strconv.Atoi(p[3])
			c = &cell{place: p[0], sys: p[1], test: p[2], rep: rep, cmd: p[4]}
			base = filepath.Join(dir, "raw", fmt.Sprintf("%s-%s-%s-%d", c.place, c.sys, c.test, c.rep))
		case 4: // results from before placements: all separate-core
			rep, _ := strconv.Atoi(p[2])
			c = &cell{place: "sep", sys: p[0], test: p[1], rep: rep, cmd: strings.Join(p[3:], "\t")}
			base = filepath.Join(dir, "raw", fmt.Sprintf("%s-%s-%d", c.sys, c.test, c.rep))
		default:
			continue
		}
		if b, err := os.ReadFile(base + ".json"); err == nil {
			var r pktgen.Result
			if json.Unmarshal(b, &r) == nil {
				c.res = &r
			}
		}
		if c.test == "wrk" {
			c.wrk = readWrk(base + ".wrk")
			c.cpu = readCPUUse(base+".stat0", base+".stat1")
		}
		if c.test == "tcp" {
			c.iperf = readIperf(base + ".iperf")
		}
		c.failed = c.res == nil && c.wrk == nil && c.iperf == nil
		c.mem = readKV(base + ".mem")
		c.dp = readKV(base + ".dp")
		d.cells = append(d.cells, c)
	}
	d.env = readLines(filepath.Join(dir, "env.txt"))
	d.micro = readLines(filepath.Join(dir, "micro.txt"))
	return d, sc.Err()
}

func readLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// readKV reads "key=value" pairs separated by spaces.
func readKV(path string) map[string]float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	m := map[string]float64{}
	for _, f := range strings.Fields(string(b)) {
		k, v, ok := strings.Cut(f, "=")
		if n, err := strconv.ParseFloat(v, 64); ok && err == nil {
			m[k] = n
		}
	}
	return m
}

// stat is a median with its min and max over repetitions.
type stat struct {
	med, min, max float64
	n             int
}

func (s stat) ok() bool { return s.n > 0 }

func summarize(v []float64) stat {
	if len(v) == 0 {
		return stat{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{med: med, min: s[0], max: s[len(s)-1], n: len(s)}
}

// metric extracts a number from each successful cell of (sys, test) in
// the separate-core placement.
func (d *data) metric(sys, test string, f func(*cell) (float64, bool)) stat {
	return d.metricAt("sep", sys, test, f)
}

// metricAt is metric in placement place.
func (d *data) metricAt(place, sys, test string, f func(*cell) (float64, bool)) stat {
	var v []float64
	for _, c := range d.cells {
		if c.place != place || c.sys != sys || c.test != test || c.failed {
			continue
		}
		if x, ok := f(c); ok {
			v = append(v, x)
		}
	}
	return summarize(v)
}

func pps(c *cell) (float64, bool) { return c.res.ArrivedPPS, c.res != nil }

// workerLoad is the share of a GVS cell its workers spent in loop
// iterations with packets (dpip worker show's busy time over the cell's
// wall time, per worker): 1 is saturated. A polling worker's CPU is busy
// whatever its load, so the CPU's utilisation cannot tell this.
func workerLoad(c *cell) (float64, bool) {
	b, wall, n := c.dp["busy_ns"], c.dp["wall_ns"], c.dp["workers"]
	if wall <= 0 || n <= 0 {
		return 0, false
	}
	return b / (wall * n), true
}

// cpuBusy is how busy CPU n was in a gvs-pktgen cell's measurement window,
// in percent.
func cpuBusy(n int) func(*cell) (float64, bool) {
	return func(c *cell) (float64, bool) {
		if c.res == nil || n >= len(c.res.CPU) {
			return 0, false
		}
		return c.res.CPU[n].BusyPct, true
	}
}
func cps(c *cell) (float64, bool) { return c.res.CPS, c.res != nil }

// keptUp is the fraction of the offered packets that arrived.
// loss is the share of the offered packets that did not arrive, in
// percent (the input-queue drops of the system under test included).
func loss(c *cell) (float64, bool) {
	if c.res.OfferedPPS <= 0 {
		return 0, false
	}
	return 100 * max(0, 1-c.res.ArrivedPPS/c.res.OfferedPPS), true
}

func keptUp(c *cell) (float64, bool) {
	return c.res.ArrivedPPS / c.res.OfferedPPS, c.res.OfferedPPS > 0
}
func held(c *cell) (float64, bool)    { return float64(c.res.Held), true }
func offered(c *cell) (float64, bool) { return c.res.OfferedPPS, c.res.OfferedPPS > 0 }
func p50(c *cell) (float64, bool)     { return c.res.OneWay.P50Us, c.res.OneWay.Samples > 0 }
func p99(c *cell) (float64, bool)     { return c.res.OneWay.P99Us, c.res.OneWay.Samples > 0 }
func connP99(c *cell) (float64, bool) {
	return c.res.ConnLatency.P99Us / 1000, c.res.ConnLatency.Samples > 0
}
func failedConns(c *cell) (float64, bool) {
	k := c.res.Client
	return float64(k["conn_timeout"] + k["conn_refused"] + k["conn_reset"]), true
}

// bytesPerConn is the memory a system held per concurrent connection.
func bytesPerConn(c *cell) (float64, bool) {
	if c.res.Held == 0 || c.mem == nil {
		return 0, false
	}
	if a, ok := c.mem["rss_kb_after"]; ok {
		return (a - c.mem["rss_kb_before"]) * 1024 / float64(c.res.Held), true
	}
	if n, ok := c.mem["conntrack"]; ok && n > 0 {
		return c.mem["objsize"], true
	}
	return 0, false
}

func fmtRate(s stat, unit float64, prec int) string {
	if !s.ok() {
		return "–"
	}
	f := "%." + strconv.Itoa(prec) + "f"
	if s.n == 1 {
		return fmt.Sprintf(f, s.med/unit)
	}
	return fmt.Sprintf(f+" ["+f+"–"+f+"]", s.med/unit, s.min/unit, s.max/unit)
}

func ratio(a, b stat) string {
	if !a.ok() || !b.ok() || b.med == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a.med/b.med)
}

// userspaceLimit is the zero-work forwarder matching a system's queues.
func userspaceLimit(sys string) string {
	if sys == "gvs2" || sys == "xsk2" {
		return "xsk2"
	}
	return "xsk1"
}

func (d *data) write() error {
	var b strings.Builder
	w := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	date := filepath.Base(d.dir)
	w("# GVS benchmark report — %s\n\n", date)
	w("Produced by `bench/run.sh` (`make bench`) in one run")
	if d.elapsed > 0 {
		w(" of %d min %d s", d.elapsed/60, d.elapsed%60)
	}
	w(". Every number below is the **median of %d repetitions with [min–max]**, measured by `gvs-pktgen` "+
		"(UDP generated with XDP live frames, TCP over AF_XDP, the sink over AF_XDP: the same generator and sink for every system) "+
		"and by `wrk` → nginx, in the namespaces gvsb-gen → gvsb-lb → gvsb-rs; "+
		"the command of every cell is listed at the end. Absolute numbers move 10–40%% between runs on this shared "+
		"2-core VM, and other work on the machine shares its CPUs: compare systems through the ratios, which come from the same run.\n\n", d.reps)
	w("## Machine and versions\n\n")
	for _, l := range d.env {
		w("- %s\n", l)
	}
	w("\n")

	udp := map[string]stat{}
	for _, s := range systems {
		udp[s.id] = d.metric(s.id, "udp", pps)
	}
	w("## Packets per second: 64-byte UDP, 16384 flows (separate cores)\n\n")
	w("Forwarded rate = what reached the sink port (counted, plus the few lost in the sink's own receive ring). ")
	w("The generator offers as much as it can; \"offered ×\" is how many times the forwarded rate it offered (a generator that offers little more than a system takes hides collapse under overload).\n\n")
	w("| system | Mpps | × kernel-side limit | × userspace limit | × nftables | offered Mpps | offered × | lost %% of offered | latency p50 / p99 µs |\n|---|---|---|---|---|---|---|---|---|\n")
	bound := false
	for _, s := range systems {
		u := udp[s.id]
		if !u.ok() {
			continue
		}
		mark := ""
		if kept := d.metric(s.id, "udp", keptUp); kept.ok() && kept.med >= 0.99 {
			// it forwarded everything offered: the generator was the limit
			mark, bound = "≥ ", true
		}
		off := d.metric(s.id, "udp", offered)
		w("| %s | %s%s | %s | %s | %s | %s | %s | %s | %s / %s |\n", s.label, mark, fmtRate(u, 1e6, 3), ratio(u, udp["xdp"]),
			ratio(u, udp[userspaceLimit(s.id)]), ratio(u, udp["nft"]), fmtRate(off, 1e6, 3), ratio(off, u),
			fmtRate(d.metric(s.id, "udp", loss), 1, 2), fmtRate(d.metric(s.id, "udp", p50), 1, 0), fmtRate(d.metric(s.id, "udp", p99), 1, 0))
	}
	if bound {
		w("\n≥: the system forwarded (nearly) everything the generator offered, so the figure is the generator's limit and a lower bound of the system's.\n")
	}
	w("Latency is one-way from the generator's send time to the sink, under this overload (queues full): it shows where packets wait, not the idle path.\n\n")

	syn := map[string]stat{}
	for _, s := range systems {
		syn[s.id] = d.metric(s.id, "syn", pps)
	}
	if len(nonEmpty(syn)) > 0 {
		w("## SYN flood: SYNs per second from random sources reaching the real servers\n\n")
		w("| system | Mpps | × nftables | × same system's UDP rate |\n|---|---|---|---|\n")
		for _, s := range systems {
			if v := syn[s.id]; v.ok() {
				w("| %s | %s | %s | %s |\n", s.label, fmtRate(v, 1e6, 3), ratio(v, syn["nft"]), ratio(v, udp[s.id]))
			}
		}
		w("\n")
	}

	d.synproxySection(w)

	cp := map[string]stat{}
	for _, s := range systems {
		cp[s.id] = d.metric(s.id, "cps", cps)
	}
	if len(nonEmpty(cp)) > 0 {
		w("## TCP connections per second\n\n")
		w("`gvs-pktgen tcp` plays both the clients and the real servers: per connection SYN, SYN-ACK, ACK, a 64-byte request, ")
		w("a 128-byte response, FIN, FIN, ACK (8 packets through the balancer), at most `--concurrency` connections in flight. ")
		w("The XDP row forwards frames without NAT: it is the generator's own ceiling. ")
		w("CPU 0 runs the generator (clients and servers), CPU 1 the system (separate placement); a GVS worker's load is its time in loop ")
		w("iterations with packets over the cell (`dpip worker show`'s busy time): its polling keeps CPU 1 busy whatever its load. ")
		w("Below 1 the worker was not what limited the rate.\n\n")
		w("| system | connections/s | × nftables | × haproxy | failed | p99 connection time ms | CPU 0 / CPU 1 busy %% | GVS worker load |\n|---|---|---|---|---|---|---|---|\n")
		for _, s := range systems {
			if v := cp[s.id]; v.ok() {
				w("| %s | %s | %s | %s | %s | %s | %s / %s | %s |\n", s.label, fmtRate(v, 1, 0), ratio(v, cp["nft"]), ratio(v, cp["haproxy"]),
					fmtRate(d.metric(s.id, "cps", failedConns), 1, 0), fmtRate(d.metric(s.id, "cps", connP99), 1, 1),
					fmtRate(d.metric(s.id, "cps", cpuBusy(0)), 1, 0), fmtRate(d.metric(s.id, "cps", cpuBusy(1)), 1, 0),
					fmtRate(d.metric(s.id, "cps", workerLoad), 1, 2))
			}
		}
		w("\n")
	}

	cc := map[string]stat{}
	for _, s := range systems {
		cc[s.id] = d.metric(s.id, "conc", held)
	}
	if len(nonEmpty(cc)) > 0 {
		w("## Concurrent connections\n\n")
		w("Connections opened as fast as the system takes them (at most `--concurrency` in flight) and held established after their response; ")
		w("the run ends when all are held. Memory per connection: GVS's resident set growth divided by the connections held; ")
		w("nftables: the size of a conntrack slab object (the hash table comes on top). `nf_conntrack_max` is a global sysctl the bench does not change.\n\n")
		w("| system | held | opened per s | failed | bytes per connection |\n|---|---|---|---|---|\n")
		for _, s := range systems {
			if v := cc[s.id]; v.ok() {
				w("| %s | %s | %s | %s | %s |\n", s.label, fmtRate(v, 1, 0), fmtRate(d.metric(s.id, "conc", cps), 1, 0),
					fmtRate(d.metric(s.id, "conc", failedConns), 1, 0), fmtRate(d.metric(s.id, "conc", bytesPerConn), 1, 0))
			}
		}
		w("\n")
	}

	d.overload(w)
	d.placements(w)
	d.drivers(w)
	d.wrkSection(w, cp)
	d.tcpSection(w)
	d.perfSection(w)
	d.budget(w, udp, cp, syn)
	d.issueBudget(w, udp, cp, syn)
	w("## Chart\n\n![packets and connections per second per system, overload curves](chart.png)\n\n")
	if err := d.chart(udp, syn, cp); err != nil {
		w("(chart not drawn: %v)\n\n", err)
	}

	if len(d.micro) > 0 {
		w("## Micro benchmarks (`go test -run '^$' -bench . -benchmem ./dataplane/`, the pipeline on the mem driver)\n\n```\n")
		for _, l := range d.micro {
			if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "cpu:") {
				w("%s\n", l)
			}
		}
		w("```\n\n")
	}

	w("## Commands\n\nSystem set-up (from `bench/systems.sh`; configuration files are in this directory):\n\n")
	for _, pl := range placements {
		for _, s := range systems {
			name := "setup-" + pl.id + "-" + s.id + ".txt"
			if pl.id == "sep" {
				if _, err := os.Stat(filepath.Join(d.dir, name)); err != nil {
					name = "setup-" + s.id + ".txt" // results from before placements
				}
			}
			if l := readLines(filepath.Join(d.dir, name)); len(l) > 0 && l[0] != "" {
				w("**%s** (%s)\n\n```\n%s\n```\n\n", s.label, pl.label, strings.Join(l, "\n"))
			}
		}
	}
	w("Cells (`gvs-pktgen` is built from `cmd/gvs-pktgen`; raw output and JSON in `raw/`, not committed):\n\n")
	w("| placement | system | test | rep | result | command |\n|---|---|---|---|---|---|\n")
	for _, c := range d.cells {
		r := "failed"
		if !c.failed {
			switch {
			case c.wrk != nil:
				r = fmt.Sprintf("%.0f conn/s, %d socket errors", c.wrk.rps, c.wrk.errors)
			case c.test == "over-cap" && c.res.Search != nil:
				r = fmt.Sprintf("capacity %.3f Mpps (overload %.3f of %.3f offered)", c.res.Search.ThroughputPPS/1e6,
					c.res.Search.OverloadPPS/1e6, c.res.Search.GeneratorPPS/1e6)
			case c.test == "synp-flood" || c.test == "synp-mixed":
				r = synpCellResult(c.res)
			case c.test == "udp" || c.test == "syn" || strings.HasPrefix(c.test, "over-") || strings.HasPrefix(c.test, "synp-"):
				r = fmt.Sprintf("%.3f Mpps of %.3f offered", c.res.ArrivedPPS/1e6, c.res.OfferedPPS/1e6)
			case c.test == "cps":
				r = fmt.Sprintf("%.0f conn/s", c.res.CPS)
			case c.test == "conc":
				r = fmt.Sprintf("%d held", c.res.Held)
			}
		}
		w("| %s | %s | %s | %d | %s | `%s` |\n", c.place, c.sys, c.test, c.rep, r, strings.ReplaceAll(c.cmd, "|", "\\|"))
	}
	return os.WriteFile(filepath.Join(d.dir, "report.md"), []byte(b.String()), 0o644)
}

func nonEmpty(m map[string]stat) []string {
	var out []string
	for k, v := range m {
		if v.ok() {
			out = append(out, k)
		}
	}
	return out
}

// budget compares the measured ratios with DESIGN.md's performance budget.
func (d *data) budget(w func(string, ...any), udp, cps, syn map[string]stat) {
	w("## DESIGN.md budget\n\n| budget | measured here | verdict |\n|---|---|---|\n")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	if g, x := udp["gvs1"], udp["xsk1"]; g.ok() && x.ok() {
		r := g.med / x.med
		w("| afxdp, 1 worker: ≥ 0.9 × the zero-work AF_XDP forwarder | %.2f × (%.3f vs %.3f Mpps) | %s |\n", r, g.med/1e6, x.med/1e6, verdict(r >= 0.9))
	}
	if g, x := udp["gvs2"], udp["xsk2"]; g.ok() && x.ok() {
		r := g.med / x.med
		w("| 2 workers: near-linear until the ports saturate (GVS 2 workers vs the 2-queue forwarder) | %.2f × | %s |\n", r, verdict(r >= 0.9))
	}
	if g1, g2 := udp["gvs1"], udp["gvs2"]; g1.ok() && g2.ok() {
		w("| scaling 1 → 2 workers (2 cores shared with the generator) | %.2f × | – |\n", g2.med/g1.med)
	}
	if g, n := udp["gvs1"], udp["nft"]; g.ok() && n.ok() {
		r := g.med / n.med
		w("| (not in the budget) UDP: GVS 1 worker vs nftables on one CPU | %.2f × | %s |\n", r, map[bool]string{true: "ahead", false: "**behind**"}[r >= 1])
	}
	if g, n := cps["gvs1"], cps["nft"]; g.ok() && n.ok() {
		r := g.med / n.med
		w("| (not in the budget) TCP CPS: GVS 1 worker vs nftables | %.2f × | %s |\n", r, map[bool]string{true: "ahead", false: "**behind**"}[r >= 1])
	}
	for _, l := range d.micro {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		name := strings.SplitN(f[0], "-", 2)[0]
		ns, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			continue
		}
		switch name {
		case "BenchmarkFullNATEstablishedIn", "BenchmarkFullNATEstablishedOut":
			w("| pipeline, established FullNAT ≤ 100 ns/packet (%s) | %.0f ns | %s |\n", strings.TrimPrefix(name, "Benchmark"), ns, verdict(ns <= 100))
		case "BenchmarkFullNATNewConn":
			w("| pipeline, first packet of a connection ≤ 400 ns | %.0f ns | %s |\n", ns, verdict(ns <= 400))
		}
		if strings.HasPrefix(name, "BenchmarkFullNAT") {
			for i, x := range f {
				if x == "allocs/op" && i > 0 && f[i-1] != "0" {
					w("| zero allocations per packet (%s) | %s allocs/op | **not met** |\n", name, f[i-1])
				}
			}
		}
	}
	w("\n")
}
