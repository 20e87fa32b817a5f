package reconcile

import (
	"context"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/dpclient"
)

// Watcher notices a dataplane restart — a new boot id (from a dataplane
// without one: its uptime going back, or its start time moving) — and a
// lost or regained connection, by calling GetInfo every interval. It only reads; it tells the reconciler through onEvent.
type Watcher struct {
	api      pb.DataplaneClient
	log      *zap.Logger
	interval time.Duration
	timeout  time.Duration
	onEvent  func(reason string)

	up       atomic.Bool
	restarts atomic.Uint64
	info     atomic.Pointer[pb.Info]
}

// NewWatcher returns a watcher calling onEvent on restarts and reconnects.
func NewWatcher(api pb.DataplaneClient, log *zap.Logger, interval, timeout time.Duration, onEvent func(string)) *Watcher {
	return &Watcher{api: api, log: log, interval: interval, timeout: timeout, onEvent: onEvent}
}

// Up reports whether the last GetInfo succeeded.
func (w *Watcher) Up() bool { return w.up.Load() }

// Restarts counts the dataplane restarts seen.
func (w *Watcher) Restarts() uint64 { return w.restarts.Load() }

// Info returns the last GetInfo answer (nil before the first).
func (w *Watcher) Info() *pb.Info { return w.info.Load() }

// startSlack tolerates jitter (API latency) in the start time computed from
// the uptime. A false alarm costs one reconcile that finds nothing to do; a
// restart is missed only if the old dataplane lived less than this (and the
// resync still repairs it).
const startSlack = 200 * time.Millisecond

// Run polls until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	var seen bool
	var lastUptime time.Duration
	var lastStart time.Time
	var lastBoot string
	for {
		cctx, cancel := context.WithTimeout(ctx, w.timeout)
		info, err := w.api.GetInfo(cctx, &pb.Empty{})
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if w.up.Swap(false) || !seen {
				w.log.Warn("dataplane unreachable", zap.Error(dpclient.Message(err)))
				seen = true
			}
		default:
			uptime := time.Duration(info.UptimeNs)
			start := time.Now().Add(-uptime)
			// the boot id says it for sure; a dataplane without one is
			// judged by its uptime
			restarted := !lastStart.IsZero() && (uptime < lastUptime || start.Sub(lastStart) > startSlack)
			if info.BootId != "" && lastBoot != "" {
				restarted = info.BootId != lastBoot
			}
			lastBoot = info.BootId
			if restarted {
				w.restarts.Add(1)
			}
			w.info.Store(info)
			lastUptime, lastStart, seen = uptime, start, true
			switch wasUp := w.up.Swap(true); {
			case restarted:
				w.log.Warn("dataplane restarted: reconciling", zap.Duration("uptime", uptime), zap.String("version", info.Version))
				w.onEvent("dataplane restarted")
			case !wasUp:
				w.log.Info("dataplane reachable", zap.Duration("uptime", uptime), zap.String("version", info.Version))
				w.onEvent("dataplane reachable")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
