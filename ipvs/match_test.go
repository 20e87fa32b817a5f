package ipvs

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseMatch(t *testing.T) {
	for _, c := range []struct{ in, canon, listing string }{
		{"proto=tcp,src-range=10.2.0.0-10.2.0.255,oif=dp0",
			"proto=tcp,src-range=10.2.0.0-10.2.0.255:0-0,dst-range=0.0.0.0-0.0.0.0:0-0,iif=,oif=dp0",
			"MATCH tcp,from=10.2.0.0-10.2.0.255:0-0,oif=dp0"},
		{"proto=udp,src-range=192.168.0.1-10:80-100,dst-range=10.0.0.1:1024,iif=eth0",
			"", ""},
		{"proto=udp,dst-range=[2001:db8::1-2001:db8::9]:53-53",
			"proto=udp,src-range=[::-::]:0-0,dst-range=[2001:db8::1-2001:db8::9]:53-53,iif=,oif=",
			"MATCH udp,to=[2001:db8::1-2001:db8::9]:53-53"},
		{"proto=tcp,af=ipv4,iif=dp1",
			"proto=tcp,src-range=0.0.0.0-0.0.0.0:0-0,dst-range=0.0.0.0-0.0.0.0:0-0,iif=dp1,oif=",
			"MATCH tcp,iif=dp1"},
	} {
		m, err := ParseMatch(c.in)
		if c.canon == "" {
			if err == nil {
				t.Errorf("%q accepted (the address range 192.168.0.1-10 is not an address)", c.in)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if m.String() != c.canon || m.Listing() != c.listing {
			t.Errorf("%q:\n got %q / %q\nwant %q / %q", c.in, m.String(), m.Listing(), c.canon, c.listing)
		}
		// the canonical form reads back to itself (ipvsadm -S | ipvsadm -R)
		if again, err := ParseMatch(m.String()); err != nil || again.String() != m.String() {
			t.Errorf("%q does not read back: %v %v", m.String(), again, err)
		}
	}
	for in, want := range map[string]string{
		"proto=tcp":                                  "no src-range, dst-range or af",
		"src-range=10.0.0.1":                         "no proto",
		"proto=icmp,src-range=10.0.0.1":              "not supported",
		"proto=tcp,src-range=10.0.0.9-10.0.0.1":      "above",
		"proto=tcp,src-range=10.0.0.1,dst-range=::1": "different address families",
		"proto=tcp,src-range=10.0.0.1:90-80":         "ports",
		"proto=tcp,src-range=10.0.0.1,color=red":     "unknown key color",
		"proto=tcp,src-range=10.0.0.1,proto=udp":     "proto given twice",
		"proto=tcp,src-range":                        "not key=value",
		"proto=tcp,src-range=10.0.0.1,oif=a/b":       "not an interface name",
		"proto=tcp,src-range=[::1-::2:80":            "no closing",
		"proto=tcp,af=ipv6,src-range=10.0.0.1":       "different address families",
		"proto=tcp,src-range=10.0.0.1-2001:db8::1":   "address",
	} {
		_, err := ParseMatch(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
}

func TestMatchPacket(t *testing.T) {
	m, err := ParseMatch("proto=tcp,src-range=10.2.0.10-10.2.0.20:1024-65535,dst-range=0.0.0.0-0.0.0.0:80-80,oif=dp0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	for _, c := range []struct {
		proto    Proto
		src, dst string
		iif, oif string
		want     bool
	}{
		{TCP, "10.2.0.11:40000", "10.1.0.2:80", "dp1", "dp0", true},
		{TCP, "10.2.0.20:1024", "198.51.100.1:80", "dp1", "dp0", true},
		{UDP, "10.2.0.11:40000", "10.1.0.2:80", "dp1", "dp0", false},
		{TCP, "10.2.0.21:40000", "10.1.0.2:80", "dp1", "dp0", false},
		{TCP, "10.2.0.11:1023", "10.1.0.2:80", "dp1", "dp0", false},
		{TCP, "10.2.0.11:40000", "10.1.0.2:443", "dp1", "dp0", false},
		{TCP, "10.2.0.11:40000", "10.1.0.2:80", "dp1", "dp1", false},
		{TCP, "[fd00::11]:40000", "[fd00::2]:80", "dp1", "dp0", false},
	} {
		if got := m.Packet(c.proto, ap(c.src), ap(c.dst), c.iif, c.oif); got != c.want {
			t.Errorf("%v %s -> %s via %s/%s: %v, want %v", c.proto, c.src, c.dst, c.iif, c.oif, got, c.want)
		}
	}
}

// TestMatchService: a match service is keyed by its canonical match;
// its SNAT addresses become local addresses of the table.
func TestMatchService(t *testing.T) {
	m := NewManager(1)
	mt, _ := ParseMatch("proto=tcp,src-range=10.2.0.0-10.2.0.255,oif=dp0")
	k := ServiceKey{Proto: TCP, Match: mt.String()}
	if err := m.AddService(ServiceSpec{Key: k, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	wan := netip.MustParseAddrPort("10.1.0.200:0")
	for _, c := range []struct {
		d    DestSpec
		want string
	}{
		{DestSpec{Addr: wan, Weight: 1, Fwd: FwdFullNAT}, "add -J"},
		{DestSpec{Addr: netip.MustParseAddrPort("10.1.0.200:80"), Weight: 1, Fwd: FwdSNAT}, "takes no port"},
		{DestSpec{Addr: netip.MustParseAddrPort("[fd00::1]:0"), Weight: 1, Fwd: FwdSNAT}, "address family"},
	} {
		if err := m.AddDest(k, c.d); err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want %q", c.d, err, c.want)
		}
	}
	if err := m.AddDest(k, DestSpec{Addr: wan, Weight: 100, Fwd: FwdSNAT}); err != nil {
		t.Fatal(err)
	}
	tb := m.Table()
	if len(tb.SNAT) != 1 || tb.SNAT[0].Match.String() != k.Match || !tb.LAddrs.Has(wan.Addr()) || !tb.Addrs.Has(wan.Addr()) {
		t.Fatalf("table: SNAT %d, laddr %v", len(tb.SNAT), tb.LAddrs.Has(wan.Addr()))
	}
	if err := m.AddService(ServiceSpec{Key: ServiceKey{Proto: TCP, Match: "proto=tcp,src-range=10.2.0.0-10.2.0.255,oif=dp0"}}); err == nil {
		t.Error("a match service keyed by a non-canonical match was accepted")
	}
	if err := m.AddService(ServiceSpec{Key: ServiceKey{Proto: UDP, Match: mt.String()}}); err == nil {
		t.Error("a UDP service with a tcp match was accepted")
	}
	if err := m.AddLAddr(k, LAddr{Addr: netip.MustParseAddr("10.1.0.201")}); err == nil {
		t.Error("a local address on a match service was accepted")
	}
}

func FuzzParseMatch(f *testing.F) {
	f.Add("proto=tcp,src-range=10.2.0.0-10.2.0.255:1-2,dst-range=[::1-::2]:3-4,iif=a,oif=b")
	f.Add("proto=udp,af=ipv6")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMatch(s)
		if err != nil {
			return
		}
		again, err := ParseMatch(m.String())
		if err != nil || again.String() != m.String() {
			t.Fatalf("%q -> %q does not read back: %v", s, m.String(), err)
		}
		_ = m.Listing()
	})
}

// TestMasqOnePacketRefused: NAT answers need a connection: -o is refused
// with -m, whichever comes first.
func TestMasqOnePacketRefused(t *testing.T) {
	m := NewManager(1)
	k := ServiceKey{Proto: UDP, Addr: netip.MustParseAddr("10.1.0.100"), Port: 53}
	if err := m.AddService(ServiceSpec{Key: k, Sched: "rr", OnePacket: true}); err != nil {
		t.Fatal(err)
	}
	masq := DestSpec{Addr: netip.MustParseAddrPort("10.2.0.11:53"), Weight: 1, Fwd: FwdMasq}
	if err := m.AddDest(k, masq); err == nil || !strings.Contains(err.Error(), "one-packet") {
		t.Errorf("-m on a -o service: %v", err)
	}
	if err := m.EditService(ServiceSpec{Key: k, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	if err := m.AddDest(k, masq); err != nil {
		t.Fatal(err)
	}
	if err := m.EditService(ServiceSpec{Key: k, Sched: "rr", OnePacket: true}); err == nil {
		t.Error("-o on a service with a NAT server accepted")
	}
}

// TestMatchFamily: a match of one family never takes the other's packets,
// with or without address ranges.
func TestMatchFamily(t *testing.T) {
	m6, _ := ParseMatch("proto=udp,af=ipv6,iif=dp1")
	m4, _ := ParseMatch("proto=udp,af=ipv4")
	v4, v6 := netip.MustParseAddrPort("10.2.0.11:5000"), netip.MustParseAddrPort("[fd00:2::11]:5000")
	if m6.Packet(UDP, v4, v4, "dp1", "dp0") || !m6.Packet(UDP, v6, v6, "dp1", "dp0") ||
		m4.Packet(UDP, v6, v6, "dp1", "dp0") || !m4.Packet(UDP, v4, v4, "dp1", "dp0") {
		t.Error("a match took a packet of the other family, or refused its own")
	}
}
