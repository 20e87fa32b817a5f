package addrmap

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

func randAddr(r *rand.Rand) netip.Addr {
	if r.IntN(2) == 0 {
		return netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32() | 1)})
	}
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[15] |= 1
	return netip.AddrFrom16(b)
}

// TestMatchesGoMap: for random sets of every size up to a few thousand,
// Get, Has, Get4 and All agree with a Go map, for members and others.
func TestMatchesGoMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 7, 8, 9, 100, 1000, 5000} {
		src := map[netip.Addr]int{}
		for len(src) < n {
			src[randAddr(r)] = r.Int()
		}
		m, err := Build(src)
		if err != nil {
			t.Fatal(err)
		}
		if m.Len() != n {
			t.Fatalf("Len %d, want %d", m.Len(), n)
		}
		for a, v := range src {
			if got, ok := m.Get(a); !ok || got != v || !m.Has(a) {
				t.Fatalf("n=%d Get(%s) = %d %v, want %d", n, a, got, ok, v)
			}
			if a.Is4() {
				b := a.As4()
				if got, ok := m.Get4(b[:]); !ok || got != v {
					t.Fatalf("Get4(%s) = %d %v", a, got, ok)
				}
				// the v4-mapped form is the same key
				if got, ok := m.Get(netip.AddrFrom16(a.As16())); !ok || got != v {
					t.Fatalf("Get(%s mapped) = %d %v", a, got, ok)
				}
				if !m.Has4(b[:]) {
					t.Fatalf("Has4(%s) false", a)
				}
			}
			b16 := a.As16()
			if got, ok := m.Get16(b16[:]); !ok || got != v || !m.Has16(b16[:]) {
				t.Fatalf("Get16(%s) = %d %v", a, got, ok)
			}
		}
		for i := 0; i < 1000; i++ {
			a := randAddr(r)
			_, in := src[a]
			b16 := a.As16()
			if _, ok := m.Get(a); ok != in || m.Has(a) != in || m.Has16(b16[:]) != in {
				t.Fatalf("n=%d Get(%s) found=%v, member=%v", n, a, ok, in)
			}
		}
		seen := 0
		m.All(func(a netip.Addr, v int) bool {
			if src[a] != v {
				t.Fatalf("All: %s=%d, want %d", a, v, src[a])
			}
			seen++
			return true
		})
		if seen != n {
			t.Fatalf("All visited %d, want %d", seen, n)
		}
	}
}

func TestZoneIgnoredAndUnspecifiedRefused(t *testing.T) {
	ll := netip.MustParseAddr("fe80::1")
	m := MustBuild(map[netip.Addr]bool{ll: true})
	if !m.Has(ll.WithZone("eth0")) {
		t.Error("a zoned address does not find its entry")
	}
	if _, err := Build(map[netip.Addr]bool{netip.IPv6Unspecified(): true}); err != ErrUnspecified {
		t.Errorf("Build(::) = %v", err)
	}
	// 0.0.0.0 is v4-mapped, not all zero: a valid key
	if m, err := Build(map[netip.Addr]bool{netip.IPv4Unspecified(): true}); err != nil || !m.Has(netip.IPv4Unspecified()) {
		t.Errorf("0.0.0.0: %v", err)
	}
	var empty Map[int]
	if empty.Has(ll) || empty.Len() != 0 {
		t.Error("the zero Map is not empty")
	}
}

func TestNoAllocations(t *testing.T) {
	a := netip.MustParseAddr("10.1.0.100")
	m := MustBuild(map[netip.Addr]uint16{a: 3, netip.MustParseAddr("fd00::1"): 4})
	b := a.As4()
	if n := testing.AllocsPerRun(1000, func() {
		m.Get(a)
		m.Get4(b[:])
		m.Has(netip.MustParseAddr("fd00::2"))
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// BenchmarkLookup compares a lookup with a Go map keyed by netip.Addr
// (run: go test -bench . ./internal/addrmap/).
func BenchmarkLookup(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	src := map[netip.Addr]uint16{}
	var keys []netip.Addr
	for len(src) < 64 {
		a := randAddr(r)
		src[a] = 1
		keys = append(keys, a)
	}
	m := MustBuild(src)
	b.Run("addrmap", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			m.Get(keys[i&63])
		}
	})
	b.Run("gomap", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_ = src[keys[i&63]]
		}
	})
}
