package daemon

// Session sync in the daemon (docs/sync.md): the node the sync section
// configures, told about dataplane restarts by the watcher (it re-installs
// its table once the reconciler has run); its readiness holds the VIPs'
// announcement back until the bulk transfer is done (syncHold).

import (
	"context"
	"fmt"
	"time"

	"github.com/gvs-lb/gvs/ctrlplane/config"
	sessync "github.com/gvs-lb/gvs/ctrlplane/sync"
)

// startSync opens the multicast socket and builds the node (not started).
func (d *Daemon) startSync(cfg *config.Config) error {
	s := cfg.Sync
	if !s.Enabled() {
		return nil
	}
	key, err := s.Key()
	if err != nil {
		return err
	}
	tr, err := sessync.ListenReopening(s.Interface, s.GroupAddrPort()) // survives KNI re-creation
	if err != nil {
		return err
	}
	n, err := sessync.New(sessync.Options{NodeID: s.NodeID, Key: key,
		Policy:   sessync.Policy{Threshold: uint8(*s.Threshold), Period: uint8(*s.Period), UDP: s.UDP},
		MaxConns: s.MaxConns, BulkRate: s.BulkRate, BulkWait: s.BulkWait.D(), MaxSkew: s.MaxSkew.D(),
		API: d.client, Transport: tr, Log: d.Log.Named("sync"), CallTimeout: cfg.Dataplane.CallTimeout.D(),
		Reconciled: func(t time.Time) bool { return d.Rec.Stats().LastSuccess.After(t) }})
	if err != nil {
		tr.Close()
		return fmt.Errorf("sync: %w", err)
	}
	d.Sync = n
	return nil
}

// runSync runs the node and kicks the announcement when it becomes ready.
func (d *Daemon) runSync(ctx context.Context) {
	if d.Sync == nil {
		return
	}
	d.goRun(func() { d.Sync.Run(ctx) })
	d.goRun(func() {
		select {
		case <-d.Sync.ReadyC():
			d.kickAnnounce()
		case <-ctx.Done():
		}
	})
}

// syncDataplaneEvent passes the watcher's restarts and reconnects on: the
// node re-installs its table (an install is idempotent).
func (d *Daemon) syncDataplaneEvent(string) {
	if d.Sync != nil {
		d.Sync.Restarted()
	}
}
