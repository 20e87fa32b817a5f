package reconcile

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/ctrlplane/internal/dptest"
	"github.com/gvs-lb/gvs/header"
)

var (
	macDP0    = net.HardwareAddr{2, 0, 0, 0, 0, 0x10} // dptest's ports
	macClient = net.HardwareAddr{2, 0, 0, 0, 0, 0x01}
	macRS1    = net.HardwareAddr{2, 0, 0, 0, 0, 0x02}
)

// synFrom is a client's TCP segment to 10.1.0.100:80 (SYN, or a bare ACK).
func synFrom(t *testing.T, client netip.AddrPort, syn bool) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: client.Addr().AsSlice(), DstIP: net.IP{10, 1, 0, 100}}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(client.Port()), DstPort: 80, SYN: syn, ACK: !syn, Seq: 100, Window: 65535}
	if !syn {
		tcp.Seq, tcp.Ack = 101, 5001
	}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: macClient, DstMAC: macDP0, EthernetType: layers.EthernetTypeIPv4}, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// through injects a client frame on dp0 and returns the source and
// destination of the one frame the workers send on dp1 towards rs1.
func through(t *testing.T, dp *dptest.DP, f []byte) (src, dst netip.AddrPort) {
	t.Helper()
	if !dp.Ports[0].MemQueue(0).Inject(f) {
		t.Fatal("inject: ring full")
	}
	var got [][]byte
	deadline := time.Now().Add(10 * time.Second)
	for len(got) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no frame out of dp1")
		}
		got = append(got, dp.Ports[1].MemQueue(0).Drain()...)
		time.Sleep(time.Millisecond)
	}
	p := gopacket.NewPacket(got[0], layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if len(got) != 1 || eth == nil || ip == nil || tcp == nil || eth.DstMAC.String() != macRS1.String() {
		t.Fatalf("%d frames out of dp1, first %v", len(got), p)
	}
	s, _ := netip.AddrFromSlice(ip.SrcIP)
	d, _ := netip.AddrFromSlice(ip.DstIP)
	return netip.AddrPortFrom(s, uint16(tcp.SrcPort)), netip.AddrPortFrom(d, uint16(tcp.DstPort))
}

// TestKindChangeKeepsConnections: packets through a running dataplane.
// A connection made while the service was lb_kind DR goes on by direct
// routing after a reload to FULLNAT (the reconciler replaced the
// destination, so the connection drains with its own method), while a new
// connection is translated (the local address as its source); and back.
func TestKindChangeKeepsConnections(t *testing.T) {
	sock := dptest.Socket(t)
	dp := dptest.Start(t, sock, 1)
	if err := dp.DP.AddNeigh(netip.MustParseAddr("10.2.0.11"), header.MAC(macRS1), "dp1"); err != nil {
		t.Fatal(err)
	}
	if err := dp.DP.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dp.DP.Stop)
	r, ctx := startReconciler(t, dptest.Client(t, sock))
	dr := strings.Replace(drCfg, "      - {ip: 10.2.0.12, port: 80}\n", "", 1)
	fn := strings.Replace(dr, "lb_kind: DR", "lb_kind: FULLNAT\n    local_addresses: [{ip: 10.2.0.100, interface: dp1}]", 1)
	vip, rs := netip.MustParseAddrPort("10.1.0.100:80"), netip.MustParseAddrPort("10.2.0.11:80")
	c1, c2, c3 := netip.MustParseAddrPort("10.1.0.5:40001"), netip.MustParseAddrPort("10.1.0.5:40002"), netip.MustParseAddrPort("10.1.0.5:40003")

	if err := r.Load(ctx, parse(t, dr), false); err != nil {
		t.Fatal(err)
	}
	if s, d := through(t, dp, synFrom(t, c1, true)); s != c1 || d != vip {
		t.Fatalf("DR SYN left as %s -> %s, want %s -> %s unchanged", s, d, c1, vip)
	}

	if err := r.Load(ctx, parse(t, fn), true); err != nil {
		t.Fatal(err)
	}
	if s, d := through(t, dp, synFrom(t, c1, false)); s != c1 || d != vip {
		t.Errorf("after the reload to FULLNAT, the DR connection's ACK left as %s -> %s, want it unchanged (%s -> %s)", s, d, c1, vip)
	}
	if s, d := through(t, dp, synFrom(t, c2, true)); s.Addr().String() != "10.2.0.100" || d != rs {
		t.Errorf("a new connection after the reload to FULLNAT left as %s -> %s, want 10.2.0.100:* -> %s", s, d, rs)
	}

	if err := r.Load(ctx, parse(t, dr), true); err != nil {
		t.Fatal(err)
	}
	if s, d := through(t, dp, synFrom(t, c2, false)); s.Addr().String() != "10.2.0.100" || d != rs {
		t.Errorf("after the reload back to DR, the FullNAT connection's ACK left as %s -> %s, want 10.2.0.100:* -> %s", s, d, rs)
	}
	if s, d := through(t, dp, synFrom(t, c3, true)); s != c3 || d != vip {
		t.Errorf("a new connection after the reload back to DR left as %s -> %s, want %s -> %s unchanged", s, d, c3, vip)
	}
}
