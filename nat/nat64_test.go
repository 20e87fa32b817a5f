package nat

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
)

// conn64: an IPv6 client and virtual address, an IPv4 local address and
// real server.
var conn64 = fnatConn{
	c: netip.MustParseAddr("2001:db8:c::7"), v: netip.MustParseAddr("2001:db8:f::10"),
	l: netip.MustParseAddr("10.0.0.5"), d: netip.MustParseAddr("10.0.1.20"),
}

// to4 runs To4 on a copy of l3 and returns the IPv4 packet.
func to4(t *testing.T, l3 []byte, to Endpoints, id uint16) []byte {
	t.Helper()
	p := append([]byte(nil), l3...)
	tr, ok := header.Locate(p)
	if !ok {
		t.Fatal("test packet does not validate")
	}
	start, err := To4(p, tr, &to, id)
	if err != nil {
		t.Fatalf("To4: %v", err)
	}
	return p[start:tr.End]
}

// to6 runs To6 on a copy of l3 placed behind 40 bytes of room and returns
// the IPv6 packet.
func to6(t *testing.T, l3 []byte, to Endpoints) []byte {
	t.Helper()
	p := append(make([]byte, 40), l3...)
	tr, ok := header.Locate(p[40:])
	if !ok {
		t.Fatal("test packet does not validate")
	}
	start, err := To6(p, 40, tr, &to)
	if err != nil {
		t.Fatalf("To6: %v", err)
	}
	return p[start : 40+int(tr.End)]
}

func TestTo4(t *testing.T) {
	k := conn64
	for _, tc := range []struct {
		name string
		p    pkt
	}{
		{"tcp syn", pkt{proto: header.ProtoTCP, flags: header.TCPFlagSYN, seq: 1000, opts: synOpts}},
		{"tcp data", pkt{proto: header.ProtoTCP, flags: header.TCPFlagACK | header.TCPFlagPSH, seq: 1001, ack: 7, opts: tsOpts, payload: seqPayload(1000)}},
		{"udp", pkt{proto: header.ProtoUDP, payload: seqPayload(33)}},
		{"tcp with hop-by-hop", pkt{proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 5, payload: seqPayload(3), hopByHop: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.p.withEP(k.clientSent())
			in.ttl = 57
			l3 := in.build(t)
			out := to4(t, l3, k.toServer(), 0x4242)
			p := verifyChecksums(t, out)
			ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if ip.IHL != 5 || ip.TOS != 0x20 || ip.TTL != 57 || ip.Flags != layers.IPv4DontFragment || ip.FragOffset != 0 ||
				ip.Id != 0x4242 || ip.Protocol != layers.IPProtocol(in.proto) || int(ip.Length) != len(out) {
				t.Fatalf("IPv4 header: %+v", ip)
			}
			if got := tuple(t, p); got != k.toServer() {
				t.Fatalf("tuple %v, want %v", got, k.toServer())
			}
			inP := decode(t, l3)
			if !bytes.Equal(inP.TransportLayer().LayerPayload(), p.TransportLayer().LayerPayload()) {
				t.Fatal("payload changed")
			}
			if tcp, ok := p.TransportLayer().(*layers.TCP); ok {
				itcp := inP.TransportLayer().(*layers.TCP)
				if tcp.Seq != itcp.Seq || tcp.Ack != itcp.Ack || tcp.Window != itcp.Window || !bytes.Equal(tcp.Contents[12:14], itcp.Contents[12:14]) ||
					!bytes.Equal(tcp.Contents[20:], itcp.Contents[20:]) {
					t.Fatal("TCP header changed beyond ports and checksum")
				}
			}
		})
	}
}

func TestTo6(t *testing.T) {
	k := conn64
	for _, tc := range []struct {
		name string
		p    pkt
	}{
		{"tcp syn-ack", pkt{proto: header.ProtoTCP, flags: header.TCPFlagSYN | header.TCPFlagACK, seq: 9, ack: 1001, opts: synOpts}},
		{"tcp data", pkt{proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 10, ack: 1001, payload: seqPayload(1400)}},
		{"udp", pkt{proto: header.ProtoUDP, payload: seqPayload(33)}},
		{"udp without checksum", pkt{proto: header.ProtoUDP, payload: seqPayload(33), noUDPCk: true}},
		{"tcp with ip options", pkt{proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 10, payload: seqPayload(10),
			ipOpts: []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.p.withEP(k.serverSent())
			in.ttl = 63
			in.flagsFrag = 0x4000
			l3 := in.build(t)
			l3[1] = 0xb8 // TOS: DSCP EF
			header.IPv4(l3).SetChecksum(0)
			header.IPv4(l3).SetChecksum(^header.Checksum(l3[:header.IPv4(l3).HeaderLen()], 0))
			out := to6(t, l3, k.toClient())
			p := verifyChecksums(t, out)
			ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			if ip.TrafficClass != 0xb8 || ip.FlowLabel != 0 || ip.HopLimit != 63 || ip.NextHeader != layers.IPProtocol(in.proto) ||
				int(ip.Length) != len(out)-40 {
				t.Fatalf("IPv6 header: %+v", ip)
			}
			if got := tuple(t, p); got != k.toClient() {
				t.Fatalf("tuple %v, want %v", got, k.toClient())
			}
			if u, ok := p.TransportLayer().(*layers.UDP); ok && u.Checksum == 0 {
				t.Fatal("IPv6 UDP without a checksum")
			}
			if !bytes.Equal(decode(t, l3).TransportLayer().LayerPayload(), p.TransportLayer().LayerPayload()) {
				t.Fatal("payload changed")
			}
		})
	}
}

// TestNAT64RoundTrip: a packet translated to IPv4 and back with the
// original endpoints is the original, but for the flow label.
func TestNAT64RoundTrip(t *testing.T) {
	k := conn64
	in := pkt{ep: k.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 77, opts: tsOpts, payload: seqPayload(99)}.build(t)
	out := to6(t, to4(t, in, k.toServer(), 1), k.clientSent())
	want := append([]byte(nil), in...)
	want[1] &^= 0x0f
	want[2], want[3] = 0, 0
	if !bytes.Equal(out, want) {
		t.Fatalf("round trip:\n got  %x\n want %x", out, want)
	}
}

func TestNAT64Errors(t *testing.T) {
	k := conn64
	v6 := pkt{ep: k.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagSYN}.build(t)
	v4 := pkt{ep: k.serverSent(), proto: header.ProtoTCP, flags: header.TCPFlagSYN}.build(t)
	frag := pkt{ep: k.serverSent(), proto: header.ProtoUDP, payload: seqPayload(20), flagsFrag: 0x2000}.build(t)
	icmp6 := pkt{ep: k.clientSent(), proto: header.ProtoICMPv6}.build(t)
	check := func(name string, err, want error) {
		t.Helper()
		if err != want {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	tr, _ := header.Locate(v6)
	_, err := To4(append([]byte(nil), v6...), tr, &Endpoints{Src: k.v, Dst: k.d}, 0)
	check("To4 to IPv6 endpoints", err, ErrFamily)
	tr, _ = header.Locate(icmp6)
	_, err = To4(append([]byte(nil), icmp6...), tr, &Endpoints{Src: k.l, Dst: k.d}, 0)
	check("To4 ICMPv6", err, ErrUnsupportedProto)
	tr, _ = header.Locate(v4)
	_, err = To4(v4, tr, &Endpoints{Src: k.l, Dst: k.d}, 0)
	check("To4 of IPv4", err, ErrMalformed)
	p := append(make([]byte, 40), v4...)
	_, err = To6(p, 40, tr, &Endpoints{Src: k.l, Dst: k.d})
	check("To6 to IPv4 endpoints", err, ErrFamily)
	_, err = To6(v4, 0, tr, &Endpoints{Src: k.v, Dst: k.c})
	check("To6 without room", err, ErrHeadroom)
	tr, _ = header.Locate(frag)
	_, err = To6(append(make([]byte, 40), frag...), 40, tr, &Endpoints{Src: k.v, Dst: k.c})
	check("To6 of a fragment", err, ErrFragment)
	if !bytes.Equal(p[40:], v4) {
		t.Error("a refused packet was changed")
	}
}

func TestNAT64Allocs(t *testing.T) {
	k := conn64
	v6 := pkt{ep: k.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, payload: seqPayload(64)}.build(t)
	v4 := pkt{ep: k.serverSent(), proto: header.ProtoUDP, payload: seqPayload(64), noUDPCk: true}.build(t)
	p6 := make([]byte, len(v6))
	p4 := make([]byte, 40+len(v4))
	t6, _ := header.Locate(v6)
	t4, _ := header.Locate(v4)
	in, out := k.toServer(), k.toClient()
	if n := testing.AllocsPerRun(100, func() {
		copy(p6, v6)
		if _, err := To4(p6, t6, &in, 1); err != nil {
			t.Fatal(err)
		}
		copy(p4[40:], v4)
		if _, err := To6(p4, 40, t4, &out); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}

// FuzzNAT64 translates arbitrary packets both ways: never a panic, and a
// packet gopacket decodes before translation decodes after it, with its
// transport checksum's verdict unchanged.
func FuzzNAT64(f *testing.F) {
	for _, p := range []pkt{
		{ep: conn64.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagSYN, opts: synOpts},
		{ep: conn64.clientSent(), proto: header.ProtoUDP, payload: seqPayload(20)},
		{ep: conn64.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, hopByHop: true},
		{ep: conn64.serverSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: tsOpts, payload: seqPayload(33)},
		{ep: conn64.serverSent(), proto: header.ProtoUDP, payload: seqPayload(20), noUDPCk: true},
	} {
		f.Add(p.build(f), []byte{1, 2, 3}, uint16(1), uint16(2))
	}
	f.Add([]byte{0x60}, []byte{}, uint16(0), uint16(0))
	f.Fuzz(func(t *testing.T, data, seed []byte, sp, dp uint16) {
		l3, ok := validL3(data)
		if !ok {
			return
		}
		tr, ok := header.Locate(l3)
		if !ok {
			return
		}
		v6 := tr.V6()
		inDecodes := decodes(l3)
		var before uint16
		if tr.HasL4() && int(tr.Off) <= len(l3) {
			before = residual(l3, v6, tr.Proto, int(tr.Off), len(l3))
		}
		zeroUDP := tr.Proto == header.ProtoUDP && int(tr.Off)+8 <= len(l3) && be16(l3[tr.Off+6:]) == 0
		var out []byte
		if v6 {
			to := Endpoints{Src: fuzzAddr(false, seed, 0), Dst: fuzzAddr(false, seed, 1), SrcPort: sp, DstPort: dp}
			p := append([]byte(nil), l3...)
			start, err := To4(p, tr, &to, sp)
			if err != nil {
				return
			}
			out = p[start:tr.End]
		} else {
			to := Endpoints{Src: fuzzAddr(true, seed, 0), Dst: fuzzAddr(true, seed, 1), SrcPort: sp, DstPort: dp}
			if to.Src.Is4In6() || to.Dst.Is4In6() {
				return
			}
			p := append(make([]byte, 40), l3...)
			start, err := To6(p, 40, tr, &to)
			if err != nil {
				return
			}
			out = p[start : 40+int(tr.End)]
		}
		ot, ok := header.Locate(out)
		if !ok || ot.V6() == v6 || ot.Proto != tr.Proto || int(ot.End) != len(out) {
			t.Fatalf("translated packet does not validate: %x", out)
		}
		if inDecodes && !decodes(out) {
			t.Fatalf("gopacket decoded the input but not the output: %x", out)
		}
		if zeroUDP {
			return // no checksum before: one was computed (IPv6) or none kept (IPv4)
		}
		if after := residual(out, !v6, ot.Proto, int(ot.Off), len(out)); after != before {
			t.Fatalf("transport checksum residual %#x became %#x", before, after)
		}
	})
}

// decodes reports whether gopacket finds l3's IP and transport layers (the
// application layer, chosen by port, may differ after translation).
func decodes(l3 []byte) bool {
	first := layers.LayerTypeIPv4
	if l3[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(l3, first, gopacket.Default)
	return p.NetworkLayer() != nil && p.TransportLayer() != nil
}

// TestTranslateICMP64: ICMP errors about a NAT64 connection's packets,
// each way: type and code mapped, MTU converted, both IP headers of the
// new family, the quoted packet's tuple and (when whole) its checksum
// valid; messages without a translation refused.
func TestTranslateICMP64(t *testing.T) {
	k := conn64
	router4, router6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8:ffff::1")
	udp := pkt{proto: header.ProtoUDP, payload: seqPayload(100)}
	tcp := pkt{proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 5, ack: 6, opts: tsOpts, payload: seqPayload(200)}
	for _, c := range []struct {
		name       string
		fromServer bool // an ICMPv4 error about L→D; else an ICMPv6 error about V→C
		quoted     pkt
		quoteLen   int
		typ, code  uint8
		mtu        uint32
		delta      int
		wantType   uint8
		wantCode   uint8
		wantParam  uint32
	}{
		{"frag needed", true, udp, 0, 3, 4, 1400, 0, 2, 0, 1420},
		{"frag needed, TOA pending", true, tcp, 0, 3, 4, 1400, -20, 2, 0, 1400},
		{"frag needed, tiny MTU", true, tcp, 0, 3, 4, 576, 0, 2, 0, 1280},
		{"port unreachable, 8 bytes quoted", true, tcp, 28, 3, 3, 0, 0, 1, 4, 0},
		{"protocol unreachable", true, udp, 0, 3, 2, 0, 0, 4, 1, 6},
		{"admin prohibited", true, udp, 0, 3, 13, 0, 0, 1, 1, 0},
		{"time exceeded", true, tcp, 48, 11, 0, 0, 0, 3, 0, 0},
		{"parameter problem at the TTL", true, udp, 0, 12, 0, 8 << 24, 0, 4, 0, 7},
		{"packet too big", false, tcp, 0, 2, 0, 1300, 0, 3, 4, 1280},
		{"packet too big, huge", false, udp, 0, 2, 0, 100000, 0, 3, 4, 0xffff},
		{"port unreachable", false, udp, 0, 1, 4, 0, 0, 3, 3, 0},
		{"no route", false, tcp, 68, 1, 0, 0, 0, 3, 1, 0},
		{"time exceeded", false, udp, 0, 3, 1, 0, 0, 11, 1, 0},
		{"parameter problem at the hop limit", false, tcp, 0, 4, 0, 7, 0, 12, 0, 8 << 24},
		{"unrecognised next header", false, udp, 0, 4, 1, 6, 0, 3, 2, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var e icmpErr
			var inner Endpoints
			var outerSrc, outerDst netip.Addr
			if c.fromServer {
				e = icmpErr{src: router4, dst: k.l, quoted: c.quoted.withEP(k.toServer()).build(t)}
				outerSrc, outerDst, inner = k.v, k.c, k.clientSent()
			} else {
				e = icmpErr{src: router6, dst: k.v, quoted: c.quoted.withEP(k.toClient()).build(t)}
				outerSrc, outerDst, inner = k.l, k.d, k.serverSent()
			}
			e.typ, e.code, e.mtu, e.quoteLen = c.typ, c.code, c.mtu, c.quoteLen
			if c.typ == 3 && c.code == 4 {
				e.mtu = c.mtu // the ICMPv4 next-hop MTU is the message's low 16 bits (Seq)
			}
			in := e.build(t)
			if c.fromServer && c.typ == 12 { // the pointer: the first byte after the checksum
				in[24] = uint8(c.mtu >> 24)
				put16(in[22:], 0)
				put16(in[22:], ^header.Checksum(in[20:], 0))
			}
			var out [1500]byte
			n, err := TranslateICMP64(out[:], in, outerSrc, outerDst, &inner, c.delta)
			if err != nil {
				t.Fatal(err)
			}
			p := verifyChecksums(t, out[:n])
			var typ, code uint8
			var body []byte
			if c.fromServer {
				ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
				m := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
				if !ip.SrcIP.Equal(ip16(k.v)) || !ip.DstIP.Equal(ip16(k.c)) || ip.HopLimit != 255 {
					t.Fatalf("outer IPv6 header %+v", ip)
				}
				typ, code, body = m.TypeCode.Type(), m.TypeCode.Code(), m.Payload
			} else {
				ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
				m := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
				if !ip.SrcIP.Equal(ip4(k.l)) || !ip.DstIP.Equal(ip4(k.d)) || ip.TTL != 255 {
					t.Fatalf("outer IPv4 header %+v", ip)
				}
				typ, code = m.TypeCode.Type(), m.TypeCode.Code()
				body = append(binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, m.Id), m.Seq), m.Payload...)
			}
			if typ != c.wantType || code != c.wantCode || binary.BigEndian.Uint32(body) != c.wantParam {
				t.Fatalf("type %d code %d param %d, want %d %d %d", typ, code, binary.BigEndian.Uint32(body), c.wantType, c.wantCode, c.wantParam)
			}
			quote := body[4:]
			if c.quoteLen == 0 {
				qp := verifyChecksums(t, quote) // whole: its checksums hold for the new tuple
				if got := tuple(t, qp); got != inner {
					t.Fatalf("quoted tuple %v, want %v", got, inner)
				}
				return
			}
			var src, dst []byte
			if c.fromServer {
				src, dst = quote[8:24], quote[24:40]
				quote = quote[40:]
			} else {
				src, dst = quote[12:16], quote[16:20]
				quote = quote[20:]
			}
			got := Endpoints{Src: netip.AddrFrom16([16]byte(append(make([]byte, 16-len(src)), src...))), SrcPort: be16(quote), DstPort: be16(quote[2:])}
			got.Dst = netip.AddrFrom16([16]byte(append(make([]byte, 16-len(dst)), dst...)))
			if len(src) == 4 {
				got.Src, got.Dst = netip.AddrFrom4([4]byte(src)), netip.AddrFrom4([4]byte(dst))
			}
			if got != inner {
				t.Fatalf("quoted tuple %v, want %v", got, inner)
			}
		})
	}
	// no translation: ICMPv4 parameter problem "missing option", ICMPv6
	// parameter problem pointing at the flow label
	var out [1500]byte
	for _, e := range []icmpErr{
		{src: router4, dst: k.l, typ: 12, code: 1, quoted: udp.withEP(k.toServer()).build(t)},
		{src: router6, dst: k.v, typ: 4, code: 0, mtu: 2, quoted: udp.withEP(k.toClient()).build(t)},
		{src: router4, dst: k.l, typ: 3, code: 14, quoted: udp.withEP(k.toServer()).build(t)},
	} {
		in := e.build(t)
		src, dst, inner := k.v, k.c, k.clientSent()
		if e.src.Is6() {
			src, dst, inner = k.l, k.d, k.serverSent()
		}
		if _, err := TranslateICMP64(out[:], in, src, dst, &inner, 0); err != ErrNotICMPError {
			t.Errorf("type %d code %d: %v, want ErrNotICMPError", e.typ, e.code, err)
		}
	}
}

// FuzzTranslateICMP64 translates arbitrary ICMP errors to the other
// family: never a panic; what comes out validates, is of the other family
// and carries a valid ICMP checksum.
func FuzzTranslateICMP64(f *testing.F) {
	k := conn64
	udp := pkt{proto: header.ProtoUDP, payload: seqPayload(40)}
	f.Add(icmpErr{src: netip.MustParseAddr("192.0.2.1"), dst: k.l, typ: 3, code: 4, mtu: 1400, quoted: udp.withEP(k.toServer()).build(f)}.build(f), []byte{1}, int8(0))
	f.Add(icmpErr{src: netip.MustParseAddr("2001:db8::1"), dst: k.v, typ: 2, mtu: 1400, quoted: udp.withEP(k.toClient()).build(f)}.build(f), []byte{2}, int8(-20))
	f.Fuzz(func(t *testing.T, data, seed []byte, delta int8) {
		l3, ok := validL3(data)
		if !ok {
			return
		}
		if _, err := ParseICMPError(l3); err != nil {
			return
		}
		v6 := l3[0]>>4 == 6
		a := func(n int) netip.Addr { return fuzzAddr(!v6, seed, n) }
		inner := Endpoints{Src: a(2), Dst: a(3), SrcPort: 1, DstPort: 2}
		if !v6 && (a(0).Is4In6() || a(1).Is4In6() || inner.Src.Is4In6() || inner.Dst.Is4In6()) {
			return
		}
		var out [1500]byte
		n, err := TranslateICMP64(out[:], l3, a(0), a(1), &inner, int(delta))
		if err != nil {
			return
		}
		o := out[:n]
		tr, ok := header.Locate(o)
		if !ok || tr.V6() == v6 || int(tr.End) != n {
			t.Fatalf("translated error does not validate: %x", o)
		}
		if v6 {
			if !header.ICMPv4(o[tr.Off:]).ChecksumValid() {
				t.Fatalf("bad ICMPv4 checksum: %x", o)
			}
		} else if header.Checksum(o[tr.Off:], header.PseudoHeaderChecksum(header.ProtoICMPv6, o[8:24], o[24:40], uint16(n-40))) != 0xffff {
			t.Fatalf("bad ICMPv6 checksum: %x", o)
		}
	})
}
