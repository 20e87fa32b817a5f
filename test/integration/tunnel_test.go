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

// tunnelCase is one encapsulation of the tunnel lab tests: ipvsadm's
// options after -i, what -S -n saves after "-w 1", and the --tun-info
// column.
type tunnelCase struct {
	name string
	opts []string
	save string
	info string
}

var tunnelCases = []tunnelCase{
	{"ipip", nil, " --tun-type ipip", "ipip"},
	{"gre", []string{"--tun-type", "gre", "--tun-csum"}, " --tun-type gre --tun-csum", "gre:+c"},
	{"gue", []string{"--tun-type", "gue", "--tun-port", "6080", "--tun-csum"}, " --tun-type gue --tun-port 6080 --tun-csum", "gue:6080:+c"},
	{"gue-nocsum", []string{"--tun-type", "gue", "--tun-port", "6080"}, " --tun-type gue --tun-port 6080 --tun-nocsum", "gue:6080:-c"},
}

// tunnelRealServers makes rs1 and rs2 tunnel real servers of both VIPs
// (drRealServers with gvs-testsrv --decap for every type).
func tunnelRealServers(t *testing.T, l *Lab) {
	t.Helper()
	for i := 1; i <= 2; i++ {
		// the TUN device made later takes the default: no reverse-path
		// filter (requests arrive on tun0, the route to the client is ret0)
		l.MustNS(l.Env[fmt.Sprintf("RS%d_NS", i)], "sysctl", "-qw", "net.ipv4.conf.default.rp_filter=0")
	}
	drRealServers(t, l, "--decap", "ipip", "--decap", "gre", "--decap", "gue", "--decap-port", "6080")
}

// hostPort is addr:port with an IPv6 address in brackets, as ipvsadm
// and URLs write it.
func hostPort(addr, port string) string {
	if strings.Contains(addr, ":") {
		return "[" + addr + "]:" + port
	}
	return addr + ":" + port
}

// tunnelRequests replaces the lab's services by one on vip:80 with both
// real servers (rs, of vip's family) behind tc's encapsulation, sends n
// HTTP requests from the client (cip, vip's family) and checks that both
// servers answered seeing cip, that GVS encapsulated every client packet
// and saw no answer, and the Tunnel listings (-L -n, -S -n, --tun-info).
// It returns the -S -n output.
func tunnelRequests(t *testing.T, l *Lab, tc tunnelCase, vip, cip string, rs []string) string {
	t.Helper()
	svc := hostPort(vip, "80")
	l.Ipvsadm("-C")
	l.Ipvsadm("-A", "-t", svc, "-s", "rr")
	for _, a := range rs {
		l.Ipvsadm(append([]string{"-a", "-t", svc, "-r", hostPort(a, "80"), "-i"}, tc.opts...)...)
	}
	before := l.Counters()
	seen := map[string]int{}
	const n = 10
	for i := 0; i < n; i++ {
		out := l.MustNS(l.Env["CLIENT_NS"], "curl", "-sS", "--max-time", "5", "http://"+svc+"/")
		f := strings.Fields(out) // "rs1 peer=10.1.0.2:41234", "rs1 peer=[fd00:1::2]:41234"
		if len(f) != 2 || !strings.HasPrefix(f[1], "peer="+hostPort(cip, "")) {
			t.Fatalf("%s: request %d to %s answered %q: want a real server seeing the client's own address %s", tc.name, i, svc, out, cip)
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
	t.Logf("%s %s: answers %v, lb_tunnel_encap +%d, lb_out %d", svc, tc.name, seen, enc, ctr["lb_out"])

	list := l.Ipvsadm("-L", "-n")
	saved := l.Ipvsadm("-S", "-n")
	info := l.Ipvsadm("-L", "-n", "--tun-info")
	for _, a := range rs {
		if !containsFields(list, "->", hostPort(a, "80"), "Tunnel", "1") {
			t.Errorf("%s: ipvsadm -L -n has no Tunnel line for %s:\n%s", tc.name, hostPort(a, "80"), list)
		}
		if line := "-a -t " + svc + " -r " + hostPort(a, "80") + " -i -w 1" + tc.save + "\n"; !strings.Contains(saved, line) {
			t.Errorf("%s: ipvsadm -S -n has no %q:\n%s", tc.name, line, saved)
		}
		if !containsFields(info, "->", hostPort(a, "80"), "Tunnel", tc.info, "1") {
			t.Errorf("%s: ipvsadm -L -n --tun-info has no %s for %s:\n%s", tc.name, tc.info, a, info)
		}
	}
	if tc.name == "gue" {
		t.Logf("ipvsadm -L -n --tun-info:\n%s\nipvsadm -S -n:\n%s", info, saved)
	}
	return saved
}

// TestTunnelLab: curl through the VIP succeeds with ipip, gre (with its
// checksum) and gue (with a UDP checksum, and without) to two tunnel real
// servers; each sees the client's own address, GVS encapsulates every
// client packet (lb_tunnel_encap) and sees none of the answers (lb_out
// stays 0); ipvsadm lists Tunnel, saves the tunnel options as ipvsadm 1.31
// does, shows them with --tun-info, and -S | -R gives the same table.
func TestTunnelLab(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	tunnelRealServers(t, l)
	for _, tc := range tunnelCases {
		saved := tunnelRequests(t, l, tc, l.Env["VIP"], l.Env["CLIENT_IP"], []string{l.Env["RS1_IP"], l.Env["RS2_IP"]})
		if tc.name == "gue" {
			l.Ipvsadm("-C")
			l.ipvsadmIn(saved, "-R")
			if again := l.Ipvsadm("-S", "-n"); again != saved {
				t.Errorf("after ipvsadm -R:\n%s\nwant:\n%s", again, saved)
			}
		}
	}
}

// TestTunnelLabIPv6: the same over IPv6: an IPv6 service to IPv6 tunnel
// real servers with IPv6-in-IPv6 (protocol 41), gre (protocol type
// 0x86DD, with checksum) and gue (with a UDP checksum, and with none, as
// RFC 6935 allows over IPv6), each server seeing the client's own IPv6
// address and answering it directly.
func TestTunnelLabIPv6(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	tunnelRealServers(t, l)
	for _, tc := range tunnelCases {
		tunnelRequests(t, l, tc, l.Env["VIP6"], l.Env["CLIENT_IP6"], []string{l.Env["RS1_IP6"], l.Env["RS2_IP6"]})
	}
}
