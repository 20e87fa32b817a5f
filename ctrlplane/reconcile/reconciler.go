package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/config"
	"github.com/gvs-lb/gvs/ctrlplane/dpclient"
)

// Options configure a Reconciler.
type Options struct {
	API    pb.DataplaneClient
	Log    *zap.Logger
	Health HealthView // nil: every real server is up
	// CallTimeout bounds each API call (default 5s).
	CallTimeout time.Duration
	// Resync re-reads the dataplane this often and repairs drift; 0: never.
	Resync time.Duration
	// OnConfig is called from the reconciler's goroutine with each config it
	// accepts, before applying it (the health manager's Update).
	OnConfig func(*config.Config)
}

// ErrRefused wraps the reason a reload was refused; the running
// configuration stays as it was.
var ErrRefused = errors.New("configuration refused")

// Stats are the reconciler's counters, for metrics.
type Stats struct {
	Runs, Failures, Ops uint64
	LastSuccess         time.Time
	LastError           string
	Loads, Refused      uint64
}

// Reconciler serialises every change of the dataplane through one goroutine.
type Reconciler struct {
	o     Options
	reqs  chan loadReq
	kicks chan string
	cfg   atomic.Pointer[config.Config]

	// owned is every service the reconciler has configured or is
	// configuring: only those are deleted when they leave the config.
	owned map[config.ServiceKey]bool

	mu    sync.Mutex
	stats Stats
}

type loadReq struct {
	cfg    *config.Config
	reload bool
	reply  chan error
}

// New returns a reconciler; call Run to start it.
func New(o Options) *Reconciler {
	if o.CallTimeout == 0 {
		o.CallTimeout = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	return &Reconciler{o: o, reqs: make(chan loadReq), kicks: make(chan string, 1), owned: map[config.ServiceKey]bool{}}
}

// Config returns the configuration in force (nil before the first Load).
func (r *Reconciler) Config() *config.Config { return r.cfg.Load() }

// Stats returns a copy of the counters.
func (r *Reconciler) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Load makes cfg the configuration and applies it. With reload, cfg is
// first checked against the dataplane (its local addresses must exist):
// if that fails, Load returns an error wrapping ErrRefused and nothing
// changes. Otherwise cfg is in force when Load returns; an error then means
// that applying it failed and is being retried.
func (r *Reconciler) Load(ctx context.Context, cfg *config.Config, reload bool) error {
	req := loadReq{cfg: cfg, reload: reload, reply: make(chan error, 1)}
	select {
	case r.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kick asks for a reconcile soon; kicks while one is pending coalesce.
func (r *Reconciler) Kick(reason string) {
	select {
	case r.kicks <- reason:
	default:
	}
}

// Run serves loads and kicks until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	var resync <-chan time.Time
	if r.o.Resync > 0 {
		t := time.NewTicker(r.o.Resync)
		defer t.Stop()
		resync = t.C
	}
	backoff := time.Duration(0)
	run := func(reason string) error {
		err := r.reconcile(ctx, reason)
		if err == nil {
			backoff = 0
			retry.Stop()
			return nil
		}
		backoff = min(max(2*backoff, 500*time.Millisecond), 10*time.Second)
		retry.Reset(backoff)
		r.o.Log.Warn("reconcile failed: retrying", zap.String("trigger", reason), zap.Duration("retry_in", backoff), zap.Error(err))
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-r.reqs:
			if req.reload {
				if err := r.preflight(ctx, req.cfg); err != nil {
					r.count(func(s *Stats) { s.Refused++ })
					req.reply <- fmt.Errorf("%w: %w", ErrRefused, err)
					continue
				}
			}
			r.cfg.Store(req.cfg)
			for _, s := range req.cfg.Services {
				r.owned[s.Key] = true
			}
			r.count(func(s *Stats) { s.Loads++ })
			if r.o.OnConfig != nil {
				r.o.OnConfig(req.cfg)
			}
			req.reply <- run("configuration loaded")
		case reason := <-r.kicks:
			if r.cfg.Load() != nil {
				run(reason)
			}
		case <-retry.C:
			run("retry")
		case <-resync:
			if r.cfg.Load() != nil {
				run("resync")
			}
		}
	}
}

func (r *Reconciler) count(f func(*Stats)) {
	r.mu.Lock()
	f(&r.stats)
	r.mu.Unlock()
}

func (r *Reconciler) manages(k config.ServiceKey) bool {
	return r.owned[k] || r.cfg.Load().Global.RemoveUnmanaged
}

// reconcile runs one list → diff → apply round.
func (r *Reconciler) reconcile(ctx context.Context, reason string) (err error) {
	cfg := r.cfg.Load()
	defer func() {
		r.count(func(s *Stats) {
			s.Runs++
			if err != nil {
				s.Failures++
				s.LastError = err.Error()
			} else {
				s.LastSuccess = time.Now()
				s.LastError = ""
			}
		})
	}()
	cctx, cancel := context.WithTimeout(ctx, r.o.CallTimeout)
	resp, err := r.o.API.ListServices(cctx, &pb.ListServicesRequest{})
	cancel()
	if err != nil {
		return fmt.Errorf("listing the dataplane's services: %w", dpclient.Message(err))
	}
	actual, err := Actual(resp)
	if err != nil {
		return err
	}
	// timeouts first: connections of new services get the configured ones
	terr := r.timeouts(ctx, cfg.Timeouts())
	desired := Desired(cfg.Services, r.o.Health)
	ops := Diff(desired, actual, r.manages)
	n, err := Apply(ctx, r.o.API, r.o.CallTimeout, ops, func(o Op) {
		r.o.Log.Info("applied", zap.String("op", o.String()), zap.String("service", o.Service.String()), zap.String("trigger", reason))
	})
	r.count(func(s *Stats) { s.Ops += uint64(n) })
	if err = errors.Join(terr, err); err != nil {
		return err
	}
	for k := range r.owned {
		if _, ok := desired[k]; !ok {
			delete(r.owned, k)
		}
	}
	if len(ops) > 0 {
		r.o.Log.Info("reconciled", zap.String("trigger", reason), zap.Int("ops", n), zap.Int("services", len(desired)))
	} else {
		r.o.Log.Debug("reconciled: no change", zap.String("trigger", reason))
	}
	return nil
}

// timeouts sets the global timeouts that differ from the configured ones.
func (r *Reconciler) timeouts(ctx context.Context, want config.Timeouts) error {
	if want == (config.Timeouts{}) {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, r.o.CallTimeout)
	defer cancel()
	have, err := r.o.API.GetTimeouts(cctx, &pb.Empty{})
	if err != nil {
		return fmt.Errorf("reading the timeouts: %w", dpclient.Message(err))
	}
	set := &pb.Timeouts{}
	secs := func(d time.Duration) uint32 { return uint32(d / time.Second) }
	var changed []string
	for _, t := range []struct {
		name string
		want time.Duration
		have uint32
		set  *uint32
	}{{"tcp", want.TCP, have.Tcp, &set.Tcp}, {"tcpfin", want.TCPFin, have.TcpFin, &set.TcpFin},
		{"udp", want.UDP, have.Udp, &set.Udp}, {"none", want.None, have.None, &set.None},
		{"syn_sent", want.SynSent, have.SynSent, &set.SynSent}, {"syn_recv", want.SynRecv, have.SynRecv, &set.SynRecv},
		{"time_wait", want.TimeWait, have.TimeWait, &set.TimeWait}, {"close", want.Close, have.Close, &set.Close},
		{"close_wait", want.CloseWait, have.CloseWait, &set.CloseWait},
		{"last_ack", want.LastAck, have.LastAck, &set.LastAck}, {"listen", want.Listen, have.Listen, &set.Listen},
		{"synack", want.SynAck, have.Synack, &set.Synack}} {
		if w := secs(t.want); w != 0 && w != t.have {
			*t.set = w
			changed = append(changed, fmt.Sprintf("%s %d", t.name, w))
		}
	}
	if len(changed) == 0 {
		return nil
	}
	op := "set timeouts " + strings.Join(changed, " ")
	if _, err := r.o.API.SetTimeouts(cctx, set); err != nil {
		return fmt.Errorf("%s: %w", op, dpclient.Message(err))
	}
	r.o.Log.Info("applied", zap.String("op", op))
	return nil
}

// preflight checks a reloaded configuration against the dataplane: every
// local address must be an address of the dataplane (on the named
// interface). An unreachable dataplane does not refuse a reload: the
// configuration is then applied when it comes back.
func (r *Reconciler) preflight(ctx context.Context, cfg *config.Config) error {
	cctx, cancel := context.WithTimeout(ctx, r.o.CallTimeout)
	defer cancel()
	resp, err := r.o.API.ListAddrs(cctx, &pb.ListAddrsRequest{})
	if err != nil {
		r.o.Log.Warn("dataplane unreachable: local addresses not checked before the reload", zap.Error(dpclient.Message(err)))
		return nil
	}
	dev := map[netip.Addr]string{}
	for _, a := range resp.Addrs {
		if p, err := netip.ParsePrefix(a.Prefix); err == nil {
			dev[p.Addr().Unmap()] = a.Dev
		}
	}
	var errs []error
	for _, s := range cfg.Services {
		for _, la := range s.LAddrs {
			d, ok := dev[la.Addr]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("virtual_server %s: local address %s is not an address of the dataplane: add it first (dpip addr add %s/%d dev %s) or fix local_addresses",
					s.Key, la.Addr, la.Addr, la.Addr.BitLen(), orDev(la.Dev)))
			case la.Dev != "" && d != la.Dev:
				errs = append(errs, fmt.Errorf("virtual_server %s: local address %s is on %s, not %s: fix its interface", s.Key, la.Addr, d, la.Dev))
			}
		}
	}
	return errors.Join(errs...)
}

func orDev(s string) string {
	if s == "" {
		return "DEV"
	}
	return s
}
