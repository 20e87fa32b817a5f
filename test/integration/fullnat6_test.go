package integration

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/nsutil"
)

// TestFullNATLabIPv6: FullNAT over IPv6 on two workers, as TestFullNAT
// and TestSynProxyLab do it over IPv4: an IPv6 client's HTTP requests to
// the IPv6 VIP reach both IPv6 real servers (wrr 1:3) from the IPv6 local
// address, the 20-byte TOA on rs1's wire carries the client's IPv6
// address, replies are handed to the worker that owns their connection,
// the UDP echo answers through the VIP, and with the SYN proxy on the
// same service every request still completes with the TOA.
func TestFullNATLabIPv6(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	vip6, lip6, cip6 := l.Env["VIP6"], l.Env["LIP6"], l.Env["CLIENT_IP6"]
	for i := 1; i <= 2; i++ {
		ns, ip6 := l.Env[fmt.Sprintf("RS%d_NS", i)], l.Env[fmt.Sprintf("RS%d_IP6", i)]
		l.startTestsrv(ns, fmt.Sprintf("rs%d", i), "--http", hostPort(ip6, "8080"), "--udp-echo", hostPort(ip6, "9000"))
		waitTCP(t, ns, hostPort(ip6, "8080"))
	}
	svc := hostPort(vip6, "80")
	l.Ipvsadm("-A", "-t", svc, "-s", "wrr")
	l.Ipvsadm("-a", "-t", svc, "-r", hostPort(l.Env["RS1_IP6"], "8080"), "-b", "-w", "1")
	l.Ipvsadm("-a", "-t", svc, "-r", hostPort(l.Env["RS2_IP6"], "8080"), "-b", "-w", "3")
	l.Ipvsadm("--add-laddr", "-z", lip6, "-t", svc, "-F", l.Env["LB_RS_PORT"])

	c := nsutil.HTTPClient(l.Env["CLIENT_NS"], 5*time.Second)
	requests := func(n int) map[string]int {
		t.Helper()
		count := map[string]int{}
		for i := 0; i < n; i++ {
			server, peer := get(t, c, "http://"+svc+"/")
			count[server]++
			if ap, err := netip.ParseAddrPort(peer); err != nil || ap.Addr().String() != lip6 {
				t.Fatalf("request %d: %s saw peer %s, want the local address %s", i, server, peer, lip6)
			}
		}
		return count
	}
	checkTOA := func(got []netip.AddrPort, what string) {
		t.Helper()
		if len(got) == 0 {
			t.Fatalf("%s: rs1 never saw a TOA option", what)
		}
		for _, ap := range got {
			if ap.Addr().String() != cip6 {
				t.Fatalf("%s: TOA carries %s, want the client %s", what, ap, cip6)
			}
		}
	}

	toa := captureTOA(t, l, l.Env["RS1_NS"], 8080)
	const n = 200
	count := requests(n)
	// wrr 1:3 is exact per worker; allow for the two workers' phases
	if count["rs1"]+count["rs2"] != n || count["rs1"] < n/4-4 || count["rs1"] > n/4+4 {
		t.Errorf("spread %v, want rs1 %d±4 (weights 1:3)", count, n/4)
	}
	checkTOA(toa(), "FullNAT")
	ctr := l.Counters()
	if ctr["lb_redirected_out"] == 0 || ctr["lb_redirected_in"] != ctr["lb_redirected_out"] {
		t.Errorf("hand-over between workers: out %d in %d", ctr["lb_redirected_out"], ctr["lb_redirected_in"])
	}
	if ctr["lb_toa_added"] < n/4 {
		t.Errorf("lb_toa_added %d, want at least one per connection to rs1", ctr["lb_toa_added"])
	}
	t.Logf("spread %v, new conns %d, redirected %d, toa %d", count, ctr["lb_new_conns"], ctr["lb_redirected_out"], ctr["lb_toa_added"])
	list := l.Ipvsadm("-L", "-n")
	if !strings.Contains(list, "TCP  "+svc+" wrr\n") || !containsFields(list, "->", hostPort(l.Env["RS2_IP6"], "8080"), "FullNat", "3") {
		t.Errorf("ipvsadm -L -n:\n%s", list)
	}

	// UDP through the VIP
	usvc := hostPort(vip6, "9000")
	l.Ipvsadm("-A", "-u", usvc, "-s", "rr")
	for i := 1; i <= 2; i++ {
		l.Ipvsadm("-a", "-u", usvc, "-r", hostPort(l.Env[fmt.Sprintf("RS%d_IP6", i)], "9000"), "-b")
	}
	l.Ipvsadm("--add-laddr", "-z", lip6, "-u", usvc, "-F", l.Env["LB_RS_PORT"])
	seen := map[string]int{}
	for i := 0; i < 10; i++ {
		seen[udpAsk(t, l, usvc, fmt.Sprintf("question %d", i))]++
	}
	if seen["rs1"] == 0 || seen["rs2"] == 0 {
		t.Errorf("UDP answers %v: both real servers should answer", seen)
	}

	// the SYN proxy on the same service
	l.Ipvsadm("-E", "-t", svc, "-s", "wrr", "-j", "enable")
	before := l.Counters()
	toa = captureTOA(t, l, l.Env["RS1_NS"], 8080)
	const m = 40
	requests(m)
	checkTOA(toa(), "SYN proxy")
	ctr = l.Counters()
	if d := ctr["lb_synproxy_established"] - before["lb_synproxy_established"]; d < m {
		t.Errorf("%d server handshakes through the SYN proxy for %d requests", d, m)
	}
}
