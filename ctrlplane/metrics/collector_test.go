package metrics

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/config"
	"github.com/gvs-lb/gvs/ctrlplane/health"
	"github.com/gvs-lb/gvs/ctrlplane/internal/dptest"
	"github.com/gvs-lb/gvs/ctrlplane/reconcile"
)

// Scrape serves reg over HTTP as Prometheus would get it and parses the
// answer with the Prometheus text parser.
func Scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the text parser refuses the scrape: %v", err)
	}
	return fams
}

// Value returns the value of the series of family name with the given
// labels (a subset), and whether there is exactly one.
func Value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	var found []float64
	for _, m := range f.Metric {
		ok := true
		for k, v := range labels {
			match := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					match = true
				}
			}
			ok = ok && match
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			found = append(found, m.Counter.GetValue())
		case m.Gauge != nil:
			found = append(found, m.Gauge.GetValue())
		}
	}
	if len(found) != 1 {
		return 0, false
	}
	return found[0], true
}

func TestCollector(t *testing.T) {
	sock := dptest.Socket(t)
	dptest.Start(t, sock, 2)
	api := dptest.Client(t, sock)
	ctx := context.Background()
	key := &pb.ServiceKey{Proto: "TCP", Addr: "10.1.0.100", Port: 80}
	if _, err := api.AddService(ctx, &pb.Service{Key: key, Sched: "wrr"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*pb.Dest{{Addr: "10.2.0.11", Port: 8080, Weight: 1}, {Addr: "10.2.0.12", Port: 8080, Weight: 0}} {
		if _, err := api.AddDest(ctx, &pb.DestRequest{Service: key, Dest: d}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := api.AddLAddr(ctx, &pb.LAddrRequest{Service: key, Laddr: &pb.LAddr{Addr: "10.2.0.100", Dev: "dp1"}}); err != nil {
		t.Fatal(err)
	}
	svcKey := config.ServiceKey{Proto: "TCP", Addr: netip.MustParseAddr("10.1.0.100"), Port: 80}
	rs2 := netip.MustParseAddrPort("10.2.0.12:8080")
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(Sources{
		API: api,
		Health: func() []health.RealStatus {
			return []health.RealStatus{{RealKey: health.RealKey{Service: svcKey, Addr: rs2}, ServiceName: "web",
				Checks: []health.CheckStatus{{Kind: "HTTP_GET", Reason: "connection refused"}}}}
		},
		Stats: func() reconcile.Stats {
			return reconcile.Stats{Runs: 5, Failures: 1, Ops: 9, Loads: 2, LastSuccess: time.Unix(1000, 0)}
		},
		Restarts:       func() uint64 { return 3 },
		InvalidReloads: func() uint64 { return 4 },
	}))
	fams := Scrape(t, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	svc := map[string]string{"protocol": "TCP", "vip": "10.1.0.100", "port": "80"}
	dest := func(rs string) map[string]string {
		return map[string]string{"protocol": "TCP", "vip": "10.1.0.100", "port": "80", "real_server": rs}
	}
	with := func(m map[string]string, k, v string) map[string]string {
		c := map[string]string{k: v}
		for a, b := range m {
			c[a] = b
		}
		return c
	}
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"gvs_dataplane_up", nil, 1},
		{"gvs_dataplane_restarts_total", nil, 3},
		{"gvs_service_connections_total", svc, 0},
		{"gvs_service_packets_total", with(svc, "direction", "in"), 0},
		{"gvs_service_bytes_total", with(svc, "direction", "out"), 0},
		{"gvs_service_destinations", svc, 2},
		{"gvs_service_active_connections", svc, 0},
		{"gvs_dest_weight", dest("10.2.0.11:8080"), 1},
		{"gvs_dest_weight", dest("10.2.0.12:8080"), 0},
		{"gvs_dest_active_connections", dest("10.2.0.11:8080"), 0},
		{"gvs_dest_inactive_connections", dest("10.2.0.11:8080"), 0},
		{"gvs_dest_persistence_templates", dest("10.2.0.11:8080"), 0},
		{"gvs_dest_connections_total", dest("10.2.0.12:8080"), 0},
		{"gvs_dest_packets_total", with(dest("10.2.0.12:8080"), "direction", "out"), 0},
		{"gvs_real_server_up", dest("10.2.0.12:8080"), 0},
		{"gvs_real_server_check_up", with(dest("10.2.0.12:8080"), "check", "HTTP_GET"), 0},
		{"gvs_worker_rx_packets_total", map[string]string{"worker": "1"}, 0},
		{"gvs_worker_drops_total", map[string]string{"worker": "0", "reason": "lb_no_laddr"}, 0},
		{"gvs_worker_redirects_total", map[string]string{"worker": "0", "direction": "out"}, 0},
		{"gvs_worker_events_total", map[string]string{"worker": "0", "counter": "lb_new_conns"}, 0},
		{"gvs_worker_loops_total", map[string]string{"worker": "1"}, 0},
		{"gvs_worker_busy_seconds_total", map[string]string{"worker": "1"}, 0}, // no traffic
		{"gvs_port_rx_packets_total", map[string]string{"port": "dp0"}, 0},
		{"gvs_port_tx_errors_total", map[string]string{"port": "dp1"}, 0},
		{"gvs_controlplane_reconciles_total", map[string]string{"result": "ok"}, 4},
		{"gvs_controlplane_reconciles_total", map[string]string{"result": "error"}, 1},
		{"gvs_controlplane_reconcile_ops_total", nil, 9},
		{"gvs_controlplane_config_refused_total", map[string]string{"reason": "invalid_file"}, 4},
		{"gvs_controlplane_last_reconcile_success_timestamp_seconds", nil, 1000},
		{"gvs_worker_connections", map[string]string{"worker": "1"}, 0},
		{"gvs_worker_conn_capacity", map[string]string{"worker": "1"}, 1 << 18},
		{"gvs_laddr_ports_in_use", map[string]string{"worker": "0", "laddr": "10.2.0.100"}, 0},
		// two workers: each has every other port above 1023 towards each real server
		{"gvs_laddr_busiest_server_ports_free", map[string]string{"worker": "1", "laddr": "10.2.0.100"}, (65536 - 1024) / 2},
	}
	for _, w := range want {
		v, ok := Value(fams, w.name, w.labels)
		if !ok || v != w.value {
			t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, v, ok, w.value)
		}
	}
	if up, _ := Value(fams, "gvs_dataplane_uptime_seconds", nil); up <= 0 {
		t.Errorf("uptime %v", up)
	}
	if f := fams["gvs_service_connections_total"]; f == nil || f.GetType() != dto.MetricType_COUNTER {
		t.Error("service connections is not a counter")
	}
	// bounded cardinality: labels come from this short list only
	allowed := map[string]bool{"protocol": true, "vip": true, "port": true, "real_server": true, "direction": true,
		"check": true, "worker": true, "reason": true, "counter": true, "result": true, "version": true, "idle_mode": true,
		"laddr": true}
	for name, f := range fams {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if !allowed[l.GetName()] {
					t.Errorf("%s has label %s", name, l.GetName())
				}
			}
		}
	}
	for name := range fams {
		if !strings.HasPrefix(name, "gvs_") {
			t.Errorf("family %s outside gvs_", name)
		}
	}
}

// TestCollectorDataplaneDown: a scrape without a dataplane still answers,
// with gvs_dataplane_up 0 and the control plane's own series.
func TestCollectorDataplaneDown(t *testing.T) {
	sock := dptest.Socket(t)
	dp := dptest.Start(t, sock, 1)
	api := dptest.Client(t, sock)
	dp.Stop()
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(Sources{API: api, Timeout: 500 * time.Millisecond, Restarts: func() uint64 { return 0 }}))
	fams := Scrape(t, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if v, ok := Value(fams, "gvs_dataplane_up", nil); !ok || v != 0 {
		t.Errorf("gvs_dataplane_up %v %v", v, ok)
	}
	if _, ok := fams["gvs_dataplane_restarts_total"]; !ok {
		t.Error("control plane series missing")
	}
	if _, ok := fams["gvs_worker_loops_total"]; ok {
		t.Error("worker series without a dataplane")
	}
}

// TestLBUsageGauges: the usage the dataplane reports becomes one series
// per worker and per (local address, worker).
func TestLBUsageGauges(t *testing.T) {
	in := &pb.LBUsage{Workers: []*pb.WorkerLBUsage{
		{Worker: 0, Conns: 240000, ConnCapacity: 262144, HighWater: 235930, Pressure: true, Laddrs: []*pb.LAddrPorts{
			{Addr: "10.2.0.100", InUse: 200000, BusiestInUse: 50000, BusiestFree: 14512, PortsPerServer: 64512, Servers: 4, Conflicts: 12},
			{Addr: "fd00:2::100", PortsPerServer: 64512, BusiestFree: 64512}}},
		{Worker: 1, Conns: 7, ConnCapacity: 262144, HighWater: 235930},
	}}
	ch := make(chan prometheus.Metric, 32)
	lbUsage(ch, in)
	close(ch)
	got := map[string]float64{}
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		k := m.Desc().String()
		k = k[strings.Index(k, `"`)+1:]
		k = k[:strings.Index(k, `"`)]
		for _, l := range d.Label {
			k += " " + l.GetName() + "=" + l.GetValue()
		}
		got[k] = d.GetGauge().GetValue() + d.GetCounter().GetValue()
	}
	want := map[string]float64{
		"gvs_worker_connections worker=0":                                240000,
		"gvs_worker_conn_high_water worker=0":                            235930,
		"gvs_worker_conn_pressure worker=0":                              1,
		"gvs_worker_conn_high_water worker=1":                            235930,
		"gvs_worker_conn_pressure worker=1":                              0,
		"gvs_laddr_port_conflicts_total laddr=10.2.0.100 worker=0":       12,
		"gvs_laddr_port_conflicts_total laddr=fd00:2::100 worker=0":      0,
		"gvs_worker_conn_capacity worker=0":                              262144,
		"gvs_worker_connections worker=1":                                7,
		"gvs_worker_conn_capacity worker=1":                              262144,
		"gvs_laddr_ports_in_use laddr=10.2.0.100 worker=0":               200000,
		"gvs_laddr_busiest_server_ports_free laddr=10.2.0.100 worker=0":  14512,
		"gvs_laddr_ports_in_use laddr=fd00:2::100 worker=0":              0,
		"gvs_laddr_busiest_server_ports_free laddr=fd00:2::100 worker=0": 64512,
	}
	if len(got) != len(want) {
		t.Errorf("%d series, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}

// servicesOnly collects the series services() makes of a listing.
type servicesOnly struct{ r *pb.ListServicesResponse }

func (s servicesOnly) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(s, ch) }
func (s servicesOnly) Collect(ch chan<- prometheus.Metric) { services(ch, s.r) }

// TestServiceRefused: a listed service's admission counters become
// gvs_service_refused_total with one series per reason (four words: the
// cardinality is the services'), 0 for a service that refused nothing.
func TestServiceRefused(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(servicesOnly{&pb.ListServicesResponse{Services: []*pb.Service{
		{Key: &pb.ServiceKey{Proto: "TCP", Addr: "10.1.0.100", Port: 80},
			Admission: &pb.AdmissionStats{Denied: 7, NotAllowed: 5, RateLimited: 3, SourceLimited: 2}},
		{Key: &pb.ServiceKey{Proto: "UDP", Addr: "fd00:1::100", Port: 53}},
	}}})
	fams := Scrape(t, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	for _, w := range []struct {
		vip, port, reason string
		v                 float64
	}{
		{"10.1.0.100", "80", "denied", 7}, {"10.1.0.100", "80", "not_allowed", 5},
		{"10.1.0.100", "80", "rate_limited", 3}, {"10.1.0.100", "80", "source_limited", 2},
		{"fd00:1::100", "53", "denied", 0}, {"fd00:1::100", "53", "source_limited", 0},
	} {
		v, ok := Value(fams, "gvs_service_refused_total", map[string]string{"vip": w.vip, "port": w.port, "reason": w.reason})
		if !ok || v != w.v {
			t.Errorf("refused %s:%s %s = %v (found %v), want %v", w.vip, w.port, w.reason, v, ok, w.v)
		}
	}
	if f := fams["gvs_service_refused_total"]; f == nil || f.GetType() != dto.MetricType_COUNTER || len(f.Metric) != 8 {
		t.Errorf("gvs_service_refused_total: %v", f)
	}
}
