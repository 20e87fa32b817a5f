package config

import (
	"net/netip"
	"strings"
	"testing"
)

// TestDirectRouting: lb_kind DR (keepalived's spelling, per
// virtual_server) resolves to the Route method with no local addresses,
// next to a FullNAT service in the same file.
func TestDirectRouting(t *testing.T) {
	c, err := Parse([]byte(`
virtual_servers:
  - vip: 10.1.0.100
    port: 80
    lb_kind: DR
    lb_algo: rr
    real_servers:
      - {ip: 10.2.0.11, port: 80, TCP_CHECK: {}}
      - {ip: 10.2.0.12, port: 80, weight: 2}
    sorry_server: {ip: 10.2.0.99, port: 80}
  - vip: 10.1.0.100
    port: 8080
    local_addresses: [{ip: 10.2.0.100}]
    real_servers: [{ip: 10.2.0.11, port: 8080}]
  - protocol: UDP
    vip: fd00:1::100
    port: 0
    persistence_timeout: 60
    lb_kind: dr
    real_servers: [{ip: "fd00:2::11", port: 0}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Services) != 3 {
		t.Fatalf("%d services", len(c.Services))
	}
	dr, fnat, dr6 := c.Services[0], c.Services[1], c.Services[2]
	if dr.Fwd != FwdRoute || len(dr.LAddrs) != 0 || len(dr.Reals) != 2 || dr.Sorry == nil {
		t.Errorf("DR service %+v", dr)
	}
	if dr.Reals[0].Addr != netip.MustParseAddrPort("10.2.0.11:80") || dr.Reals[0].Checks[0].Target != netip.MustParseAddrPort("10.2.0.11:80") {
		t.Errorf("DR real server %+v", dr.Reals[0])
	}
	if fnat.Fwd != FwdFullNAT || len(fnat.LAddrs) != 1 {
		t.Errorf("FullNAT service %+v", fnat)
	}
	if dr6.Fwd != FwdRoute || dr6.Reals[0].Addr != netip.MustParseAddrPort("[fd00:2::11]:0") {
		t.Errorf("IPv6 port-0 DR service %+v", dr6)
	}
}

// TestDirectRoutingErrors: what direct routing cannot do is refused with
// the fix.
func TestDirectRoutingErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"laddrs", "virtual_servers: [{vip: 10.1.0.100, port: 80, lb_kind: DR, local_addresses: [{ip: 10.2.0.100}]}]",
			[]string{"virtual_server TCP 10.1.0.100:80", "local_addresses with lb_kind DR", "direct routing uses no local address", "remove local_addresses"}},
		{"rs port", "virtual_servers: [{vip: 10.1.0.100, port: 80, lb_kind: DR, real_servers: [{ip: 10.2.0.11, port: 8080}]}]",
			[]string{"virtual_server TCP 10.1.0.100:80", "real_server 10.2.0.11:8080", "port 8080 with lb_kind DR", "give port 80"}},
		{"rs port on port 0", "virtual_servers: [{vip: 10.1.0.100, port: 0, persistence_timeout: 60, lb_kind: DR, real_servers: [{ip: 10.2.0.11, port: 80}]}]",
			[]string{"real_server 10.2.0.11:80", "port 80 with lb_kind DR", "give port 0"}},
		{"sorry port", "virtual_servers: [{vip: 10.1.0.100, port: 80, lb_kind: DR, sorry_server: {ip: 10.2.0.99, port: 8080}}]",
			[]string{"sorry_server 10.2.0.99:8080", "port 8080 with lb_kind DR", "give port 80"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}
