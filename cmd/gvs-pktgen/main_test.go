package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseHelpers(t *testing.T) {
	if c, err := parseCPUs("0, 1,3"); err != nil || len(c) != 3 || c[2] != 3 {
		t.Errorf("parseCPUs: %v %v", c, err)
	}
	if _, err := parseCPUs("a"); err == nil {
		t.Error("parseCPUs accepted a letter")
	}
	if p, err := parsePrefix("10.0.0.1"); err != nil || p.String() != "10.0.0.1/32" {
		t.Errorf("parsePrefix: %v %v", p, err)
	}
	if p, err := parsePrefix("172.16.0.0/16"); err != nil || p.Bits() != 16 {
		t.Errorf("parsePrefix: %v %v", p, err)
	}
}

// Bad invocations are refused with a message that says what to give,
// before any port is opened.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"udp"}, "--client-ip"},
		{[]string{"udp", "--client-ip", "10.0.0.1", "--gw", "10.0.0.2"}, "--dst"},
		{[]string{"tcp", "--client-dev", "x", "--client-ip", "10.0.0.1", "--gw", "10.0.0.2", "--dst", "10.0.0.3:80"}, "--server-addrs"},
		{[]string{"udp", "--ports", "9-1x"}, "--ports"},
		{[]string{"udp", "--client-ip", "10.0.0.1", "--gw", "10.0.0.2", "--dst", "10.0.0.3:80", "--size", "20"}, "frame size"},
		{[]string{"tcp", "--search"}, "unknown flag"},
		{[]string{"udp", "--stream-rate", "100"}, "unknown flag"},
		{[]string{"syn", "--client-ip", "10.0.0.1", "--gw", "10.0.0.2", "--dst", "10.0.0.3:80", "--stream-rate", "100"}, "--stream-dst"},
		{[]string{"syn", "--client-ip", "10.0.0.1", "--gw", "10.0.0.2", "--dst", "10.0.0.3:80", "--stream-rate", "100", "--stream-dst", "x"}, "--stream-dst"},
		{[]string{"syn", "--client-ip", "10.0.0.1", "--gw", "10.0.0.2", "--dst", "10.0.0.3:80", "--stream-rate", "100",
			"--stream-dst", "10.0.0.3:9000", "--search"}, "--search"},
		{[]string{"tcp", "--gen", "xdp-live"}, "unknown flag"},
		{[]string{"udp", "--client-ip", "10.0.0.1", "--gw", "10.0.0.2", "--dst", "10.0.0.3:80", "--gen", "dpdk"}, "use port or xdp-live"},
		{[]string{"udp", "--client-ip", "10.0.0.1", "--gw", "10.0.0.2", "--dst", "10.0.0.3:80", "--dst", "10.0.0.4:80", "--gen", "xdp-live"}, "one --dst"},
		{[]string{"udp", "--client-ip", "10.0.0.1", "--gw", "10.0.0.2", "--dst", "10.0.0.3:80", "--gen", "xdp-live", "--gen-threads", "3", "--flows", "16"}, "--gen-threads 3"},
	} {
		cmd := newRoot()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(tc.args)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error()+out.String(), tc.want) {
			t.Errorf("%v: error %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
}
