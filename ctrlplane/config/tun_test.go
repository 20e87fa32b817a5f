package config

import (
	"strings"
	"testing"
)

// TestTunnel: lb_kind TUN resolves to the Tunnel method with the
// encapsulation in the dataplane API's words, no local addresses, and the
// real servers on the service's port.
func TestTunnel(t *testing.T) {
	c, err := Parse([]byte(`
virtual_servers:
  - {vip: 10.1.0.100, port: 80, lb_kind: TUN, real_servers: [{ip: 192.0.2.11, port: 80}]}
  - {vip: 10.1.0.100, port: 81, lb_kind: tun, tun_type: gue, tun_port: 6080, tun_csum: csum, real_servers: [{ip: 192.0.2.11, port: 81}]}
  - {vip: 10.1.0.100, port: 82, lb_kind: TUN, tun_type: GRE, real_servers: [{ip: 192.0.2.11, port: 82}]}
  - {protocol: UDP, vip: "fd00:1::100", port: 53, lb_kind: TUN, tun_type: gue, tun_port: 5555, tun_csum: remcsum, real_servers: [{ip: "2001:db8::11", port: 53}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Tunnel{{Type: "ipip"}, {Type: "gue", Port: 6080, Csum: "tun-csum"}, {Type: "gre", Csum: "tun-nocsum"}, {Type: "gue", Port: 5555, Csum: "tun-remcsum"}}
	for i, s := range c.Services {
		if s.Fwd != FwdTunnel || s.Tun != want[i] || len(s.LAddrs) != 0 || len(s.Reals) != 1 {
			t.Errorf("service %d: %s %+v, want Tunnel %+v", i, s.Fwd, s.Tun, want[i])
		}
	}
}

// TestTunnelErrors: ipvsadm's tunnel option rules, the port and local
// address rules of a tunnel, and tunnel options on another lb_kind.
func TestTunnelErrors(t *testing.T) {
	for _, c := range []struct{ name, vs, want string }{
		{"gue without port", "lb_kind: TUN, tun_type: gue", "tun_port 0 with tun_type gue"},
		{"ipip with port", "lb_kind: TUN, tun_port: 6080", "tun_port or tun_csum with tun_type ipip"},
		{"gre with port", "lb_kind: TUN, tun_type: gre, tun_port: 1", "a gre tunnel has no port"},
		{"gre remcsum", "lb_kind: TUN, tun_type: gre, tun_csum: remcsum", "gre takes csum or nocsum"},
		{"bad type", "lb_kind: TUN, tun_type: vxlan", `tun_type "vxlan": use ipip, gue or gre`},
		{"bad csum", "lb_kind: TUN, tun_type: gue, tun_port: 1, tun_csum: maybe", `tun_csum "maybe"`},
		{"options without TUN", "lb_kind: DR, tun_type: gre", "without lb_kind TUN"},
		{"port changed", "lb_kind: TUN, real_servers: [{ip: 192.0.2.11, port: 8080}]", "a tunnel cannot change the port: give port 80"},
		{"local address", "lb_kind: TUN, local_addresses: [{ip: 10.2.0.100}]", "local_addresses with lb_kind TUN"},
	} {
		_, err := Parse([]byte("virtual_servers:\n  - {vip: 10.1.0.100, port: 80, " + c.vs + "}\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}
