package integration

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/nsutil"
)

// uoaRequests sends six datagrams from a fresh client socket on cip to
// svc (host:port) and checks that the first trail answers name the
// client's own address and port (the server read the UOA) and the later
// ones do not. A warm-up exchange from another socket first makes sure
// the server answers, so no datagram of the checked connection is lost to
// its start; datagrams lost on the way are sent again (only answered ones
// count, in order). lb_uoa_added grows by trail over the six.
func uoaRequests(t *testing.T, l *Lab, cip, svc string, trail int) {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", svc)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(pc net.PacketConn, msg string) string {
		buf := make([]byte, 1500)
		for try := 0; try < 5; try++ {
			pc.WriteTo([]byte(msg), raddr)
			pc.SetReadDeadline(time.Now().Add(time.Second))
			if n, _, err := pc.ReadFrom(buf); err == nil {
				return string(buf[:n])
			}
		}
		return ""
	}
	open := func() net.PacketConn {
		pc, err := nsutil.ListenPacket(l.Env["CLIENT_NS"], "udp", hostPort(cip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		return pc
	}
	warm := open()
	if a := ask(warm, "warm-up"); !strings.HasSuffix(a, " warm-up") {
		t.Fatalf("%s: no answer to a warm-up datagram (%q)", svc, a)
	}
	warm.Close()
	before := l.Counters()["lb_uoa_added"]
	pc := open()
	defer pc.Close()
	me := pc.LocalAddr().String()
	for i := 0; i < 6; i++ {
		msg := fmt.Sprintf("q%d", i)
		answer := ask(pc, msg)
		if !strings.HasSuffix(answer, " "+msg) {
			t.Fatalf("%s: answer %q to %q", svc, answer, msg)
		}
		if has := strings.Contains(answer, " uoa="+me+" "); has != (i < trail) {
			t.Errorf("%s: datagram %d: answer %q, UOA of %s expected: %v", svc, i, answer, me, i < trail)
		}
		t.Logf("%s", answer)
	}
	if n := l.Counters()["lb_uoa_added"] - before; n != uint64(trail) {
		t.Errorf("%s: lb_uoa_added grew by %d, want %d", svc, n, trail)
	}
}

// TestUOALab: with ipvs.uoa_max_trail 3, a UDP server behind FullNAT
// (gvs-testsrv --uoa, reading IP_RECVOPTS through Linux's own UDP stack)
// finds the client's address and port in the first three datagrams of a
// connection and not in the later ones; it still sees the local address
// as the datagrams' source.
func TestUOALab(t *testing.T) {
	t.Setenv("GVS_LAB_UOA_MAX_TRAIL", "3")
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	ns, ip := l.Env["RS1_NS"], l.Env["RS1_IP"]
	l.startTestsrv(ns, "rs1", "--udp-echo", ip+":9000", "--uoa")
	vip := l.Env["VIP"]
	l.Ipvsadm("-A", "-u", vip+":9000", "-s", "rr")
	l.Ipvsadm("-a", "-u", vip+":9000", "-r", ip+":9000", "-b")
	l.Ipvsadm("-P", "-z", l.Env["LIP"], "-u", vip+":9000", "-F", l.Env["LB_RS_PORT"])
	uoaRequests(t, l, l.Env["CLIENT_IP"], vip+":9000", 3)
}

// TestUOALabOPP: with ipvs.uoa_mode opp, the same server reads the
// client's address from the header of IP protocol 248 (a raw socket
// beside its UDP socket, answering through the UDP socket) over IPv4,
// over IPv6 and for a NAT64 service (an IPv6 client, the IPv4 server),
// in the first three datagrams of each connection only.
func TestUOALabOPP(t *testing.T) {
	t.Setenv("GVS_LAB_UOA_MAX_TRAIL", "3")
	t.Setenv("GVS_LAB_UOA_MODE", "opp")
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	ns, rs4, rs6 := l.Env["RS1_NS"], l.Env["RS1_IP"], l.Env["RS1_IP6"]
	l.startTestsrv(ns, "rs1", "--uoa", "--udp-echo", hostPort(rs4, "9000"), "--udp-echo", hostPort(rs6, "9000"), "--udp-echo", hostPort(rs4, "9001"))
	for _, s := range []struct{ vip, port, rs, lip string }{
		{l.Env["VIP"], "9000", rs4, l.Env["LIP"]},
		{l.Env["VIP6"], "9000", rs6, l.Env["LIP6"]},
		{l.Env["VIP6"], "9001", rs4, l.Env["LIP"]}, // NAT64
	} {
		svc := hostPort(s.vip, s.port)
		l.Ipvsadm("-A", "-u", svc, "-s", "rr")
		l.Ipvsadm("-a", "-u", svc, "-r", hostPort(s.rs, s.port), "-b")
		l.Ipvsadm("-P", "-z", s.lip, "-u", svc, "-F", l.Env["LB_RS_PORT"])
	}
	uoaRequests(t, l, l.Env["CLIENT_IP"], hostPort(l.Env["VIP"], "9000"), 3)
	uoaRequests(t, l, l.Env["CLIENT_IP6"], hostPort(l.Env["VIP6"], "9000"), 3)
	uoaRequests(t, l, l.Env["CLIENT_IP6"], hostPort(l.Env["VIP6"], "9001"), 3)
	if n := l.Counters()["lb_uoa_failed"]; n != 0 {
		t.Errorf("lb_uoa_failed %d, want 0", n)
	}
}
