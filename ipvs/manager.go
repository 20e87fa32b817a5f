package ipvs

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gvs-lb/gvs/ipvs/sched"
)

// Dest is a live destination. Its counters outlive its removal while
// connections to it remain (it is "draining"), so workers can account for
// them until the last one ends.
type Dest struct {
	ID      uint32
	Service uint32
	Spec    DestSpec
	C       *sched.DestCounters
	Stats   *Stats
}

// Stats are a destination's cumulative counters (a service's are the sum
// of its destinations').
type Stats struct {
	Conns atomic.Uint64
}

// LAddr is a FullNAT local address of a service.
type LAddr struct {
	Addr  netip.Addr
	Iface string
}

// Service is a live service in a Table.
type Service struct {
	ID    uint32
	Spec  ServiceSpec
	Dests []*Dest
	// Scheds holds one scheduler instance per worker over Dests.
	Scheds []sched.Scheduler
	LAddrs []LAddr
}

// Table is the immutable service table workers read.
type Table struct {
	Gen uint64
	// MaxID is the highest service or destination id handed out so far:
	// workers size their per-id counters by it.
	MaxID    uint32
	Services []*Service // in creation order
	byKey    map[ServiceKey]*Service
	// Dests has every destination with possible connections, draining
	// ones included, by id.
	Dests map[uint32]*Dest
	// LAddrs is the set of local addresses of all services.
	LAddrs map[netip.Addr]struct{}
	// Addrs is every address the load balancer answers for: virtual and
	// local addresses. Packets to anything else skip the IPVS stage.
	Addrs map[netip.Addr]struct{}
	// ExpireDests lists removed destinations whose connections are to be
	// expired at their next packet rather than left to finish.
	ExpireDests map[uint32]struct{}
}

// Lookup returns the service for a packet's protocol, destination address
// and port, or nil.
func (t *Table) Lookup(p Proto, addr netip.Addr, port uint16) *Service {
	if t == nil || len(t.byKey) == 0 {
		return nil
	}
	return t.byKey[ServiceKey{Proto: p, Addr: addr, Port: port}]
}

// Service returns the service with key k, or nil.
func (t *Table) Service(k ServiceKey) *Service { return t.byKey[k] }

type svcState struct {
	id     uint32
	spec   ServiceSpec
	dests  []*Dest
	laddrs []LAddr
}

// Manager owns the service model; its methods are the one mutation path
// (API, config reload and CLI all call them). Safe for concurrent use.
type Manager struct {
	mu       sync.Mutex
	workers  int
	services []*svcState
	nextID   uint32
	draining map[uint32]*Dest
	expire   map[uint32]struct{}
	gen      uint64
	pub      atomic.Pointer[Table]
	// OnPublish, when set, is called with every new table (under the lock).
	OnPublish func(*Table)
}

// NewManager returns an empty model for the given number of workers.
func NewManager(workers int) *Manager {
	m := &Manager{workers: workers, draining: map[uint32]*Dest{}, expire: map[uint32]struct{}{}}
	if err := m.publishLocked(); err != nil {
		panic(err) // an empty table always builds
	}
	return m
}

// Table returns the current table.
func (m *Manager) Table() *Table { return m.pub.Load() }

func (m *Manager) find(k ServiceKey) (int, *svcState) {
	for i, s := range m.services {
		if s.spec.Key == k {
			return i, s
		}
	}
	return -1, nil
}

func (m *Manager) id() uint32 {
	m.nextID++
	return m.nextID
}

func (m *Manager) publishLocked() error {
	m.gen++
	t := &Table{Gen: m.gen, MaxID: m.nextID, byKey: map[ServiceKey]*Service{}, Dests: map[uint32]*Dest{},
		LAddrs: map[netip.Addr]struct{}{}, Addrs: map[netip.Addr]struct{}{}, ExpireDests: map[uint32]struct{}{}}
	for _, s := range m.services {
		svc := &Service{ID: s.id, Spec: s.spec, Dests: slices.Clone(s.dests), LAddrs: slices.Clone(s.laddrs)}
		sd := make([]sched.Dest, len(s.dests))
		for i, d := range s.dests {
			sd[i] = sched.Dest{Addr: d.Spec.Addr, Weight: d.Spec.Weight, Upper: d.Spec.Upper, Lower: d.Spec.Lower, C: d.C}
			t.Dests[d.ID] = d
		}
		so, _ := schedOptions(s.spec.Sched, s.spec.SchedFlags) // validated when the spec was accepted
		for w := 0; w < m.workers; w++ {
			if w > 0 && (s.spec.Sched == sched.SH || s.spec.Sched == sched.MH) {
				// hashing schedulers keep no per-pick state: one table serves all
				svc.Scheds = append(svc.Scheds, svc.Scheds[0])
				continue
			}
			sc, err := sched.New(s.spec.Sched, sd, so)
			if err != nil {
				return err
			}
			svc.Scheds = append(svc.Scheds, sc)
		}
		for _, la := range s.laddrs {
			t.LAddrs[la.Addr] = struct{}{}
			t.Addrs[la.Addr] = struct{}{}
		}
		t.Addrs[s.spec.Key.Addr] = struct{}{}
		t.Services = append(t.Services, svc)
		t.byKey[s.spec.Key] = svc
	}
	for id, d := range m.draining {
		t.Dests[id] = d
	}
	for id := range m.expire {
		t.ExpireDests[id] = struct{}{}
	}
	m.pub.Store(t)
	if m.OnPublish != nil {
		m.OnPublish(t)
	}
	return nil
}

// schedOK builds the scheduler once to validate its name and flags.
func schedOK(spec *ServiceSpec) error {
	if spec.Sched == "" {
		spec.Sched = "wlc"
	}
	so, err := schedOptions(spec.Sched, spec.SchedFlags)
	if err != nil {
		return fmt.Errorf("service %s: %w", spec.Key, err)
	}
	if _, err := sched.New(spec.Sched, nil, so); err != nil {
		return fmt.Errorf("service %s: scheduler %s: %w", spec.Key, spec.Sched, err)
	}
	return nil
}

// schedOptions maps ipvsadm's scheduler flags (-b / --sched-flags) onto
// the options of scheduler name, with the scheduler package's vocabulary.
func schedOptions(name string, flags []string) (sched.Options, error) {
	if len(flags) == 0 {
		return sched.Options{}, nil
	}
	o, err := sched.ParseFlags(name, strings.Join(flags, ","))
	if err != nil {
		return o, fmt.Errorf("%w (sh and mh take sh-/mh-fallback and sh-/mh-port): %w", err, ErrInvalid)
	}
	return o, nil
}

// AddService creates a service.
func (m *Manager) AddService(spec ServiceSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if err := schedOK(&spec); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, s := m.find(spec.Key); s != nil {
		return fmt.Errorf("service %s: %w", spec.Key, ErrServiceExists)
	}
	m.services = append(m.services, &svcState{id: m.id(), spec: spec})
	return m.publishLocked()
}

// EditService changes a service's scheduler and flags.
func (m *Manager) EditService(spec ServiceSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if err := schedOK(&spec); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, s := m.find(spec.Key)
	if s == nil {
		return fmt.Errorf("service %s: %w", spec.Key, ErrNoService)
	}
	old := s.spec
	s.spec = spec
	if err := m.publishLocked(); err != nil {
		s.spec = old
		return err
	}
	return nil
}

// DelService removes a service; its destinations drain.
func (m *Manager) DelService(k ServiceKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, s := m.find(k)
	if s == nil {
		return fmt.Errorf("service %s: %w", k, ErrNoService)
	}
	for _, d := range s.dests {
		m.draining[d.ID] = d
	}
	m.services = slices.Delete(m.services, i, i+1)
	return m.publishLocked()
}

// Flush removes every service (ipvsadm -C).
func (m *Manager) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.services {
		for _, d := range s.dests {
			m.draining[d.ID] = d
		}
	}
	m.services = nil
	return m.publishLocked()
}

// AddDest adds a destination to service k.
func (m *Manager) AddDest(k ServiceKey, d DestSpec) error {
	if err := d.Validate(k); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, s := m.find(k)
	if s == nil {
		return fmt.Errorf("destination %s of %s: %w", d.Addr, k, ErrServiceNotDef)
	}
	for _, o := range s.dests {
		if o.Spec.Addr == d.Addr {
			return fmt.Errorf("destination %s of %s: %w", d.Addr, k, ErrDestExists)
		}
	}
	s.dests = append(s.dests, &Dest{ID: m.id(), Service: s.id, Spec: d, C: &sched.DestCounters{}, Stats: &Stats{}})
	return m.publishLocked()
}

// EditDest changes a destination's weight, thresholds (and method).
// Weight 0 quiesces it: no new connections, existing ones continue.
func (m *Manager) EditDest(k ServiceKey, d DestSpec) error {
	if err := d.Validate(k); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, s := m.find(k)
	if s == nil {
		return fmt.Errorf("destination %s of %s: %w", d.Addr, k, ErrServiceNotDef)
	}
	for i, o := range s.dests {
		if o.Spec.Addr == d.Addr {
			n := *o
			n.Spec = d
			s.dests[i] = &n
			return m.publishLocked()
		}
	}
	return fmt.Errorf("destination %s of %s: %w", d.Addr, k, ErrNoDest)
}

// DelDest removes a destination. Its connections continue until they end,
// or, with expire, are dropped at their next packet.
func (m *Manager) DelDest(k ServiceKey, addr netip.AddrPort, expire bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, s := m.find(k)
	if s == nil {
		return fmt.Errorf("destination %s of %s: %w", addr, k, ErrServiceNotDef)
	}
	for i, o := range s.dests {
		if o.Spec.Addr == addr {
			s.dests = slices.Delete(s.dests, i, i+1)
			m.draining[o.ID] = o
			if expire {
				m.expire[o.ID] = struct{}{}
			}
			return m.publishLocked()
		}
	}
	return fmt.Errorf("destination %s of %s: %w", addr, k, ErrNoDest)
}

// AddLAddr adds a FullNAT local address to service k. The caller checks
// that the address exists on the interface.
func (m *Manager) AddLAddr(k ServiceKey, la LAddr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, s := m.find(k)
	if s == nil {
		return fmt.Errorf("local address %s of %s: %w", la.Addr, k, ErrNoService)
	}
	if la.Addr.Is4() != k.Addr.Is4() {
		return fmt.Errorf("local address %s of %s: address family differs from the service: %w", la.Addr, k, ErrInvalid)
	}
	for _, o := range s.laddrs {
		if o.Addr == la.Addr {
			return fmt.Errorf("local address %s of %s: %w", la.Addr, k, ErrLAddrExists)
		}
	}
	s.laddrs = append(s.laddrs, la)
	return m.publishLocked()
}

// DelLAddr removes a local address from service k; connections using it
// continue.
func (m *Manager) DelLAddr(k ServiceKey, a netip.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, s := m.find(k)
	if s == nil {
		return fmt.Errorf("local address %s of %s: %w", a, k, ErrNoService)
	}
	i := slices.IndexFunc(s.laddrs, func(l LAddr) bool { return l.Addr == a })
	if i < 0 {
		return fmt.Errorf("local address %s of %s: %w", a, k, ErrNoLAddr)
	}
	s.laddrs = slices.Delete(s.laddrs, i, i+1)
	return m.publishLocked()
}

// Reap forgets draining destinations that have no connections left.
func (m *Manager) Reap() {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for id, d := range m.draining {
		if d.C.Active.Load()+d.C.Inactive.Load() == 0 {
			delete(m.draining, id)
			delete(m.expire, id)
			changed = true
		}
	}
	if changed {
		m.publishLocked()
	}
}
