package main

// The sections of the report that do not flatter: overload curves per
// placement (a system's capacity, then what it forwards when offered 1×,
// 2× and 5× that capacity), the one-core placement beside the separate
// one, connection rates of real Linux TCP (wrk → nginx) pinned and
// unpinned, and the targets of the performance issue with what was
// measured against them.

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/gvs-lb/gvs/pktgen"
)

// placements in report order.
var placements = []struct{ id, label string }{
	{"sep", "separate cores"},
	{"one", "one core"},
	{"free", "unpinned"},
}

// overFactors are the offered multiples of capacity bench/run.sh uses.
var overFactors = []int{1, 2, 5}

// wrkResult is what wrk printed.
type wrkResult struct {
	rps    float64
	errors int // socket errors: connect, read, write, timeout
	non2xx int
}

// readWrk parses wrk's output; nil if it has no request rate.
func readWrk(path string) *wrkResult {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var r wrkResult
	ok := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "Requests/sec:"):
			r.rps, err = strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(l, "Requests/sec:")), 64)
			ok = err == nil
		case strings.HasPrefix(l, "Socket errors:"):
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for _, part := range strings.Split(strings.TrimPrefix(l, "Socket errors:"), ",") {
				if f := strings.Fields(part); len(f) == 2 {
					n, _ := strconv.Atoi(f[1])
					r.errors += n
				}
			}
		case strings.HasPrefix(l, "Non-2xx or 3xx responses:"):
			r.non2xx, _ = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(l, "Non-2xx or 3xx responses:")))
		}
	}
	if !ok {
		return nil
	}
	return &r
}

func wrkRPS(c *cell) (float64, bool) { return c.wrk.rps, c.wrk != nil }

// readCPUUse is each CPU's use between the two /proc/stat snapshots
// bench/run.sh keeps around a cell; nil without them.
func readCPUUse(before, after string) []pktgen.CPUUse {
	a, err := os.Open(before)
	if err != nil {
		return nil
	}
	defer a.Close()
	b, err := os.Open(after)
	if err != nil {
		return nil
	}
	defer b.Close()
	return pktgen.CPUUseBetween(a, b)
}

// pinnedCPU is the CPU a cell's command pinned its clients to ("taskset -c
// N"), -1 if it pinned none or several.
func pinnedCPU(c *cell) int {
	_, rest, ok := strings.Cut(c.cmd, "taskset -c ")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(strings.Fields(rest + " ")[0])
	if err != nil {
		return -1
	}
	return n
}

// wrkCPU is the use of the CPU a pinned wrk cell ran wrk and nginx on.
func wrkCPU(c *cell) (pktgen.CPUUse, bool) {
	n := pinnedCPU(c)
	if c.wrk == nil || n < 0 || n >= len(c.cpu) {
		return pktgen.CPUUse{}, false
	}
	return c.cpu[n], true
}

// wrkEndpointsPct is how busy wrk's and nginx's CPU was outside interrupts
// and softirqs (their own processes, user and system time) during a
// pinned wrk cell.
func wrkEndpointsPct(c *cell) (float64, bool) {
	u, ok := wrkCPU(c)
	return u.BusyPct - u.SoftIRQPct, ok
}

// wrkSoftIRQPct is the softirq share of wrk's and nginx's CPU.
func wrkSoftIRQPct(c *cell) (float64, bool) {
	u, ok := wrkCPU(c)
	return u.SoftIRQPct, ok
}

// wrkCeiling is the connection rate wrk and nginx would reach with all of
// their CPU for their own processes, at the cost per connection they had
// in the cell: a bound no balancer can pass that leaves them that CPU.
func wrkCeiling(c *cell) (float64, bool) {
	p, ok := wrkEndpointsPct(c)
	if !ok || p <= 0 {
		return 0, false
	}
	return c.wrk.rps * 100 / p, true
}
func wrkErrors(c *cell) (float64, bool) { return float64(c.wrk.errors + c.wrk.non2xx), c.wrk != nil }
func capacity(c *cell) (float64, bool) {
	return c.res.Search.ThroughputPPS, c.res != nil && c.res.Search != nil
}
func overloadTop(c *cell) (float64, bool) {
	return c.res.Search.OverloadPPS, c.res != nil && c.res.Search != nil
}
func generatorTop(c *cell) (float64, bool) {
	return c.res.Search.GeneratorPPS, c.res != nil && c.res.Search != nil
}

// curve is one system's overload curve in one placement.
type curve struct {
	capacity, overload, genMax stat
	fwd, off                   []stat // per overFactors
	peak                       float64
}

func (d *data) curve(place, sys string) (curve, bool) {
	c := curve{
		capacity: d.metricAt(place, sys, "over-cap", capacity),
		overload: d.metricAt(place, sys, "over-cap", overloadTop),
		genMax:   d.metricAt(place, sys, "over-cap", generatorTop),
	}
	found := c.capacity.ok()
	for _, f := range overFactors {
		t := fmt.Sprintf("over-%dx", f)
		c.fwd = append(c.fwd, d.metricAt(place, sys, t, pps))
		c.off = append(c.off, d.metricAt(place, sys, t, offered))
	}
	for _, s := range append([]stat{c.capacity, c.overload}, c.fwd...) {
		if s.ok() {
			found = true
			c.peak = max(c.peak, s.med)
		}
	}
	return c, found
}

// atTop is the forwarded rate at the highest offered factor.
func (c curve) atTop() stat { return c.fwd[len(c.fwd)-1] }

// offeredTop is how many times the capacity the generator really offered
// in the highest cell (0 if unknown); below 3 × the cell is no overload
// test: the generator itself was the limit (on one core it yields the CPU
// to whatever forwards in its own time; on a loaded machine it gets less).
func (c curve) offeredTop() float64 {
	o := c.off[len(c.off)-1]
	if !o.ok() || !c.capacity.ok() || c.capacity.med == 0 {
		return 0
	}
	return o.med / c.capacity.med
}

func (c curve) overloaded() bool {
	return c.offeredTop() >= 3
}

func (d *data) overload(w func(string, ...any)) {
	header := false
	for _, pl := range placements {
		rows := 0
		for _, s := range systems {
			c, ok := d.curve(pl.id, s.id)
			if !ok {
				continue
			}
			if !header {
				w("## Overload curves\n\n")
				w("Capacity = the highest rate forwarded with at most 1%% loss (`gvs-pktgen udp --search`, whose first trial offers as much as the XDP live-frame generator can: ")
				w("\"unpaced\" is what arrived then, of what it offered). Then fixed rates of 1×, 2× and 5× that capacity: forwarded Mpps (offered Mpps). ")
				w("A system that does not collapse forwards at 5× about what it forwards at its peak (the largest forwarded rate of the row). ")
				w("Where the generator could not offer the multiple, the offered column says so.\n\n")
				header = true
			}
			if rows == 0 {
				w("### %s\n\n| system | capacity Mpps | unpaced: forwarded of offered | 1× | 2× | 5× | 5× / peak |\n|---|---|---|---|---|---|---|\n", pl.label)
			}
			rows++
			var cols []string
			for i := range overFactors {
				cols = append(cols, fmt.Sprintf("%s (%s)", fmtRate(c.fwd[i], 1e6, 3), fmtRate(c.off[i], 1e6, 3)))
			}
			top := "–"
			if t := c.atTop(); t.ok() && c.peak > 0 {
				top = fmt.Sprintf("%.2f", t.med/c.peak)
				switch {
				case !c.overloaded():
					top += fmt.Sprintf(" (no overload: the generator offered only %.1f× capacity)", c.offeredTop())
				case t.med/c.peak < 0.9:
					top = fmt.Sprintf("**%s** (collapses; offered %.1f× capacity)", top, c.offeredTop())
				default:
					top += fmt.Sprintf(" (offered %.1f× capacity)", c.offeredTop())
				}
			}
			w("| %s | %s | %s of %s | %s | %s |\n", s.label, fmtRate(c.capacity, 1e6, 3), fmtRate(c.overload, 1e6, 3),
				fmtRate(c.genMax, 1e6, 3), strings.Join(cols, " | "), top)
		}
		if rows > 0 {
			w("\n")
		}
	}
}

// placements compares the peak forwarded rate of each system in the
// separate-core and the one-core placement.
func (d *data) placements(w func(string, ...any)) {
	peak := func(place, sys string) stat {
		c, ok := d.curve(place, sys)
		if !ok || c.peak == 0 {
			return stat{}
		}
		return stat{med: c.peak, min: c.peak, max: c.peak, n: 1}
	}
	var rows []string
	for _, s := range systems {
		sep, one := peak("sep", s.id), peak("one", s.id)
		if !sep.ok() && !one.ok() {
			continue
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s |", s.label,
			fmtRate(sep, 1e6, 3), ratio(sep, peak("sep", "xsk1")), ratio(sep, peak("sep", "nft")),
			fmtRate(one, 1e6, 3), ratio(one, peak("one", "xsk1")), ratio(one, peak("one", "nft")), ratio(one, sep)))
	}
	if len(rows) == 0 {
		return
	}
	w("## One core vs separate cores\n\n")
	w("Peak forwarded UDP Mpps of each overload curve (medians per cell, the largest of the row). One core: the generator, the system under test and the sink share a CPU, ")
	w("so the figure is the whole path's cost per packet. The kernel systems (XDP redirect, nftables) do their forwarding inside the generator's own ")
	w("transmission (the veth hands frames to the peer's NAPI on the sending CPU), which a userspace forwarder cannot: it needs the CPU time the generator yields.\n\n")
	w("| system | separate: Mpps | × AF_XDP fwd | × nftables | one core: Mpps | × AF_XDP fwd | × nftables | one / separate |\n|---|---|---|---|---|---|---|---|\n")
	w("%s\n\n", strings.Join(rows, "\n"))
}

// wrkSection shows wrk's connection rates through each system, pinned
// (separate cores) and unpinned, beside gvs-pktgen tcp's.
func (d *data) wrkSection(w func(string, ...any), pgSep map[string]stat) {
	var rows []string
	for _, s := range systems {
		pin, free := d.metricAt("sep", s.id, "wrk", wrkRPS), d.metricAt("free", s.id, "wrk", wrkRPS)
		pgFree := d.metricAt("free", s.id, "cps", cps)
		if !pin.ok() && !free.ok() && !pgFree.ok() {
			continue
		}
		errs := d.metricAt("sep", s.id, "wrk", wrkErrors)
		errsFree := d.metricAt("free", s.id, "wrk", wrkErrors)
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s / %s | %s / %s | %s | %s | %s | %s |", s.label,
			fmtRate(pin, 1, 0), ratio(pin, d.metricAt("sep", "nft", "wrk", wrkRPS)), ratio(pin, d.metricAt("sep", "haproxy", "wrk", wrkRPS)),
			fmtRate(d.metricAt("sep", s.id, "wrk", wrkEndpointsPct), 1, 0), fmtRate(d.metricAt("sep", s.id, "wrk", wrkSoftIRQPct), 1, 0),
			fmtRate(errs, 1, 0), fmtRate(errsFree, 1, 0),
			fmtRate(free, 1, 0), ratio(free, d.metricAt("free", "nft", "wrk", wrkRPS)),
			fmtRate(pgSep[s.id], 1, 0), fmtRate(pgFree, 1, 0)))
	}
	if len(rows) == 0 {
		return
	}
	ceilingNote := ""
	if ceil, nft := d.metricAt("sep", "nft", "wrk", wrkCeiling), d.metricAt("sep", "nft", "wrk", wrkRPS); ceil.ok() && nft.ok() && nft.med > 0 {
		pct := d.metricAt("sep", "nft", "wrk", wrkEndpointsPct)
		ceilingNote = fmt.Sprintf("**The endpoints' own ceiling.** Through nftables, wrk and nginx kept their CPU %.0f %% busy in their own processes "+
			"(user and system time, not counting interrupts and softirqs) for %.0f connections/s. With all of that CPU, at the same cost per connection, they would make "+
			"%.0f/s: %.2f × nftables. No balancer that leaves their CPU to them can be measured above that in this cell.\n\n",
			pct.med, nft.med, ceil.med, ceil.med/nft.med)
	}
	w("## TCP connections per second with Linux TCP (wrk → nginx)\n\n")
	w("`wrk -t1 -c64 -H 'Connection: close'` in gvsb-gen (one TCP connection per request, the kernel's TCP on both ends) to one nginx worker answering for the ")
	w("four real servers in gvsb-rs, through the system under test. Pinned: wrk and nginx on the generator's CPU, the system on its own (the separate-core placement); ")
	w("unpinned: nothing pinned. gvs-pktgen tcp's rate (its own TCP, 8 packets per connection) is beside it.\n\n")
	w("| system | wrk pinned conn/s | × nftables | × haproxy | wrk's and nginx's CPU: their processes / softirq %% | socket errors + non-2xx pinned / unpinned | wrk unpinned conn/s | × nftables | gvs-pktgen tcp pinned | gvs-pktgen tcp unpinned |\n|---|---|---|---|---|---|---|---|---|---|\n")
	w("%s\n\n", strings.Join(rows, "\n"))
	w("%s", ceilingNote)
}

// issueBudget holds the measured ratios against the targets of the
// performance issue (separate-core, one-core, overload, CPS) and against
// the generator's own requirement.
func (d *data) issueBudget(w func(string, ...any), udp, cpsSep, syn map[string]stat) {
	type line struct {
		what  string
		a, b  stat
		want  float64
		extra string
	}
	peakOf := func(place, sys string) stat {
		c, ok := d.curve(place, sys)
		if !ok || c.peak == 0 {
			return stat{}
		}
		return stat{med: c.peak, n: 1}
	}
	wrkPin := func(sys string) stat { return d.metricAt("sep", sys, "wrk", wrkRPS) }
	// what bounds the CPS cells whatever the balancer (the generator's own
	// TCP; wrk's and nginx's CPU), as ratios to nftables
	xdpCPS, wrkCeil := "", ""
	if x, n := cpsSep["xdp"], cpsSep["nft"]; x.ok() && n.ok() && n.med > 0 {
		xdpCPS = fmt.Sprintf("the zero-work XDP redirect, with no translation, gives %.2f × nftables", x.med/n.med)
	}
	if c, n := d.metricAt("sep", "nft", "wrk", wrkCeiling), wrkPin("nft"); c.ok() && n.ok() && n.med > 0 {
		wrkCeil = fmt.Sprintf("wrk's and nginx's own CPU caps any balancer at %.2f × nftables", c.med/n.med)
	}
	// in the separate placement the veth runs the receive of the system's
	// ports on the sending CPU, the generator's, unless bench/run.sh ran
	// with SUT_RX=own
	rxNote := "the generator's CPU did each system's veth receive, which helps an AF_XDP system most; SUT_RX=own moves it (docs/benchmarks.md)"
	for _, l := range d.env {
		if strings.Contains(l, "(SUT_RX): own") {
			rxNote = "each system's veth receive on its own CPU (SUT_RX=own)"
		}
	}
	withRx := func(extra string) string {
		if extra == "" {
			return rxNote
		}
		return extra + "; " + rxNote
	}
	// a GVS worker's load in its CPS cell: below 1, what set the rate was
	// not the worker
	cpsLoad := func(sys, extra string) string {
		l := d.metric(sys, "cps", workerLoad)
		if !l.ok() || l.med >= 0.95 {
			return extra
		}
		return fmt.Sprintf("the worker's load in the cell was %.2f: it did not set the rate; %s", l.med, extra)
	}
	var lines []line
	for _, g := range []string{"gvs1", "gvs1rt"} {
		lb := label(g)
		lines = append(lines,
			line{"generator: offered ≥ 3 × what " + lb + " forwards (udp cell)", d.metric(g, "udp", offered), udp[g], 3, ""},
			line{"separate cores: " + lb + " ≥ 0.9 × the tuned zero-work forwarder (udp)", udp[g], udp["xsk1"], 0.9, ""},
			line{"separate cores: " + lb + " ≥ 1.5 × nftables (udp)", udp[g], udp["nft"], 1.5, rxNote},
			line{"separate cores: " + lb + " SYN flood ≥ 2 × nftables", syn[g], syn["nft"], 2, rxNote},
			line{"separate cores: " + lb + " CPS ≥ 2 × nftables (gvs-pktgen tcp)", cpsSep[g], cpsSep["nft"], 2, cpsLoad(g, withRx(xdpCPS))},
			line{"separate cores: " + lb + " CPS ≥ 2 × nftables (wrk → nginx)", wrkPin(g), wrkPin("nft"), 2, withRx(wrkCeil)},
			line{"one core: " + lb + " ≥ 0.9 × the tuned zero-work forwarder (peak of the curve)", peakOf("one", g), peakOf("one", "xsk1"), 0.9, ""},
			line{"one core: " + lb + " ≥ 0.6 × nftables (peak of the curve)", peakOf("one", g), peakOf("one", "nft"), 0.6, "nftables forwards inside the generator's own time"},
		)
		for _, pl := range placements {
			if c, ok := d.curve(pl.id, g); ok && c.atTop().ok() && c.overloaded() {
				lines = append(lines, line{fmt.Sprintf("%s: %s at 5× offered ≥ 0.9 × its own peak", pl.label, lb),
					c.atTop(), stat{med: c.peak, n: 1}, 0.9, fmt.Sprintf("offered %.1f× capacity", c.offeredTop())})
			}
			if c, ok := d.curve(pl.id, g); ok && pl.id == "sep" && c.offeredTop() > 0 {
				lines = append(lines, line{"generator: offered ≥ 3 × " + lb + "'s capacity (separate cores, 5× cell)",
					stat{med: c.offeredTop(), n: 1}, stat{med: 1, n: 1}, 3, ""})
			}
		}
	}
	var out []string
	for _, l := range lines {
		if !l.a.ok() || !l.b.ok() || l.b.med == 0 {
			continue
		}
		r := l.a.med / l.b.med
		v := "met"
		if r < l.want {
			v = "**not met**"
		}
		if l.extra != "" {
			v += " (" + l.extra + ")"
		}
		out = append(out, fmt.Sprintf("| %s | %.2f × | %s |", l.what, r, v))
	}
	if len(out) == 0 {
		return
	}
	w("## Issue targets (performance under conditions that do not flatter)\n\n| target | measured here (same run) | verdict |\n|---|---|---|\n%s\n\n", strings.Join(out, "\n"))
}
