package sched

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// modelDH is ip_vs_dh step by step: the table gives bucket b the (b mod
// n)-th dest in list order; the bucket of a destination address is its
// 32-bit fold (IPv6: xor of the four words) times 2654435761 (an unsigned
// long), masked to 8 bits; the bucket's dest is used if it is available,
// else there is no dest.
func modelDH(k *kstate, dst netip.Addr) int {
	var fold uint32
	if dst.Is4() || dst.Is4In6() {
		a := dst.Unmap().As4()
		fold = binary.BigEndian.Uint32(a[:])
	} else {
		a := dst.As16()
		for w := 0; w < 16; w += 4 {
			fold ^= binary.BigEndian.Uint32(a[w : w+4])
		}
	}
	bucket := uint64(fold) * 2654435761 & 255
	d := int(bucket) % len(k.w)
	if !k.avail(d) {
		return -1
	}
	return d
}

func TestDHMatchesKernelModel(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for round := range 300 {
		k := randKState(r)
		ds := k.dests()
		s := mustNew(t, "dh", ds, Options{})
		for pick := range 300 {
			var dst netip.Addr
			if pick%3 == 0 {
				var a [16]byte
				binary.BigEndian.PutUint64(a[:8], r.Uint64())
				binary.BigEndian.PutUint64(a[8:], r.Uint64())
				dst = netip.AddrFrom16(a)
			} else {
				var a [4]byte
				binary.BigEndian.PutUint32(a[:], r.Uint32())
				dst = netip.AddrFrom4(a)
			}
			want := modelDH(k, dst)
			if got := s.Pick(&Flow{Dst: dst}); got != want {
				t.Fatalf("round %d pick %d: %d dests, dst %s: got %d, want %d", round, pick, len(k.w), dst, got, want)
			}
			k.churn(r, want)
			k.apply(ds)
		}
	}
}

// The bucket depends on the destination only: not on the source, the ports,
// the worker or the order of picks; weights do not change the shares (LVS's
// dh table ignores them), quiescing a dest refuses its destinations without
// moving the others.
func TestDHDistribution(t *testing.T) {
	ds := mkDests(1, 5, 2, 1)
	s := mustNew(t, "dh", ds, Options{})
	other := mustNew(t, "dh", mkDests(1, 5, 2, 1), Options{})
	fs := randFlows(5, 100_000)
	counts := make([]int, 4)
	before := make([]int, len(fs))
	for i := range fs {
		fs[i].Dst = fs[i].Src // many destinations
		d := s.Pick(&fs[i])
		g := fs[i]
		g.Src, g.SrcPort = netip.MustParseAddr("203.0.113.9"), 1234
		if d < 0 || other.Pick(&g) != d {
			t.Fatalf("flow %d: dest %d, another source or instance disagrees", i, d)
		}
		counts[d]++
		before[i] = d
	}
	for i, c := range counts {
		if got := float64(c) / float64(len(fs)); got < 0.24 || got > 0.26 {
			t.Errorf("dest %d: share %.4f, want 0.25 ± 0.01 (counts %v)", i, got, counts)
		}
	}
	ds2 := mkDests(1, 0, 2, 1)
	q := mustNew(t, "dh", ds2, Options{})
	for i := range fs {
		d := q.Pick(&fs[i])
		if before[i] == 1 && d != -1 || before[i] != 1 && d != before[i] {
			t.Fatalf("flow %d: dest 1 quiesced: got %d, was %d", i, d, before[i])
		}
	}
}

func TestDHBucket(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want uint8
	}{
		{"0.0.0.1", 0xb1}, // 2654435761 = 0x9E3779B1
		{"10.0.0.1", 0xb1},
		{"10.9.8.2", 0x62},
		{"::ffff:10.9.8.2", 0x62},
		{"2001:db8::1", uint8((0x20010db8 ^ 1) * 0xb1 & 0xff)},
	} {
		if got := dhBucket(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("dhBucket(%s) = %#x, want %#x", tc.addr, got, tc.want)
		}
	}
}

func BenchmarkDHPick(b *testing.B) { benchPick(b, "dh", Options{}) }
