package ipvs

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
)

func naiveContains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

func randAddr(r *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		b[0] = 0x20 | b[0]&1 // keep them in a small part of the space so prefixes overlap
		return netip.AddrFrom16(b)
	}
	var b [4]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[0] &= 3
	return netip.AddrFrom4(b)
}

// The compiled set answers as a linear scan of the prefixes does, on
// seeded random overlapping prefixes of both families and edge cases.
func TestPrefixSetMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var ps []netip.Prefix
		n := r.IntN(40)
		for i := 0; i < n; i++ {
			v6 := r.IntN(2) == 0
			a := randAddr(r, v6)
			ps = append(ps, netip.PrefixFrom(a, r.IntN(a.BitLen()+1)).Masked())
		}
		s := NewPrefixSet(ps)
		for i := 0; i < 500; i++ {
			a := randAddr(r, r.IntN(2) == 0)
			if i%5 == 0 && len(ps) > 0 { // an address inside or just past a prefix
				p := ps[r.IntN(len(ps))]
				a = p.Addr()
				if r.IntN(2) == 0 {
					a = lastAddr(p).Next()
				}
				if !a.IsValid() {
					continue
				}
			}
			if got, want := s.Contains(a), naiveContains(ps, a); got != want {
				t.Fatalf("round %d: Contains(%s) = %v, want %v; prefixes %v", round, a, got, want, ps)
			}
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func TestPrefixSetEdges(t *testing.T) {
	mp := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	ma := netip.MustParseAddr
	cases := []struct {
		ps   []netip.Prefix
		addr string
		want bool
	}{
		{[]netip.Prefix{mp("0.0.0.0/0")}, "255.255.255.255", true},
		{[]netip.Prefix{mp("0.0.0.0/0")}, "::1", false},
		{[]netip.Prefix{mp("255.255.255.255/32"), mp("0.0.0.0/32")}, "255.255.255.255", true},
		{[]netip.Prefix{mp("255.255.255.255/32"), mp("0.0.0.0/32")}, "255.255.255.254", false},
		{[]netip.Prefix{mp("::/0")}, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
		{[]netip.Prefix{mp("::/0")}, "10.0.0.1", false},
		{[]netip.Prefix{mp("2001:db8::/32"), mp("2001:db9::/32")}, "2001:db9:ffff::1", true},
		{[]netip.Prefix{mp("2001:db8::/64")}, "2001:db8:0:1::", false},
		{[]netip.Prefix{mp("2001:db8::/63")}, "2001:db8:0:1:ffff:ffff:ffff:ffff", true},
		{[]netip.Prefix{mp("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"), mp("::/128")}, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
		{[]netip.Prefix{mp("10.0.0.0/8")}, "::ffff:10.1.2.3", true}, // a mapped client counts as IPv4
		{nil, "10.0.0.1", false},
	}
	for _, c := range cases {
		if got := NewPrefixSet(c.ps).Contains(ma(c.addr)); got != c.want {
			t.Errorf("%v contains %s = %v, want %v", c.ps, c.addr, got, c.want)
		}
	}
	var nilSet *PrefixSet
	if nilSet.Contains(ma("10.0.0.1")) || nilSet.Len() != 0 {
		t.Error("a nil set is not empty")
	}
	// overlapping and adjacent prefixes merge into one range
	s := NewPrefixSet([]netip.Prefix{mp("10.0.0.0/9"), mp("10.128.0.0/9"), mp("10.1.0.0/16"), mp("11.0.0.0/8")})
	if s.Ranges() != 1 || s.Len() != 4 {
		t.Errorf("ranges %d, len %d: want 1 range from 4 prefixes", s.Ranges(), s.Len())
	}
}

func TestParseACLPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"192.168.1.7":         "192.168.1.7/32",
		"10.1.2.3/8":          "10.0.0.0/8",
		"2001:db8::1":         "2001:db8::1/128",
		"2001:db8::1/32":      "2001:db8::/32",
		"::ffff:10.0.0.1":     "10.0.0.1/32",
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
	} {
		p, err := ParseACLPrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("ParseACLPrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"", "10.0.0.0/33", "fe80::1%eth0", "ipset:foo", "10.0.0", "1.2.3.4:80"} {
		if _, err := ParseACLPrefix(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseACLPrefix(%q): err %v, want ErrInvalid", in, err)
		}
	}
}

func TestManagerACL(t *testing.T) {
	m := NewManager(2)
	k := ServiceKey{Proto: TCP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 80}
	p := netip.MustParsePrefix("192.168.1.0/24")
	if err := m.AddACL(k, ACLDeny, p); !errors.Is(err, ErrNoService) {
		t.Fatalf("no service: %v", err)
	}
	if err := m.AddService(ServiceSpec{Key: k, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	gen := m.Table().Gen
	if err := m.AddACL(k, ACLDeny, p); err != nil {
		t.Fatal(err)
	}
	if err := m.AddACL(k, ACLDeny, netip.MustParsePrefix("192.168.1.9/24")); !errors.Is(err, ErrACLExists) {
		t.Fatalf("same masked prefix again: %v", err)
	}
	if err := m.AddACL(k, ACLAllow, netip.MustParsePrefix("2001:db8::/32")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("IPv6 prefix on an IPv4 service: %v", err)
	}
	tb := m.Table()
	svc := tb.Service(k)
	if !tb.ACL || tb.Gen != gen+1 || svc.Check(netip.MustParseAddr("192.168.1.7")) != ACLDenied ||
		svc.Check(netip.MustParseAddr("192.168.2.7")) != ACLPass {
		t.Fatalf("deny list not in the table: ACL %v gen %d", tb.ACL, tb.Gen)
	}
	if err := m.AddACL(k, ACLAllow, netip.MustParsePrefix("192.168.0.0/16")); err != nil {
		t.Fatal(err)
	}
	svc = m.Table().Service(k)
	if svc.Check(netip.MustParseAddr("172.16.0.1")) != ACLNotAllowed || svc.Check(netip.MustParseAddr("192.168.2.1")) != ACLPass ||
		svc.Check(netip.MustParseAddr("192.168.1.1")) != ACLDenied {
		t.Fatal("allow list semantics")
	}
	// an edit of the service keeps its lists
	if err := m.EditService(ServiceSpec{Key: k, Sched: "wrr"}); err != nil {
		t.Fatal(err)
	}
	if got := m.Table().Service(k).DenyList; len(got) != 1 || got[0] != p {
		t.Fatalf("deny list after -E: %v", got)
	}
	if err := m.DelACL(k, ACLDeny, netip.MustParsePrefix("192.168.2.0/24")); !errors.Is(err, ErrNoACL) {
		t.Fatalf("delete a missing entry: %v", err)
	}
	old := m.Table().Service(k)
	if err := m.DelACL(k, ACLDeny, p); err != nil {
		t.Fatal(err)
	}
	if err := m.DelACL(k, ACLAllow, netip.MustParsePrefix("192.168.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if m.Table().ACL || m.Table().Service(k).Deny != nil {
		t.Fatal("lists left after deleting their entries")
	}
	if len(old.DenyList) != 1 || old.Check(netip.MustParseAddr("192.168.1.7")) != ACLDenied {
		t.Fatal("an older table changed under its readers")
	}
}

func TestPrefixSetAllocs(t *testing.T) {
	s := benchSet(1000)
	a := netip.MustParseAddr("10.20.30.40")
	b := netip.MustParseAddr("2001:db8::7")
	if n := testing.AllocsPerRun(1000, func() { s.Contains(a); s.Contains(b) }); n != 0 {
		t.Fatalf("%v allocations per lookup", n)
	}
}

func benchSet(n int) *PrefixSet {
	r := rand.New(rand.NewPCG(3, 4))
	ps := make([]netip.Prefix, 0, n)
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			a := randAddr(r, false)
			ps = append(ps, netip.PrefixFrom(a, 16+r.IntN(17)).Masked())
		} else {
			a := randAddr(r, true)
			ps = append(ps, netip.PrefixFrom(a, 32+r.IntN(97)).Masked())
		}
	}
	return NewPrefixSet(ps)
}

// BenchmarkPrefixSetContains10k: one client lookup against 10k prefixes
// (half IPv4, half IPv6).
func BenchmarkPrefixSetContains10k(b *testing.B) {
	s := benchSet(10000)
	r := rand.New(rand.NewPCG(5, 6))
	addrs := make([]netip.Addr, 1024)
	for i := range addrs {
		addrs[i] = randAddr(r, i%2 == 1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	hits := 0
	for i := 0; i < b.N; i++ {
		if s.Contains(addrs[i&1023]) {
			hits++
		}
	}
	_ = hits
}

// FuzzParseACLPrefix: the API's entry parser never panics; what it takes
// is a masked, zoneless prefix whose set contains its first address.
func FuzzParseACLPrefix(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "10.0.0.0/8", "::ffff:10.0.0.0/104", "2001:db8::/32", "fe80::1%eth0", "0.0.0.0/0", "::/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseACLPrefix(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p != p.Masked() || p.Addr().Zone() != "" || p.Addr().Is4In6() {
			t.Fatalf("%q: accepted %v", s, p)
		}
		if !NewPrefixSet([]netip.Prefix{p}).Contains(p.Addr()) {
			t.Fatalf("%q: set of %v does not contain %v", s, p, p.Addr())
		}
	})
}
