package ipvs

// The Manager: the live service model and the table built from it. Every
// mutator runs update, which clones the model (state), applies the change
// to the clone, builds the Table from it and only then commits both, so a
// refused change — validation or a scheduler that does not build — leaves
// model, table and generation as they were. Dests are shared between the
// model versions so their counters survive edits. The dataplane owns the
// live Manager and is its only caller (validation against interfaces,
// steering and the change log live there); Reap runs from its master.

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gvs-lb/gvs/internal/addrmap"
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
	// Backup marks another node's local address that this node takes
	// over when that node fails: replies to it and synced connections
	// using it are accepted, new connections take no port from it.
	Backup bool
}

// Service is a live service in a Table.
type Service struct {
	ID    uint32
	Spec  ServiceSpec
	Dests []*Dest
	// Scheds holds one scheduler instance per worker over Dests.
	Scheds []sched.Scheduler
	LAddrs []LAddr
	// AllocLAddrs are the LAddrs new connections take ports from (all
	// but the backup ones).
	AllocLAddrs []LAddr
	// Deny and Allow are the deny and allow lists compiled for lookups
	// (nil: no such list); DenyList and AllowList are the entries as
	// added, for listings (acl.go).
	Deny, Allow         *PrefixSet
	DenyList, AllowList []netip.Prefix
	// Match is a SNAT match service's selector (nil for virtual services).
	Match *Match
}

// Table is the immutable service table workers read.
type Table struct {
	Gen uint64
	// MaxID is the highest service or destination id handed out so far:
	// workers size their per-id counters by it.
	MaxID    uint32
	Services []*Service // in creation order
	byKey    map[ServiceKey]*Service
	index    svcIndex // byKey's virtual services for Lookup (svcindex.go)
	byID     map[uint32]*Service
	// Dests has every destination with possible connections, draining
	// ones included, by id.
	Dests map[uint32]*Dest
	// LAddrs is the set of local addresses of all services.
	LAddrs addrmap.Map[struct{}]
	// Addrs is every address the load balancer answers for: virtual and
	// local addresses. Packets to anything else skip the IPVS stage. Both
	// are read per packet: fixed-width keys (internal/addrmap).
	Addrs addrmap.Map[struct{}]
	// ExpireDests lists removed destinations whose connections are to be
	// expired at their next packet rather than left to finish.
	ExpireDests map[uint32]struct{}
	// SNAT lists the match services (-H) in creation order: forwarded
	// packets that open a connection are matched against them.
	SNAT []*Service
	// SNATOn is set while SNAT connections may exist (match services, or
	// SNAT addresses draining): forwarded packets are then looked up.
	SNATOn bool
	// MasqAddrs holds the addresses of NAT (masquerading, -m) real
	// servers, draining ones included: their replies to clients are
	// forwarded traffic the IPVS stage must catch (dataplane/lbmasq.go).
	// Masq is set when there is any.
	MasqAddrs addrmap.Map[struct{}]
	Masq      bool
	// ACL is set when some service has a deny or allow list: only then
	// do packets of existing connections look their service up (acl.go).
	ACL bool
	// aclByID holds the services with lists by id (ACLService).
	aclByID []*Service
}

// Lookup returns the service for a packet's protocol, destination address
// and port, or nil.
func (t *Table) Lookup(p Proto, addr netip.Addr, port uint16) *Service {
	if t == nil || len(t.byKey) == 0 {
		return nil
	}
	hi, lo := addrmap.Words(addr)
	if s := t.index.get(hi, lo, uint32(p)<<16|uint32(port)); s != nil || port == 0 {
		return s
	}
	return t.index.get(hi, lo, uint32(p)<<16) // a persistent port-0 (all ports) service
}

// ServiceByID returns the service with id, or nil.
func (t *Table) ServiceByID(id uint32) *Service {
	if t == nil {
		return nil
	}
	return t.byID[id]
}

// Service returns the service with key k, or nil.
func (t *Table) Service(k ServiceKey) *Service { return t.byKey[k] }

type svcState struct {
	id     uint32
	spec   ServiceSpec
	dests  []*Dest
	laddrs []LAddr
	// deny and allow are never written in place (acl.go): a clone may
	// share them
	deny, allow []netip.Prefix
}

// state is the service model a Table is built from. Mutators work on a
// clone (a candidate); the clone replaces the model only once a table was
// built from it, so a refused change leaves nothing behind.
type state struct {
	services []*svcState
	nextID   uint32
	draining map[uint32]*Dest
	expire   map[uint32]struct{}
}

// clone copies what a mutator may change. Dests are shared: a mutator
// replaces a *Dest (keeping its counters), never writes through one.
func (s *state) clone() *state {
	c := &state{nextID: s.nextID, draining: maps.Clone(s.draining), expire: maps.Clone(s.expire)}
	c.services = make([]*svcState, len(s.services))
	for i, sv := range s.services {
		n := *sv
		n.spec.SchedFlags = slices.Clone(sv.spec.SchedFlags)
		n.dests = slices.Clone(sv.dests)
		n.laddrs = slices.Clone(sv.laddrs)
		c.services[i] = &n
	}
	return c
}

// Manager owns the service model. The dataplane holds the live one and is
// the only path to it (its methods validate against the interfaces, steer
// and log); a Manager on its own is for tests and tools. Every mutator
// builds the new Table from a candidate state and commits both only when
// the build succeeded: on error nothing changed. Safe for concurrent use.
type Manager struct {
	mu      sync.Mutex
	workers int
	st      *state
	gen     uint64
	pub     atomic.Pointer[Table]
	// OnPublish, when set, is called with every new table (under the lock).
	OnPublish func(*Table)
}

// NewManager returns an empty model for the given number of workers.
func NewManager(workers int) *Manager {
	m := &Manager{workers: workers, st: &state{draining: map[uint32]*Dest{}, expire: map[uint32]struct{}{}}}
	t, err := m.build(m.st)
	if err != nil {
		panic(err) // an empty table always builds
	}
	m.commit(m.st, t)
	return m
}

// Table returns the current table.
func (m *Manager) Table() *Table { return m.pub.Load() }

func (s *state) find(k ServiceKey) (int, *svcState) {
	for i, sv := range s.services {
		if sv.spec.Key == k {
			return i, sv
		}
	}
	return -1, nil
}

func (s *state) id() uint32 {
	s.nextID++
	return s.nextID
}

// update runs f on a candidate copy of the model, builds its table and
// commits both if f and the build succeed.
func (m *Manager) update(f func(c *state) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.st.clone()
	if err := f(c); err != nil {
		return err
	}
	t, err := m.build(c)
	if err != nil {
		return err
	}
	m.commit(c, t)
	return nil
}

func (m *Manager) commit(c *state, t *Table) {
	m.st = c
	m.gen++
	t.Gen = m.gen
	m.pub.Store(t)
	if m.OnPublish != nil {
		m.OnPublish(t)
	}
}

// build makes the table workers read from model s; it changes nothing.
func (m *Manager) build(s *state) (*Table, error) {
	t := &Table{MaxID: s.nextID, byKey: map[ServiceKey]*Service{}, byID: map[uint32]*Service{}, Dests: map[uint32]*Dest{},
		ExpireDests: map[uint32]struct{}{}}
	laddrs, addrs := map[netip.Addr]struct{}{}, map[netip.Addr]struct{}{}
	for _, sv := range s.services {
		svc := &Service{ID: sv.id, Spec: sv.spec, Dests: slices.Clone(sv.dests), LAddrs: slices.Clone(sv.laddrs)}
		for _, la := range sv.laddrs {
			if !la.Backup {
				svc.AllocLAddrs = append(svc.AllocLAddrs, la)
			}
		}
		sd := make([]sched.Dest, len(sv.dests))
		for i, d := range sv.dests {
			sd[i] = sched.Dest{Addr: d.Spec.Addr, Weight: d.Spec.Weight, Upper: d.Spec.Upper, Lower: d.Spec.Lower, C: d.C}
			t.Dests[d.ID] = d
		}
		so, err := schedOptions(sv.spec.Sched, sv.spec.SchedFlags)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", sv.spec.Key, err)
		}
		for w := 0; w < m.workers; w++ {
			if w > 0 && sched.Shared(sv.spec.Sched) {
				// hashing schedulers (sh, mh, dh, conhash) keep no per-pick
				// state: one table serves all workers; the others (cursors,
				// lblc/lblcr locality tables, twos random source) get one each
				svc.Scheds = append(svc.Scheds, svc.Scheds[0])
				continue
			}
			sc, err := sched.New(sv.spec.Sched, sd, so)
			if err != nil {
				return nil, fmt.Errorf("service %s: scheduler %s: %w", sv.spec.Key, sv.spec.Sched, err)
			}
			svc.Scheds = append(svc.Scheds, sc)
		}
		for _, la := range sv.laddrs {
			laddrs[la.Addr] = struct{}{}
			addrs[la.Addr] = struct{}{}
		}
		if sv.spec.Key.Match != "" {
			// a SNAT service: its destinations are source addresses, whose
			// ports are handed out and whose replies are steered as local
			// addresses' are
			svc.Match, _ = ParseMatch(sv.spec.Key.Match) // validated
			for _, d := range sv.dests {
				laddrs[d.Spec.Addr.Addr()] = struct{}{}
				addrs[d.Spec.Addr.Addr()] = struct{}{}
			}
			t.SNAT = append(t.SNAT, svc)
		} else {
			addrs[sv.spec.Key.Addr] = struct{}{}
		}
		buildACL(svc, sv)
		t.ACL = t.ACL || svc.Deny != nil || svc.Allow != nil
		t.Services = append(t.Services, svc)
		t.byKey[sv.spec.Key] = svc
		t.byID[svc.ID] = svc
	}
	for id, d := range s.draining {
		t.Dests[id] = d
		if d.Spec.Fwd == FwdSNAT { // its connections' replies still come
			laddrs[d.Spec.Addr.Addr()] = struct{}{}
			addrs[d.Spec.Addr.Addr()] = struct{}{}
			t.SNATOn = true
		}
	}
	t.SNATOn = t.SNATOn || len(t.SNAT) > 0
	// validated addresses are never ::
	t.LAddrs, t.Addrs = addrmap.MustBuild(laddrs), addrmap.MustBuild(addrs)
	masq := map[netip.Addr]struct{}{}
	for _, d := range t.Dests {
		if d.Spec.Fwd == FwdMasq {
			masq[d.Spec.Addr.Addr()] = struct{}{}
		}
	}
	t.MasqAddrs, t.Masq = addrmap.MustBuild(masq), len(masq) > 0
	for id := range s.expire {
		t.ExpireDests[id] = struct{}{}
	}
	t.buildACLIndex()
	t.index = buildSvcIndex(t.Services)
	return t, nil
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
	return m.update(func(c *state) error {
		if _, s := c.find(spec.Key); s != nil {
			return fmt.Errorf("service %s: %w", spec.Key, ErrServiceExists)
		}
		c.services = append(c.services, &svcState{id: c.id(), spec: spec})
		return nil
	})
}

// EditService changes a service's scheduler and flags.
func (m *Manager) EditService(spec ServiceSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if err := schedOK(&spec); err != nil {
		return err
	}
	return m.update(func(c *state) error {
		_, s := c.find(spec.Key)
		if s == nil {
			return fmt.Errorf("service %s: %w", spec.Key, ErrNoService)
		}
		for _, d := range s.dests {
			if err := fullNATOnly(&spec, d.Spec); err != nil {
				return err
			}
		}
		s.spec = spec
		return nil
	})
}

// fullNATOnly refuses a real server a service cannot use: the SYN proxy
// and the proxy protocol shift the sequence numbers of the server's
// replies, so they must come back through GVS (FullNAT).
func fullNATOnly(s *ServiceSpec, d DestSpec) error {
	if d.Fwd == FwdFullNAT {
		return nil
	}
	switch {
	case s.SynProxy:
		return fmt.Errorf("destination %s of %s: SYN proxy (-j) needs FullNAT real servers (a %s server's replies bypass GVS, which must translate them): use -b or disable -j: %w",
			d.Addr, s.Key, d.Fwd, ErrInvalid)
	case s.ProxyProtocol != 0:
		return fmt.Errorf("destination %s of %s: --proxy-protocol needs FullNAT real servers (a %s server's replies bypass GVS, which must translate them): use -b or disable the proxy protocol: %w",
			d.Addr, s.Key, d.Fwd, ErrInvalid)
	case s.OnePacket && d.Fwd == FwdMasq:
		return fmt.Errorf("destination %s of %s: one-packet scheduling (-o) with NAT (-m): the server's answer, which comes back through GVS, would find no connection to be translated by: use -b, or drop -o: %w",
			d.Addr, s.Key, ErrInvalid)
	}
	return nil
}

// DelService removes a service; its destinations drain.
func (m *Manager) DelService(k ServiceKey) error {
	return m.update(func(c *state) error {
		i, s := c.find(k)
		if s == nil {
			return fmt.Errorf("service %s: %w", k, ErrNoService)
		}
		for _, d := range s.dests {
			c.draining[d.ID] = d
		}
		c.services = slices.Delete(c.services, i, i+1)
		return nil
	})
}

// Flush removes every service (ipvsadm -C).
func (m *Manager) Flush() error {
	return m.update(func(c *state) error {
		for _, s := range c.services {
			for _, d := range s.dests {
				c.draining[d.ID] = d
			}
		}
		c.services = nil
		return nil
	})
}

// AddDest adds a destination to service k.
func (m *Manager) AddDest(k ServiceKey, d DestSpec) error {
	if err := d.Validate(k); err != nil {
		return err
	}
	return m.update(func(c *state) error {
		_, s := c.find(k)
		if s == nil {
			return fmt.Errorf("destination %s of %s: %w", d.Addr, k, ErrServiceNotDef)
		}
		if err := fullNATOnly(&s.spec, d); err != nil {
			return err
		}
		for _, o := range s.dests {
			if o.Spec.Addr == d.Addr {
				return fmt.Errorf("destination %s of %s: %w", d.Addr, k, ErrDestExists)
			}
		}
		s.dests = append(s.dests, &Dest{ID: c.id(), Service: s.id, Spec: d, C: &sched.DestCounters{}, Stats: &Stats{}})
		return nil
	})
}

// EditDest changes a destination's weight, thresholds (and method).
// Weight 0 quiesces it: no new connections, existing ones continue.
func (m *Manager) EditDest(k ServiceKey, d DestSpec) error {
	if err := d.Validate(k); err != nil {
		return err
	}
	return m.update(func(c *state) error {
		_, s := c.find(k)
		if s == nil {
			return fmt.Errorf("destination %s of %s: %w", d.Addr, k, ErrServiceNotDef)
		}
		if err := fullNATOnly(&s.spec, d); err != nil {
			return err
		}
		for i, o := range s.dests {
			if o.Spec.Addr == d.Addr {
				n := *o
				n.Spec = d
				s.dests[i] = &n
				return nil
			}
		}
		return fmt.Errorf("destination %s of %s: %w", d.Addr, k, ErrNoDest)
	})
}

// DelDest removes a destination. Its connections continue until they end,
// or, with expire, are dropped at their next packet.
func (m *Manager) DelDest(k ServiceKey, addr netip.AddrPort, expire bool) error {
	return m.update(func(c *state) error {
		_, s := c.find(k)
		if s == nil {
			return fmt.Errorf("destination %s of %s: %w", addr, k, ErrServiceNotDef)
		}
		for i, o := range s.dests {
			if o.Spec.Addr == addr {
				s.dests = slices.Delete(s.dests, i, i+1)
				c.draining[o.ID] = o
				if expire {
					c.expire[o.ID] = struct{}{}
				}
				return nil
			}
		}
		return fmt.Errorf("destination %s of %s: %w", addr, k, ErrNoDest)
	})
}

// AddLAddr adds a FullNAT local address to service k. The caller checks
// that the address exists on the interface.
func (m *Manager) AddLAddr(k ServiceKey, la LAddr) error {
	return m.update(func(c *state) error {
		_, s := c.find(k)
		if s == nil {
			return fmt.Errorf("local address %s of %s: %w", la.Addr, k, ErrNoService)
		}
		if k.Match != "" {
			return fmt.Errorf("local address %s of %s: a match service's source addresses are its SNAT destinations (-a -H … -r ADDR:0 -J): %w", la.Addr, k, ErrInvalid)
		}
		if la.Addr.Is6() && k.Addr.Is4() {
			// an IPv6 service takes IPv4 local addresses too: they are its
			// NAT64 real servers' (lbnew.go picks one of the server's family)
			return fmt.Errorf("local address %s of %s: an IPv6 local address for an IPv4 service: give an IPv4 address: %w", la.Addr, k, ErrInvalid)
		}
		for _, o := range s.laddrs {
			if o.Addr == la.Addr {
				return fmt.Errorf("local address %s of %s: %w", la.Addr, k, ErrLAddrExists)
			}
		}
		s.laddrs = append(s.laddrs, la)
		return nil
	})
}

// DelLAddr removes a local address from service k; connections using it
// continue.
func (m *Manager) DelLAddr(k ServiceKey, a netip.Addr) error {
	return m.update(func(c *state) error {
		_, s := c.find(k)
		if s == nil {
			return fmt.Errorf("local address %s of %s: %w", a, k, ErrNoService)
		}
		i := slices.IndexFunc(s.laddrs, func(l LAddr) bool { return l.Addr == a })
		if i < 0 {
			return fmt.Errorf("local address %s of %s: %w", a, k, ErrNoLAddr)
		}
		s.laddrs = slices.Delete(s.laddrs, i, i+1)
		return nil
	})
}

// Reap forgets draining destinations that have no connections left.
func (m *Manager) Reap() {
	m.mu.Lock()
	gone := false
	for _, d := range m.st.draining {
		if d.C.Active.Load()+d.C.Inactive.Load() == 0 {
			gone = true
			break
		}
	}
	m.mu.Unlock()
	if !gone {
		return
	}
	// A table without those destinations always builds (schedulers only
	// see live destinations), so the error is impossible.
	_ = m.update(func(c *state) error {
		for id, d := range c.draining {
			if d.C.Active.Load()+d.C.Inactive.Load() == 0 {
				delete(c.draining, id)
				delete(c.expire, id)
			}
		}
		return nil
	})
}
