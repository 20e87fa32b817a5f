package nat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
)

// oppRestore undoes the opp header as a real server's UOA module does
// (the header taken out, the protocol / next header and the IP length
// restored, the IPv4 header checksum recomputed) and returns the packet.
// nh is the offset of the protocol byte, hlen the IP headers' length.
func oppRestore(t *testing.T, l3 []byte, nh, hlen int) []byte {
	t.Helper()
	n := int(binary.BigEndian.Uint16(l3[hlen+2:]))
	out := append(append([]byte(nil), l3[:hlen]...), l3[hlen+n:]...)
	out[nh] = l3[hlen+1]
	if out[0]>>4 == 4 {
		ip := header.IPv4(out)
		ip.SetTotalLen(ip.TotalLen() - uint16(n))
		ip.SetChecksum(0)
		ip.SetChecksum(^header.Checksum(out[:hlen], 0))
	} else {
		ip := header.IPv6(out)
		ip.SetPayloadLen(ip.PayloadLen() - uint16(n))
	}
	return out
}

// TestInsertOPP: the opp header lands between the IP headers and the UDP
// header for IPv4 and IPv6 datagrams (with IP options, with extension
// headers) and clients of both families (an IPv6 client in an IPv4
// datagram is NAT64): every field compared, the IP length and header
// checksum right, the protocol byte 248, the Ethernet header moved with
// the IP header; ParseOPP reads the client and the very UDP datagram
// back; taking the header out as the server's module does gives back the
// original packet byte for byte, whose checksums gopacket recomputes the
// same (so the unchanged UDP checksum is the one the server verifies).
func TestInsertOPP(t *testing.T) {
	c4 := netip.AddrPortFrom(conn4.c, cport)
	c6 := netip.AddrPortFrom(conn6.c, cport)
	udp4 := pkt{ep: conn4.toServer(), proto: header.ProtoUDP, payload: []byte("query")}
	udp6 := pkt{ep: conn6.toServer(), proto: header.ProtoUDP, payload: seqPayload(100)}
	opt4 := udp4
	opt4.ipOpts = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	hbh6 := udp6
	hbh6.hopByHop = true
	cases := []struct {
		name       string
		l3         []byte
		client     netip.AddrPort
		nh, hlen   int
		ver, optLn byte
	}{
		{"IPv4 client, IPv4", udp4.build(t), c4, 9, 20, 1, 8},
		{"IPv4 with options", opt4.build(t), c4, 9, 24, 1, 8},
		{"NAT64: IPv6 client, IPv4", udp4.build(t), c6, 9, 20, 2, 20},
		{"IPv6", udp6.build(t), c6, 6, 40, 2, 20},
		{"IPv6 hop-by-hop", hbh6.build(t), c6, 40, 48, 2, 20},
		{"IPv6 routing, destination options", withExt6(withExt6(udp6.build(t), ext6DestOpts, [6]byte{1, 4}), ext6Routing, [6]byte{}), c6, 48, 56, 2, 20},
		{"IPv6, IPv4-mapped client", udp6.build(t), netip.AddrPortFrom(netip.AddrFrom16(conn4.c.As16()), cport), 6, 40, 1, 8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			orig := tc.l3
			b := newBuf(t, orig, etherTypeOf(orig))
			eth := append([]byte(nil), b.Bytes()[:header.EthernetMinSize]...)
			head := b.Headroom()
			if err := InsertOPP(b, header.EthernetMinSize, tc.client); err != nil {
				t.Fatal(err)
			}
			n := OPPLen(tc.client.Addr())
			if want := 4 + int(tc.optLn); n != want || b.Headroom() != head-n {
				t.Fatalf("OPPLen %d (want %d), headroom %d → %d", n, want, head, b.Headroom())
			}
			if !bytes.Equal(b.Bytes()[:header.EthernetMinSize], eth) {
				t.Fatalf("Ethernet header %x, was %x", b.Bytes()[:header.EthernetMinSize], eth)
			}
			l3 := b.Bytes()[header.EthernetMinSize:]
			if len(l3) != len(orig)+n {
				t.Fatalf("length %d, want %d", len(l3), len(orig)+n)
			}
			if l3[tc.nh] != ProtoOPP {
				t.Fatalf("protocol byte at %d: %d, want 248", tc.nh, l3[tc.nh])
			}
			// gopacket knows no protocol 248: its IP layer only
			first := layers.LayerTypeIPv4
			if l3[0]>>4 == 6 {
				first = layers.LayerTypeIPv6
			}
			switch ip := gopacket.NewPacket(l3, first, gopacket.Default).NetworkLayer().(type) {
			case *layers.IPv4:
				if int(ip.Length) != len(orig)+n || int(ip.IHL)*4 != tc.hlen || ip.Protocol != ProtoOPP {
					t.Fatalf("IPv4 length %d IHL %d protocol %d", ip.Length, ip.IHL, ip.Protocol)
				}
				if header.Checksum(l3[:tc.hlen], 0) != 0xffff {
					t.Fatal("IPv4 header checksum does not verify")
				}
			case *layers.IPv6:
				if ip.SrcIP.Equal(ip16(conn6.l)) != true || int(ip.Length) != len(orig)-40+n {
					t.Fatalf("IPv6 payload length %d, want %d", ip.Length, len(orig)-40+n)
				}
			default:
				t.Fatalf("gopacket finds no IP header: %v", ip)
			}
			o := l3[tc.hlen : tc.hlen+n]
			if o[0] != tc.ver<<4 || o[1] != header.ProtoUDP || int(binary.BigEndian.Uint16(o[2:])) != n {
				t.Fatalf("opp header %x: want version %d, protocol 17, length %d", o[:4], tc.ver, n)
			}
			if o[4] != UOAKind || o[5] != tc.optLn || binary.BigEndian.Uint16(o[6:]) != cport {
				t.Fatalf("UOA option %x", o[4:])
			}
			if a, _ := netip.AddrFromSlice(o[8:]); a != tc.client.Addr().Unmap() {
				t.Fatalf("UOA address %v, want %v", a, tc.client.Addr())
			}
			if !bytes.Equal(l3[tc.hlen+n:], orig[tc.hlen:]) {
				t.Fatal("UDP header or payload changed")
			}
			client, udp, ok := ParseOPP(l3[tc.hlen:])
			if !ok || client != netip.AddrPortFrom(tc.client.Addr().Unmap(), tc.client.Port()) || !bytes.Equal(udp, orig[tc.hlen:]) {
				t.Fatalf("ParseOPP = %v %x %v", client, udp, ok)
			}
			back := oppRestore(t, l3, tc.nh, tc.hlen)
			if !bytes.Equal(back, orig) {
				t.Fatalf("restored\n %x\nwant\n %x", back, orig)
			}
			if r := residual(back, tc.hlen > 20 && back[0]>>4 == 6, header.ProtoUDP, tc.hlen, len(back)); r != 0 {
				t.Fatalf("UDP checksum residual %#x", r)
			}
			if tc.nh < 48 { // gopacket re-serialises only the hop-by-hop extension header
				verifyChecksums(t, back)
			}
		})
	}
}

// TestInsertOPPRefused: what InsertOPP refuses, leaving the packet as it
// was.
func TestInsertOPPRefused(t *testing.T) {
	c4 := netip.AddrPortFrom(conn4.c, cport)
	udp4 := pkt{ep: conn4.toServer(), proto: header.ProtoUDP, payload: []byte("q")}
	frag4 := udp4
	frag4.flagsFrag = 0x2000 // more fragments
	tcp4 := pkt{ep: conn4.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK}
	udp6 := pkt{ep: conn6.toServer(), proto: header.ProtoUDP, payload: []byte("q")}
	big := pkt{ep: conn4.toServer(), proto: header.ProtoUDP, payload: make([]byte, 0xffff-28-4)}
	cases := []struct {
		name string
		l3   []byte
		want error
	}{
		{"IPv4 fragment", frag4.build(t), ErrFragment},
		{"IPv6 fragment", withExt6(udp6.build(t), ext6Fragment, [6]byte{0, 1, 0, 0, 0, 7}), ErrFragment},
		{"TCP", tcp4.build(t), ErrMalformed},
		{"ESP behind IPv6", withExt6(udp6.build(t), 50, [6]byte{}), ErrMalformed},
		{"truncated UDP", udp4.build(t)[:24], ErrMalformed},
		{"too big", big.build(t), ErrTooBig},
	}
	for _, tc := range cases {
		b := &prependBuf{frame: append(make([]byte, 64), tc.l3...), off: 64}
		if err := InsertOPP(b, 0, c4); !errors.Is(err, tc.want) || !bytes.Equal(b.Bytes(), tc.l3) {
			t.Errorf("%s: %v, want %v (packet changed: %v)", tc.name, err, tc.want, !bytes.Equal(b.Bytes(), tc.l3))
		}
	}
	l3 := udp4.build(t)
	if err := InsertOPP(&prependBuf{frame: append(make([]byte, 11), l3...), off: 11}, 0, c4); err != ErrHeadroom {
		t.Errorf("11 bytes of headroom: %v, want ErrHeadroom", err)
	}
}

// TestParseOPPRefused: malformed opp headers are not read.
func TestParseOPPRefused(t *testing.T) {
	good := []byte{0x10, 17, 0, 12, UOAKind, 8, 0x14, 0xe9, 192, 0, 2, 7, 1, 2, 3, 4, 0, 8, 0, 0}
	if a, udp, ok := ParseOPP(good); !ok || a != netip.MustParseAddrPort("192.0.2.7:5353") || len(udp) != 8 {
		t.Fatalf("good: %v %x %v", a, udp, ok)
	}
	mut := func(i int, v byte) []byte { b := append([]byte(nil), good...); b[i] = v; return b }
	for name, b := range map[string][]byte{
		"reserved bits":         mut(0, 0x11),
		"version 2, IPv4 UOA":   mut(0, 0x20),
		"version 3":             mut(0, 0x30),
		"next protocol TCP":     mut(1, 6),
		"length past the end":   mut(3, 40),
		"length below 4":        mut(3, 2),
		"no UOA option":         mut(4, 30),
		"UDP length past end":   mut(17, 9),
		"UDP length below 8":    mut(17, 7),
		"truncated UDP header":  good[:18],
		"options end before it": mut(4, 0),
	} {
		if _, _, ok := ParseOPP(b); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseOPP: any bytes parse without panicking; what is found lies
// within the input and matches the version's family.
func FuzzParseOPP(f *testing.F) {
	f.Add([]byte{0x10, 17, 0, 12, UOAKind, 8, 0x14, 0xe9, 192, 0, 2, 7, 1, 2, 3, 4, 0, 8, 0, 0})
	f.Add(append([]byte{0x20, 17, 0, 24, 1, UOAKind, 20, 0, 0, 53}, make([]byte, 26)...))
	f.Add([]byte{0x10, 17, 0, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, udp, ok := ParseOPP(b)
		if !ok {
			return
		}
		if a.Addr().Is4() != (b[0]>>4 == OPPVersionIPv4) || len(udp) < 8 || int(binary.BigEndian.Uint16(udp[4:])) != len(udp) {
			t.Fatalf("%v %x from %x", a, udp, b)
		}
	})
}

// FuzzInsertOPP: on any valid IP packet InsertOPP either refuses and
// leaves it alone, or its result carries a valid IPv4 header, ParseOPP
// reads the client back, and the bytes behind the opp header are the
// original transport bytes.
func FuzzInsertOPP(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data, seed []byte, port, _ uint16, v6Client bool) {
		l3, ok := validL3(append([]byte(nil), data...))
		if !ok || len(l3)+header.EthernetMinSize > 1700 {
			return
		}
		b := newBuf(t, l3, etherTypeOf(l3))
		before := append([]byte(nil), b.Bytes()...)
		client := netip.AddrPortFrom(fuzzAddr(v6Client, seed, 0), port)
		if err := InsertOPP(b, header.EthernetMinSize, client); err != nil {
			if !bytes.Equal(before, b.Bytes()) {
				t.Fatalf("InsertOPP failed (%v) and modified the packet", err)
			}
			return
		}
		got := b.Bytes()[header.EthernetMinSize:]
		if len(got) != len(l3)+OPPLen(client.Addr()) {
			t.Fatalf("length %d from %d", len(got), len(l3))
		}
		hlen := header.IPv4(l3).HeaderLen()
		if l3[0]>>4 == 6 { // the extension headers, walked here on the original
			nh := 6
			for hlen = header.IPv6MinSize; l3[nh] != header.ProtoUDP; {
				nh, hlen = hlen, hlen+(int(l3[hlen+1])+1)*8
			}
		}
		if got[0]>>4 == 4 && (header.IPv4(got).Validate() != header.Valid || header.IPv4(got).Protocol() != ProtoOPP) {
			t.Fatal("IPv4 header broken")
		}
		if !bytes.Equal(got[hlen+OPPLen(client.Addr()):], l3[hlen:]) {
			t.Fatal("bytes behind the opp header changed")
		}
		ul := int(binary.BigEndian.Uint16(l3[hlen+4:]))
		a, udp, ok := ParseOPP(got[hlen:])
		if ul < 8 || hlen+ul > len(l3) { // a UDP length ParseOPP refuses
			return
		}
		if !ok || a != netip.AddrPortFrom(client.Addr().Unmap(), port) || !bytes.Equal(udp, l3[hlen:hlen+ul]) {
			t.Fatalf("ParseOPP = %v %v, want %v", a, ok, client)
		}
	})
}

// oppRunner inserts the opp header for client into a fresh copy of a
// 64-byte UDP datagram of conn k each call.
func oppRunner(t testing.TB, k fnatConn, client netip.AddrPort) func() {
	l3 := pkt{ep: k.toServer(), proto: header.ProtoUDP, payload: seqPayload(64)}.build(t)
	b := newBuf(t, l3, etherTypeOf(l3))
	frame := append([]byte(nil), b.Bytes()...)
	return func() {
		b.Reset(pktbuf.Headroom, len(frame))
		copy(b.Bytes(), frame)
		if err := InsertOPP(b, header.EthernetMinSize, client); err != nil {
			panic(err)
		}
	}
}

var oppBench = []struct {
	name   string
	k      fnatConn
	client netip.AddrPort
}{
	{"IPv4", conn4, netip.AddrPortFrom(conn4.c, cport)},
	{"IPv6", conn6, netip.AddrPortFrom(conn6.c, cport)},
	{"NAT64", conn4, netip.AddrPortFrom(conn6.c, cport)},
}

func TestInsertOPPAllocs(t *testing.T) {
	for _, c := range oppBench {
		if n := testing.AllocsPerRun(100, oppRunner(t, c.k, c.client)); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", c.name, n)
		}
	}
}

// BenchmarkInsertOPP: one insertion, the frame copy included.
func BenchmarkInsertOPP(b *testing.B) {
	for _, c := range oppBench {
		b.Run(c.name, func(b *testing.B) {
			run := oppRunner(b, c.k, c.client)
			b.ReportAllocs()
			for b.Loop() {
				run()
			}
		})
	}
}
