package integration

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/nsutil"
)

// TestFragLab: a 4000-byte UDP request from the lab client through a
// FullNAT UDP service, IPv4 and IPv6, on two workers: Linux fragments it
// (1500-byte MTU), GVS forwards the fragments by its fragment cache, the
// real server's own stack reassembles it and its echo (4000 bytes and the
// server's name, fragmented by its stack) comes back whole to the client.
func TestFragLab(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	ns, ip, ip6 := l.Env["RS1_NS"], l.Env["RS1_IP"], l.Env["RS1_IP6"]
	l.startTestsrv(ns, "rs1", "--udp-echo", ip+":9000", "--udp-echo", "["+ip6+"]:9000")
	vip, vip6 := l.Env["VIP"], l.Env["VIP6"]
	l.Ipvsadm("-A", "-u", vip+":9000", "-s", "rr")
	l.Ipvsadm("-a", "-u", vip+":9000", "-r", ip+":9000", "-b")
	l.Ipvsadm("-P", "-z", l.Env["LIP"], "-u", vip+":9000", "-F", l.Env["LB_RS_PORT"])
	l.Ipvsadm("-A", "-u", "["+vip6+"]:9000", "-s", "rr")
	l.Ipvsadm("-a", "-u", "["+vip6+"]:9000", "-r", "["+ip6+"]:9000", "-b")
	l.Ipvsadm("-P", "-z", l.Env["LIP6"], "-u", "["+vip6+"]:9000", "-F", l.Env["LB_RS_PORT"])
	req := make([]byte, 4000)
	for i := range req {
		req[i] = byte('a' + i%26)
	}
	want := append([]byte("rs1 "), req...)
	for _, v := range []struct{ net, local, vip string }{{"udp4", l.Env["CLIENT_IP"] + ":0", vip}, {"udp6", "[" + l.Env["CLIENT_IP6"] + "]:0", vip6}} {
		pc, err := nsutil.ListenPacket(l.Env["CLIENT_NS"], v.net, v.local)
		if err != nil {
			t.Fatal(err)
		}
		raddr := &net.UDPAddr{IP: net.ParseIP(v.vip), Port: 9000}
		buf := make([]byte, 65536)
		var got []byte
		// a datagram lost on the way (the server's start, a first neighbour
		// resolution) is sent again
		for try := 0; try < 5 && got == nil; try++ {
			if _, err := pc.WriteTo(req, raddr); err != nil {
				t.Fatal(err)
			}
			pc.SetReadDeadline(time.Now().Add(time.Second))
			if n, _, err := pc.ReadFrom(buf); err == nil {
				got = buf[:n]
			}
		}
		pc.Close()
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: answer of %d bytes, want %d (%q…)", v.net, len(got), len(want), got[:min(len(got), 16)])
		}
		t.Logf("%s: %d-byte request answered with %d bytes", v.net, len(req), len(got))
	}
	ctr := l.Counters()
	// each way three fragments: a first and two later ones per datagram
	// (more if a datagram was sent again)
	if ctr["lb_frag_first"] < 4 || ctr["lb_frag_forwarded"] < 8 || ctr["lb_frag_forwarded"] != 2*ctr["lb_frag_first"] {
		t.Errorf("lb_frag_first %d (want >= 4), lb_frag_forwarded %d (want >= 8)", ctr["lb_frag_first"], ctr["lb_frag_forwarded"])
	}
	t.Logf("lb_frag_first %d forwarded %d held %d released %d, drop_lb_frag_timeout %d",
		ctr["lb_frag_first"], ctr["lb_frag_forwarded"], ctr["lb_frag_held"], ctr["lb_frag_released"], ctr["drop_lb_frag_timeout"])
}
