package session

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gvs-lb/gvs/header"
)

// buildPacket serialises an IPv4 or IPv6 packet carrying a TCP or UDP
// segment with a few payload bytes.
func buildPacket(t testing.TB, proto uint8, src, dst netip.AddrPort) []byte {
	t.Helper()
	var nl gopacket.SerializableLayer
	var netl gopacket.NetworkLayer
	if src.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocol(proto),
			SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
		nl, netl = ip, ip
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocol(proto),
			SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
		nl, netl = ip, ip
	}
	var l4 gopacket.SerializableLayer
	if proto == header.ProtoTCP {
		tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), SYN: true, Window: 1000}
		tcp.SetNetworkLayerForChecksum(netl)
		l4 = tcp
	} else {
		udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
		udp.SetNetworkLayerForChecksum(netl)
		l4 = udp
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, nl, l4, gopacket.Payload("hello")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// withExt inserts IPv6 extension headers (type, body of a multiple of 8
// bytes minus 2, or the 6 bytes after next-header/reserved for a fragment
// header) after the fixed header of pkt.
// IPv6 extension header types the tests build.
const (
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6DestOpts = 60
)

func withExt(pkt []byte, exts ...ext) []byte {
	out := append([]byte{}, pkt[:40]...)
	next := pkt[6]
	out[6] = exts[0].typ
	for i, e := range exts {
		nh := next
		if i+1 < len(exts) {
			nh = exts[i+1].typ
		}
		b := make([]byte, 8*(e.units+1))
		b[0] = nh
		if e.typ == ipv6Fragment {
			binary.BigEndian.PutUint16(b[2:], e.fragOff<<3|1)
		} else if e.typ == ipv6Routing {
			b[1], b[2] = uint8(e.units), 4 // segments left 0: this node is the final destination
		} else {
			b[1] = uint8(e.units)
			b[2], b[3] = 1, uint8(len(b)-4) // one PadN option filling the header
		}
		out = append(out, b...)
	}
	out = append(out, pkt[40:]...)
	binary.BigEndian.PutUint16(out[4:], uint16(len(out)-40))
	return out
}

type ext struct {
	typ     uint8
	units   int    // length in 8-byte units after the first 8
	fragOff uint16 // fragment offset in 8-byte units
}

func TestParseKey(t *testing.T) {
	c4, v4 := ap("192.0.2.7:40001"), ap("198.51.100.1:443")
	c6, v6 := ap("[2001:db8::7]:40001"), ap("[2001:db8::1]:443")
	tcp4 := buildPacket(t, header.ProtoTCP, c4, v4)
	tcp6 := buildPacket(t, header.ProtoTCP, c6, v6)

	ipv4Opts := append([]byte{}, tcp4...)
	ipv4Opts = append(ipv4Opts[:20:20], append([]byte{1, 1, 1, 0}, tcp4[20:]...)...) // NOP NOP NOP EOL
	ipv4Opts[0] = 0x46
	binary.BigEndian.PutUint16(ipv4Opts[2:], uint16(len(ipv4Opts)))
	fixIPv4Checksum(ipv4Opts)

	frag4 := append([]byte{}, tcp4...)
	binary.BigEndian.PutUint16(frag4[6:], 185) // offset 185×8
	fixIPv4Checksum(frag4)
	firstFrag4 := append([]byte{}, tcp4...)
	binary.BigEndian.PutUint16(firstFrag4[6:], 0x2000) // MF, offset 0
	fixIPv4Checksum(firstFrag4)

	icmp := append([]byte{}, tcp4...)
	icmp[9] = header.ProtoICMP
	fixIPv4Checksum(icmp)

	tests := []struct {
		name string
		pkt  []byte
		want Key
		ok   bool
	}{
		{"v4 TCP", tcp4, MakeKey(header.ProtoTCP, c4, v4), true},
		{"v4 UDP", buildPacket(t, header.ProtoUDP, c4, v4), MakeKey(header.ProtoUDP, c4, v4), true},
		{"v4 with options", ipv4Opts, MakeKey(header.ProtoTCP, c4, v4), true},
		{"v4 first fragment", firstFrag4, MakeKey(header.ProtoTCP, c4, v4), true},
		{"v4 later fragment", frag4, Key{}, false},
		{"v4 ICMP", icmp, Key{}, false},
		{"v4 truncated ports", tcp4[:23], Key{}, false},
		{"v4 cut short of its total length", tcp4[:24], Key{}, false},
		{"v4 IHL too small", append([]byte{0x44}, tcp4[1:]...), Key{}, false},
		{"v6 TCP", tcp6, MakeKey(header.ProtoTCP, c6, v6), true},
		{"v6 UDP", buildPacket(t, header.ProtoUDP, c6, v6), MakeKey(header.ProtoUDP, c6, v6), true},
		{"v6 hop-by-hop, dest opts", withExt(tcp6, ext{typ: ipv6HopByHop}, ext{typ: ipv6DestOpts, units: 2}),
			MakeKey(header.ProtoTCP, c6, v6), true},
		{"v6 routing, first fragment", withExt(tcp6, ext{typ: ipv6Routing, units: 1}, ext{typ: ipv6Fragment}),
			MakeKey(header.ProtoTCP, c6, v6), true},
		{"v6 later fragment", withExt(tcp6, ext{typ: ipv6Fragment, fragOff: 3}), Key{}, false},
		{"v6 nine ext headers", withExt(tcp6, ext{typ: 0}, ext{typ: 60}, ext{typ: 60}, ext{typ: 60}, ext{typ: 60},
			ext{typ: 60}, ext{typ: 60}, ext{typ: 60}, ext{typ: 60}), Key{}, false},
		{"v6 eight ext headers", withExt(tcp6, ext{typ: 0}, ext{typ: 60}, ext{typ: 43}, ext{typ: 60}, ext{typ: 60},
			ext{typ: 60}, ext{typ: 60}, ext{typ: 60}), MakeKey(header.ProtoTCP, c6, v6), true},
		{"v6 truncated", tcp6[:43], Key{}, false},
		{"v6 truncated ext", withExt(tcp6, ext{typ: ipv6HopByHop})[:41], Key{}, false},
		{"empty", nil, Key{}, false},
		{"version 5", append([]byte{0x55}, tcp4[1:]...), Key{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseKey(tc.pkt)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("ParseKey = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
			// (gopacket does not decode the ports of a first fragment)
			if !ok || strings.Contains(tc.name, "fragment") || len(tc.pkt) < 30 {
				return
			}
			// gopacket agrees on the ports of everything we accept
			first := layers.LayerTypeIPv4
			if tc.pkt[0]>>4 == 6 {
				first = layers.LayerTypeIPv6
			}
			p := gopacket.NewPacket(tc.pkt, first, gopacket.Default)
			tl := p.TransportLayer()
			if tl == nil {
				t.Fatalf("gopacket finds no transport layer: %v", p)
			}
			src, dst := tl.TransportFlow().Endpoints()
			if binary.BigEndian.Uint16(src.Raw()) != got.SrcPort || binary.BigEndian.Uint16(dst.Raw()) != got.DstPort {
				t.Fatalf("gopacket ports %v→%v, ParseKey %v", src, dst, got)
			}
		})
	}
}

func TestKeyBuilders(t *testing.T) {
	src, dst := ap("192.0.2.1:1234"), ap("198.51.100.2:80")
	k, ok := KeyFromBytes(header.ProtoUDP, src.Addr().AsSlice(), dst.Addr().AsSlice(), 1234, 80)
	if !ok || k != MakeKey(header.ProtoUDP, src, dst) {
		t.Fatalf("KeyFromBytes v4 = %v %v", k, ok)
	}
	if k.SrcAddrPort() != src || k.DstAddrPort() != dst {
		t.Fatalf("addr ports %v %v", k.SrcAddrPort(), k.DstAddrPort())
	}
	if r := k.Reverse(); r.SrcAddrPort() != dst || r.DstAddrPort() != src || r.Reverse() != k {
		t.Fatalf("Reverse = %v", r)
	}
	if s := k.String(); s != "UDP 192.0.2.1:1234->198.51.100.2:80" {
		t.Fatalf("String = %q", s)
	}
	src6, dst6 := ap("[2001:db8::1]:1234"), ap("[2001:db8::2]:80")
	k, ok = KeyFromBytes(header.ProtoTCP, src6.Addr().AsSlice(), dst6.Addr().AsSlice(), 1234, 80)
	if !ok || k != MakeKey(header.ProtoTCP, src6, dst6) {
		t.Fatalf("KeyFromBytes v6 = %v %v", k, ok)
	}
	if _, ok := KeyFromBytes(header.ProtoTCP, make([]byte, 5), make([]byte, 4), 1, 2); ok {
		t.Fatal("KeyFromBytes accepted a 5-byte address")
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add(buildPacket(f, header.ProtoTCP, ap("192.0.2.7:40001"), ap("198.51.100.1:443")))
	f.Add(buildPacket(f, header.ProtoUDP, ap("[2001:db8::7]:53"), ap("[2001:db8::1]:53")))
	f.Add(withExt(buildPacket(f, header.ProtoTCP, ap("[2001:db8::7]:1"), ap("[2001:db8::1]:2")),
		ext{typ: ipv6HopByHop}, ext{typ: ipv6Fragment}))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		k, ok := parseKey(pkt)
		if !ok {
			if k != (Key{}) {
				t.Fatalf("failed parse returned %v", k)
			}
			return
		}
		if k.Proto != header.ProtoTCP && k.Proto != header.ProtoUDP {
			t.Fatalf("proto %d", k.Proto)
		}
		switch pkt[0] >> 4 {
		case 4:
			hl := int(pkt[0]&0xf) * 4
			want, _ := KeyFromBytes(pkt[9], pkt[12:16], pkt[16:20],
				binary.BigEndian.Uint16(pkt[hl:]), binary.BigEndian.Uint16(pkt[hl+2:]))
			if k != want {
				t.Fatalf("v4 key %v, want %v", k, want)
			}
		case 6:
			if [16]byte(pkt[8:24]) != k.Src || [16]byte(pkt[24:40]) != k.Dst {
				t.Fatalf("v6 addresses %v", k)
			}
		default:
			t.Fatalf("accepted version %d", pkt[0]>>4)
		}
		// trailing bytes change nothing
		if k2, ok2 := parseKey(append(pkt[:len(pkt):len(pkt)], 0xde, 0xad)); !ok2 || k2 != k {
			t.Fatalf("with trailing bytes: %v %v, want %v", k2, ok2, k)
		}
	})
}

// parseKey is what the dataplane does with a packet: the L3 stage
// validates and locates it (header.Locate), the IPVS stage makes its key.
func parseKey(pkt []byte) (Key, bool) {
	t, ok := header.Locate(pkt)
	if !ok {
		return Key{}, false
	}
	return KeyAt(pkt, t)
}

func fixIPv4Checksum(p []byte) {
	ip := header.IPv4(p)
	ip.SetChecksum(0)
	ip.SetChecksum(^header.Checksum(p[:ip.HeaderLen()], 0))
}
