package announce

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/gvs-lb/gvs/ctrlplane/config"
	"github.com/gvs-lb/gvs/ctrlplane/reconcile"
)

type health map[netip.AddrPort]bool // down real servers

func (h health) Up(_ config.ServiceKey, a netip.AddrPort) bool { return !h[a] }

var (
	vip   = netip.MustParseAddr("10.1.0.100")
	vip6  = netip.MustParseAddr("fd00:1::100")
	lip   = netip.MustParseAddr("10.2.0.100")
	rs1   = netip.MustParseAddrPort("10.2.0.11:8080")
	rs2   = netip.MustParseAddrPort("10.2.0.12:8080")
	sorry = netip.MustParseAddrPort("10.2.0.99:8080")
	web   = config.ServiceKey{Proto: "TCP", Addr: vip, Port: 80}
	echo  = config.ServiceKey{Proto: "TCP", Addr: vip, Port: 7000}
	web6  = config.ServiceKey{Proto: "TCP", Addr: vip6, Port: 80}
)

func svc(k config.ServiceKey, reals ...netip.AddrPort) config.Service {
	s := config.Service{Key: k, LAddrs: []config.LAddr{{Addr: lip}}}
	for _, r := range reals {
		s.Reals = append(s.Reals, config.Real{Dest: config.Dest{Addr: r, Weight: 1}})
	}
	return s
}

// actual is what the dataplane would hold: each service with dests at
// the given weights.
func actual(svcs map[config.ServiceKey]map[netip.AddrPort]int) reconcile.State {
	st := reconcile.State{}
	for k, ds := range svcs {
		ss := &reconcile.ServiceState{Key: k, Dests: map[netip.AddrPort]reconcile.DestState{}}
		for a, w := range ds {
			ss.Dests[a] = reconcile.DestState{Weight: w}
		}
		st[k] = ss
	}
	return st
}

func TestCompute(t *testing.T) {
	both := []config.Service{svc(web, rs1, rs2), svc(echo, rs1)}
	full := actual(map[config.ServiceKey]map[netip.AddrPort]int{web: {rs1: 1, rs2: 1}, echo: {rs1: 1}})
	vipP, lipP := Host(vip), Host(lip)
	for _, tc := range []struct {
		name   string
		in     Input
		want   []netip.Prefix // announced
		reason string         // the VIP's reason, when not announced
	}{
		{"all up", Input{Services: both, Actual: full}, []netip.Prefix{vipP}, ""},
		{"dataplane unreachable", Input{Services: both, Actual: nil, LocalAddresses: true}, nil, "dataplane unreachable"},
		{"draining keeps local addresses", Input{Services: both, Actual: full, Draining: true, LocalAddresses: true},
			[]netip.Prefix{lipP}, "draining"},
		{"held (bulk sync pending) withholds the local addresses too", Input{Services: both, Actual: full, Hold: "waiting for the bulk transfer", LocalAddresses: true},
			nil, "waiting for the bulk transfer"},
		{"one real down of two", Input{Services: both, Actual: full, Health: health{rs2: true}}, []netip.Prefix{vipP}, ""},
		{"echo's only real down: all", Input{Services: both, Actual: full, Health: health{rs1: true}, Require: "all"},
			nil, "TCP 10.1.0.100:7000 has no real server up"},
		{"echo down, web up via rs2: all withdraws", Input{Services: both, Health: health{rs1: true}, Require: "all",
			Actual: actual(map[config.ServiceKey]map[netip.AddrPort]int{web: {rs2: 1}, echo: {}})},
			nil, "TCP 10.1.0.100:7000 has no real server up"},
		{"echo down, web up via rs2: any announces", Input{Services: both, Health: health{rs1: true}, Require: "any",
			Actual: actual(map[config.ServiceKey]map[netip.AddrPort]int{web: {rs2: 1}, echo: {}})},
			[]netip.Prefix{vipP}, ""},
		{"service not in the dataplane yet", Input{Services: both,
			Actual: actual(map[config.ServiceKey]map[netip.AddrPort]int{web: {rs1: 1, rs2: 1}})},
			nil, "TCP 10.1.0.100:7000 is not in the dataplane"},
		{"healthy but quiesced in the dataplane", Input{Services: []config.Service{svc(web, rs1)},
			Actual: actual(map[config.ServiceKey]map[netip.AddrPort]int{web: {rs1: 0}})},
			nil, "TCP 10.1.0.100:80 has no real server up"},
		{"only the sorry server", Input{Services: []config.Service{func() config.Service {
			s := svc(web, rs1)
			s.Sorry = &config.Dest{Addr: sorry, Weight: 1}
			return s
		}()}, Health: health{rs1: true}, Actual: actual(map[config.ServiceKey]map[netip.AddrPort]int{web: {sorry: 1}})},
			nil, "TCP 10.1.0.100:80 has no real server up"},
		{"IPv6 VIP is a /128, extra prefix kept", Input{Services: []config.Service{svc(web6, rs1)},
			Actual: actual(map[config.ServiceKey]map[netip.AddrPort]int{web6: {rs1: 1}}),
			Extra:  []netip.Prefix{netip.MustParsePrefix("10.2.0.200/32")}},
			[]netip.Prefix{netip.MustParsePrefix("10.2.0.200/32"), netip.MustParsePrefix("fd00:1::100/128")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := Compute(tc.in)
			if got := Wanted(cs); !slices.Equal(got, tc.want) {
				t.Errorf("announced %v, want %v (candidates %+v)", got, tc.want, cs)
			}
			for _, c := range cs {
				if c.Kind == KindVIP && !c.Announce && c.Reason != tc.reason {
					t.Errorf("reason %q, want %q", c.Reason, tc.reason)
				}
				if c.Kind == KindVIP && c.Announce && tc.reason != "" {
					t.Errorf("%s announced, want withdrawn (%s)", c.Prefix, tc.reason)
				}
			}
		})
	}
}

func TestComputeCandidatesOnceSorted(t *testing.T) {
	// the VIP is also listed as a local address and as an extra prefix: once
	s := svc(web, rs1)
	s.LAddrs = append(s.LAddrs, config.LAddr{Addr: vip})
	cs := Compute(Input{Services: []config.Service{s, svc(echo, rs1)}, LocalAddresses: true,
		Extra:  []netip.Prefix{Host(vip), netip.MustParsePrefix("10.0.0.1/32")},
		Actual: actual(map[config.ServiceKey]map[netip.AddrPort]int{web: {rs1: 1}, echo: {rs1: 1}})})
	var got []string
	for _, c := range cs {
		got = append(got, c.Prefix.String()+" "+c.Kind)
	}
	want := []string{"10.0.0.1/32 extra", "10.1.0.100/32 vip", "10.2.0.100/32 local_address"}
	if !slices.Equal(got, want) {
		t.Errorf("candidates %v, want %v", got, want)
	}
}

// TestComputeBackupLocalAddresses: a service's backup local address is a
// candidate of its own kind, announced (as a backup route) when local
// addresses are, also while draining and held (a hold withholds the own
// ones); an address that is own in one service and backup in another is
// own.
func TestComputeBackupLocalAddresses(t *testing.T) {
	peer, both := netip.MustParseAddr("10.2.0.101"), netip.MustParseAddr("10.2.0.102")
	s1 := svc(web, rs1)
	s1.LAddrs = append(s1.LAddrs, config.LAddr{Addr: peer, Backup: true}, config.LAddr{Addr: both, Backup: true})
	s2 := svc(echo, rs1)
	s2.LAddrs = append(s2.LAddrs, config.LAddr{Addr: both})
	full := actual(map[config.ServiceKey]map[netip.AddrPort]int{web: {rs1: 1}, echo: {rs1: 1}})
	for _, tc := range []struct {
		name string
		in   Input
		want []Route
	}{
		{"up", Input{Services: []config.Service{s1, s2}, Actual: full, LocalAddresses: true},
			[]Route{{Prefix: Host(vip)}, {Prefix: Host(lip)}, {Prefix: Host(peer), Backup: true}, {Prefix: Host(both)}}},
		{"draining keeps them", Input{Services: []config.Service{s1, s2}, Actual: full, LocalAddresses: true, Draining: true},
			[]Route{{Prefix: Host(lip)}, {Prefix: Host(peer), Backup: true}, {Prefix: Host(both)}}},
		{"dataplane unreachable", Input{Services: []config.Service{s1, s2}, LocalAddresses: true}, nil},
		{"held: the backup ones only", Input{Services: []config.Service{s1, s2}, Actual: full, LocalAddresses: true, Hold: "bulk"},
			[]Route{{Prefix: Host(peer), Backup: true}}},
		{"local addresses not announced", Input{Services: []config.Service{s1, s2}, Actual: full}, []Route{{Prefix: Host(vip)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := Compute(tc.in)
			if got := Routes(cs); !slices.Equal(got, tc.want) {
				t.Errorf("routes %v, want %v", got, tc.want)
			}
			for _, c := range cs {
				if c.Prefix == Host(peer) && c.Kind != KindBackupLocalAddress {
					t.Errorf("%s is %s, want %s", c.Prefix, c.Kind, KindBackupLocalAddress)
				}
			}
		})
	}
}
