package route

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestLookupLongestPrefix(t *testing.T) {
	tb, err := New([]Route{
		{Dst: mustPrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.0.254"), Iface: 1, Scope: ScopeGlobal},
		{Dst: mustPrefix("10.0.0.0/8"), Iface: 2, Scope: ScopeLink},
		{Dst: mustPrefix("10.1.0.0/16"), Iface: 3},
		{Dst: mustPrefix("10.1.2.0/24"), Iface: 4},
		{Dst: mustPrefix("10.1.2.3/32"), Iface: 5},
		{Dst: mustPrefix("10.1.2.0/24"), Iface: 6, Metric: 10},
		{Dst: mustPrefix("::/0"), Iface: 7},
		{Dst: mustPrefix("fd00::/64"), Iface: 8},
		{Dst: mustPrefix("fd00::1/128"), Iface: 9},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		dst   string
		iface uint16
	}{
		{"10.1.2.3", 5}, {"10.1.2.4", 4}, {"10.1.3.1", 3}, {"10.2.0.1", 2}, {"192.0.2.1", 1},
		{"fd00::1", 9}, {"fd00::2", 8}, {"2001:db8::1", 7},
	}
	for _, c := range cases {
		r := tb.Lookup(netip.MustParseAddr(c.dst))
		if r == nil || r.Iface != c.iface {
			t.Errorf("Lookup(%s) = %v, want iface %d", c.dst, r, c.iface)
		}
	}
	if r := tb.Lookup(netip.MustParseAddr("192.0.2.1")); r.NextHop(netip.MustParseAddr("192.0.2.1")) != netip.MustParseAddr("10.0.0.254") {
		t.Errorf("default route next hop = %v", r.NextHop(netip.MustParseAddr("192.0.2.1")))
	}
}

func TestEmptyAndFamilies(t *testing.T) {
	tb, _ := New([]Route{{Dst: mustPrefix("10.0.0.0/8"), Iface: 1}})
	if tb.Lookup(netip.MustParseAddr("fd00::1")) != nil {
		t.Error("IPv6 lookup matched an IPv4 route")
	}
	var nilT *Table
	if nilT.Lookup(netip.MustParseAddr("10.0.0.1")) != nil {
		t.Error("nil table matched")
	}
}

func TestDuplicateRefused(t *testing.T) {
	_, err := New([]Route{{Dst: mustPrefix("10.0.0.0/8")}, {Dst: mustPrefix("10.0.0.0/8")}})
	if err == nil {
		t.Fatal("duplicate accepted")
	}
}

func TestAddDelete(t *testing.T) {
	tb, _ := New(nil)
	tb, err := tb.Add(Route{Dst: mustPrefix("10.9.0.0/16"), Gateway: netip.MustParseAddr("10.0.0.1"), Iface: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Add(Route{Dst: mustPrefix("10.9.0.0/16"), Iface: 2}); err == nil {
		t.Error("duplicate add accepted")
	}
	if tb.Lookup(netip.MustParseAddr("10.9.1.1")) == nil {
		t.Fatal("added route not found")
	}
	tb2, err := tb.Delete(mustPrefix("10.9.0.0/16"), netip.Addr{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if tb2.Lookup(netip.MustParseAddr("10.9.1.1")) != nil {
		t.Error("deleted route still found")
	}
	if tb.Lookup(netip.MustParseAddr("10.9.1.1")) == nil {
		t.Error("old table changed by Delete")
	}
	if _, err := tb2.Delete(mustPrefix("10.9.0.0/16"), netip.Addr{}, false); err == nil {
		t.Error("deleting a missing route succeeded")
	}
}

// naive is the reference: scan all routes, keep the longest, then lowest metric.
func naive(routes []Route, dst netip.Addr) *Route {
	var best *Route
	for i := range routes {
		r := &routes[i]
		if !r.Dst.Contains(dst) {
			continue
		}
		if best == nil || r.Dst.Bits() > best.Dst.Bits() || (r.Dst.Bits() == best.Dst.Bits() && r.Metric < best.Metric) {
			best = r
		}
	}
	return best
}

func randAddr(rng *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		b[0] = 0xfd
		for i := 1; i < 16; i++ {
			b[i] = byte(rng.IntN(4)) // few distinct values so prefixes overlap
		}
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(4)), byte(rng.IntN(256))})
}

func TestLookupAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, v6 := range []bool{false, true} {
		maxBits := 32
		if v6 {
			maxBits = 128
		}
		var routes []Route
		seen := map[netip.Prefix]bool{}
		for len(routes) < 300 {
			p, _ := randAddr(rng, v6).Prefix(rng.IntN(maxBits + 1))
			if seen[p] {
				continue
			}
			seen[p] = true
			routes = append(routes, Route{Dst: p, Iface: uint16(len(routes))})
		}
		tb, err := New(routes)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5000; i++ {
			dst := randAddr(rng, v6)
			got, want := tb.Lookup(dst), naive(routes, dst)
			if (got == nil) != (want == nil) || (got != nil && got.Dst != want.Dst) {
				t.Fatalf("Lookup(%s) = %v, want %v", dst, got, want)
			}
		}
	}
}

func TestLookupAllocs(t *testing.T) {
	tb, _ := New([]Route{{Dst: mustPrefix("10.0.0.0/8")}, {Dst: mustPrefix("fd00::/16")}})
	a4, a6 := netip.MustParseAddr("10.1.1.1"), netip.MustParseAddr("fd00::1")
	if n := testing.AllocsPerRun(100, func() { tb.Lookup(a4); tb.Lookup(a6) }); n != 0 {
		t.Errorf("Lookup allocates %v per run", n)
	}
}

func BenchmarkLookup(b *testing.B) {
	var routes []Route
	for i := 0; i < 256; i++ {
		routes = append(routes, Route{Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16)})
	}
	routes = append(routes, Route{Dst: mustPrefix("0.0.0.0/0")})
	tb, _ := New(routes)
	dst := netip.MustParseAddr("10.77.1.1")
	b.ReportAllocs()
	for b.Loop() {
		tb.Lookup(dst)
	}
}
