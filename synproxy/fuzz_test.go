package synproxy

import (
	"testing"
)

// FuzzParseOptions: any option area parses or is ErrOptions, and the
// shifts accept exactly the lists the walk accepts, keeping the checksum
// right and changing nothing when they refuse.
func FuzzParseOptions(f *testing.F) {
	f.Add([]byte{optMSS, 4, 5, 0xb4, optNOP, optWScale, 3, 7}, uint32(5), uint32(9))
	f.Add([]byte{optNOP, optSACK, 10, 0, 0, 0, 1, 0, 0, 0, 2, optNOP, optNOP, optTS, 10, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0}, uint32(1<<31), uint32(3))
	f.Add([]byte{optTS, 0}, uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, opts []byte, seqDelta, tsDelta uint32) {
		_, perr := ParseOptions(opts)
		if len(opts) > 40 {
			opts = opts[:40]
		}
		opts = append(opts, make([]byte, (4-len(opts)%4)%4)...)
		l3, tcp := segment(opts, 1, 2, 3, []byte{1, 2, 3})
		was := string(l3)
		err := ShiftIn(tcp, seqDelta, tsDelta, 3, 1)
		if err != nil && string(l3) != was {
			t.Fatal("ShiftIn changed a refused segment")
		}
		if !checksumOK(l3, tcp) {
			t.Fatal("ShiftIn: checksum wrong")
		}
		if err2 := ShiftOut(tcp, seqDelta, tsDelta, 1, 3); (err2 == nil) != (err == nil) || !checksumOK(l3, tcp) {
			t.Fatalf("ShiftOut: %v after ShiftIn %v, or checksum wrong", err2, err)
		}
		_ = perr
	})
}

// FuzzCookieCheck: any ACK is Valid, Bad or Stale without panicking, and
// a Valid one returns options from the table.
func FuzzCookieCheck(f *testing.F) {
	c := NewCookies()
	tu := tuple4()
	o := Options{MSS: 1460, WScale: 3}
	f.Add([]byte{192, 0, 2, 1}, uint16(1), uint32(5), c.Make(&tu, 5, &o)+1)
	f.Add(make([]byte, 16), uint16(0), uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, src []byte, port uint16, isn, ack uint32) {
		if len(src) != 4 && len(src) != 16 {
			return
		}
		x := Tuple{Src: src, Dst: src, SrcPort: port, DstPort: 80}
		got, v := c.Check(&x, isn, ack)
		switch v {
		case Valid:
			if got.MSS < 536 || got.WScale > 14 {
				t.Fatalf("valid cookie with options %+v", got)
			}
		case Bad, Stale:
		default:
			t.Fatalf("verdict %d", v)
		}
	})
}
