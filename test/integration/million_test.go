package integration

// A million connections listed with the real CLI (issue 11, part 4).
//
// gvs-pktgen fills two workers' tables with UDP flows through a FullNAT
// service (24 client addresses × 64k source ports; 2 real servers × 16
// ports, so that the (local address, real server) port spaces of one local
// address hold them all), then keeps a paced flow of datagrams on existing
// flows while `ipvsadm -L -n -c | wc -l` runs. The line count must lie
// between the dataplane's connection counts taken just before and just
// after the listing (the UDP timeout is far longer than the test).
// Reported: the listing's wall time, the CLI's peak RSS, the dataplane's
// RSS before and during it, and the worker loops of the listing's time
// against windows of the same length without one and with a CPU hog
// (loop histograms), with the workers' own listing steps.
// GVS_MILLION_CONNS / GVS_MILLION_RATE change the size and the offered
// rate; GVS_LAB_RT_PRIORITY (scripts/lab.sh) runs the workers SCHED_FIFO.
// Numbers: docs/benchmarks.md, "Listing a million connections".

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

const (
	millionRSPorts = 16 // real-server ports per real server (9000…)
	millionClients = 24 // client addresses, 64,512 source ports each
)

// millionConns is how many connections TestMillionUDPConns makes:
// GVS_MILLION_CONNS overrides the million (e.g. for a quick run).
func millionConns(t *testing.T) int {
	n := 1_000_000
	if s := os.Getenv("GVS_MILLION_CONNS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1000 || v > millionClients*64512 {
			t.Fatalf("GVS_MILLION_CONNS=%q: use 1000-%d", s, millionClients*64512)
		}
		n = v
	}
	return n
}

// millionRate is the datagrams per second gvs-pktgen offers while making
// the connections: about what two workers take on the lab's veths when
// they share the machine's two CPUs with it (GVS_MILLION_RATE overrides).
func millionRate(t *testing.T) int {
	if s := os.Getenv("GVS_MILLION_RATE"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1000 {
			t.Fatalf("GVS_MILLION_RATE=%q: use a number of datagrams per second >= 1000", s)
		}
		return v
	}
	return 100_000
}

// lbConns returns the connections in every worker's table.
func (l *Lab) lbConns() (total uint64, per []uint64) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u, err := l.api.GetLBUsage(ctx, &pb.Empty{})
	if err != nil {
		l.t.Fatal(err)
	}
	for _, w := range u.GetWorkers() {
		total += w.GetConns()
		per = append(per, w.GetConns())
	}
	return total, per
}

// loopHists returns every worker's loop-duration histogram.
func (l *Lab) loopHists() [][]uint64 {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := l.api.ListWorkers(ctx, &pb.Empty{})
	if err != nil {
		l.t.Fatal(err)
	}
	var out [][]uint64
	for _, w := range r.GetWorkers() {
		out = append(out, w.GetLoopHist())
	}
	return out
}

// listingSteps returns every worker's listing steps so far.
func (l *Lab) listingSteps() []*pb.Worker {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := l.api.ListWorkers(ctx, &pb.Empty{})
	if err != nil {
		l.t.Fatal(err)
	}
	return r.GetWorkers()
}

// stepsBetween describes the listing steps each worker took between two
// listingSteps readings (the longest is since start: listings only).
func stepsBetween(a, b []*pb.Worker) string {
	var out []string
	for i := range b {
		n := b[i].GetListingSteps() - a[i].GetListingSteps()
		if n == 0 {
			out = append(out, fmt.Sprintf("worker %d: no step", i))
			continue
		}
		out = append(out, fmt.Sprintf("worker %d: %d steps, mean %v, longest %v, %d of 1 ms or more", i, n,
			time.Duration((b[i].GetListingStepNs()-a[i].GetListingStepNs())/n), time.Duration(b[i].GetListingStepMaxNs()),
			b[i].GetListingStepsOver_1Ms()-a[i].GetListingStepsOver_1Ms()))
	}
	return strings.Join(out, "; ")
}

// loopWindow describes the loops between two loopHists readings: per
// worker, the upper bound of the longest loop (the highest bucket that
// grew: 2^i ns) and how many loops took 1 ms or more.
type loopWindow struct {
	longest []time.Duration
	over1ms []uint64
}

func loopsBetween(a, b [][]uint64) loopWindow {
	var w loopWindow
	for i := range b {
		var top time.Duration
		var over uint64
		for j := range b[i] {
			n := b[i][j]
			if j < len(a[i]) {
				n -= a[i][j]
			}
			if n == 0 {
				continue
			}
			top = time.Duration(1) << j
			if j >= 21 { // [2^20, 2^21) ns = [1.05 ms, 2.1 ms): from ~1 ms up
				over += n
			}
		}
		w.longest, w.over1ms = append(w.longest, top), append(w.over1ms, over)
	}
	return w
}

func (w loopWindow) String() string {
	return fmt.Sprintf("longest loop under %v per worker, loops over 1 ms %v", w.longest, w.over1ms)
}

// procKiB reads a "Name:   N kB" field of /proc/PID/status.
func procKiB(pid int, field string) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, ln := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(ln, field+":"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func TestMillionUDPConns(t *testing.T) {
	n := millionConns(t)
	flows := min(n*3/2, millionClients*64512)              // more flows than conns wanted: see phase 1
	t.Setenv("GVS_LAB_CONN_CAPACITY", strconv.Itoa(1<<20)) // per worker
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	if _, err := os.Stat(filepath.Join(l.root, "bin", "gvs-pktgen")); err != nil {
		t.Fatal("bin/gvs-pktgen missing: run make build")
	}
	vip := l.Env["VIP"]
	svc := vip + ":9000"
	l.Ipvsadm("--set", "0", "0", "1800") // no UDP conn expires during the test
	l.Ipvsadm("-A", "-u", svc, "-s", "rr")
	for i := 1; i <= 2; i++ {
		ns, ip := l.Env[fmt.Sprintf("RS%d_NS", i)], l.Env[fmt.Sprintf("RS%d_IP", i)]
		for p := 9000; p < 9000+millionRSPorts; p++ {
			l.Ipvsadm("-a", "-u", svc, "-r", fmt.Sprintf("%s:%d", ip, p), "-b")
		}
		// the real servers drop the datagrams quietly (no port unreachable)
		l.MustNS(ns, "nft", "add table inet gvs_million; add chain inet gvs_million in { type filter hook input priority 0; }; "+
			fmt.Sprintf("add rule inet gvs_million in udp dport 9000-%d drop", 9000+millionRSPorts-1))
	}
	l.Ipvsadm("--add-laddr", "-z", l.Env["LIP"], "-u", svc, "-F", l.Env["LB_RS_PORT"])

	// Phase 1: half as many flows again as the conns wanted, at about the
	// rate the dataplane takes, until n conns exist. A datagram lost on
	// the way in (the veth, the AF_XDP ring) makes no conn, and finding
	// the last few lost flows of an exact set takes many passes; extra
	// flows do not.
	start := time.Now()
	gen1 := l.startPktgen(svc, flows, millionRate(t))
	var conns uint64
	var per []uint64
	for {
		if conns, per = l.lbConns(); conns >= uint64(n) {
			break
		}
		if time.Since(start) > 100*time.Second || gen1.exited() {
			c := l.Counters()
			var named []string
			for k, v := range c {
				if v != 0 && (strings.Contains(k, "drop") || strings.Contains(k, "full") || strings.Contains(k, "exhaust")) {
					named = append(named, fmt.Sprintf("%s=%d", k, v))
				}
			}
			st := l.Link(l.Env["LB_CLIENT_PORT"]).GetStats()
			t.Fatalf("%d of %d UDP connections after %v (gvs-pktgen exited: %v %s); drop counters %v; %s rx %d dropped %d",
				conns, n, time.Since(start).Round(time.Millisecond), gen1.exited(), gen1.output(), named,
				l.Env["LB_CLIENT_PORT"], st.GetRxPackets(), st.GetRxDropped())
		}
		time.Sleep(250 * time.Millisecond) // polling the count
	}
	created := time.Since(start)
	gen1.stop(t)
	conns, per = l.lbConns()
	t.Logf("%d UDP connections (per worker %v) from %d flows offered at %d/s in %v", conns, per, flows, millionRate(t), created.Round(time.Millisecond))
	if conns > uint64(flows) {
		t.Fatalf("%d connections for %d flows: something else made some", conns, flows)
	}

	// Phase 2: paced datagrams on the first flows (which exist) while
	// listing; the count is taken once every one of them was sent 3 times.
	const steady = 20_000
	lbIn := l.Counters()["lb_in"]
	gen2 := l.startPktgen(svc, steady, steady)
	t.Cleanup(func() { gen2.stop(t) })
	for l.Counters()["lb_in"]-lbIn < 3*steady {
		if gen2.exited() {
			t.Fatalf("gvs-pktgen: %s", gen2.output())
		}
		time.Sleep(100 * time.Millisecond) // polling the counter
	}

	pidB, err := os.ReadFile(filepath.Join(l.Env["LAB_STATE"], "dataplane.pid"))
	if err != nil {
		t.Fatal(err)
	}
	dpPid, _ := strconv.Atoi(strings.TrimSpace(string(pidB)))
	rssBefore := procKiB(dpPid, "VmRSS")

	list := func(what string) (took time.Duration, dpRSS uint64) {
		before, _ := l.lbConns()
		var rssMax uint64
		sampling, sampled := make(chan struct{}), make(chan struct{})
		go func() { // the dataplane's RSS while the listing runs
			defer close(sampled)
			tk := time.NewTicker(20 * time.Millisecond)
			defer tk.Stop()
			for {
				if v := procKiB(dpPid, "VmRSS"); v > rssMax {
					rssMax = v
				}
				select {
				case <-sampling:
					return
				case <-tk.C:
				}
			}
		}()
		dpCPU := procCPU(dpPid)
		lines, cliRSS, took, bytes, cliCPU := listConnsWC(t, l)
		dpCPU = procCPU(dpPid) - dpCPU
		close(sampling)
		<-sampled
		after, _ := l.lbConns()
		listed := lines - 2 // "IPVS connection entries" and the column titles
		if listed < before || listed > after {
			t.Errorf("%s: ipvsadm -L -n -c | wc -l: %d connection lines; the dataplane had %d before and %d after the listing",
				what, listed, before, after)
		}
		// ipvsadm prints page by page: its memory does not follow the listing's size
		if cliRSS > 64<<10 {
			t.Errorf("%s: ipvsadm's peak RSS %d MiB for a listing of %d MiB", what, cliRSS>>10, bytes>>20)
		}
		t.Logf("%s: ipvsadm -L -n -c | wc -l: %d lines (%d MiB) in %v; ipvsadm peak RSS %d MiB, CPU %v; dataplane RSS at most %d MiB, CPU %v (workers included); conns %d before, %d after",
			what, lines, bytes>>20, took.Round(time.Millisecond), cliRSS>>10, cliCPU.Round(time.Millisecond),
			rssMax>>10, dpCPU.Round(time.Millisecond), before, after)
		return took, rssMax
	}

	hist0, lbIn0, steps0 := l.loopHists(), l.Counters()["lb_in"], l.listingSteps()
	took, _ := list("listing 1")
	hist1, lbIn1, steps1 := l.loopHists(), l.Counters()["lb_in"], l.listingSteps()
	dpCPU := procCPU(dpPid)
	time.Sleep(took) // the same length of time, same traffic, no listing (a measurement window)
	hist2, lbIn2 := l.loopHists(), l.Counters()["lb_in"]
	dpCPU = procCPU(dpPid) - dpCPU
	// and again with one CPU's worth of unrelated load (the listing's CLI
	// and API work compete with the workers for this machine's two CPUs)
	hog := exec.Command("sh", "-c", "while :; do :; done")
	if err := hog.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(took) // a measurement window
	hog.Process.Kill()
	hog.Wait()
	hist3, lbIn3 := l.loopHists(), l.Counters()["lb_in"]
	list("listing 2")
	if gen2.exited() {
		t.Fatalf("gvs-pktgen stopped during the listings: %s", gen2.output())
	}
	t.Logf("dataplane RSS %d MiB before the listings", rssBefore>>10)
	t.Logf("during listing 1: %v; lb_in %d packets", loopsBetween(hist0, hist1), lbIn1-lbIn0)
	t.Logf("same time without: %v; lb_in %d packets; dataplane CPU %v", loopsBetween(hist1, hist2), lbIn2-lbIn1, dpCPU.Round(time.Millisecond))
	t.Logf("same time, a CPU hog: %v; lb_in %d packets", loopsBetween(hist2, hist3), lbIn3-lbIn2)
	t.Logf("listing 1's steps: %s", stepsBetween(steps0, steps1))
}

// procCPU returns the CPU time (user + system) process pid has used.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// fields after the command's closing parenthesis: utime is the 12th, stime the 13th
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond // USER_HZ 100
}

// pktgen is a gvs-pktgen run in the background.
type pktgen struct {
	cmd  *exec.Cmd
	out  *strings.Builder
	done chan struct{}
}

// startPktgen runs gvs-pktgen's udp mode from the client namespace's
// interface towards dst with n flows (client address fastest, then source
// port) at rate datagrams/s, until stopped.
func (l *Lab) startPktgen(dst string, n, rate int) *pktgen {
	l.t.Helper()
	cmd := exec.Command(filepath.Join(l.root, "bin", "gvs-pktgen"), "udp", "-q",
		"--client-netns", l.Env["CLIENT_NS"], "--client-dev", l.Env["CLIENT_IF"],
		"--client-ip", l.Env["CLIENT_IP"], "--gw", l.Env["LB_IP"], "--queues", l.Env["LAB_WORKERS"],
		"--clients", "172.16.0.0/16", "--client-addrs", strconv.Itoa(millionClients), "--ports", "1024-65535",
		"--flows", strconv.Itoa(n), "--dst", dst, "--rate", strconv.Itoa(rate),
		"--duration", "10m", "--warmup", "0s", "--drain", "10ms", "--idle-sleep", "50us")
	g := &pktgen{cmd: cmd, out: &strings.Builder{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = g.out, g.out
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() { cmd.Wait(); close(g.done) }()
	return g
}

// output is what the run printed, once it is over.
func (g *pktgen) output() string {
	if !g.exited() {
		return "(still running)"
	}
	return tail(g.out.String(), 10)
}

func (g *pktgen) exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// stop interrupts the run (gvs-pktgen detaches from the interface on
// SIGINT) and waits for it.
func (g *pktgen) stop(t *testing.T) {
	if g.exited() {
		return
	}
	g.cmd.Process.Signal(os.Interrupt)
	select {
	case <-g.done:
	case <-time.After(15 * time.Second):
		g.cmd.Process.Kill()
		<-g.done
		t.Errorf("gvs-pktgen did not stop on SIGINT: %s", g.output())
	}
}

// listConnsWC runs `ipvsadm -L -n -c | wc -l` with the lab's binaries and
// returns the line count, ipvsadm's peak RSS (KiB), the wall time and the
// bytes ipvsadm wrote.
func listConnsWC(t *testing.T, l *Lab) (lines uint64, rssKiB uint64, took time.Duration, n int64, cpu time.Duration) {
	t.Helper()
	cli := exec.Command(filepath.Join(l.root, "bin", "ipvsadm"), "-L", "-n", "-c")
	cli.Env = append(cli.Environ(), "GVS_DATAPLANE_SOCKET="+l.Env["DP_SOCKET"])
	wc := exec.Command("wc", "-l")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// count the bytes on their way to wc
	wcIn, err := wc.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var wcOut, cliErr strings.Builder
	wc.Stdout, cli.Stdout, cli.Stderr = &wcOut, pw, &cliErr
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, _ = io.Copy(wcIn, pr)
		wcIn.Close()
	}()
	start := time.Now()
	if err := wc.Start(); err != nil {
		t.Fatal(err)
	}
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	cliErrRun := cli.Wait()
	wg.Wait()
	pr.Close()
	if err := wc.Wait(); err != nil {
		t.Fatal(err)
	}
	took = time.Since(start)
	if cliErrRun != nil {
		t.Fatalf("ipvsadm -L -n -c: %v: %s", cliErrRun, cliErr.String())
	}
	lines, err = strconv.ParseUint(strings.TrimSpace(wcOut.String()), 10, 64)
	if err != nil {
		t.Fatalf("wc -l: %q", wcOut.String())
	}
	if ru, ok := cli.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rssKiB = uint64(ru.Maxrss)
	}
	return lines, rssKiB, took, n, cli.ProcessState.UserTime() + cli.ProcessState.SystemTime()
}
