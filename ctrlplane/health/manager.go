package health

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/ctrlplane/config"
)

// RealKey identifies a real server of a service.
type RealKey struct {
	Service config.ServiceKey
	Addr    netip.AddrPort
}

// CheckStatus is one check's state for listings and metrics.
type CheckStatus struct {
	Kind    string    `json:"check"`
	Up      bool      `json:"up"`
	Reason  string    `json:"reason,omitempty"` // the last failure, "" after a success
	LastRun time.Time `json:"last_run"`
}

// RealStatus is a real server's state for listings and metrics.
type RealStatus struct {
	RealKey
	ServiceName string
	Up          bool
	Checks      []CheckStatus
}

// Manager runs the checks of the configured real servers. Update replaces
// the configuration; checks whose spec did not change keep running with
// their state, so a reload does not flap anything.
type Manager struct {
	log      *zap.Logger
	onChange func()
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu    sync.Mutex
	reals map[RealKey]*realState
}

type realState struct {
	name    string // service name, for logs
	inhibit bool
	checks  map[string]*checkState // by kind
}

// up is all checks up.
func (r *realState) up() bool {
	for _, c := range r.checks {
		if !c.m.Up() {
			return false
		}
	}
	return true
}

type checkState struct {
	spec    config.Check
	m       Machine
	reason  string
	lastRun time.Time
	stalled bool // the last probe could not run (see report)
	cancel  context.CancelFunc
}

// NewManager returns a manager; onChange is called (outside any lock) after
// a real server's state changed.
func NewManager(log *zap.Logger, onChange func()) *Manager {
	ctx, cancel := context.WithCancel(context.Background())
	if onChange == nil {
		onChange = func() {}
	}
	return &Manager{log: log, onChange: onChange, ctx: ctx, cancel: cancel, reals: map[RealKey]*realState{}}
}

// Update makes the running checks those of services. New checks of a real
// server that already had checks start in its current state; new real
// servers start up (down with alpha).
func (m *Manager) Update(services []config.Service) {
	m.mu.Lock()
	changed := false
	next := map[RealKey]*realState{}
	for _, s := range services {
		for _, r := range s.Reals {
			k := RealKey{Service: s.Key, Addr: r.Addr}
			old := m.reals[k]
			rs := &realState{name: s.Name, inhibit: r.Inhibit, checks: map[string]*checkState{}}
			wasUp := old == nil || old.up()
			for _, c := range r.Checks {
				if old != nil {
					if oc := old.checks[c.Kind]; oc != nil && reflect.DeepEqual(oc.spec, c) {
						rs.checks[c.Kind] = oc
						delete(old.checks, c.Kind)
						continue
					}
				}
				up := !c.Alpha
				if old != nil && len(old.checks) > 0 {
					up = wasUp
				}
				rs.checks[c.Kind] = m.startLocked(k, c, up)
			}
			if old != nil {
				for _, oc := range old.checks {
					oc.cancel()
				}
				delete(m.reals, k)
			}
			if (old == nil && !rs.up()) || (old != nil && wasUp != rs.up()) {
				changed = true
			}
			next[k] = rs
		}
	}
	for _, old := range m.reals {
		for _, oc := range old.checks {
			oc.cancel()
		}
		changed = true
	}
	m.reals = next
	m.mu.Unlock()
	if changed {
		m.onChange()
	}
}

func (m *Manager) startLocked(k RealKey, c config.Check, up bool) *checkState {
	ctx, cancel := context.WithCancel(m.ctx)
	cs := &checkState{spec: c, m: NewMachine(c.Rise, c.Fall, up), cancel: cancel}
	p, err := NewProber(k.Service, k.Addr, c)
	if err != nil { // validated by config: a bug if reached
		m.log.Error("health check not started", zap.String("service", k.Service.String()),
			zap.String("real_server", k.Addr.String()), zap.String("check", c.Kind), zap.Error(err))
		return cs
	}
	m.wg.Add(1)
	go m.run(ctx, k, cs, p)
	return cs
}

// run probes until ctx ends: every delay_loop, or every delay_before_retry
// while a transition is pending.
func (m *Manager) run(ctx context.Context, k RealKey, cs *checkState, p *Prober) {
	defer m.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := p.Probe(ctx)
		if ctx.Err() != nil {
			return
		}
		t.Reset(m.report(k, cs, err))
	}
}

// report records a result and returns the delay until the next probe.
func (m *Manager) report(k RealKey, cs *checkState, err error) time.Duration {
	m.mu.Lock()
	rs := m.reals[k]
	if rs == nil || rs.checks[cs.spec.Kind] != cs {
		m.mu.Unlock()
		return cs.spec.Interval // replaced by an Update: its context ends soon
	}
	wasUp := rs.up()
	cs.lastRun = time.Now()
	cs.reason = ""
	if err != nil {
		cs.reason = err.Error()
	}
	// A probe that cannot bind its source address (bindto missing on this
	// host, as while the KNI device is recreated after a dataplane restart)
	// says nothing about the real server: it is not counted, the state
	// stays.
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		first := !cs.stalled
		cs.stalled = true
		name := rs.name
		m.mu.Unlock()
		if first {
			m.log.Warn("health check cannot run: state kept", zap.String("service", k.Service.String()), zap.String("name", name),
				zap.String("real_server", k.Addr.String()), zap.String("check", cs.spec.Kind), zap.String("state", state(cs.m.Up())),
				zap.String("reason", err.Error()))
		}
		return cs.spec.RetryInterval
	}
	if cs.stalled {
		cs.stalled = false
		m.log.Info("health check runs again", zap.String("service", k.Service.String()), zap.String("name", rs.name),
			zap.String("real_server", k.Addr.String()),
			zap.String("check", cs.spec.Kind))
	}
	changed := cs.m.Observe(err == nil)
	next := cs.spec.Interval
	if cs.m.Pending() {
		next = cs.spec.RetryInterval
	}
	isUp := rs.up()
	name, inhibit := rs.name, rs.inhibit
	m.mu.Unlock()

	if changed {
		fields := []zap.Field{zap.String("service", k.Service.String()), zap.String("name", name), zap.String("real_server", k.Addr.String()),
			zap.String("check", cs.spec.Kind), zap.String("state", state(cs.m.Up()))}
		if err != nil {
			fields = append(fields, zap.String("reason", err.Error()))
		}
		switch {
		case wasUp && !isUp:
			action := "remove"
			if inhibit {
				action = "quiesce (weight 0)"
			}
			m.log.Warn("real server down", append(fields, zap.String("action", action))...)
		case !wasUp && isUp:
			m.log.Info("real server up", append(fields, zap.String("action", "restore"))...)
		default:
			m.log.Info("health check state changed", fields...)
		}
	}
	if wasUp != isUp {
		m.onChange()
	}
	return next
}

func state(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// Up reports whether real server addr of service svc is up; one without
// checks, or not known, is up.
func (m *Manager) Up(svc config.ServiceKey, addr netip.AddrPort) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.reals[RealKey{Service: svc, Addr: addr}]
	return rs == nil || rs.up()
}

// Snapshot returns every real server's state, sorted by service and address.
func (m *Manager) Snapshot() []RealStatus {
	m.mu.Lock()
	out := make([]RealStatus, 0, len(m.reals))
	for k, rs := range m.reals {
		st := RealStatus{RealKey: k, ServiceName: rs.name, Up: rs.up()}
		for _, c := range rs.checks {
			st.Checks = append(st.Checks, CheckStatus{Kind: c.spec.Kind, Up: c.m.Up(), Reason: c.reason, LastRun: c.lastRun})
		}
		slices.SortFunc(st.Checks, func(a, b CheckStatus) int { return strings.Compare(a.Kind, b.Kind) })
		out = append(out, st)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b RealStatus) int {
		if c := strings.Compare(a.Service.String(), b.Service.String()); c != 0 {
			return c
		}
		return a.Addr.Compare(b.Addr)
	})
	return out
}

// Close stops every check and waits for them.
func (m *Manager) Close() {
	m.cancel()
	m.wg.Wait()
}
