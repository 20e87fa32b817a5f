package integration

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/nsutil"
	"github.com/gvs-lb/gvs/internal/testenv"
)

// TestOnePacketScheduling: ipvsadm -o on a UDP service: 20 datagrams of
// one flow (one client socket) are each scheduled, rr over two real
// servers on the worker the flow reaches: 10 and 10, no connection
// entry; the real servers' answers find no connection (one-packet
// scheduling is for datagrams that need no answer through the balancer).
func TestOnePacketScheduling(t *testing.T) {
	l := fullNATLab(t)
	vip := l.Env["VIP"]
	svc := vip + ":9001"
	l.Ipvsadm("-A", "-u", svc, "-s", "rr", "-o")
	l.Ipvsadm("-a", "-u", svc, "-r", l.Env["RS1_IP"]+":9000", "-b")
	l.Ipvsadm("-a", "-u", svc, "-r", l.Env["RS2_IP"]+":9000", "-b")
	l.Ipvsadm("--add-laddr", "-z", l.Env["LIP"], "-u", svc, "-F", l.Env["LB_RS_PORT"])
	if out := l.Ipvsadm("-L", "-n", "-u", svc); !strings.Contains(out, "UDP  "+svc+" rr ops\n") {
		t.Fatalf("listing:\n%s", out)
	}
	if out := l.Ipvsadm("-S", "-n"); !strings.Contains(out, "-A -u "+svc+" -s rr -o\n") {
		t.Fatalf("ipvsadm -S:\n%s", out)
	}
	before := l.Counters()
	pc, err := nsutil.ListenPacket(l.Env["CLIENT_NS"], "udp", l.Env["CLIENT_IP"]+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	raddr := &net.UDPAddr{IP: net.ParseIP(vip), Port: 9001}
	for i := 0; i < 20; i++ {
		if _, err := pc.WriteTo([]byte(fmt.Sprintf("datagram %d", i)), raddr); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "20 one-packet datagrams forwarded", func() bool {
		return l.Counters()["lb_one_packet"]-before["lb_one_packet"] >= 20
	})
	stats := l.Ipvsadm("-L", "-n", "--stats", "--exact", "-u", svc)
	for _, rs := range []string{l.Env["RS1_IP"], l.Env["RS2_IP"]} {
		if v := statsLine(t, stats, "-> "+rs+":9000"); v[0] != 10 || v[1] != 10 {
			t.Errorf("real server %s: %d connections, %d packets, want 10 and 10 (each datagram scheduled on its own)\n%s", rs, v[0], v[1], stats)
		}
	}
	if out := l.Ipvsadm("-L", "-n", "-c"); strings.Contains(out, svc) {
		t.Errorf("one-packet datagrams left connections:\n%s", out)
	}
	// the echo servers answer to the local address: no connection there
	testenv.Eventually(t, 10*time.Second, "the real servers' answers dropped without a connection", func() bool {
		return l.Counters()["drop_lb_no_conn"]-before["drop_lb_no_conn"] >= 1
	})
}
