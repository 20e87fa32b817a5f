package header

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
)

// refChecksum is RFC 1071 done the slow, obvious way: one big-endian byte
// pair at a time, an odd last byte padded with zero, the end-around carry
// added back after every word. The optimised Checksum must agree with it
// exactly, including which of 0x0000/0xffff it returns.
func refChecksum(b []byte, initial uint16) uint16 {
	sum := uint32(initial)
	for i := 0; i < len(b); i += 2 {
		w := uint32(b[i]) << 8
		if i+1 < len(b) {
			w |= uint32(b[i+1])
		}
		sum += w
		if sum > 0xffff {
			sum -= 0xffff // (sum & 0xffff) + carry
		}
	}
	return uint16(sum)
}

// newRand returns a deterministic generator: a failure reproduces.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// randData is random bytes, or with some probability data made to stress the
// carries (all 0xff, mostly 0xff, all zero).
func randData(r *rand.Rand, n int) []byte {
	b := randBytes(r, n)
	switch r.IntN(8) {
	case 0:
		for i := range b {
			b[i] = 0xff
		}
	case 1:
		for i := range b {
			if r.IntN(16) != 0 {
				b[i] = 0xff
			}
		}
	case 2:
		clear(b)
	}
	return b
}

func randInitial(r *rand.Rand) uint16 {
	switch r.IntN(6) {
	case 0:
		return 0
	case 1:
		return 0xffff
	}
	return uint16(r.Uint32())
}

func randAddr4(r *rand.Rand) netip.Addr { return netip.AddrFrom4([4]byte(randBytes(r, 4))) }
func randAddr6(r *rand.Rand) netip.Addr { return netip.AddrFrom16([16]byte(randBytes(r, 16))) }

func TestChecksumKnown(t *testing.T) {
	for _, c := range []struct {
		in      []byte
		initial uint16
		want    uint16
	}{
		{nil, 0, 0},
		{nil, 0x1234, 0x1234},
		{[]byte{0x01}, 0, 0x0100},
		{[]byte{0xff, 0xff}, 0, 0xffff},
		{[]byte{0xff, 0xff}, 0xffff, 0xffff},
		{[]byte{0x00, 0x01}, 0xffff, 0x0001},
		// RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to dd f2
		{[]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0, 0xddf2},
		{bytes.Repeat([]byte{0xff}, 1999), 0, 0xff00}, // 999 × 0xffff + 0xff00
	} {
		if got := Checksum(c.in, c.initial); got != c.want {
			t.Errorf("Checksum(len %d, %#04x) = %#04x, want %#04x", len(c.in), c.initial, got, c.want)
		}
	}
}

func TestChecksumMatchesReference(t *testing.T) {
	r := newRand(1)
	for i := 0; i < 4000; i++ {
		n := r.IntN(2001)
		b := randData(r, n)
		init := randInitial(r)
		want := refChecksum(b, init)
		if got := Checksum(b, init); got != want {
			t.Fatalf("len %d initial %#04x: Checksum = %#04x, reference %#04x", n, init, got, want)
		}
		// Chaining at an even split is what the pseudo-header and
		// skip-the-checksum-field callers rely on.
		k := r.IntN(n/2+1) * 2
		if got := Checksum(b[k:], Checksum(b[:k], init)); got != want {
			t.Fatalf("len %d split %d: chained = %#04x, want %#04x", n, k, got, want)
		}
		// ChecksumCombine of two partial sums equals the sum of both parts.
		if got := ChecksumCombine(Checksum(b[:k], init), Checksum(b[k:], 0)); got != want {
			t.Fatalf("len %d split %d: combined = %#04x, want %#04x", n, k, got, want)
		}
	}
}

// Every offset and length around the 8-byte fast loop's boundaries.
func TestChecksumAlignment(t *testing.T) {
	r := newRand(2)
	buf := randData(r, 64)
	for off := 0; off < 9; off++ {
		for n := 0; off+n <= len(buf); n++ {
			b := buf[off : off+n]
			if got, want := Checksum(b, 0x4321), refChecksum(b, 0x4321); got != want {
				t.Fatalf("offset %d len %d: %#04x, want %#04x", off, n, got, want)
			}
		}
	}
}

func TestPseudoHeaderChecksum(t *testing.T) {
	r := newRand(3)
	for i := 0; i < 1000; i++ {
		proto := uint8(r.Uint32())
		length := uint16(r.Uint32())
		var src, dst, ph []byte
		if r.IntN(2) == 0 {
			src, dst = randData(r, 4), randData(r, 4)
			// RFC 768/793: src, dst, zero, protocol, length (16 bits)
			ph = append(append(append([]byte{}, src...), dst...), 0, proto, byte(length>>8), byte(length))
		} else {
			src, dst = randData(r, 16), randData(r, 16)
			// RFC 8200 8.1: src, dst, length (32 bits), zero (24), next header
			ph = append(append(append([]byte{}, src...), dst...), 0, 0, byte(length>>8), byte(length), 0, 0, 0, proto)
		}
		if got, want := PseudoHeaderChecksum(proto, src, dst, length), refChecksum(ph, 0); got != want {
			t.Fatalf("pseudo-header % x: %#04x, want %#04x", ph, got, want)
		}
	}
}

// The example of RFC 1624 section 4, where eqn. 2 gives
// 0xffff and eqn. 3 the correct 0x0000.
func TestChecksumUpdateRFC1624Example(t *testing.T) {
	if got := ChecksumUpdate16(0xdd2f, 0x5555, 0x3285); got != 0x0000 {
		t.Errorf("ChecksumUpdate16(0xdd2f, 0x5555, 0x3285) = %#04x, want 0x0000", got)
	}
	if got := ChecksumUpdate(0xdd2f, []byte{0x55, 0x55}, []byte{0x32, 0x85}); got != 0x0000 {
		t.Errorf("ChecksumUpdate = %#04x, want 0x0000", got)
	}
}

// onesEqual reports whether two checksum field values are the same number
// in one's complement (0x0000 and 0xffff are both zero).
func onesEqual(a, b uint16) bool {
	return a == b || (a == 0 || a == 0xffff) && (b == 0 || b == 0xffff)
}

// TestChecksumUpdateIncremental rewrites random 2, 4 and 16-byte fields of
// random packets (as NAT rewrites ports and addresses) and checks the
// incrementally updated checksum against recomputing it from scratch.
func TestChecksumUpdateIncremental(t *testing.T) {
	r := newRand(4)
	widths := []int{2, 4, 16}
	for i := 0; i < 3000; i++ {
		n := 20 + r.IntN(1481) // odd lengths too: the tail byte is padded
		pkt := randData(r, n)
		ck := 2 * r.IntN(n/2) // checksum field at an even offset
		pkt[ck], pkt[ck+1] = 0, 0
		binary.BigEndian.PutUint16(pkt[ck:], ^refChecksum(pkt, 0))
		if refChecksum(pkt, 0) != 0xffff {
			t.Fatalf("setup: checksum does not check out")
		}
		for u := 0; u < 1+r.IntN(5); u++ {
			w := widths[r.IntN(len(widths))]
			if w+2 > n {
				continue
			}
			// an even offset not overlapping the checksum field
			f := 2 * r.IntN((n-w)/2+1)
			if f < ck+2 && ck < f+w {
				continue
			}
			old := append([]byte(nil), pkt[f:f+w]...)
			var nw []byte
			switch r.IntN(6) {
			case 0:
				nw = append([]byte(nil), old...) // unchanged
			case 1:
				nw = make([]byte, w)
			case 2:
				nw = bytes.Repeat([]byte{0xff}, w)
			default:
				nw = randBytes(r, w)
			}
			cur := binary.BigEndian.Uint16(pkt[ck:])
			got := ChecksumUpdate(cur, old, nw)
			if w == 2 {
				if g16 := ChecksumUpdate16(cur, binary.BigEndian.Uint16(old), binary.BigEndian.Uint16(nw)); g16 != got {
					t.Fatalf("ChecksumUpdate16 = %#04x, ChecksumUpdate = %#04x", g16, got)
				}
			}
			copy(pkt[f:], nw)
			binary.BigEndian.PutUint16(pkt[ck:], got)
			// Data that is all zero apart from the checksum is the one case
			// where 0x0000 (what eqn. 3 gives) does not verify and only
			// 0xffff does; no IP, TCP or UDP header is all zero.
			if s := refChecksum(pkt, 0); s != 0xffff && !(got == 0 && allZero(pkt)) {
				t.Fatalf("len %d ck@%d field@%d/%d %x->%x: checksum %#04x does not verify (sum %#04x)",
					n, ck, f, w, old, nw, got, s)
			}
			pkt[ck], pkt[ck+1] = 0, 0
			full := ^refChecksum(pkt, 0)
			binary.BigEndian.PutUint16(pkt[ck:], got)
			if !onesEqual(got, full) {
				t.Fatalf("incremental %#04x, recomputed %#04x", got, full)
			}
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func TestChecksumAllocs(t *testing.T) {
	b := randBytes(newRand(5), 1500)
	old, nw := b[12:16], b[16:20]
	if a := testing.AllocsPerRun(100, func() {
		_ = Checksum(b, 0)
		_ = ChecksumUpdate(0x1234, old, nw)
		_ = PseudoHeaderChecksum(ProtoTCP, old, nw, 1480)
	}); a != 0 {
		t.Errorf("%v allocations per run", a)
	}
}

func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{20, 64, 1500} {
		data := randBytes(newRand(6), n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				_ = Checksum(data, 0)
			}
		})
	}
}

func BenchmarkChecksumUpdate(b *testing.B) {
	old, nw := []byte{10, 0, 0, 1}, []byte{192, 0, 2, 77}
	b.ReportAllocs()
	for b.Loop() {
		_ = ChecksumUpdate(0x1c46, old, nw)
	}
}
