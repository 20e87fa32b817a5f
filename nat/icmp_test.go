package nat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
)

// icmpCase is an ICMP error about a FullNAT connection's packet and the
// translation GVS must make of it.
type icmpCase struct {
	desc       string
	k          fnatConn
	fromServer bool // about L→D (server side); otherwise about V→C (client side)
	quoted     pkt  // the quoted packet, without its tuple
	typ, code  uint8
	mtu        uint32
	quoteLen   int // bytes of the quoted packet in the error; 0 = all
}

// setup returns the error as it arrives and as it must leave, and the
// arguments of TranslateICMPError.
func (c icmpCase) setup(t testing.TB) (in, want []byte, outerSrc, outerDst netip.Addr, inner Endpoints) {
	t.Helper()
	var before Endpoints
	var outerIn netip.Addr
	if c.fromServer {
		// The server side saw L:lport→D:dport and answers L; the client
		// sent C:cport→V:vport and must get it from V.
		before, outerIn = c.k.toServer(), c.k.l
		outerSrc, outerDst, inner = c.k.v, c.k.c, c.k.clientSent()
	} else {
		// The client side saw V:vport→C:cport and answers V; the server
		// sent D:dport→L:lport and must get it from L.
		before, outerIn = c.k.toClient(), c.k.v
		outerSrc, outerDst, inner = c.k.l, c.k.d, c.k.serverSent()
	}
	e := icmpErr{src: c.k.router, dst: outerIn, typ: c.typ, code: c.code, mtu: c.mtu,
		quoted: c.quoted.withEP(before).build(t), quoteLen: c.quoteLen}
	in = e.build(t)
	e.src, e.dst, e.quoted = outerSrc, outerDst, c.quoted.withEP(inner).build(t)
	want = e.build(t)
	return in, want, outerSrc, outerDst, inner
}

func icmpCases() []icmpCase {
	tcpData := pkt{proto: header.ProtoTCP, flags: header.TCPFlagACK | header.TCPFlagPSH, seq: 0x01020304, ack: 0x0a0b0c0d, opts: tsOpts, payload: seqPayload(1200)}
	tcpSyn := pkt{proto: header.ProtoTCP, flags: header.TCPFlagSYN, seq: 99, opts: synOpts}
	udp := pkt{proto: header.ProtoUDP, payload: seqPayload(300)}
	udpNoCk := pkt{proto: header.ProtoUDP, payload: seqPayload(30), noUDPCk: true}
	var cs []icmpCase
	for _, fam := range []struct {
		name                   string
		k                      fnatConn
		ipLen                  int
		tooBig, tooBigCode     uint8
		unreach, portUnreach   uint8
		timeExceeded, paramPrb uint8
	}{
		{"ICMPv4", conn4, 20, header.ICMPv4DstUnreachable, icmpv4FragNeeded, header.ICMPv4DstUnreachable, 3, header.ICMPv4TimeExceeded, icmpv4ParamProblem},
		{"ICMPv6", conn6, 40, header.ICMPv6PacketTooBig, 0, header.ICMPv6DstUnreachable, 4, header.ICMPv6TimeExceeded, icmpv6ParamProblem},
	} {
		quoteTCP := fam.ipLen + 20 + 12 + 64 // headers, timestamps, some data
		if fam.ipLen == 20 {
			quoteTCP = 20 + 8 // what RFC 792 promises
		}
		for _, dir := range []struct {
			name       string
			fromServer bool
		}{{"from the server side", true}, {"from the client side", false}} {
			add := func(desc string, q pkt, typ, code uint8, mtu uint32, n int) {
				cs = append(cs, icmpCase{fam.name + " " + desc + " " + dir.name, fam.k, dir.fromServer, q, typ, code, mtu, n})
			}
			add("too big, TCP, minimal quote", tcpData, fam.tooBig, fam.tooBigCode, 1400, quoteTCP)
			add("too big, TCP quoted to the TCP checksum", tcpData, fam.tooBig, fam.tooBigCode, 1400, fam.ipLen+18)
			add("too big, TCP quoted without the TCP checksum", tcpData, fam.tooBig, fam.tooBigCode, 1280, fam.ipLen+16)
			add("too big, TCP, 8 bytes quoted", tcpData, fam.tooBig, fam.tooBigCode, 1280, fam.ipLen+8)
			add("too big, whole SYN quoted", tcpSyn, fam.tooBig, fam.tooBigCode, 1300, 0)
			add("time exceeded, whole SYN quoted", tcpSyn, fam.timeExceeded, 0, 0, 0)
			add("port unreachable, UDP, 8 bytes quoted", udp, fam.unreach, fam.portUnreach, 0, fam.ipLen+8)
			add("port unreachable, UDP, whole datagram quoted", udp, fam.unreach, fam.portUnreach, 0, 0)
			add("parameter problem, UDP without checksum", udpNoCk, fam.paramPrb, 0, 0, 0)
		}
	}
	return cs
}

func TestTranslateICMPError(t *testing.T) {
	for _, c := range icmpCases() {
		if c.quoted.noUDPCk && c.k == conn6 {
			continue // IPv6 UDP always has a checksum
		}
		t.Run(c.desc, func(t *testing.T) {
			in, want, os, od, inner := c.setup(t)
			e, err := ParseICMPError(in)
			if err != nil {
				t.Fatalf("ParseICMPError: %v", err)
			}
			if e.Type != c.typ || e.Code != c.code || e.MTU != c.mtu || e.InnerProto != c.quoted.proto {
				t.Errorf("parsed type/code/MTU/proto %d/%d/%d/%d, want %d/%d/%d/%d",
					e.Type, e.Code, e.MTU, e.InnerProto, c.typ, c.code, c.mtu, c.quoted.proto)
			}
			if err := TranslateICMPError(in, os, od, &inner); err != nil {
				t.Fatalf("TranslateICMPError: %v", err)
			}
			got := in

			// Outer packet and ICMP checksum from scratch.
			p := verifyChecksums(t, got)
			var quote []byte
			var mtu uint32
			switch ic := p.Layers()[1].(type) {
			case *layers.ICMPv4:
				if ic.TypeCode.Type() != c.typ || ic.TypeCode.Code() != c.code {
					t.Errorf("ICMP type/code %v", ic.TypeCode)
				}
				if c.typ == header.ICMPv4DstUnreachable && c.code == icmpv4FragNeeded {
					mtu = uint32(ic.Seq)
				}
				quote = ic.Payload
			case *layers.ICMPv6:
				if ic.TypeCode.Type() != c.typ || ic.TypeCode.Code() != c.code {
					t.Errorf("ICMPv6 type/code %v", ic.TypeCode)
				}
				if c.typ == header.ICMPv6PacketTooBig {
					mtu = be32(ic.Payload)
				}
				quote = ic.Payload[4:]
			default:
				t.Fatalf("no ICMP layer: %v", p)
			}
			outer := p.NetworkLayer().NetworkFlow()
			if outer.Src().String() != os.String() || outer.Dst().String() != od.String() {
				t.Errorf("outer %v, want %v→%v", outer, os, od)
			}
			if mtu != c.mtu {
				t.Errorf("MTU %d, want %d unchanged", mtu, c.mtu)
			}

			// The quoted packet, field by field.
			q, err := ParseICMPError(got)
			if err != nil {
				t.Fatalf("ParseICMPError after translation: %v", err)
			}
			if q.Inner != inner || q.Outer.Src != os || q.Outer.Dst != od {
				t.Errorf("translated: outer %v→%v inner %+v; want %v→%v %+v", q.Outer.Src, q.Outer.Dst, q.Inner, os, od, inner)
			}
			if c.k == conn4 {
				ihl := int(quote[0]&15) * 4
				if header.Checksum(quote[:ihl], 0) != 0xffff {
					t.Errorf("quoted IPv4 header checksum invalid: %x", quote[:ihl])
				}
			}
			if c.quoteLen == 0 {
				// The whole packet is quoted: all its checksums verify.
				qp := verifyChecksums(t, quote)
				if got := tuple(t, qp); got != inner {
					t.Errorf("quoted tuple %+v, want %+v", got, inner)
				}
			}
			// And byte for byte: the error the receiver would get if the
			// router had seen its packet.
			if !bytes.Equal(got, want) {
				t.Errorf("translated error:\n got  %x\n want %x", got, want)
			}
		})
	}
}

func TestParseICMPError(t *testing.T) {
	k := conn4
	data := pkt{ep: k.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 1, ack: 2, payload: seqPayload(100)}.build(t)
	e, err := ParseICMPError(icmpErr{src: k.router, dst: k.l, typ: 3, code: 4, mtu: 1400, quoted: data, quoteLen: 28}.build(t))
	if err != nil {
		t.Fatal(err)
	}
	want := ICMPError{Outer: Endpoints{Src: k.router, Dst: k.l}, Type: 3, Code: 4, MTU: 1400,
		Inner: k.toServer(), InnerProto: header.ProtoTCP, InnerL4Len: 8}
	if e != want {
		t.Errorf("ParseICMPError = %+v\nwant %+v", e, want)
	}

	k6 := conn6
	data6 := pkt{ep: k6.toClient(), proto: header.ProtoUDP, payload: seqPayload(20)}.build(t)
	e, err = ParseICMPError(icmpErr{src: k6.router, dst: k6.v, typ: 2, mtu: 1280, quoted: data6}.build(t))
	if err != nil {
		t.Fatal(err)
	}
	want = ICMPError{Outer: Endpoints{Src: k6.router, Dst: k6.v}, Type: 2, MTU: 1280,
		Inner: k6.toClient(), InnerProto: header.ProtoUDP, InnerL4Len: 28}
	if e != want {
		t.Errorf("ParseICMPError = %+v\nwant %+v", e, want)
	}
}

func TestParseICMPErrorRefuses(t *testing.T) {
	k := conn4
	tcp4 := pkt{ep: k.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK, payload: seqPayload(40)}.build(t)
	tcp6 := pkt{ep: conn6.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK}.build(t)
	echo4 := pkt{ep: k.toServer(), proto: header.ProtoICMP}.build(t)
	rt6 := withExt6(pkt{ep: conn6.toServer(), proto: header.ProtoTCP}.build(t), ext6Routing, ext6RouteLeft)
	frag4 := pkt{ep: k.toServer(), proto: header.ProtoTCP, flagsFrag: 100, payload: seqPayload(16)}.build(t)
	e4 := func(typ, code uint8, q []byte, n int) []byte {
		return icmpErr{src: k.router, dst: k.l, typ: typ, code: code, quoted: q, quoteLen: n}.build(t)
	}
	e6 := func(typ uint8, q []byte, n int) []byte {
		return icmpErr{src: conn6.router, dst: conn6.l, typ: typ, quoted: q, quoteLen: n}.build(t)
	}
	outerFrag := icmpErr{src: k.router, dst: k.l, typ: 3, code: 4, quoted: tcp4, fragFlags: 0x2000}.build(t)
	tests := []struct {
		desc string
		l3   []byte
		want error
	}{
		{"TCP packet", tcp4, ErrNotICMPError},
		{"ICMP echo request", echo4, ErrNotICMPError},
		{"ICMPv4 redirect", e4(5, 1, tcp4, 28), ErrNotICMPError},
		{"ICMPv6 echo", pkt{ep: conn6.toServer(), proto: header.ProtoICMPv6}.build(t), ErrNotICMPError},
		{"ICMPv6 neighbour solicitation", e6(135, tcp6, 48), ErrNotICMPError},
		{"quote with 4 bytes of TCP", e4(3, 4, tcp4, 24), ErrTruncated},
		{"quote shorter than the IPv4 header", e4(3, 4, tcp4, 16), ErrTruncated},
		{"quote shorter than the IPv6 header", e6(1, tcp6, 30), ErrTruncated},
		{"quote of an ICMP echo", e4(3, 1, echo4, 28), ErrUnsupportedProto},
		{"quote with an IPv6 routing header with a segment left", e6(1, rt6, 56), ErrExtHeader},
		{"quote of a non-first fragment", e4(11, 1, frag4, 28), ErrFragment},
		{"fragmented ICMP error", outerFrag, ErrFragment},
		{"ICMPv4 quoting IPv6", e4(3, 4, tcp6, 48), ErrMalformed},
		{"ICMPv6 quoting IPv4", e6(1, tcp4, 28), ErrMalformed},
		{"ICMP header cut", e4(3, 4, nil, 0)[:24], ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if _, err := ParseICMPError(tc.l3); !errors.Is(err, tc.want) {
				t.Fatalf("ParseICMPError = %v, want %v", err, tc.want)
			}
			before := append([]byte(nil), tc.l3...)
			in := Endpoints{Src: k.c, Dst: k.v}
			if err := TranslateICMPError(tc.l3, k.v, k.c, &in); !errors.Is(err, tc.want) {
				t.Fatalf("TranslateICMPError = %v, want %v", err, tc.want)
			}
			if !bytes.Equal(before, tc.l3) {
				t.Errorf("refused packet modified")
			}
		})
	}
	t.Run("ICMP header shorter than 8 bytes", func(t *testing.T) {
		l3 := e4(3, 4, nil, 0)[:24]
		put16(l3[2:], 24)
		header.IPv4(l3).SetChecksum(0)
		header.IPv4(l3).SetChecksum(^header.Checksum(l3[:20], 0))
		if _, err := ParseICMPError(l3); !errors.Is(err, ErrTruncated) {
			t.Fatalf("ParseICMPError = %v, want ErrTruncated", err)
		}
	})
	t.Run("wrong family", func(t *testing.T) {
		l3 := e4(3, 4, tcp4, 0)
		before := append([]byte(nil), l3...)
		for _, args := range []struct {
			os, od netip.Addr
			in     Endpoints
		}{
			{conn6.v, k.c, k.clientSent()},
			{k.v, conn6.c, k.clientSent()},
			{k.v, k.c, conn6.clientSent()},
			{k.v, k.c, Endpoints{Src: k.c}},
		} {
			if err := TranslateICMPError(l3, args.os, args.od, &args.in); !errors.Is(err, ErrFamily) {
				t.Errorf("TranslateICMPError(%v, %v, %+v) = %v, want ErrFamily", args.os, args.od, args.in, err)
			}
		}
		if !bytes.Equal(before, l3) {
			t.Errorf("refused packet modified")
		}
	})
}

func TestAdjustICMPMTU(t *testing.T) {
	tcp4 := pkt{ep: conn4.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK}.build(t)
	tcp6 := pkt{ep: conn6.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK}.build(t)
	v4 := func(typ, code uint8, mtu uint32) []byte {
		return icmpErr{src: conn4.router, dst: conn4.l, typ: typ, code: code, mtu: mtu, quoted: tcp4}.build(t)
	}
	v6 := func(typ uint8, mtu uint32) []byte {
		return icmpErr{src: conn6.router, dst: conn6.l, typ: typ, mtu: mtu, quoted: tcp6}.build(t)
	}
	tests := []struct {
		desc    string
		l3      []byte
		delta   int
		wantMTU uint32
		wantErr error
	}{
		{"frag needed 1400, IPv4 TOA", v4(3, 4, 1400), -TOALenIPv4, 1392, nil},
		{"frag needed 1500, IPv6 TOA in IPv4", v4(3, 4, 1500), -TOALenIPv6, 1480, nil},
		{"frag needed near the minimum", v4(3, 4, 70), -8, 68, nil},
		{"frag needed below the minimum stays", v4(3, 4, 60), -8, 60, nil},
		{"frag needed without MTU (pre-RFC 1191)", v4(3, 4, 0), -8, 0, nil},
		{"frag needed raised, capped", v4(3, 4, 0xfff0), 100, 0xffff, nil},
		{"packet too big 1400, IPv6 TOA", v6(2, 1400), -TOALenIPv6, 1380, nil},
		{"packet too big stays at 1280", v6(2, 1290), -TOALenIPv6, 1280, nil},
		{"port unreachable", v4(3, 3, 0), -8, 0, ErrNotICMPError},
		{"time exceeded", v6(3, 0), -8, 0, ErrNotICMPError},
		{"not ICMP", tcp4, -8, 0, ErrNotICMPError},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			before := append([]byte(nil), tc.l3...)
			err := AdjustICMPMTU(tc.l3, tc.delta)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("AdjustICMPMTU = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if !bytes.Equal(before, tc.l3) {
					t.Errorf("refused packet modified")
				}
				return
			}
			verifyChecksums(t, tc.l3)
			e, err := ParseICMPError(tc.l3)
			if err != nil {
				t.Fatal(err)
			}
			if e.MTU != tc.wantMTU {
				t.Errorf("MTU = %d, want %d", e.MTU, tc.wantMTU)
			}
			// Only the MTU and the ICMP checksum changed.
			diff := 0
			for i := range before {
				if before[i] != tc.l3[i] {
					diff++
				}
			}
			if diff > 6 {
				t.Errorf("%d bytes changed", diff)
			}
		})
	}
}

// TestShiftICMPQuote: the quoted segment's sequence and acknowledgement
// numbers move, its TCP checksum and the ICMP checksum stay valid (both
// verified by re-serialising with gopacket); a quote of 8 transport bytes
// has only the sequence number moved.
func TestShiftICMPQuote(t *testing.T) {
	for _, c := range []struct {
		name   string
		conn   fnatConn
		router netip.Addr
		typ    uint8
		code   uint8
	}{{"ipv4", conn4, conn4.router, 3, 4}, {"ipv6", conn6, conn6.router, 2, 0}} {
		t.Run(c.name, func(t *testing.T) {
			seg := pkt{ep: c.conn.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 1000, ack: 0xfffffff0, payload: []byte("data")}.build(t)
			l3 := icmpErr{src: c.router, dst: c.conn.l, typ: c.typ, code: c.code, mtu: 1400, quoted: seg}.build(t)
			minus52 := uint32(52)
			if err := ShiftICMPQuote(l3, -minus52, 0x20); err != nil {
				t.Fatal(err)
			}
			verifyChecksums(t, l3)
			e, _ := ParseICMPError(l3)
			il, _ := locateICMPError(l3)
			q := l3[il.inner:il.end]
			verifyChecksums(t, q) // the quoted segment's own checksum
			tcp := decode(t, q).Layer(layers.LayerTypeTCP).(*layers.TCP)
			if tcp.Seq != 1000-52 || tcp.Ack != 0x10 || e.Inner != c.conn.toServer() {
				t.Errorf("quote seq %d ack %#x %v", tcp.Seq, tcp.Ack, e.Inner)
			}
			// only the first 8 transport bytes quoted
			hl := 20
			if c.name == "ipv6" {
				hl = 40
			}
			short := icmpErr{src: c.router, dst: c.conn.l, typ: c.typ, code: c.code, mtu: 1400, quoted: seg, quoteLen: hl + 8}.build(t)
			if err := ShiftICMPQuote(short, 5, 7); err != nil {
				t.Fatal(err)
			}
			verifyChecksums(t, short)
			il, _ = locateICMPError(short)
			if got := binary.BigEndian.Uint32(short[il.innerL4+4:]); got != 1005 {
				t.Errorf("short quote seq %d, want 1005", got)
			}
		})
	}
	udp := pkt{ep: conn4.toServer(), proto: header.ProtoUDP}.build(t)
	if err := ShiftICMPQuote(icmpErr{src: conn4.router, dst: conn4.l, typ: 3, code: 3, quoted: udp}.build(t), 1, 1); !errors.Is(err, ErrNotICMPError) {
		t.Errorf("UDP quote: %v", err)
	}
}
