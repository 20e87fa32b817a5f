package dataplane

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/proxyproto"
	"github.com/gvs-lb/gvs/session"
)

// NAT64 services on the test dataplane: an IPv6 VIP (vip6) whose real
// server rs1IP is IPv4, reached from the IPv4 local address lip.
var (
	nat64VIP = netip.AddrPortFrom(vip6, 80)
	nat64RS  = netip.AddrPortFrom(rs1IP, 8080)
	client64 = netip.AddrPortFrom(clientIP6, 40000)
)

func addNAT64Services(t testing.TB, td *testDP) {
	td.service(ipvs.TCP, vip6, 80, "rr", lip, nat64RS)
	td.service(ipvs.UDP, vip6, 7000, "rr", lip, netip.AddrPortFrom(rs1IP, 7001))
}

// udpFrameAny is a UDP frame of either family; noCk: no IPv4 UDP checksum.
func udpFrameAny(t testing.TB, smac, dmac net.HardwareAddr, src, dst netip.AddrPort, payload []byte, noCk bool) []byte {
	u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if src.Addr().Is6() {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: ipOf(src.Addr()), DstIP: ipOf(dst.Addr())}
		u.SetNetworkLayerForChecksum(ip)
		return serialize(t, &layers.Ethernet{SrcMAC: smac, DstMAC: dmac, EthernetType: layers.EthernetTypeIPv6}, ip, u, gopacket.Payload(payload))
	}
	f := udpFrame(t, smac, dmac, src, dst, payload)
	if noCk {
		f[14+20+6], f[14+20+7] = 0, 0
	}
	return f
}

// nat64Conn opens a NAT64 TCP connection on td: SYN, SYN-ACK, the
// client's ACK (with the TOA), and returns the local address and port.
func nat64Open(t *testing.T, td *testDP) netip.AddrPort {
	t.Helper()
	syn := td.one(t, 0, tcpFrame(t, tcpSeg{src: client64, dst: nat64VIP, smac: macClient, dmac: macDP0, syn: true, seq: 1000, mss: 1460}), 1)
	local := syn.src
	sa := td.one(t, 1, tcpFrame(t, tcpSeg{src: nat64RS, dst: local, smac: macRS1, dmac: macDP1, syn: true, ack: true, seq: 5000, ackn: 1001, mss: 1460}), 0)
	if sa.src != nat64VIP || sa.dst != client64 {
		t.Fatalf("SYN-ACK %v → %v", sa.src, sa.dst)
	}
	td.one(t, 0, tcpFrame(t, tcpSeg{src: client64, dst: nat64VIP, smac: macClient, dmac: macDP0, ack: true, seq: 1001, ackn: 5001}), 1)
	return local
}

// TestNAT64TCP: an IPv6 client's connection to an IPv4 real server: each
// packet's new IP header compared field by field (gopacket verifies every
// checksum), the MSS clamped for both routes, the TOA carrying the
// client's IPv6 address and port, data both ways.
func TestNAT64TCP(t *testing.T) {
	td := newLBTestDP(t, 1)
	addNAT64Services(t, td)

	syn := tcpFrame(t, tcpSeg{src: client64, dst: nat64VIP, smac: macClient, dmac: macDP0, syn: true, seq: 1000, mss: 1460, ttl: 50})
	syn[14], syn[14+1] = 0x6b, 0x80 // traffic class 0xb8 (DSCP EF)
	td.inject(0, syn)
	td.stepAll()
	fs := td.outAll(1)
	if len(fs) != 1 {
		t.Fatalf("%d frames to the server", len(fs))
	}
	p := decode(t, fs[0])
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ip.IHL != 5 || ip.TOS != 0xb8 || ip.TTL != 49 || ip.Flags != layers.IPv4DontFragment || ip.FragOffset != 0 ||
		ip.Protocol != layers.IPProtocolTCP || int(ip.Length) != len(fs[0])-14 || !ip.SrcIP.Equal(ipOf(lip)) || !ip.DstIP.Equal(ipOf(rs1IP)) {
		t.Fatalf("SYN's IPv4 header: %+v", ip)
	}
	if eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); eth.EthernetType != layers.EthernetTypeIPv4 || !bytes.Equal(eth.DstMAC, macRS1) {
		t.Fatalf("SYN's Ethernet header: %+v", eth)
	}
	// the server's segments grow by 20 bytes towards the client: 1500 − 60
	if !tcp.SYN || tcp.ACK || tcp.Seq != 1000 || tcp.DstPort != 8080 || mssOf(tcp) != 1440 {
		t.Fatalf("SYN: flags SYN %v ACK %v seq %d dport %d MSS %d", tcp.SYN, tcp.ACK, tcp.Seq, tcp.DstPort, mssOf(tcp))
	}
	local := netip.AddrPortFrom(lip, uint16(tcp.SrcPort))

	// SYN-ACK back: IPv6, the client's first segment (20 bytes smaller as
	// IPv4, but with a 20-byte TOA) must fit both routes: 1500 − 60
	sa := tcpFrame(t, tcpSeg{src: nat64RS, dst: local, smac: macRS1, dmac: macDP1, syn: true, ack: true, seq: 5000, ackn: 1001, mss: 1460, ttl: 61})
	sa[14+1] = 0x28 // TOS
	fixIPv4Checksum(sa[14:])
	td.inject(1, sa)
	td.stepAll()
	fs = td.outAll(0)
	if len(fs) != 1 {
		t.Fatalf("%d frames to the client", len(fs))
	}
	p = decode(t, fs[0])
	ip6 := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	tcp = p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ip6.TrafficClass != 0x28 || ip6.FlowLabel != 0 || ip6.HopLimit != 60 || ip6.NextHeader != layers.IPProtocolTCP ||
		int(ip6.Length) != len(fs[0])-14-40 || !ip6.SrcIP.Equal(ipOf(vip6)) || !ip6.DstIP.Equal(ipOf(clientIP6)) {
		t.Fatalf("SYN-ACK's IPv6 header: %+v", ip6)
	}
	if !tcp.SYN || !tcp.ACK || tcp.SrcPort != 80 || tcp.DstPort != 40000 || tcp.Seq != 5000 || tcp.Ack != 1001 || mssOf(tcp) != 1440 {
		t.Fatalf("SYN-ACK: ports %d→%d seq %d ack %d MSS %d", tcp.SrcPort, tcp.DstPort, tcp.Seq, tcp.Ack, mssOf(tcp))
	}

	// the client's ACK carries the TOA: kind 254, length 20, port, IPv6 address
	ack := td.one(t, 0, tcpFrame(t, tcpSeg{src: client64, dst: nat64VIP, smac: macClient, dmac: macDP0, ack: true, seq: 1001, ackn: 5001}), 1)
	wantTOA := append(binary.BigEndian.AppendUint16(nil, client64.Port()), clientIP6.AsSlice()...)
	if ack.src != local || ack.dst != nat64RS || !bytes.Equal(toaOf(ack.tcp), wantTOA) {
		t.Fatalf("ACK %v → %v TOA % x, want % x", ack.src, ack.dst, toaOf(ack.tcp), wantTOA)
	}
	// the server acknowledges: the TOA is confirmed, data flows both ways
	td.one(t, 1, tcpFrame(t, tcpSeg{src: nat64RS, dst: local, smac: macRS1, dmac: macDP1, ack: true, seq: 5001, ackn: 1001}), 0)
	req := bytes.Repeat([]byte("GET / HTTP/1.1\r\n"), 80)
	d := td.one(t, 0, tcpFrame(t, tcpSeg{src: client64, dst: nat64VIP, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 1001, ackn: 5001, payload: req}), 1)
	if d.src != local || d.dst != nat64RS || !bytes.Equal(d.tcp.Payload, req) || toaOf(d.tcp) != nil || d.tcp.Seq != 1001 {
		t.Fatalf("client data: %v → %v seq %d, %d bytes", d.src, d.dst, d.tcp.Seq, len(d.tcp.Payload))
	}
	resp := bytes.Repeat([]byte("HTTP/1.1 200 OK\r\n"), 80)
	d = td.one(t, 1, tcpFrame(t, tcpSeg{src: nat64RS, dst: local, smac: macRS1, dmac: macDP1, ack: true, psh: true, seq: 5001, ackn: 1001 + uint32(len(req)), payload: resp}), 0)
	if d.src != nat64VIP || d.dst != client64 || !bytes.Equal(d.tcp.Payload, resp) || d.tcp.Ack != 1001+uint32(len(req)) {
		t.Fatalf("server data: %v → %v ack %d, %d bytes", d.src, d.dst, d.tcp.Ack, len(d.tcp.Payload))
	}
	if in, out := td.sum(CtrLBNAT64In), td.sum(CtrLBNAT64Out); in != 3 || out != 3 {
		t.Errorf("lb_nat64_in %d, lb_nat64_out %d, want 3 and 3", in, out)
	}
	// the connection: IPv6 client side, IPv4 server side, found by both keys
	w := td.w
	id, dir, ok := w.sess.Lookup(session.MakeKey(6, nat64RS, local))
	if !ok || dir != session.Out {
		t.Fatal("the connection is not found by its IPv4 key")
	}
	c := w.sess.Get(id)
	if c.CAddrPort() != client64 || c.VAddrPort() != nat64VIP || c.LAddrPort() != local || c.DAddrPort() != nat64RS || c.Flags&session.FlagIPv6 == 0 {
		t.Fatalf("connection %v %v %v %v flags %b", c.CAddrPort(), c.VAddrPort(), c.LAddrPort(), c.DAddrPort(), c.Flags)
	}
	if id2, dir2, ok := w.sess.Lookup(session.MakeKey(6, client64, nat64VIP)); !ok || id2 != id || dir2 != session.In {
		t.Fatal("the connection is not found by its IPv6 key")
	}
}

func fixIPv4Checksum(ip []byte) {
	ip[10], ip[11] = 0, 0
	s := ^checksum16(ip[:int(ip[0]&15)*4])
	ip[10], ip[11] = byte(s>>8), byte(s)
}

func checksum16(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// TestNAT64UDP: datagrams both ways; the server's datagram without a
// checksum (legal in IPv4) gets one as IPv6.
func TestNAT64UDP(t *testing.T) {
	td := newLBTestDP(t, 1)
	addNAT64Services(t, td)
	vipUDP := netip.AddrPortFrom(vip6, 7000)
	q := []byte("question")
	d := td.one(t, 0, udpFrameAny(t, macClient, macDP0, client64, vipUDP, q, false), 1)
	if d.src.Addr() != lip || d.dst != netip.AddrPortFrom(rs1IP, 7001) || d.udp == nil || !bytes.Equal(d.udp.Payload, q) || d.ttl != 63 {
		t.Fatalf("to the server: %v → %v ttl %d", d.src, d.dst, d.ttl)
	}
	for _, noCk := range []bool{false, true} {
		a := []byte("answer")
		r := td.one(t, 1, udpFrameAny(t, macRS1, macDP1, netip.AddrPortFrom(rs1IP, 7001), d.src, a, noCk), 0)
		if r.src != vipUDP || r.dst != client64 || !bytes.Equal(r.udp.Payload, a) || r.udp.Checksum == 0 {
			t.Fatalf("noCk=%v: to the client: %v → %v checksum %#x", noCk, r.src, r.dst, r.udp.Checksum)
		}
	}
}

// TestNAT64TooBig: a packet that the egress MTU cannot take once
// translated gets the router's answer in its sender's family, with the MTU
// converted: packet-too-big with the IPv4 MTU + 20 for the client,
// fragmentation-needed with the IPv6 MTU − 20 for the server (with DF;
// without DF dropped), each quoting the packet as its sender sent it.
func TestNAT64TooBig(t *testing.T) {
	td := newLBTestDP(t, 1)
	addNAT64Services(t, td)
	local := nat64Open(t, td)
	td.one(t, 1, tcpFrame(t, tcpSeg{src: nat64RS, dst: local, smac: macRS1, dmac: macDP1, ack: true, seq: 5001, ackn: 1001}), 0) // TOA confirmed

	// client: 40 + 20 + 1461 as IPv6 is 1501 as IPv4 (egress MTU 1500)
	in := tcpFrame(t, tcpSeg{src: client64, dst: nat64VIP, smac: macClient, dmac: macDP0, ack: true, seq: 1001, ackn: 5001, payload: make([]byte, 1461)})
	td.inject(0, in)
	td.stepAll()
	if n := len(td.outAll(1)); n != 0 {
		t.Fatalf("%d frames to the server", n)
	}
	back := td.outAll(0)
	if len(back) != 1 || td.sum(CtrDropMTUExceeded) != 1 {
		t.Fatalf("%d frames back, drop_mtu_exceeded %d", len(back), td.sum(CtrDropMTUExceeded))
	}
	p := decode(t, back[0])
	m := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	if ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); !ip.DstIP.Equal(ipOf(clientIP6)) ||
		m.TypeCode.Type() != layers.ICMPv6TypePacketTooBig || binary.BigEndian.Uint32(m.Payload) != 1520 {
		t.Fatalf("ICMPv6 %v to %s MTU %d", m.TypeCode, ip.DstIP, binary.BigEndian.Uint32(m.Payload))
	}
	q := m.Payload[4:]
	if want := in[14 : 14+len(q)]; !bytes.Equal(q, want) {
		t.Errorf("the quote is not the client's packet:\n% x\n% x", q[:60], want[:60])
	}

	// server: 20 + 20 + 1441 as IPv4 is 1501 as IPv6
	big := tcpFrame(t, tcpSeg{src: nat64RS, dst: local, smac: macRS1, dmac: macDP1, ack: true, seq: 5001, ackn: 1001, payload: make([]byte, 1441)})
	td.inject(1, big) // without DF: dropped
	td.stepAll()
	if n := len(td.outAll(0)) + len(td.outAll(1)); n != 0 || td.sum(CtrDropMTUExceeded) != 2 {
		t.Fatalf("without DF: %d frames, drop_mtu_exceeded %d", n, td.sum(CtrDropMTUExceeded))
	}
	big = setDF(big)
	td.inject(1, big)
	td.stepAll()
	back = td.outAll(1)
	if len(back) != 1 || len(td.outAll(0)) != 0 {
		t.Fatalf("server side: %d errors", len(back))
	}
	p = decode(t, back[0])
	m4 := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); !ip.DstIP.Equal(ipOf(rs1IP)) || m4.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || m4.Seq != 1480 {
		t.Fatalf("ICMP %v to %s MTU %d", m4.TypeCode, ip.DstIP, m4.Seq)
	}
	if q, want := m4.Payload, big[14:14+len(m4.Payload)]; !bytes.Equal(q, want) {
		t.Errorf("the quote is not the server's packet:\n% x\n% x", q[:40], want[:40])
	}
}

// nat64Loop is a NAT64 connection on the packet-by-packet test dataplane,
// established and its TOA confirmed; in and out are data frames of both
// directions.
func nat64Loop(tb testing.TB) (l *lbLoop, in, out []byte) {
	l = newLBLoop(tb)
	addNAT64Services(tb, l.testDP)
	l.w.iterate()
	syn := l.pass(tb, 0, 1, tcpFrame(tb, tcpSeg{src: client64, dst: nat64VIP, smac: macClient, dmac: macDP0, syn: true, seq: 1}))
	local := netip.AddrPortFrom(lip, binary.BigEndian.Uint16(syn[14+20:]))
	l.pass(tb, 1, 0, tcpFrame(tb, tcpSeg{src: nat64RS, dst: local, smac: macRS1, dmac: macDP1, syn: true, ack: true, ackn: 2}))
	l.pass(tb, 0, 1, tcpFrame(tb, tcpSeg{src: client64, dst: nat64VIP, smac: macClient, dmac: macDP0, ack: true, seq: 2, ackn: 1}))
	l.pass(tb, 1, 0, tcpFrame(tb, tcpSeg{src: nat64RS, dst: local, smac: macRS1, dmac: macDP1, ack: true, seq: 1, ackn: 2}))
	payload := make([]byte, 64)
	in = tcpFrame(tb, tcpSeg{src: client64, dst: nat64VIP, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 2, ackn: 1, payload: payload})
	out = tcpFrame(tb, tcpSeg{src: nat64RS, dst: local, smac: macRS1, dmac: macDP1, ack: true, psh: true, seq: 1, ackn: 66, payload: payload})
	return l, in, out
}

// TestNAT64Allocs: no allocation per translated packet, either direction.
func TestNAT64Allocs(t *testing.T) {
	l, in, out := nat64Loop(t)
	for _, c := range []struct {
		name        string
		port, to    int
		frame       []byte
		ctr         Counter
		wantVersion byte
	}{{"in", 0, 1, in, CtrLBNAT64In, 4}, {"out", 1, 0, out, CtrLBNAT64Out, 6}} {
		got := l.pass(t, c.port, c.to, c.frame)
		if got[14]>>4 != c.wantVersion {
			t.Fatalf("%s: IPv%d out", c.name, got[14]>>4)
		}
		decode(t, got)
		run := func() {
			l.rx(t, c.port, c.frame)
			l.w.flushAll()
			if l.releaseAll() != 1 {
				t.Fatalf("%s: no frame sent", c.name)
			}
		}
		l.w.ctr.publish()
		before := l.counter(c.ctr)
		if n := testing.AllocsPerRun(500, run); n != 0 {
			t.Errorf("%s: %v allocations per packet", c.name, n)
		}
		l.w.ctr.publish()
		if n := l.counter(c.ctr) - before; n != 501 {
			t.Errorf("%s: %s grew by %d for 501 packets", c.name, c.ctr, n)
		}
	}
}

// BenchmarkNAT64EstablishedIn/Out: one data segment of an established
// NAT64 connection translated per op (IPv6 → IPv4, IPv4 → IPv6), in bursts
// of 32 as the worker loop does; compare BenchmarkFullNATEstablishedIn/Out.
func BenchmarkNAT64EstablishedIn(b *testing.B)  { benchNAT64(b, true) }
func BenchmarkNAT64EstablishedOut(b *testing.B) { benchNAT64(b, false) }

func benchNAT64(b *testing.B, in bool) {
	l, fin, fout := nat64Loop(b)
	port, frame := 0, fin
	if !in {
		port, frame = 1, fout
	}
	benchBursts(b, l.loopDP, port, frame) // modes_bench_test.go
}

// TestNAT64ICMP: ICMP errors about a NAT64 connection change family: a
// fragmentation-needed from the server's side reaches the client as
// packet-too-big (MTU + 20, less the TOA still pending) quoting what the
// client sent; a port-unreachable from the client's side reaches the
// server as ICMPv4 quoting what it sent (gopacket verifies every checksum,
// the quoted packets' too).
func TestNAT64ICMP(t *testing.T) {
	td := newLBTestDP(t, 1)
	addNAT64Services(t, td)
	local := nat64Open(t, td)
	toServer := tcpFrame(t, tcpSeg{src: local, dst: nat64RS, smac: macDP1, dmac: macRS1, ack: true, psh: true, seq: 1001, ackn: 5001, payload: make([]byte, 40)})[14:]
	fragNeeded := serialize(t, &layers.Ethernet{SrcMAC: macRS1, DstMAC: macDP1, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: ipOf(rs2IP), DstIP: ipOf(lip)},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1400}, gopacket.Payload(toServer))
	for _, want := range []uint32{1400, 1420} { // TOA pending (20 bytes), then confirmed
		out := oneRaw(t, td, 1, fragNeeded, 0)
		p := decode(t, out)
		ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		m := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		if !ip.SrcIP.Equal(ipOf(vip6)) || !ip.DstIP.Equal(ipOf(clientIP6)) || m.TypeCode.Type() != layers.ICMPv6TypePacketTooBig ||
			binary.BigEndian.Uint32(m.Payload) != want {
			t.Fatalf("%s → %s %v MTU %d, want packet-too-big MTU %d", ip.SrcIP, ip.DstIP, m.TypeCode, binary.BigEndian.Uint32(m.Payload), want)
		}
		q := decodeL3(t, m.Payload[4:])
		if q.src != client64 || q.dst != nat64VIP || q.tcp == nil || q.tcp.Seq != 1001 || len(q.tcp.Payload) != 40 {
			t.Fatalf("quoted %v → %v", q.src, q.dst)
		}
		td.one(t, 1, tcpFrame(t, tcpSeg{src: nat64RS, dst: local, smac: macRS1, dmac: macDP1, ack: true, seq: 5001, ackn: 1001}), 0) // confirms the TOA
	}
	// from the client's side, about the server's segment as the client got it
	toClient := tcpFrame(t, tcpSeg{src: nat64VIP, dst: client64, smac: macDP0, dmac: macClient, ack: true, seq: 5001, ackn: 1001, payload: []byte("x")})[14:]
	ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: ipOf(clientIP6), DstIP: ipOf(vip6)}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeDestinationUnreachable, 4)}
	ic.SetNetworkLayerForChecksum(ip6)
	unreach := serialize(t, &layers.Ethernet{SrcMAC: macClient, DstMAC: macDP0, EthernetType: layers.EthernetTypeIPv6}, ip6, ic,
		gopacket.Payload(append(make([]byte, 4), toClient...)))
	p := decode(t, oneRaw(t, td, 0, unreach, 1))
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	m := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if !ip.SrcIP.Equal(ipOf(lip)) || !ip.DstIP.Equal(ipOf(rs1IP)) || m.TypeCode != layers.CreateICMPv4TypeCode(3, 3) {
		t.Fatalf("%s → %s %v, want port unreachable from the local address to the server", ip.SrcIP, ip.DstIP, m.TypeCode)
	}
	if q := decodeL3(t, m.Payload); q.src != nat64RS || q.dst != local || q.tcp == nil || q.tcp.Seq != 5001 {
		t.Fatalf("quoted %v → %v", q.src, q.dst)
	}
	if n := td.sum(CtrLBICMPTranslated); n != 3 {
		t.Errorf("lb_icmp_translated %d, want 3", n)
	}
}

// decodeL3 decodes an IP packet (a quote) with its checksums verified.
func decodeL3(t *testing.T, l3 []byte) decoded {
	t.Helper()
	et := layers.EthernetTypeIPv4
	if l3[0]>>4 == 6 {
		et = layers.EthernetTypeIPv6
	}
	eth := make([]byte, 14, 14+len(l3))
	eth[12], eth[13] = byte(et>>8), byte(et)
	return decodeL4(t, append(eth, l3...))
}

// oneRaw runs a frame through and returns the single frame sent on port out.
func oneRaw(t *testing.T, td *testDP, in int, frame []byte, out int) []byte {
	t.Helper()
	td.inject(in, frame)
	td.stepAll()
	fs := td.outAll(out)
	if len(fs) != 1 {
		ctr, _ := td.w.Stats()
		t.Fatalf("port %d sent %d frames, want 1; counters %v", out, len(fs), nonZero(ctr))
	}
	return fs[0]
}

// TestNAT64ProxyProtocol: a proxy protocol v2 service with an IPv6 VIP and
// an IPv4 real server: the header says TCP over IPv6 with the client's and
// the VIP's addresses; the server's MSS leaves room for it; a full-size
// first segment is not cut (the IPv4 header is 20 bytes smaller).
func TestNAT64ProxyProtocol(t *testing.T) {
	td := newLBTestDP(t, 1)
	addNAT64Services(t, td)
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip6, Port: 80}
	if err := td.d.EditService(ipvs.ServiceSpec{Key: k, Sched: "rr", ProxyProtocol: 2}); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 128)
	hdr = hdr[:proxyproto.Write(hdr, 2, 6, client64, nat64VIP)]
	if len(hdr) != 16+36 || hdr[13] != 0x21 {
		t.Fatalf("expected header %x: want 52 bytes of TCP over IPv6 (0x21)", hdr)
	}
	syn := td.one(t, 0, tcpFrame(t, tcpSeg{src: client64, dst: nat64VIP, smac: macClient, dmac: macDP0, syn: true, seq: 1000, mss: 1460}), 1)
	sa := td.one(t, 1, tcpFrame(t, tcpSeg{src: nat64RS, dst: syn.src, smac: macRS1, dmac: macDP1, syn: true, ack: true, seq: 5000, ackn: 1001, mss: 1460}), 0)
	mss := mssOf(sa.tcp)
	if want := uint16(1500 - 20 - 20 - len(hdr)); mss != want {
		t.Fatalf("SYN-ACK MSS %d, want %d (IPv4 route less the header)", mss, want)
	}
	req := make([]byte, mss)
	d := td.one(t, 0, tcpFrame(t, tcpSeg{src: client64, dst: nat64VIP, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 1001, ackn: 5001, payload: req}), 1)
	if d.src != syn.src || d.dst != nat64RS || !bytes.Equal(d.tcp.Payload, append(append([]byte(nil), hdr...), req...)) || d.tcp.Seq != 1001 {
		t.Fatalf("first segment %v → %v seq %d, %d bytes, want the header and all %d bytes", d.src, d.dst, d.tcp.Seq, len(d.tcp.Payload), len(req))
	}
	if toaOf(d.tcp) != nil || td.sum(CtrLBPPCut) != 0 {
		t.Fatalf("TOA % x, lb_proxy_protocol_cut %d", toaOf(d.tcp), td.sum(CtrLBPPCut))
	}
}

// TestNAT64Sync: a NAT64 connection is published with its two families
// (IPv6 client and VIP, IPv4 local address and server) and installed on
// another dataplane, which translates the server's next segment to IPv6
// and the client's to IPv4 for it.
func TestNAT64Sync(t *testing.T) {
	a, b := newLBTestDP(t, 1), newLBTestDP(t, 1)
	addNAT64Services(t, a)
	addNAT64Services(t, b)
	setSync(a, SyncPolicy{Threshold: 3})
	local := nat64Open(t, a) // SYN, SYN-ACK, ACK
	a.one(t, 0, tcpFrame(t, tcpSeg{src: client64, dst: nat64VIP, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 1001, ackn: 5001, payload: []byte("hi")}), 1)
	ev := popSync(a)
	if len(ev) != 1 {
		t.Fatalf("%d events, want 1", len(ev))
	}
	if e := ev[0]; e.Client != client64 || e.Virtual != nat64VIP || e.Local != local || e.Dest != nat64RS || e.State != session.StateEstablished {
		t.Fatalf("event %+v", e)
	}
	if res, err := b.d.InstallSynced(ev); err != nil || res != (SyncInstallResult{Installed: 1}) {
		t.Fatalf("InstallSynced = %+v, %v", res, err)
	}
	d := b.one(t, 1, tcpFrame(t, tcpSeg{src: nat64RS, dst: local, smac: macRS1, dmac: macDP1, ack: true, psh: true, seq: 5001, ackn: 1003, payload: []byte("ok")}), 0)
	if d.src != nat64VIP || d.dst != client64 || string(d.tcp.Payload) != "ok" {
		t.Fatalf("server segment on the second node: %v → %v %q", d.src, d.dst, d.tcp.Payload)
	}
	d = b.one(t, 0, tcpFrame(t, tcpSeg{src: client64, dst: nat64VIP, smac: macClient, dmac: macDP0, ack: true, seq: 1003, ackn: 5003}), 1)
	if d.src != local || d.dst != nat64RS {
		t.Fatalf("client segment on the second node: %v → %v", d.src, d.dst)
	}
}

// TestNAT64SynProxy: a SYN-proxy service with an IPv6 VIP and an IPv4
// real server: GVS answers the IPv6 client's SYN with a cookie, opens the
// server's handshake in IPv4 on the client's ACK, completes it with the
// held request and the TOA (the IPv6 client), and shifts the server's
// sequence numbers into the cookie's space while translating to IPv6.
func TestNAT64SynProxy(t *testing.T) {
	td := newLBTestDP(t, 1)
	addNAT64Services(t, td)
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip6, Port: 80}
	if err := td.d.EditService(ipvs.ServiceSpec{Key: k, Sched: "rr", SynProxy: true}); err != nil {
		t.Fatal(err)
	}
	c := &spConnT{t: t, td: td, client: client64, vip: nat64VIP, rs: nat64RS, cisn: 1000}
	c.clientSeg = func(s tcpSeg) []byte {
		s.src, s.dst, s.smac, s.dmac = c.client, c.vip, macClient, macDP0
		return tcpFrame(t, s)
	}
	c.serverSeg = func(s tcpSeg) []byte {
		s.src, s.dst, s.smac, s.dmac = c.rs, c.local, macRS1, macDP1
		return tcpFrame(t, s)
	}
	syn := c.handshake() // the cookie SYN-ACK (IPv6), then the IPv4 SYN to the server
	if syn.src.Addr() != lip || !syn.src.Addr().Is4() {
		t.Fatalf("SYN to the server from %v", syn.src)
	}
	req := []byte("GET / HTTP/1.1\r\n\r\n")
	c.td.inject(0, c.clientSeg(tcpSeg{ack: true, psh: true, seq: c.cisn + 1, ackn: c.cookie + 1, payload: req,
		opts: []layers.TCPOption{optTS(779, c.gvsTS)}}))
	c.td.stepAll()
	if n := len(c.td.outAll(1)); n != 0 || c.td.sum(CtrLBSynProxyHeld) != 1 {
		t.Fatalf("request before the server's answer: %d frames out, held %d", n, c.td.sum(CtrLBSynProxyHeld))
	}
	const sisn, sts = 90000, 5000000
	ack := c.td.one(t, 1, c.serverSeg(tcpSeg{syn: true, ack: true, seq: sisn, ackn: c.cisn + 1, mss: 1460,
		opts: []layers.TCPOption{optSACKPerm, optTS(sts, 778), nopOpt, optWS(9)}}), 1)
	if ack.src != c.local || ack.dst != c.rs || !ack.tcp.ACK || ack.tcp.Seq != c.cisn+1 || ack.tcp.Ack != sisn+1 || !bytes.Equal(ack.tcp.Payload, req) {
		t.Fatalf("handshake ACK %s -> %s seq %d ack %d payload %q", ack.src, ack.dst, ack.tcp.Seq, ack.tcp.Ack, ack.tcp.Payload)
	}
	wantGVSTOA(t, "handshake ACK", ack, c.client)
	resp := []byte("HTTP/1.1 200 OK\r\n\r\n")
	out := c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, psh: true, seq: sisn + 1, ackn: c.cisn + 1 + uint32(len(req)), payload: resp,
		opts: []layers.TCPOption{nopOpt, nopOpt, optTS(sts+10, 779)}}), 0)
	if out.src != c.vip || out.dst != c.client || out.tcp.Seq != c.cookie+1 || out.tcp.Ack != c.cisn+1+uint32(len(req)) || !bytes.Equal(out.tcp.Payload, resp) {
		t.Fatalf("response %s -> %s seq %d (want %d) ack %d", out.src, out.dst, out.tcp.Seq, c.cookie+1, out.tcp.Ack)
	}
	in := c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1 + uint32(len(req)), ackn: c.cookie + 1 + uint32(len(resp)),
		opts: []layers.TCPOption{optTS(780, c.gvsTS+10)}}), 1)
	if in.src != c.local || in.dst != c.rs || in.tcp.Ack != sisn+1+uint32(len(resp)) {
		t.Fatalf("client ACK %s -> %s ack %d, want %d", in.src, in.dst, in.tcp.Ack, sisn+1+uint32(len(resp)))
	}
}

// TestNAT64OnePacket: a one-packet (-o) UDP service with an IPv6 VIP and
// an IPv4 real server translates each datagram and keeps no connection.
func TestNAT64OnePacket(t *testing.T) {
	td := newLBTestDP(t, 1)
	addNAT64Services(t, td)
	k := ipvs.ServiceKey{Proto: ipvs.UDP, Addr: vip6, Port: 7000}
	if err := td.d.EditService(ipvs.ServiceSpec{Key: k, Sched: "rr", OnePacket: true}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		d := td.one(t, 0, udpFrameAny(t, macClient, macDP0, client64, netip.AddrPortFrom(vip6, 7000), []byte("trap"), false), 1)
		if d.src.Addr() != lip || d.dst != netip.AddrPortFrom(rs1IP, 7001) || d.udp == nil || string(d.udp.Payload) != "trap" {
			t.Fatalf("datagram %d: %v → %v", i, d.src, d.dst)
		}
	}
	if n := td.w.sess.Len(); n != 0 || td.sum(CtrLBOnePacket) != 2 {
		t.Fatalf("%d connections, lb_one_packet %d", n, td.sum(CtrLBOnePacket))
	}
}

// TestNAT64ExtHeader: a client segment with an IPv6 hop-by-hop options
// header is translated like any other: the extension header is not
// carried into IPv4 (RFC 7915 §5.1).
func TestNAT64ExtHeader(t *testing.T) {
	td := newLBTestDP(t, 1)
	addNAT64Services(t, td)
	local := nat64Open(t, td)
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolIPv6HopByHop, SrcIP: ipOf(clientIP6), DstIP: ipOf(vip6)}
	ip.HopByHop = &layers.IPv6HopByHop{}
	ip.HopByHop.NextHeader = layers.IPProtocolTCP
	ip.HopByHop.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: []byte{0, 0, 0, 0}}}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, ACK: true, PSH: true, Seq: 1001, Ack: 5001, Window: 65535}
	tcp.SetNetworkLayerForChecksum(ip)
	f := serialize(t, &layers.Ethernet{SrcMAC: macClient, DstMAC: macDP0, EthernetType: layers.EthernetTypeIPv6}, ip, tcp, gopacket.Payload("hop"))
	d := td.one(t, 0, f, 1)
	if d.src != local || d.dst != nat64RS || string(d.tcp.Payload) != "hop" || d.tcp.Seq != 1001 {
		t.Fatalf("%v → %v seq %d payload %q", d.src, d.dst, d.tcp.Seq, d.tcp.Payload)
	}
}
