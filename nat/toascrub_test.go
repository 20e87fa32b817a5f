package nat

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
)

func opt(kind byte, data ...byte) layers.TCPOption {
	return layers.TCPOption{OptionType: layers.TCPOptionKind(kind), OptionLength: byte(2 + len(data)), OptionData: data}
}

var (
	nop       = layers.TCPOption{OptionType: layers.TCPOptionKindNop, OptionLength: 1}
	eol       = layers.TCPOption{OptionType: layers.TCPOptionKindEndList, OptionLength: 1}
	forged4   = opt(TOAKind, 0x01, 0xbb, 1, 2, 3, 4)                                           // "1.2.3.4:443"
	forged6   = opt(TOAKindAlt, 0, 80, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1) // kind 253, 20 bytes
	forgedOdd = opt(TOAKind, 9, 9, 9)                                                          // 5 bytes: shifts what follows to odd offsets
)

// TestScrubTOA: forged kind-254/253 options anywhere in the option list become
// NOPs; every other option, the payload and the header length are kept, and
// gopacket verifies the checksum.
func TestScrubTOA(t *testing.T) {
	ts := tsOpts[2]
	mss := synOpts[0]
	tests := []struct {
		desc string
		in   pkt
		n    int
	}{
		{"IPv4 ACK with a forged IPv4 TOA", pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: []layers.TCPOption{forged4}}, 1},
		{"IPv4 data with timestamps and a forged TOA after them", pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK | header.TCPFlagPSH, opts: []layers.TCPOption{nop, nop, ts, forged4}, payload: seqPayload(101)}, 1},
		{"IPv4 kind 253 and kind 254 together", pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: []layers.TCPOption{forged4, forged6}}, 2},
		{"IPv4 forged TOA at an odd offset, odd length", pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: []layers.TCPOption{nop, forgedOdd, ts}, payload: seqPayload(3)}, 1},
		{"IPv4 SYN with a forged TOA between MSS and timestamps", pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagSYN, opts: []layers.TCPOption{mss, forged4, ts}}, 1},
		{"IPv4 40 bytes of options, two forged", pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: []layers.TCPOption{forged4, forged6, nop, nop, ts}}, 2},
		{"IPv4 options without TOA are left alone", pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: tsOpts, payload: seqPayload(7)}, 0},
		{"IPv4 no options", pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, payload: seqPayload(7)}, 0},
		{"IPv4 header with IP options", pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: []layers.TCPOption{forged4},
			ipOpts: []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}}, 1},
		{"IPv6 ACK with a forged kind-253 TOA", pkt{ep: conn6.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: []layers.TCPOption{forged6}}, 1},
		{"IPv6 data with a forged kind-254 IPv6-sized TOA and timestamps", pkt{ep: conn6.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: []layers.TCPOption{ts, opt(TOAKind, forged6.OptionData...)}, payload: seqPayload(999)}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			l3 := tc.in.build(t)
			orig := decode(t, append([]byte(nil), l3...)).Layer(layers.LayerTypeTCP).(*layers.TCP)
			n, err := ScrubTOA(l3)
			if err != nil || n != tc.n {
				t.Fatalf("ScrubTOA = %d, %v; want %d, nil", n, err, tc.n)
			}
			p := verifyChecksums(t, l3)
			got := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if got.DataOffset != orig.DataOffset || !bytes.Equal(got.Payload, orig.Payload) || got.Seq != orig.Seq || got.Ack != orig.Ack {
				t.Fatalf("header length, sequence numbers or payload changed")
			}
			if tuple(t, p) != tc.in.ep {
				t.Errorf("tuple %v, want %v", tuple(t, p), tc.in.ep)
			}
			// the options are the original ones with each TOA turned into
			// as many NOPs as it had bytes
			var want []layers.TCPOption
			for _, o := range orig.Options {
				if o.OptionType == TOAKind || o.OptionType == TOAKindAlt {
					for range o.OptionLength {
						want = append(want, nop)
					}
					continue
				}
				want = append(want, o)
			}
			if len(got.Options) != len(want) {
				t.Fatalf("options %v, want %v", got.Options, want)
			}
			for i, o := range got.Options {
				if o.OptionType == TOAKind || o.OptionType == TOAKindAlt {
					t.Fatalf("option %d is still kind %d", i, o.OptionType)
				}
				if o.OptionType != want[i].OptionType || o.OptionLength != want[i].OptionLength || !bytes.Equal(o.OptionData, want[i].OptionData) {
					t.Fatalf("option %d = %v, want %v", i, o, want[i])
				}
			}
		})
	}
}

// TestScrubTOAPaddingAfterEOL: bytes after End-of-Option-List are zeroed, so
// a forged option hidden there cannot be read by any parser.
func TestScrubTOAPaddingAfterEOL(t *testing.T) {
	l3 := pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK,
		opts: []layers.TCPOption{synOpts[0], eol, forged4}}.build(t)
	tcp := l3[20:]
	if tcp[24] != 0 || tcp[25] != TOAKind {
		t.Fatalf("fixture: options %x", tcp[20:tcp[12]>>4*4])
	}
	n, err := ScrubTOA(l3)
	if err != nil || n != 0 {
		t.Fatalf("ScrubTOA = %d, %v; want 0 (nothing a receiver parses), nil", n, err)
	}
	p := verifyChecksums(t, l3)
	got := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if len(got.Options) != 2 || got.Options[0].OptionType != layers.TCPOptionKindMSS || got.Options[1].OptionType != layers.TCPOptionKindEndList {
		t.Fatalf("options %v", got.Options)
	}
	if !bytes.Equal(tcp[25:36], make([]byte, 11)) {
		t.Fatalf("padding after EOL %x, want zeros", tcp[25:36])
	}
}

// TestScrubTOARefusesMalformed: an option list that cannot be walked is
// refused and the packet left as it was.
func TestScrubTOARefusesMalformed(t *testing.T) {
	base := func(t *testing.T) []byte {
		// MSS, then an 8-byte option of kind 30 whose bytes the cases patch
		return pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK,
			opts: []layers.TCPOption{synOpts[0], opt(30, 1, 2, 3, 4, 5, 6)}}.build(t)
	}
	const o = 20 + 20 + 4 // the kind-30 option in l3
	tests := []struct {
		desc  string
		patch func(l3 []byte)
	}{
		{"length 0", func(l3 []byte) { l3[o], l3[o+1] = TOAKind, 0 }},
		{"length 1", func(l3 []byte) { l3[o+1] = 1 }},
		{"length past the header", func(l3 []byte) { l3[o+1] = 9 }},
		{"forged TOA whose length runs past the header", func(l3 []byte) { l3[o], l3[o+1] = TOAKind, 20 }},
		{"kind without a length byte", func(l3 []byte) {
			for i := o; i < o+7; i++ {
				l3[i] = tcpOptNOP
			}
			l3[o+7] = TOAKind
		}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			l3 := base(t)
			tc.patch(l3)
			before := append([]byte(nil), l3...)
			if n, err := ScrubTOA(l3); !errors.Is(err, ErrTCPOptions) {
				t.Fatalf("ScrubTOA = %d, %v; want ErrTCPOptions", n, err)
			}
			if !bytes.Equal(before, l3) {
				t.Fatal("refused packet was modified")
			}
		})
	}
	udp := pkt{ep: conn4.clientSent(), proto: header.ProtoUDP, payload: seqPayload(8)}.build(t)
	if _, err := ScrubTOA(udp); !errors.Is(err, ErrUnsupportedProto) {
		t.Errorf("UDP: %v, want ErrUnsupportedProto", err)
	}
}

// refScrubbed reports whether a receiver that parses like Linux (stop at EOL
// or at a malformed option) finds no TOA, and whether the bytes after EOL
// are all zero.
func refScrubbed(tcp []byte) bool {
	hl := int(tcp[12]>>4) * 4
	for i := 20; i < hl; {
		switch tcp[i] {
		case 0:
			return bytes.Count(tcp[i+1:hl], []byte{0}) == hl-i-1
		case 1:
			i++
			continue
		case TOAKind, TOAKindAlt:
			return false
		}
		if i+1 >= hl || tcp[i+1] < 2 {
			return true
		}
		i += int(tcp[i+1])
	}
	return true
}

// TestScrubTOARandom scrubs random option lists (valid or not) and checks
// against refScrubbed, the checksum residual and the bytes left alone.
func TestScrubTOARandom(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 1))
	kinds := []byte{0, 1, 1, 2, 3, 4, 5, 8, 30, TOAKind, TOAKind, TOAKindAlt}
	for i := 0; i < 3000; i++ {
		var opts []byte
		nopt := 1 + r.IntN(40)
		for len(opts) < nopt {
			k := kinds[r.IntN(len(kinds))]
			if k <= 1 {
				opts = append(opts, k)
				continue
			}
			l := 2 + r.IntN(19)
			if r.IntN(20) == 0 {
				l = r.IntN(3) // malformed now and then
			}
			o := make([]byte, max(l, 2))
			o[0], o[1] = k, byte(l)
			for j := 2; j < len(o); j++ {
				o[j] = byte(r.IntN(256))
			}
			opts = append(opts, o...)
		}
		for len(opts)%4 != 0 || len(opts) > 40 {
			if len(opts) > 40 {
				opts = opts[:40]
			} else {
				opts = append(opts, byte(r.IntN(2)*TOAKind))
			}
		}
		k := conn4
		if i%2 == 1 {
			k = conn6
		}
		l3 := pkt{ep: k.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK,
			opts: []layers.TCPOption{{OptionType: 30, OptionLength: 2}}, payload: seqPayload(r.IntN(50))}.build(t)
		// splice the raw option bytes in place of the placeholder
		off, _, v6 := l4Off(l3)
		l3 = rawOptions(t, l3, off, v6, opts)
		res := residual(l3, v6, header.ProtoTCP, off, len(l3))
		before := append([]byte(nil), l3...)
		n, err := ScrubTOA(l3)
		if err != nil {
			if !errors.Is(err, ErrTCPOptions) || !bytes.Equal(before, l3) {
				t.Fatalf("case %d: %v, packet changed %v", i, err, !bytes.Equal(before, l3))
			}
			continue
		}
		if !refScrubbed(l3[off:]) {
			t.Fatalf("case %d: a TOA survives in %x", i, l3[off+20:off+20+len(opts)])
		}
		if r := residual(l3, v6, header.ProtoTCP, off, len(l3)); r != res || r != 0 {
			t.Fatalf("case %d: checksum residual %#x, was %#x", i, r, res)
		}
		changed := 0
		for j := range l3 {
			if l3[j] != before[j] {
				if j < off+20 || j >= off+20+len(opts) {
					if j != off+tcpCksumOff && j != off+tcpCksumOff+1 {
						t.Fatalf("case %d: byte %d outside the options changed", i, j)
					}
					continue
				}
				changed++
				if b := before[j]; l3[j] != tcpOptNOP && l3[j] != 0 {
					t.Fatalf("case %d: byte %d became %d (was %d)", i, j, l3[j], b)
				}
			}
		}
		if n > 0 && changed == 0 {
			t.Fatalf("case %d: %d options reported scrubbed, nothing changed", i, n)
		}
	}
}

// rawOptions replaces the TCP options of l3 (a 4-byte placeholder) by opts
// (a multiple of 4 bytes) and recomputes lengths and the TCP checksum from
// scratch.
func rawOptions(t testing.TB, l3 []byte, off int, v6 bool, opts []byte) []byte {
	t.Helper()
	out := append([]byte(nil), l3[:off+20]...)
	out = append(out, opts...)
	out = append(out, l3[off+24:]...)
	out[off+12] = byte((20+len(opts))/4) << 4
	if v6 {
		header.IPv6(out).SetPayloadLen(uint16(len(out) - header.IPv6MinSize))
	} else {
		put16(out[2:], uint16(len(out)))
		out[10], out[11] = 0, 0
		header.IPv4(out).SetChecksum(^header.Checksum(out[:off], 0))
	}
	var src, dst []byte
	if v6 {
		src, dst = header.IPv6(out).SrcBytes(), header.IPv6(out).DstBytes()
	} else {
		src, dst = header.IPv4(out).SrcBytes(), header.IPv4(out).DstBytes()
	}
	header.TCP(out[off:]).SetChecksum(header.TransportChecksum(header.ProtoTCP, src, dst, out[off:], tcpCksumOff))
	return out
}

func TestVerifyTCPChecksum(t *testing.T) {
	for _, k := range []fnatConn{conn4, conn6} {
		l3 := pkt{ep: k.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: tsOpts, payload: seqPayload(77)}.build(t)
		if !VerifyTCPChecksum(l3) {
			t.Fatalf("%v: valid segment refused", k.c)
		}
		off, _, _ := l4Off(l3)
		for _, i := range []int{len(l3) - 1, off + 22, off + 4, 12, 16} { // payload, options, header, addresses
			bad := append([]byte(nil), l3...)
			bad[i] ^= 0x10
			if k == conn4 && i < 20 {
				header.IPv4(bad).SetChecksum(0)
				header.IPv4(bad).SetChecksum(^header.Checksum(bad[:20], 0))
			}
			if VerifyTCPChecksum(bad) {
				t.Errorf("%v: segment with byte %d flipped accepted", k.c, i)
			}
		}
		// an incremental rewrite keeps it valid
		if err := Rewrite(l3, &Endpoints{k.l, k.d, lport, dport}); err != nil || !VerifyTCPChecksum(l3) {
			t.Errorf("%v: rewritten segment refused (%v)", k.c, err)
		}
	}
	udp := pkt{ep: conn4.clientSent(), proto: header.ProtoUDP, payload: seqPayload(8)}.build(t)
	if VerifyTCPChecksum(udp) || VerifyTCPChecksum(udp[:10]) {
		t.Error("UDP or truncated packet accepted as TCP")
	}
}

func TestScrubTOAAllocs(t *testing.T) {
	l3 := pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: []layers.TCPOption{nop, nop, tsOpts[2], forged4}, payload: seqPayload(64)}.build(t)
	orig := append([]byte(nil), l3...)
	if n := testing.AllocsPerRun(100, func() {
		copy(l3, orig)
		if n, _ := ScrubTOA(l3); n != 1 || !VerifyTCPChecksum(l3) {
			t.Fatal("not scrubbed")
		}
	}); n != 0 {
		t.Errorf("%v allocations per ScrubTOA+VerifyTCPChecksum, want 0", n)
	}
}

func BenchmarkScrubTOA(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []layers.TCPOption
	}{{"no options", nil}, {"timestamps", tsOpts}, {"timestamps+forged TOA", []layers.TCPOption{nop, nop, tsOpts[2], forged4}}} {
		b.Run(bc.name, func(b *testing.B) {
			l3 := pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: bc.opts, payload: seqPayload(64)}.build(b)
			orig := append([]byte(nil), l3...)
			b.ReportAllocs()
			for b.Loop() {
				copy(l3[:60], orig)
				ScrubTOA(l3)
			}
		})
	}
}

func BenchmarkVerifyTCPChecksum(b *testing.B) {
	for _, n := range []int{0, 1400} {
		l3 := pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: tsOpts, payload: seqPayload(n)}.build(b)
		b.Run(map[int]string{0: "ACK", 1400: "1400 bytes"}[n], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !VerifyTCPChecksum(l3) {
					b.Fatal("refused")
				}
			}
		})
	}
}

func FuzzScrubTOA(f *testing.F) {
	fuzzSeeds(f)
	f.Add(pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: []layers.TCPOption{nop, forgedOdd, tsOpts[2]}}.build(f), []byte{}, uint16(0), uint16(0), false)
	f.Add(pkt{ep: conn6.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: []layers.TCPOption{forged6, synOpts[0], eol, forged4}}.build(f), []byte{}, uint16(0), uint16(0), false)
	f.Fuzz(func(t *testing.T, data, _ []byte, _, _ uint16, _ bool) {
		_, _ = ScrubTOA(append([]byte(nil), data...)) // never panics
		_ = VerifyTCPChecksum(data)
		l3, ok := validL3(append([]byte(nil), data...))
		if !ok {
			return
		}
		off, proto, v6 := l4Off(l3)
		if proto != header.ProtoTCP || off+20 > len(l3) || int(l3[off+12]>>4)*4 < 20 || off+int(l3[off+12]>>4)*4 > len(l3) {
			return
		}
		res := residual(l3, v6, proto, off, len(l3))
		if VerifyTCPChecksum(l3) != (res == 0) {
			t.Fatalf("VerifyTCPChecksum = %v with residual %#x", VerifyTCPChecksum(l3), res)
		}
		before := append([]byte(nil), l3...)
		if _, err := ScrubTOA(l3); err != nil {
			if !bytes.Equal(before, l3) {
				t.Fatalf("ScrubTOA failed (%v) and modified the packet", err)
			}
			return
		}
		if !refScrubbed(l3[off:]) {
			t.Fatalf("a TOA survives: %x", l3[off:])
		}
		if r := residual(l3, v6, proto, off, len(l3)); r != res {
			t.Fatalf("TCP checksum residual %#x, was %#x", r, res)
		}
	})
}
