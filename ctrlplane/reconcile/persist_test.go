package reconcile

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/config"
	"github.com/gvs-lb/gvs/ctrlplane/internal/dptest"
	"github.com/gvs-lb/gvs/ipvs"
)

const persistCfg = `
virtual_servers:
  - vip: 10.1.0.100
    port: 80
    persistence_timeout: 300
    persistence_granularity: 255.255.255.0
    local_addresses: [{ip: 10.2.0.100, interface: dp1}]
    real_servers: [{ip: 10.2.0.11, port: 8080}]
`

func plan(ops []Op) string {
	var s []string
	for _, o := range ops {
		s = append(s, o.String())
	}
	return strings.Join(s, "\n")
}

// TestDiffPersistence: persistence and ops are part of a service's own
// settings: sent when it is added, one EditService when the timeout, the
// granularity or ops differ, nothing when the dataplane agrees (also when
// ipvsadm wrote a one-client granularity as a full mask).
func TestDiffPersistence(t *testing.T) {
	all := func(config.ServiceKey) bool { return true }
	want := Desired(parse(t, persistCfg).Services, nil)
	if got := plan(Diff(want, State{}, all)); got != `add service TCP 10.1.0.100:80 sched wlc persistent 300 mask /24
add laddr 10.2.0.100 dev dp1 to TCP 10.1.0.100:80
add dest 10.2.0.11:8080 weight 1 to TCP 10.1.0.100:80` {
		t.Errorf("from nothing:\n%s", got)
	}
	ops := Diff(want, State{}, all)
	if o := ops[0]; !o.Persistent || o.PersistTimeout != 300 || o.PersistPrefix != 24 || o.OnePacket {
		t.Errorf("add service op %+v", o)
	}
	if p := ops[0].pbService(); !p.Persistent || p.PersistentTimeout != 300 || p.PersistentPrefix != 24 || p.OnePacket || p.Key.Port != 80 {
		t.Errorf("AddService request %+v", p)
	}

	// the dataplane's listing after that plan
	listed := &pb.ListServicesResponse{Services: []*pb.Service{{Key: &pb.ServiceKey{Proto: "TCP", Addr: "10.1.0.100", Port: 80}, Sched: "wlc",
		Persistent: true, PersistentTimeout: 300, PersistentPrefix: 24,
		Laddrs: []*pb.LAddr{{Addr: "10.2.0.100", Dev: "dp1"}}, Dests: []*pb.Dest{{Addr: "10.2.0.11", Port: 8080, Weight: 1, Fwd: "FullNat"}}}}}
	have, err := Actual(listed)
	if err != nil {
		t.Fatal(err)
	}
	if s := have[want[ops[0].Service].Key]; !s.Persistent || s.PersistTimeout != 300 || s.PersistPrefix != 24 || s.OnePacket {
		t.Errorf("actual %+v", s)
	}
	if ops := Diff(want, have, all); len(ops) != 0 {
		t.Errorf("in sync, yet:\n%s", plan(ops))
	}

	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"timeout", "persistence_timeout: 300", "persistence_timeout: 10m", "edit service TCP 10.1.0.100:80 sched wlc persistent 600 mask /24"},
		{"granularity", "255.255.255.0", "255.255.0.0", "edit service TCP 10.1.0.100:80 sched wlc persistent 300 mask /16"},
		{"one client", "255.255.255.0", "255.255.255.255", "edit service TCP 10.1.0.100:80 sched wlc persistent 300"},
		{"no persistence", "    persistence_timeout: 300\n    persistence_granularity: 255.255.255.0\n", "", "edit service TCP 10.1.0.100:80 sched wlc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := strings.Replace(persistCfg, tc.from, tc.to, 1)
			if cfg == persistCfg {
				t.Fatal("the replacement changed nothing")
			}
			ops := Diff(Desired(parse(t, cfg).Services, nil), have, all)
			if len(ops) != 1 || ops[0].Kind != EditService || ops[0].String() != tc.want {
				t.Errorf("plan:\n%s\nwant the one call:\n%s", plan(ops), tc.want)
			}
			if p := ops[0].pbService(); p.Persistent != ops[0].Persistent || p.PersistentTimeout != ops[0].PersistTimeout ||
				int(p.PersistentPrefix) != ops[0].PersistPrefix {
				t.Errorf("EditService request %+v from %+v", p, ops[0])
			}
		})
	}

	// ipvsadm -p 300 -M 255.255.255.255 lists /32: the same as the file's
	// default granularity (one client), so no call
	host := Desired(parse(t, strings.Replace(persistCfg, "    persistence_granularity: 255.255.255.0\n", "", 1)).Services, nil)
	listed.Services[0].PersistentPrefix = 32
	have32, _ := Actual(listed)
	if ops := Diff(host, have32, all); len(ops) != 0 {
		t.Errorf("/32 listed, one client configured, yet:\n%s", plan(ops))
	}
	// a listing without persistence carries no timeout into the state
	listed.Services[0].Persistent, listed.Services[0].PersistentPrefix = false, 0
	plain, _ := Actual(listed)
	if s := plain[ops[0].Service]; s.Persistent || s.PersistTimeout != 0 || s.PersistPrefix != 0 {
		t.Errorf("not persistent, yet %+v", s)
	}
	if got := fmt.Sprint(Diff(want, plain, all)); got != "[edit service TCP 10.1.0.100:80 sched wlc persistent 300 mask /24]" {
		t.Errorf("persistence lost in the dataplane: %s", got)
	}
}

// TestReconcilePersistence applies persistent services to a real dataplane:
// a port-0 service whose real server takes the client's port, a UDP service
// with ops; the dataplane holds the settings, lists them back so that the
// same file makes no call, and a changed timeout is one call.
func TestReconcilePersistence(t *testing.T) {
	sock := dptest.Socket(t)
	dp := dptest.Start(t, sock, 1)
	api := dptest.Client(t, sock)
	r, ctx := startReconciler(t, api)
	cfg := `
virtual_servers:
  - vip: 10.1.0.100
    port: 0
    persistence_timeout: 300
    persistence_granularity: 24
    local_addresses: [{ip: 10.2.0.100, interface: dp1}]
    real_servers:
      - {ip: 10.2.0.11, port: 0}
      - {ip: 10.2.0.12, port: 443}
  - protocol: UDP
    vip: 10.1.0.100
    port: 53
    ops: true
    local_addresses: [{ip: 10.2.0.100, interface: dp1}]
    real_servers: [{ip: 10.2.0.11, port: 53}]
`
	if err := r.Load(ctx, parse(t, cfg), false); err != nil {
		t.Fatal(err)
	}
	want := `add service TCP 10.1.0.100:0 sched wlc persistent 300 mask /24
add laddr 10.2.0.100 dev dp1 to TCP 10.1.0.100:0
add dest 10.2.0.11:0 weight 1 to TCP 10.1.0.100:0
add dest 10.2.0.12:443 weight 1 to TCP 10.1.0.100:0
add service UDP 10.1.0.100:53 sched wlc ops
add laddr 10.2.0.100 dev dp1 to UDP 10.1.0.100:53
add dest 10.2.0.11:53 weight 1 to UDP 10.1.0.100:53`
	if got := listing(t, api); got != want {
		t.Fatalf("dataplane after load:\n%s\nwant:\n%s", got, want)
	}
	allKey := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.MustParseAddr("10.1.0.100"), Port: 0}
	spec := dp.DP.IPVS().Table().Service(allKey).Spec
	if !spec.Persistent || spec.PersistTimeout != 300 || spec.PersistPrefix != 24 || spec.OnePacket {
		t.Errorf("the dataplane's port-0 service %+v", spec)
	}
	if spec := dp.DP.IPVS().Table().Service(dnsKey).Spec; !spec.OnePacket || spec.Persistent {
		t.Errorf("the dataplane's ops service %+v", spec)
	}
	ops := r.Stats().Ops

	r.Load(ctx, r.Config(), true)
	if n := r.Stats().Ops; n != ops {
		t.Errorf("%d calls for an identical reload", n-ops)
	}
	if err := r.Load(ctx, parse(t, strings.Replace(cfg, "persistence_timeout: 300", "persistence_timeout: 900", 1)), true); err != nil {
		t.Fatal(err)
	}
	if n := r.Stats().Ops; n != ops+1 {
		t.Errorf("%d calls for a changed timeout, want 1", n-ops)
	}
	if spec := dp.DP.IPVS().Table().Service(allKey).Spec; spec.PersistTimeout != 900 || spec.PersistPrefix != 24 {
		t.Errorf("after the reload the dataplane holds %+v", spec)
	}
}
