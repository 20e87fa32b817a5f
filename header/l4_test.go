package header

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// randTCPLayer is a TCP header with random fields and well-formed options.
func randTCPLayer(r *rand.Rand) *layers.TCP {
	t := &layers.TCP{SrcPort: layers.TCPPort(r.Uint32()), DstPort: layers.TCPPort(r.Uint32()),
		Seq: r.Uint32(), Ack: r.Uint32(), Window: uint16(r.Uint32()), Urgent: uint16(r.Uint32())}
	fl := r.Uint32()
	t.FIN, t.SYN, t.RST, t.PSH = fl&1 != 0, fl&2 != 0, fl&4 != 0, fl&8 != 0
	t.ACK, t.URG, t.ECE, t.CWR = fl&16 != 0, fl&32 != 0, fl&64 != 0, fl&128 != 0
	all := []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: randBytes(r, 2)},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: randBytes(r, 1)},
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: randBytes(r, 8)},
	}
	for _, o := range all {
		if r.IntN(2) == 0 {
			t.Options = append(t.Options, o)
		}
	}
	return t
}

// randL4 returns a random TCP or UDP segment in an IPv4 or IPv6 packet,
// serialised by gopacket, and the offset of the segment.
func randL4(t testing.TB, r *rand.Rand, proto uint8, v6 bool) (pkt []byte, l4 int) {
	var nl gopacket.SerializableLayer
	var netl gopacket.NetworkLayer
	if v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocol(proto),
			SrcIP: net.IP(randBytes(r, 16)), DstIP: net.IP(randBytes(r, 16))}
		nl, netl, l4 = ip, ip, IPv6MinSize
	} else {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocol(proto),
			SrcIP: net.IP(randBytes(r, 4)), DstIP: net.IP(randBytes(r, 4))}
		nl, netl, l4 = ip, ip, IPv4MinSize
	}
	payload := gopacket.Payload(randData(r, r.IntN(1400)))
	if proto == ProtoTCP {
		tcp := randTCPLayer(r)
		tcp.SetNetworkLayerForChecksum(netl)
		return mustSerialize(t, nl, tcp, payload), l4
	}
	udp := &layers.UDP{SrcPort: layers.UDPPort(r.Uint32()), DstPort: layers.UDPPort(r.Uint32())}
	udp.SetNetworkLayerForChecksum(netl)
	return mustSerialize(t, nl, udp, payload), l4
}

func addrBytes(pkt []byte, v6 bool) (src, dst []byte) {
	if v6 {
		return pkt[8:24], pkt[24:40]
	}
	return pkt[12:16], pkt[16:20]
}

func TestTCPGettersAndChecksum(t *testing.T) {
	r := newRand(30)
	for i := 0; i < 400; i++ {
		v6 := i%2 == 1
		pkt, off := randL4(t, r, ProtoTCP, v6)
		first := layers.LayerTypeIPv4
		if v6 {
			first = layers.LayerTypeIPv6
		}
		p := gopacket.NewPacket(pkt, first, gopacket.Default)
		want, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok {
			t.Fatalf("gopacket: no TCP layer: %v", p)
		}
		seg := TCP(pkt[off:])
		if !seg.IsValid() {
			t.Fatalf("IsValid false for a gopacket-built segment")
		}
		var flags uint8
		for i, set := range []bool{want.FIN, want.SYN, want.RST, want.PSH, want.ACK, want.URG, want.ECE, want.CWR} {
			if set {
				flags |= 1 << i
			}
		}
		if seg.SrcPort() != uint16(want.SrcPort) || seg.DstPort() != uint16(want.DstPort) || seg.Seq() != want.Seq ||
			seg.Ack() != want.Ack || seg.DataOffset() != int(want.DataOffset)*4 || seg.Flags() != flags ||
			seg.Window() != want.Window || seg.Checksum() != want.Checksum {
			t.Fatalf("getters disagree with gopacket %+v", want)
		}
		src, dst := addrBytes(pkt, v6)
		// gopacket does not remap 0 for TCP: the values must be identical.
		if got := TransportChecksum(ProtoTCP, src, dst, seg, 16); got != want.Checksum {
			t.Fatalf("TransportChecksum = %#04x, gopacket %#04x", got, want.Checksum)
		}
		// NAT-style port rewrite with incremental updates.
		np := uint16(r.Uint32())
		old := binary.BigEndian.Uint16(seg[0:])
		seg.SetSrcPort(np)
		seg.SetChecksum(ChecksumUpdate16(seg.Checksum(), old, np))
		old = binary.BigEndian.Uint16(seg[2:])
		seg.SetDstPort(^np)
		seg.SetChecksum(ChecksumUpdate16(seg.Checksum(), old, ^np))
		if seg.SrcPort() != np || seg.DstPort() != ^np {
			t.Fatalf("ports %d %d after setting %d %d", seg.SrcPort(), seg.DstPort(), np, ^np)
		}
		verifyL4(t, pkt, first)
		if got := TransportChecksum(ProtoTCP, src, dst, seg, 16); !onesEqual(got, seg.Checksum()) {
			t.Fatalf("after rewrite: TransportChecksum %#04x, field %#04x", got, seg.Checksum())
		}
	}
}

func TestTCPIsValid(t *testing.T) {
	seg := make([]byte, 40)
	for _, c := range []struct {
		n, off int
		want   bool
	}{
		{19, 5, false}, {20, 5, true}, {20, 4, false}, {20, 0, false}, {20, 6, false},
		{24, 6, true}, {40, 10, true}, {40, 11, false}, {40, 15, false},
	} {
		seg[12] = byte(c.off << 4)
		if got := TCP(seg[:c.n]).IsValid(); got != c.want {
			t.Errorf("%d bytes, data offset %d: IsValid = %v, want %v", c.n, c.off, got, c.want)
		}
	}
}

func TestUDPGettersAndChecksum(t *testing.T) {
	r := newRand(31)
	for i := 0; i < 400; i++ {
		v6 := i%2 == 1
		pkt, off := randL4(t, r, ProtoUDP, v6)
		first := layers.LayerTypeIPv4
		if v6 {
			first = layers.LayerTypeIPv6
		}
		p := gopacket.NewPacket(pkt, first, gopacket.Default)
		want, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok {
			t.Fatalf("gopacket: no UDP layer: %v", p)
		}
		u := UDP(pkt[off:])
		if u.SrcPort() != uint16(want.SrcPort) || u.DstPort() != uint16(want.DstPort) ||
			u.Length() != want.Length || int(u.Length()) != len(u) || u.Checksum() != want.Checksum {
			t.Fatalf("getters disagree with gopacket %+v", want)
		}
		src, dst := addrBytes(pkt, v6)
		// gopacket sends a computed 0 as 0xffff (RFC 768); TransportChecksum
		// returns the raw value and leaves that to the caller.
		if got := TransportChecksum(ProtoUDP, src, dst, u, 6); got != want.Checksum && !(got == 0 && want.Checksum == 0xffff) {
			t.Fatalf("TransportChecksum = %#04x, gopacket %#04x", got, want.Checksum)
		}
		np := uint16(r.Uint32())
		old := u.SrcPort()
		u.SetSrcPort(np)
		c := ChecksumUpdate16(u.Checksum(), old, np)
		old = u.DstPort()
		u.SetDstPort(np + 1)
		c = ChecksumUpdate16(c, old, np+1)
		if c == 0 {
			c = 0xffff
		}
		u.SetChecksum(c)
		verifyL4(t, pkt, first)
	}
	u := UDP(make([]byte, UDPSize))
	u.SetLength(0x1234)
	if u.Length() != 0x1234 {
		t.Errorf("SetLength: %#x", u.Length())
	}
}

func TestL4Allocs(t *testing.T) {
	pkt, off := randL4(t, newRand(32), ProtoTCP, false)
	src, dst := addrBytes(pkt, false)
	if n := testing.AllocsPerRun(100, func() {
		seg := TCP(pkt[off:])
		_ = seg.IsValid()
		_ = TransportChecksum(ProtoTCP, src, dst, seg, 16)
	}); n != 0 {
		t.Errorf("%v allocations per run", n)
	}
}

func BenchmarkTransportChecksum(b *testing.B) {
	pkt, off := randL4(b, newRand(33), ProtoTCP, false)
	src, dst := addrBytes(pkt, false)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt) - off))
	for b.Loop() {
		_ = TransportChecksum(ProtoTCP, src, dst, pkt[off:], 16)
	}
}
