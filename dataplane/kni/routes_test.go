package kni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ipCmd runs ip(8) in the test's namespace (the locked thread's: the child
// is forked from it).
func ipCmd(t *testing.T, args string) bool {
	t.Helper()
	out, err := exec.Command("ip", strings.Fields(args)...).CombinedOutput()
	if err != nil {
		t.Errorf("ip %s: %v: %s", args, err, out)
		return false
	}
	return true
}

// Routes added and removed with ip route on a TAP — ECMP with two next
// hops, a weighted one, IPv6, a default route — are reported as the kernel
// holds them; the TAP's own connected routes and routes through other
// interfaces are not.
func TestWatchRoutes(t *testing.T) {
	inNetns(t, func() {
		d, err := Open("dp0.kni", nil, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer d.Close()
		other, err := Open("other.kni", nil, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer other.Close()
		for _, c := range []string{
			"link set dp0.kni up", "link set other.kni up", "link set lo up",
			"addr add 10.1.0.3/24 dev dp0.kni", "addr add 10.9.0.3/24 dev other.kni",
			"addr add fd00:1::3/64 dev dp0.kni nodad",
			"route add 10.99.0.0/16 via 10.9.0.1", // not through the watched interface
		} {
			if !ipCmd(t, c) {
				return
			}
		}
		updates := make(chan []Route, 64)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		failures := make(chan error, 4)
		w, err := watchRoutes(ctx, []int{d.Index()}, func(r []Route) { updates <- r },
			WatchOptions{Retry: 10 * time.Millisecond, OnError: func(err error) { failures <- err }})
		if err != nil {
			t.Error(err)
			return
		}
		idx := d.Index()
		want := func(desc string, rs ...Route) {
			t.Helper()
			w := fmt.Sprint(rs)
			deadline := time.After(5 * time.Second)
			var got []Route
			for {
				select {
				case got = <-updates:
					if fmt.Sprint(got) == w {
						return
					}
				case <-deadline:
					t.Errorf("%s: last saw\n%v\nwant\n%v", desc, got, w)
					return
				}
			}
		}
		gw := func(s string, w uint16) NextHop {
			return NextHop{Gateway: netip.MustParseAddr(s), Ifindex: idx, Weight: w}
		}
		want("nothing learnt yet")
		ipCmd(t, "route add 198.51.100.0/24 nexthop via 10.1.0.251 dev dp0.kni nexthop via 10.1.0.252 dev dp0.kni weight 3")
		ecmp := Route{Dst: netip.MustParsePrefix("198.51.100.0/24"), Proto: unix.RTPROT_BOOT,
			NextHops: []NextHop{gw("10.1.0.251", 1), gw("10.1.0.252", 3)}}
		want("ECMP route", ecmp)
		ipCmd(t, "route add default via 10.1.0.254 metric 20")
		ipCmd(t, "-6 route add 2001:db8:7::/48 nexthop via fd00:1::251 dev dp0.kni nexthop via fd00:1::252 dev dp0.kni")
		def := Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Metric: 20, Proto: unix.RTPROT_BOOT, NextHops: []NextHop{gw("10.1.0.254", 1)}}
		v6 := Route{Dst: netip.MustParsePrefix("2001:db8:7::/48"), Metric: 1024, Proto: unix.RTPROT_BOOT,
			NextHops: []NextHop{gw("fd00:1::251", 1), gw("fd00:1::252", 1)}}
		want("default and IPv6 ECMP routes", def, ecmp, v6)
		ipCmd(t, "route del 198.51.100.0/24")
		want("ECMP route removed", def, v6)
		// a next hop through another interface is dropped from the route
		ipCmd(t, "route add 203.0.113.0/24 nexthop via 10.1.0.251 dev dp0.kni nexthop via 10.9.0.1 dev other.kni")
		mixed := Route{Dst: netip.MustParsePrefix("203.0.113.0/24"), Proto: unix.RTPROT_BOOT, NextHops: []NextHop{gw("10.1.0.251", 1)}}
		want("mixed route", def, mixed, v6)
		// the subscription fails (a netlink overrun): reported, re-established,
		// the table read and reported again, later changes followed
		w.errc <- errors.New("injected: netlink socket overrun")
		select {
		case err := <-failures:
			if !strings.Contains(err.Error(), "injected") {
				t.Errorf("reported failure: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("the failure was not reported")
		}
		want("the set after re-subscribing", def, mixed, v6)
		ipCmd(t, "route del default")
		want("a route deleted after the restart", mixed, v6)
	})
}

// KNIRoutes merges a kernel listing of one ECMP route as several routes.
func TestKNIRoutesMergesSplitECMP(t *testing.T) {
	_, dst, _ := netParseCIDR("2001:db8::/32")
	rs := []netlink.Route{
		{Type: unix.RTN_UNICAST, Table: unix.RT_TABLE_MAIN, Protocol: 12, Family: unix.AF_INET6, Dst: dst, Gw: netip.MustParseAddr("fd00::1").AsSlice(), LinkIndex: 5, Priority: 32},
		{Type: unix.RTN_UNICAST, Table: unix.RT_TABLE_MAIN, Protocol: 12, Family: unix.AF_INET6, Dst: dst, Gw: netip.MustParseAddr("fd00::2").AsSlice(), LinkIndex: 5, Priority: 32},
		{Type: unix.RTN_UNICAST, Table: unix.RT_TABLE_MAIN, Protocol: unix.RTPROT_KERNEL, Family: unix.AF_INET6, Dst: dst, LinkIndex: 5},
		{Type: unix.RTN_MULTICAST, Table: unix.RT_TABLE_MAIN, Protocol: 12, Family: unix.AF_INET6, Dst: dst, LinkIndex: 5},
	}
	got := KNIRoutes(rs, map[int]bool{5: true})
	if len(got) != 1 || len(got[0].NextHops) != 2 || got[0].Metric != 32 || got[0].NextHops[1].Gateway != netip.MustParseAddr("fd00::2") {
		t.Errorf("KNIRoutes = %v", got)
	}
}

func netParseCIDR(s string) (netip.Addr, *net.IPNet, error) {
	ip, n, err := net.ParseCIDR(s)
	a, _ := netip.AddrFromSlice(ip)
	return a, n, err
}
