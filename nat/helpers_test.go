package nat

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
)

// A FullNAT connection in each family: client C, virtual service V, local
// address L, real server (dest) D, and a router on the path that originates
// ICMP errors.
type fnatConn struct {
	c, v, l, d, router netip.Addr
}

const (
	cport uint16 = 40000
	vport uint16 = 80
	lport uint16 = 1029
	dport uint16 = 8080
)

var (
	conn4 = fnatConn{
		c: netip.MustParseAddr("198.51.100.7"), v: netip.MustParseAddr("203.0.113.10"),
		l: netip.MustParseAddr("10.0.0.5"), d: netip.MustParseAddr("10.0.1.20"),
		router: netip.MustParseAddr("192.0.2.1"),
	}
	conn6 = fnatConn{
		c: netip.MustParseAddr("2001:db8:c::7"), v: netip.MustParseAddr("2001:db8:f::10"),
		l: netip.MustParseAddr("fd00::5"), d: netip.MustParseAddr("fd00:1::20"),
		router: netip.MustParseAddr("2001:db8:ffff::1"),
	}
)

// The four tuples of a connection's packets.
func (k fnatConn) clientSent() Endpoints { return Endpoints{k.c, k.v, cport, vport} } // in, before
func (k fnatConn) toServer() Endpoints   { return Endpoints{k.l, k.d, lport, dport} } // in, after
func (k fnatConn) serverSent() Endpoints { return Endpoints{k.d, k.l, dport, lport} } // out, before
func (k fnatConn) toClient() Endpoints   { return Endpoints{k.v, k.c, vport, cport} } // out, after

// pkt describes a test packet; build serialises it with gopacket.
type pkt struct {
	ep        Endpoints
	proto     uint8
	flags     uint8 // TCP flags (header.TCPFlag*)
	seq, ack  uint32
	opts      []layers.TCPOption
	payload   []byte
	noUDPCk   bool // IPv4 UDP without checksum
	ipOpts    []layers.IPv4Option
	flagsFrag uint16 // IPv4 flags + fragment offset field
	hopByHop  bool   // IPv6 with a hop-by-hop options header
	ttl       uint8
}

func (p pkt) withEP(ep Endpoints) pkt { p.ep = ep; return p }

func ip4(a netip.Addr) net.IP  { b := a.As4(); return net.IP(b[:]) }
func ip16(a netip.Addr) net.IP { b := a.As16(); return net.IP(b[:]) }

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// network returns the IP layer for p (addresses from ep, protocol proto).
func network(p pkt, proto uint8) (gopacket.SerializableLayer, gopacket.NetworkLayer) {
	ttl := p.ttl
	if ttl == 0 {
		ttl = 64
	}
	if p.ep.Src.Is4() {
		ip := &layers.IPv4{Version: 4, TTL: ttl, Id: 0x1234, Protocol: layers.IPProtocol(proto),
			SrcIP: ip4(p.ep.Src), DstIP: ip4(p.ep.Dst), Options: p.ipOpts,
			Flags: layers.IPv4Flag(p.flagsFrag >> 13), FragOffset: p.flagsFrag & 0x1fff}
		return ip, ip
	}
	ip := &layers.IPv6{Version: 6, HopLimit: ttl, FlowLabel: 0x12345, TrafficClass: 0x20,
		NextHeader: layers.IPProtocol(proto), SrcIP: ip16(p.ep.Src), DstIP: ip16(p.ep.Dst)}
	if p.hopByHop {
		ip.NextHeader = layers.IPProtocolIPv6HopByHop
		ip.HopByHop = &layers.IPv6HopByHop{}
		ip.HopByHop.NextHeader = layers.IPProtocol(proto)
		ip.HopByHop.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: []byte{0, 0, 0, 0}}}
	}
	return ip, ip
}

func (p pkt) build(t testing.TB) []byte {
	t.Helper()
	nl, netl := network(p, p.proto)
	switch p.proto {
	case header.ProtoTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(p.ep.SrcPort), DstPort: layers.TCPPort(p.ep.DstPort),
			Seq: p.seq, Ack: p.ack, Window: 29200, Options: p.opts,
			FIN: p.flags&header.TCPFlagFIN != 0, SYN: p.flags&header.TCPFlagSYN != 0,
			RST: p.flags&header.TCPFlagRST != 0, PSH: p.flags&header.TCPFlagPSH != 0,
			ACK: p.flags&header.TCPFlagACK != 0}
		if err := tcp.SetNetworkLayerForChecksum(netl); err != nil {
			t.Fatal(err)
		}
		return serialize(t, nl, tcp, gopacket.Payload(p.payload))
	case header.ProtoUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(p.ep.SrcPort), DstPort: layers.UDPPort(p.ep.DstPort)}
		if err := udp.SetNetworkLayerForChecksum(netl); err != nil {
			t.Fatal(err)
		}
		b := serialize(t, nl, udp, gopacket.Payload(p.payload))
		if p.noUDPCk {
			hl := int(b[0]&15) * 4
			b[hl+6], b[hl+7] = 0, 0
		}
		return b
	default: // ICMP echo, as an "other protocol" packet
		if p.ep.Src.Is4() {
			return serialize(t, nl, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 1}, gopacket.Payload(p.payload))
		}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}
		_ = ic.SetNetworkLayerForChecksum(netl)
		return serialize(t, nl, ic, gopacket.Payload(append([]byte{0, 1, 0, 1}, p.payload...)))
	}
}

// icmpErr describes an ICMP error quoting the first quoteLen bytes (all if
// 0) of the packet quoted.
type icmpErr struct {
	src, dst   netip.Addr
	typ, code  uint8
	mtu        uint32
	quoted     []byte
	quoteLen   int
	fragFlags  uint16
	ipv4OptLen int
}

func (e icmpErr) build(t testing.TB) []byte {
	t.Helper()
	q := e.quoted
	if e.quoteLen > 0 {
		q = q[:e.quoteLen]
	}
	if e.src.Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 255, Id: 7, Protocol: layers.IPProtocolICMPv4,
			SrcIP: ip4(e.src), DstIP: ip4(e.dst),
			Flags: layers.IPv4Flag(e.fragFlags >> 13), FragOffset: e.fragFlags & 0x1fff}
		ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(e.typ, e.code), Seq: uint16(e.mtu)}
		return serialize(t, ip, ic, gopacket.Payload(q))
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6,
		SrcIP: ip16(e.src), DstIP: ip16(e.dst)}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(e.typ, e.code)}
	if err := ic.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	body := binary.BigEndian.AppendUint32(nil, e.mtu)
	return serialize(t, ip, ic, gopacket.Payload(append(body, q...)))
}

// decode decodes l3 with gopacket and fails on any decoding error.
func decode(t testing.TB, l3 []byte) gopacket.Packet {
	t.Helper()
	first := layers.LayerTypeIPv4
	if l3[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(l3, first, gopacket.DecodeOptions{NoCopy: false})
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket cannot decode the packet: %v\n%v", el.Error(), p)
	}
	return p
}

// verifyChecksums decodes l3 with gopacket, re-serialises the decoded layers
// with ComputeChecksums and no length fixing, and requires the very same
// bytes: every checksum in l3 (IPv4 header, TCP/UDP, ICMPv4/ICMPv6) equals a
// from-scratch computation. An IPv4 UDP checksum of zero (none) is kept.
func verifyChecksums(t testing.TB, l3 []byte) gopacket.Packet {
	t.Helper()
	p := decode(t, l3)
	var ls []gopacket.SerializableLayer
	var netl gopacket.NetworkLayer
	var zeroUDP bool
	var last gopacket.Layer
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.IPv4:
			netl = l
			ls = append(ls, l)
		case *layers.IPv6:
			netl = l
			ls = append(ls, l)
		case *layers.TCP:
			_ = l.SetNetworkLayerForChecksum(netl)
			ls, last = append(ls, l), l
		case *layers.UDP:
			_ = l.SetNetworkLayerForChecksum(netl)
			zeroUDP = l.Checksum == 0
			ls, last = append(ls, l), l
		case *layers.ICMPv4:
			ls, last = append(ls, l), l
		case *layers.ICMPv6:
			_ = l.SetNetworkLayerForChecksum(netl)
			ls, last = append(ls, l), l
		}
		if last != nil {
			break
		}
	}
	if last == nil {
		t.Fatalf("no transport layer in %v", p)
	}
	ls = append(ls, gopacket.Payload(last.LayerPayload()))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("re-serialize: %v", err)
	}
	want := buf.Bytes()
	if zeroUDP && l3[0]>>4 == 4 {
		hl := int(l3[0]&15) * 4
		want[hl+6], want[hl+7] = 0, 0
	}
	if !bytes.Equal(want, l3) {
		t.Fatalf("checksums do not verify:\n got  %x\n want %x", l3, want)
	}
	return p
}

// tuple returns the addresses and ports of a TCP/UDP packet decoded by
// gopacket.
func tuple(t testing.TB, p gopacket.Packet) Endpoints {
	t.Helper()
	var e Endpoints
	switch n := p.NetworkLayer().(type) {
	case *layers.IPv4:
		e.Src, _ = netip.AddrFromSlice(n.SrcIP.To4())
		e.Dst, _ = netip.AddrFromSlice(n.DstIP.To4())
	case *layers.IPv6:
		e.Src, _ = netip.AddrFromSlice(n.SrcIP)
		e.Dst, _ = netip.AddrFromSlice(n.DstIP)
	}
	switch l := p.TransportLayer().(type) {
	case *layers.TCP:
		e.SrcPort, e.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
	case *layers.UDP:
		e.SrcPort, e.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
	}
	return e
}

// residual returns the folded one's-complement sum a receiver computes to
// verify the transport checksum of a TCP/UDP packet (pseudo-header and the
// whole segment, checksum included), normalised so that a valid packet gives
// 0. Incremental updates must preserve it, valid or not.
func residual(l3 []byte, v6 bool, proto uint8, l4, end int) uint16 {
	var src, dst []byte
	if v6 {
		src, dst = header.IPv6(l3).SrcBytes(), header.IPv6(l3).DstBytes()
	} else {
		src, dst = header.IPv4(l3).SrcBytes(), header.IPv4(l3).DstBytes()
	}
	s := header.PseudoHeaderChecksum(proto, src, dst, uint16(end-l4))
	return norm(header.Checksum(l3[l4:end], s))
}

// icmpv6Residual is residual for an ICMPv6 message (pseudo-header with the
// message length).
func icmpv6Residual(l3 []byte, l4, end int) uint16 {
	ip := header.IPv6(l3)
	s := header.PseudoHeaderChecksum(header.ProtoICMPv6, ip.SrcBytes(), ip.DstBytes(), uint16(end-l4))
	return norm(header.Checksum(l3[l4:end], s))
}

func norm(s uint16) uint16 {
	if s == 0xffff {
		return 0
	}
	return s
}

// newBuf returns a packet buffer from a small pool holding an Ethernet
// header followed by l3, with the default headroom.
func newBuf(t testing.TB, l3 []byte, etherType uint16) *pktbuf.Buf {
	t.Helper()
	b := pktbuf.NewPool(2, pktbuf.DefaultFrameSize).Get()
	frame := make([]byte, header.EthernetMinSize, header.EthernetMinSize+len(l3))
	eth := header.Ethernet(frame)
	eth.SetDst(header.MAC{0x02, 0, 0, 0, 0, 1})
	eth.SetSrc(header.MAC{0x02, 0, 0, 0, 0, 2})
	eth.SetType(etherType)
	frame = append(frame, l3...)
	if !b.CopyFrom(frame) {
		t.Fatal("frame does not fit the buffer")
	}
	b.L3 = header.EthernetMinSize
	return b
}

func etherTypeOf(l3 []byte) uint16 {
	if l3[0]>>4 == 6 {
		return header.EtherTypeIPv6
	}
	return header.EtherTypeIPv4
}

func seqPayload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// Common TCP options of a Linux SYN and of a segment with timestamps.
var (
	synOpts = []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}, // 1460
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 1, 0, 0, 0, 0, 0}},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
	}
	tsOpts = []layers.TCPOption{
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 2, 0, 0, 0, 1, 0}},
	}
)

// withExt6 inserts an 8-byte IPv6 extension header of type nh with the
// given six bytes after its two (next header, length) behind the fixed
// header of the IPv6 packet l3. The transport checksum stays valid: the
// pseudo-header has no extension headers.
func withExt6(l3 []byte, nh uint8, body [6]byte) []byte {
	out := append([]byte(nil), l3[:header.IPv6MinSize]...)
	next := out[6]
	out[6] = nh
	header.IPv6(out).SetPayloadLen(header.IPv6(l3).PayloadLen() + 8)
	out = append(out, next, 0)
	out = append(out, body[:]...)
	return append(out, l3[header.IPv6MinSize:]...)
}

// IPv6 extension header types withExt6 inserts.
const (
	ext6DestOpts = 60
	ext6Routing  = 43
	ext6Fragment = 44
)

// Bodies for withExt6: PadN options; a routing header (type 4) with one or
// no segment left; a fragment header (offset, more fragments, ID 0x01020304).
var (
	ext6Pad       = [6]byte{1, 4}
	ext6RouteLeft = [6]byte{4, 1}
	ext6RouteDone = [6]byte{4, 0}
	ext6FirstFrag = [6]byte{0, 1, 1, 2, 3, 4}
	ext6LaterFrag = [6]byte{0, 0x10, 1, 2, 3, 4} // offset 2 (16 bytes), last
)
