// Package daemon assembles a running gvs-controlplane: it loads the
// configuration, pins the process to its housekeeping CPUs, connects to the
// dataplane, and runs the reconciler (the only writer to the dataplane),
// the restart watcher, the health checks, the HTTP listener (/metrics,
// /healthz: safe to open to Prometheus) and the control socket (/reload,
// /state, /healthz: root or the control group only). Reload (SIGHUP,
// `gvs-controlplane reload` or POST /reload on the socket) re-reads the
// file: an invalid file is refused and logged, and the running state stays
// as it was; a valid one is applied as a difference.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/ctrlplane/announce"
	"github.com/gvs-lb/gvs/ctrlplane/config"
	"github.com/gvs-lb/gvs/ctrlplane/dpclient"
	"github.com/gvs-lb/gvs/ctrlplane/health"
	"github.com/gvs-lb/gvs/ctrlplane/reconcile"
	sessync "github.com/gvs-lb/gvs/ctrlplane/sync"
	"github.com/gvs-lb/gvs/internal/logging"
	"github.com/gvs-lb/gvs/internal/unixsock"
)

// Options are the command line's: the file and what overrides it.
type Options struct {
	ConfigPath string
	CPUs       []int  // non-nil: replaces the file's cpus
	Socket     string // non-empty: replaces dataplane.socket
	Listen     string // non-empty: replaces http.listen
	// ControlSocket, non-empty, replaces control.socket ("off": none).
	ControlSocket string
	// Logger, when set, is used instead of the file's log settings (tests).
	Logger *zap.Logger
}

// Daemon is a running control plane.
type Daemon struct {
	o      Options
	Log    *zap.Logger
	client *dpclient.Client
	Health *health.Manager
	Rec    *reconcile.Reconciler
	Watch  *reconcile.Watcher
	// Announce is the route announcement (nil without an announce section).
	Announce *announce.Manager
	srv      *http.Server
	ln       net.Listener
	ctlSrv   *http.Server
	ctlLn    *unixsock.Listener
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	invalid  atomic.Uint64

	reloadMu sync.Mutex
	started  *config.Config // the process settings in force

	// Sync is the session sync (nil without a sync section).
	Sync *sessync.Node
}

// LoadConfig reads the file and applies the command-line overrides.
func LoadConfig(o Options) (*config.Config, error) {
	c, err := config.Load(o.ConfigPath)
	if err != nil {
		return nil, err
	}
	if o.CPUs != nil {
		if err := config.CheckCPUs(o.CPUs); err != nil {
			return nil, fmt.Errorf("--cpus: %w", err)
		}
		c.CPUs = o.CPUs
	}
	if o.Socket != "" {
		c.Dataplane.Socket = o.Socket
	}
	if o.Listen != "" {
		c.HTTP.Listen = o.Listen
	}
	if o.ControlSocket != "" {
		c.Control.Socket = o.ControlSocket
	}
	if err := checkHost(c); err != nil {
		return nil, err
	}
	return c, nil
}

// NewLogger builds the zap logger the config asks for.
func NewLogger(c config.Log) (*zap.Logger, error) { return logging.New(c.Level, c.Format, c.File) }

// Start loads the configuration and starts everything. It returns once the
// first reconcile has run; if the dataplane is not there yet, that is logged
// and retried in the background.
func Start(o Options) (*Daemon, error) {
	cfg, err := LoadConfig(o)
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		if log, err = NewLogger(cfg.Log); err != nil {
			return nil, fmt.Errorf("log: %w", err)
		}
	}
	if err := setAffinity(cfg.CPUs); err != nil {
		return nil, fmt.Errorf("cpus %v: %w", cfg.CPUs, err)
	}
	client, err := dpclient.New(cfg.Dataplane.Socket)
	if err != nil {
		return nil, fmt.Errorf("dataplane.socket %s: %w", cfg.Dataplane.Socket, err)
	}
	d := &Daemon{o: o, Log: log, client: client, started: cfg}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	// health reports to the reconciler, which hands health each accepted config
	d.Health = health.NewManager(log.Named("health"), func() { d.Rec.Kick("health state changed"); d.kickAnnounce() })
	d.Rec = reconcile.New(reconcile.Options{API: client, Log: log.Named("reconcile"), Health: d.Health,
		CallTimeout: cfg.Dataplane.CallTimeout.D(), Resync: cfg.Dataplane.ResyncInterval.D(),
		OnConfig: func(c *config.Config) { d.Health.Update(c.Services) }})
	d.Watch = reconcile.NewWatcher(client, log.Named("watch"), cfg.Dataplane.PollInterval.D(), cfg.Dataplane.CallTimeout.D(),
		func(reason string) { d.Rec.Kick(reason); d.kickAnnounce(); d.syncDataplaneEvent(reason) })
	if err := d.startSync(cfg); err != nil {
		cancel()
		client.Close()
		return nil, err
	}
	if err := d.startAnnounce(ctx, cfg); err != nil {
		cancel()
		client.Close()
		return nil, err
	}
	if cfg.HTTP.Listen != "off" {
		if d.ln, err = net.Listen("tcp", cfg.HTTP.Listen); err != nil {
			cancel()
			d.closeAnnounce()
			client.Close()
			return nil, fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
		}
		d.srv = &http.Server{Handler: d.metricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		d.goRun(func() {
			if err := d.srv.Serve(d.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http listener stopped", zap.Error(err))
			}
		})
	}
	if cfg.Control.Socket != "off" {
		if d.ctlLn, err = unixsock.Listen(cfg.Control.Socket, cfg.Control.Group); err != nil {
			cancel()
			d.closeAnnounce()
			client.Close()
			if d.ln != nil {
				d.ln.Close()
			}
			return nil, fmt.Errorf("control.socket: %w", err)
		}
		d.ctlSrv = &http.Server{Handler: d.controlHandler(), ReadHeaderTimeout: 10 * time.Second}
		d.goRun(func() {
			if err := d.ctlSrv.Serve(d.ctlLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("control socket stopped", zap.Error(err))
			}
		})
	}
	d.goRun(func() { d.Rec.Run(ctx) })
	d.goRun(func() { d.Watch.Run(ctx) })
	d.runSync(ctx)
	if d.Announce != nil {
		d.goRun(func() { d.Announce.Run(ctx, cfg.Announce.Interval.D()) })
	}
	log.Info("starting", zap.String("config", o.ConfigPath), zap.String("socket", cfg.Dataplane.Socket),
		zap.Ints("cpus", cfg.CPUs), zap.String("http", d.httpAddr()), zap.Int("virtual_servers", len(cfg.Services)))
	if err := d.Rec.Load(ctx, cfg, false); err != nil {
		log.Warn("configuration loaded but not fully applied yet: retrying", zap.Error(err))
	}
	return d, nil
}

func (d *Daemon) goRun(f func()) {
	d.wg.Add(1)
	go func() { defer d.wg.Done(); f() }()
}

// ControlSocket is the control socket's path ("" when off).
func (d *Daemon) ControlSocket() string {
	if d.ctlLn == nil {
		return ""
	}
	return d.ctlLn.Addr().String()
}

// Addr is the HTTP listener's address (nil when off).
func (d *Daemon) Addr() net.Addr {
	if d.ln == nil {
		return nil
	}
	return d.ln.Addr()
}

func (d *Daemon) httpAddr() string {
	if a := d.Addr(); a != nil {
		return a.String()
	}
	return "off"
}

// Reload re-reads the file and applies the difference. An invalid file, or
// one whose local addresses the dataplane does not have, is refused (the
// error wraps reconcile.ErrRefused) and nothing changes.
func (d *Daemon) Reload(ctx context.Context) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	cfg, err := LoadConfig(d.o)
	if err != nil {
		d.invalid.Add(1)
		d.Log.Error("reload refused: invalid configuration; the running configuration stays", zap.Error(err))
		return fmt.Errorf("%w: %w", reconcile.ErrRefused, err)
	}
	d.staticChanges(cfg)
	err = d.Rec.Load(ctx, cfg, true)
	switch {
	case errors.Is(err, reconcile.ErrRefused):
		d.Log.Error("reload refused; the running configuration stays", zap.Error(err))
	case err != nil:
		d.Log.Warn("reloaded; applying failed and is retried", zap.Error(err))
	default:
		d.Log.Info("reloaded", zap.Int("virtual_servers", len(cfg.Services)))
	}
	d.kickAnnounce()
	return err
}

// staticChanges applies new cpus and warns about settings that need a
// restart.
func (d *Daemon) staticChanges(c *config.Config) {
	s := d.started
	if !slices.Equal(s.CPUs, c.CPUs) {
		if err := setAffinity(c.CPUs); err != nil {
			d.Log.Error("cpus not changed", zap.Ints("cpus", c.CPUs), zap.Error(err))
		} else {
			d.Log.Info("cpus changed", zap.Ints("cpus", c.CPUs))
			s.CPUs = c.CPUs
		}
	}
	for _, f := range []struct {
		name     string
		old, new any
	}{{"dataplane", s.Dataplane, c.Dataplane}, {"http", s.HTTP, c.HTTP}, {"log", s.Log, c.Log},
		{"announce.bird", s.Announce.BIRD, c.Announce.BIRD}, {"announce.bgp", s.Announce.BGP, c.Announce.BGP},
		{"announce.interval", s.Announce.Interval, c.Announce.Interval}, {"sync", s.Sync, c.Sync}} {
		if !reflect.DeepEqual(f.old, f.new) {
			d.Log.Warn("setting changed: it takes effect when gvs-controlplane restarts", zap.String("section", f.name))
		}
	}
}

// Close stops the control plane. The dataplane keeps its services: a
// control-plane restart does not disturb forwarding.
func (d *Daemon) Close() {
	for _, srv := range []*http.Server{d.srv, d.ctlSrv} {
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			srv.Shutdown(ctx) // closing the control listener removes its socket
			cancel()
		}
	}
	d.cancel()
	d.Health.Close()
	d.wg.Wait()
	d.closeAnnounce()
	d.client.Close()
	d.Log.Info("stopped")
}
