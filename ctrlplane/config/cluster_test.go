package config

import (
	"net/netip"
	"strings"
	"testing"
)

// mid_flow (lb_algo mh only) and backup local addresses reach the resolved
// services.
func TestMidFlowAndBackupLAddr(t *testing.T) {
	c, err := Parse([]byte(`
virtual_servers:
  - vip: 10.1.0.100
    port: 80
    lb_algo: mh
    mid_flow: true
    local_addresses: [{ip: 10.2.0.100, interface: dp1}, {ip: 10.2.0.101, interface: dp1, backup: true}]
`))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Services[0]
	if !s.MidFlow || len(s.LAddrs) != 2 || s.LAddrs[0].Backup || !s.LAddrs[1].Backup || s.LAddrs[1].Addr != netip.MustParseAddr("10.2.0.101") {
		t.Errorf("service %+v", s)
	}
	_, err = Parse([]byte("virtual_servers: [{vip: 10.1.0.100, port: 80, lb_algo: rr, mid_flow: true, local_addresses: [{ip: 10.2.0.100}]}]"))
	if err == nil || !strings.Contains(err.Error(), "mid_flow: only for lb_algo mh") || !strings.Contains(err.Error(), "set lb_algo: mh or remove mid_flow") {
		t.Errorf("mid_flow with rr: %v", err)
	}
}
