package integration

import (
	"fmt"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/nsutil"
)

// TestDPDKLab runs the lab on the dpdk driver (bin/dpdk/gvs-dataplane, DPDK's
// net_af_packet vdevs on dp0/dp1, no hugepages) with two workers: ping,
// neighbours, KNI management TCP, routed HTTP, and a FullNAT service set up
// with ipvsadm whose replies come back through GVS's local address.
func TestDPDKLab(t *testing.T) {
	requireRoot(t)
	if exec.Command("pkg-config", "--exists", "libdpdk").Run() != nil {
		t.Skip("libdpdk-dev is not installed (apt-get install libdpdk-dev; .ci/run installs it)")
	}
	root := repoRoot(t)
	if out, err := exec.Command("make", "-C", root, "dpdk").CombinedOutput(); err != nil {
		t.Fatalf("make dpdk: %v\n%s", err, out)
	}
	l := StartLab(t, "--driver", "dpdk", "--workers", "2")
	if lk := l.Link("dp0"); lk.Driver != "dpdk" || lk.Queues != 2 || !lk.Up {
		t.Fatalf("dp0: driver %q, %d queues, up %v; want dpdk, 2, up", lk.Driver, lk.Queues, lk.Up)
	}
	t.Run("ping", func(t *testing.T) { testPing(t, l) })
	t.Run("neighbours", func(t *testing.T) { testClientNeighbours(t, l) })
	t.Run("kni_tcp", func(t *testing.T) { testKNITCP(t, l) })
	t.Run("forward_http", func(t *testing.T) { testForwardHTTP(t, l) })
	t.Run("fullnat_http", func(t *testing.T) {
		for i := 1; i <= 2; i++ {
			ns, ip := l.Env[fmt.Sprintf("RS%d_NS", i)], l.Env[fmt.Sprintf("RS%d_IP", i)]
			l.startTestsrv(ns, fmt.Sprintf("rs%d", i), "--http", ip+":8080")
			waitTCP(t, ns, ip+":8080")
		}
		vip, lip := l.Env["VIP"], l.Env["LIP"]
		l.Ipvsadm("-A", "-t", vip+":80", "-s", "rr")
		l.Ipvsadm("-a", "-t", vip+":80", "-r", l.Env["RS1_IP"]+":8080", "-b")
		l.Ipvsadm("-a", "-t", vip+":80", "-r", l.Env["RS2_IP"]+":8080", "-b")
		l.Ipvsadm("--add-laddr", "-z", lip, "-t", vip+":80", "-F", l.Env["LB_RS_PORT"])
		c := nsutil.HTTPClient(l.Env["CLIENT_NS"], 5*time.Second)
		count := map[string]int{}
		for i := 0; i < 100; i++ {
			server, peer := get(t, c, "http://"+vip+"/")
			count[server]++
			if ap, err := netip.ParseAddrPort(peer); err != nil || ap.Addr().String() != lip {
				t.Fatalf("real server saw peer %s, want the local address %s", peer, lip)
			}
		}
		if count["rs1"] == 0 || count["rs2"] == 0 || count["rs1"]+count["rs2"] != 100 {
			t.Errorf("spread %v, want both real servers", count)
		}
		if s := l.Link("dp1").Stats; s == nil || s.TxPackets == 0 || s.RxPackets == 0 {
			t.Errorf("dp1 stats %v", s)
		}
	})
}
