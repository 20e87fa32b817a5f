package integration

// Tunnel real servers (ipvsadm -i) in the lab. This machine's kernel has
// no ipip, gre or fou modules, so each real server runs gvs-testsrv
// --decap: raw sockets (protocols 4 and 47) and a UDP socket (gue) read
// the tunnel packets GVS sends to the server's own address, and a TUN
// device hands the inner packets to the server's own TCP/IP stack, which
// holds the VIP on lo (arp_ignore/arp_announce as for direct routing) and
// answers the client directly over the return path of drRealServers.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/nsutil"
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

// TestTunnelLabMTU: the path MTU through each tunnel type end to end,
// both families. The client's full-sized segments no longer fit dp1 once
// encapsulated; GVS drops them (drop_lb_tunnel_too_big) and tells the
// client the MTU less the outer header, as ICMP fragmentation-needed or
// packet-too-big from its address on the client's segment (captured and
// decoded). The client's own kernel takes the error (its route cache to
// the VIP shows that MTU) and re-segments, so 64 KB echoed by a tunnel
// real server come back intact. The types go by growing overhead (ipip,
// gre, gre with checksum, gue), so each finds the client's segments, sized
// for the one before, too big again.
func TestTunnelLabMTU(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	tunnelRealServers(t, l)
	cns := l.Env["CLIENT_NS"]
	msg := make([]byte, 64<<10)
	for i := range msg {
		msg[i] = byte(i * 13 >> 2)
	}
	for _, f := range []struct {
		vip, rs, ip, lb string
		ipHdr           int // the outer IP header
	}{{l.Env["VIP"], l.Env["RS1_IP"], "-4", l.Env["LB_IP"], 20}, {l.Env["VIP6"], l.Env["RS1_IP6"], "-6", l.Env["LB_IP6"], 40}} {
		svc, pmtu := hostPort(f.vip, "7"), 1500 // the lab's MTU everywhere
		for _, tc := range []struct {
			name  string
			opts  []string
			extra int // bytes after the outer IP header
		}{
			{"ipip", nil, 0},
			{"gre", []string{"--tun-type", "gre"}, 4},
			{"gre-csum", []string{"--tun-type", "gre", "--tun-csum"}, 8},
			{"gue", []string{"--tun-type", "gue", "--tun-port", "6080"}, 12},
		} {
			what, mtu := svc+" "+tc.name, 1500-f.ipHdr-tc.extra
			l.Ipvsadm("-C")
			l.Ipvsadm("-A", "-t", svc, "-s", "rr")
			l.Ipvsadm(append([]string{"-a", "-t", svc, "-r", hostPort(f.rs, "7"), "-i"}, tc.opts...)...)
			before := l.Counters()

			icmp := captureICMP(t, cns, "eth0")
			c, err := nsutil.Dial(cns, "tcp", svc, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(15 * time.Second))
			werr := make(chan error, 1)
			go func() { _, err := c.Write(msg); werr <- err }()
			got := make([]byte, len(msg))
			_, rerr := io.ReadFull(c, got)
			c.Close()
			if err := <-werr; err != nil || rerr != nil || !bytes.Equal(got, msg) {
				t.Fatalf("%s: 64 KB through the tunnel: write %v, read %v, intact %v", what, err, rerr, bytes.Equal(got, msg))
			}
			ctr := l.Counters()
			tooBig, sent := ctr["drop_lb_tunnel_too_big"]-before["drop_lb_tunnel_too_big"], ctr["icmp_errors_sent"]-before["icmp_errors_sent"]
			route := l.MustNS(cns, "ip", f.ip, "route", "get", f.vip)
			if tooBig == 0 || sent == 0 {
				t.Errorf("%s: drop_lb_tunnel_too_big +%d, icmp_errors_sent +%d: the client's %d-byte segments should have been refused with an ICMP error",
					what, tooBig, sent, pmtu)
			}
			// from the dataplane's address on the client's segment (GVS is
			// the router whose next link is too small), the MTU less the
			// outer header, quoting a segment of this connection sized for
			// the path MTU the client had
			errs := icmp()
			if len(errs) == 0 {
				t.Errorf("%s: no ICMP error captured on the client's interface", what)
			}
			for _, e := range errs {
				if e.from != f.lb || e.mtu != mtu || e.quotedLen != pmtu || e.quotedDst != svc {
					t.Errorf("%s: ICMP error from %s, MTU %d, quoting %d bytes to %s: want from %s, MTU %d, a %d-byte segment to %s",
						what, e.from, e.mtu, e.quotedLen, e.quotedDst, f.lb, mtu, pmtu, svc)
					break
				}
			}
			if !strings.Contains(route, fmt.Sprintf(" mtu %d", mtu)) {
				t.Errorf("%s: the client's route to the VIP has no mtu %d (the ICMP error was not taken): %s", what, mtu, route)
			}
			if len(errs) > 0 {
				t.Logf("%s: drop_lb_tunnel_too_big +%d, %d ICMP errors captured, first %+v", what, tooBig, len(errs), errs[0])
			}
			pmtu = mtu
		}
	}
}

// icmpTooBig is a decoded ICMP fragmentation-needed or ICMPv6
// packet-too-big: its source, the MTU it gives, and the length and
// destination (addr:port) of the packet it quotes.
type icmpTooBig struct {
	from      string
	mtu       int
	quotedLen int
	quotedDst string
}

// captureICMP reads the frames arriving at dev in namespace ns and
// returns a function that stops (after reading what the socket already
// holds) and returns the "too big" errors among them, decoded with
// gopacket.
func captureICMP(t *testing.T, ns, dev string) func() []icmpTooBig {
	t.Helper()
	var fd int
	err := nsutil.Do(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	tv := unix.Timeval{Usec: 100000}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	var found []icmpTooBig
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer unix.Close(fd)
		buf := make([]byte, 65536)
		stopping := false
		for {
			select {
			case <-stop:
				stopping = true // read what the socket holds, then end
			default:
			}
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil && stopping && errors.Is(err, unix.EAGAIN) {
				return
			}
			if err != nil || from.(*unix.SockaddrLinklayer).Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			if e, ok := decodeTooBig(buf[:n]); ok {
				found = append(found, e)
			}
		}
	}()
	return func() []icmpTooBig {
		close(stop)
		<-done
		return found
	}
}

// decodeTooBig decodes an Ethernet frame carrying ICMP type 3 code 4 or
// ICMPv6 type 2, and the IP and TCP headers it quotes.
func decodeTooBig(frame []byte) (icmpTooBig, bool) {
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	var e icmpTooBig
	var quoted gopacket.Packet
	if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if !ok || ic.TypeCode != layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded) {
			return e, false
		}
		e.from, e.mtu = ip.SrcIP.String(), int(ic.Seq) // the next-hop MTU is the low half of the rest of the header
		quoted = gopacket.NewPacket(ic.Payload, layers.LayerTypeIPv4, gopacket.Default)
		if q, ok := quoted.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			e.quotedLen = int(q.Length)
		}
	} else if ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		if !ok || ic.TypeCode.Type() != layers.ICMPv6TypePacketTooBig || len(ic.Payload) < 4 {
			return e, false
		}
		e.from, e.mtu = ip.SrcIP.String(), int(binary.BigEndian.Uint32(ic.Payload[:4]))
		quoted = gopacket.NewPacket(ic.Payload[4:], layers.LayerTypeIPv6, gopacket.Default)
		if q, ok := quoted.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
			e.quotedLen = 40 + int(q.Length)
		}
	} else {
		return e, false
	}
	if nl, tcp := quoted.NetworkLayer(), quoted.Layer(layers.LayerTypeTCP); nl != nil && tcp != nil {
		e.quotedDst = hostPort(nl.NetworkFlow().Dst().String(), fmt.Sprint(uint16(tcp.(*layers.TCP).DstPort)))
	}
	return e, true
}
