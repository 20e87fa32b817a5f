package dataplane

// IPv6 extension headers on the IPVS paths: the transport header is where
// header.LocateIPv6 found it, in every mode and every insertion (TOA, proxy
// protocol, SYN proxy), and the ICMP error rule follows the same walk.

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

// withExt6 inserts an 8-byte IPv6 extension header of type nh (body: the
// six bytes after next header and length) after the fixed header of the
// IPv6 packet in frame.
func withExt6(frame []byte, nh uint8, body [6]byte) []byte {
	const l3 = header.EthernetMinSize
	out := append([]byte(nil), frame[:l3+header.IPv6MinSize]...)
	next := out[l3+6]
	out[l3+6] = nh
	binary.BigEndian.PutUint16(out[l3+4:], binary.BigEndian.Uint16(out[l3+4:])+8)
	out = append(out, next, 0)
	out = append(out, body[:]...)
	return append(out, frame[l3+header.IPv6MinSize:]...)
}

// TestExtHeadersTCPv6: a TCP handshake and data through FullNAT with
// hop-by-hop and destination options headers on every client segment:
// translated with the headers kept (gopacket checks the checksums), the
// TOA inserted behind them; a routing header with a segment left is
// dropped and counted.
func TestExtHeadersTCPv6(t *testing.T) {
	td := newLBTestDP(t, 1)
	td.service(ipvs.TCP, vip6, 80, "rr", lip6, netip.AddrPortFrom(rs1IP6, 8080))
	client, vp, rs := netip.AddrPortFrom(clientIP6, 40200), netip.AddrPortFrom(vip6, 80), netip.AddrPortFrom(rs1IP6, 8080)
	ext := func(f []byte) []byte { return withHopByHop(withExt6(f, 60, [6]byte{1, 4})) }
	syn := td.one(t, 0, ext(tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, syn: true, seq: 10, mss: 1440})), 1)
	if syn.src.Addr() != lip6 || syn.dst != rs || !syn.tcp.SYN || syn.tcp.Seq != 10 {
		t.Fatalf("SYN out %s -> %s", syn.src, syn.dst)
	}
	lp := netip.AddrPortFrom(lip6, syn.src.Port())
	sa := td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: lp, smac: macRS1, dmac: macDP1, syn: true, ack: true, seq: 500, ackn: 11, mss: 1440}), 0)
	if sa.src != vp || sa.dst != client || !sa.tcp.SYN || !sa.tcp.ACK {
		t.Fatalf("SYN-ACK out %s -> %s", sa.src, sa.dst)
	}
	td.inject(0, ext(tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 11, ackn: 501, payload: []byte("hello")})))
	td.stepAll()
	out := td.outAll(1)
	if len(out) != 1 {
		t.Fatalf("%d data segments out", len(out))
	}
	d := decodeL4(t, out[0])
	p := decode(t, out[0])
	if p.Layer(layers.LayerTypeIPv6HopByHop) == nil || p.Layer(layers.LayerTypeIPv6Destination) == nil {
		t.Errorf("extension headers lost: %v", p)
	}
	if d.src != lp || d.dst != rs || string(d.tcp.Payload) != "hello" || len(toaOf(d.tcp)) != 18 {
		t.Errorf("data out %s -> %s %q toa %x", d.src, d.dst, d.tcp.Payload, toaOf(d.tcp))
	}
	// a routing header with a segment left: the packet is not for the VIP yet
	td.inject(0, withExt6(tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP6, 40201), dst: vp, smac: macClient, dmac: macDP0, syn: true}), 43, [6]byte{4, 1}))
	td.stepAll()
	if n := len(td.outAll(1)); n != 0 || td.sum(CtrDropLBExtHeader) != 1 {
		t.Errorf("routing header: %d out, drop_lb_ext_header %d", n, td.sum(CtrDropLBExtHeader))
	}
}

// TestNoICMPv6ErrorAboutErrorBehindOptions: the rule against answering an
// ICMPv6 error with an error follows header.LocateIPv6 past extension
// headers: a destination unreachable behind a hop-by-hop header whose hop
// limit runs out gets no time exceeded; the same UDP packet does.
func TestNoICMPv6ErrorAboutErrorBehindOptions(t *testing.T) {
	td := newTestDP(t)
	if err := td.d.AddNeigh(clientIP6, header.MAC(macClient), "dp0"); err != nil {
		t.Fatal(err)
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 1, NextHeader: layers.IPProtocolICMPv6, SrcIP: ipOf(clientIP6), DstIP: ipOf(rs1IP6)}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeDestinationUnreachable, 4)}
	ic.SetNetworkLayerForChecksum(ip)
	unreach := withHopByHop(serialize(t, &layers.Ethernet{SrcMAC: macClient, DstMAC: macDP0, EthernetType: layers.EthernetTypeIPv6}, ip, ic, gopacket.Payload(make([]byte, 48))))
	td.inject(0, unreach)
	td.step()
	if out := td.out(0); len(out) != 0 || td.counter(CtrDropTTLExceeded) != 1 {
		t.Fatalf("ICMPv6 error behind options: %d frames back, drop_ttl_exceeded %d", len(out), td.counter(CtrDropTTLExceeded))
	}
	td.inject(0, withHopByHop(udp6(t, macClient, macDP0, clientIP6, rs1IP6, 1, []byte("x"))))
	td.step()
	out := td.out(0)
	if len(out) != 1 {
		t.Fatalf("UDP behind options: %d frames back", len(out))
	}
	if m, ok := decode(t, out[0]).Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); !ok || m.TypeCode.Type() != layers.ICMPv6TypeTimeExceeded {
		t.Errorf("answer %v", m)
	}
}

// TestProxyProtocolExtHeaders: the proxy protocol header goes in front of
// the data of an IPv6 segment behind hop-by-hop and destination options
// headers (the transport header where header.LocateIPv6 found it; the
// headers kept, the checksum valid), and a later segment's sequence number
// moves up by its length.
func TestProxyProtocolExtHeaders(t *testing.T) {
	c := newPPTest(t, true, "v2", false)
	const sisn = 7000
	ext := func(f []byte) []byte { return withHopByHop(withExt6(f, 60, [6]byte{1, 4})) }
	syn := c.td.one(t, 0, ext(c.clientSeg(tcpSeg{syn: true, seq: c.cisn, mss: 1440})), 1)
	c.local = syn.src
	c.td.one(t, 1, c.serverSeg(tcpSeg{syn: true, ack: true, seq: sisn, ackn: c.cisn + 1, mss: 1440}), 0)
	req := []byte("GET / HTTP/1.0\r\n\r\n")
	c.td.inject(0, ext(c.clientSeg(tcpSeg{ack: true, psh: true, seq: c.cisn + 1, ackn: sisn + 1, payload: req})))
	c.td.stepAll()
	out := c.td.outAll(1)
	if len(out) != 1 {
		t.Fatalf("%d segments out", len(out))
	}
	p := decode(t, out[0]) // checksums
	d := decodeL4(t, out[0])
	if p.Layer(layers.LayerTypeIPv6HopByHop) == nil || p.Layer(layers.LayerTypeIPv6Destination) == nil ||
		!bytes.Equal(d.tcp.Payload, append(append([]byte(nil), c.hdr...), req...)) || d.tcp.Seq != c.cisn+1 {
		t.Fatalf("first data: seq %d payload %q, layers %v", d.tcp.Seq, d.tcp.Payload, p)
	}
	n := uint32(len(c.hdr))
	c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, seq: sisn + 1, ackn: c.cisn + 1 + n + uint32(len(req))}), 0)
	more := c.td.one(t, 0, ext(c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1 + uint32(len(req)), ackn: sisn + 1, payload: []byte("x")})), 1)
	if more.tcp.Seq != c.cisn+1+n+uint32(len(req)) || string(more.tcp.Payload) != "x" {
		t.Errorf("later segment seq %d payload %q", more.tcp.Seq, more.tcp.Payload)
	}
}

// TestSynProxyExtHeaders: a SYN-proxy connection whose client segments all
// carry hop-by-hop and destination options headers: the cookie SYN-ACK,
// the connection made on the client's ACK, and the client's data shifted
// into the server's sequence space with the headers kept (checksums valid).
func TestSynProxyExtHeaders(t *testing.T) {
	c := newSPTest(t, true)
	plain := c.clientSeg
	c.clientSeg = func(s tcpSeg) []byte { return withHopByHop(withExt6(plain(s), 60, [6]byte{1, 4})) }
	c.handshake()
	const sisn = 50000
	ack := c.td.one(t, 1, c.serverSeg(tcpSeg{syn: true, ack: true, seq: sisn, ackn: c.cisn + 1, mss: 1440}), 1)
	if ack.tcp.SYN || !ack.tcp.ACK || ack.tcp.Ack != sisn+1 {
		t.Fatalf("handshake ACK to the server: ack %d", ack.tcp.Ack)
	}
	c.td.inject(0, c.clientSeg(tcpSeg{ack: true, psh: true, seq: c.cisn + 1, ackn: c.cookie + 1, payload: []byte("hello")}))
	c.td.stepAll()
	out := c.td.outAll(1)
	if len(out) != 1 {
		t.Fatalf("%d data segments out; counters %v", len(out), nonZero(c.td.counters()))
	}
	p := decode(t, out[0])
	d := decodeL4(t, out[0])
	if p.Layer(layers.LayerTypeIPv6HopByHop) == nil || d.dst != c.rs || d.tcp.Ack != sisn+1 || string(d.tcp.Payload) != "hello" {
		t.Errorf("data to the server: %s ack %d (want %d) payload %q, layers %v", d.dst, d.tcp.Ack, sisn+1, d.tcp.Payload, p)
	}
}
