package integration

// Tunnel real servers (ipvsadm -i) in the lab. This machine's kernel has
// no ipip, gre or fou modules, so each real server runs gvs-testsrv
// --decap: raw sockets (protocols 4 and 47) and a UDP socket (gue) read
// the tunnel packets GVS sends to the server's own address, and a TUN
// device hands the inner packets to the server's own TCP/IP stack, which
// holds the VIP on lo (arp_ignore/arp_announce as for direct routing) and
// answers the client directly over the return path of drRealServers.

import (
	"fmt"
	"strings"
	"testing"
)

// TestTunnelLab: curl through the VIP succeeds with ipip, gre (with its
// checksum) and gue (with a UDP checksum, and without) to two tunnel real
// servers; each sees the client's own address, GVS encapsulates every
// client packet (lb_tunnel_encap) and sees none of the answers (lb_out
// stays 0); ipvsadm lists Tunnel, saves the tunnel options as ipvsadm 1.31
// does, shows them with --tun-info, and -S | -R gives the same table.
func TestTunnelLab(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	vip, cip, cns := l.Env["VIP"], l.Env["CLIENT_IP"], l.Env["CLIENT_NS"]
	rs := []string{l.Env["RS1_IP"], l.Env["RS2_IP"]}
	for i := 1; i <= 2; i++ {
		// the TUN device made later takes the default: no reverse-path
		// filter (requests arrive on tun0, the route to the client is ret0)
		l.MustNS(l.Env[fmt.Sprintf("RS%d_NS", i)], "sysctl", "-qw", "net.ipv4.conf.default.rp_filter=0")
	}
	drRealServers(t, l, "--decap", "ipip", "--decap", "gre", "--decap", "gue", "--decap-port", "6080")

	for _, tc := range []struct {
		name string
		opts []string // after -i
		save string   // -S -n after "-w 1"
		info string   // --tun-info column
	}{
		{"ipip", nil, " --tun-type ipip", "ipip"},
		{"gre", []string{"--tun-type", "gre", "--tun-csum"}, " --tun-type gre --tun-csum", "gre:+c"},
		{"gue", []string{"--tun-type", "gue", "--tun-port", "6080", "--tun-csum"}, " --tun-type gue --tun-port 6080 --tun-csum", "gue:6080:+c"},
		{"gue-nocsum", []string{"--tun-type", "gue", "--tun-port", "6080"}, " --tun-type gue --tun-port 6080 --tun-nocsum", "gue:6080:-c"},
	} {
		l.Ipvsadm("-C")
		l.Ipvsadm("-A", "-t", vip+":80", "-s", "rr")
		for _, a := range rs {
			l.Ipvsadm(append([]string{"-a", "-t", vip + ":80", "-r", a, "-i"}, tc.opts...)...)
		}
		before := l.Counters()
		seen := map[string]int{}
		const n = 10
		for i := 0; i < n; i++ {
			out := l.MustNS(cns, "curl", "-sS", "--max-time", "5", "http://"+vip+"/")
			f := strings.Fields(out) // "rs1 peer=10.1.0.2:41234"
			if len(f) != 2 || !strings.HasPrefix(f[1], "peer="+cip+":") {
				t.Fatalf("%s: request %d answered %q: want a real server seeing the client's own address %s", tc.name, i, out, cip)
			}
			seen[f[0]]++
		}
		if seen["rs1"] == 0 || seen["rs2"] == 0 {
			t.Errorf("%s: answers %v: both real servers should answer (rr)", tc.name, seen)
		}
		ctr := l.Counters()
		enc, in := ctr["lb_tunnel_encap"]-before["lb_tunnel_encap"], ctr["lb_in"]-before["lb_in"]
		if enc < 3*n || enc != in || ctr["lb_out"] != 0 || ctr["drop_lb_tunnel_too_big"]+ctr["drop_lb_tunnel_need_frag"]+ctr["drop_lb_tunnel_no_source"] != 0 {
			t.Errorf("%s: lb_tunnel_encap +%d, lb_in +%d (want equal, >= %d), lb_out %d (want 0: the answers bypass GVS)", tc.name, enc, in, 3*n, ctr["lb_out"])
		}
		t.Logf("%s: answers %v, lb_tunnel_encap +%d, lb_out %d", tc.name, seen, enc, ctr["lb_out"])

		list := l.Ipvsadm("-L", "-n")
		saved := l.Ipvsadm("-S", "-n")
		info := l.Ipvsadm("-L", "-n", "--tun-info")
		for _, a := range rs {
			if !containsFields(list, "->", a+":80", "Tunnel", "1") {
				t.Errorf("%s: ipvsadm -L -n has no Tunnel line for %s:80:\n%s", tc.name, a, list)
			}
			if line := "-a -t " + vip + ":80 -r " + a + ":80 -i -w 1" + tc.save + "\n"; !strings.Contains(saved, line) {
				t.Errorf("%s: ipvsadm -S -n has no %q:\n%s", tc.name, line, saved)
			}
			if !containsFields(info, "->", a+":80", "Tunnel", tc.info, "1") {
				t.Errorf("%s: ipvsadm -L -n --tun-info has no %s for %s:\n%s", tc.name, tc.info, a, info)
			}
		}
		if tc.name == "gue" {
			t.Logf("ipvsadm -L -n --tun-info:\n%s\nipvsadm -S -n:\n%s", info, saved)
			l.Ipvsadm("-C")
			l.ipvsadmIn(saved, "-R")
			if again := l.Ipvsadm("-S", "-n"); again != saved {
				t.Errorf("after ipvsadm -R:\n%s\nwant:\n%s", again, saved)
			}
		}
	}
}
