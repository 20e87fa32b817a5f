package pktgen

import (
	"testing"

	"github.com/gvs-lb/gvs/header"
)

func seedFrames() [][]byte {
	var out [][]byte
	h := testHdr()
	st := Stamp{Kind: KindUDP, Flow: 3, Seq: 4, SentNs: 5}
	b := make([]byte, 256)
	out = append(out, append([]byte(nil), b[:EncodeUDP(b, &h, 60, &st)]...))
	var opt [20]byte
	seg := TCPSeg{Seq: 1, Flags: header.TCPFlagSYN, Options: SynOptions(&opt, 1460, 9)}
	out = append(out, append([]byte(nil), b[:EncodeTCP(b, &h, &seg)]...))
	seg = TCPSeg{Seq: 1, Ack: 2, Flags: header.TCPFlagACK, Options: []byte{OptTOA, 8, 0, 80, 1, 2, 3, 4}, PayloadLen: 20, Stamp: &st}
	out = append(out, append([]byte(nil), b[:EncodeTCP(b, &h, &seg)]...))
	out = append(out, append([]byte(nil), b[:EncodeARP(b, header.ARPRequest, macA, testClientIP, macB, testServer)]...))
	return out
}

// FuzzParse: no input crashes the parser; what it accepts stays inside
// the frame and can be checksummed.
func FuzzParse(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var p Packet
		if err := Parse(frame, &p); err != nil {
			return
		}
		if p.EthType == header.EtherTypeIPv4 {
			if p.L3Off+p.IPLen > len(frame) || p.L4Off > p.L3Off+p.IPLen {
				t.Fatalf("offsets outside the frame: %+v (len %d)", p, len(frame))
			}
			_ = ChecksumsValid(frame, &p)
		}
		if len(p.Payload) > len(frame) {
			t.Fatalf("payload longer than the frame")
		}
		_, _ = ParseStamp(p.Payload)
	})
}

// FuzzParseTCPOptions: no option list crashes the option parser.
func FuzzParseTCPOptions(f *testing.F) {
	f.Add([]byte{2, 4, 5, 0xb4, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0})
	f.Add([]byte{254, 8, 0, 80, 1, 2, 3, 4})
	f.Add([]byte{253, 20, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{30, 1})
	f.Fuzz(func(t *testing.T, opts []byte) {
		var p Packet
		_ = ParseTCPOptions(opts, &p)
	})
}

// FuzzParseStamp: stamps round-trip and garbage is refused or read
// without crashing.
func FuzzParseStamp(f *testing.F) {
	f.Add([]byte{stampMagic, 0x12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, ok := ParseStamp(b)
		if !ok {
			return
		}
		out := make([]byte, StampLen)
		PutStamp(out, &s)
		if s2, _ := ParseStamp(out); s2 != s {
			t.Fatalf("round trip %+v -> %+v", s, s2)
		}
	})
}
