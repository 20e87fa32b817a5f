package header

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// nextHeaders gopacket decodes without looking into the payload (no
// extension headers: the view does not walk them).
var nextHeaders = []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP, layers.IPProtocolICMPv6,
	layers.IPProtocolNoNextHeader, 253, 254}

func randIPv6Layer(r *rand.Rand) *layers.IPv6 {
	return &layers.IPv6{Version: 6, TrafficClass: uint8(r.Uint32()), FlowLabel: r.Uint32() & 0xfffff,
		NextHeader: nextHeaders[r.IntN(len(nextHeaders))], HopLimit: uint8(r.Uint32()),
		SrcIP: net.IP(randBytes(r, 16)), DstIP: net.IP(randBytes(r, 16))}
}

func randIPv6(t testing.TB, r *rand.Rand) []byte {
	// gopacket reads a zero payload length as a jumbogram: at least 1 byte
	return mustSerialize(t, randIPv6Layer(r), gopacket.Payload(randBytes(r, 1+r.IntN(300))))
}

func decodeIPv6(t testing.TB, b []byte) *layers.IPv6 {
	t.Helper()
	var ip layers.IPv6
	if err := ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("gopacket: %v\n% x", err, b)
	}
	return &ip
}

func TestIPv6GettersMatchGopacket(t *testing.T) {
	r := newRand(20)
	for i := 0; i < 500; i++ {
		raw := randIPv6(t, r)
		want := decodeIPv6(t, raw)
		pkt := IPv6(append(raw, randBytes(r, r.IntN(2)*r.IntN(20))...)) // padding
		if v := pkt.Validate(); v != Valid {
			t.Fatalf("Validate = %v for a gopacket-built packet", v)
		}
		if pkt.PayloadLen() != want.Length || pkt.NextHeader() != uint8(want.NextHeader) ||
			pkt.HopLimit() != want.HopLimit || pkt.Src() != netip.AddrFrom16([16]byte(want.SrcIP)) ||
			pkt.Dst() != netip.AddrFrom16([16]byte(want.DstIP)) || !bytes.Equal(pkt.SrcBytes(), want.SrcIP) ||
			!bytes.Equal(pkt.DstBytes(), want.DstIP) || !bytes.Equal(pkt.Payload(), want.Payload) {
			t.Fatalf("getters disagree with gopacket %+v", want)
		}
		pkt.SetHopLimit(pkt.HopLimit() - 1)
		pkt.SetPayloadLen(pkt.PayloadLen() - 1)
		if got := decodeIPv6(t, pkt); got.HopLimit != want.HopLimit-1 || got.Length != want.Length-1 {
			t.Fatalf("SetHopLimit/SetPayloadLen: gopacket reads %d/%d", got.HopLimit, got.Length)
		}
	}
}

func TestIPv6Encode(t *testing.T) {
	r := newRand(21)
	for i := 0; i < 300; i++ {
		f := IPv6Fields{TrafficClass: uint8(r.Uint32()), FlowLabel: r.Uint32(), PayloadLen: 1 + uint16(r.IntN(200)),
			NextHeader: uint8(nextHeaders[r.IntN(len(nextHeaders))]), HopLimit: uint8(r.Uint32()),
			Src: randAddr6(r), Dst: randAddr6(r)}
		pkt := IPv6(randBytes(r, IPv6MinSize+int(f.PayloadLen)))
		pkt.Encode(&f)
		if v := pkt.Validate(); v != Valid {
			t.Fatalf("Validate = %v", v)
		}
		got := decodeIPv6(t, pkt)
		if got.Version != 6 || got.TrafficClass != f.TrafficClass || got.FlowLabel != f.FlowLabel&0xfffff ||
			got.Length != f.PayloadLen || uint8(got.NextHeader) != f.NextHeader || got.HopLimit != f.HopLimit ||
			netip.AddrFrom16([16]byte(got.SrcIP)) != f.Src || netip.AddrFrom16([16]byte(got.DstIP)) != f.Dst {
			t.Fatalf("Encode(%+v) decodes as %+v", f, got)
		}
		// and gopacket writes the same 40 bytes
		if want := mustSerializeNoFix(t, got); !bytes.Equal(want[:IPv6MinSize], pkt[:IPv6MinSize]) {
			t.Fatalf("header\n got  % x\n want % x", pkt[:IPv6MinSize], want[:IPv6MinSize])
		}
	}
}

func mustSerializeNoFix(t testing.TB, l gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := l.SerializeTo(buf, gopacket.SerializeOptions{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestIPv6Validate(t *testing.T) {
	r := newRand(22)
	good := randIPv6(t, r)
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	type tc struct {
		name string
		pkt  []byte
		want Verdict
	}
	cases := []tc{
		{"good", good, Valid},
		{"padding", append(append([]byte(nil), good...), 1, 2, 3), Valid},
		{"payload length 0", mut(func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[4:], 0)
			return b[:IPv6MinSize]
		}), Valid},
		{"payload length +1", mut(func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[4:], uint16(len(b)-IPv6MinSize+1))
			return b
		}), BadTotalLen},
		{"payload length max", mut(func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[4:], 0xffff)
			return b
		}), BadTotalLen},
	}
	for n := 0; n < len(good); n++ {
		want := TooShort
		if n >= IPv6MinSize {
			want = BadTotalLen
		}
		cases = append(cases, tc{fmt.Sprintf("truncated to %d", n), good[:n], want})
	}
	for v := 0; v < 16; v++ {
		if v != 6 {
			cases = append(cases, tc{fmt.Sprintf("version %d", v), mut(func(b []byte) []byte {
				b[0] = byte(v)<<4 | b[0]&0xf
				return b
			}), BadVersion})
		}
	}
	for _, c := range cases {
		if got := IPv6(c.pkt).Validate(); got != c.want {
			t.Errorf("%s: Validate = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSolicitedNodeMulticast(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"fd00:1::1", "ff02::1:ff00:1"},
		{"2001:db8::1:2:3", "ff02::1:ff02:3"},
		{"fe80::aabb:ccff:fedd:eeff", "ff02::1:ffdd:eeff"},
		{"::", "ff02::1:ff00:0"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ff02::1:ffff:ffff"},
	} {
		if got := SolicitedNodeMulticast(netip.MustParseAddr(c.in)); got != netip.MustParseAddr(c.want) {
			t.Errorf("SolicitedNodeMulticast(%s) = %s, want %s", c.in, got, c.want)
		}
	}
	r := newRand(23)
	for i := 0; i < 200; i++ {
		a := randAddr6(r)
		b := a.As16()
		want := netip.MustParseAddr(fmt.Sprintf("ff02::1:ff%02x:%02x%02x", b[13], b[14], b[15]))
		got := SolicitedNodeMulticast(a)
		if got != want || !got.IsLinkLocalMulticast() {
			t.Fatalf("SolicitedNodeMulticast(%s) = %s, want %s", a, got, want)
		}
	}
}

func TestMulticastMAC(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"ff02::1", "33:33:00:00:00:01"},
		{"ff02::1:ff00:1", "33:33:ff:00:00:01"},
		{"ff05::1:3", "33:33:00:01:00:03"},
		{"ff02::1:ffab:cdef", "33:33:ff:ab:cd:ef"},
	} {
		m := MulticastMAC(netip.MustParseAddr(c.in))
		if m.String() != c.want || !m.IsMulticast() {
			t.Errorf("MulticastMAC(%s) = %s, want %s", c.in, m, c.want)
		}
	}
}

func FuzzIPv6(f *testing.F) {
	r := newRand(24)
	for i := 0; i < 6; i++ {
		p := randIPv6(f, r)
		f.Add(p)
		f.Add(p[:len(p)/2])
	}
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		ip := IPv6(b)
		v := ip.Validate()
		if v != Valid && v != TooShort && v != BadVersion && v != BadTotalLen {
			t.Fatalf("verdict %v", v)
		}
		if v != Valid {
			return
		}
		if len(ip.Payload()) != int(ip.PayloadLen()) || IPv6MinSize+len(ip.Payload()) > len(b) {
			t.Fatalf("payload %d bytes, payload length %d, packet %d", len(ip.Payload()), ip.PayloadLen(), len(b))
		}
		if !ip.Src().Is6() || !ip.Dst().Is6() || len(ip.SrcBytes()) != 16 || len(ip.DstBytes()) != 16 {
			t.Fatal("addresses are not 16 bytes")
		}
		// Encode reproduces the fixed header from its fields.
		w := binary.BigEndian.Uint32(b)
		c := IPv6(make([]byte, IPv6MinSize))
		c.Encode(&IPv6Fields{TrafficClass: uint8(w >> 20), FlowLabel: w & 0xfffff, PayloadLen: ip.PayloadLen(),
			NextHeader: ip.NextHeader(), HopLimit: ip.HopLimit(), Src: ip.Src(), Dst: ip.Dst()})
		if !bytes.Equal(c, b[:IPv6MinSize]) {
			t.Fatalf("re-encoded\n % x\nfrom\n % x", []byte(c), b[:IPv6MinSize])
		}
	})
}
