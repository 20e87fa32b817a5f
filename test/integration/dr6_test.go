package integration

// Direct routing over IPv6 in the lab: the real servers of drRealServers
// hold VIP6 on lo as a /128 (nodad) and answer the client over their own
// return path. IPv6 has no arp_ignore: what keeps a real server from
// claiming the VIP on the servers' segment is that Linux answers a
// neighbour solicitation only for an address configured on the interface
// it arrived on. solicitVIP6 checks that on the wire.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/nsutil"
)

// TestDirectRoutingIPv6: a DR service on the IPv6 VIP (ipvsadm -g, two
// workers). HTTP requests are answered by both real servers, each seeing
// the client's own IPv6 address; UDP echoes come back from the VIP; the
// answers bypass GVS (lb_out stays 0); ipvsadm lists Route for the IPv6
// real servers; and no real server answers a neighbour solicitation for
// the VIP on the servers' segment, while each answers for its own address.
func TestDirectRoutingIPv6(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	vip6, cip6 := l.Env["VIP6"], l.Env["CLIENT_IP6"]
	rs := map[string]string{"rs1": l.Env["RS1_IP6"], "rs2": l.Env["RS2_IP6"]}
	drRealServers(t, l)
	svc := "[" + vip6 + "]:80"
	l.Ipvsadm("-A", "-t", svc, "-s", "rr")
	for _, a := range rs {
		l.Ipvsadm("-a", "-t", svc, "-r", "["+a+"]:80", "-g")
	}
	before := l.Counters()

	c := nsutil.HTTPClient(l.Env["CLIENT_NS"], 5*time.Second)
	count := map[string]int{}
	const n = 40
	for i := 0; i < n; i++ {
		server, peer := get(t, c, "http://"+svc+"/")
		count[server]++
		if ap, err := netip.ParseAddrPort(peer); err != nil || ap.Addr().String() != cip6 {
			t.Fatalf("request %d: %s saw peer %s, want the client's own address %s", i, server, peer, cip6)
		}
	}
	if count["rs1"]+count["rs2"] != n || count["rs1"] < n/2-2 || count["rs2"] < n/2-2 {
		t.Errorf("spread %v, want about %d each (rr)", count, n/2)
	}
	ctr := l.Counters()
	in, out := ctr["lb_in"]-before["lb_in"], ctr["lb_out"]
	if in < 3*n || out != 0 {
		t.Errorf("lb_in +%d (want >= %d), lb_out %d (want 0: the answers bypass GVS)", in, 3*n, out)
	}
	if ctr["drop_lb_dr_not_onlink"] != 0 || ctr["lb_new_conns"]-before["lb_new_conns"] != n {
		t.Errorf("new conns +%d (want %d), drop_lb_dr_not_onlink %d", ctr["lb_new_conns"]-before["lb_new_conns"], n, ctr["drop_lb_dr_not_onlink"])
	}
	t.Logf("spread %v, lb_in +%d, lb_out %d", count, in, out)

	list := l.Ipvsadm("-L", "-n")
	t.Logf("ipvsadm -L -n:\n%s", list)
	for _, a := range rs {
		if !containsFields(list, "->", "["+a+"]:80", "Route", "1") {
			t.Errorf("ipvsadm -L -n has no Route line for [%s]:80", a)
		}
	}
	if saved := l.Ipvsadm("-S", "-n"); !strings.Contains(saved, "-a -t "+svc+" -r ["+rs["rs1"]+"]:80 -g -w 1\n") {
		t.Errorf("ipvsadm -S -n has no -g line for rs1:\n%s", saved)
	}

	usvc := "[" + vip6 + "]:9000"
	l.Ipvsadm("-A", "-u", usvc, "-s", "rr")
	for _, a := range rs {
		l.Ipvsadm("-a", "-u", usvc, "-r", "["+a+"]:9000", "-g")
	}
	seen := map[string]int{}
	for i := 0; i < 10; i++ {
		seen[udpAsk(t, l, usvc, fmt.Sprintf("question %d", i))]++
	}
	if seen["rs1"] == 0 || seen["rs2"] == 0 {
		t.Errorf("UDP answers %v: both real servers should answer", seen)
	}
	if out := l.Counters()["lb_out"]; out != 0 {
		t.Errorf("lb_out %d after UDP: the answers crossed GVS", out)
	}

	// the real servers keep quiet about the VIP on their segment
	for name, a := range rs {
		mac, err := nsutil.InterfaceMAC(l.Env[strings.ToUpper(name)+"_NS"], "eth0")
		if err != nil {
			t.Fatal(err)
		}
		got := solicitVIP6(t, l, netip.MustParseAddr(vip6), netip.MustParseAddr(a), mac)
		t.Logf("%s: neighbour advertisements %v", name, got)
		for _, target := range got {
			if target == vip6 {
				t.Errorf("%s (%s) advertised the VIP %s on its segment: it would take the VIP's traffic from GVS", name, mac, vip6)
			}
		}
	}
}

// solicitVIP6 sends, from the switch namespace's bridge (the real
// servers' segment), neighbour solicitations for vip to its
// solicited-node group and unicast to the real server's MAC (a
// neighbour-unreachability probe), then one for the server's own address
// own, and returns the targets of the advertisements the server (by its
// MAC) sent until it answered for its own address. The server handles
// the three in order, so an answer about the VIP would have come first.
func solicitVIP6(t *testing.T, l *Lab, vip, own netip.Addr, rsMAC net.HardwareAddr) []string {
	t.Helper()
	sw := l.Env["SW_NS"]
	src := netip.MustParseAddr("fd00:2::99") // an unused address of the servers' /64
	var targets []string
	err := nsutil.Do(sw, func() error {
		ifi, err := net.InterfaceByName("br0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_IPV6)))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: ifi.Index}
		if err := unix.Bind(fd, sa); err != nil {
			return err
		}
		tv := unix.Timeval{Usec: 200000}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		snm := func(a netip.Addr) netip.Addr {
			b := a.As16()
			return netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
		}
		mcMAC := func(a netip.Addr) net.HardwareAddr {
			b := a.As16()
			return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
		}
		for _, ns := range []struct {
			target, dst netip.Addr
			dstMAC      net.HardwareAddr
		}{
			{vip, snm(vip), mcMAC(snm(vip))},
			{vip, vip, rsMAC},
			{own, own, rsMAC},
		} {
			f, err := neighbourSolicitation(ifi.HardwareAddr, ns.dstMAC, src, ns.dst, ns.target)
			if err != nil {
				return err
			}
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				return fmt.Errorf("send NS for %s: %w", ns.target, err)
			}
		}
		buf := make([]byte, 2048)
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return err
			}
			p := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.Default)
			eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			na, _ := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
			if eth == nil || na == nil || eth.SrcMAC.String() != rsMAC.String() {
				continue
			}
			target, _ := netip.AddrFromSlice(na.TargetAddress)
			targets = append(targets, target.String())
			if target == own {
				return nil
			}
		}
		return fmt.Errorf("no neighbour advertisement from %s for its own address %s", rsMAC, own)
	})
	if err != nil {
		t.Fatal(err)
	}
	return targets
}

// neighbourSolicitation builds an NS frame for target with a source
// link-layer address option.
func neighbourSolicitation(srcMAC, dstMAC net.HardwareAddr, src, dst, target netip.Addr) ([]byte, error) {
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	ic.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv6},
		ip, ic, &layers.ICMPv6NeighborSolicitation{TargetAddress: target.AsSlice(),
			Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: srcMAC}}})
	return buf.Bytes(), err
}
