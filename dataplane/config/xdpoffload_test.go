package config

import (
	"strings"
	"testing"
)

// TestXDPOffload: ipvs.xdp_offload is off unless asked for, takes on and
// auto, and refuses other words and on with a port the fast path cannot
// serve, naming the fix.
func TestXDPOffload(t *testing.T) {
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.IPVS.XDPOffload != "off" || c.IPVS.XDPOffloadEntries != 65536 {
		t.Errorf("defaults: xdp_offload %q, xdp_offload_entries %d; want off, 65536", c.IPVS.XDPOffload, c.IPVS.XDPOffloadEntries)
	}
	afxdp := "ports: [{name: dp0, driver: afxdp, device: veth0}]\n"
	for _, v := range []string{"on", "auto", "off"} {
		c, err := Parse([]byte(afxdp + "ipvs: {xdp_offload: " + v + ", xdp_offload_entries: 1024}\n"))
		if err != nil || c.IPVS.XDPOffload != v || c.IPVS.XDPOffloadEntries != 1024 {
			t.Errorf("xdp_offload %s: %+v %v", v, c, err)
		}
	}
	if _, err := Parse([]byte(good + "ipvs: {xdp_offload: auto}\n")); err != nil {
		t.Errorf("auto with an afpacket port: %v", err)
	}
	for _, c := range []struct{ yaml, want string }{
		{afxdp + "ipvs: {xdp_offload: yes}\n", `ipvs.xdp_offload: "yes": use off, on or auto`},
		{good + "ipvs: {xdp_offload: on}\n", "ipvs.xdp_offload: on: port dp1 has driver afpacket, and the XDP fast path needs afxdp ports"},
		{afxdp + "ipvs: {xdp_offload_entries: 1}\n", "ipvs.xdp_offload_entries: 1: use 2-16777216"},
	} {
		if _, err := Parse([]byte(c.yaml)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error containing %q", c.yaml, err, c.want)
		}
	}
}
