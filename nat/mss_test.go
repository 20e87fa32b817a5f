package nat

import (
	"bytes"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
)

func mssOpt(v uint16) layers.TCPOption {
	return layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{byte(v >> 8), byte(v)}}
}

func withMSS(opts []layers.TCPOption, v uint16) []layers.TCPOption {
	out := append([]layers.TCPOption(nil), opts...)
	for i := range out {
		if out[i].OptionType == layers.TCPOptionKindMSS {
			out[i] = mssOpt(v)
		}
	}
	return out
}

func TestClampMSS(t *testing.T) {
	nop := layers.TCPOption{OptionType: layers.TCPOptionKindNop}
	eol := layers.TCPOption{OptionType: layers.TCPOptionKindEndList}
	// MSS value at an odd offset of the segment: NOP, MSS, NOP×3.
	odd := []layers.TCPOption{nop, mssOpt(1460), nop, nop, nop}
	// MSS after an End-of-Options-List is not an option.
	afterEOL := []layers.TCPOption{eol, mssOpt(1460), nop, nop, nop}
	synack := uint8(header.TCPFlagSYN | header.TCPFlagACK)
	tests := []struct {
		desc    string
		in      pkt
		max     uint16
		changed bool
		wantMSS uint16
	}{
		{"IPv4 server SYN-ACK 1460 clamped for an IPv4 TOA", pkt{ep: conn4.serverSent(), proto: header.ProtoTCP, flags: synack, seq: 7, ack: 1, opts: synOpts}, 1460 - TOALenIPv4, true, 1452},
		{"IPv6 server SYN-ACK 1440 clamped for an IPv6 TOA", pkt{ep: conn6.serverSent(), proto: header.ProtoTCP, flags: synack, opts: withMSS(synOpts, 1440)}, 1440 - TOALenIPv6, true, 1420},
		{"client SYN with a large MSS", pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagSYN, opts: withMSS(synOpts, 8960)}, 1452, true, 1452},
		{"MSS at an odd offset", pkt{ep: conn4.serverSent(), proto: header.ProtoTCP, flags: synack, opts: odd}, 1000, true, 1000},
		{"MSS at an odd offset, IPv6", pkt{ep: conn6.serverSent(), proto: header.ProtoTCP, flags: synack, opts: odd}, 1399, true, 1399},
		{"already smaller: unchanged", pkt{ep: conn4.serverSent(), proto: header.ProtoTCP, flags: synack, opts: withMSS(synOpts, 1400)}, 1452, false, 1400},
		{"equal: unchanged", pkt{ep: conn4.serverSent(), proto: header.ProtoTCP, flags: synack, opts: synOpts}, 1460, false, 1460},
		{"not a SYN: unchanged", pkt{ep: conn4.serverSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: synOpts}, 536, false, 1460},
		{"no MSS option", pkt{ep: conn4.serverSent(), proto: header.ProtoTCP, flags: synack, opts: tsOpts}, 536, false, 0},
		{"no options", pkt{ep: conn4.serverSent(), proto: header.ProtoTCP, flags: synack}, 536, false, 0},
		{"MSS after End-of-Options-List is ignored", pkt{ep: conn4.serverSent(), proto: header.ProtoTCP, flags: synack, opts: afterEOL}, 536, false, 1460},
		{"UDP", pkt{ep: conn4.serverSent(), proto: header.ProtoUDP, payload: []byte{2, 4, 5, 0xb4}}, 536, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			l3 := tc.in.build(t)
			before := append([]byte(nil), l3...)
			if got := ClampMSS(l3, tc.max); got != tc.changed {
				t.Fatalf("ClampMSS = %v, want %v", got, tc.changed)
			}
			if !tc.changed {
				if !bytes.Equal(before, l3) {
					t.Fatalf("unchanged packet modified")
				}
				return
			}
			p := verifyChecksums(t, l3)
			tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			var mss uint16
			for _, o := range tcp.Options {
				if o.OptionType == layers.TCPOptionKindMSS {
					mss = be16(o.OptionData)
				}
			}
			if mss != tc.wantMSS {
				t.Errorf("MSS = %d, want %d", mss, tc.wantMSS)
			}
			want := tc.in
			want.opts = withMSS(tc.in.opts, tc.wantMSS)
			if w := want.build(t); !bytes.Equal(l3, w) {
				t.Errorf("clamped packet:\n got  %x\n want %x", l3, w)
			}
		})
	}
}

// TestClampMSSMalformedOptions: broken option lists stop the walk without
// touching the packet or reading past the header.
func TestClampMSSMalformedOptions(t *testing.T) {
	for _, opts := range [][]byte{
		{2, 0, 5, 0xb4},    // zero length
		{1, 1, 1, 2},       // kind without length at the end
		{8, 40, 0, 0},      // length past the header
		{2, 3, 5, 0xb4},    // MSS with a wrong length: skipped
		{2, 1, 5, 0xb4},    // length below 2
		{1, 2, 4, 0xff},    // MSS with length past the header
		{30, 4, 1, 2},      // unknown option, valid length
		{2, 4, 0xff, 0xff}, // valid, for contrast: clamped below
	} {
		l3 := pkt{ep: conn4.serverSent(), proto: header.ProtoTCP, flags: header.TCPFlagSYN}.build(t)
		// Append the raw option bytes and fix the lengths by hand.
		l3 = append(l3, opts...)
		l3[20+12] = 6 << 4
		put16(l3[2:], uint16(len(l3)))
		header.IPv4(l3).SetChecksum(0)
		header.IPv4(l3).SetChecksum(^header.Checksum(l3[:20], 0))
		put16(l3[20+tcpCksumOff:], 0)
		put16(l3[20+tcpCksumOff:], header.TransportChecksum(header.ProtoTCP, l3[12:16], l3[16:20], l3[20:], tcpCksumOff))
		before := append([]byte(nil), l3...)
		changed := ClampMSS(l3, 1000)
		if want := opts[0] == 2 && opts[1] == 4; changed != want {
			t.Errorf("options %x: changed = %v, want %v", opts, changed, want)
		}
		if !changed && !bytes.Equal(before, l3) {
			t.Errorf("options %x: packet modified", opts)
		}
		if ck := header.TransportChecksum(header.ProtoTCP, l3[12:16], l3[16:20], l3[20:], tcpCksumOff); ck != be16(l3[20+tcpCksumOff:]) {
			t.Errorf("options %x: TCP checksum %#04x, from scratch %#04x", opts, be16(l3[20+tcpCksumOff:]), ck)
		}
	}
}
