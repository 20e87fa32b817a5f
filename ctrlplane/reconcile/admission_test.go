package reconcile

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/config"
	"github.com/gvs-lb/gvs/ctrlplane/internal/dptest"
)

const admissionCfg = `
virtual_servers:
  - vip: 10.1.0.100
    port: 80
    lb_algo: rr
    deny_list: [192.0.2.7, 198.51.100.0/24]
    allow_list: [10.1.0.0/24]
    conn_rate_limit: 1000
    per_source_limit: 20
    local_addresses: [{ip: 10.2.0.100, interface: dp1}]
    real_servers: [{ip: 10.2.0.11, port: 8080}]
`

// TestDiffAdmission: limits and the SYN proxy are part of the service's
// own settings (every AddService and EditService carries them, so an edit
// made for another reason never resets them); list entries are added and
// removed one by one, additions first, and a listing that agrees makes no
// call.
func TestDiffAdmission(t *testing.T) {
	all := func(config.ServiceKey) bool { return true }
	want := Desired(parse(t, strings.Replace(admissionCfg, "    lb_algo: rr\n", "    lb_algo: rr\n    synproxy: true\n", 1)).Services, nil)
	ops := Diff(want, State{}, all)
	if got := plan(ops); got != `add service TCP 10.1.0.100:80 sched rr conn-rate-limit 1000 per-source-limit 20 synproxy
add deny list entry 192.0.2.7/32 to TCP 10.1.0.100:80
add deny list entry 198.51.100.0/24 to TCP 10.1.0.100:80
add allow list entry 10.1.0.0/24 to TCP 10.1.0.100:80
add laddr 10.2.0.100 dev dp1 to TCP 10.1.0.100:80
add dest 10.2.0.11:8080 weight 1 to TCP 10.1.0.100:80` {
		t.Errorf("from nothing:\n%s", got)
	}
	if p := ops[0].pbService(); p.ConnRateLimit != 1000 || p.PerSourceRateLimit != 20 || !p.Synproxy {
		t.Errorf("AddService request %+v", p)
	}
	if p := ops[1]; p.List != ListDeny || p.Prefix != netip.MustParsePrefix("192.0.2.7/32") {
		t.Errorf("first list op %+v", p)
	}

	// the dataplane's listing after that plan (entries in another order)
	listed := &pb.ListServicesResponse{Services: []*pb.Service{{Key: &pb.ServiceKey{Proto: "TCP", Addr: "10.1.0.100", Port: 80}, Sched: "rr",
		Synproxy: true, ConnRateLimit: 1000, PerSourceRateLimit: 20,
		Deny: []string{"198.51.100.0/24", "192.0.2.7/32"}, Allow: []string{"10.1.0.0/24"},
		Laddrs: []*pb.LAddr{{Addr: "10.2.0.100", Dev: "dp1"}}, Dests: []*pb.Dest{{Addr: "10.2.0.11", Port: 8080, Weight: 1, Fwd: "FullNat"}}}}}
	have, err := Actual(listed)
	if err != nil {
		t.Fatal(err)
	}
	if ops := Diff(want, have, all); len(ops) != 0 {
		t.Errorf("in sync, yet:\n%s", plan(ops))
	}

	// a scheduler change is one EditService that keeps the limits
	rr := Desired(parse(t, strings.Replace(strings.Replace(admissionCfg, "lb_algo: rr", "lb_algo: wrr", 1), "    lb_algo: wrr\n", "    lb_algo: wrr\n    synproxy: true\n", 1)).Services, nil)
	ops = Diff(rr, have, all)
	if len(ops) != 1 || ops[0].Kind != EditService {
		t.Fatalf("scheduler change:\n%s", plan(ops))
	}
	if p := ops[0].pbService(); p.Sched != "wrr" || p.ConnRateLimit != 1000 || p.PerSourceRateLimit != 20 || !p.Synproxy {
		t.Errorf("EditService request drops settings: %+v", p)
	}

	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"allow list replaced: the new entry before the old one goes", "allow_list: [10.1.0.0/24]", "allow_list: [10.1.1.0/24]",
			"add allow list entry 10.1.1.0/24 to TCP 10.1.0.100:80\ndel allow list entry 10.1.0.0/24 from TCP 10.1.0.100:80"},
		{"deny entry removed", "deny_list: [192.0.2.7, 198.51.100.0/24]", "deny_list: [198.51.100.0/24]",
			"del deny list entry 192.0.2.7/32 from TCP 10.1.0.100:80"},
		{"lists removed", "    deny_list: [192.0.2.7, 198.51.100.0/24]\n    allow_list: [10.1.0.0/24]\n", "",
			"del deny list entry 192.0.2.7/32 from TCP 10.1.0.100:80\ndel deny list entry 198.51.100.0/24 from TCP 10.1.0.100:80\ndel allow list entry 10.1.0.0/24 from TCP 10.1.0.100:80"},
		{"rate limit changed", "conn_rate_limit: 1000", "conn_rate_limit: 50",
			"edit service TCP 10.1.0.100:80 sched rr conn-rate-limit 50 per-source-limit 20 synproxy"},
		{"synproxy off", "    synproxy: true\n", "",
			"edit service TCP 10.1.0.100:80 sched rr conn-rate-limit 1000 per-source-limit 20"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := strings.Replace(admissionCfg, "    lb_algo: rr\n", "    lb_algo: rr\n    synproxy: true\n", 1)
			changed := strings.Replace(cfg, tc.from, tc.to, 1)
			if changed == cfg {
				t.Fatal("the replacement changed nothing")
			}
			if got := plan(Diff(Desired(parse(t, changed).Services, nil), have, all)); got != tc.want {
				t.Errorf("plan:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}

	// limits set with ipvsadm on a service the file configures without
	// them: the file wins
	plain := Desired(parse(t, `
virtual_servers:
  - {vip: 10.1.0.100, port: 80, lb_algo: rr, local_addresses: [{ip: 10.2.0.100, interface: dp1}], real_servers: [{ip: 10.2.0.11, port: 8080}]}
`).Services, nil)
	listed.Services[0].Synproxy, listed.Services[0].Deny, listed.Services[0].Allow = false, nil, nil
	have, _ = Actual(listed)
	if got := plan(Diff(plain, have, all)); got != "edit service TCP 10.1.0.100:80 sched rr" {
		t.Errorf("limits not in the file:\n%s", got)
	}
}

// TestReconcileAdmission applies lists and limits to a real dataplane: it
// holds them after the load, an identical reload makes no call, an entry
// added behind the control plane's back is removed by the next round, a
// scheduler change keeps limits and lists, and lists leaving the file are
// emptied. An AddACL of an entry that exists, or a DelACL of one that is
// gone, is no failure.
func TestReconcileAdmission(t *testing.T) {
	sock := dptest.Socket(t)
	dp := dptest.Start(t, sock, 1)
	api := dptest.Client(t, sock)
	r, ctx := startReconciler(t, api)
	if err := r.Load(ctx, parse(t, admissionCfg), false); err != nil {
		t.Fatal(err)
	}
	check := func(what string, sched string, rate, per uint32, deny, allow []string) {
		t.Helper()
		svc := dp.DP.IPVS().Table().Service(webKey)
		if svc == nil {
			t.Fatalf("%s: the dataplane has no %s", what, webKey)
		}
		got := func(ps []netip.Prefix) []string {
			var out []string
			for _, p := range ps {
				out = append(out, p.String())
			}
			slices.Sort(out)
			return out
		}
		if svc.Spec.Sched != sched || svc.Spec.ConnRateLimit != rate || svc.Spec.PerSourceRateLimit != per ||
			!slices.Equal(got(svc.DenyList), deny) || !slices.Equal(got(svc.AllowList), allow) {
			t.Errorf("%s: the dataplane holds sched %s limits %d/%d deny %v allow %v; want %s %d/%d %v %v", what,
				svc.Spec.Sched, svc.Spec.ConnRateLimit, svc.Spec.PerSourceRateLimit, got(svc.DenyList), got(svc.AllowList),
				sched, rate, per, deny, allow)
		}
	}
	deny, allow := []string{"192.0.2.7/32", "198.51.100.0/24"}, []string{"10.1.0.0/24"}
	check("after the load", "rr", 1000, 20, deny, allow)
	ops := r.Stats().Ops
	if err := r.Load(ctx, r.Config(), true); err != nil {
		t.Fatal(err)
	}
	if n := r.Stats().Ops; n != ops {
		t.Errorf("%d calls for an identical reload", n-ops)
	}

	// an entry the file does not have (ipvsadm --add-blklst): removed
	if _, err := api.AddACL(context.Background(), &pb.ACLRequest{Service: pbKey(config.ServiceKey{Proto: "TCP", Addr: webKey.Addr, Port: 80}),
		List: "deny", Prefix: "203.0.113.0/24"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Load(ctx, r.Config(), true); err != nil {
		t.Fatal(err)
	}
	check("after a foreign entry", "rr", 1000, 20, deny, allow)
	if n := r.Stats().Ops; n != ops+1 {
		t.Errorf("%d calls to remove one foreign entry", n-ops)
	}

	// a scheduler change: one EditService, limits and lists kept
	ops = r.Stats().Ops
	if err := r.Load(ctx, parse(t, strings.Replace(admissionCfg, "lb_algo: rr", "lb_algo: wrr", 1)), true); err != nil {
		t.Fatal(err)
	}
	check("after the scheduler change", "wrr", 1000, 20, deny, allow)
	if n := r.Stats().Ops; n != ops+1 {
		t.Errorf("%d calls for a scheduler change, want 1", n-ops)
	}

	// lists and limits leave the file
	cfg := strings.Replace(admissionCfg, "    deny_list: [192.0.2.7, 198.51.100.0/24]\n    allow_list: [10.1.0.0/24]\n    conn_rate_limit: 1000\n    per_source_limit: 20\n", "", 1)
	if err := r.Load(ctx, parse(t, cfg), true); err != nil {
		t.Fatal(err)
	}
	check("after removal", "rr", 0, 0, nil, nil)
	if dp.DP.IPVS().Table().ACL {
		t.Error("the dataplane still checks lists for existing connections")
	}

	// idempotent calls
	k := pbKey(config.ServiceKey{Proto: "TCP", Addr: webKey.Addr, Port: 80})
	pfx := netip.MustParsePrefix("192.0.2.0/24")
	api.AddACL(context.Background(), &pb.ACLRequest{Service: k, List: "deny", Prefix: pfx.String()})
	svcKey := config.ServiceKey{Proto: "TCP", Addr: webKey.Addr, Port: 80}
	n, err := Apply(context.Background(), api, 2*time.Second, []Op{
		{Kind: AddACL, Service: svcKey, List: ListDeny, Prefix: pfx},
		{Kind: DelACL, Service: svcKey, List: ListAllow, Prefix: pfx},
	}, nil)
	if err != nil || n != 2 {
		t.Errorf("existing entry added, missing one deleted: %d calls, %v", n, err)
	}
	if svc := dp.DP.IPVS().Table().Service(webKey); !slices.Equal(svc.DenyList, []netip.Prefix{pfx}) {
		t.Errorf("deny list %v", svc.DenyList)
	}
}
