package ipvs

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// TestNAT64Specs: an IPv6 service takes IPv4 FullNAT real servers and IPv4
// local addresses (NAT64); other methods across families, IPv6 servers or
// local addresses behind an IPv4 service are refused, naming the fix.
func TestNAT64Specs(t *testing.T) {
	m := NewManager(1)
	k6 := ServiceKey{Proto: TCP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 80}
	if err := m.AddService(ServiceSpec{Key: k6, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	rs4 := netip.MustParseAddrPort("10.0.1.2:80")
	for _, c := range []struct {
		err  error
		want error
		text string
	}{
		{m.AddDest(k6, fnat(rs4, 1)), nil, ""},
		{m.AddDest(k6, fnat(netip.MustParseAddrPort("[2001:db8:1::2]:80"), 1)), nil, ""},
		{m.AddLAddr(k6, LAddr{Addr: netip.MustParseAddr("10.0.1.254")}), nil, ""},
		{m.AddLAddr(k6, LAddr{Addr: netip.MustParseAddr("2001:db8:1::254")}), nil, ""},
		{m.AddDest(k6, DestSpec{Addr: netip.MustParseAddrPort("10.0.1.3:80"), Weight: 1, Fwd: FwdRoute}), ErrInvalid, "use FullNAT (-b) for NAT64"},
		{m.AddDest(k6, DestSpec{Addr: netip.MustParseAddrPort("10.0.1.3:80"), Weight: 1, Fwd: FwdTunnel}), ErrNotSupported, "other address family"},
		{m.AddDest(k80ForNAT64(t, m), fnat(netip.MustParseAddrPort("[2001:db8:1::2]:80"), 1)), ErrNotSupported, "NAT46"},
	} {
		if c.want == nil {
			if c.err != nil {
				t.Errorf("unexpected error: %v", c.err)
			}
			continue
		}
		if !errors.Is(c.err, c.want) || !strings.Contains(c.err.Error(), c.text) {
			t.Errorf("error %v, want %v containing %q", c.err, c.want, c.text)
		}
	}
	svc := m.Table().Service(k6)
	if len(svc.Dests) != 2 || len(svc.AllocLAddrs) != 2 {
		t.Fatalf("service has %d dests and %d local addresses, want 2 and 2", len(svc.Dests), len(svc.AllocLAddrs))
	}
}

// k80ForNAT64 adds an IPv4 service for the NAT46 case.
func k80ForNAT64(t *testing.T, m *Manager) ServiceKey {
	t.Helper()
	k := ServiceKey{Proto: TCP, Addr: netip.MustParseAddr("10.1.0.100"), Port: 80}
	if err := m.AddService(ServiceSpec{Key: k}); err != nil {
		t.Fatal(err)
	}
	return k
}
