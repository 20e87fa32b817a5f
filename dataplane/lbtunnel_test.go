package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
)

// tunDP: the load-balancing test dataplane with a service (proto, vip:port)
// whose real server d is a tunnel one (no local address: a tunnel needs
// none).
func tunDP(t testing.TB, p ipvs.Proto, v netip.Addr, vport uint16, onePacket bool, d ipvs.DestSpec) (*testDP, ipvs.ServiceKey) {
	t.Helper()
	td := fixture{Options: Options{Workers: 1, ConnCapacity: 1 << 12}, addrs: lbAddrs, lbNeighbors: true}.build(t)
	k := ipvs.ServiceKey{Proto: p, Addr: v, Port: vport}
	if err := td.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr", OnePacket: onePacket}); err != nil {
		t.Fatal(err)
	}
	d.Weight, d.Fwd = 1, ipvs.FwdTunnel
	if err := td.d.AddDest(k, d); err != nil {
		t.Fatal(err)
	}
	return td, k
}

// tunDecoded is an encapsulated frame taken apart.
type tunDecoded struct {
	eth       *layers.Ethernet
	src, dst  netip.Addr
	ttl       uint8
	df        bool
	id        uint16
	proto     layers.IPProtocol
	gre       *layers.GRE
	udp       *layers.UDP
	gue       []byte
	inner     []byte
	outerSize int
}

// decodeTunnel decodes an encapsulated frame with gopacket, has it verify
// every checksum it knows (outer IPv4 header, GRE, the outer UDP and the
// inner packet's), and returns the fields the tests compare.
func decodeTunnel(t testing.TB, frame []byte) tunDecoded {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	verifyTunnelChecksums(t, p)
	var d tunDecoded
	d.eth = p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	var payload []byte
	switch o := p.Layers()[1].(type) {
	case *layers.IPv4:
		d.src, _ = netip.AddrFromSlice(o.SrcIP.To4())
		d.dst, _ = netip.AddrFromSlice(o.DstIP.To4())
		d.ttl, d.df, d.id, d.proto, payload = o.TTL, o.Flags&layers.IPv4DontFragment != 0, o.Id, o.Protocol, o.Payload
		d.outerSize = int(o.Length)
	case *layers.IPv6:
		d.src, _ = netip.AddrFromSlice(o.SrcIP)
		d.dst, _ = netip.AddrFromSlice(o.DstIP)
		d.ttl, d.proto, payload = o.HopLimit, o.NextHeader, o.Payload
		d.outerSize = 40 + int(o.Length)
	default:
		t.Fatalf("no outer IP header: %v", p)
	}
	switch d.proto {
	case layers.IPProtocolIPv4, layers.IPProtocolIPv6:
		d.inner = payload
	case layers.IPProtocolGRE:
		d.gre = p.Layer(layers.LayerTypeGRE).(*layers.GRE)
		d.inner = d.gre.Payload
	case layers.IPProtocolUDP:
		d.udp = p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		d.gue, d.inner = d.udp.Payload[:4], d.udp.Payload[4:]
		in := gopacket.NewPacket(d.inner, map[bool]gopacket.LayerType{true: layers.LayerTypeIPv4, false: layers.LayerTypeIPv6}[d.inner[0]>>4 == 4], gopacket.Default)
		verifyTunnelChecksums(t, in)
	}
	return d
}

func verifyTunnelChecksums(t testing.TB, p gopacket.Packet) {
	t.Helper()
	var netl gopacket.NetworkLayer
	for _, l := range p.Layers() {
		switch x := l.(type) {
		case gopacket.NetworkLayer:
			netl = x
		case *layers.TCP:
			_ = x.SetNetworkLayerForChecksum(netl)
		case *layers.UDP:
			_ = x.SetNetworkLayerForChecksum(netl)
		case *layers.ICMPv6:
			_ = x.SetNetworkLayerForChecksum(netl)
		}
	}
	if err, bad := p.VerifyChecksums(); err != nil || len(bad) != 0 {
		t.Fatalf("checksums: %v %v\n%v", err, bad, p)
	}
}

// TestTunnel: the client's segments reach a tunnel real server inside an
// outer header from the dataplane's address on the real servers' side,
// for every encapsulation and both families: the inner packet byte for
// byte as the client sent it (TTL included), the outer TTL 64, the DF bit
// and DSCP copied, GRE's protocol type and checksum, GUE's UDP port,
// header and checksum; the connection has no local address and nothing
// goes out towards the client.
func TestTunnel(t *testing.T) {
	for _, tc := range []struct {
		name     string
		v6       bool
		typ      ipvs.TunType
		port     uint16
		flags    ipvs.TunFlags
		proto    layers.IPProtocol
		overhead int
	}{
		{"ipip", false, ipvs.TunIPIP, 0, 0, layers.IPProtocolIPv4, 20},
		{"ip6ip6", true, ipvs.TunIPIP, 0, 0, layers.IPProtocolIPv6, 40},
		{"gre", false, ipvs.TunGRE, 0, 0, layers.IPProtocolGRE, 24},
		{"gre-csum", false, ipvs.TunGRE, 0, ipvs.TunCsum, layers.IPProtocolGRE, 28},
		{"gre6-csum", true, ipvs.TunGRE, 0, ipvs.TunCsum, layers.IPProtocolGRE, 48},
		{"gue", false, ipvs.TunGUE, 6080, 0, layers.IPProtocolUDP, 32},
		{"gue-csum", false, ipvs.TunGUE, 6080, ipvs.TunCsum, layers.IPProtocolUDP, 32},
		{"gue6-remcsum", true, ipvs.TunGUE, 5555, ipvs.TunRemCsum, layers.IPProtocolUDP, 52},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, rs, client, src := vip, rs1IP, clientIP, netip.MustParseAddr("10.2.0.1")
			if tc.v6 {
				v, rs, client, src = vip6, rs1IP6, clientIP6, netip.MustParseAddr("fd00:2::1")
			}
			td, k := tunDP(t, ipvs.TCP, v, 80, false, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs, 80), TunType: tc.typ, TunPort: tc.port, TunFlags: tc.flags})
			cp, vp := netip.AddrPortFrom(client, 41000), netip.AddrPortFrom(v, 80)
			for i, seg := range []tcpSeg{
				{src: cp, dst: vp, smac: macClient, dmac: macDP0, syn: true, seq: 100, mss: 1460, ttl: 57},
				{src: cp, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 101, ackn: 9001, payload: []byte("GET / HTTP/1.0\r\n\r\n")},
			} {
				in := tcpFrame(t, seg)
				td.inject(0, in)
				td.stepAll()
				out := td.outAll(1)
				if len(out) != 1 {
					ctr, _ := td.w.Stats()
					t.Fatalf("segment %d: %d frames out of dp1; counters %v", i, len(out), nonZero(ctr))
				}
				d := decodeTunnel(t, out[0])
				if !bytes.Equal(d.eth.DstMAC, macRS1) || !bytes.Equal(d.eth.SrcMAC, macDP1) {
					t.Errorf("MACs %s -> %s", d.eth.SrcMAC, d.eth.DstMAC)
				}
				if d.src != src || d.dst != rs || d.ttl != 64 || d.proto != tc.proto {
					t.Errorf("outer %s -> %s ttl %d proto %v, want %s -> %s ttl 64 proto %v", d.src, d.dst, d.ttl, d.proto, src, rs, tc.proto)
				}
				ipIn := in[header.EthernetMinSize:]
				if tc.v6 {
					ipIn = ipIn[:40+int(binary.BigEndian.Uint16(ipIn[4:]))]
				} else {
					ipIn = ipIn[:header.IPv4(ipIn).TotalLen()]
					if d.df { // the client's segments carry no DF
						t.Error("outer DF set for a client packet without it")
					}
				}
				if !bytes.Equal(d.inner, ipIn) || d.outerSize != len(ipIn)+tc.overhead {
					t.Fatalf("inner packet changed or overhead %d (want %d):\n% x\n% x", d.outerSize-len(ipIn), tc.overhead, d.inner, ipIn)
				}
				switch tc.typ {
				case ipvs.TunGRE:
					et := layers.EthernetTypeIPv4
					if tc.v6 {
						et = layers.EthernetTypeIPv6
					}
					if d.gre.Protocol != et || d.gre.ChecksumPresent != (tc.flags != 0) || d.gre.Version != 0 || d.gre.KeyPresent || d.gre.SeqPresent {
						t.Errorf("GRE header %+v", d.gre)
					}
				case ipvs.TunGUE:
					if uint16(d.udp.DstPort) != tc.port || d.udp.SrcPort < 49152 || (d.udp.Checksum != 0) != (tc.flags != 0) {
						t.Errorf("UDP %d -> %d checksum %#x", d.udp.SrcPort, d.udp.DstPort, d.udp.Checksum)
					}
					p := byte(4)
					if tc.v6 {
						p = 41
					}
					if !bytes.Equal(d.gue, []byte{0, p, 0, 0}) {
						t.Errorf("GUE header % x", d.gue)
					}
				}
			}
			conns, _ := td.d.Conns(&k)
			if len(conns) != 1 || conns[0].Local.IsValid() || conns[0].Dest != netip.AddrPortFrom(rs, 80) {
				t.Fatalf("conns %+v, want one to %s without a local address", conns, rs)
			}
			if td.sum(CtrLBTunnelEncap) != 2 || td.sum(CtrLBIn) != 2 || td.sum(CtrLBOut) != 0 || len(td.outAll(0)) != 0 {
				t.Errorf("lb_tunnel_encap %d lb_in %d lb_out %d", td.sum(CtrLBTunnelEncap), td.sum(CtrLBIn), td.sum(CtrLBOut))
			}
		})
	}
}

// TestTunnelRouted: a tunnel real server on another subnet is reached
// through its gateway (a direct-routing one would be refused): the frame
// goes to the gateway's MAC, the outer destination is the real server.
func TestTunnelRouted(t *testing.T) {
	far := netip.MustParseAddr("192.0.2.50")
	td, _ := tunDP(t, ipvs.TCP, vip, 80, false, ipvs.DestSpec{Addr: netip.AddrPortFrom(far, 80), TunType: ipvs.TunGRE})
	if err := td.d.AddRoute(RouteSpec{Dst: netip.MustParsePrefix("192.0.2.0/24"), Gateway: rs1IP}); err != nil {
		t.Fatal(err)
	}
	td.inject(0, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, 41001), dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, syn: true}))
	td.stepAll()
	out := td.outAll(1)
	if len(out) != 1 {
		ctr, _ := td.w.Stats()
		t.Fatalf("%d frames out; counters %v", len(out), nonZero(ctr))
	}
	d := decodeTunnel(t, out[0])
	if !bytes.Equal(d.eth.DstMAC, macRS1) || d.dst != far || d.src != netip.MustParseAddr("10.2.0.1") || d.proto != layers.IPProtocolGRE {
		t.Fatalf("to %s: outer %s -> %s %v", d.eth.DstMAC, d.src, d.dst, d.proto)
	}
	if td.sum(CtrDropLBDRNotOnLink) != 0 {
		t.Error("a tunnel packet counted as direct routing off-link")
	}
}

// udpTunFrame is a client datagram of IP size total to the service, with
// or without DF (IPv4).
func udpTunFrame(t testing.TB, src, dst netip.AddrPort, total int, df bool) []byte {
	u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if src.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: ipOf(src.Addr()), DstIP: ipOf(dst.Addr())}
		if df {
			ip.Flags = layers.IPv4DontFragment
		}
		u.SetNetworkLayerForChecksum(ip)
		return serialize(t, &layers.Ethernet{SrcMAC: macClient, DstMAC: macDP0, EthernetType: layers.EthernetTypeIPv4}, ip, u,
			gopacket.Payload(make([]byte, total-28)))
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: ipOf(src.Addr()), DstIP: ipOf(dst.Addr())}
	u.SetNetworkLayerForChecksum(ip)
	return serialize(t, &layers.Ethernet{SrcMAC: macClient, DstMAC: macDP0, EthernetType: layers.EthernetTypeIPv6}, ip, u,
		gopacket.Payload(make([]byte, total-48)))
}

// TestTunnelMTU: on a 1500-byte egress a client packet that fits once
// encapsulated is sent; one that does not gets an ICMP fragmentation
// needed (IPv4 with DF) or packet too big (IPv6) back to the client with
// the MTU less the encapsulation, quoting the client's packet; an IPv4
// packet without DF is dropped and counted (GVS does not fragment).
func TestTunnelMTU(t *testing.T) {
	for _, tc := range []struct {
		name     string
		v6       bool
		typ      ipvs.TunType
		flags    ipvs.TunFlags
		port     uint16
		overhead int
	}{
		{"ipip", false, ipvs.TunIPIP, 0, 0, 20},
		{"gue-csum", false, ipvs.TunGUE, ipvs.TunCsum, 6080, 32},
		{"gre6-csum", true, ipvs.TunGRE, ipvs.TunCsum, 0, 48},
		{"ip6ip6", true, ipvs.TunIPIP, 0, 0, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, rs, client := vip, rs1IP, clientIP
			if tc.v6 {
				v, rs, client = vip6, rs1IP6, clientIP6
			}
			td, _ := tunDP(t, ipvs.UDP, v, 9000, false, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs, 9000), TunType: tc.typ, TunFlags: tc.flags, TunPort: tc.port})
			cp, vp := netip.AddrPortFrom(client, 5353), netip.AddrPortFrom(v, 9000)
			fit := 1500 - tc.overhead
			// the largest packet that fits goes through: exactly 1500 bytes out
			td.inject(0, udpTunFrame(t, cp, vp, fit, true))
			td.stepAll()
			out := td.outAll(1)
			if len(out) != 1 || len(out[0]) != 14+1500 {
				t.Fatalf("a %d-byte packet: %d frames out", fit, len(out))
			}
			if d := decodeTunnel(t, out[0]); !tc.v6 && !d.df {
				t.Error("the client's DF bit was not copied to the outer header")
			}
			// one byte more: ICMP to the client
			big := udpTunFrame(t, cp, vp, fit+1, true)
			td.inject(0, big)
			td.stepAll()
			if n := len(td.outAll(1)); n != 0 {
				t.Fatalf("a %d-byte packet: %d frames to the real server", fit+1, n)
			}
			back := td.outAll(0)
			if len(back) != 1 || td.sum(CtrDropLBTunnelTooBig) != 1 {
				ctr, _ := td.w.Stats()
				t.Fatalf("%d frames back to the client; counters %v", len(back), nonZero(ctr))
			}
			p := gopacket.NewPacket(back[0], layers.LayerTypeEthernet, gopacket.Default)
			verifyTunnelChecksums(t, p)
			quoted := big[14:]
			if tc.v6 {
				ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
				m := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
				if !ip.DstIP.Equal(ipOf(client)) || m.TypeCode.Type() != layers.ICMPv6TypePacketTooBig || m.TypeCode.Code() != 0 {
					t.Fatalf("ICMPv6 %v to %s", m.TypeCode, ip.DstIP)
				}
				if mtu := binary.BigEndian.Uint32(m.Payload[:4]); mtu != uint32(fit) {
					t.Errorf("packet too big MTU %d, want %d", mtu, fit)
				}
				if q := m.Payload[4:]; len(q) != 1280-48 || !bytes.Equal(q, quoted[:len(q)]) {
					t.Errorf("quoted %d bytes, not the client's packet", len(q))
				}
				return
			}
			ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			m := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			if !ip.DstIP.Equal(ipOf(client)) || m.TypeCode.Type() != layers.ICMPv4TypeDestinationUnreachable || m.TypeCode.Code() != layers.ICMPv4CodeFragmentationNeeded {
				t.Fatalf("ICMP %v to %s", m.TypeCode, ip.DstIP)
			}
			if m.Seq != uint16(fit) {
				t.Errorf("next-hop MTU %d, want %d", m.Seq, fit)
			}
			if q := m.Payload; len(q) != 576-28 || !bytes.Equal(q, quoted[:len(q)]) {
				t.Errorf("quoted %d bytes, not the client's packet", len(q))
			}
			// without DF: dropped, nothing sent anywhere
			td.inject(0, udpTunFrame(t, cp, vp, fit+1, false))
			td.stepAll()
			if len(td.outAll(0))+len(td.outAll(1)) != 0 || td.sum(CtrDropLBTunnelNeedFrag) != 1 {
				t.Errorf("a too big packet without DF: drop_lb_tunnel_need_frag %d", td.sum(CtrDropLBTunnelNeedFrag))
			}
		})
	}
}

// TestTunnelOnePacket: a one-packet (-o) UDP service with a tunnel real
// server encapsulates each datagram and keeps no connection.
func TestTunnelOnePacket(t *testing.T) {
	td, k := tunDP(t, ipvs.UDP, vip, 514, true, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs1IP, 514)})
	for i := 0; i < 3; i++ {
		td.inject(0, udpTunFrame(t, netip.AddrPortFrom(clientIP, 514), netip.AddrPortFrom(vip, 514), 100, false))
		td.stepAll()
		out := td.outAll(1)
		if len(out) != 1 {
			t.Fatalf("datagram %d: %d frames out", i, len(out))
		}
		if d := decodeTunnel(t, out[0]); d.proto != layers.IPProtocolIPv4 || d.dst != rs1IP {
			t.Fatalf("datagram %d: outer %v to %s", i, d.proto, d.dst)
		}
	}
	if conns, _ := td.d.Conns(&k); len(conns) != 0 || td.sum(CtrLBOnePacket) != 3 {
		t.Errorf("%d conns, lb_one_packet %d", len(conns), td.sum(CtrLBOnePacket))
	}
}

// TestTunnelAllocs: the established-connection path of a tunnel real
// server allocates nothing (GUE with a UDP checksum, the most work).
func TestTunnelAllocs(t *testing.T) {
	l := newLBLoop(t)
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 81}
	if err := l.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	if err := l.d.AddDest(k, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs1IP, 81), Weight: 1, Fwd: ipvs.FwdTunnel, TunType: ipvs.TunGUE,
		TunPort: 6080, TunFlags: ipvs.TunCsum}); err != nil {
		t.Fatal(err)
	}
	l.w.iterate() // the new table
	cp, vp := netip.AddrPortFrom(clientIP, 42000), netip.AddrPortFrom(vip, 81)
	l.pass(t, 0, 1, tcpFrame(t, tcpSeg{src: cp, dst: vp, smac: macClient, dmac: macDP0, syn: true, seq: 1}))
	data := tcpFrame(t, tcpSeg{src: cp, dst: vp, smac: macClient, dmac: macDP0, ack: true, seq: 2, ackn: 1, payload: make([]byte, 64)})
	run := func() {
		l.rx(t, 0, data)
		l.w.flushAll()
		if l.releaseAll() != 1 {
			t.Fatal("not sent")
		}
	}
	for i := 0; i < 100; i++ {
		run()
	}
	l.w.ctr.publish()
	before := l.counter(CtrLBTunnelEncap)
	allocs := testing.AllocsPerRun(500, run)
	l.w.ctr.publish()
	if got := l.counter(CtrLBTunnelEncap) - before; got != 501 {
		t.Fatalf("lb_tunnel_encap grew by %d for 501 packets", got)
	}
	if allocs != 0 {
		t.Errorf("%v allocations per packet, want 0", allocs)
	}
	l.checkPools(t)
}

// TestTunnelHeadroomShort: a buffer whose packet starts with less
// headroom than the outer headers need is refused (drop_no_buffer), not
// written out of bounds.
func TestTunnelHeadroomShort(t *testing.T) {
	l := newLBLoop(t)
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip6, Port: 81}
	if err := l.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	if err := l.d.AddDest(k, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs1IP6, 81), Weight: 1, Fwd: ipvs.FwdTunnel, TunType: ipvs.TunGUE, TunPort: 6080}); err != nil {
		t.Fatal(err)
	}
	l.w.iterate()
	frame := tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP6, 42000), dst: netip.AddrPortFrom(vip6, 81), smac: macClient, dmac: macDP0, syn: true, seq: 1})
	b := l.ports[0].MemQueue(0).Alloc()
	b.Reset(0, len(frame)) // no headroom at all
	copy(b.Bytes(), frame)
	b.Port = 0
	l.w.input(b)
	l.w.flushAll()
	l.w.ctr.publish()
	if n := l.releaseAll(); n != 0 || l.counter(CtrDropNoBuffer) != 1 {
		ctr, _ := l.w.Stats()
		t.Fatalf("%d frames out, counters %v", n, nonZero(ctr))
	}
	l.checkPools(t)
}

// BenchmarkTunnel: one client data segment of an established connection
// encapsulated per op (frame copy into the buffer included), per type.
func BenchmarkTunnel(b *testing.B) {
	for _, tc := range []struct {
		name  string
		typ   ipvs.TunType
		port  uint16
		flags ipvs.TunFlags
	}{
		{"ipip", ipvs.TunIPIP, 0, 0},
		{"gre", ipvs.TunGRE, 0, 0},
		{"gre-csum", ipvs.TunGRE, 0, ipvs.TunCsum},
		{"gue", ipvs.TunGUE, 6080, 0},
		{"gue-csum", ipvs.TunGUE, 6080, ipvs.TunCsum},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := newLBLoop(b)
			k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 81}
			if err := l.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr"}); err != nil {
				b.Fatal(err)
			}
			if err := l.d.AddDest(k, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs1IP, 81), Weight: 1, Fwd: ipvs.FwdTunnel, TunType: tc.typ,
				TunPort: tc.port, TunFlags: tc.flags}); err != nil {
				b.Fatal(err)
			}
			l.w.iterate()
			cp, vp := netip.AddrPortFrom(clientIP, 42000), netip.AddrPortFrom(vip, 81)
			l.pass(b, 0, 1, tcpFrame(b, tcpSeg{src: cp, dst: vp, smac: macClient, dmac: macDP0, syn: true, seq: 1}))
			data := tcpFrame(b, tcpSeg{src: cp, dst: vp, smac: macClient, dmac: macDP0, ack: true, seq: 2, ackn: 1, payload: make([]byte, 64)})
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l.rx(b, 0, data)
				l.w.flushAll()
				l.releaseAll()
			}
		})
	}
}
