package config

import (
	"net/netip"
	"strings"
	"testing"
)

// TestNAT64Config: an IPv6 vip with IPv4 real servers and an IPv4 local
// address (FULLNAT) is accepted; the same servers with lb_kind DR are
// refused, naming the fix.
func TestNAT64Config(t *testing.T) {
	const y = `virtual_servers:
  - vip: 2001:db8::1
    port: 80
    lb_kind: %s
    local_addresses: [{ip: 10.0.1.254, interface: dp1}]
    real_servers:
      - {ip: 10.0.1.2, port: 80}
      - {ip: 10.0.1.3, port: 80}
`
	c, err := Parse([]byte(strings.Replace(y, "%s", "FULLNAT", 1)))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Services[0]
	if len(s.Reals) != 2 || s.Reals[0].Addr != netip.MustParseAddrPort("10.0.1.2:80") || len(s.LAddrs) != 1 || s.LAddrs[0].Addr != netip.MustParseAddr("10.0.1.254") {
		t.Fatalf("service %+v", s)
	}
	_, err = Parse([]byte(strings.Replace(strings.Replace(y, "%s", "DR", 1), "    local_addresses: [{ip: 10.0.1.254, interface: dp1}]\n", "", 1)))
	if err == nil || !strings.Contains(err.Error(), "needs lb_kind FULLNAT") {
		t.Fatalf("DR across families: %v", err)
	}
}
