package reconcile

import (
	"reflect"
	"strings"
	"testing"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/config"
	"github.com/gvs-lb/gvs/ctrlplane/internal/dptest"
	"github.com/gvs-lb/gvs/ipvs"
)

const (
	webDR = "TCP 10.1.0.100:80 rr fwd=Route 10.2.0.11:80=1 10.2.0.12:80=1"
	webFN = "TCP 10.1.0.100:80 rr laddr=10.2.0.100@dp1 10.2.0.11:80=1 10.2.0.12:80=1"
)

// TestDiffDirectRouting: DR destinations are added with their method, an
// equal state needs no call, and a change of lb_kind replaces the
// destinations (delete, add) with local addresses present whenever a
// FullNAT destination is.
func TestDiffDirectRouting(t *testing.T) {
	all := func(config.ServiceKey) bool { return true }
	cases := []struct {
		name            string
		desired, actual State
		want            []string
	}{
		{"added: Route destinations, no local address", state(t, webDR), state(t), []string{
			"add service TCP 10.1.0.100:80 sched rr",
			"add dest 10.2.0.11:80 weight 1 fwd Route to TCP 10.1.0.100:80",
			"add dest 10.2.0.12:80 weight 1 fwd Route to TCP 10.1.0.100:80",
		}},
		{"equal: nothing", state(t, webDR), state(t, webDR), nil},
		{"weight of a DR destination: edited", state(t, "TCP 10.1.0.100:80 rr fwd=Route 10.2.0.11:80=1 10.2.0.12:80=4"), state(t, webDR), []string{
			"edit dest 10.2.0.12:80 weight 4 fwd Route in TCP 10.1.0.100:80",
		}},
		{"FullNAT to DR: destinations replaced, then the local address goes", state(t, webDR), state(t, webFN), []string{
			"del dest 10.2.0.11:80 from TCP 10.1.0.100:80",
			"add dest 10.2.0.11:80 weight 1 fwd Route to TCP 10.1.0.100:80",
			"del dest 10.2.0.12:80 from TCP 10.1.0.100:80",
			"add dest 10.2.0.12:80 weight 1 fwd Route to TCP 10.1.0.100:80",
			"del laddr 10.2.0.100 from TCP 10.1.0.100:80",
		}},
		{"DR to FullNAT: the local address first", state(t, webFN), state(t, webDR), []string{
			"add laddr 10.2.0.100 dev dp1 to TCP 10.1.0.100:80",
			"del dest 10.2.0.11:80 from TCP 10.1.0.100:80",
			"add dest 10.2.0.11:80 weight 1 to TCP 10.1.0.100:80",
			"del dest 10.2.0.12:80 from TCP 10.1.0.100:80",
			"add dest 10.2.0.12:80 weight 1 to TCP 10.1.0.100:80",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, o := range Diff(tc.desired, tc.actual, all) {
				got = append(got, o.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestDesiredDirectRouting: lb_kind DR gives the real servers and the
// sorry server the Route method.
func TestDesiredDirectRouting(t *testing.T) {
	c := parse(t, `
virtual_servers:
  - {vip: 10.1.0.100, port: 80, lb_kind: DR, lb_algo: rr, sorry_server: {ip: 10.2.0.99, port: 80}}
  - {vip: 10.1.0.100, port: 443, lb_kind: DR, lb_algo: rr, real_servers: [{ip: 10.2.0.11, port: 443, weight: 2}]}
`)
	st := Desired(c.Services, nil)
	for _, s := range st {
		if len(s.LAddrs) != 0 || len(s.Dests) != 1 {
			t.Errorf("%s: %+v", s.Key, s)
		}
		for a, d := range s.Dests {
			if d.Fwd != config.FwdRoute {
				t.Errorf("%s dest %s: method %q, want Route", s.Key, a, d.Fwd)
			}
		}
	}
}

func TestActualDirectRouting(t *testing.T) {
	st, err := Actual(&pb.ListServicesResponse{Services: []*pb.Service{{
		Key: &pb.ServiceKey{Proto: "TCP", Addr: "10.1.0.100", Port: 80}, Sched: "rr",
		Dests: []*pb.Dest{{Addr: "10.2.0.11", Port: 80, Weight: 1, Fwd: "Route"}, {Addr: "10.2.0.12", Port: 80, Weight: 1, Fwd: "Route"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	want := svc(t, webDR)
	if got := st[want.Key]; !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

const drCfg = `
virtual_servers:
  - name: web
    vip: 10.1.0.100
    port: 80
    lb_algo: rr
    lb_kind: DR
    real_servers:
      - {ip: 10.2.0.11, port: 80}
      - {ip: 10.2.0.12, port: 80}
`

// TestReconcileDirectRouting applies lb_kind DR to a real dataplane: its
// destinations are Route, an identical reload makes no call, and turning
// the service into FullNAT and back replaces the destinations (the old
// ones drain by their own method) and adds or removes the local address.
func TestReconcileDirectRouting(t *testing.T) {
	sock := dptest.Socket(t)
	dp := dptest.Start(t, sock, 1)
	api := dptest.Client(t, sock)
	r, ctx := startReconciler(t, api)
	tbl := func() *ipvs.Service { return dp.DP.IPVS().Table().Service(webKey) }
	fwds := func() (out []ipvs.FwdMethod) {
		for _, d := range tbl().Dests {
			out = append(out, d.Spec.Fwd)
		}
		return out
	}

	if err := r.Load(ctx, parse(t, drCfg), false); err != nil {
		t.Fatal(err)
	}
	want := `add service TCP 10.1.0.100:80 sched rr
add dest 10.2.0.11:80 weight 1 fwd Route to TCP 10.1.0.100:80
add dest 10.2.0.12:80 weight 1 fwd Route to TCP 10.1.0.100:80`
	if got := listing(t, api); got != want {
		t.Fatalf("dataplane after load:\n%s\nwant:\n%s", got, want)
	}
	if f := fwds(); !reflect.DeepEqual(f, []ipvs.FwdMethod{ipvs.FwdRoute, ipvs.FwdRoute}) || len(tbl().LAddrs) != 0 {
		t.Errorf("dataplane methods %v, local addresses %v", f, tbl().LAddrs)
	}
	ops := r.Stats().Ops
	r.Load(ctx, r.Config(), true)
	if s := r.Stats(); s.Ops != ops {
		t.Errorf("%d calls for an identical reload, want none", s.Ops-ops)
	}

	// lb_kind FULLNAT: a local address, then each destination replaced
	old := tbl().Dests[0].ID
	fn := strings.Replace(drCfg, "lb_kind: DR", "lb_kind: FULLNAT\n    local_addresses: [{ip: 10.2.0.100, interface: dp1}]", 1)
	if err := r.Load(ctx, parse(t, fn), true); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s.Ops-ops != 5 {
		t.Errorf("%d calls to turn DR into FullNAT, want 5 (laddr, 2 x del+add)", s.Ops-ops)
	}
	if f := fwds(); !reflect.DeepEqual(f, []ipvs.FwdMethod{ipvs.FwdFullNAT, ipvs.FwdFullNAT}) || len(tbl().LAddrs) != 1 {
		t.Errorf("after FULLNAT: methods %v, local addresses %v", f, tbl().LAddrs)
	}
	if tbl().Dests[0].ID == old {
		t.Error("the destination was edited in place: its DR connections would change method")
	}

	// and back: the local address goes after the destinations
	if err := r.Load(ctx, parse(t, drCfg), true); err != nil {
		t.Fatal(err)
	}
	if got := listing(t, api); got != want {
		t.Errorf("dataplane back to DR:\n%s\nwant:\n%s", got, want)
	}
}
