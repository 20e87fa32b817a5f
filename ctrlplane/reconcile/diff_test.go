package reconcile

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/config"
)

// svc builds a ServiceState from a compact description:
// "TCP 10.1.0.100:80 wrr laddr=10.2.0.100@dp1 10.2.0.11:8080=1 10.2.0.12:8080=3/100/50";
// destinations are FullNAT, or take the method of a "fwd=Route" before them.
func svc(t *testing.T, desc string) *ServiceState {
	f := strings.Fields(desc)
	ap := netip.MustParseAddrPort(f[1])
	s := &ServiceState{Key: config.ServiceKey{Proto: f[0], Addr: ap.Addr(), Port: ap.Port()}, Sched: f[2],
		LAddrs: map[netip.Addr]string{}, Dests: map[netip.AddrPort]DestState{}}
	fwd := config.FwdFullNAT
	for _, x := range f[3:] {
		switch {
		case strings.HasPrefix(x, "fwd="):
			fwd = strings.TrimPrefix(x, "fwd=")
		case strings.HasPrefix(x, "flags="):
			s.Flags = strings.Split(strings.TrimPrefix(x, "flags="), ",")
		case strings.HasPrefix(x, "laddr="):
			a, dev, _ := strings.Cut(strings.TrimPrefix(x, "laddr="), "@")
			s.LAddrs[netip.MustParseAddr(a)] = dev
		default:
			a, w, _ := strings.Cut(x, "=")
			d := DestState{Fwd: fwd}
			parts := strings.Split(w, "/")
			d.Weight = atoi(t, parts[0])
			if len(parts) == 3 {
				d.Upper, d.Lower = uint32(atoi(t, parts[1])), uint32(atoi(t, parts[2]))
			}
			s.Dests[netip.MustParseAddrPort(a)] = d
		}
	}
	return s
}

func atoi(t *testing.T, s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("bad number %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func state(t *testing.T, descs ...string) State {
	st := State{}
	for _, d := range descs {
		s := svc(t, d)
		st[s.Key] = s
	}
	return st
}

const (
	web  = "TCP 10.1.0.100:80 wrr laddr=10.2.0.100@dp1 10.2.0.11:8080=1 10.2.0.12:8080=3"
	dns  = "UDP 10.1.0.100:53 rr laddr=10.2.0.100@dp1 10.2.0.11:53=1"
	web6 = "TCP [fd00:1::100]:80 wlc laddr=fd00:2::100@dp1 [fd00:2::11]:80=1"
)

func TestDiff(t *testing.T) {
	all := func(config.ServiceKey) bool { return true }
	none := func(config.ServiceKey) bool { return false }
	cases := []struct {
		name            string
		desired, actual State
		manages         func(config.ServiceKey) bool
		want            []string
	}{
		{"equal: nothing", state(t, web, dns), state(t, web, dns), all, nil},
		{"empty dataplane (a restart): everything, laddrs before dests", state(t, web, dns), state(t), all, []string{
			"add service TCP 10.1.0.100:80 sched wrr",
			"add laddr 10.2.0.100 dev dp1 to TCP 10.1.0.100:80",
			"add dest 10.2.0.11:8080 weight 1 to TCP 10.1.0.100:80",
			"add dest 10.2.0.12:8080 weight 3 to TCP 10.1.0.100:80",
			"add service UDP 10.1.0.100:53 sched rr",
			"add laddr 10.2.0.100 dev dp1 to UDP 10.1.0.100:53",
			"add dest 10.2.0.11:53 weight 1 to UDP 10.1.0.100:53",
		}},
		{"one service changed, the other untouched", state(t, web, "UDP 10.1.0.100:53 rr laddr=10.2.0.100@dp1 10.2.0.11:53=5"),
			state(t, web, dns), all, []string{"edit dest 10.2.0.11:53 weight 5 in UDP 10.1.0.100:53"}},
		{"quiesce (inhibit_on_failure)", state(t, "TCP 10.1.0.100:80 wrr laddr=10.2.0.100@dp1 10.2.0.11:8080=0 10.2.0.12:8080=3"),
			state(t, web), all, []string{"edit dest 10.2.0.11:8080 weight 0 in TCP 10.1.0.100:80"}},
		{"remove a failed dest", state(t, "TCP 10.1.0.100:80 wrr laddr=10.2.0.100@dp1 10.2.0.12:8080=3"),
			state(t, web), all, []string{"del dest 10.2.0.11:8080 from TCP 10.1.0.100:80"}},
		{"restore and sorry server out", state(t, web),
			state(t, "TCP 10.1.0.100:80 wrr laddr=10.2.0.100@dp1 10.2.0.99:8080=1"), all, []string{
				"add dest 10.2.0.11:8080 weight 1 to TCP 10.1.0.100:80",
				"add dest 10.2.0.12:8080 weight 3 to TCP 10.1.0.100:80",
				"del dest 10.2.0.99:8080 from TCP 10.1.0.100:80",
			}},
		{"thresholds", state(t, "TCP 10.1.0.100:80 wrr laddr=10.2.0.100@dp1 10.2.0.11:8080=1/100/50 10.2.0.12:8080=3"),
			state(t, web), all, []string{"edit dest 10.2.0.11:8080 weight 1 upper 100 lower 50 in TCP 10.1.0.100:80"}},
		{"scheduler", state(t, "TCP 10.1.0.100:80 sh flags=sh-fallback,sh-port laddr=10.2.0.100@dp1 10.2.0.11:8080=1 10.2.0.12:8080=3"),
			state(t, web), all, []string{"edit service TCP 10.1.0.100:80 sched sh flags sh-fallback,sh-port"}},
		{"flags only", state(t, "TCP 10.1.0.100:80 wrr laddr=10.2.0.100@dp1 10.2.0.11:8080=1 10.2.0.12:8080=3"),
			state(t, "TCP 10.1.0.100:80 wrr flags=sh-port laddr=10.2.0.100@dp1 10.2.0.11:8080=1 10.2.0.12:8080=3"), all,
			[]string{"edit service TCP 10.1.0.100:80 sched wrr"}},
		{"laddr added before the old one goes", state(t, "TCP 10.1.0.100:80 wrr laddr=10.2.0.101@dp1 10.2.0.11:8080=1 10.2.0.12:8080=3"),
			state(t, web), all, []string{
				"add laddr 10.2.0.101 dev dp1 to TCP 10.1.0.100:80",
				"del laddr 10.2.0.100 from TCP 10.1.0.100:80",
			}},
		{"laddr moves device: removed first", state(t, "TCP 10.1.0.100:80 wrr laddr=10.2.0.100@dp2 10.2.0.11:8080=1 10.2.0.12:8080=3"),
			state(t, web), all, []string{
				"del laddr 10.2.0.100 from TCP 10.1.0.100:80",
				"add laddr 10.2.0.100 dev dp2 to TCP 10.1.0.100:80",
			}},
		{"laddr without device matches any", state(t, "TCP 10.1.0.100:80 wrr laddr=10.2.0.100 10.2.0.11:8080=1 10.2.0.12:8080=3"),
			state(t, web), all, nil},
		{"service left the config: deleted first", state(t, dns), state(t, web, dns), all,
			[]string{"del service TCP 10.1.0.100:80"}},
		{"a service not ours stays", state(t, dns), state(t, web, dns), none, nil},
		{"IPv6 and ordering", state(t, web6, web), state(t), all, []string{
			"add service TCP 10.1.0.100:80 sched wrr",
			"add laddr 10.2.0.100 dev dp1 to TCP 10.1.0.100:80",
			"add dest 10.2.0.11:8080 weight 1 to TCP 10.1.0.100:80",
			"add dest 10.2.0.12:8080 weight 3 to TCP 10.1.0.100:80",
			"add service TCP [fd00:1::100]:80 sched wlc",
			"add laddr fd00:2::100 dev dp1 to TCP [fd00:1::100]:80",
			"add dest [fd00:2::11]:80 weight 1 to TCP [fd00:1::100]:80",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, o := range Diff(tc.desired, tc.actual, tc.manages) {
				got = append(got, o.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			// applying the plan to actual yields desired
			if after := simulate(tc.actual, Diff(tc.desired, tc.actual, tc.manages)); !sameState(after, tc.desired, tc.manages) {
				t.Errorf("plan does not reach the desired state")
			}
		})
	}
}

// simulate applies a plan to a copy of a state, as the dataplane would.
func simulate(st State, ops []Op) State {
	out := State{}
	for k, s := range st {
		c := *s
		c.LAddrs = map[netip.Addr]string{}
		c.Dests = map[netip.AddrPort]DestState{}
		for a, d := range s.LAddrs {
			c.LAddrs[a] = d
		}
		for a, d := range s.Dests {
			c.Dests[a] = d
		}
		out[k] = &c
	}
	for _, o := range ops {
		s := out[o.Service]
		switch o.Kind {
		case AddService:
			out[o.Service] = &ServiceState{Key: o.Service, Sched: o.Sched, Flags: o.Flags, MidFlow: o.MidFlow, Persistent: o.Persistent,
				PersistTimeout: o.PersistTimeout, PersistPrefix: o.PersistPrefix, OnePacket: o.OnePacket,
				LAddrs: map[netip.Addr]string{}, Dests: map[netip.AddrPort]DestState{}}
		case EditService:
			s.Sched, s.Flags, s.MidFlow = o.Sched, o.Flags, o.MidFlow
			s.Persistent, s.PersistTimeout, s.PersistPrefix, s.OnePacket = o.Persistent, o.PersistTimeout, o.PersistPrefix, o.OnePacket
		case DelService:
			delete(out, o.Service)
		case AddLAddr:
			s.LAddrs[o.LAddr] = o.Dev
		case DelLAddr:
			delete(s.LAddrs, o.LAddr)
		case AddDest, EditDest:
			s.Dests[o.Dest] = o.D
		case DelDest:
			delete(s.Dests, o.Dest)
		}
	}
	return out
}

func sameState(have, want State, manages func(config.ServiceKey) bool) bool {
	for k, w := range want {
		h := have[k]
		if h == nil || !h.sameService(w) || !reflect.DeepEqual(h.Dests, w.Dests) || len(h.LAddrs) != len(w.LAddrs) {
			return false
		}
	}
	for k := range have {
		if _, ok := want[k]; !ok && manages(k) {
			return false
		}
	}
	return true
}

func TestActual(t *testing.T) {
	st, err := Actual(&pb.ListServicesResponse{Services: []*pb.Service{{
		Key: &pb.ServiceKey{Proto: "TCP", Addr: "10.1.0.100", Port: 80}, Sched: "wrr", SchedFlags: []string{"sh-port", "sh-fallback"},
		Dests:  []*pb.Dest{{Addr: "10.2.0.11", Port: 8080, Weight: 2, Upper: 10, Lower: 5, Fwd: "FullNat", Active: 3}},
		Laddrs: []*pb.LAddr{{Addr: "10.2.0.100", Dev: "dp1"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	want := svc(t, "TCP 10.1.0.100:80 wrr flags=sh-fallback,sh-port laddr=10.2.0.100@dp1 10.2.0.11:8080=2/10/5")
	if got := st[want.Key]; !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if _, err := Actual(&pb.ListServicesResponse{Services: []*pb.Service{{Key: &pb.ServiceKey{Proto: "TCP", Addr: "x"}}}}); err == nil {
		t.Error("a bad address accepted")
	}
}
