package main

import (
	"strings"
	"testing"
)

// dpip route add … nexthop via … nexthop via …: a multipath route, listed
// as iproute2 lists one, deleted by the gateway of any of its paths.
func TestRouteMultipath(t *testing.T) {
	sock := startDP(t)
	mustDpip(t, sock, "addr add 10.1.0.1/24 dev dp0")
	mustDpip(t, sock, "addr add 10.2.0.1/24 dev dp1")
	mustDpip(t, sock, "addr add fd00:1::1/64 dev dp0")
	mustDpip(t, sock, "route add default nexthop via 10.1.0.254 nexthop via 10.2.0.254 dev dp1 weight 3")
	mustDpip(t, sock, "route add 10.9.0.0/16 metric 5 nexthop via 10.1.0.253 nexthop via 10.1.0.252")
	mustDpip(t, sock, "route add default nexthop via fd00:1::fe nexthop via fd00:1::fd")
	got := mustDpip(t, sock, "-4 route show")
	want := `inet 0.0.0.0/0 src 0.0.0.0 scope global metric 0 proto static
	nexthop via 10.1.0.254 dev dp0 weight 1
	nexthop via 10.2.0.254 dev dp1 weight 3
inet 10.1.0.0/24 via 0.0.0.0 src 10.1.0.1 dev dp0 scope link metric 0 proto auto
inet 10.2.0.0/24 via 0.0.0.0 src 10.2.0.1 dev dp1 scope link metric 0 proto auto
inet 10.9.0.0/16 src 0.0.0.0 scope global metric 5 proto static
	nexthop via 10.1.0.253 dev dp0 weight 1
	nexthop via 10.1.0.252 dev dp0 weight 1
`
	if got != want {
		t.Errorf("route show:\n%s\nwant:\n%s", got, want)
	}
	if got := mustDpip(t, sock, "-6 route show"); !strings.Contains(got, "inet6 ::/0 src :: scope global metric 0 proto static\n\tnexthop via fd00:1::fe dev dp0 weight 1\n\tnexthop via fd00:1::fd dev dp0 weight 1\n") {
		t.Errorf("-6 route show:\n%s", got)
	}
	// the only subnet reaching the second next hop cannot go while the route uses it
	out, err := dpip(t, sock, "addr del 10.2.0.1/24 dev dp1")
	if want := "addr 10.2.0.1 dev dp1: in use as the only subnet reaching the gateway 10.2.0.254 of route 0.0.0.0/0: remove that first (dpip route del 0.0.0.0/0)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("addr del under a next hop: %v %s, want %q", err, out, want)
	}
	mustDpip(t, sock, "route del default via 10.2.0.254")
	if got := mustDpip(t, sock, "-4 route show"); strings.Contains(got, "0.0.0.0/0") {
		t.Errorf("deleted multipath route still listed:\n%s", got)
	}
	for _, c := range []struct{ line, want string }{
		{"route add 10.3.0.0/16 nexthop via 10.7.0.1 nexthop via 10.1.0.9", "route 10.3.0.0/16 via 10.7.0.1: gateway is not on a connected subnet"},
		{"route add 10.3.0.0/16 nexthop via 10.1.0.9 nexthop via 10.1.0.9", "next hop via 10.1.0.9 given twice"},
		{"route add 10.3.0.0/16 via 10.1.0.9 nexthop via 10.1.0.8", "give either via/dev or nexthop"},
		{"route add 10.3.0.0/16 nexthop via 10.1.0.9 weight 0", `weight "0": use 1-256`},
		{"route add 10.3.0.0/16 nexthop weight 2", "give via GW or dev DEV"},
		{"route add 10.3.0.0/16 nexthop via 10.1.0.9 mtu 1400", `unknown argument "mtu"`},
		{"route add 10.3.0.0/16 nexthop via 10.1.0.9 nexthop via fd00:1::9", "address families differ"},
	} {
		out, err := dpip(t, sock, c.line)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("dpip %s: %v %s, want an error with %q", c.line, err, out, c.want)
		}
	}
}

// FuzzNexthops: any command line splits without a panic; an accepted one
// has a gateway or a device in every path and leaves no "nexthop" behind.
func FuzzNexthops(f *testing.F) {
	f.Add("10.0.0.0/8 metric 5 nexthop via 10.1.0.1 dev dp0 weight 3 nexthop via 10.1.0.2")
	f.Add("default nexthop dev dp0 nexthop")
	f.Add("nexthop weight 999 via")
	f.Fuzz(func(t *testing.T, line string) {
		head, nhs, err := nexthops(strings.Fields(line))
		if err != nil {
			return
		}
		for _, h := range head {
			if h == "nexthop" {
				t.Fatalf("%q: nexthop left in %v", line, head)
			}
		}
		for _, nh := range nhs {
			if nh.Via == "" && nh.Dev == "" || nh.Weight > 256 {
				t.Fatalf("%q: accepted %v", line, nh)
			}
		}
	})
}
