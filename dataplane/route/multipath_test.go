package route

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// flowPacket builds an IP packet of a TCP or UDP flow with gopacket.
func flowPacket(t testing.TB, proto layers.IPProtocol, src, dst netip.Addr, sport, dport uint16) []byte {
	t.Helper()
	var ip gopacket.NetworkLayer
	if src.Is4() {
		ip = &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
	} else {
		ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
	}
	var l4 gopacket.SerializableLayer
	if proto == layers.IPProtocolTCP {
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), ACK: true, Seq: 1, Window: 100}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		l4 = tcp
	} else {
		udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		_ = udp.SetNetworkLayerForChecksum(ip)
		l4 = udp
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip.(gopacket.SerializableLayer), l4, gopacket.Payload("data")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ecmpTable(t testing.TB, dst string, weights []uint16, gws ...string) *Table {
	t.Helper()
	r := Route{Dst: mustPrefix(dst), Scope: ScopeGlobal}
	for i, g := range gws {
		w := uint16(0)
		if weights != nil {
			w = weights[i]
		}
		r.NextHops = append(r.NextHops, NextHop{Gateway: netip.MustParseAddr(g), Iface: uint16(i + 1), Weight: w})
	}
	tb, err := New([]Route{r, {Dst: mustPrefix("10.9.0.0/16"), Gateway: netip.MustParseAddr("10.0.0.9"), Iface: 9}})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// A flow always takes the same next hop; many flows spread over all of them
// in proportion to the weights, for IPv4 and IPv6, TCP and UDP.
func TestMultipathSpreadsFlowsAndKeepsEachStable(t *testing.T) {
	cases := []struct {
		name    string
		dst     string
		gws     []string
		weights []uint16
		client  string
		target  string
	}{
		{"v4 equal", "0.0.0.0/0", []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}, nil, "192.0.2.0", "198.51.100.7"},
		{"v4 weighted", "198.51.100.0/24", []string{"10.0.0.1", "10.0.0.2"}, []uint16{1, 3}, "192.0.2.0", "198.51.100.7"},
		{"v6 equal", "::/0", []string{"fd00::1", "fd00::2"}, nil, "2001:db8::", "2001:db8:1::7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := ecmpTable(t, c.dst, c.weights, c.gws...)
			target := netip.MustParseAddr(c.target)
			r := tb.Lookup(target)
			if r == nil || !r.Multipath() || len(r.NextHops) != len(c.gws) {
				t.Fatalf("Lookup(%s) = %v, want a route with %d next hops", target, r, len(c.gws))
			}
			count := map[netip.Addr]int{}
			const flows = 4000
			client := netip.MustParseAddr(c.client)
			for i := 0; i < flows; i++ {
				src := client
				for j := 0; j < i%200; j++ {
					src = src.Next()
				}
				proto := layers.IPProtocolTCP
				if i%2 == 1 {
					proto = layers.IPProtocolUDP
				}
				pkt := flowPacket(t, proto, src, target, uint16(1024+i), 80)
				gw, ifc := r.Path(target, FlowHash(pkt))
				// the same flow, another packet (other payload, other flags)
				pkt2 := flowPacket(t, proto, src, target, uint16(1024+i), 80)
				pkt2 = append(pkt2, "more"...)
				if gw2, ifc2 := r.Path(target, FlowHash(pkt2)); gw2 != gw || ifc2 != ifc {
					t.Fatalf("flow %d took %s then %s", i, gw, gw2)
				}
				count[gw]++
			}
			total := 0
			for _, w := range c.weights {
				total += int(w)
			}
			for i, g := range c.gws {
				share := 1.0 / float64(len(c.gws))
				if c.weights != nil {
					share = float64(c.weights[i]) / float64(total)
				}
				got := float64(count[netip.MustParseAddr(g)]) / flows
				if got < share*0.85 || got > share*1.15 {
					t.Errorf("next hop %s: %.3f of the flows, want %.3f ±15%%", g, got, share)
				}
			}
		})
	}
}

func TestSingleNextHopFoldsAndPlainRoutesIgnoreTheHash(t *testing.T) {
	tb, err := New([]Route{{Dst: mustPrefix("10.1.0.0/16"), NextHops: []NextHop{{Gateway: netip.MustParseAddr("10.0.0.1"), Iface: 3}}}})
	if err != nil {
		t.Fatal(err)
	}
	r := tb.Lookup(netip.MustParseAddr("10.1.2.3"))
	if r.Multipath() || r.Gateway != netip.MustParseAddr("10.0.0.1") || r.Iface != 3 {
		t.Fatalf("one next hop: %+v", r)
	}
	for _, h := range []uint32{0, 1 << 31, ^uint32(0)} {
		if gw, ifc := r.Path(netip.MustParseAddr("10.1.2.3"), h); gw != r.Gateway || ifc != 3 {
			t.Errorf("Path(hash %#x) = %s %d", h, gw, ifc)
		}
	}
	// a connected (gateway-less) path resolves the destination itself
	tb, _ = New([]Route{{Dst: mustPrefix("10.2.0.0/16"), Iface: 4}})
	if gw, _ := tb.Lookup(netip.MustParseAddr("10.2.0.5")).Path(netip.MustParseAddr("10.2.0.5"), 7); gw != netip.MustParseAddr("10.2.0.5") {
		t.Errorf("on-link path resolves %s", gw)
	}
}

func TestMultipathRefusesBadNextHops(t *testing.T) {
	gw := netip.MustParseAddr("10.0.0.1")
	for name, nhs := range map[string][]NextHop{
		"twice":    {{Gateway: gw, Iface: 1}, {Gateway: gw, Iface: 1}},
		"family":   {{Gateway: gw, Iface: 1}, {Gateway: netip.MustParseAddr("fd00::1"), Iface: 1}},
		"weight":   {{Gateway: gw, Iface: 1, Weight: 300}, {Gateway: gw.Next(), Iface: 1}},
		"too many": make([]NextHop, MaxNextHops+1),
	} {
		if _, err := New([]Route{{Dst: mustPrefix("10.1.0.0/16"), NextHops: nhs}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Deleting by the gateway of any next hop removes the multipath route.
func TestDeleteMultipathByAnyGateway(t *testing.T) {
	tb := ecmpTable(t, "0.0.0.0/0", nil, "10.0.0.1", "10.0.0.2")
	n, err := tb.Delete(mustPrefix("0.0.0.0/0"), netip.MustParseAddr("10.0.0.2"), false)
	if err != nil {
		t.Fatal(err)
	}
	if n.Lookup(netip.MustParseAddr("192.0.2.1")) != nil {
		t.Error("default route still there")
	}
}

// The weights are honoured exactly at the hash-space level: next hop i owns
// weight_i/total of the 2^32 hashes.
func TestMultipathBounds(t *testing.T) {
	tb := ecmpTable(t, "0.0.0.0/0", []uint16{1, 2, 1}, "10.0.0.1", "10.0.0.2", "10.0.0.3")
	r := tb.Lookup(netip.MustParseAddr("192.0.2.1"))
	want := []uint32{1<<30 - 1, 3<<30 - 1, ^uint32(0)}
	for i, nh := range r.NextHops {
		if nh.bound != want[i] {
			t.Errorf("next hop %d bound %#x, want %#x", i, nh.bound, want[i])
		}
	}
	dst := netip.MustParseAddr("192.0.2.1")
	for h, gw := range map[uint32]string{0: "10.0.0.1", 1<<30 - 1: "10.0.0.1", 1 << 30: "10.0.0.2", 3 << 30: "10.0.0.3", ^uint32(0): "10.0.0.3"} {
		if got, _ := r.Path(dst, h); got != netip.MustParseAddr(gw) {
			t.Errorf("hash %#x: %s, want %s", h, got, gw)
		}
	}
}

// The hash looks at addresses, protocol and ports, nothing else.
func TestFlowHashFields(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")
	base := FlowHash(flowPacket(t, layers.IPProtocolTCP, a, b, 1000, 80))
	for name, p := range map[string][]byte{
		"sport": flowPacket(t, layers.IPProtocolTCP, a, b, 1001, 80),
		"dport": flowPacket(t, layers.IPProtocolTCP, a, b, 1000, 81),
		"src":   flowPacket(t, layers.IPProtocolTCP, a.Next(), b, 1000, 80),
		"dst":   flowPacket(t, layers.IPProtocolTCP, a, b.Next(), 1000, 80),
		"proto": flowPacket(t, layers.IPProtocolUDP, a, b, 1000, 80),
	} {
		if FlowHash(p) == base {
			t.Errorf("changing %s leaves the hash", name)
		}
	}
	p := flowPacket(t, layers.IPProtocolTCP, a, b, 1000, 80)
	p[8] = 3 // TTL
	if FlowHash(p) != base {
		t.Error("the TTL changes the hash")
	}
	// IPv4 fragments hash without ports: every fragment alike
	f1 := flowPacket(t, layers.IPProtocolUDP, a, b, 1000, 80)
	f2 := flowPacket(t, layers.IPProtocolUDP, a, b, 2000, 90)
	f1[6], f2[6] = 0x20, 0x00 // MF
	f2[7] = 0x10              // an offset
	if FlowHash(f1) != FlowHash(f2) {
		t.Error("fragments of one datagram hash apart")
	}
}

func TestMultipathAllocs(t *testing.T) {
	tb := ecmpTable(t, "0.0.0.0/0", nil, "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4")
	dst := netip.MustParseAddr("198.51.100.7")
	pkt := flowPacket(t, layers.IPProtocolTCP, netip.MustParseAddr("192.0.2.1"), dst, 1000, 80)
	pkt6 := flowPacket(t, layers.IPProtocolTCP, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::7"), 1000, 80)
	var sink netip.Addr
	if n := testing.AllocsPerRun(1000, func() {
		r := tb.Lookup(dst)
		sink, _ = r.Path(dst, FlowHash(pkt))
		_ = FlowHash(pkt6)
	}); n != 0 {
		t.Errorf("%v allocations per lookup", n)
	}
	_ = sink
}

func BenchmarkMultipathLookup(b *testing.B) {
	tb := ecmpTable(b, "0.0.0.0/0", nil, "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4")
	dst := netip.MustParseAddr("198.51.100.7")
	pkt := flowPacket(b, layers.IPProtocolTCP, netip.MustParseAddr("192.0.2.1"), dst, 1000, 80)
	b.ReportAllocs()
	var sink uint16
	for i := 0; i < b.N; i++ {
		pkt[21] = byte(i) // another source port: another flow
		r := tb.Lookup(dst)
		_, sink = r.Path(dst, FlowHash(pkt))
	}
	_ = sink
}

func FuzzFlowHash(f *testing.F) {
	f.Add(flowPacket(f, layers.IPProtocolTCP, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7"), 1, 2))
	f.Add(flowPacket(f, layers.IPProtocolUDP, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), 1, 2))
	f.Add([]byte{0x4f, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		h := FlowHash(pkt) // must not panic on any input
		if FlowHash(pkt) != h {
			t.Fatal("not deterministic")
		}
	})
}
