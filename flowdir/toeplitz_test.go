package flowdir

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// The published RSS verification vectors (input: source, destination,
// source port, destination port).
var vectors = []struct {
	src, dst         string
	sport, dport     uint16
	withPorts, addrs uint32
}{
	{"66.9.149.187", "161.142.100.80", 2794, 1766, 0x51ccc178, 0x323e8fc2},
	{"199.92.111.2", "65.69.140.83", 14230, 4739, 0xc626b0ea, 0xd718262a},
	{"24.19.198.95", "12.22.207.184", 12898, 38024, 0x5c2b394a, 0xd2d0a5de},
	{"38.27.205.30", "209.142.163.6", 48228, 2217, 0xafc7327f, 0x82989176},
	{"153.39.163.191", "202.188.127.2", 44251, 1303, 0x10e828a2, 0x5d1809c5},
	{"3ffe:2501:200:1fff::7", "3ffe:2501:200:3::1", 2794, 1766, 0x40207d3d, 0x2cc18cd5},
	{"3ffe:501:8::260:97ff:fe40:efab", "ff02::1", 14230, 4739, 0xdde51bbf, 0x0f0c461c},
	{"3ffe:1900:4545:3:200:f8ff:fe21:67cf", "fe80::200:f8ff:fe21:67cf", 44251, 38024, 0x02d1feef, 0x4b61e985},
}

func TestToeplitzVectors(t *testing.T) {
	tp := NewToeplitz(DefaultRSSKey[:])
	for _, v := range vectors {
		src, dst := netip.MustParseAddr(v.src), netip.MustParseAddr(v.dst)
		if got := tp.Hash4Tuple(src, dst, v.sport, v.dport, true); got != v.withPorts {
			t.Errorf("%s:%d -> %s:%d = %#08x, want %#08x", v.src, v.sport, v.dst, v.dport, got, v.withPorts)
		}
		if got := tp.Hash4Tuple(src, dst, 0, 0, false); got != v.addrs {
			t.Errorf("%s -> %s = %#08x, want %#08x", v.src, v.dst, got, v.addrs)
		}
	}
}

// reference computes the hash bit by bit, as the specification describes.
func reference(key, input []byte) uint32 {
	var h uint32
	for i := 0; i < len(input)*8; i++ {
		if input[i/8]&(0x80>>(i%8)) != 0 {
			h ^= window(key, i)
		}
	}
	return h
}

func TestToeplitzAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	key := make([]byte, 40)
	for i := range key {
		key[i] = byte(rng.Uint32())
	}
	tp := NewToeplitz(key)
	for i := 0; i < 2000; i++ {
		in := make([]byte, rng.IntN(37))
		for j := range in {
			in[j] = byte(rng.Uint32())
		}
		if got, want := tp.Hash(in), reference(key, in); got != want {
			t.Fatalf("Hash(%x) = %#x, want %#x", in, got, want)
		}
	}
}

func TestToeplitzAllocs(t *testing.T) {
	tp := NewToeplitz(DefaultRSSKey[:])
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	if n := testing.AllocsPerRun(100, func() { tp.Hash4Tuple(a, b, 1, 2, true) }); n != 0 {
		t.Errorf("allocs = %v", n)
	}
}

func BenchmarkHash4TupleIPv4(b *testing.B) {
	tp := NewToeplitz(DefaultRSSKey[:])
	s, d := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	b.ReportAllocs()
	for b.Loop() {
		tp.Hash4Tuple(s, d, 1234, 80, true)
	}
}
