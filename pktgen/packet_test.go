package pktgen

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"net"
	"net/netip"
	"sort"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
)

var (
	macA = header.MAC{0x02, 0, 0, 0, 0, 0xa}
	macB = header.MAC{0x02, 0, 0, 0, 0, 0xb}
)

func testHdr() Hdr {
	return Hdr{SrcMAC: macA, DstMAC: macB, Src: [4]byte{172, 16, 3, 4}, Dst: [4]byte{10, 11, 0, 100},
		SrcPort: 40000, DstPort: 9000, TTL: 61, ID: 7}
}

// decodeVerified decodes an Ethernet frame with gopacket and checks the
// IPv4 header checksum and the TCP/UDP checksum from scratch.
func decodeVerified(t *testing.T, frame []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket cannot decode: %v", el.Error())
	}
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip == nil {
		return p
	}
	hdr := frame[EthLen : EthLen+int(ip.IHL)*4]
	if header.Checksum(hdr, 0) != 0xffff {
		t.Errorf("IPv4 header checksum %#04x does not verify", ip.Checksum)
	}
	if tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
		_ = tcp.SetNetworkLayerForChecksum(ip)
		if err, res := tcp.VerifyChecksum(); err != nil || !res.Valid {
			t.Errorf("TCP checksum %#04x does not verify (want %#04x)", res.Actual, res.Correct)
		}
	}
	if udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		_ = udp.SetNetworkLayerForChecksum(ip)
		if err, res := udp.VerifyChecksum(); err != nil || !res.Valid {
			t.Errorf("UDP checksum %#04x does not verify (want %#04x)", res.Actual, res.Correct)
		}
	}
	return p
}

func TestEncodeUDP(t *testing.T) {
	for _, wire := range []int{64, 65, 128, 512, 1518} {
		h := testHdr()
		st := Stamp{Kind: KindUDP, Sender: 3, Flow: 12345, Seq: 99, SentNs: 1234567890123}
		b := make([]byte, 2048)
		n := EncodeUDP(b, &h, UDPFrameLen(wire), &st)
		if n != wire-FCSLen {
			t.Fatalf("%d-byte frame: encoded %d bytes, want %d", wire, n, wire-FCSLen)
		}
		p := decodeVerified(t, b[:n])
		eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !bytes.Equal(eth.SrcMAC, macA[:]) || !bytes.Equal(eth.DstMAC, macB[:]) || eth.EthernetType != layers.EthernetTypeIPv4 {
			t.Errorf("ethernet %v", eth)
		}
		if !ip.SrcIP.Equal(net.IP{172, 16, 3, 4}) || !ip.DstIP.Equal(net.IP{10, 11, 0, 100}) || ip.TTL != 61 ||
			ip.Id != 7 || ip.Flags != layers.IPv4DontFragment || int(ip.Length) != n-EthLen {
			t.Errorf("ipv4 %+v", ip)
		}
		if udp.SrcPort != 40000 || udp.DstPort != 9000 || int(udp.Length) != n-EthLen-IPv4Len {
			t.Errorf("udp %+v", udp)
		}
		got, ok := ParseStamp(udp.Payload)
		if !ok || got != st {
			t.Errorf("stamp %+v ok=%v, want %+v", got, ok, st)
		}
	}
	// too small a buffer or frame
	h := testHdr()
	if n := EncodeUDP(make([]byte, 30), &h, 60, nil); n != 0 {
		t.Errorf("encoded into a 30-byte buffer: %d", n)
	}
	if n := EncodeUDP(make([]byte, 100), &h, 30, nil); n != 0 {
		t.Errorf("encoded a 30-byte frame: %d", n)
	}
}

func TestEncodeTCP(t *testing.T) {
	var synOpt [20]byte
	var mssOpt [4]byte
	st := Stamp{Kind: KindRequest, Sender: 1, Flow: 7, Seq: 2, SentNs: 42}
	for _, tc := range []struct {
		name string
		seg  TCPSeg
		len  int
	}{
		{"syn", TCPSeg{Seq: 1000, Flags: header.TCPFlagSYN, Window: 64240, Options: SynOptions(&synOpt, 1460, 0xdeadbeef)}, 74},
		{"syn-ack", TCPSeg{Seq: 5, Ack: 1001, Flags: header.TCPFlagSYN | header.TCPFlagACK, Window: 64240, Options: MSSOption(&mssOpt, 1400)}, 60},
		{"ack", TCPSeg{Seq: 1001, Ack: 6, Flags: header.TCPFlagACK, Window: 64240}, 60},
		{"request", TCPSeg{Seq: 1001, Ack: 6, Flags: header.TCPFlagACK | header.TCPFlagPSH, Window: 64240, PayloadLen: 64, Stamp: &st}, 118},
		{"fin", TCPSeg{Seq: 1065, Ack: 6, Flags: header.TCPFlagFIN | header.TCPFlagACK, Window: 64240}, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := testHdr()
			b := bytes.Repeat([]byte{0xee}, 2048)
			n := EncodeTCP(b, &h, &tc.seg)
			if n != tc.len {
				t.Fatalf("length %d, want %d", n, tc.len)
			}
			if tc.len == MinFrame && !bytes.Equal(b[EthLen+IPv4Len+TCPLen+len(tc.seg.Options):n], make([]byte, n-EthLen-IPv4Len-TCPLen-len(tc.seg.Options))) {
				t.Errorf("padding not zeroed")
			}
			p := decodeVerified(t, b[:n])
			tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if tcp.Seq != tc.seg.Seq || tcp.Ack != tc.seg.Ack || tcp.Window != tc.seg.Window ||
				tcp.SYN != (tc.seg.Flags&header.TCPFlagSYN != 0) || tcp.FIN != (tc.seg.Flags&header.TCPFlagFIN != 0) ||
				tcp.ACK != (tc.seg.Flags&header.TCPFlagACK != 0) || tcp.PSH != (tc.seg.Flags&header.TCPFlagPSH != 0) {
				t.Errorf("tcp %+v", tcp)
			}
			if len(tcp.Payload) != tc.seg.PayloadLen {
				t.Errorf("payload %d bytes, want %d", len(tcp.Payload), tc.seg.PayloadLen)
			}
			if tc.seg.Stamp != nil {
				if got, ok := ParseStamp(tcp.Payload); !ok || got != *tc.seg.Stamp {
					t.Errorf("stamp %+v", got)
				}
			}
			if tc.name == "syn" {
				opts := map[layers.TCPOptionKind][]byte{}
				for _, o := range tcp.Options {
					opts[o.OptionType] = o.OptionData
				}
				if binary.BigEndian.Uint16(opts[layers.TCPOptionKindMSS]) != 1460 ||
					binary.BigEndian.Uint32(opts[layers.TCPOptionKindTimestamps]) != 0xdeadbeef ||
					opts[layers.TCPOptionKindWindowScale][0] != 7 {
					t.Errorf("SYN options %v", tcp.Options)
				}
				if _, ok := opts[layers.TCPOptionKindSACKPermitted]; !ok {
					t.Errorf("SYN without SACK permitted: %v", tcp.Options)
				}
			}
		})
	}
	h := testHdr()
	if EncodeTCP(make([]byte, 2048), &h, &TCPSeg{Options: []byte{1, 1}}) != 0 {
		t.Error("options not a multiple of 4 accepted")
	}
}

func TestEncodeARP(t *testing.T) {
	b := make([]byte, 64)
	n := EncodeARP(b, header.ARPRequest, macA, netip.MustParseAddr("10.11.0.2"), macB, netip.MustParseAddr("10.11.0.1"))
	p := decodeVerified(t, b[:n])
	a := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if n != MinFrame || a.Operation != layers.ARPRequest || !bytes.Equal(eth.DstMAC, header.BroadcastMAC[:]) ||
		!bytes.Equal(a.DstHwAddress, make([]byte, 6)) || !bytes.Equal(a.SourceProtAddress, []byte{10, 11, 0, 2}) ||
		!bytes.Equal(a.DstProtAddress, []byte{10, 11, 0, 1}) {
		t.Errorf("request %v / %v", eth, a)
	}
	n = EncodeARP(b, header.ARPReply, macA, netip.MustParseAddr("10.12.0.11"), macB, netip.MustParseAddr("10.12.0.1"))
	p = decodeVerified(t, b[:n])
	a = p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if a.Operation != layers.ARPReply || !bytes.Equal(a.DstHwAddress, macB[:]) || !bytes.Equal(a.SourceHwAddress, macA[:]) {
		t.Errorf("reply %v", a)
	}
}

// serialize builds a frame with gopacket.
func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gopacketTCP(t *testing.T, opts []layers.TCPOption, payload []byte) []byte {
	eth := &layers.Ethernet{SrcMAC: macA[:], DstMAC: macB[:], EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{10, 12, 1, 7}, DstIP: net.IP{10, 12, 0, 11}}
	tcp := &layers.TCP{SrcPort: 2048, DstPort: 8080, Seq: 0x11223344, Ack: 0x55667788, ACK: true, PSH: true, Window: 512, Options: opts}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, tcp, gopacket.Payload(payload))
}

func TestParseTCP(t *testing.T) {
	st := Stamp{Kind: KindResponse, Sender: 2, Flow: 9, Seq: 1, SentNs: 77}
	pay := make([]byte, 40)
	PutStamp(pay, &st)
	toa := []byte{0x30, 0x39, 172, 16, 0, 9}
	f := gopacketTCP(t, []layers.TCPOption{
		{OptionType: OptTOA, OptionLength: 8, OptionData: toa},
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 0, 5, 0, 0, 0, 6}},
	}, pay)
	var p Packet
	if err := Parse(f, &p); err != nil {
		t.Fatal(err)
	}
	if p.Src != [4]byte{10, 12, 1, 7} || p.Dst != [4]byte{10, 12, 0, 11} || p.SrcPort != 2048 || p.DstPort != 8080 ||
		p.Seq != 0x11223344 || p.Ack != 0x55667788 || p.Flags != header.TCPFlagACK|header.TCPFlagPSH || p.Window != 512 {
		t.Errorf("fields %+v", p)
	}
	if !p.HasTOA || p.TOAAddr != [4]byte{172, 16, 0, 9} || p.TOAPort != 12345 || p.MSS != 1460 || !p.HasTS || p.TSVal != 5 || p.TSEcr != 6 {
		t.Errorf("options: toa %v %v:%d mss %d ts %v %d/%d", p.HasTOA, p.TOAAddr, p.TOAPort, p.MSS, p.HasTS, p.TSVal, p.TSEcr)
	}
	if got, ok := ParseStamp(p.Payload); !ok || got != st || len(p.Payload) != 40 {
		t.Errorf("payload %d bytes, stamp %+v", len(p.Payload), got)
	}
	if !ChecksumsValid(f, &p) {
		t.Error("checksums of a gopacket frame do not verify")
	}
	// every single-bit flip in the IP header or segment is caught
	for i := EthLen; i < len(f); i++ {
		g := append([]byte(nil), f...)
		g[i] ^= 0x10
		var q Packet
		if Parse(g, &q) == nil && ChecksumsValid(g, &q) {
			t.Fatalf("flipped bit at byte %d not detected", i)
		}
	}
}

func TestParseUDPAndPadding(t *testing.T) {
	eth := &layers.Ethernet{SrcMAC: macA[:], DstMAC: macB[:], EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 9, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{1, 2, 3, 4}, DstIP: net.IP{5, 6, 7, 8}}
	udp := &layers.UDP{SrcPort: 53, DstPort: 5353}
	_ = udp.SetNetworkLayerForChecksum(ip)
	f := serialize(t, eth, ip, udp, gopacket.Payload([]byte("hi")))
	f = append(f, make([]byte, MinFrame-len(f))...) // Ethernet padding
	var p Packet
	if err := Parse(f, &p); err != nil {
		t.Fatal(err)
	}
	if p.Proto != header.ProtoUDP || p.SrcPort != 53 || p.DstPort != 5353 || string(p.Payload) != "hi" || p.TTL != 9 {
		t.Errorf("%+v", p)
	}
	if !ChecksumsValid(f, &p) {
		t.Error("checksum with padding")
	}
	// a zero UDP checksum means none
	binary.BigEndian.PutUint16(f[EthLen+IPv4Len+6:], 0)
	if !ChecksumsValid(f, &p) {
		t.Error("zero UDP checksum rejected")
	}
}

func TestParseErrors(t *testing.T) {
	good := gopacketTCP(t, nil, []byte("x"))
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name  string
		frame []byte
		want  error
	}{
		{"short", good[:10], ErrShort},
		{"ipv6", mut(func(b []byte) []byte { b[12], b[13] = 0x86, 0xdd; return b }), ErrNotIP},
		{"short ip", good[:EthLen+10], ErrShort},
		{"version", mut(func(b []byte) []byte { b[EthLen] = 0x65; return b }), ErrBadIP},
		{"ihl", mut(func(b []byte) []byte { b[EthLen] = 0x44; return b }), ErrBadIP},
		{"total length", mut(func(b []byte) []byte { b[EthLen+2], b[EthLen+3] = 0xff, 0; return b }), ErrBadIP},
		{"fragment", mut(func(b []byte) []byte { b[EthLen+6] = 0x20; return b }), ErrFragment},
		{"data offset", mut(func(b []byte) []byte { b[EthLen+IPv4Len+12] = 0xf0; return b }), ErrBadL4},
		{"option overrun", func() []byte {
			h := testHdr()
			b := make([]byte, 128)
			return b[:EncodeTCP(b, &h, &TCPSeg{Flags: header.TCPFlagACK, Options: []byte{1, 1, 30, 9}})]
		}(), ErrBadOptions},
		{"arp", append(make([]byte, 12), 0x08, 0x06, 0, 1), ErrBadARP},
	} {
		var p Packet
		if err := Parse(tc.frame, &p); err != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestParseTCPOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []byte
		ok   bool
		toa  bool
		mss  uint16
	}{
		{"empty", nil, true, false, 0},
		{"nops", []byte{1, 1, 1, 1}, true, false, 0},
		{"mss", []byte{2, 4, 5, 0xb4}, true, false, 1460},
		{"eol stops", []byte{0, 2, 1}, true, false, 0},
		{"toa v4", []byte{254, 8, 0, 80, 1, 2, 3, 4}, true, true, 0},
		{"toa v6", append([]byte{254, 20, 0, 80}, make([]byte, 16)...), true, true, 0},
		{"toa 253", append([]byte{253, 20, 0, 80}, make([]byte, 16)...), true, true, 0},
		{"toa bad length", []byte{254, 6, 0, 80, 1, 2}, false, false, 0},
		{"mss bad length", []byte{2, 3, 5}, false, false, 0},
		{"ts bad length", []byte{8, 6, 0, 0, 0, 0}, false, false, 0},
		{"length 1", []byte{30, 1}, false, false, 0},
		{"truncated", []byte{30}, false, false, 0},
		{"unknown skipped", []byte{30, 3, 9, 2, 4, 1, 0}, true, false, 0x100},
	} {
		var p Packet
		err := ParseTCPOptions(tc.opts, &p)
		if (err == nil) != tc.ok || (tc.ok && (p.HasTOA != tc.toa || p.MSS != tc.mss)) {
			t.Errorf("%s: err %v toa %v mss %d", tc.name, err, p.HasTOA, p.MSS)
		}
	}
}

func TestStamp(t *testing.T) {
	s := Stamp{Kind: KindResponse, Sender: 15, Flow: 0xffffffff, Seq: 0x80000000, SentNs: -5}
	b := make([]byte, StampLen)
	PutStamp(b, &s)
	if got, ok := ParseStamp(b); !ok || got != s {
		t.Errorf("round trip %+v -> %+v", s, got)
	}
	if _, ok := ParseStamp(b[:StampLen-1]); ok {
		t.Error("short stamp accepted")
	}
	b[0] = 0
	if _, ok := ParseStamp(b); ok {
		t.Error("stamp without magic accepted")
	}
}

func TestHistogram(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var h, h2 Histogram
	var v []int64
	for i := 0; i < 100000; i++ {
		x := int64(rng.ExpFloat64() * 50000)
		v = append(v, x)
		if i%2 == 0 {
			h.Record(x)
		} else {
			h2.Record(x)
		}
	}
	h.Merge(&h2)
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := v[int(q*float64(len(v)))-1]
		got := h.Quantile(q)
		if got > exact || float64(exact-got) > float64(exact)/histSub+1 {
			t.Errorf("q%.3f = %d, exact %d (allowed relative error 1/%d below)", q, got, exact, histSub)
		}
	}
	if h.Count() != 100000 || h.Quantile(1) != v[len(v)-1] || h.Summary().MinUs != float64(v[0]/10)/100 {
		t.Errorf("count %d max %d min %v", h.Count(), h.Quantile(1), h.Summary().MinUs)
	}
	// bucket bounds are consistent
	for i := 1; i < histBuckets-histSub; i++ {
		if histIndex(histLow(i)) != i || histLow(i) <= histLow(i-1) {
			t.Fatalf("bucket %d: low %d maps to %d", i, histLow(i), histIndex(histLow(i)))
		}
	}
}

func TestClientAddrs(t *testing.T) {
	c := Config{Clients: netip.MustParsePrefix("172.16.0.0/16"), ClientAddrs: 300}
	if c.clientAddrCount() != 300 || c.clientAddr(0) != [4]byte{172, 16, 0, 1} || c.clientAddr(299) != [4]byte{172, 16, 1, 44} {
		t.Errorf("addresses: %d %v %v", c.clientAddrCount(), c.clientAddr(0), c.clientAddr(299))
	}
	for _, i := range []int{0, 1, 255, 299} {
		if j, ok := c.clientIndex(c.clientAddr(i)); !ok || j != i {
			t.Errorf("index of address %d: %d %v", i, j, ok)
		}
	}
	if _, ok := c.clientIndex([4]byte{172, 16, 0, 0}); ok {
		t.Error("network address is a client")
	}
	c = Config{Clients: netip.MustParsePrefix("10.0.0.7/32")}
	if c.clientAddrCount() != 1 || c.clientAddr(0) != [4]byte{10, 0, 0, 7} {
		t.Errorf("/32: %d %v", c.clientAddrCount(), c.clientAddr(0))
	}
	c = Config{Clients: netip.MustParsePrefix("172.16.0.0/24"), ClientAddrs: 0, PortMin: 1000, PortMax: 1009, Flows: 2540,
		Dsts: []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2")}}
	c.Mode, c.ClientIP, c.Gateway = ModeUDP, testClientIP, testClientIP
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("2540 flows over 254 addresses × 10 ports: %v", err)
	}
	c.Flows++
	if err := c.Validate(); err == nil {
		t.Fatal("more flows than address × port pairs accepted")
	}
	c.Flows--
	seen := map[flow]bool{}
	for _, f := range makeFlows(&c) {
		key := f
		key.id = 0
		if seen[key] {
			t.Fatalf("flow %+v twice", f)
		}
		seen[key] = true
	}
}

func TestAllocs(t *testing.T) {
	h := testHdr()
	st := Stamp{Kind: KindUDP}
	b := make([]byte, 2048)
	var p Packet
	var opt [20]byte
	if n := testing.AllocsPerRun(1000, func() {
		n := EncodeUDP(b, &h, 60, &st)
		_ = Parse(b[:n], &p)
		_ = ChecksumsValid(b[:n], &p)
		seg := TCPSeg{Flags: header.TCPFlagSYN, Options: SynOptions(&opt, 1460, 1)}
		n = EncodeTCP(b, &h, &seg)
		_ = Parse(b[:n], &p)
	}); n != 0 {
		t.Errorf("%v allocations per packet, want 0", n)
	}
}

func BenchmarkEncodeUDP(b *testing.B) {
	h := testHdr()
	st := Stamp{Kind: KindUDP}
	buf := make([]byte, 2048)
	b.ReportAllocs()
	for b.Loop() {
		EncodeUDP(buf, &h, 60, &st)
	}
}

func BenchmarkParseVerify(b *testing.B) {
	h := testHdr()
	st := Stamp{Kind: KindUDP}
	buf := make([]byte, 2048)
	n := EncodeUDP(buf, &h, 60, &st)
	var p Packet
	b.ReportAllocs()
	for b.Loop() {
		_ = Parse(buf[:n], &p)
		_ = ChecksumsValid(buf[:n], &p)
	}
}
