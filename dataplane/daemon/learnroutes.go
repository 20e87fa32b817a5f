package daemon

// kni.learn_routes: the kernel's routes through a port's KNI device become
// that port's learnt routes in the dataplane. The KNI watcher reports the
// whole set after every change; it replaces the learnt routes at once. A
// route whose gateway is on no connected subnet of the dataplane yet (the
// control plane may add the addresses after start-up) is left out and
// retried every retryLearn, once the dataplane's addresses have changed,
// until it resolves.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/kni"
)

const retryLearn = 2 * time.Second

// learntSpecs turns kernel routes into route specs of the ports whose KNI
// devices they leave by (ports maps KNI ifindex → port name).
func learntSpecs(rs []kni.Route, ports map[int]string) []dataplane.RouteSpec {
	out := make([]dataplane.RouteSpec, 0, len(rs))
	for _, r := range rs {
		spec := dataplane.RouteSpec{Dst: r.Dst, Metric: r.Metric}
		for _, nh := range r.NextHops {
			spec.NextHops = append(spec.NextHops, dataplane.NextHopSpec{Gateway: nh.Gateway, Iface: ports[nh.Ifindex], Weight: nh.Weight})
		}
		if len(spec.NextHops) == 1 && spec.NextHops[0].Weight <= 1 {
			spec.Gateway, spec.Iface, spec.NextHops = spec.NextHops[0].Gateway, spec.NextHops[0].Iface, nil
		}
		out = append(out, spec)
	}
	return out
}

// routeLearner applies the kernel's route set and retries what did not
// resolve.
type routeLearner struct {
	dp    *dataplane.Dataplane
	ports map[int]string
	log   *zap.Logger

	mu      sync.Mutex
	last    []dataplane.RouteSpec
	pending bool   // some routes were skipped
	addrs   string // the dataplane's addresses at the last attempt
}

func (l *routeLearner) set(rs []kni.Route) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last = learntSpecs(rs, l.ports)
	l.applyLocked(true)
}

func (l *routeLearner) applyLocked(report bool) {
	l.addrs = fmt.Sprint(l.dp.Addrs(""))
	skipped, err := l.dp.SetLearntRoutes(l.last)
	if err != nil {
		l.log.Warn("learnt routes refused", zap.Error(err))
		l.pending = true
		return
	}
	l.pending = len(skipped) > 0
	if report {
		for _, e := range skipped {
			l.log.Warn("kernel route not learnt (retried)", zap.Error(e))
		}
	}
}

func (l *routeLearner) retry() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending && fmt.Sprint(l.dp.Addrs("")) != l.addrs {
		l.applyLocked(false)
	}
}

// learnRoutes starts mirroring the kernel's routes through the KNI devices
// in ports into dp until ctx ends.
func learnRoutes(ctx context.Context, dp *dataplane.Dataplane, ports map[int]string, log *zap.Logger) error {
	l := &routeLearner{dp: dp, ports: ports, log: log}
	idx := make([]int, 0, len(ports))
	for i := range ports {
		idx = append(idx, i)
	}
	onErr := func(err error) { log.Warn("KNI route watch", zap.Error(err)) }
	if err := kni.WatchRoutes(ctx, idx, l.set, kni.WatchOptions{OnError: onErr}); err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(retryLearn)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				l.retry()
			}
		}
	}()
	return nil
}
