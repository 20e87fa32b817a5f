package sched

import (
	"net/netip"
	"testing"
)

func shTable(t *testing.T, weights ...int) *sh {
	t.Helper()
	return mustNew(t, "sh", mkDests(weights...), Options{}).(*sh)
}

func bucketCounts(s *sh, n int) []int {
	c := make([]int, n)
	for _, i := range s.table {
		c[i]++
	}
	return c
}

// The table is filled as LVS does: weight consecutive buckets per dest, in
// list order, around and around; weight 0 still takes one bucket.
func TestSHTable(t *testing.T) {
	s := shTable(t, 1, 2, 3)
	want := []uint8{0, 1, 1, 2, 2, 2, 0, 1, 1, 2, 2, 2}
	for b, w := range want {
		if s.table[b] != w {
			t.Fatalf("weights 1,2,3: bucket %d = %d, want %d (table starts %v)", b, s.table[b], w, s.table[:12])
		}
	}
	// 42 whole cycles of 6 and A B B C: 43, 86, 127.
	for _, tc := range []struct {
		weights []int
		want    []int
	}{
		{[]int{1, 2, 3}, []int{43, 86, 127}},
		{[]int{100, 200, 300}, []int{43, 86, 127}}, // divided by the gcd (LVS: 100, 156, 0)
		{[]int{2, 0, 1}, []int{128, 64, 64}},       // cycle A A B C
		{[]int{1, 1, 1, 1}, []int{64, 64, 64, 64}},
		{[]int{300, 1}, []int{256, 0}}, // 300 buckets wanted: the first fills the table
	} {
		if got := bucketCounts(shTable(t, tc.weights...), len(tc.weights)); !equalInts(got, tc.want) {
			t.Errorf("weights %v: buckets %v, want %v", tc.weights, got, tc.want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// LVS's hash: (address + port) × 0x61C88647, top 8 bits; IPv6 folded by xor.
func TestSHBucket(t *testing.T) {
	for _, tc := range []struct {
		addr string
		port uint16
		want uint8
	}{
		{"0.0.0.1", 0, 0x61},        // 0x61C88647
		{"0.0.0.0", 1, 0x61},        // the port adds to the address
		{"0.0.0.2", 0, 0xc3},        // 0xC3910C8E
		{"::ffff:0.0.0.2", 0, 0xc3}, // IPv4-mapped hashes as IPv4
		{"::2", 0, 0xc3},            // 0 ^ 0 ^ 0 ^ 2
		{"1:0:1::1", 0, 0x61},       // 0x00010000 ^ 0x00010000 ^ 0 ^ 1
	} {
		if got := shBucket(netip.MustParseAddr(tc.addr), tc.port); got != tc.want {
			t.Errorf("shBucket(%s, %d) = %#x, want %#x", tc.addr, tc.port, got, tc.want)
		}
	}
}

func TestSHDistribution(t *testing.T) {
	w := []int{1, 2, 3}
	fs := randFlows(2, 100_000)
	checkShares(t, mustNew(t, "sh", mkDests(w...), Options{}), w, fs, 0.02)
	checkShares(t, mustNew(t, "sh", mkDests(w...), Options{Port: true}), w, fs, 0.02)
}

// The same source always gets the same dest: from one instance, from another
// one built alike (another worker), and whatever its source port.
func TestSHConsistent(t *testing.T) {
	ds := mkDests(1, 2, 3, 4)
	a := mustNew(t, "sh", ds, Options{})
	b := mustNew(t, "sh", mkDests(1, 2, 3, 4), Options{})
	for _, f := range randFlows(3, 2000) {
		want := a.Pick(&f)
		for _, p := range []uint16{1, 80, 40000} {
			g := f
			g.SrcPort = p
			if got := a.Pick(&g); got != want {
				t.Fatalf("%s: port %d → %d, port %d → %d", f.Src, f.SrcPort, want, p, got)
			}
			if got := b.Pick(&g); got != want {
				t.Fatalf("%s: instance a → %d, instance b → %d", f.Src, want, got)
			}
		}
	}
}

// With sh-port, one source's connections spread over the dests by port, each
// (source, port) keeping its dest.
func TestSHPort(t *testing.T) {
	s := mustNew(t, "sh", mkDests(1, 1, 1, 1), Options{Port: true})
	f := Flow{Src: netip.MustParseAddr("198.51.100.7")}
	seen := map[int]int{}
	for p := range 1000 {
		f.SrcPort = uint16(1024 + p)
		d := s.Pick(&f)
		seen[d]++
		if again := s.Pick(&f); again != d {
			t.Fatalf("port %d: %d then %d", f.SrcPort, d, again)
		}
	}
	if len(seen) != 4 {
		t.Fatalf("1000 ports of one source reached dests %v, want all 4", seen)
	}
}

// An unavailable dest: its clients get no dest, or with sh-fallback another
// one, always the same; other clients keep theirs.
func TestSHUnavailable(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		ds := mkDests(1, 1, 1, 1)
		for i := range ds {
			ds[i].Upper = 1
		}
		s := mustNew(t, "sh", ds, Options{Fallback: fallback})
		fs := randFlows(4, 5000)
		before := make([]int, len(fs))
		for i := range fs {
			before[i] = s.Pick(&fs[i])
		}
		overload(&ds[2])
		spread := map[int]int{}
		for i := range fs {
			got := s.Pick(&fs[i])
			switch {
			case before[i] != 2 && got != before[i]:
				t.Fatalf("fallback %v: flow %d moved from %d to %d", fallback, i, before[i], got)
			case before[i] == 2 && !fallback && got != -1:
				t.Fatalf("no fallback: flow %d of the overloaded dest got %d, want -1", i, got)
			case before[i] == 2 && fallback:
				if got < 0 || got == 2 {
					t.Fatalf("fallback: flow %d got %d", i, got)
				}
				if again := s.Pick(&fs[i]); again != got {
					t.Fatalf("fallback: flow %d got %d then %d", i, got, again)
				}
				spread[got]++
			}
		}
		if fallback {
			t.Logf("clients of the overloaded dest went to %v", spread)
			checkSpread(t, spread, []int{0, 1, 3}, 0.05)
		}
		// Nothing available: -1, with or without fallback.
		for i := range ds {
			overload(&ds[i])
		}
		if got := s.Pick(&fs[0]); got != -1 {
			t.Fatalf("fallback %v, all overloaded: Pick = %d", fallback, got)
		}
	}
}

// When the probes miss (the only available dest owns one bucket of 256),
// the fallback walks the table to it.
func TestSHFallbackWalk(t *testing.T) {
	w := make([]int, 256)
	for i := range w {
		w[i] = 1
	}
	ds := mkDests(w...)
	for i := range ds {
		ds[i].Upper = 1
	}
	s := mustNew(t, "sh", ds, Options{Fallback: true})
	for i := range ds {
		if i != 200 {
			overload(&ds[i])
		}
	}
	for _, f := range randFlows(13, 200) {
		if got := s.Pick(&f); got != 200 {
			t.Fatalf("%s: Pick = %d, want 200, the only available dest", f.Src, got)
		}
	}
}

// Quiescing a weight-1 dest moves no other client (it keeps its bucket).
func TestSHQuiesce(t *testing.T) {
	a := mustNew(t, "sh", mkDests(1, 1, 1), Options{})
	b := mustNew(t, "sh", mkDests(1, 0, 1), Options{Fallback: true})
	for _, f := range randFlows(5, 3000) {
		x, y := a.Pick(&f), b.Pick(&f)
		if x != 1 && x != y {
			t.Fatalf("%s: %d before quiescing dest 1, %d after", f.Src, x, y)
		}
		if y == 1 {
			t.Fatalf("%s: quiescent dest picked", f.Src)
		}
	}
}

func TestSHIPv6(t *testing.T) {
	s := mustNew(t, "sh", mkDests(1, 1, 1), Options{})
	seen := map[int]bool{}
	for i := range 300 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i), 14: byte(i >> 8)})
		seen[s.Pick(&Flow{Src: a})] = true
	}
	if len(seen) != 3 {
		t.Fatalf("300 IPv6 sources reached %v, want all 3 dests", seen)
	}
}

func BenchmarkSHPick(b *testing.B) { benchPick(b, "sh", Options{}) }

func BenchmarkSHPickFallbackPort(b *testing.B) {
	benchPick(b, "sh", Options{Fallback: true, Port: true})
}
