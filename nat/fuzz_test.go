package nat

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/header"
)

// validL3 applies the L3 stage's validation: version, header length, total
// length (and the IPv4 header checksum), then trims to the IP length.
func validL3(b []byte) ([]byte, bool) {
	if len(b) == 0 {
		return nil, false
	}
	switch b[0] >> 4 {
	case 4:
		if header.IPv4(b).Validate() != header.Valid {
			return nil, false
		}
		return b[:header.IPv4(b).TotalLen()], true
	case 6:
		if header.IPv6(b).Validate() != header.Valid {
			return nil, false
		}
		return b[:header.IPv6MinSize+int(header.IPv6(b).PayloadLen())], true
	}
	return nil, false
}

// fuzzAddr makes an address of the requested family from fuzz bytes.
func fuzzAddr(v6 bool, seed []byte, n int) netip.Addr {
	var a [16]byte
	for i := range a {
		if len(seed) > 0 {
			a[i] = seed[(i+n*16)%len(seed)] + byte(n)
		}
	}
	if v6 {
		return netip.AddrFrom16(a)
	}
	return netip.AddrFrom4([4]byte(a[:4]))
}

// l4Off returns where the transport header of a valid packet is, computed
// independently of the code under test.
func l4Off(l3 []byte) (off int, proto uint8, v6 bool) {
	if l3[0]>>4 == 6 {
		return header.IPv6MinSize, header.IPv6(l3).NextHeader(), true
	}
	return header.IPv4(l3).HeaderLen(), header.IPv4(l3).Protocol(), false
}

func fuzzSeeds(f *testing.F) {
	f.Helper()
	for _, p := range []pkt{
		{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagSYN, opts: synOpts},
		{ep: conn4.serverSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: tsOpts, payload: seqPayload(33)},
		{ep: conn4.clientSent(), proto: header.ProtoUDP, payload: seqPayload(20)},
		{ep: conn4.clientSent(), proto: header.ProtoUDP, payload: seqPayload(20), noUDPCk: true},
		{ep: conn6.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagSYN | header.TCPFlagACK, opts: synOpts},
		{ep: conn6.serverSent(), proto: header.ProtoUDP, payload: seqPayload(9)},
		{ep: conn4.clientSent(), proto: header.ProtoICMP},
	} {
		f.Add(p.build(f), []byte{1, 2, 3}, uint16(1), uint16(2), false)
	}
	f.Add([]byte{0x45}, []byte{}, uint16(0), uint16(0), true)
}

func FuzzRewrite(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data, seed []byte, sp, dp uint16, otherFamily bool) {
		raw := append([]byte(nil), data...)
		_ = Rewrite(raw, &Endpoints{fuzzAddr(false, seed, 0), fuzzAddr(false, seed, 1), sp, dp}) // no panic on anything

		l3, ok := validL3(append([]byte(nil), data...))
		if !ok {
			return
		}
		off, proto, v6 := l4Off(l3)
		fam := v6 != otherFamily
		to := Endpoints{fuzzAddr(fam, seed, 0), fuzzAddr(fam, seed, 1), sp, dp}
		before := append([]byte(nil), l3...)
		ckOff := tcpCksumOff
		if proto == header.ProtoUDP {
			ckOff = udpCksumOff
		}
		var res uint16
		if off+ckOff+2 <= len(l3) {
			res = residual(l3, v6, proto, off, len(l3))
		}

		if err := Rewrite(l3, &to); err != nil {
			if !bytes.Equal(before, l3) {
				t.Fatalf("Rewrite failed (%v) and modified the packet", err)
			}
			return
		}
		if otherFamily || (proto != header.ProtoTCP && proto != header.ProtoUDP) {
			t.Fatalf("Rewrite succeeded for family mismatch %v / protocol %d", otherFamily, proto)
		}
		var src, dst netip.Addr
		if v6 {
			src, dst = header.IPv6(l3).Src(), header.IPv6(l3).Dst()
		} else {
			if header.IPv4(l3).Validate() != header.Valid {
				t.Fatalf("IPv4 header checksum broken")
			}
			src, dst = header.IPv4(l3).Src(), header.IPv4(l3).Dst()
		}
		got := Endpoints{src, dst, be16(l3[off:]), be16(l3[off+2:])}
		if got != to {
			t.Fatalf("tuple %+v, want %+v", got, to)
		}
		oldCk, newCk := be16(before[off+ckOff:]), be16(l3[off+ckOff:])
		if proto == header.ProtoUDP && oldCk == 0 {
			if newCk != 0 {
				t.Fatalf("UDP checksum 0 became %#x", newCk)
			}
		} else if r := residual(l3, v6, proto, off, len(l3)); r != res {
			t.Fatalf("transport checksum residual %#x, was %#x", r, res)
		}
		// Nothing but addresses, ports and checksums changed.
		changed := map[int]bool{off + ckOff: true, off + ckOff + 1: true, off: true, off + 1: true, off + 2: true, off + 3: true}
		if v6 {
			for i := 8; i < 40; i++ {
				changed[i] = true
			}
		} else {
			for i := 10; i < 20; i++ {
				changed[i] = true
			}
		}
		for i := range l3 {
			if !changed[i] && l3[i] != before[i] {
				t.Fatalf("byte %d changed: %#x → %#x", i, before[i], l3[i])
			}
		}
	})
}

func FuzzParseICMPError(f *testing.F) {
	tcp4 := pkt{ep: conn4.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: tsOpts, payload: seqPayload(20)}.build(f)
	udp4 := pkt{ep: conn4.toClient(), proto: header.ProtoUDP, payload: seqPayload(20)}.build(f)
	tcp6 := pkt{ep: conn6.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagSYN, opts: synOpts}.build(f)
	for _, e := range []icmpErr{
		{src: conn4.router, dst: conn4.l, typ: 3, code: 4, mtu: 1400, quoted: tcp4},
		{src: conn4.router, dst: conn4.l, typ: 3, code: 4, mtu: 1400, quoted: tcp4, quoteLen: 28},
		{src: conn4.router, dst: conn4.v, typ: 11, quoted: udp4, quoteLen: 28},
		{src: conn6.router, dst: conn6.l, typ: 2, mtu: 1280, quoted: tcp6},
		{src: conn6.router, dst: conn6.l, typ: 1, code: 4, quoted: tcp6, quoteLen: 48},
	} {
		f.Add(e.build(f), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, swap bool) {
		_, _ = ParseICMPError(data) // no panic on anything
		l3, ok := validL3(append([]byte(nil), data...))
		if !ok {
			return
		}
		e, err := ParseICMPError(l3)
		if err != nil {
			before := append([]byte(nil), l3...)
			in := Endpoints{Src: conn4.c, Dst: conn4.v}
			if TranslateICMPError(l3, conn4.v, conn4.c, &in) == nil || AdjustICMPMTU(l3, -8) == nil {
				t.Fatalf("Parse refused (%v) what Translate or Adjust accepted", err)
			}
			if !bytes.Equal(before, l3) {
				t.Fatal("refused packet modified")
			}
			return
		}
		icmp, _, v6 := l4Off(l3)
		inner := icmp + icmpHdrLen
		var innerL4 int
		var os, od, is, id netip.Addr
		if v6 {
			innerL4 = inner + header.IPv6MinSize
			os, od = header.IPv6(l3).Src(), header.IPv6(l3).Dst()
			is, id = header.IPv6(l3[inner:]).Src(), header.IPv6(l3[inner:]).Dst()
		} else {
			innerL4 = inner + header.IPv4(l3[inner:]).HeaderLen()
			os, od = header.IPv4(l3).Src(), header.IPv4(l3).Dst()
			is, id = header.IPv4(l3[inner:]).Src(), header.IPv4(l3[inner:]).Dst()
		}
		want := Endpoints{is, id, be16(l3[innerL4:]), be16(l3[innerL4+2:])}
		if e.Outer.Src != os || e.Outer.Dst != od || e.Inner != want || e.InnerL4Len != len(l3)-innerL4 || e.InnerL4Len < 8 {
			t.Fatalf("parsed %+v; outer %v→%v inner %+v, %d L4 bytes", e, os, od, want, len(l3)-innerL4)
		}

		// Translate and check that every checksum keeps its residual.
		k := conn4
		if v6 {
			k = conn6
		}
		nos, nod, nin := k.v, k.c, k.clientSent()
		if swap {
			nos, nod, nin = k.l, k.d, k.serverSent()
		}
		icmpRes := func() uint16 {
			if v6 {
				return icmpv6Residual(l3, icmp, len(l3))
			}
			return norm(header.Checksum(l3[icmp:], 0))
		}
		resICMP := icmpRes()
		var resInnerIP uint16
		if !v6 {
			resInnerIP = norm(header.Checksum(l3[inner:innerL4], 0))
		}
		if err := TranslateICMPError(l3, nos, nod, &nin); err != nil {
			t.Fatalf("TranslateICMPError after a successful parse: %v", err)
		}
		if r := icmpRes(); r != resICMP {
			t.Fatalf("ICMP checksum residual %#x, was %#x", r, resICMP)
		}
		if !v6 {
			if header.IPv4(l3).Validate() != header.Valid {
				t.Fatal("outer IPv4 header checksum broken")
			}
			if r := norm(header.Checksum(l3[inner:innerL4], 0)); r != resInnerIP {
				t.Fatalf("quoted IPv4 header residual %#x, was %#x", r, resInnerIP)
			}
		}
		e2, err := ParseICMPError(l3)
		if err != nil || e2.Inner != nin || e2.Outer.Src != nos || e2.Outer.Dst != nod {
			t.Fatalf("after translation: %+v, %v", e2, err)
		}
		if err := AdjustICMPMTU(l3, -8); err == nil {
			if r := icmpRes(); r != resICMP {
				t.Fatalf("ICMP checksum residual after AdjustICMPMTU %#x, was %#x", r, resICMP)
			}
		}
	})
}

func FuzzInsertTOA(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data, seed []byte, port, _ uint16, v6Client bool) {
		l3, ok := validL3(append([]byte(nil), data...))
		if !ok || len(l3)+header.EthernetMinSize > 1700 {
			return
		}
		b := newBuf(t, l3, etherTypeOf(l3))
		before := append([]byte(nil), b.Bytes()...)
		client := netip.AddrPortFrom(fuzzAddr(v6Client, seed, 0), port)
		off, proto, v6 := l4Off(l3)
		var res uint16
		if proto == header.ProtoTCP && off+tcpCksumOff+2 <= len(l3) {
			res = residual(l3, v6, proto, off, len(l3))
		}
		if err := InsertTOA(b, header.EthernetMinSize, client); err != nil {
			if !bytes.Equal(before, b.Bytes()) {
				t.Fatalf("InsertTOA failed (%v) and modified the packet", err)
			}
			return
		}
		got := b.Bytes()[header.EthernetMinSize:]
		if !v6 && header.IPv4(got).Validate() != header.Valid {
			t.Fatal("IPv4 header broken")
		}
		if r := residual(got, v6, proto, off, len(got)); r != res {
			t.Fatalf("TCP checksum residual %#x, was %#x", r, res)
		}
		if !bytes.Equal(got[off+20:off+20+TOALen(client.Addr())], toaOption(client)) {
			t.Fatalf("option %x", got[off+20:off+20+TOALen(client.Addr())])
		}
		if !bytes.Equal(got[off+20+TOALen(client.Addr()):], l3[off+20:]) {
			t.Fatal("bytes after the option changed")
		}
	})
}

func FuzzClampMSS(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data, _ []byte, max, _ uint16, _ bool) {
		_ = ClampMSS(append([]byte(nil), data...), max)
		l3, ok := validL3(append([]byte(nil), data...))
		if !ok {
			return
		}
		before := append([]byte(nil), l3...)
		off, proto, v6 := l4Off(l3)
		var res uint16
		if proto == header.ProtoTCP && off+tcpCksumOff+2 <= len(l3) {
			res = residual(l3, v6, proto, off, len(l3))
		}
		if !ClampMSS(l3, max) {
			if !bytes.Equal(before, l3) {
				t.Fatal("ClampMSS reported no change but modified the packet")
			}
			return
		}
		if r := residual(l3, v6, proto, off, len(l3)); r != res {
			t.Fatalf("TCP checksum residual %#x, was %#x", r, res)
		}
	})
}
