package header

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestICMPv4MatchesGopacket(t *testing.T) {
	r := newRand(60)
	for i := 0; i < 300; i++ {
		id, seq := uint16(r.Uint32()), uint16(r.Uint32())
		raw := mustSerialize(t, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: id, Seq: seq},
			gopacket.Payload(randData(r, r.IntN(1000))))
		m := ICMPv4(raw)
		var want layers.ICMPv4
		if err := want.DecodeFromBytes(raw, gopacket.NilDecodeFeedback); err != nil {
			t.Fatal(err)
		}
		if m.Type() != ICMPv4EchoRequest || m.Code() != 0 || m.Ident() != id || m.Seq() != seq || m.Checksum() != want.Checksum {
			t.Fatalf("getters: type %d code %d id %d seq %d cksum %#04x, gopacket %+v", m.Type(), m.Code(), m.Ident(), m.Seq(), m.Checksum(), want)
		}
		if !m.ChecksumValid() {
			t.Fatal("ChecksumValid false for a gopacket-built message")
		}
		m.SetType(ICMPv4EchoReply)
		if err := want.DecodeFromBytes(raw, gopacket.NilDecodeFeedback); err != nil {
			t.Fatal(err)
		}
		if err, res := want.VerifyChecksum(); err != nil || !res.Valid || want.TypeCode.Type() != layers.ICMPv4TypeEchoReply {
			t.Fatalf("after SetType: gopacket %v checksum %#04x, correct %#04x", want.TypeCode, res.Actual, res.Correct)
		}
		if !m.ChecksumValid() {
			t.Fatal("ChecksumValid false after SetType")
		}
		// any single bit flip is detected
		j := r.IntN(len(m))
		m[j] ^= 1 << r.IntN(8)
		if m.ChecksumValid() {
			t.Fatalf("ChecksumValid true with byte %d flipped", j)
		}
	}
}

func TestICMPv6ChecksumMatchesGopacket(t *testing.T) {
	r := newRand(61)
	for i := 0; i < 400; i++ {
		src, dst := randAddr6(r), randAddr6(r)
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		// types with a body gopacket decodes as plain payload, and echo
		typ := []uint8{1, 2, 3, 4, 128, 129, 200}[r.IntN(7)]
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, uint8(r.Uint32()))}
		ic.SetNetworkLayerForChecksum(ip)
		pkt := mustSerialize(t, ip, ic, gopacket.Payload(randData(r, 4+r.IntN(1200))))
		m := ICMPv6(pkt[IPv6MinSize:])
		if m.Type() != typ || m.Code() != ic.TypeCode.Code() {
			t.Fatalf("type %d code %d, want %v", m.Type(), m.Code(), ic.TypeCode)
		}
		if got := ICMPv6Checksum(m, src, dst); got != m.Checksum() {
			t.Fatalf("ICMPv6Checksum = %#04x, gopacket %#04x", got, m.Checksum())
		}
		if !ICMPv6ChecksumValid(m, src, dst) {
			t.Fatal("ICMPv6ChecksumValid false for a gopacket-built message")
		}
		if ICMPv6ChecksumValid(m, dst, randAddr6(r)) {
			t.Fatal("valid for another pseudo-header")
		}
		nt := map[uint8]uint8{128: 129, 129: 128}[typ] // as echo reply does
		if nt == 0 {
			nt = 201 // unassigned: gopacket keeps the body as payload
		}
		m.SetType(nt)
		verifyL4(t, pkt, layers.LayerTypeIPv6)
		if !ICMPv6ChecksumValid(m, src, dst) {
			t.Fatal("ICMPv6ChecksumValid false after SetType")
		}
		m.SetChecksum(m.Checksum() + 1)
		if ICMPv6ChecksumValid(m, src, dst) {
			t.Fatal("valid with a wrong checksum")
		}
	}
	a := netip.MustParseAddr("fe80::1")
	for n := 0; n < 4; n++ {
		if ICMPv6ChecksumValid(make([]byte, n), a, a) {
			t.Errorf("%d-byte message valid", n)
		}
	}
}

var naFlagSets = []uint32{0, NAFlagRouter, NAFlagSolicited, NAFlagOverride, NAFlagSolicited | NAFlagOverride,
	NAFlagRouter | NAFlagSolicited | NAFlagOverride, NAFlagRouter | NAFlagOverride}

// ndPacket writes an IPv6 header and an NA or NS built by the view, with
// its checksum, and returns the packet.
func ndPacket(src, dst, target netip.Addr, na bool, flags uint32, mac MAC) []byte {
	size := NDPNeighborSolicitSize
	if na {
		size = NDPNeighborAdvertSize
	}
	pkt := make([]byte, IPv6MinSize+size)
	for i := range pkt {
		pkt[i] = 0xa5 // the encoders must write every byte
	}
	ip := IPv6(pkt)
	ip.Encode(&IPv6Fields{PayloadLen: uint16(size), NextHeader: ProtoICMPv6, HopLimit: 255, Src: src, Dst: dst})
	nd := NDP(ip.Payload())
	if na {
		nd.EncodeNA(target, flags, mac)
	} else {
		nd.EncodeNS(target, mac)
	}
	ICMPv6(nd).SetChecksum(ICMPv6Checksum(nd, src, dst))
	return pkt
}

// reserialize has gopacket write the decoded layers again with checksums
// computed; the bytes must be the ones it decoded.
func reserialize(t testing.TB, p gopacket.Packet) []byte {
	t.Helper()
	var ls []gopacket.SerializableLayer
	for _, l := range p.Layers() {
		if c, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok {
			c.SetNetworkLayerForChecksum(p.NetworkLayer())
		}
		s, ok := l.(gopacket.SerializableLayer)
		if !ok {
			t.Fatalf("layer %s does not serialise", l.LayerType())
		}
		ls = append(ls, s)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestEncodeNA(t *testing.T) {
	r := newRand(62)
	for i := 0; i < 200; i++ {
		src, dst := randAddr6(r), randAddr6(r)
		target, mac := randAddr6(r), MAC(randBytes(r, 6))
		flags := naFlagSets[r.IntN(len(naFlagSets))]
		pkt := ndPacket(src, dst, target, true, flags, mac)
		p := gopacket.NewPacket(pkt, layers.LayerTypeIPv6, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("gopacket: %v", el.Error())
		}
		na, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
		if !ok {
			t.Fatalf("not an NA: %v", p)
		}
		if !bytes.Equal(reserialize(t, p), pkt) {
			t.Fatalf("gopacket computes another checksum:\n got  % x\n want % x", pkt, reserialize(t, p))
		}
		verifyL4(t, pkt, layers.LayerTypeIPv6)
		if !na.TargetAddress.Equal(target.AsSlice()) || na.Router() != (flags&NAFlagRouter != 0) ||
			na.Solicited() != (flags&NAFlagSolicited != 0) || na.Override() != (flags&NAFlagOverride != 0) {
			t.Fatalf("NA %+v, want target %s flags %#x", na, target, flags)
		}
		if len(na.Options) != 1 || na.Options[0].Type != layers.ICMPv6OptTargetAddress || !bytes.Equal(na.Options[0].Data, mac[:]) {
			t.Fatalf("options %+v", na.Options)
		}
		nd := NDP(pkt[IPv6MinSize:])
		if !nd.IsValid() || nd.Target() != target || nd.Flags() != flags {
			t.Fatalf("view: target %s flags %#x", nd.Target(), nd.Flags())
		}
		if m, ok := nd.LinkAddrOption(NDPOptTargetLinkAddr); !ok || m != mac {
			t.Fatalf("LinkAddrOption(target) = %s %v", m, ok)
		}
		if _, ok := nd.LinkAddrOption(NDPOptSourceLinkAddr); ok {
			t.Fatal("NA has a source link-layer option")
		}
	}
}

func TestEncodeNS(t *testing.T) {
	r := newRand(63)
	for i := 0; i < 200; i++ {
		src, target, mac := randAddr6(r), randAddr6(r), MAC(randBytes(r, 6))
		dst := SolicitedNodeMulticast(target)
		pkt := ndPacket(src, dst, target, false, 0, mac)
		p := gopacket.NewPacket(pkt, layers.LayerTypeIPv6, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("gopacket: %v", el.Error())
		}
		ns, ok := p.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation)
		if !ok {
			t.Fatalf("not an NS: %v", p)
		}
		if !bytes.Equal(reserialize(t, p), pkt) {
			t.Fatalf("gopacket computes another checksum:\n got  % x\n want % x", pkt, reserialize(t, p))
		}
		verifyL4(t, pkt, layers.LayerTypeIPv6)
		if !ns.TargetAddress.Equal(target.AsSlice()) || len(ns.Options) != 1 ||
			ns.Options[0].Type != layers.ICMPv6OptSourceAddress || !bytes.Equal(ns.Options[0].Data, mac[:]) {
			t.Fatalf("NS %+v", ns)
		}
		if binary.BigEndian.Uint32(pkt[IPv6MinSize+4:]) != 0 {
			t.Fatal("NS reserved field not zero")
		}
		if m, ok := NDP(pkt[IPv6MinSize:]).LinkAddrOption(NDPOptSourceLinkAddr); !ok || m != mac {
			t.Fatalf("LinkAddrOption(source) = %s %v", m, ok)
		}
	}
}

// ndpWith is an NS for fd00::1 followed by the given option bytes.
func ndpWith(opts ...[]byte) NDP {
	n := make([]byte, ndpNSNAFixedSize)
	n[0] = ICMPv6NeighborSolicit
	t := netip.MustParseAddr("fd00::1").As16()
	copy(n[8:], t[:])
	for _, o := range opts {
		n = append(n, o...)
	}
	return n
}

// opt is an option of type typ, length l (8-octet units), data d padded
// to the length.
func opt(typ, l uint8, d ...byte) []byte {
	o := make([]byte, int(l)*8)
	if l == 0 {
		o = make([]byte, 8)
	}
	o[0], o[1] = typ, l
	copy(o[2:], d)
	return o
}

func TestLinkAddrOption(t *testing.T) {
	m1 := []byte{0x02, 0, 0, 0, 0, 0x01}
	m2 := []byte{0x02, 0, 0, 0, 0, 0x02}
	nonce := opt(14, 1, 1, 2, 3, 4, 5, 6)
	prefix := opt(3, 4, 64, 0xc0)
	type want struct {
		src, dst []byte // nil: not found
	}
	for _, c := range []struct {
		name string
		n    NDP
		want want
	}{
		{"no options", ndpWith(), want{}},
		{"source", ndpWith(opt(1, 1, m1...)), want{m1, nil}},
		{"target", ndpWith(opt(2, 1, m2...)), want{nil, m2}},
		{"target then source", ndpWith(opt(2, 1, m2...), opt(1, 1, m1...)), want{m1, m2}},
		{"after a nonce", ndpWith(nonce, opt(1, 1, m1...)), want{m1, nil}},
		{"after a prefix option", ndpWith(prefix, opt(2, 1, m2...)), want{nil, m2}},
		{"first of two", ndpWith(opt(1, 1, m1...), opt(1, 1, m2...)), want{m1, nil}},
		{"16-byte option", ndpWith(opt(1, 2, m2...)), want{m2, nil}},
		{"zero length stops", ndpWith(opt(14, 0), opt(1, 1, m1...)), want{}},
		{"zero length of the type", ndpWith(opt(1, 0, m1...)), want{}},
		{"found before zero length", ndpWith(opt(1, 1, m1...), opt(14, 0), opt(2, 1, m2...)), want{m1, nil}},
		{"length past the end", ndpWith(opt(1, 2, m1...)[:8]), want{}},
		{"length past the end stops", ndpWith(opt(14, 3)[:16], opt(2, 1, m2...)), want{}},
		{"truncated option", ndpWith(opt(1, 1, m1...)[:7]), want{}},
		{"trailing bytes", ndpWith(opt(1, 1, m1...), []byte{2, 1, 0, 0}), want{m1, nil}},
		{"huge length", ndpWith(opt(2, 255, m2...)[:24]), want{}},
	} {
		if !c.n.IsValid() {
			t.Fatalf("%s: not valid", c.name)
		}
		for _, q := range []struct {
			typ  uint8
			want []byte
		}{{NDPOptSourceLinkAddr, c.want.src}, {NDPOptTargetLinkAddr, c.want.dst}} {
			m, ok := c.n.LinkAddrOption(q.typ)
			if ok != (q.want != nil) || ok && !bytes.Equal(m[:], q.want) {
				t.Errorf("%s: LinkAddrOption(%d) = %s %v, want %x", c.name, q.typ, m, ok, q.want)
			}
		}
	}
	if (NDP(make([]byte, ndpNSNAFixedSize-1))).IsValid() {
		t.Error("23 bytes valid")
	}
}

// TestLinkAddrOptionMatchesGopacket compares with gopacket's option parser on
// random well-formed option lists.
func TestLinkAddrOptionMatchesGopacket(t *testing.T) {
	r := newRand(64)
	for i := 0; i < 500; i++ {
		var opts [][]byte
		for j := r.IntN(5); j > 0; j-- {
			l := uint8(1 + r.IntN(3))
			opts = append(opts, opt(uint8(1+r.IntN(4)), l, randBytes(r, int(l)*8-2)...))
		}
		n := ndpWith(opts...)
		var want layers.ICMPv6Options
		if err := want.DecodeFromBytes(n[ndpNSNAFixedSize:], gopacket.NilDecodeFeedback); err != nil {
			t.Fatal(err)
		}
		for _, typ := range []uint8{1, 2, 3} {
			var wm []byte
			for _, o := range want {
				if uint8(o.Type) == typ {
					wm = o.Data[:6]
					break
				}
			}
			m, ok := n.LinkAddrOption(typ)
			if ok != (wm != nil) || ok && !bytes.Equal(m[:], wm) {
				t.Fatalf("options %v: LinkAddrOption(%d) = %s %v, gopacket %x", want, typ, m, ok, wm)
			}
		}
	}
}

// refLinkAddr is the documented LinkAddrOption by index arithmetic.
func refLinkAddr(n []byte, typ uint8) (MAC, bool) {
	for i := ndpNSNAFixedSize; i+8 <= len(n); {
		l := int(n[i+1]) * 8
		if l == 0 || i+l > len(n) {
			break
		}
		if n[i] == typ {
			return MAC(n[i+2 : i+8]), true
		}
		i += l
	}
	return MAC{}, false
}

func FuzzNDP(f *testing.F) {
	r := newRand(65)
	for _, na := range []bool{true, false} {
		p := ndPacket(randAddr6(r), randAddr6(r), randAddr6(r), na, NAFlagSolicited, MAC(randBytes(r, 6)))
		f.Add(p[IPv6MinSize:])
	}
	f.Add([]byte(ndpWith(opt(2, 1, 1, 2, 3, 4, 5, 6), opt(1, 1, 6, 5, 4, 3, 2, 1))))
	f.Add([]byte(ndpWith(opt(14, 0), opt(1, 1))))
	f.Add([]byte(ndpWith(opt(1, 3)[:10])))
	f.Add(make([]byte, 23))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := NDP(b)
		if !n.IsValid() {
			return
		}
		_, _ = n.Target(), n.Flags()
		for _, typ := range []uint8{NDPOptSourceLinkAddr, NDPOptTargetLinkAddr, b[0]} {
			m, ok := n.LinkAddrOption(typ)
			wm, wok := refLinkAddr(b, typ)
			if m != wm || ok != wok {
				t.Fatalf("LinkAddrOption(%d) = %s %v, reference %s %v", typ, m, ok, wm, wok)
			}
		}
	})
}
