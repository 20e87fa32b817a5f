package announce

// The Manager is one goroutine that evaluates Compute on kicks (health
// changes, dataplane events, drain, reloads) and every interval, and makes
// each Speaker's announced set equal to the result. A speaker that fails
// keeps its last applied set in the status and is retried at the next
// evaluation. Drain and Undrain only flip a flag and kick: the goroutine
// serialises everything else.

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/config"
	"github.com/gvs-lb/gvs/ctrlplane/dpclient"
	"github.com/gvs-lb/gvs/ctrlplane/reconcile"
)

// Speaker announces a set of prefixes with one routing protocol.
type Speaker interface {
	// Protocol names it in status and metrics: "ospf", "bgp".
	Protocol() string
	// Set makes the announced set exactly rs (sorted by prefix, each
	// once), backup routes with the protocol's worse metric.
	Set(ctx context.Context, rs []Route) error
	// Close withdraws (as configured) and stops.
	Close(ctx context.Context) error
	// Peers lists its sessions (nil when the protocol's daemon shows them).
	Peers() []Peer
}

// Options configure a Manager.
type Options struct {
	API         pb.DataplaneClient
	Log         *zap.Logger
	CallTimeout time.Duration
	// Config returns the configuration in force (nil: none yet).
	Config func() *config.Config
	// Health says whether real servers pass their checks (nil: all do).
	Health reconcile.HealthView
	// DataplaneUp is the restart watcher's verdict (nil: not consulted).
	DataplaneUp func() bool
	// Hold returns why the VIPs must wait ("" when they need not), e.g.
	// "waiting for the session sync bulk transfer"; nil: never.
	Hold func() string
	// Extra returns more prefixes to announce while the dataplane is up
	// (e.g. a peer node's local addresses taken over); nil: none.
	Extra    func() []netip.Prefix
	Speakers []Speaker
	// Drained starts drained.
	Drained bool
}

// Manager keeps the speakers' announcements equal to the rule's verdict.
type Manager struct {
	o        Options
	kicks    chan struct{}
	draining atomic.Bool

	mu        sync.Mutex
	cands     []Candidate
	announced map[string][]Route // protocol → applied set
	errs      map[string]string  // protocol → last error
	evaluated time.Time
	closed    bool
}

// New returns a manager; call Run.
func New(o Options) *Manager {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = 5 * time.Second
	}
	m := &Manager{o: o, kicks: make(chan struct{}, 1), announced: map[string][]Route{}, errs: map[string]string{}}
	m.draining.Store(o.Drained)
	return m
}

// Kick asks for an evaluation soon; kicks coalesce.
func (m *Manager) Kick() {
	select {
	case m.kicks <- struct{}{}:
	default:
	}
}

// Drain withdraws every VIP and keeps serving (local addresses stay
// announced); it reports whether the node was not draining before.
func (m *Manager) Drain(reason string) bool {
	was := m.draining.Swap(true)
	if !was {
		m.o.Log.Warn("draining: withdrawing the VIPs, existing connections keep being served", zap.String("by", reason))
	}
	m.Kick()
	return !was
}

// Undrain announces again what the rule allows; it reports whether the node
// was draining.
func (m *Manager) Undrain(reason string) bool {
	was := m.draining.Swap(false)
	if was {
		m.o.Log.Info("undrained: announcing again", zap.String("by", reason))
	}
	m.Kick()
	return was
}

// Draining reports the drain flag.
func (m *Manager) Draining() bool { return m.draining.Load() }

// Run evaluates until ctx ends, every interval and on kicks.
func (m *Manager) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m.Evaluate(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kicks:
		}
	}
}

// Evaluate runs the rule once and applies it to every speaker.
func (m *Manager) Evaluate(ctx context.Context) {
	cfg := m.o.Config()
	in := Input{Health: m.o.Health, Draining: m.draining.Load(), Require: "all"}
	if cfg != nil {
		in.Services, in.Require, in.LocalAddresses = cfg.Services, cfg.Announce.Require, cfg.Announce.LocalAddresses
	}
	if m.o.DataplaneUp == nil || m.o.DataplaneUp() {
		cctx, cancel := context.WithTimeout(ctx, m.o.CallTimeout)
		resp, err := m.o.API.ListServices(cctx, &pb.ListServicesRequest{})
		cancel()
		if err == nil {
			in.Actual, err = reconcile.Actual(resp)
		}
		if err != nil && ctx.Err() == nil {
			m.o.Log.Debug("dataplane services not listed: withdrawing", zap.Error(dpclient.Message(err)))
		}
		if in.Actual == nil && err == nil {
			in.Actual = reconcile.State{}
		}
	}
	if m.o.Extra != nil {
		in.Extra = m.o.Extra()
	}
	if m.o.Hold != nil {
		in.Hold = m.o.Hold()
	}
	cands := Compute(in)
	want := Routes(cands)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || ctx.Err() != nil {
		return
	}
	m.logChanges(m.cands, cands)
	m.cands, m.evaluated = cands, time.Now()
	for _, s := range m.o.Speakers {
		p := s.Protocol()
		if slices.Equal(m.announced[p], want) && m.errs[p] == "" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, m.o.CallTimeout)
		err := s.Set(cctx, want)
		cancel()
		if err != nil {
			if m.errs[p] != err.Error() {
				m.o.Log.Error("announcing failed: retrying", zap.String("protocol", p), zap.Error(err))
			}
			m.errs[p] = err.Error()
			continue
		}
		if m.errs[p] != "" {
			m.o.Log.Info("announcing works again", zap.String("protocol", p))
		}
		m.announced[p], m.errs[p] = slices.Clone(want), ""
	}
}

// logChanges logs each prefix whose verdict changed.
func (m *Manager) logChanges(old, cur []Candidate) {
	was := map[netip.Prefix]Candidate{}
	for _, c := range old {
		was[c.Prefix] = c
	}
	for _, c := range cur {
		o, seen := was[c.Prefix]
		switch {
		case c.Announce && (!seen || !o.Announce):
			m.o.Log.Info("announcing", zap.Stringer("prefix", c.Prefix), zap.String("kind", c.Kind))
		case !c.Announce && (!seen || o.Announce || o.Reason != c.Reason):
			m.o.Log.Warn("not announced", zap.Stringer("prefix", c.Prefix), zap.String("kind", c.Kind), zap.String("reason", c.Reason))
		}
		delete(was, c.Prefix)
	}
	for p, c := range was {
		if c.Announce {
			m.o.Log.Info("no longer configured: withdrawn", zap.Stringer("prefix", p))
		}
	}
}

// Close stops announcing: each speaker withdraws (BIRD: unless
// keep_on_exit) and stops. Run must have returned or be about to.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	var errs []error
	for _, s := range m.o.Speakers {
		if err := s.Close(ctx); err != nil {
			errs = append(errs, err)
		}
		m.mu.Lock()
		delete(m.announced, s.Protocol())
		m.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Status is the announcement state, for /state and metrics.
type Status struct {
	Draining  bool             `json:"draining"`
	Evaluated time.Time        `json:"evaluated"`
	Prefixes  []PrefixStatus   `json:"prefixes"`
	Protocols []ProtocolStatus `json:"protocols"`
}

// PrefixStatus is one candidate and where it is announced.
type PrefixStatus struct {
	Candidate
	AnnouncedBy []string `json:"announced_by"`
}

// ProtocolStatus is one speaker.
type ProtocolStatus struct {
	Protocol  string         `json:"protocol"`
	Announced []netip.Prefix `json:"announced"`
	// Backup are the announced prefixes that carry the backup metric.
	Backup []netip.Prefix `json:"backup,omitempty"`
	Error  string         `json:"error,omitempty"`
	Peers  []Peer         `json:"peers,omitempty"`
}

// Status returns the current state.
func (m *Manager) Status() Status {
	m.mu.Lock()
	st := Status{Draining: m.draining.Load(), Evaluated: m.evaluated}
	for _, c := range m.cands {
		ps := PrefixStatus{Candidate: c, AnnouncedBy: []string{}}
		for _, s := range m.o.Speakers {
			if slices.Contains(Prefixes(m.announced[s.Protocol()]), c.Prefix) {
				ps.AnnouncedBy = append(ps.AnnouncedBy, s.Protocol())
			}
		}
		st.Prefixes = append(st.Prefixes, ps)
	}
	for _, s := range m.o.Speakers {
		st.Protocols = append(st.Protocols, ProtocolStatus{Protocol: s.Protocol(),
			Announced: Prefixes(m.announced[s.Protocol()]), Backup: backups(m.announced[s.Protocol()]), Error: m.errs[s.Protocol()]})
	}
	m.mu.Unlock()
	for i, s := range m.o.Speakers {
		st.Protocols[i].Peers = s.Peers() // outside the lock: asks the speaker
	}
	return st
}

func backups(rs []Route) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range rs {
		if r.Backup {
			out = append(out, r.Prefix)
		}
	}
	return out
}
