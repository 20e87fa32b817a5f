package nat

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// tunInner builds a client's TCP segment to the virtual address: IPv4
// with DF and TOS 0x28, or IPv6 with traffic class 0x28 and a flow label.
func tunInner(t testing.TB, v6 bool, payload string) []byte {
	t.Helper()
	tcp := &layers.TCP{SrcPort: 41000, DstPort: 80, SYN: true, Seq: 7, Window: 65535}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
	var err error
	if v6 {
		ip := &layers.IPv6{Version: 6, TrafficClass: 0x28, FlowLabel: 0x12345, HopLimit: 63, NextHeader: layers.IPProtocolTCP,
			SrcIP: net.ParseIP("fd00:1::2"), DstIP: net.ParseIP("fd00:1::100")}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, ip, tcp, gopacket.Payload(payload))
	} else {
		ip := &layers.IPv4{Version: 4, IHL: 5, TOS: 0x28, Id: 999, Flags: layers.IPv4DontFragment, TTL: 63, Protocol: layers.IPProtocolTCP,
			SrcIP: net.IP{10, 1, 0, 2}, DstIP: net.IP{10, 1, 0, 100}}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, ip, tcp, gopacket.Payload(payload))
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// encapped puts inner behind the outer headers of e in one buffer, as the
// dataplane does in a packet buffer's headroom.
func encapped(inner []byte, e *Encap) []byte {
	n := EncapLen(e.Kind, inner[0]>>4 == 6, e.Csum)
	pkt := make([]byte, n+len(inner))
	copy(pkt[n:], inner)
	EncapHeader(pkt[:n], pkt[n:], e)
	return pkt
}

// refUDPChecksum is the UDP checksum computed the plain way: the pseudo
// header and the datagram summed byte pair by byte pair.
func refUDPChecksum(src, dst netip.Addr, udp []byte) uint16 {
	var ph []byte
	ph = append(ph, src.AsSlice()...)
	ph = append(ph, dst.AsSlice()...)
	if src.Is4() {
		ph = append(ph, 0, 17, byte(len(udp)>>8), byte(len(udp)))
	} else {
		ph = append(ph, byte(len(udp)>>24), byte(len(udp)>>16), byte(len(udp)>>8), byte(len(udp)), 0, 0, 0, 17)
	}
	d := append(append(ph, udp[:6]...), 0, 0)
	d = append(d, udp[8:]...)
	if len(d)%2 == 1 {
		d = append(d, 0)
	}
	var sum uint32
	for i := 0; i < len(d); i += 2 {
		sum += uint32(d[i])<<8 | uint32(d[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff
	}
	return c
}

// TestEncapHeader: every encapsulation in both families, decoded with
// gopacket field by field; the checksums gopacket knows (outer and inner
// IPv4 header, GRE, inner TCP) verified by it, the UDP checksum against a
// plain computation; Decap gives the inner packet back byte for byte.
func TestEncapHeader(t *testing.T) {
	src4, dst4 := netip.MustParseAddr("10.2.0.1"), netip.MustParseAddr("192.0.2.11")
	src6, dst6 := netip.MustParseAddr("fd00:2::1"), netip.MustParseAddr("2001:db8::11")
	for _, tc := range []struct {
		name  string
		v6    bool
		kind  EncapKind
		csum  bool
		proto layers.IPProtocol
		extra int
	}{
		{"ipip4", false, EncapIPIP, false, layers.IPProtocolIPv4, 0},
		{"ipip6", true, EncapIPIP, false, layers.IPProtocolIPv6, 0},
		{"gre4", false, EncapGRE, false, layers.IPProtocolGRE, 4},
		{"gre4csum", false, EncapGRE, true, layers.IPProtocolGRE, 8},
		{"gre6", true, EncapGRE, false, layers.IPProtocolGRE, 4},
		{"gre6csum", true, EncapGRE, true, layers.IPProtocolGRE, 8},
		{"gue4", false, EncapGUE, false, layers.IPProtocolUDP, 12},
		{"gue4csum", false, EncapGUE, true, layers.IPProtocolUDP, 12},
		{"gue6", true, EncapGUE, false, layers.IPProtocolUDP, 12},
		{"gue6csum", true, EncapGUE, true, layers.IPProtocolUDP, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner := tunInner(t, tc.v6, "hello, odd payload")
			e := &Encap{Kind: tc.kind, Src: src4, Dst: dst4, SrcPort: 50123, DstPort: 6080, Csum: tc.csum, ID: 4242}
			first := layers.LayerTypeIPv4
			ipLen := 20
			if tc.v6 {
				e.Src, e.Dst, first, ipLen = src6, dst6, layers.LayerTypeIPv6, 40
			}
			pkt := encapped(inner, e)
			if got := len(pkt) - len(inner); got != ipLen+tc.extra {
				t.Fatalf("overhead %d, want %d", got, ipLen+tc.extra)
			}
			p := gopacket.NewPacket(pkt, first, gopacket.Default)
			if el := p.ErrorLayer(); el != nil && tc.kind != EncapGUE {
				t.Fatalf("decode: %v", el.Error())
			}
			verifyAll(t, p)
			var payload []byte
			if tc.v6 {
				o := p.Layers()[0].(*layers.IPv6)
				if !o.SrcIP.Equal(src6.AsSlice()) || !o.DstIP.Equal(dst6.AsSlice()) || o.HopLimit != 64 || o.NextHeader != tc.proto ||
					o.TrafficClass != 0x28 || o.FlowLabel != 0x12345 || int(o.Length) != len(pkt)-40 {
					t.Fatalf("outer IPv6 %+v", o)
				}
				payload = o.Payload
			} else {
				o := p.Layers()[0].(*layers.IPv4)
				if !o.SrcIP.Equal(src4.AsSlice()) || !o.DstIP.Equal(dst4.AsSlice()) || o.TTL != 64 || o.Protocol != tc.proto ||
					o.TOS != 0x28 || o.Flags != layers.IPv4DontFragment || o.Id != 4242 || int(o.Length) != len(pkt) || o.IHL != 5 {
					t.Fatalf("outer IPv4 %+v", o)
				}
				payload = o.Payload
			}
			var got []byte
			switch tc.kind {
			case EncapIPIP:
				got = payload
			case EncapGRE:
				g, ok := p.Layer(layers.LayerTypeGRE).(*layers.GRE)
				want := layers.EthernetTypeIPv4
				if tc.v6 {
					want = layers.EthernetTypeIPv6
				}
				if !ok || g.Protocol != want || g.ChecksumPresent != tc.csum || g.Version != 0 || g.KeyPresent || g.SeqPresent || g.RoutingPresent {
					t.Fatalf("GRE %+v", g)
				}
				got = g.Payload
			case EncapGUE:
				u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
				if !ok || u.SrcPort != 50123 || u.DstPort != 6080 || int(u.Length) != len(payload) {
					t.Fatalf("UDP %+v", u)
				}
				want := uint16(0)
				if tc.csum {
					want = refUDPChecksum(e.Src, e.Dst, payload)
				}
				if u.Checksum != want {
					t.Fatalf("UDP checksum %#04x, want %#04x", u.Checksum, want)
				}
				g := u.Payload
				proto := byte(4)
				if tc.v6 {
					proto = 41
				}
				if !bytes.Equal(g[:4], []byte{0, proto, 0, 0}) {
					t.Fatalf("GUE header % x, want variant 0, protocol %d, no flags", g[:4], proto)
				}
				got = g[4:]
			}
			if !bytes.Equal(got, inner) {
				t.Fatalf("inner packet changed:\n% x\n% x", got, inner)
			}
			// the inner packet decodes with its checksums intact
			ip := gopacket.NewPacket(got, map[bool]gopacket.LayerType{false: layers.LayerTypeIPv4, true: layers.LayerTypeIPv6}[tc.v6], gopacket.Default)
			verifyAll(t, ip)
			if ip.Layer(layers.LayerTypeTCP) == nil {
				t.Fatalf("inner: %v", ip)
			}
			d, kind, err := Decap(pkt, 6080)
			if err != nil || kind != tc.kind || !bytes.Equal(d, inner) {
				t.Fatalf("Decap: %v kind %d\n% x", err, kind, d)
			}
		})
	}
}

// verifyAll has gopacket verify every checksum it knows in p, the TCP and
// UDP ones over the pseudo header of the IP layer right before them.
func verifyAll(t *testing.T, p gopacket.Packet) {
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
		}
	}
	if err, bad := p.VerifyChecksums(); err != nil || len(bad) != 0 {
		t.Fatalf("checksums: %v %v", err, bad)
	}
}

// TestEncapNoDF: an IPv4 packet without DF gets an outer header without
// DF (it may be fragmented on the way to the real server).
func TestEncapNoDF(t *testing.T) {
	inner := tunInner(t, false, "x")
	inner[6] &^= 0x40 // clear DF
	binary.BigEndian.PutUint16(inner[10:], 0)
	c := ^checksumRef(inner[:20])
	binary.BigEndian.PutUint16(inner[10:], c)
	pkt := encapped(inner, &Encap{Kind: EncapIPIP, Src: netip.MustParseAddr("10.2.0.1"), Dst: netip.MustParseAddr("10.2.0.11")})
	o := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default).Layers()[0].(*layers.IPv4)
	if o.Flags != 0 {
		t.Fatalf("outer flags %v, want none", o.Flags)
	}
}

func checksumRef(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// TestDecapRefuses: what Decap must not take for a tunnel packet.
func TestDecapRefuses(t *testing.T) {
	inner := tunInner(t, false, "payload")
	gre := encapped(inner, &Encap{Kind: EncapGRE, Csum: true, Src: netip.MustParseAddr("10.2.0.1"), Dst: netip.MustParseAddr("10.2.0.11")})
	bad := append([]byte(nil), gre...)
	bad[len(bad)-1] ^= 1
	if _, _, err := Decap(bad, 0); err != ErrBadChecksum {
		t.Errorf("GRE with a corrupt payload: %v, want ErrBadChecksum", err)
	}
	gue := encapped(inner, &Encap{Kind: EncapGUE, Csum: true, SrcPort: 1, DstPort: 6080, Src: netip.MustParseAddr("10.2.0.1"), Dst: netip.MustParseAddr("10.2.0.11")})
	if _, _, err := Decap(gue, 6081); err != ErrNotTunnel {
		t.Errorf("GUE to another port: %v, want ErrNotTunnel", err)
	}
	bad = append([]byte(nil), gue...)
	bad[len(bad)-1] ^= 1
	if _, _, err := Decap(bad, 6080); err != ErrBadChecksum {
		t.Errorf("GUE with a corrupt payload: %v, want ErrBadChecksum", err)
	}
	if _, _, err := Decap(inner, 0); err != ErrNotTunnel {
		t.Errorf("a plain TCP packet: %v, want ErrNotTunnel", err)
	}
}

// FuzzDecap: any bytes are refused or give an inner packet that is a
// whole IP packet inside the input; encapsulations of valid packets (the
// seeds) come back intact.
func FuzzDecap(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		inner := tunInner(f, v6, "seed")
		src, dst := netip.MustParseAddr("10.2.0.1"), netip.MustParseAddr("10.2.0.11")
		if v6 {
			src, dst = netip.MustParseAddr("fd00:2::1"), netip.MustParseAddr("fd00:2::11")
		}
		for _, k := range []EncapKind{EncapIPIP, EncapGRE, EncapGUE} {
			for _, c := range []bool{false, true} {
				f.Add(encapped(inner, &Encap{Kind: k, Csum: c, Src: src, Dst: dst, SrcPort: 5, DstPort: 6080}))
			}
		}
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		inner, _, err := Decap(pkt, 6080)
		if err != nil {
			return
		}
		if len(inner) == 0 {
			t.Fatal("an empty inner packet")
		}
		if off := indexOf(pkt, inner); off < 0 || off+len(inner) > len(pkt) {
			t.Fatalf("inner packet outside the input")
		}
		if _, err := wholeInner(inner, map[byte]uint8{4: 4, 6: 41}[inner[0]>>4]); err != nil {
			t.Fatalf("inner packet not whole: %v", err)
		}
	})
}

// indexOf is the offset of sub (a sub-slice) in p.
func indexOf(p, sub []byte) int {
	for i := range p {
		if &p[i] == &sub[0] {
			return i
		}
	}
	return -1
}
