package header

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var serializeOpts = gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}

func mustSerialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, serializeOpts, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// randIPv4Options returns up to 40 bytes of options: NOPs and options of
// random type and length; gopacket pads them with End of Option List.
func randIPv4Options(r *rand.Rand) []layers.IPv4Option {
	var opts []layers.IPv4Option
	room := 40
	for room > 0 && r.IntN(4) != 0 {
		if r.IntN(3) == 0 {
			opts = append(opts, layers.IPv4Option{OptionType: 1})
			room--
			continue
		}
		if room < 2 {
			break
		}
		l := 2 + r.IntN(room-1)
		opts = append(opts, layers.IPv4Option{OptionType: byte(2 + r.IntN(254)), OptionLength: byte(l),
			OptionData: randBytes(r, l-2)})
		room -= l
	}
	return opts
}

// randIPv4Layer is an IPv4 header with every field random.
func randIPv4Layer(r *rand.Rand, proto layers.IPProtocol) *layers.IPv4 {
	ip := &layers.IPv4{Version: 4, TOS: uint8(r.Uint32()), Id: uint16(r.Uint32()), TTL: uint8(r.Uint32()),
		Flags: layers.IPv4Flag(r.IntN(8)), Protocol: proto,
		SrcIP: net.IP(randBytes(r, 4)), DstIP: net.IP(randBytes(r, 4))}
	if r.IntN(4) == 0 {
		ip.FragOffset = uint16(r.IntN(1 << 13))
	}
	if r.IntN(2) == 0 {
		ip.Options = randIPv4Options(r)
	}
	return ip
}

// randIPv4 serialises a random IPv4 packet with a random payload.
func randIPv4(t testing.TB, r *rand.Rand) []byte {
	return mustSerialize(t, randIPv4Layer(r, layers.IPProtocol(r.Uint32())), gopacket.Payload(randBytes(r, r.IntN(200))))
}

func decodeIPv4(t testing.TB, b []byte) *layers.IPv4 {
	t.Helper()
	var ip layers.IPv4
	if err := ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("gopacket: %v\n% x", err, b)
	}
	return &ip
}

func TestIPv4GettersMatchGopacket(t *testing.T) {
	r := newRand(10)
	for i := 0; i < 500; i++ {
		raw := randIPv4(t, r)
		want := decodeIPv4(t, raw)
		// Ethernet padding after Total Length is allowed and not payload.
		pkt := IPv4(append(raw, randBytes(r, r.IntN(3)*r.IntN(20))...))
		if v := pkt.Validate(); v != Valid {
			t.Fatalf("Validate = %v for a gopacket-built packet\n% x", v, raw)
		}
		flagsFrag := uint16(want.Flags)<<13 | want.FragOffset
		for _, c := range []struct {
			name      string
			got, want any
		}{
			{"HeaderLen", pkt.HeaderLen(), int(want.IHL) * 4},
			{"TOS", pkt.TOS(), want.TOS},
			{"TotalLen", pkt.TotalLen(), want.Length},
			{"ID", pkt.ID(), want.Id},
			{"TTL", pkt.TTL(), want.TTL},
			{"Protocol", pkt.Protocol(), uint8(want.Protocol)},
			{"Checksum", pkt.Checksum(), want.Checksum},
			{"Src", pkt.Src(), netip.AddrFrom4([4]byte(want.SrcIP))},
			{"Dst", pkt.Dst(), netip.AddrFrom4([4]byte(want.DstIP))},
			{"FlagsFrag", pkt.FlagsFrag(), flagsFrag},
			{"IsFragment", pkt.IsFragment(), want.Flags&layers.IPv4MoreFragments != 0 || want.FragOffset != 0},
			{"DontFragment", pkt.DontFragment(), want.Flags&layers.IPv4DontFragment != 0},
		} {
			if c.got != c.want {
				t.Fatalf("%s = %v, gopacket %v\n% x", c.name, c.got, c.want, raw)
			}
		}
		if !bytes.Equal(pkt.SrcBytes(), want.SrcIP) || !bytes.Equal(pkt.DstBytes(), want.DstIP) {
			t.Fatalf("SrcBytes/DstBytes %x %x, gopacket %x %x", pkt.SrcBytes(), pkt.DstBytes(), want.SrcIP, want.DstIP)
		}
		if !bytes.Equal(pkt.Payload(), want.Payload) {
			t.Fatalf("Payload %x, gopacket %x", pkt.Payload(), want.Payload)
		}
	}
}

func TestIPv4Encode(t *testing.T) {
	r := newRand(11)
	for i := 0; i < 200; i++ {
		f := IPv4Fields{TOS: uint8(r.Uint32()), TotalLen: 20 + uint16(r.IntN(100)), ID: uint16(r.Uint32()),
			Flags: uint16(r.Uint32()), TTL: uint8(r.Uint32()), Protocol: uint8(r.Uint32()), Src: randAddr4(r), Dst: randAddr4(r)}
		pkt := IPv4(randBytes(r, int(f.TotalLen)))
		pkt.Encode(&f)
		if v := pkt.Validate(); v != Valid {
			t.Fatalf("Validate = %v", v)
		}
		got := decodeIPv4(t, pkt)
		if got.IHL != 5 || got.TOS != f.TOS || got.Length != f.TotalLen || got.Id != f.ID ||
			uint16(got.Flags)<<13|got.FragOffset != f.Flags || got.TTL != f.TTL || uint8(got.Protocol) != f.Protocol ||
			netip.AddrFrom4([4]byte(got.SrcIP)) != f.Src || netip.AddrFrom4([4]byte(got.DstIP)) != f.Dst {
			t.Fatalf("Encode(%+v) decodes as %+v", f, got)
		}
		verifyIPv4Checksum(t, pkt)
		// SwapAddrs keeps the checksum: the sum does not depend on order.
		pkt.SwapAddrs()
		if pkt.Src() != f.Dst || pkt.Dst() != f.Src {
			t.Fatalf("SwapAddrs: %s -> %s", pkt.Src(), pkt.Dst())
		}
		verifyIPv4Checksum(t, pkt)
	}
}

// verifyIPv4Checksum checks the header checksum with gopacket and against
// gopacket recomputing it: they must be the same value, not only the same
// number in one's complement.
func verifyIPv4Checksum(t testing.TB, pkt IPv4) {
	t.Helper()
	ip := decodeIPv4(t, pkt)
	if err, res := ip.VerifyChecksum(); err != nil || !res.Valid {
		t.Fatalf("gopacket: header checksum %#04x invalid (correct %#04x, %v)", pkt.Checksum(), res.Correct, err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := ip.SerializeTo(buf, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
		t.Fatal(err)
	}
	if want := binary.BigEndian.Uint16(buf.Bytes()[10:]); want != pkt.Checksum() {
		t.Fatalf("header checksum %#04x, gopacket computes %#04x", pkt.Checksum(), want)
	}
	if Checksum(pkt[:pkt.HeaderLen()], 0) != 0xffff {
		t.Fatalf("header checksum %#04x does not verify", pkt.Checksum())
	}
}

// fixChecksum recomputes the header checksum of a packet a test broke on
// purpose, so that the defect under test is the only one.
func fixChecksum(b []byte) {
	hl := int(b[0]&0xf) * 4
	if hl < IPv4MinSize || hl > len(b) {
		return
	}
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], ^refChecksum(b[:hl], 0))
}

func TestIPv4Validate(t *testing.T) {
	r := newRand(12)
	ip := randIPv4Layer(r, layers.IPProtocolUDP)
	ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 7, OptionLength: 7, OptionData: randBytes(r, 5)}}
	good := mustSerialize(t, ip, gopacket.Payload(randBytes(r, 30)))
	hl, tl := int(good[0]&0xf)*4, len(good)
	if hl != 28 {
		t.Fatalf("setup: header length %d", hl)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	type tc struct {
		name string
		pkt  []byte
		want Verdict
	}
	cases := []tc{
		{"good", good, Valid},
		{"padding", append(append([]byte(nil), good...), 0, 0, 0, 0), Valid},
		{"ihl 5 without options is fine", mut(func(b []byte) []byte {
			b[0] = 0x45
			fixChecksum(b)
			return b
		}), Valid},
	}
	for n := 0; n < len(good); n++ {
		want := TooShort
		switch {
		case n >= hl:
			want = BadTotalLen
		case n >= IPv4MinSize:
			want = BadHeaderLen
		}
		cases = append(cases, tc{"truncated to " + strconv.Itoa(n), good[:n], want})
	}
	for v := 0; v < 16; v++ {
		if v == 4 {
			continue
		}
		cases = append(cases, tc{"version " + strconv.Itoa(v), mut(func(b []byte) []byte {
			b[0] = byte(v)<<4 | b[0]&0xf
			fixChecksum(b)
			return b
		}), BadVersion})
		cases = append(cases, tc{"short beats version " + strconv.Itoa(v), mut(func(b []byte) []byte {
			b[0] = byte(v)<<4 | b[0]&0xf
			return b[:19]
		}), TooShort})
	}
	for ihl := 0; ihl < 5; ihl++ {
		cases = append(cases, tc{"ihl " + strconv.Itoa(ihl), mut(func(b []byte) []byte {
			b[0] = 0x40 | byte(ihl)
			return b
		}), BadHeaderLen})
	}
	cases = append(cases,
		tc{"ihl past the end", mut(func(b []byte) []byte {
			b[0] = 0x4f
			return b[:59]
		}), BadHeaderLen},
		tc{"ihl past total length", mut(func(b []byte) []byte {
			b = append(b, 0, 0, 0, 0) // 62 bytes; total length still 58
			b[0] = 0x4f
			fixChecksum(b)
			return b
		}), BadTotalLen},
	)
	for _, l := range []int{0, 1, IPv4MinSize, hl - 1, tl + 1, 0xffff} {
		cases = append(cases, tc{"total length " + strconv.Itoa(l), mut(func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[2:], uint16(l))
			fixChecksum(b)
			return b
		}), BadTotalLen})
	}
	cases = append(cases, tc{"total length = header length", mut(func(b []byte) []byte {
		binary.BigEndian.PutUint16(b[2:], uint16(hl))
		fixChecksum(b)
		return b
	}), Valid})
	// One's complement sums catch every single-bit error. Bytes 0 and 2-3
	// hold version, IHL and total length, tested above.
	for i := 1; i < hl; i++ {
		if i == 2 || i == 3 {
			continue
		}
		bit := byte(1) << r.IntN(8)
		cases = append(cases, tc{"bit flip in byte " + strconv.Itoa(i), mut(func(b []byte) []byte {
			b[i] ^= bit
			return b
		}), BadChecksum})
	}
	// A flipped payload bit is not the header's business.
	cases = append(cases, tc{"payload bit flip", mut(func(b []byte) []byte {
		b[len(b)-1] ^= 1
		return b
	}), Valid})
	for _, c := range cases {
		if got := IPv4(c.pkt).Validate(); got != c.want {
			t.Errorf("%s: Validate = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{Valid: "valid", TooShort: "too_short", BadVersion: "bad_version",
		BadHeaderLen: "bad_header_len", BadTotalLen: "bad_total_len", BadChecksum: "bad_checksum", 99: "unknown"} {
		if got := v.String(); got != want {
			t.Errorf("Verdict(%d) = %q, want %q", v, got, want)
		}
	}
}

// randL4IPv4 is a random TCP or UDP packet over IPv4, as gopacket builds it.
func randL4IPv4(t testing.TB, r *rand.Rand) []byte {
	if r.IntN(2) == 0 {
		ip := randIPv4Layer(r, layers.IPProtocolTCP)
		ip.Flags &^= layers.IPv4MoreFragments
		ip.FragOffset = 0
		tcp := randTCPLayer(r)
		tcp.SetNetworkLayerForChecksum(ip)
		return mustSerialize(t, ip, tcp, gopacket.Payload(randBytes(r, r.IntN(300))))
	}
	ip := randIPv4Layer(r, layers.IPProtocolUDP)
	ip.Flags &^= layers.IPv4MoreFragments
	ip.FragOffset = 0
	udp := &layers.UDP{SrcPort: layers.UDPPort(r.Uint32()), DstPort: layers.UDPPort(r.Uint32())}
	udp.SetNetworkLayerForChecksum(ip)
	return mustSerialize(t, ip, udp, gopacket.Payload(randBytes(r, r.IntN(300))))
}

// l4CksumOffset returns the offset of the TCP or UDP checksum field in pkt.
func l4CksumOffset(pkt IPv4) int {
	if pkt.Protocol() == ProtoTCP {
		return pkt.HeaderLen() + 16
	}
	return pkt.HeaderLen() + 6
}

// verifyL4 has gopacket verify the IP and transport checksums of an IPv4
// packet.
func verifyL4(t testing.TB, pkt []byte, first gopacket.LayerType) {
	t.Helper()
	p := gopacket.NewPacket(pkt, first, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	nl := p.NetworkLayer()
	for _, l := range p.Layers() {
		if c, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok {
			c.SetNetworkLayerForChecksum(nl)
		}
	}
	err, bad := p.VerifyChecksums()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range bad {
		t.Fatalf("gopacket: %s checksum %#04x, correct %#04x", m.Layer.LayerType(), m.Actual, m.Correct)
	}
	if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok && u.Checksum == 0 {
		t.Fatal("UDP checksum 0 (none) after an update")
	}
}

// TestIPv4RewriteKeepsChecksums rewrites addresses and TTL as forwarding and
// NAT do: the header checksum must stay valid by itself, and the TCP/UDP
// checksum when the caller applies the same pseudo-header change with
// ChecksumUpdate.
func TestIPv4RewriteKeepsChecksums(t *testing.T) {
	r := newRand(13)
	for i := 0; i < 500; i++ {
		pkt := IPv4(randL4IPv4(t, r))
		verifyL4(t, pkt, layers.LayerTypeIPv4)
		ck := l4CksumOffset(pkt)
		for op := 0; op < 1+r.IntN(4); op++ {
			switch r.IntN(3) {
			case 0:
				a := randAddr4(r)
				l4 := ChecksumUpdate(binary.BigEndian.Uint16(pkt[ck:]), pkt.SrcBytes(), a.AsSlice())
				pkt.SetSrc(a)
				if pkt.Src() != a {
					t.Fatalf("SetSrc(%s): Src = %s", a, pkt.Src())
				}
				putL4Cksum(pkt, ck, l4)
			case 1:
				a := randAddr4(r)
				l4 := ChecksumUpdate(binary.BigEndian.Uint16(pkt[ck:]), pkt.DstBytes(), a.AsSlice())
				pkt.SetDst(a)
				if pkt.Dst() != a {
					t.Fatalf("SetDst(%s): Dst = %s", a, pkt.Dst())
				}
				putL4Cksum(pkt, ck, l4)
			case 2:
				ttl := pkt.TTL()
				if ttl == 0 {
					continue // forwarding never decrements 0
				}
				pkt.DecTTL()
				if pkt.TTL() != ttl-1 {
					t.Fatalf("DecTTL: %d -> %d", ttl, pkt.TTL())
				}
			}
			if v := pkt.Validate(); v != Valid {
				t.Fatalf("after rewrite: %v", v)
			}
			verifyIPv4Checksum(t, pkt)
		}
		verifyL4(t, pkt, layers.LayerTypeIPv4)
	}
}

// putL4Cksum stores an updated transport checksum; for UDP a result of
// 0x0000 must be sent as 0xffff (RFC 768), 0 meaning "no checksum".
func putL4Cksum(pkt IPv4, off int, c uint16) {
	if pkt.Protocol() == ProtoUDP && c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[off:], c)
}

func TestIPv4DecTTLEdges(t *testing.T) {
	// TTL 1 with protocol 0xff: the word 0x01ff -> 0x00ff.
	for _, c := range []struct{ ttl, proto uint8 }{{1, 0xff}, {0xff, 0xff}, {2, 0}, {1, 0}, {0x80, 0x11}} {
		pkt := IPv4(make([]byte, 20))
		pkt.Encode(&IPv4Fields{TotalLen: 20, TTL: c.ttl, Protocol: c.proto,
			Src: netip.MustParseAddr("0.0.0.0"), Dst: netip.MustParseAddr("0.0.0.0")})
		pkt.DecTTL()
		if pkt.TTL() != c.ttl-1 || pkt.Validate() != Valid {
			t.Errorf("TTL %d proto %d: after DecTTL ttl %d verdict %v", c.ttl, c.proto, pkt.TTL(), pkt.Validate())
		}
		verifyIPv4Checksum(t, pkt)
	}
}

func TestIPv4Allocs(t *testing.T) {
	pkt := IPv4(randL4IPv4(t, newRand(14)))
	a := netip.MustParseAddr("192.0.2.1")
	if n := testing.AllocsPerRun(100, func() {
		_ = pkt.Validate()
		_, _ = pkt.Src(), pkt.Dst()
		pkt.SetSrc(a)
		pkt.SetDst(a)
		pkt.DecTTL()
	}); n != 0 {
		t.Errorf("%v allocations per run", n)
	}
}

func BenchmarkIPv4Validate(b *testing.B) {
	pkt := IPv4(randL4IPv4(b, newRand(15)))
	b.ReportAllocs()
	for b.Loop() {
		_ = pkt.Validate()
	}
}

// FuzzIPv4 checks that Validate is the only bounds check a packet needs:
// when it says valid, every accessor works and the lengths agree, and the
// incremental rewrites keep the packet valid.
func FuzzIPv4(f *testing.F) {
	r := newRand(16)
	for i := 0; i < 8; i++ {
		p := randIPv4(f, r)
		f.Add(p)
		f.Add(p[:len(p)/2])
	}
	f.Add(randL4IPv4(f, r))
	f.Add([]byte{0x45})
	f.Add(make([]byte, 20))
	f.Fuzz(func(t *testing.T, b []byte) {
		ip := IPv4(b)
		v := ip.Validate()
		if v.String() == "unknown" {
			t.Fatalf("verdict %d has no name", v)
		}
		if v != Valid {
			return
		}
		hl, tl := ip.HeaderLen(), int(ip.TotalLen())
		if hl < IPv4MinSize || hl > tl || tl > len(b) {
			t.Fatalf("valid with header length %d, total length %d, %d bytes", hl, tl, len(b))
		}
		if len(ip.Payload()) != tl-hl {
			t.Fatalf("payload %d bytes, want %d", len(ip.Payload()), tl-hl)
		}
		_, _, _, _, _ = ip.TOS(), ip.ID(), ip.TTL(), ip.Protocol(), ip.Checksum()
		_, _, _, _ = ip.IsFragment(), ip.DontFragment(), ip.FlagsFrag(), ip.Src().Is4()
		if !ip.Src().Is4() || !ip.Dst().Is4() || len(ip.SrcBytes()) != 4 || len(ip.DstBytes()) != 4 {
			t.Fatal("addresses are not 4 bytes")
		}
		c := IPv4(append([]byte(nil), b...))
		c.SetSrc(netip.AddrFrom4([4]byte{192, 0, 2, 1}))
		c.SetDst(netip.AddrFrom4([4]byte{198, 51, 100, 7}))
		if c.TTL() > 0 {
			c.DecTTL()
		}
		if v := c.Validate(); v != Valid {
			t.Fatalf("rewritten packet: %v", v)
		}
		c.SwapAddrs()
		if v := c.Validate(); v != Valid {
			t.Fatalf("swapped packet: %v", v)
		}
	})
}
