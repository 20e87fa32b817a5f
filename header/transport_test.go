package header

import (
	"encoding/binary"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// ext6 builds an IPv6 packet whose payload is the given extension headers
// (each: next header, then its bytes after the first two) and then a UDP
// header with ports 1111 → 2222 and 4 bytes of payload.
func ext6(t *testing.T, first uint8, hdrs ...[]byte) []byte {
	t.Helper()
	var pay []byte
	for _, h := range hdrs {
		pay = append(pay, h...)
	}
	udp := []byte{0x04, 0x57, 0x08, 0xae, 0, 12, 0, 0, 'd', 'a', 't', 'a'}
	pay = append(pay, udp...)
	ip := make([]byte, IPv6MinSize, IPv6MinSize+len(pay))
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(pay)))
	ip[6], ip[7] = first, 64
	ip[8], ip[39] = 0xfd, 1
	ip[24], ip[23] = 0xfd, 2
	return append(ip, pay...)
}

// opts is an 8-byte hop-by-hop or destination options header (PadN).
func opts(next uint8) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} }

func frag(next uint8, offset uint16, more bool) []byte {
	v := offset << 3
	if more {
		v |= 1
	}
	return []byte{next, 0, byte(v >> 8), byte(v), 0, 0, 0, 7}
}

func routing(next uint8, segmentsLeft uint8) []byte {
	return []byte{next, 0, 4, segmentsLeft, 0, 0, 0, 0}
}

func TestLocateIPv6(t *testing.T) {
	cases := []struct {
		name   string
		pkt    []byte
		off    uint16
		proto  uint8
		flags  uint8
		gopkts bool // gopacket finds the UDP layer too
	}{
		{"no extension header", ext6(t, ProtoUDP), 40, ProtoUDP, TransportV6, true},
		{"hop-by-hop, destination options", ext6(t, 0, opts(60), opts(ProtoUDP)), 56, ProtoUDP, TransportV6, true},
		{"first fragment", ext6(t, 44, frag(ProtoUDP, 0, true)), 48, ProtoUDP, TransportV6 | TransportFragment, false},
		{"atomic fragment", ext6(t, 44, frag(ProtoUDP, 0, false)), 48, ProtoUDP, TransportV6 | TransportFragment, false},
		{"later fragment", ext6(t, 44, frag(ProtoUDP, 185, false)), 48, ProtoUDP, TransportV6 | TransportFragment | TransportNoL4, false},
		{"routing, no segment left", ext6(t, 43, routing(ProtoUDP, 0)), 48, ProtoUDP, TransportV6, true},
		{"later fragment of options then UDP: data not walked", ext6(t, 44, frag(60, 185, true), opts(ProtoUDP)), 48, 60, TransportV6 | TransportFragment | TransportNoL4, false},
		{"hop-by-hop, first fragment, destination options", ext6(t, 0, opts(44), frag(60, 0, true), opts(ProtoUDP)), 64, ProtoUDP, TransportV6 | TransportFragment, false},
		{"routing with segments left", ext6(t, 43, routing(ProtoUDP, 2)), 40, 43, TransportV6 | TransportNoL4, false},
		{"extension header running past the packet", ext6(t, 0), 40, 4, TransportV6 | TransportNoL4, false},
	}
	for _, c := range cases {
		ip := IPv6(c.pkt)
		if v := ip.Validate(); v != Valid {
			t.Fatalf("%s: %v", c.name, v)
		}
		tr, fo := LocateIPv6Frag(ip)
		if tr != LocateIPv6(ip) {
			t.Errorf("%s: LocateIPv6Frag and LocateIPv6 disagree", c.name)
		}
		if tr.Fragment() && (fo < IPv6MinSize || c.pkt[fo+7] != 7 || c.pkt[fo+4] != 0) || !tr.Fragment() && fo != 0 {
			t.Errorf("%s: fragment header at %d", c.name, fo)
		}
		if tr.Off != c.off || tr.Proto != c.proto || tr.Flags != c.flags || int(tr.End) != len(c.pkt) {
			t.Errorf("%s: %+v, want off %d proto %d flags %b end %d", c.name, tr, c.off, c.proto, c.flags, len(c.pkt))
		}
		sp, dp, ok := tr.Ports(c.pkt)
		if c.gopkts {
			p := gopacket.NewPacket(c.pkt, layers.LayerTypeIPv6, gopacket.Default)
			u, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
			if u == nil {
				t.Fatalf("%s: gopacket finds no UDP: %v", c.name, p)
			}
			if !ok || sp != uint16(u.SrcPort) || dp != uint16(u.DstPort) || string(tr.UDPPayload(c.pkt)) != string(u.Payload) {
				t.Errorf("%s: ports %d %d %v payload %q; gopacket %d %d %q", c.name, sp, dp, ok, tr.UDPPayload(c.pkt), u.SrcPort, u.DstPort, u.Payload)
			}
		} else if tr.HasL4() != ok || ok && (sp != 1111 || dp != 2222) {
			t.Errorf("%s: ports %d %d %v, transport header %v", c.name, sp, dp, ok, tr.HasL4())
		}
	}
}

func TestLocateIPv4(t *testing.T) {
	for _, c := range []struct {
		name  string
		ip    layers.IPv4
		flags uint8
	}{
		{"plain", layers.IPv4{}, 0},
		{"options", layers.IPv4{Options: []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}}, 0},
		{"first fragment", layers.IPv4{Flags: layers.IPv4MoreFragments}, TransportFragment},
		{"later fragment", layers.IPv4{FragOffset: 100}, TransportFragment | TransportNoL4},
	} {
		ipl := c.ip
		ipl.Version, ipl.TTL, ipl.Protocol = 4, 64, layers.IPProtocolTCP
		ipl.SrcIP, ipl.DstIP = []byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, ACK: true, Window: 1}
		tcp.SetNetworkLayerForChecksum(&ipl)
		pkt := mustSerialize(t, &ipl, tcp)
		ip := IPv4(pkt)
		if v := ip.Validate(); v != Valid {
			t.Fatalf("%s: %v", c.name, v)
		}
		tr := LocateIPv4(ip)
		if int(tr.Off) != ip.HeaderLen() || tr.Proto != ProtoTCP || tr.Flags != c.flags || int(tr.End) != len(pkt) || tr.V6() {
			t.Errorf("%s: %+v, want off %d flags %b", c.name, tr, ip.HeaderLen(), c.flags)
		}
		if tr.HasL4() {
			if sp, dp, ok := tr.Ports(pkt); !ok || sp != 40000 || dp != 80 || tr.TCPFlags(pkt) != TCPFlagSYN|TCPFlagACK {
				t.Errorf("%s: ports %d %d %v flags %x", c.name, sp, dp, ok, tr.TCPFlags(pkt))
			}
		} else if tr.TCPFlags(pkt) != 0 {
			t.Errorf("%s: TCP flags read from a later fragment", c.name)
		}
	}
}

// FuzzLocate: whatever the bytes, a validated packet's transport location
// stays inside it, and the accessors never read past it.
func FuzzLocate(f *testing.F) {
	f.Add(ext6(&testing.T{}, 0, opts(60), opts(ProtoUDP)))
	f.Add(ext6(&testing.T{}, 44, frag(ProtoUDP, 0, true)))
	f.Add(ext6(&testing.T{}, 44, frag(60, 185, true), opts(ProtoUDP)))
	f.Add(ext6(&testing.T{}, 0, opts(44), frag(60, 0, true), opts(ProtoUDP)))
	f.Add([]byte{0x45, 0, 0, 28, 0, 0, 0x20, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2, 0, 8, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		var tr Transport
		switch b[0] >> 4 {
		case 4:
			ip := IPv4(b)
			if ip.Validate() != Valid {
				return
			}
			tr = LocateIPv4(ip[:ip.TotalLen()])
			b = b[:ip.TotalLen()]
		case 6:
			ip := IPv6(b)
			if ip.Validate() != Valid {
				return
			}
			b = b[:IPv6MinSize+int(ip.PayloadLen())]
			var fo int
			tr, fo = LocateIPv6Frag(IPv6(b))
			if tr.Fragment() != (fo != 0) || fo != 0 && (fo < IPv6MinSize || fo+8 > len(b)) {
				t.Fatalf("fragment header at %d of %d bytes, %+v", fo, len(b), tr)
			}
		default:
			return
		}
		if int(tr.End) != len(b) || (tr.HasL4() && int(tr.Off) > len(b)) {
			t.Fatalf("%+v outside a %d-byte packet", tr, len(b))
		}
		tr.Ports(b)
		tr.TCPFlags(b)
		tr.UDPPayload(b)
	})
}
