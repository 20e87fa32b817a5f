package integration

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/nsutil"
)

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
	pc, err := nsutil.ListenPacket(l.Env["CLIENT_NS"], "udp", l.Env["CLIENT_IP"]+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	me := pc.LocalAddr().String()
	raddr := &net.UDPAddr{IP: net.ParseIP(vip), Port: 9000}
	buf := make([]byte, 1500)
	for i := 0; i < 6; i++ {
		msg := fmt.Sprintf("q%d", i)
		var answer string
		// a datagram lost on the way (the server's start, a first ARP) is
		// sent again; only answered ones count, in order
		for try := 0; try < 5 && answer == ""; try++ {
			pc.WriteTo([]byte(msg), raddr)
			pc.SetReadDeadline(time.Now().Add(time.Second))
			if n, _, err := pc.ReadFrom(buf); err == nil {
				answer = string(buf[:n])
			}
		}
		if !strings.HasSuffix(answer, " "+msg) {
			t.Fatalf("answer %q to %q", answer, msg)
		}
		has := strings.Contains(answer, " uoa="+me+" ")
		if has != (i < 3) {
			t.Errorf("datagram %d: answer %q, UOA expected: %v", i, answer, i < 3)
		}
		t.Logf("%s", answer)
	}
	if n := l.Counters()["lb_uoa_added"]; n != 3 {
		t.Errorf("lb_uoa_added %d, want 3", n)
	}
}
