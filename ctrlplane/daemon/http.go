package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/announce"
	"github.com/gvs-lb/gvs/ctrlplane/health"
	"github.com/gvs-lb/gvs/ctrlplane/metrics"
	"github.com/gvs-lb/gvs/ctrlplane/reconcile"
	sessync "github.com/gvs-lb/gvs/ctrlplane/sync"
)

// metricsHandler serves the HTTP listener: /metrics (Prometheus) and
// /healthz. Nothing there changes or reveals the configuration, so the
// listener can be opened to a Prometheus server.
func (d *Daemon) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(metrics.Sources{
		API:            d.client,
		Timeout:        d.started.Dataplane.CallTimeout.D(),
		Health:         d.Health.Snapshot,
		Stats:          d.Rec.Stats,
		Restarts:       d.Watch.Restarts,
		InvalidReloads: d.invalid.Load,
		Announce:       d.announceStatus(),
	}))
	if d.Sync != nil {
		reg.MustRegister(sessync.NewCollector(d.Sync))
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", healthz)
	return mux
}

// controlHandler serves the control socket: /reload (POST: re-read the
// file), /state (JSON listing) and /healthz.
func (d *Daemon) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
		defer cancel()
		err := d.Reload(ctx)
		switch {
		case errors.Is(err, reconcile.ErrRefused):
			http.Error(w, err.Error(), http.StatusBadRequest)
		case err != nil:
			http.Error(w, "reloaded, but applying failed (retrying): "+err.Error(), http.StatusServiceUnavailable)
		default:
			w.Write([]byte("reloaded\n"))
		}
	})
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(d.State(r.Context()))
	})
	mux.HandleFunc("POST /drain", d.drainHandler(d.Drain))
	mux.HandleFunc("POST /undrain", d.drainHandler(d.Undrain))
	mux.HandleFunc("GET /healthz", healthz)
	return mux
}

func healthz(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) }

// State is the /state listing.
type State struct {
	ConfigFile string         `json:"config_file"`
	CPUs       []int          `json:"cpus"`
	Dataplane  DataplaneState `json:"dataplane"`
	Reconcile  ReconcileState `json:"reconcile"`
	Services   []ServiceState `json:"virtual_servers"`
	Unmanaged  []string       `json:"unmanaged_services,omitempty"`
	// Announce is the route announcement (absent without an announce section).
	Announce *announce.Status `json:"announce,omitempty"`
	Errors   []string         `json:"errors,omitempty"`
}

// DataplaneState is what the watcher knows.
type DataplaneState struct {
	Up       bool    `json:"up"`
	Version  string  `json:"version,omitempty"`
	Uptime   float64 `json:"uptime_seconds,omitempty"`
	Restarts uint64  `json:"restarts_seen"`
}

// ReconcileState are the reconciler's counters.
type ReconcileState struct {
	Runs        uint64    `json:"runs"`
	Failures    uint64    `json:"failures"`
	Ops         uint64    `json:"ops"`
	LastSuccess time.Time `json:"last_success"`
	LastError   string    `json:"last_error,omitempty"`
}

// ServiceState is one configured virtual server.
type ServiceState struct {
	Name        string      `json:"name"`
	Service     string      `json:"service"`
	Sched       string      `json:"lb_algo"`
	InDataplane bool        `json:"in_dataplane"`
	Reals       []RealState `json:"real_servers"`
	Sorry       *RealState  `json:"sorry_server,omitempty"`
}

// RealState is a real (or sorry) server: configuration, health, dataplane.
type RealState struct {
	Addr    string               `json:"addr"`
	Weight  int                  `json:"weight"`
	Up      bool                 `json:"up"`
	Inhibit bool                 `json:"inhibit_on_failure,omitempty"`
	Checks  []health.CheckStatus `json:"checks,omitempty"`
	// DataplaneWeight is the weight in the dataplane; null: not there.
	DataplaneWeight *int `json:"dataplane_weight"`
}

// State lists the configured services with their health and what the
// dataplane holds of them.
func (d *Daemon) State(ctx context.Context) State {
	cfg := d.Rec.Config()
	st := State{ConfigFile: d.o.ConfigPath, CPUs: cpusAllowed()}
	st.Dataplane = DataplaneState{Up: d.Watch.Up(), Restarts: d.Watch.Restarts()}
	if in := d.Watch.Info(); in != nil {
		st.Dataplane.Version, st.Dataplane.Uptime = in.Version, time.Duration(in.UptimeNs).Seconds()
	}
	rs := d.Rec.Stats()
	st.Reconcile = ReconcileState{Runs: rs.Runs, Failures: rs.Failures, Ops: rs.Ops, LastSuccess: rs.LastSuccess, LastError: rs.LastError}
	var actual reconcile.State
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	resp, err := d.client.ListServices(cctx, &pb.ListServicesRequest{})
	cancel()
	if err == nil {
		actual, err = reconcile.Actual(resp)
	}
	if err != nil {
		st.Errors = append(st.Errors, "dataplane services: "+err.Error())
	}
	checks := map[health.RealKey]health.RealStatus{}
	for _, h := range d.Health.Snapshot() {
		checks[h.RealKey] = h
	}
	weightIn := func(a *reconcile.ServiceState, addr netip.AddrPort) *int {
		if a == nil {
			return nil
		}
		if dd, ok := a.Dests[addr]; ok {
			w := dd.Weight
			return &w
		}
		return nil
	}
	if cfg != nil {
		for _, s := range cfg.Services {
			a := actual[s.Key]
			ss := ServiceState{Name: s.Name, Service: s.Key.String(), Sched: s.Sched, InDataplane: a != nil}
			for _, r := range s.Reals {
				h, ok := checks[health.RealKey{Service: s.Key, Addr: r.Addr}]
				ss.Reals = append(ss.Reals, RealState{Addr: r.Addr.String(), Weight: r.Weight, Up: !ok || h.Up,
					Inhibit: r.Inhibit, Checks: h.Checks, DataplaneWeight: weightIn(a, r.Addr)})
			}
			if s.Sorry != nil {
				w := weightIn(a, s.Sorry.Addr)
				ss.Sorry = &RealState{Addr: s.Sorry.Addr.String(), Weight: s.Sorry.Weight, Up: w != nil, DataplaneWeight: w}
			}
			st.Services = append(st.Services, ss)
			delete(actual, s.Key)
		}
	}
	for k := range actual {
		st.Unmanaged = append(st.Unmanaged, k.String())
	}
	slices.Sort(st.Unmanaged)
	if d.Announce != nil {
		as := d.Announce.Status()
		st.Announce = &as
	}
	return st
}
