package nat

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
)

func TestRewriteFixtures(t *testing.T) {
	routerAlert := []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
	tests := []struct {
		desc string
		in   pkt
		to   Endpoints
	}{
		{"IPv4 TCP in: client SYN to the server",
			pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagSYN, seq: 1000, opts: synOpts},
			conn4.toServer()},
		{"IPv4 TCP in: data with timestamps",
			pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK | header.TCPFlagPSH, seq: 1001, ack: 5001, opts: tsOpts, payload: seqPayload(517)},
			conn4.toServer()},
		{"IPv4 TCP out: server data to the client",
			pkt{ep: conn4.serverSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 5001, ack: 1518, payload: seqPayload(1448)},
			conn4.toClient()},
		{"IPv4 TCP out: FIN with odd payload length",
			pkt{ep: conn4.serverSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK | header.TCPFlagFIN, seq: 9, ack: 10, payload: seqPayload(3)},
			conn4.toClient()},
		{"IPv4 TCP in with IP options",
			pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 1, ack: 2, ipOpts: routerAlert, payload: seqPayload(10)},
			conn4.toServer()},
		{"IPv4 TCP in: first fragment (MF, offset 0)",
			pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 1, ack: 2, flagsFrag: 0x2000, payload: seqPayload(64)},
			conn4.toServer()},
		{"IPv4 UDP in with checksum",
			pkt{ep: conn4.clientSent(), proto: header.ProtoUDP, payload: seqPayload(100)},
			conn4.toServer()},
		{"IPv4 UDP out with checksum",
			pkt{ep: conn4.serverSent(), proto: header.ProtoUDP, payload: seqPayload(33)},
			conn4.toClient()},
		{"IPv4 UDP in without checksum stays without",
			pkt{ep: conn4.clientSent(), proto: header.ProtoUDP, payload: seqPayload(100), noUDPCk: true},
			conn4.toServer()},
		{"IPv4 UDP out without checksum stays without",
			pkt{ep: conn4.serverSent(), proto: header.ProtoUDP, payload: seqPayload(7), noUDPCk: true},
			conn4.toClient()},
		{"IPv4 UDP empty payload",
			pkt{ep: conn4.clientSent(), proto: header.ProtoUDP},
			conn4.toServer()},
		{"IPv6 TCP in: client SYN",
			pkt{ep: conn6.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagSYN, seq: 77, opts: synOpts},
			conn6.toServer()},
		{"IPv6 TCP out: server data",
			pkt{ep: conn6.serverSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 5, ack: 78, opts: tsOpts, payload: seqPayload(1208)},
			conn6.toClient()},
		{"IPv6 UDP in",
			pkt{ep: conn6.clientSent(), proto: header.ProtoUDP, payload: seqPayload(512)},
			conn6.toServer()},
		{"IPv6 UDP out",
			pkt{ep: conn6.serverSent(), proto: header.ProtoUDP, payload: seqPayload(1)},
			conn6.toClient()},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			l3 := tc.in.build(t)
			if err := Rewrite(l3, &tc.to); err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			// Everything else is as sent: the same packet built from
			// scratch with the new tuple has the same bytes.
			if want := tc.in.withEP(tc.to).build(t); !bytes.Equal(l3, want) {
				t.Errorf("rewritten packet differs from one built with the new tuple:\n got  %x\n want %x", l3, want)
			}
			if tc.in.flagsFrag != 0 {
				return // gopacket does not decode the transport header of fragments
			}
			p := verifyChecksums(t, l3)
			if got := tuple(t, p); got != tc.to {
				t.Errorf("tuple = %+v, want %+v", got, tc.to)
			}
			if tc.in.noUDPCk {
				if ck := be16(l3[header.IPv4MinSize+udpCksumOff:]); ck != 0 {
					t.Errorf("UDP checksum = %#x, want 0 (none)", ck)
				}
			}
			if ip, ok := p.NetworkLayer().(*layers.IPv4); ok && ip.TTL != 64 {
				t.Errorf("TTL = %d, want untouched 64", ip.TTL)
			}
		})
	}
}

func TestRewriteRefuses(t *testing.T) {
	tcp4 := pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, payload: seqPayload(40)}
	truncTCP := tcp4.build(t)
	// IP total length covering 10 bytes of the TCP header only.
	truncTCP = truncTCP[:30]
	truncTCP[2], truncTCP[3] = 0, 30
	header.IPv4(truncTCP).SetChecksum(0)
	header.IPv4(truncTCP).SetChecksum(^header.Checksum(truncTCP[:20], 0))

	udp6 := pkt{ep: conn6.clientSent(), proto: header.ProtoUDP, payload: seqPayload(4)}.build(t)
	truncUDP6 := append([]byte(nil), udp6[:46]...)
	header.IPv6(truncUDP6).SetPayloadLen(6)

	tests := []struct {
		desc string
		l3   []byte
		to   Endpoints
		want error
	}{
		{"ICMP echo", pkt{ep: conn4.clientSent(), proto: header.ProtoICMP}.build(t), conn4.toServer(), ErrUnsupportedProto},
		{"ICMPv6 echo", pkt{ep: conn6.clientSent(), proto: header.ProtoICMPv6}.build(t), conn6.toServer(), ErrUnsupportedProto},
		{"IPv4 fragment with offset", pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flagsFrag: 185, payload: seqPayload(8)}.build(t), conn4.toServer(), ErrFragment},
		{"IPv6 routing header with a segment left", withExt6(pkt{ep: conn6.clientSent(), proto: header.ProtoTCP}.build(t), ext6Routing, ext6RouteLeft), conn6.toServer(), ErrExtHeader},
		{"IPv6 fragment with offset", withExt6(pkt{ep: conn6.clientSent(), proto: header.ProtoTCP}.build(t), ext6Fragment, ext6LaterFrag), conn6.toServer(), ErrFragment},
		{"truncated TCP header", truncTCP, conn4.toServer(), ErrTruncated},
		{"truncated UDP header", truncUDP6, conn6.toServer(), ErrTruncated},
		{"IPv6 endpoints for an IPv4 packet", tcp4.build(t), conn6.toServer(), ErrFamily},
		{"IPv4 endpoints for an IPv6 packet", udp6, conn4.toServer(), ErrFamily},
		{"one invalid address", tcp4.build(t), Endpoints{Src: conn4.l, SrcPort: 1, DstPort: 2}, ErrFamily},
		{"not IP", []byte{0x25, 1, 2, 3}, conn4.toServer(), ErrMalformed},
		{"empty", nil, conn4.toServer(), ErrMalformed},
		{"IPv4 header shorter than IHL", tcp4.build(t)[:19], conn4.toServer(), ErrMalformed},
		{"IPv4 total length beyond the bytes", tcp4.build(t)[:50], conn4.toServer(), ErrMalformed},
		{"IPv6 payload length beyond the bytes", udp6[:45], conn6.toServer(), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			before := append([]byte(nil), tc.l3...)
			err := Rewrite(tc.l3, &tc.to)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Rewrite = %v, want %v", err, tc.want)
			}
			if !bytes.Equal(before, tc.l3) {
				t.Errorf("refused packet was modified")
			}
		})
	}
}

// TestRewriteRandom rewrites random packets to random tuples and checks every
// checksum against a plain computation from scratch (header.Checksum,
// header.TransportChecksum) as well as against gopacket.
func TestRewriteRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	randAddr := func(v6 bool) netip.Addr {
		if v6 {
			var a [16]byte
			for i := range a {
				a[i] = byte(r.Uint32())
			}
			return netip.AddrFrom16(a)
		}
		var a [4]byte
		for i := range a {
			a[i] = byte(r.Uint32())
		}
		return netip.AddrFrom4(a)
	}
	randEP := func(v6 bool) Endpoints {
		return Endpoints{randAddr(v6), randAddr(v6), uint16(r.Uint32()), uint16(r.Uint32())}
	}
	for i := 0; i < 2000; i++ {
		v6 := r.IntN(2) == 1
		p := pkt{ep: randEP(v6), proto: header.ProtoTCP, seq: r.Uint32(), ack: r.Uint32(),
			flags: uint8(r.Uint32()) & 0x1f, payload: seqPayload(r.IntN(1400))}
		if r.IntN(2) == 0 {
			p.proto = header.ProtoUDP
			p.noUDPCk = !v6 && r.IntN(4) == 0
		} else if r.IntN(2) == 0 {
			p.opts = tsOpts
		}
		for j := range p.payload {
			p.payload[j] = byte(r.Uint32())
		}
		l3 := p.build(t)
		to := randEP(v6)
		if err := Rewrite(l3, &to); err != nil {
			t.Fatalf("case %d: Rewrite: %v", i, err)
		}
		l4 := header.IPv4MinSize
		var src, dst []byte
		if v6 {
			l4 = header.IPv6MinSize
			src, dst = header.IPv6(l3).SrcBytes(), header.IPv6(l3).DstBytes()
		} else {
			if header.IPv4(l3).Validate() != header.Valid {
				t.Fatalf("case %d: IPv4 header checksum invalid after rewrite", i)
			}
			src, dst = header.IPv4(l3).SrcBytes(), header.IPv4(l3).DstBytes()
		}
		ckOff := tcpCksumOff
		if p.proto == header.ProtoUDP {
			ckOff = udpCksumOff
		}
		got := be16(l3[l4+ckOff:])
		want := header.TransportChecksum(p.proto, src, dst, l3[l4:], ckOff)
		switch {
		case p.noUDPCk:
			want = 0
		case p.proto == header.ProtoUDP:
			want = udpChecksum(want)
		}
		if got != want {
			t.Fatalf("case %d (%+v → %+v): checksum %#04x, from scratch %#04x", i, p.ep, to, got, want)
		}
		if i%10 == 0 {
			verifyChecksums(t, l3)
		}
	}
}

// TestRewriteUDPChecksumComputesToZero: a UDP checksum that computes to zero
// is sent as 0xffff, since zero would mean "no checksum".
func TestRewriteUDPChecksumComputesToZero(t *testing.T) {
	for _, k := range []fnatConn{conn4, conn6} {
		to := k.toServer()
		payload := make([]byte, 8)
		ref := pkt{ep: to, proto: header.ProtoUDP, payload: payload}.build(t)
		l4, src, dst := header.IPv4MinSize, ref[12:16], ref[16:20]
		if k == conn6 {
			l4, src, dst = header.IPv6MinSize, ref[8:24], ref[24:40]
		}
		sum := ^header.TransportChecksum(header.ProtoUDP, src, dst, ref[l4:], udpCksumOff)
		put16(payload, ^sum) // the data now sum to 0xffff
		in := pkt{ep: k.clientSent(), proto: header.ProtoUDP, payload: payload}.build(t)
		if err := Rewrite(in, &to); err != nil {
			t.Fatal(err)
		}
		if ck := be16(in[l4+udpCksumOff:]); ck != 0xffff {
			t.Errorf("%v: UDP checksum %#04x, want 0xffff", k.c, ck)
		}
		verifyChecksums(t, in)
	}
}

func TestEndpointsReverse(t *testing.T) {
	if got := conn4.toServer().Reverse(); got != conn4.serverSent() {
		t.Errorf("Reverse = %+v, want %+v", got, conn4.serverSent())
	}
	if got := conn6.toClient().Reverse(); got != conn6.clientSent() {
		t.Errorf("Reverse = %+v, want %+v", got, conn6.clientSent())
	}
}

// TestRewriteAtMatchesRewrite: given the location the L3 stage found,
// RewriteAt writes exactly the bytes Rewrite does, and refuses what
// Rewrite refuses.
func TestRewriteAtMatchesRewrite(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	locate := func(l3 []byte) header.Transport {
		if l3[0]>>4 == 4 {
			return header.LocateIPv4(header.IPv4(l3))
		}
		return header.LocateIPv6(header.IPv6(l3))
	}
	for i := 0; i < 500; i++ {
		v6 := r.IntN(2) == 1
		c := conn4
		if v6 {
			c = conn6
		}
		p := pkt{ep: c.clientSent(), proto: header.ProtoTCP, seq: r.Uint32(), payload: seqPayload(r.IntN(600))}
		if r.IntN(2) == 0 {
			p.proto = header.ProtoUDP
		}
		a := p.build(t)
		b := append([]byte(nil), a...)
		to := c.toServer()
		if err := Rewrite(a, &to); err != nil {
			t.Fatal(err)
		}
		if err := RewriteAt(b, locate(b), &to); err != nil {
			t.Fatal(err)
		}
		if string(a) != string(b) {
			t.Fatalf("case %d: RewriteAt wrote\n% x\nRewrite wrote\n% x", i, b, a)
		}
	}
	for _, c := range []struct {
		name string
		l3   []byte
		want error
	}{
		{"IPv4 fragment with offset", pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flagsFrag: 185, payload: seqPayload(8)}.build(t), ErrFragment},
		{"IPv6 routing header with a segment left", withExt6(pkt{ep: conn6.clientSent(), proto: header.ProtoTCP}.build(t), ext6Routing, ext6RouteLeft), ErrExtHeader},
		{"IPv6 fragment with offset", withExt6(pkt{ep: conn6.clientSent(), proto: header.ProtoTCP}.build(t), ext6Fragment, ext6LaterFrag), ErrFragment},
	} {
		to := conn4.toServer()
		if c.l3[0]>>4 == 6 {
			to = conn6.toServer()
		}
		before := string(c.l3)
		if err := RewriteAt(c.l3, locate(c.l3), &to); err != c.want || string(c.l3) != before {
			t.Errorf("%s: %v, want %v and the packet unchanged", c.name, err, c.want)
		}
	}
}

// TestRewriteIPv6ExtHeaders: behind hop-by-hop, destination options, a
// spent routing header or a first fragment header, Rewrite and RewriteAt
// write exactly the packet gopacket builds with the translated endpoints
// (the same extension headers, a valid checksum).
func TestRewriteIPv6ExtHeaders(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		for _, x := range []struct {
			name string
			ext  func(l3 []byte) []byte
		}{
			{"hop-by-hop", func(l3 []byte) []byte { return l3 }},
			{"hop-by-hop + destination options", func(l3 []byte) []byte { return withExt6(l3, ext6DestOpts, ext6Pad) }},
			{"routing, no segment left", func(l3 []byte) []byte { return withExt6(l3, ext6Routing, ext6RouteDone) }},
			{"first fragment", func(l3 []byte) []byte { return withExt6(l3, ext6Fragment, ext6FirstFrag) }},
		} {
			p := pkt{ep: conn6.clientSent(), proto: proto, flags: header.TCPFlagACK, seq: 7, payload: seqPayload(33), hopByHop: x.name != "first fragment" && x.name != "routing, no segment left"}
			in := x.ext(p.build(t))
			want := x.ext(p.withEP(conn6.toServer()).build(t))
			to := conn6.toServer()
			a := append([]byte(nil), in...)
			if err := Rewrite(a, &to); err != nil || !bytes.Equal(a, want) {
				t.Errorf("%d %s: Rewrite = %v\n got  % x\n want % x", proto, x.name, err, a, want)
			}
			b := append([]byte(nil), in...)
			if err := RewriteAt(b, header.LocateIPv6(header.IPv6(b)), &to); err != nil || !bytes.Equal(b, want) {
				t.Errorf("%d %s: RewriteAt = %v", proto, x.name, err)
			}
		}
	}
}
