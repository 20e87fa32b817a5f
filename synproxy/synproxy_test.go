package synproxy

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/header"
)

// TestSipHashVector: the reference vector of the SipHash paper (key
// 00..0f, message 00..0e).
func TestSipHashVector(t *testing.T) {
	var k [16]byte
	for i := range k {
		k[i] = byte(i)
	}
	m := make([]byte, 15)
	for i := range m {
		m[i] = byte(i)
	}
	got := sipHash24(binary.LittleEndian.Uint64(k[:]), binary.LittleEndian.Uint64(k[8:]), m)
	if got != 0xa129ca6149be45e5 {
		t.Fatalf("SipHash-2-4 = %#x, want 0xa129ca6149be45e5", got)
	}
	if got := sipHash24(binary.LittleEndian.Uint64(k[:]), binary.LittleEndian.Uint64(k[8:]), nil); got != 0x726fdb47dd0e0e31 {
		t.Fatalf("SipHash-2-4 of nothing = %#x, want 0x726fdb47dd0e0e31", got)
	}
}

func tuple4() Tuple {
	return Tuple{Src: []byte{192, 0, 2, 1}, Dst: []byte{10, 1, 0, 100}, SrcPort: 40000, DstPort: 80}
}

// TestCookieRoundTrip: a cookie checks for its own tuple and ISN, keeps
// the options (MSS rounded down to the table), and fails for any change.
func TestCookieRoundTrip(t *testing.T) {
	c := NewCookies()
	for _, tc := range []struct {
		in   Options
		v6   bool
		want Options
	}{
		{Options{MSS: 1460, WScale: 7, SACK: true}, false, Options{MSS: 1460, WScale: 7, SACK: true}},
		{Options{MSS: 1400, WScale: -1}, false, Options{MSS: 1300, WScale: -1}},
		{Options{MSS: 100, WScale: 14}, false, Options{MSS: 536, WScale: 14}},
		{Options{MSS: 1440, WScale: 20}, false, Options{MSS: 1440, WScale: 14}},
		{Options{MSS: 9000, WScale: 0, SACK: true}, true, Options{MSS: 8940, WScale: 0, SACK: true}},
		{Options{MSS: 1280, WScale: -1}, true, Options{MSS: 1220, WScale: -1}},
	} {
		tu := tuple4()
		if tc.v6 {
			tu.Src = netip.MustParseAddr("2001:db8::1").AsSlice()
			tu.Dst = netip.MustParseAddr("fd00:1::100").AsSlice()
		}
		isn := uint32(0xfffffff0)
		ck := c.Make(&tu, isn, &tc.in)
		got, v := c.Check(&tu, isn, ck+1)
		if v != Valid || got != tc.want {
			t.Errorf("%+v: Check = %+v, %v; want %+v, Valid", tc.in, got, v, tc.want)
		}
		bad := []func(*Tuple, *uint32, *uint32){
			func(x *Tuple, _, _ *uint32) { x.SrcPort++ },
			func(x *Tuple, _, _ *uint32) { x.DstPort++ },
			func(x *Tuple, _, _ *uint32) { s := append([]byte(nil), x.Src...); s[len(s)-1]++; x.Src = s },
			func(x *Tuple, _, _ *uint32) { d := append([]byte(nil), x.Dst...); d[0]++; x.Dst = d },
			func(_ *Tuple, i, _ *uint32) { *i++ },
			func(_ *Tuple, _, a *uint32) { *a ^= 1 << 24 }, // the wscale bits
			func(_ *Tuple, _, a *uint32) { *a ^= 1 << 29 }, // the MSS bits
			func(_ *Tuple, _, a *uint32) { *a ^= 1 << 3 },  // the mac
		}
		for i, f := range bad {
			x, i2, a := tu, isn, ck+1
			f(&x, &i2, &a)
			if _, v := c.Check(&x, i2, a); v == Valid {
				t.Errorf("%+v: change %d still checks", tc.in, i)
			}
		}
	}
}

// TestCookieRotation: a cookie is valid in its period and the next, stale
// after that; a jump of several periods leaves nothing valid; another
// Cookies' secrets do not check it.
func TestCookieRotation(t *testing.T) {
	c := NewCookies()
	tu := tuple4()
	o := Options{MSS: 1460, WScale: -1}
	ck := c.Make(&tu, 1, &o)
	c.Rotate(1)
	if _, v := c.Check(&tu, 1, ck+1); v != Valid {
		t.Fatalf("after one rotation: %v, want Valid", v)
	}
	ck1 := c.Make(&tu, 1, &o)
	c.Rotate(2)
	if _, v := c.Check(&tu, 1, ck+1); v != Stale {
		t.Fatalf("after two rotations: %v, want Stale", v)
	}
	if _, v := c.Check(&tu, 1, ck1+1); v != Valid {
		t.Fatalf("period 1's cookie in period 2: %v, want Valid", v)
	}
	c.Rotate(9)
	if _, v := c.Check(&tu, 1, ck1+1); v == Valid {
		t.Fatalf("period 1's cookie after a jump to 9: Valid")
	}
	other := NewCookies()
	if _, v := other.Check(&tu, 1, c.Make(&tu, 1, &o)+1); v == Valid {
		t.Fatal("a cookie checks under another node's secret")
	}
}

func TestCookieAllocs(t *testing.T) {
	c := NewCookies()
	tu := tuple4()
	o := Options{MSS: 1460, WScale: 7, SACK: true}
	if n := testing.AllocsPerRun(100, func() {
		ck := c.Make(&tu, 5, &o)
		if _, v := c.Check(&tu, 5, ck+1); v != Valid {
			t.Fatal("invalid")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per cookie", n)
	}
}

// TestOptionsWriteParse: what writeOptions writes, ParseOptions reads back,
// in a length optionsLen predicts and a multiple of 4.
func TestOptionsWriteParse(t *testing.T) {
	for _, o := range []Options{
		{WScale: -1},
		{MSS: 1460, WScale: -1},
		{MSS: 1460, WScale: 7, SACK: true, TS: true, TSVal: 1, TSEcr: 2},
		{MSS: 536, WScale: 0, SACK: true},
		{WScale: 14, TS: true, TSVal: 0xffffffff},
		{MSS: 1220, WScale: -1, SACK: true, TS: true},
	} {
		var b [40]byte
		n := writeOptions(b[:], &o)
		if n != optionsLen(&o) || n%4 != 0 {
			t.Errorf("%+v: wrote %d bytes, optionsLen %d", o, n, optionsLen(&o))
		}
		got, err := ParseOptions(b[:n])
		if err != nil || got != o {
			t.Errorf("%+v: parsed back %+v, %v", o, got, err)
		}
	}
	for _, bad := range [][]byte{
		{optMSS},                     // no length
		{optMSS, 1, 0, 0},            // length below 2
		{optMSS, 6, 0, 0},            // past the end
		{optMSS, 3, 0},               // wrong length
		{optTS, 8, 0, 0, 0, 0, 0, 0}, // wrong length
		{optWScale, 4, 0, 0},
		{optSACKPerm, 3, 0},
		{99, 0},
	} {
		if _, err := ParseOptions(bad); err != ErrOptions {
			t.Errorf("%x: %v, want ErrOptions", bad, err)
		}
	}
	// unknown options skipped, EOL ends the list
	if o, err := ParseOptions([]byte{99, 3, 0, optNOP, optEOL, optMSS, 1}); err != nil || o.MSS != 0 {
		t.Errorf("unknown + EOL: %+v %v", o, err)
	}
}

// segment builds an IPv4 TCP segment with the given options area and a
// correct checksum, and returns the packet and its TCP part.
func segment(opts []byte, seq, ack uint32, win uint16, payload []byte) (l3, tcp []byte) {
	src, dst := netip.MustParseAddr("10.2.0.100"), netip.MustParseAddr("10.2.0.11")
	hl := 20 + 20 + len(opts)
	l3 = make([]byte, hl+len(payload))
	header.IPv4(l3).Encode(&header.IPv4Fields{TotalLen: uint16(len(l3)), TTL: 64, Protocol: header.ProtoTCP, Src: src, Dst: dst})
	tcp = l3[20:]
	binary.BigEndian.PutUint16(tcp[0:], 1024)
	binary.BigEndian.PutUint16(tcp[2:], 80)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12] = byte((20+len(opts))/4) << 4
	tcp[13] = header.TCPFlagACK
	binary.BigEndian.PutUint16(tcp[14:], win)
	copy(tcp[20:], opts)
	copy(tcp[20+len(opts):], payload)
	header.TCP(tcp).SetChecksum(header.TransportChecksum(header.ProtoTCP, l3[12:16], l3[16:20], tcp, 16))
	return l3, tcp
}

func checksumOK(l3, tcp []byte) bool {
	return header.TransportChecksum(header.ProtoTCP, l3[12:16], l3[16:20], tcp, 16) == header.TCP(tcp).Checksum()
}

// TestShift: ShiftIn moves ack, SACK edges and TSecr up; ShiftOut moves
// seq and TSval down and rescales the window; checksums stay right for
// options at odd and even offsets; wrap-around works.
func TestShift(t *testing.T) {
	// NOP, SACK with two blocks (18), NOP, NOP, TS (10): 32 bytes; the
	// SACK edges sit at odd offsets
	opts := []byte{optNOP, optSACK, 18,
		0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 16, 0, 0, 1, 0, 0, 0, 2, 0,
		optNOP, optNOP, optTS, 10, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, optEOL}
	l3, tcp := segment(opts, 100, 0xfffffff0, 1000, []byte("data"))
	if err := ShiftIn(tcp, 0x20, 3, 7, 0); err != nil {
		t.Fatal(err)
	}
	th := header.TCP(tcp)
	if th.Ack() != 0x10 || th.Seq() != 100 || th.Window() != 0xffff {
		t.Errorf("ShiftIn: seq %d ack %#x win %d, want 100 0x10 65535 (1000<<7 saturates)", th.Seq(), th.Ack(), th.Window())
	}
	edges := []uint32{binary.BigEndian.Uint32(tcp[23:]), binary.BigEndian.Uint32(tcp[27:]), binary.BigEndian.Uint32(tcp[31:]), binary.BigEndian.Uint32(tcp[35:])}
	if edges[0] != 0x10 || edges[1] != 0x30 || edges[2] != 0x120 || edges[3] != 0x220 {
		t.Errorf("SACK edges %#x", edges)
	}
	if v, e := binary.BigEndian.Uint32(tcp[43:]), binary.BigEndian.Uint32(tcp[47:]); v != 5 || e != 2 {
		t.Errorf("TS %d/%d, want 5/2 (echo wrapped)", v, e)
	}
	if !checksumOK(l3, tcp) {
		t.Error("ShiftIn: checksum wrong")
	}

	l3, tcp = segment(opts, 5, 7, 1000, nil)
	if err := ShiftOut(tcp, 10, 6, 9, 7); err != nil {
		t.Fatal(err)
	}
	th = header.TCP(tcp)
	if th.Seq() != 0xfffffffb || th.Ack() != 7 || th.Window() != 4000 {
		t.Errorf("ShiftOut: seq %#x ack %d win %d, want 0xfffffffb 7 4000", th.Seq(), th.Ack(), th.Window())
	}
	if e := binary.BigEndian.Uint32(tcp[23:]); e != 0xfffffff0 {
		t.Errorf("ShiftOut moved a SACK edge to %#x", e)
	}
	if v := binary.BigEndian.Uint32(tcp[43:]); v != 0xffffffff {
		t.Errorf("TSval %#x, want 0xffffffff (5-6)", v)
	}
	if !checksumOK(l3, tcp) {
		t.Error("ShiftOut: checksum wrong")
	}
	for _, bad := range [][]byte{{optSACK, 9, 0, 0, 0, 0, 0, 0, 0, 0, optNOP, optNOP}, {optTS, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {optMSS, 8, 0, 0}} {
		l3, tcp := segment(bad, 1, 2, 3, nil)
		was := append([]byte(nil), l3...)
		if ShiftIn(tcp, 1, 1, 0, 0) != ErrOptions || ShiftOut(tcp, 1, 1, 0, 0) != ErrOptions {
			t.Errorf("%x: not refused", bad)
		}
		if string(was) != string(l3) {
			t.Errorf("%x: changed before refusing", bad)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		_ = ShiftIn(tcp, 1, 1, 7, 7)
		_ = ShiftOut(tcp, 1, 1, 7, 7)
	}); n != 0 {
		t.Errorf("%v allocations per shift", n)
	}
}

// TestSegmentWrite: a written segment has valid checksums and the fields
// given, IPv4 and IPv6.
func TestSegmentWrite(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		s := Segment{Src: netip.MustParseAddr("10.1.0.100"), Dst: netip.MustParseAddr("192.0.2.1"), SrcPort: 80, DstPort: 4000,
			Seq: 7, Ack: 9, Flags: header.TCPFlagSYN | header.TCPFlagACK, Window: 65535, TTL: 63,
			Opts: Options{MSS: 1452, WScale: 7, SACK: true, TS: true, TSVal: 3, TSEcr: 4}}
		if v6 {
			s.Src, s.Dst = netip.MustParseAddr("fd00:1::100"), netip.MustParseAddr("2001:db8::1")
		}
		b := make([]byte, s.HeaderLen()+3)
		copy(b[s.HeaderLen():], "abc")
		n := s.Write(b, 3)
		if n != len(b) {
			t.Fatalf("length %d, want %d", n, len(b))
		}
		var tr header.Transport
		var ok bool
		if tr, ok = header.Locate(b); !ok {
			t.Fatal("not a packet")
		}
		tcp := b[tr.Off:]
		var src, dst []byte
		if v6 {
			src, dst = header.IPv6(b).SrcBytes(), header.IPv6(b).DstBytes()
		} else {
			src, dst = header.IPv4(b).SrcBytes(), header.IPv4(b).DstBytes()
			if header.Checksum(b[:20], 0) != 0xffff {
				t.Error("IPv4 header checksum")
			}
		}
		if header.TransportChecksum(header.ProtoTCP, src, dst, tcp, 16) != header.TCP(tcp).Checksum() {
			t.Error("TCP checksum")
		}
		th := header.TCP(tcp)
		o, err := ParseOptions(tcp[20:th.DataOffset()])
		if err != nil || o != s.Opts || th.Seq() != 7 || th.Ack() != 9 || string(tcp[th.DataOffset():]) != "abc" {
			t.Errorf("v6=%v: options %+v %v seq %d ack %d payload %q", v6, o, err, th.Seq(), th.Ack(), tcp[th.DataOffset():])
		}
	}
}
