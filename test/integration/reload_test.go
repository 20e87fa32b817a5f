package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/testenv"
)

// iperfReport is the part of iperf3 -J's report the lab tests read.
type iperfReport struct {
	Intervals []struct {
		Sum struct {
			Start, End float64
			Bytes      uint64
		} `json:"sum"`
	} `json:"intervals"`
	End struct {
		SumSent struct {
			Bytes       uint64 `json:"bytes"`
			Retransmits uint64 `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         uint64  `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// TestReloadUnderTraffic: while iperf3 runs TCP through a FullNAT service,
// a SIGHUP adds an address and a route to the dataplane's file, then
// `dpip reload` (the API) adds another of each; a file with an off-link
// gateway is refused by both, with addr/route show unchanged. iperf3
// finishes without error, every 1 s interval received data, the
// retransmits are reported, and the new addresses answer ping.
func TestReloadUnderTraffic(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "1")
	vip, rs1ns, rs1 := l.Env["VIP"], l.Env["RS1_NS"], l.Env["RS1_IP"]
	srv := exec.Command("ip", "netns", "exec", rs1ns, "iperf3", "-s", "-B", rs1, "-p", "5201")
	if err := srv.Start(); err != nil {
		t.Fatalf("iperf3 server: %v (make deps installs iperf3)", err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	waitTCP(t, rs1ns, rs1+":5201")
	l.Ipvsadm("-A", "-t", vip+":5201", "-s", "rr")
	l.Ipvsadm("-a", "-t", vip+":5201", "-r", rs1+":5201", "-b")
	l.Ipvsadm("-P", "-z", l.Env["LIP"], "-t", vip+":5201", "-F", l.Env["LB_RS_PORT"])

	cfg := l.Env["DP_CONFIG"]
	base, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer os.WriteFile(cfg, base, 0o644)
	pid := dataplanePID(t, l)
	// the lab's file lists its addresses last but for forwarding/ipvs
	withAddrs := func(addrs []string, routes []string) string {
		s := string(base)
		i := strings.Index(s, "forwarding:")
		if i < 0 {
			t.Fatalf("lab config without forwarding:\n%s", s)
		}
		var b strings.Builder
		b.WriteString(s[:i])
		for _, a := range addrs {
			b.WriteString("  - {addr: " + a + "}\n")
		}
		if len(routes) > 0 {
			b.WriteString("routes:\n")
			for _, r := range routes {
				b.WriteString("  - {" + r + "}\n")
			}
		}
		b.WriteString(s[i:])
		return b.String()
	}
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := exec.Command("ip", "netns", "exec", l.Env["CLIENT_NS"], "iperf3", "-c", vip, "-p", "5201",
			"-t", "8", "-i", "1", "-b", "50M", "-J").CombinedOutput()
		done <- result{out, err}
	}()
	// the transfer runs through the dataplane before anything is reloaded
	testenv.Eventually(t, 10*time.Second, "iperf3's connection in the dataplane", func() bool {
		return strings.Contains(l.Ipvsadm("-L", "-n", "-c"), vip+":5201")
	})

	// 1. SIGHUP: an address and a route
	sighup := withAddrs([]string{"10.1.0.9/32, dev: dp0"}, []string{"dst: 10.9.0.0/16, via: 10.2.0.254"})
	write(sighup)
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "10.1.0.9/32 after SIGHUP", func() bool {
		return strings.Contains(l.Dpip("addr", "show"), "inet 10.1.0.9/32 scope global dp0")
	})
	if r := l.Dpip("route", "show"); !strings.Contains(r, "inet 10.9.0.0/16 via 10.2.0.254 ") {
		t.Errorf("route show after SIGHUP lacks 10.9.0.0/16:\n%s", r)
	}

	// 2. the API: another address and route, the changes reported
	api := withAddrs([]string{"10.1.0.9/32, dev: dp0", "10.1.0.10/32, dev: dp0"},
		[]string{"dst: 10.9.0.0/16, via: 10.2.0.254", "dst: 10.8.0.0/16, via: 10.2.0.253"})
	write(api)
	if got, want := l.Dpip("reload"), cfg+": reloaded:\n  addr add 10.1.0.10/32 dev dp0\n  route add 10.8.0.0/16 via 10.2.0.253\n"; got != want {
		t.Errorf("dpip reload:\n%s\nwant:\n%s", got, want)
	}
	addrs, routes := l.Dpip("addr", "show"), l.Dpip("route", "show")
	if !strings.Contains(addrs, "inet 10.1.0.10/32 scope global dp0") || !strings.Contains(routes, "inet 10.8.0.0/16 via 10.2.0.253 ") {
		t.Errorf("after dpip reload:\n%s%s", addrs, routes)
	}

	// 3. a bad file: refused by the API and by SIGHUP, nothing changes
	write(withAddrs([]string{"10.1.0.9/32, dev: dp0", "10.1.0.10/32, dev: dp0", "10.1.0.11/32, dev: dp0"},
		[]string{"dst: 10.9.0.0/16, via: 10.2.0.254", "dst: 10.8.0.0/16, via: 10.2.0.253", "dst: 10.7.0.0/16, via: 192.0.2.1"}))
	out, err := exec.Command(filepath.Join(l.root, "bin", "dpip"), "-S", l.Env["DP_SOCKET"], "reload").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "192.0.2.1") || !strings.Contains(string(out), "unchanged") {
		t.Errorf("dpip reload of a file with an off-link gateway: %v\n%s", err, out)
	}
	logBefore := refusals(t, l)
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the SIGHUP's refusal in the log", func() bool { return refusals(t, l) > logBefore })
	if a, r := l.Dpip("addr", "show"), l.Dpip("route", "show"); a != addrs || r != routes {
		t.Errorf("a refused file changed the dataplane:\n%s%s\nwas:\n%s%s", a, r, addrs, routes)
	}

	res := <-done
	if res.err != nil {
		t.Fatalf("iperf3 through the VIP across the reloads: %v\n%.2000s", res.err, res.out)
	}
	var rep iperfReport
	if err := json.Unmarshal(res.out, &rep); err != nil || rep.Error != "" {
		t.Fatalf("iperf3 report: %v %s\n%.2000s", err, rep.Error, res.out)
	}
	if len(rep.Intervals) < 7 {
		t.Errorf("iperf3 reported %d intervals, want 8", len(rep.Intervals))
	}
	for _, iv := range rep.Intervals {
		if iv.Sum.Bytes == 0 {
			t.Errorf("no data in the interval %.0f-%.0f s: %s", iv.Sum.Start, iv.Sum.End, res.out)
		}
	}
	if rep.End.SumReceived.Bytes == 0 || rep.End.SumReceived.Bytes > rep.End.SumSent.Bytes {
		t.Errorf("iperf3 sent %d bytes, received %d", rep.End.SumSent.Bytes, rep.End.SumReceived.Bytes)
	}
	t.Logf("iperf3 across two reloads and two refusals: %d bytes received in %d intervals, %d retransmits",
		rep.End.SumReceived.Bytes, len(rep.Intervals), rep.End.SumSent.Retransmits)

	// the added addresses are live, not only listed
	ping(t, l, l.Env["CLIENT_NS"], false, "10.1.0.9", 2)
	ping(t, l, l.Env["CLIENT_NS"], false, "10.1.0.10", 2)
}

// dataplanePID is the lab's gvs-dataplane process.
func dataplanePID(t *testing.T, l *Lab) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.Env["LAB_STATE"], "dataplane.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); strings.TrimSpace(string(comm)) != "gvs-dataplane" {
		t.Fatalf("pid %d from the lab is %q, not gvs-dataplane", pid, comm)
	}
	return pid
}

// refusals counts the SIGHUP refusals in the dataplane's log.
func refusals(t *testing.T, l *Lab) int {
	b, err := os.ReadFile(l.Env["DP_LOG"])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "SIGHUP: reload refused")
}
