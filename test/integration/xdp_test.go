package integration

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/internal/nsutil"
)

// TestXDPOffloadLab: with ipvs.xdp_offload on, an iperf3 stream through a
// FullNAT service is carried by the XDP fast path once established: it
// runs through, the worker sees only a few of its packets (the handshake,
// the TOA, the FIN), the connection is offloaded and taken back at its
// end, and ipvsadm's byte counters hold at least what iperf3 received.
// Unlimited streams reach the real server without a segment out of order
// (the client's IP IDs, in a capture there). An HTTP request through another
// FullNAT service still works.
func TestXDPOffloadLab(t *testing.T) {
	t.Setenv("GVS_LAB_XDP_OFFLOAD", "on")
	l := StartLab(t, "--driver", "afxdp", "--workers", "1")
	ns, ip := l.Env["RS1_NS"], l.Env["RS1_IP"]
	l.startTestsrv(ns, "rs1", "--http", ip+":8080")
	waitTCP(t, ns, ip+":8080")
	vip := l.Env["VIP"]
	l.Ipvsadm("-A", "-t", vip+":80", "-s", "rr")
	l.Ipvsadm("-a", "-t", vip+":80", "-r", ip+":8080", "-b")
	l.Ipvsadm("--add-laddr", "-z", l.Env["LIP"], "-t", vip+":80", "-F", l.Env["LB_RS_PORT"])
	iperfService(t, l)

	if info := l.Dpip("info"); !strings.Contains(info, "xdp fast path dp0: active\n") || !strings.Contains(info, "xdp fast path dp1: active\n") {
		t.Fatalf("dpip info does not show the fast path active on both ports:\n%s", info)
	}
	before := l.Counters()
	mb, retr := iperfThrough(t, l, 3, 5)()
	ctr := l.Counters()
	in := ctr["lb_in"] - before["lb_in"]
	t.Logf("iperf3 %d MB, %d retransmissions; worker saw %d client packets; offloaded %d, removed %d",
		mb, retr, in, ctr["lb_xdp_offloaded"], ctr["lb_xdp_removed"])
	// dpip -s link show lists the program's verdicts among the port's
	// extended counters: the stream's client segments went fast on dp0
	if n := linkXStat(t, l.Dpip("-s", "link", "show", "dp0"), "gvs_xdp_fast"); n < 1000 {
		t.Fatalf("dpip -s link show dp0: gvs_xdp_fast %d, want the stream's segments", n)
	}
	if ctr["lb_xdp_offloaded"] < 2 || ctr["lb_xdp_offload_failed"] != 0 {
		t.Fatalf("offloaded %d directions, %d failed; want both directions of the stream", ctr["lb_xdp_offloaded"], ctr["lb_xdp_offload_failed"])
	}
	// 5+ MB is 3600+ full segments: the worker sees the handshakes and the
	// ends of iperf3's control and data connections, not the stream
	if in > 500 {
		t.Fatalf("the worker saw %d client packets of a %d MB stream: not offloaded", in, mb)
	}

	// ipvsadm --stats: the fast path's counts are the service's; the FIN
	// took the connections back with their last counts
	var inBytes uint64
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		inBytes = serviceInBytes(t, l.Ipvsadm("-L", "-n", "--stats", "--exact"), vip+":5201")
		if inBytes >= uint64(mb)<<20 && ctr["lb_xdp_removed"] >= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
		ctr = l.Counters()
	}
	if inBytes < uint64(mb)<<20 {
		t.Fatalf("service InBytes %d, less than the %d MB iperf3 received", inBytes, mb)
	}
	if ctr["lb_xdp_removed"] < 2 {
		t.Fatalf("removed %d directions after the streams ended", ctr["lb_xdp_removed"])
	}

	// unlimited: the connection moves to the fast path with the AF_XDP
	// ring full of its segments; the armed entries keep the switch in
	// order. Three streams, each switching once per direction (without
	// armed entries each run reordered 8-10 segments here)
	for i := 0; i < 3; i++ {
		ooo, retr, mbits := unlimitedOutOfOrder(t, l, "1", nil)
		t.Logf("unlimited iperf3: %.0f Mbit/s, %d retransmissions, %d segments out of order at rs1", mbits, retr, ooo)
		if ooo != 0 {
			t.Fatalf("%d segments reached rs1 after a segment the client sent later", ooo)
		}
	}
	// and back: every edit of the service takes the stream's connection
	// back to the slow path, and its next segments offload it again
	removed := l.Counters()["lb_xdp_removed"]
	var edits int
	var editErr error
	ooo, retr, mbits := unlimitedOutOfOrder(t, l, "2", func(stop <-chan struct{}) {
		for _, s := range []string{"wrr", "rr", "wrr", "rr", "wrr", "rr", "wrr", "rr"} {
			select {
			case <-stop:
				return
			case <-time.After(150 * time.Millisecond): // spread over the stream
			}
			cmd := exec.Command(filepath.Join(l.root, "bin", "ipvsadm"), "-E", "-t", vip+":5201", "-s", s)
			cmd.Env = append(cmd.Environ(), "GVS_DATAPLANE_SOCKET="+l.Env["DP_SOCKET"])
			if out, err := cmd.CombinedOutput(); err != nil {
				editErr = fmt.Errorf("ipvsadm -E: %v\n%s", err, out)
				return
			}
			edits++
		}
	})
	if editErr != nil {
		t.Fatal(editErr)
	}
	ctr = l.Counters()
	back := ctr["lb_xdp_removed"] - removed
	t.Logf("unlimited iperf3 with %d service edits: %.0f Mbit/s, %d retransmissions, %d segments out of order at rs1, %d directions taken back, %d packets held after, hold full %d times",
		edits, mbits, retr, ooo, back, ctr["lb_xdp_held"], ctr["lb_xdp_hold_full"])
	if back < 4 {
		t.Fatalf("%d service edits took %d directions back; want the stream's connection taken back again and again", edits, back)
	}
	if ooo != 0 {
		t.Fatalf("%d segments reached rs1 after a segment the client sent later (moving back and forth)", ooo)
	}

	c := nsutil.HTTPClient(l.Env["CLIENT_NS"], 5*time.Second)
	if server, _ := get(t, c, "http://"+vip+"/"); server != "rs1" {
		t.Fatalf("HTTP answered by %q", server)
	}

	// the real server deleted with expire while a stream is on the fast
	// path: its offloaded connection ends there and then (the program no
	// longer forwards it, the worker has none to send it to); an idle one
	// (iperf3's control connection) ends at its next packet, as in LVS
	stream := exec.Command("ip", "netns", "exec", l.Env["CLIENT_NS"], "iperf3", "-c", vip, "-p", "5201", "-t", "8", "-b", "100M")
	if err := stream.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stream.Process.Kill(); stream.Wait() }) // its connection is gone: iperf3 does not end by itself
	rsKey := l.Env["RS1_IP"] + ":5201"
	var fast string // the offloaded connection's client address and port
	deadline = time.Now().Add(5 * time.Second)
	for fast == "" {
		for _, line := range strings.Split(l.Ipvsadm("-L", "-n", "-c"), "\n") {
			if f := strings.Fields(line); len(f) == 8 && f[6] == rsKey && f[7] == "xdp" {
				fast = f[3]
			}
		}
		if fast == "" && time.Now().After(deadline) {
			t.Fatalf("the stream never went onto the fast path:\n%s", l.Ipvsadm("-L", "-n", "-c"))
		}
		time.Sleep(50 * time.Millisecond) // polls the listing
	}
	removed = l.Counters()["lb_xdp_removed"]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := l.api.DelDest(ctx, &pb.DestRequest{Service: &pb.ServiceKey{Proto: "TCP", Addr: vip, Port: 5201},
		Dest: &pb.Dest{Addr: l.Env["RS1_IP"], Port: 5201}, Expire: true}); err != nil {
		t.Fatalf("delete the real server with expire: %v", err)
	}
	deadline = time.Now().Add(3 * time.Second)
	for strings.Contains(l.Ipvsadm("-L", "-n", "-c"), fast+" ") {
		if time.Now().After(deadline) {
			t.Fatalf("the offloaded connection from %s to the deleted real server is left:\n%s", fast, l.Ipvsadm("-L", "-n", "-c"))
		}
		time.Sleep(50 * time.Millisecond) // polls the listing
	}
	if back := l.Counters()["lb_xdp_removed"] - removed; back < 2 {
		t.Fatalf("%d directions taken back by the delete, want the stream's two", back)
	}
}

// serviceInBytes reads the InBytes column of service svc in an
// ipvsadm -L -n --stats --exact listing.
func serviceInBytes(t *testing.T, listing, svc string) uint64 {
	t.Helper()
	for _, line := range strings.Split(listing, "\n") {
		f := strings.Fields(line)
		if len(f) == 7 && f[0] == "TCP" && f[1] == svc {
			n, err := strconv.ParseUint(f[5], 10, 64)
			if err != nil {
				t.Fatalf("InBytes %q in %q", f[5], line)
			}
			return n
		}
	}
	t.Fatalf("no service %s in\n%s", svc, listing)
	return 0
}

// linkXStat returns the value of extended counter name in the output of
// dpip -s link show (rows of names over rows of values), failing when it
// is not there.
func linkXStat(t *testing.T, out, name string) uint64 {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i, line := range lines {
		f := strings.Fields(line)
		for j, n := range f {
			if n != name || i+1 >= len(lines) {
				continue
			}
			v := strings.Fields(lines[i+1])
			if j >= len(v) {
				break
			}
			val, err := strconv.ParseUint(v[j], 10, 64)
			if err != nil {
				t.Fatalf("%s: value %q", name, v[j])
			}
			return val
		}
	}
	t.Fatalf("no %s in:\n%s", name, out)
	return 0
}
