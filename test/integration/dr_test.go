package integration

// Direct routing in the lab. The real servers are set up as an operator
// sets up a DR real server, for both families:
//
//	ip addr add VIP/32 dev lo                      the server owns the VIP …
//	ip addr add VIP6/128 dev lo nodad              … and the IPv6 VIP
//	sysctl net.ipv4.conf.{all,eth0}.arp_ignore=1   … but never answers ARP for it
//	sysctl net.ipv4.conf.{all,eth0}.arp_announce=2 … nor uses it as an ARP source
//	ip route add CLIENT/32 via ROUTER dev ret0      replies leave by their own path
//	ip route add CLIENT6/128 via ROUTER6 dev ret0
//
// IPv6 needs no sysctl: Linux answers a neighbour solicitation only for an
// address of the interface it arrived on, so never on eth0 for the VIP on
// lo (TestDirectRoutingIPv6 checks it on the wire).
//
// The return path is one extra veth pair per real server straight into the
// client namespace, a stand-in for the router real servers answer through:
// the replies (source VIP) never cross GVS. The client then receives from
// the VIP on another interface than the one it sends on, so its reverse-path
// filter is off, and so is the real server's (requests arrive on eth0, the
// route back to the client is ret0). IPv6 has no reverse-path filter.

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/nsutil"
	"github.com/gvs-lb/gvs/internal/testenv"
)

// drRealServers turns rs1 and rs2 into DR real servers of the lab's VIP
// and VIP6 with a return path to the client (both families) that bypasses
// GVS, and runs gvs-testsrv on port 80 (HTTP), 7 (TCP echo) and 9000 (UDP
// echo: bound to the VIP, so answers leave from it) of both VIPs, with the
// extra gvs-testsrv arguments given (tunnel real servers: --decap).
func drRealServers(t *testing.T, l *Lab, extra ...string) {
	t.Helper()
	cns, vip, vip6 := l.Env["CLIENT_NS"], l.Env["VIP"], l.Env["VIP6"]
	for _, k := range []string{"all", "default"} {
		l.MustNS(cns, "sysctl", "-qw", "net.ipv4.conf."+k+".rp_filter=0")
	}
	for i := 1; i <= 2; i++ {
		ns := l.Env[fmt.Sprintf("RS%d_NS", i)]
		l.MustNS(ns, "ip", "addr", "add", vip+"/32", "dev", "lo")
		l.MustNS(ns, "ip", "addr", "add", vip6+"/128", "dev", "lo", "nodad")
		for _, k := range []string{"all", "eth0"} {
			l.MustNS(ns, "sysctl", "-qw", "net.ipv4.conf."+k+".arp_ignore=1", "net.ipv4.conf."+k+".arp_announce=2",
				"net.ipv4.conf."+k+".rp_filter=0")
		}
		// the "router": ret0 in the real server, rsN in the client
		peer, ret := fmt.Sprintf("rs%d", i), "ret0"
		if out, err := exec.Command("ip", "link", "add", ret, "netns", ns, "type", "veth", "peer", "name", peer, "netns", cns).CombinedOutput(); err != nil {
			t.Fatalf("return veth for %s: %v\n%s", ns, err, out)
		}
		// no duplicate address detection on the new link: while its
		// link-local address is tentative, Linux sends no neighbour
		// solicitation, and the first IPv6 answers would wait a second
		l.MustNS(cns, "sysctl", "-qw", "net.ipv6.conf."+peer+".accept_dad=0")
		l.MustNS(ns, "sysctl", "-qw", "net.ipv6.conf."+ret+".accept_dad=0")
		router, rsSide := fmt.Sprintf("10.3.%d.1", i), fmt.Sprintf("10.3.%d.2", i)
		l.MustNS(cns, "ip", "addr", "add", router+"/30", "dev", peer)
		l.MustNS(cns, "ip", "link", "set", peer, "up")
		l.MustNS(cns, "sysctl", "-qw", "net.ipv4.conf."+peer+".rp_filter=0")
		l.MustNS(ns, "ip", "addr", "add", rsSide+"/30", "dev", ret)
		l.MustNS(ns, "ip", "link", "set", ret, "up")
		l.MustNS(ns, "ip", "route", "add", l.Env["CLIENT_IP"]+"/32", "via", router, "dev", ret)
		router6, rsSide6 := fmt.Sprintf("fd00:3:%d::1", i), fmt.Sprintf("fd00:3:%d::2", i)
		l.MustNS(cns, "ip", "addr", "add", router6+"/64", "dev", peer, "nodad")
		l.MustNS(ns, "ip", "addr", "add", rsSide6+"/64", "dev", ret, "nodad")
		l.MustNS(ns, "ip", "route", "add", l.Env["CLIENT_IP6"]+"/128", "via", router6, "dev", ret)
		// the server's own address too: health checks connect there
		l.startTestsrv(ns, fmt.Sprintf("rs%d", i), append([]string{"--http", vip + ":80", "--http", "[" + vip6 + "]:80",
			"--http", l.Env[fmt.Sprintf("RS%d_IP", i)] + ":80", "--udp-echo", vip + ":9000", "--udp-echo", "[" + vip6 + "]:9000",
			"--tcp-echo", vip + ":7", "--tcp-echo", "[" + vip6 + "]:7"}, extra...)...)
		waitTCP(t, ns, vip+":80")
		waitTCP(t, ns, "["+vip6+"]:80")
	}
}

// ipvsadmIn runs bin/ipvsadm with stdin (ipvsadm -R).
func (l *Lab) ipvsadmIn(stdin string, args ...string) string {
	l.t.Helper()
	cmd := exec.Command(filepath.Join(l.root, "bin", "ipvsadm"), args...)
	cmd.Env = append(cmd.Environ(), "GVS_DATAPLANE_SOCKET="+l.Env["DP_SOCKET"])
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		l.t.Fatalf("ipvsadm %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestDirectRouting: a DR service configured with ipvsadm -g. HTTP and UDP
// requests are answered by both real servers (rr), each sees the client's
// own address as its peer, the answers bypass GVS (lb_out stays 0 while
// lb_in grows), and the listings show Route, connections without a local
// address and a save that restores.
func TestDirectRouting(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	vip, cip := l.Env["VIP"], l.Env["CLIENT_IP"]
	rs := map[string]string{"rs1": l.Env["RS1_IP"], "rs2": l.Env["RS2_IP"]}
	drRealServers(t, l)
	l.Ipvsadm("-A", "-t", vip+":80", "-s", "rr")
	l.Ipvsadm("-a", "-t", vip+":80", "-r", rs["rs1"], "-g")
	l.Ipvsadm("-a", "-t", vip+":80", "-r", rs["rs2"], "-g")
	before := l.Counters()

	c := nsutil.HTTPClient(l.Env["CLIENT_NS"], 5*time.Second)
	count := map[string]int{}
	const n = 100
	for i := 0; i < n; i++ {
		server, peer := get(t, c, "http://"+vip+"/")
		count[server]++
		if ap, err := netip.ParseAddrPort(peer); err != nil || ap.Addr().String() != cip {
			t.Fatalf("request %d: %s saw peer %s, want the client's own address %s", i, server, peer, cip)
		}
	}
	// rr per worker: each worker alternates, so the spread is even up to
	// one connection per worker
	if count["rs1"]+count["rs2"] != n || count["rs1"] < n/2-2 || count["rs2"] < n/2-2 {
		t.Errorf("spread %v, want about %d each (rr)", count, n/2)
	}
	t.Logf("spread: %v", count)

	ctr := l.Counters()
	in, out := ctr["lb_in"]-before["lb_in"], ctr["lb_out"]
	// at least SYN, ACK, request and FIN per connection came in
	if in < 3*n || out != 0 {
		t.Errorf("lb_in +%d (want >= %d), lb_out %d (want 0: the answers bypass GVS)", in, 3*n, out)
	}
	if ctr["drop_lb_dr_not_onlink"] != 0 || ctr["lb_new_conns"]-before["lb_new_conns"] != n {
		t.Errorf("new conns +%d (want %d), drop_lb_dr_not_onlink %d", ctr["lb_new_conns"]-before["lb_new_conns"], n, ctr["drop_lb_dr_not_onlink"])
	}
	t.Logf("lb_in +%d, lb_out %d, new conns +%d", in, out, ctr["lb_new_conns"]-before["lb_new_conns"])

	// ipvsadm -L -n: Route, the real servers on the service's port
	list := l.Ipvsadm("-L", "-n")
	t.Logf("ipvsadm -L -n:\n%s", list)
	for _, a := range rs {
		if !containsFields(list, "->", a+":80", "Route", "1") {
			t.Errorf("ipvsadm -L -n has no Route line for %s:80:\n%s", a, list)
		}
	}
	// ipvsadm -L -n -c: LVS's columns, no local address
	conns := l.Ipvsadm("-L", "-n", "-c")
	sc := bufio.NewScanner(strings.NewReader(conns))
	lines := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) > 0 && f[0] == "pro":
			if strings.Join(f, " ") != "pro expire state source virtual destination" {
				t.Errorf("connection header %q: want no local column", sc.Text())
			}
		case len(f) > 0 && f[0] == "TCP":
			lines++
			if len(f) != 6 || !strings.HasPrefix(f[3], cip+":") || f[4] != vip+":80" || (f[5] != rs["rs1"]+":80" && f[5] != rs["rs2"]+":80") {
				t.Errorf("connection line %q: want client, VIP:80 and a real server:80, nothing else", sc.Text())
			}
		}
	}
	if lines == 0 {
		t.Errorf("ipvsadm -L -n -c lists no connection:\n%s", conns)
	}

	// ipvsadm -S -n saves -g lines that ipvsadm -R takes back
	saved := l.Ipvsadm("-S", "-n")
	t.Logf("ipvsadm -S -n:\n%s", saved)
	t.Logf("ipvsadm -L -n -c (first lines):\n%s", tail(strings.Join(strings.SplitN(conns, "\n", 5)[:4], "\n"), 4))
	for _, a := range rs {
		if !strings.Contains(saved, "-a -t "+vip+":80 -r "+a+":80 -g -w 1\n") {
			t.Errorf("ipvsadm -S -n has no -g line for %s:\n%s", a, saved)
		}
	}
	l.Ipvsadm("-C")
	l.ipvsadmIn(saved, "-R")
	if again := l.Ipvsadm("-S", "-n"); again != saved {
		t.Errorf("after ipvsadm -R:\n%s\nwant:\n%s", again, saved)
	}
	if s, peer := get(t, c, "http://"+vip+"/"); !strings.HasPrefix(peer, cip+":") {
		t.Errorf("after the restore %s saw peer %s", s, peer)
	}

	// UDP: the echo answers come from the VIP, straight from the servers
	l.Ipvsadm("-A", "-u", vip+":9000", "-s", "rr")
	l.Ipvsadm("-a", "-u", vip+":9000", "-r", rs["rs1"]+":9000", "-g")
	l.Ipvsadm("-a", "-u", vip+":9000", "-r", rs["rs2"]+":9000", "-g")
	seen := map[string]int{}
	for i := 0; i < 10; i++ {
		name := udpAsk(t, l, vip+":9000", fmt.Sprintf("question %d", i))
		seen[name]++
	}
	if seen["rs1"] == 0 || seen["rs2"] == 0 {
		t.Errorf("UDP answers %v: both real servers should answer", seen)
	}
	if out := l.Counters()["lb_out"]; out != 0 {
		t.Errorf("lb_out %d after UDP: the answers crossed GVS", out)
	}
}

// TestDirectRoutingControlPlane: gvs-controlplane with lb_kind DR and
// HTTP health checks on the real servers' own addresses configures the
// Route real servers; requests through the VIP reach the servers with the
// client's address and the answers bypass GVS.
func TestDirectRoutingControlPlane(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "1")
	vip, cip := l.Env["VIP"], l.Env["CLIENT_IP"]
	drRealServers(t, l)
	cfg := fmt.Sprintf(`# gvs-controlplane config of TestDirectRoutingControlPlane
dataplane: {socket: %[1]s, poll_interval: 200ms}
http: {listen: "%[2]s"}
global_defs: {bindto: %[3]s}
virtual_servers:
  - name: web-dr
    vip: %[4]s
    port: 80
    lb_algo: rr
    lb_kind: DR
    real_servers:
      - {ip: %[5]s, port: 80, HTTP_GET: {url: [{path: /, regex: "^rs1 "}], delay_loop: 1, connect_timeout: 1}}
      - {ip: %[6]s, port: 80, HTTP_GET: {url: [{path: /, regex: "^rs2 "}], delay_loop: 1, connect_timeout: 1}}
`, l.Env["DP_SOCKET"], cpListen, l.Env["LB_KNI_RS_IP"], vip, l.Env["RS1_IP"], l.Env["RS2_IP"])
	l.startControlPlane(cfg)
	testenv.Eventually(t, 10*time.Second, "two Route real servers configured", func() bool {
		return strings.Count(l.Ipvsadm("-L", "-n"), " Route ") == 2
	})
	c := nsutil.HTTPClient(l.Env["CLIENT_NS"], 5*time.Second)
	count := map[string]int{}
	for i := 0; i < 20; i++ {
		server, peer := get(t, c, "http://"+vip+"/")
		count[server]++
		if !strings.HasPrefix(peer, cip+":") {
			t.Fatalf("%s saw peer %s, want the client %s", server, peer, cip)
		}
	}
	if count["rs1"] != 10 || count["rs2"] != 10 {
		t.Errorf("spread %v, want 10 each (rr, one worker)", count)
	}
	if ctr := l.Counters(); ctr["lb_out"] != 0 || ctr["lb_in"] < 60 {
		t.Errorf("lb_in %d, lb_out %d: want the answers to bypass GVS", ctr["lb_in"], ctr["lb_out"])
	}
}

// udpAsk sends msg from a new client socket (a new source port, the
// client's address of to's family) and returns the name of the real
// server that echoed it.
func udpAsk(t *testing.T, l *Lab, to, msg string) string {
	t.Helper()
	dst := netip.MustParseAddrPort(to)
	src := netip.AddrPortFrom(netip.MustParseAddr(l.Env["CLIENT_IP"]), 0)
	if dst.Addr().Is6() {
		src = netip.AddrPortFrom(netip.MustParseAddr(l.Env["CLIENT_IP6"]), 0)
	}
	pc, err := nsutil.ListenPacket(l.Env["CLIENT_NS"], "udp", src.String())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	raddr := net.UDPAddrFromAddrPort(dst)
	buf := make([]byte, 1500)
	for try := 0; try < 5; try++ {
		pc.WriteTo([]byte(msg), raddr)
		pc.SetReadDeadline(time.Now().Add(time.Second))
		n, from, err := pc.ReadFrom(buf)
		if err != nil || from.String() != raddr.String() {
			continue
		}
		name, rest, _ := strings.Cut(string(buf[:n]), " ")
		if rest != msg {
			t.Fatalf("UDP answer %q to %q", buf[:n], msg)
		}
		return name
	}
	t.Fatalf("no UDP answer from %s to %q", to, msg)
	return ""
}

// containsFields reports whether a line of out starts with these
// whitespace-separated fields.
func containsFields(out string, fields ...string) bool {
	sc := bufio.NewScanner(strings.NewReader(out))
	want := strings.Join(fields, " ")
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= len(fields) && strings.Join(f[:len(fields)], " ") == want {
			return true
		}
	}
	return false
}
