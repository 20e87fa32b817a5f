package daemon

// Route announcement in the daemon: the speakers the announce section
// configures, the Manager that drives them, and drain/undrain (control
// socket POST /drain and /undrain, SIGUSR1/SIGUSR2, `gvs-controlplane
// drain|undrain`).

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/ctrlplane/announce"
	"github.com/gvs-lb/gvs/ctrlplane/config"
)

// startAnnounce builds the speakers and the manager (not started).
func (d *Daemon) startAnnounce(ctx context.Context, cfg *config.Config) error {
	a := cfg.Announce
	if !a.Enabled() {
		return nil
	}
	var speakers []announce.Speaker
	if a.BIRD != nil {
		speakers = append(speakers, announce.NewBIRD(*a.BIRD))
	}
	if a.BGP != nil {
		b, err := announce.NewBGP(ctx, *a.BGP, d.Log.Named("bgp"))
		if err != nil {
			return err
		}
		speakers = append(speakers, b)
	}
	d.Announce = announce.New(announce.Options{API: d.client, Log: d.Log.Named("announce"),
		CallTimeout: cfg.Dataplane.CallTimeout.D(), Config: d.Rec.Config, Health: d.Health,
		DataplaneUp: d.Watch.Up, Hold: d.syncHold, Speakers: speakers, Drained: a.Drained})
	return nil
}

// syncHold withholds the VIPs until session sync's start-up bulk transfer
// is done, so that a joining node takes flows only once it holds the
// peers' connections.
func (d *Daemon) syncHold() string {
	if d.Sync != nil && !d.Sync.Ready() {
		return "waiting for the session sync bulk transfer"
	}
	return ""
}

func (d *Daemon) kickAnnounce() {
	if d.Announce != nil {
		d.Announce.Kick()
	}
}

// closeAnnounce withdraws what the speakers announce (BGP gracefully).
func (d *Daemon) closeAnnounce() {
	if d.Announce == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Announce.Close(ctx); err != nil {
		d.Log.Error("withdrawing the announced prefixes", zap.Error(err))
	}
}

// ErrNoAnnounce is returned by Drain and Undrain without an announce section.
var ErrNoAnnounce = fmt.Errorf("nothing is announced: the configuration has no announce section (see docs/cluster.md)")

// Drain withdraws every VIP and keeps serving; it returns a message for
// the operator.
func (d *Daemon) Drain(by string) (string, error) {
	if d.Announce == nil {
		return "", ErrNoAnnounce
	}
	if !d.Announce.Drain(by) {
		return "already draining\n", nil
	}
	return "draining: VIPs withdrawn, existing connections keep being served\n", nil
}

// Undrain announces again what the health of the services allows.
func (d *Daemon) Undrain(by string) (string, error) {
	if d.Announce == nil {
		return "", ErrNoAnnounce
	}
	if !d.Announce.Undrain(by) {
		return "not draining\n", nil
	}
	return "undrained: announcing again\n", nil
}

// drainHandler serves POST /drain and /undrain. The answer is sent after an
// evaluation has applied the change, so that `gvs-controlplane drain` returns
// once the routes are withdrawn (or the speakers' errors are in /state).
func (d *Daemon) drainHandler(f func(string) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		msg, err := f("control socket")
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		d.Announce.Evaluate(ctx)
		cancel()
		w.Write([]byte(msg))
	}
}

// announceStatus is the metrics source (nil without announcement).
func (d *Daemon) announceStatus() func() announce.Status {
	if d.Announce == nil {
		return nil
	}
	return d.Announce.Status
}
