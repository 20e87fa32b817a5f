package integration

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/nsutil"
)

// TestMasqLab: NAT (ipvsadm -m) on two workers. The real servers' route
// to the clients is GVS (the lab's default route in their namespaces), so
// their answers come back through it from their own addresses; whichever
// worker's queue an answer lands on, it reaches the client from the VIP.
// HTTP over IPv4 and IPv6 (each server sees the client's own address), an
// iperf3 stream, UDP request/response over IPv4 and IPv6, and the listings
// (Masq, no local address, -S/-R).
func TestMasqLab(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	vip, vip6, cip, cip6 := l.Env["VIP"], l.Env["VIP6"], l.Env["CLIENT_IP"], l.Env["CLIENT_IP6"]
	for i := 1; i <= 2; i++ {
		ns, ip, ip6 := l.Env[fmt.Sprintf("RS%d_NS", i)], l.Env[fmt.Sprintf("RS%d_IP", i)], l.Env[fmt.Sprintf("RS%d_IP6", i)]
		l.startTestsrv(ns, fmt.Sprintf("rs%d", i), "--http", ip+":8080", "--http", "["+ip6+"]:8080", "--udp-echo", ip+":9000",
			"--udp-echo", "["+ip6+"]:9000")
		waitTCP(t, ns, ip+":8080")
		waitTCP(t, ns, "["+ip6+"]:8080")
	}
	l.Ipvsadm("-A", "-t", vip+":80", "-s", "rr")
	l.Ipvsadm("-A", "-t", "["+vip6+"]:80", "-s", "rr")
	for i := 1; i <= 2; i++ {
		l.Ipvsadm("-a", "-t", vip+":80", "-r", l.Env[fmt.Sprintf("RS%d_IP", i)]+":8080", "-m")
		l.Ipvsadm("-a", "-t", "["+vip6+"]:80", "-r", "["+l.Env[fmt.Sprintf("RS%d_IP6", i)]+"]:8080", "-m")
	}
	before := l.Counters()

	c := nsutil.HTTPClient(l.Env["CLIENT_NS"], 5*time.Second)
	const n = 100
	for _, v := range []struct{ url, client string }{{"http://" + vip + "/", cip}, {"http://[" + vip6 + "]/", cip6}} {
		count := map[string]int{}
		for i := 0; i < n; i++ {
			server, peer := get(t, c, v.url)
			count[server]++
			if ap, err := netip.ParseAddrPort(peer); err != nil || ap.Addr().String() != v.client {
				t.Fatalf("%s request %d: %s saw peer %s, want the client's own address %s", v.url, i, server, peer, v.client)
			}
		}
		if count["rs1"] == 0 || count["rs2"] == 0 || count["rs1"]+count["rs2"] != n {
			t.Errorf("%s: spread %v, want both real servers", v.url, count)
		}
		t.Logf("%s: spread %v", v.url, count)
	}
	ctr := l.Counters()
	in, out := ctr["lb_in"]-before["lb_in"], ctr["lb_out"]-before["lb_out"]
	redir := ctr["lb_redirected_in"] - before["lb_redirected_in"]
	// SYN, ACK, request, FIN at least each way per connection
	if in < 3*2*n || out < 3*2*n || ctr["lb_new_conns"]-before["lb_new_conns"] != 2*n {
		t.Errorf("lb_in +%d lb_out +%d (want >= %d each), new conns +%d (want %d)", in, out, 3*2*n, ctr["lb_new_conns"]-before["lb_new_conns"], 2*n)
	}
	if ctr["lb_masq_index_full"] != 0 || ctr["drop_lb_no_conn"] != before["drop_lb_no_conn"] {
		t.Errorf("lb_masq_index_full %d, drop_lb_no_conn +%d", ctr["lb_masq_index_full"], ctr["drop_lb_no_conn"]-before["drop_lb_no_conn"])
	}
	// the answers of 200 connections were hashed onto the two queues
	// independently of their requests: some crossed to the owner
	t.Logf("lb_in +%d, lb_out +%d, replies handed to their owner +%d, lb_masq_transit %d", in, out, redir, ctr["lb_masq_transit"])
	if redir == 0 {
		t.Errorf("no reply was handed between the workers in %d connections: the two-worker path was not exercised", 2*n)
	}

	list := l.Ipvsadm("-L", "-n")
	t.Logf("ipvsadm -L -n:\n%s", list)
	for i := 1; i <= 2; i++ {
		for _, a := range []string{l.Env[fmt.Sprintf("RS%d_IP", i)] + ":8080", "[" + l.Env[fmt.Sprintf("RS%d_IP6", i)] + "]:8080"} {
			if !containsFields(list, "->", a, "Masq", "1") {
				t.Errorf("ipvsadm -L -n has no Masq line for %s", a)
			}
		}
	}
	conns := l.Ipvsadm("-L", "-n", "-c")
	if !strings.Contains(conns, "pro expire state       source") || strings.Contains(conns, "local") {
		t.Errorf("ipvsadm -L -n -c: want LVS's columns without a local address:\n%.600s", conns)
	}
	saved := l.Ipvsadm("-S", "-n")
	if !strings.Contains(saved, "-a -t "+vip+":80 -r "+l.Env["RS1_IP"]+":8080 -m -w 1\n") {
		t.Errorf("ipvsadm -S -n has no -m line:\n%s", saved)
	}
	l.Ipvsadm("-C")
	l.ipvsadmIn(saved, "-R")
	if again := l.Ipvsadm("-S", "-n"); again != saved {
		t.Errorf("after ipvsadm -R:\n%s\nwant:\n%s", again, saved)
	}

	// a stream: iperf3 through a NAT service
	iperfServiceBy(t, l, "-m")
	mb, retr := iperfThrough(t, l, 3, 5)()
	t.Logf("iperf3 through NAT: %d MB, %d retransmissions", mb, retr)

	// UDP over both families: answers from the servers' own addresses
	// leave GVS from the VIP (udpAsk takes only those)
	for _, f := range []struct{ vip, rs string }{{vip, "RS%d_IP"}, {vip6, "RS%d_IP6"}} {
		svc := hostPort(f.vip, "9000")
		l.Ipvsadm("-A", "-u", svc, "-s", "rr")
		for i := 1; i <= 2; i++ {
			l.Ipvsadm("-a", "-u", svc, "-r", hostPort(l.Env[fmt.Sprintf(f.rs, i)], "9000"), "-m")
		}
		seen := map[string]int{}
		for i := 0; i < 20; i++ {
			seen[udpAsk(t, l, svc, fmt.Sprintf("question %d", i))]++
		}
		if seen["rs1"] == 0 || seen["rs2"] == 0 {
			t.Errorf("UDP answers through %s: %v: both real servers should answer", svc, seen)
		}
		t.Logf("UDP through %s: %v", svc, seen)
	}
}
