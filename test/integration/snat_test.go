package integration

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/nsutil"
)

// TestSNATLab: the real servers' namespaces stand for inside hosts (their
// default route is GVS) and the client's for the outside, where a server
// listens. A SNAT match service for TCP and one for UDP from rs1's address
// only, leaving by dp0, give the outside server the SNAT address
// 10.1.0.200 as its peer; rs2, outside the range, reaches it with its own
// address (routed). Two workers: the answers come to ports whose owner
// bits name the worker that made the connection.
func TestSNATLab(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	cns, cip := l.Env["CLIENT_NS"], l.Env["CLIENT_IP"]
	rs1, rs2 := l.Env["RS1_IP"], l.Env["RS2_IP"]
	const wan = "10.1.0.200"
	l.Dpip("addr", "add", wan+"/32", "dev", l.Env["LB_CLIENT_PORT"])
	l.startTestsrv(cns, "outside", "--http", cip+":8080", "--udp-echo", cip+":9000")
	waitTCP(t, cns, cip+":8080")

	mt := "proto=tcp,src-range=" + rs1 + "-" + rs1 + ",oif=" + l.Env["LB_CLIENT_PORT"]
	mu := "proto=udp,src-range=" + rs1 + "-" + rs1 + ",dst-range=" + cip + ":9000-9000"
	l.Ipvsadm("-A", "-s", "rr", "-H", mt)
	l.Ipvsadm("-a", "-H", mt, "-r", wan+":0", "-J", "-w", "100")
	l.Ipvsadm("-A", "-s", "rr", "-H", mu)
	l.Ipvsadm("-a", "-H", mu, "-r", wan+":0", "-J")
	before := l.Counters()

	const n = 50
	c1 := nsutil.HTTPClient(l.Env["RS1_NS"], 5*time.Second)
	for i := 0; i < n; i++ {
		_, peer := get(t, c1, "http://"+cip+":8080/")
		if ap, err := netip.ParseAddrPort(peer); err != nil || ap.Addr().String() != wan {
			t.Fatalf("request %d from rs1: the outside server saw %s, want the SNAT address %s", i, peer, wan)
		}
	}
	c2 := nsutil.HTTPClient(l.Env["RS2_NS"], 5*time.Second)
	if _, peer := get(t, c2, "http://"+cip+":8080/"); !strings.HasPrefix(peer, rs2+":") {
		t.Errorf("rs2 (outside the match) was seen as %s, want its own address", peer)
	}
	ctr := l.Counters()
	if d := ctr["lb_new_conns"] - before["lb_new_conns"]; d != n {
		t.Errorf("new conns +%d, want %d (one per request from rs1)", d, n)
	}
	t.Logf("lb_in +%d, lb_out +%d, replies handed to their owner +%d", ctr["lb_in"]-before["lb_in"], ctr["lb_out"]-before["lb_out"],
		ctr["lb_redirected_in"]-before["lb_redirected_in"])

	// UDP: the echo answers reach rs1 from the outside server's address
	pc, err := nsutil.ListenPacket(l.Env["RS1_NS"], "udp", rs1+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(cip + ":9000"))
	buf := make([]byte, 1500)
	got := false
	for try := 0; try < 5 && !got; try++ {
		pc.WriteTo([]byte("question"), to)
		pc.SetReadDeadline(time.Now().Add(time.Second))
		m, from, err := pc.ReadFrom(buf)
		got = err == nil && from.String() == to.String() && strings.HasSuffix(string(buf[:m]), " question")
	}
	if !got {
		t.Fatal("no UDP echo through SNAT")
	}

	list := l.Ipvsadm("-L", "-n")
	t.Logf("ipvsadm -L -n:\n%s", list)
	for _, want := range []string{"MATCH tcp,from=" + rs1 + "-" + rs1 + ":0-0,oif=" + l.Env["LB_CLIENT_PORT"] + " rr",
		"MATCH udp,from=" + rs1 + "-" + rs1 + ":0-0,to=" + cip + "-" + cip + ":9000-9000 rr"} {
		if !strings.Contains(list, want+"\n") {
			t.Errorf("ipvsadm -L -n lacks %q", want)
		}
	}
	if !containsFields(list, "->", wan+":0", "SNAT", "100") {
		t.Errorf("ipvsadm -L -n lacks the SNAT address line")
	}
	conns := l.Ipvsadm("-L", "-n", "-c")
	if !strings.Contains(conns, rs1+":") || !strings.Contains(conns, wan+":") {
		t.Errorf("ipvsadm -L -n -c shows no SNAT connection (%s via %s):\n%.800s", rs1, wan, conns)
	}
	saved := l.Ipvsadm("-S", "-n")
	l.Ipvsadm("-C")
	l.ipvsadmIn(saved, "-R")
	if again := l.Ipvsadm("-S", "-n"); again != saved {
		t.Errorf("after ipvsadm -R:\n%s\nwant:\n%s", again, saved)
	}
	if _, peer := get(t, c1, "http://"+cip+":8080/"); !strings.HasPrefix(peer, wan+":") {
		t.Errorf("after the restore the outside server saw %s", peer)
	}
}

// TestSNATLabIPv6: SNAT over IPv6 on two workers. A TCP match service by
// an IPv6 source range (rs1's address) leaving by dp0 and a UDP one by
// af=ipv6 and the inside interface give the outside peer in the client's
// namespace the IPv6 SNAT address fd00:1::200 (added with dpip on dp0) as
// the source of rs1's connections: the HTTP server's peer, and the source
// of the datagrams the test's own UDP socket receives and answers; rs2,
// outside the TCP range, is seen with its own address.
func TestSNATLabIPv6(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	cns, cip6 := l.Env["CLIENT_NS"], l.Env["CLIENT_IP6"]
	rs1, rs2 := l.Env["RS1_IP6"], l.Env["RS2_IP6"]
	const wan = "fd00:1::200"
	l.Dpip("addr", "add", wan+"/128", "dev", l.Env["LB_CLIENT_PORT"])
	l.startTestsrv(cns, "outside", "--http", hostPort(cip6, "8080"))
	waitTCP(t, cns, hostPort(cip6, "8080"))

	mt := "proto=tcp,src-range=[" + rs1 + "-" + rs1 + "],oif=" + l.Env["LB_CLIENT_PORT"]
	mu := "proto=udp,af=ipv6,iif=" + l.Env["LB_RS_PORT"]
	for _, m := range []string{mt, mu} {
		l.Ipvsadm("-A", "-s", "rr", "-H", m)
		l.Ipvsadm("-a", "-H", m, "-r", hostPort(wan, "0"), "-J")
	}
	before := l.Counters()

	const n = 30
	c1 := nsutil.HTTPClient(l.Env["RS1_NS"], 5*time.Second)
	for i := 0; i < n; i++ {
		_, peer := get(t, c1, "http://"+hostPort(cip6, "8080")+"/")
		if ap, err := netip.ParseAddrPort(peer); err != nil || ap.Addr().String() != wan {
			t.Fatalf("request %d from rs1: the outside server saw %s, want the SNAT address %s", i, peer, wan)
		}
	}
	c2 := nsutil.HTTPClient(l.Env["RS2_NS"], 5*time.Second)
	if _, peer := get(t, c2, "http://"+hostPort(cip6, "8080")+"/"); !strings.HasPrefix(peer, "["+rs2+"]:") {
		t.Errorf("rs2 (outside the TCP match) was seen as %s, want its own address", peer)
	}
	ctr := l.Counters()
	if d := ctr["lb_new_conns"] - before["lb_new_conns"]; d != n {
		t.Errorf("new conns +%d, want %d (one per request from rs1)", d, n)
	}
	t.Logf("lb_in +%d, lb_out +%d, replies handed to their owner +%d", ctr["lb_in"]-before["lb_in"], ctr["lb_out"]-before["lb_out"],
		ctr["lb_redirected_in"]-before["lb_redirected_in"])

	// UDP: the outside socket sees the SNAT address and answers it; the
	// answer reaches rs1 from the outside address
	outside, err := nsutil.ListenPacket(cns, "udp", hostPort(cip6, "9000"))
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close()
	inside, err := nsutil.ListenPacket(l.Env["RS1_NS"], "udp", hostPort(rs1, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(hostPort(cip6, "9000")))
	if _, err := inside.WriteTo([]byte("question"), to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	outside.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, from, err := outside.ReadFrom(buf)
	if err != nil || string(buf[:m]) != "question" {
		t.Fatalf("the outside server got %q from %v (%v)", buf[:m], from, err)
	}
	if ap := from.(*net.UDPAddr).AddrPort(); ap.Addr().String() != wan {
		t.Fatalf("the outside server got the datagram from %s, want the SNAT address %s", ap, wan)
	}
	outside.WriteTo([]byte("answer"), from)
	inside.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, back, err := inside.ReadFrom(buf)
	if err != nil || string(buf[:m]) != "answer" || back.String() != to.String() {
		t.Fatalf("rs1 got %q from %v (%v), want the answer from %s", buf[:m], back, err, to)
	}

	list := l.Ipvsadm("-L", "-n")
	t.Logf("ipvsadm -L -n:\n%s", list)
	for _, want := range []string{"MATCH tcp,from=[" + rs1 + "-" + rs1 + "]:0-0,oif=" + l.Env["LB_CLIENT_PORT"] + " rr",
		"MATCH udp,iif=" + l.Env["LB_RS_PORT"] + " rr"} {
		if !strings.Contains(list, want+"\n") {
			t.Errorf("ipvsadm -L -n lacks %q", want)
		}
	}
	if !containsFields(list, "->", hostPort(wan, "0"), "SNAT", "1") {
		t.Errorf("ipvsadm -L -n lacks the SNAT address line")
	}
	saved := l.Ipvsadm("-S", "-n")
	l.Ipvsadm("-C")
	l.ipvsadmIn(saved, "-R")
	if again := l.Ipvsadm("-S", "-n"); again != saved {
		t.Errorf("after ipvsadm -R:\n%s\nwant:\n%s", again, saved)
	}
	t.Logf("ipvsadm -S -n:\n%s", saved)
}
