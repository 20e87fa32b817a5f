package reconcile

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/config"
	"github.com/gvs-lb/gvs/ctrlplane/internal/dptest"
	"github.com/gvs-lb/gvs/ipvs"

	"github.com/gvs-lb/gvs/internal/testenv"
)

const baseCfg = `
global_defs: {timeouts: {tcp: 600}}
virtual_servers:
  - name: web
    vip: 10.1.0.100
    port: 80
    lb_algo: wrr
    local_addresses: [{ip: 10.2.0.100, interface: dp1}]
    real_servers:
      - {ip: 10.2.0.11, port: 8080, weight: 1}
      - {ip: 10.2.0.12, port: 8080, weight: 3}
  - name: dns
    protocol: UDP
    vip: 10.1.0.100
    port: 53
    lb_algo: rr
    local_addresses: [{ip: 10.2.0.100}]
    real_servers:
      - {ip: 10.2.0.11, port: 53, weight: 1}
`

func parse(t *testing.T, y string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startReconciler(t *testing.T, api pb.DataplaneClient) (*Reconciler, context.Context) {
	r := New(Options{API: api, Log: zap.NewNop(), CallTimeout: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, ctx
}

// listing returns the dataplane's services in the diff's text form.
func listing(t *testing.T, api pb.DataplaneClient) string {
	t.Helper()
	resp, err := api.ListServices(context.Background(), &pb.ListServicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := Actual(resp)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, o := range Diff(st, State{}, func(config.ServiceKey) bool { return false }) {
		lines = append(lines, o.String())
	}
	return strings.Join(lines, "\n")
}

var webKey = ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.MustParseAddr("10.1.0.100"), Port: 80}
var dnsKey = ipvs.ServiceKey{Proto: ipvs.UDP, Addr: netip.MustParseAddr("10.1.0.100"), Port: 53}

// TestReconcileDataplane applies configurations to a real dataplane: the
// whole config, then reloads that change one service (the other's live
// objects stay the same), a refused reload, removal, and services that are
// not the control plane's.
func TestReconcileDataplane(t *testing.T) {
	sock := dptest.Socket(t)
	dp := dptest.Start(t, sock, 1)
	api := dptest.Client(t, sock)
	r, ctx := startReconciler(t, api)

	if err := r.Load(ctx, parse(t, baseCfg), false); err != nil {
		t.Fatal(err)
	}
	want := `add service TCP 10.1.0.100:80 sched wrr
add laddr 10.2.0.100 dev dp1 to TCP 10.1.0.100:80
add dest 10.2.0.11:8080 weight 1 to TCP 10.1.0.100:80
add dest 10.2.0.12:8080 weight 3 to TCP 10.1.0.100:80
add service UDP 10.1.0.100:53 sched rr
add laddr 10.2.0.100 dev dp1 to UDP 10.1.0.100:53
add dest 10.2.0.11:53 weight 1 to UDP 10.1.0.100:53`
	if got := listing(t, api); got != want {
		t.Fatalf("dataplane after load:\n%s\nwant:\n%s", got, want)
	}
	if to, _ := api.GetTimeouts(ctx, &pb.Empty{}); to.Tcp != 600 {
		t.Errorf("tcp timeout %d, want 600", to.Tcp)
	}
	if s := r.Stats(); s.Ops != 7 || s.Runs != 1 || s.Failures != 0 || s.Loads != 1 {
		t.Errorf("stats %+v", s)
	}
	web := dp.DP.IPVS().Table().Service(webKey)

	// reload changing only dns: web's service and destinations are the
	// same live objects afterwards (no call touched them)
	if err := r.Load(ctx, parse(t, strings.Replace(baseCfg, "port: 53, weight: 1", "port: 53, weight: 5", 1)), true); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s.Ops != 8 {
		t.Errorf("%d ops after a one-weight change, want 8", s.Ops)
	}
	web2 := dp.DP.IPVS().Table().Service(webKey)
	if web2.ID != web.ID || len(web2.Dests) != 2 || web2.Dests[0] != web.Dests[0] || web2.Dests[1] != web.Dests[1] {
		t.Error("the unchanged service's destinations were replaced")
	}
	if d := dp.DP.IPVS().Table().Service(dnsKey).Dests[0]; d.Spec.Weight != 5 {
		t.Errorf("dns weight %d, want 5", d.Spec.Weight)
	}

	// the same file again: no call at all
	r.Load(ctx, r.Config(), true)
	if s := r.Stats(); s.Ops != 8 {
		t.Errorf("%d ops after an identical reload, want 8", s.Ops)
	}

	// a local address the dataplane does not have: refused, nothing changes
	before := listing(t, api)
	cfg := r.Config()
	bad := parse(t, strings.Replace(baseCfg, "{ip: 10.2.0.100, interface: dp1}", "{ip: 10.2.0.200, interface: dp1}", 1)+
		"  - {vip: 10.1.0.100, port: 8443, local_addresses: [{ip: 10.2.0.100, interface: dp0}]}\n")
	err := r.Load(ctx, bad, true)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "local address 10.2.0.200 is not an address of the dataplane") ||
		!strings.Contains(err.Error(), "dpip addr add 10.2.0.200/32 dev dp1") || !strings.Contains(err.Error(), "is on dp1, not dp0") {
		t.Errorf("reload with a missing local address: %v", err)
	}
	if r.Config() != cfg || listing(t, api) != before || r.Stats().Refused != 1 {
		t.Error("a refused reload changed something")
	}

	// a service someone else made stays, unless remove_unmanaged
	other := &pb.ServiceKey{Proto: "TCP", Addr: "10.1.0.100", Port: 443}
	if _, err := api.AddService(ctx, &pb.Service{Key: other, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	// dns leaves the config: deleted; web stays as it is
	noDNS := baseCfg[:strings.Index(baseCfg, "  - name: dns")]
	if err := r.Load(ctx, parse(t, noDNS), true); err != nil {
		t.Fatal(err)
	}
	got := listing(t, api)
	if strings.Contains(got, "UDP 10.1.0.100:53") || !strings.Contains(got, "TCP 10.1.0.100:443") || !strings.Contains(got, "TCP 10.1.0.100:80") {
		t.Errorf("after removing dns:\n%s", got)
	}
	if dp.DP.IPVS().Table().Service(webKey).Dests[0] != web.Dests[0] {
		t.Error("web was touched when dns was removed")
	}
	if err := r.Load(ctx, parse(t, strings.Replace(noDNS, "global_defs: {", "global_defs: {remove_unmanaged: true, ", 1)), true); err != nil {
		t.Fatal(err)
	}
	if got := listing(t, api); strings.Contains(got, ":443") || !strings.Contains(got, ":80") {
		t.Errorf("remove_unmanaged:\n%s", got)
	}
}

// TestDataplaneRestart: the dataplane goes away and comes back empty on
// the same socket; the watcher notices and the reconciler re-applies.
func TestDataplaneRestart(t *testing.T) {
	sock := dptest.Socket(t)
	dp := dptest.Start(t, sock, 1)
	api := dptest.Client(t, sock)
	r, ctx := startReconciler(t, api)
	w := NewWatcher(api, zap.NewNop(), 20*time.Millisecond, time.Second, r.Kick)
	go w.Run(ctx)
	if err := r.Load(ctx, parse(t, baseCfg), false); err != nil {
		t.Fatal(err)
	}
	want := listing(t, api)
	testenv.Eventually(t, 2*time.Second, "the watcher to see the dataplane", w.Up)

	for i := 0; i < 2; i++ {
		dp.Stop()
		testenv.Eventually(t, 2*time.Second, "the watcher to see the dataplane gone", func() bool { return !w.Up() })
		dp = dptest.Start(t, sock, 1)
		fresh := dptest.Client(t, sock)
		testenv.Eventually(t, 5*time.Second, "services back after a dataplane restart", func() bool {
			resp, err := fresh.ListServices(context.Background(), &pb.ListServicesRequest{})
			return err == nil && len(resp.Services) == 2 && listing(t, fresh) == want
		})
		if to, _ := fresh.GetTimeouts(ctx, &pb.Empty{}); to.Tcp != 600 {
			t.Errorf("timeouts not re-applied: %v", to)
		}
	}
}

// watchRestart runs a watcher polling every interval over a dataplane,
// calls before once the dataplane was reached, restarts the dataplane and
// requires the watcher to report exactly one restart. It returns the boot
// ids before and after.
func watchRestart(t *testing.T, interval time.Duration, before func(w *Watcher)) (first, second string) {
	t.Helper()
	sock := dptest.Socket(t)
	dp := dptest.Start(t, sock, 1)
	api := dptest.Client(t, sock)
	events := make(chan string, 10)
	w := NewWatcher(api, zap.NewNop(), interval, time.Second, func(r string) { events <- r })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	if r := <-events; r != "dataplane reachable" {
		t.Fatalf("first event %q", r)
	}
	before(w)
	first = w.Info().BootId
	dp.Stop()
	dptest.Start(t, sock, 1)
	select {
	case r := <-events:
		if r != "dataplane restarted" {
			t.Errorf("event %q, want \"dataplane restarted\"", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("restart not noticed")
	}
	if n := w.Restarts(); n != 1 {
		t.Errorf("restarts = %d, want 1", n)
	}
	return first, w.Info().BootId
}

// TestRestartWithoutOutage: a restart between two polls (no failed call)
// of a dataplane that lived longer than the watcher's slack is noticed.
func TestRestartWithoutOutage(t *testing.T) {
	watchRestart(t, 300*time.Millisecond, func(w *Watcher) {
		testenv.Eventually(t, 5*time.Second, "the first dataplane's uptime to pass twice the slack", func() bool {
			in := w.Info()
			return in != nil && time.Duration(in.UptimeNs) > 2*startSlack
		})
	})
}

// TestQuickRestartNoticedByBootID: a dataplane that lived less than the
// uptime check's slack and restarted between two polls is still noticed,
// by its new boot id.
func TestQuickRestartNoticedByBootID(t *testing.T) {
	first, second := watchRestart(t, 100*time.Millisecond, func(*Watcher) {})
	if first == "" || second == first {
		t.Errorf("boot ids %q then %q", first, second)
	}
}
