package dataplane

// Neighbour table (ARP and IPv6 ND). The master owns the authoritative map
// and publishes immutable copies; workers read the published copy without
// locks. An entry's confirmation time is an atomic inside the entry, so the
// frequent "still there" refreshes from ARP traffic do not republish the
// table.
//
// The table has to survive ARP/ND floods from spoofed sources on a
// connected segment, so what a packet may do to it depends on its class
// (RFC 826, RFC 4861 7.2.3/7.2.5):
//   - needed: an answer about an address a worker is resolving (it sent an
//     ARP request or NS for it within neighPendingMaxAge). Workers record
//     their solicitations in a shared lock-free filter, because the answer
//     may arrive on another worker's queue.
//   - unsolicited: an ARP request or NS addressed to the dataplane, which the
//     RFCs allow to create a (stale) entry for its sender.
//   - update: anything else about an address already in the table (a
//     gratuitous ARP, an unsolicited NA): it refreshes or changes the entry
//     and never creates one. Unsolicited ARP replies and NAs about unknown
//     addresses are counted (drop_neigh_unsolicited) and ignored.
//
// Dynamic entries are bounded per interface (Options.NeighMaxEntries; static
// entries do not count). At the bound an unsolicited learn is refused, and a
// needed one evicts the oldest unsolicited entry of that interface (oldest
// by creation) or is refused when none is left. Workers refuse unsolicited
// learns for interfaces the last publication showed full themselves, so a
// flood mostly does not even reach the master's channel.
//
// Workers post learn events to the master on two buffered channels: needed
// ones on their own small channel, so a flood of unsolicited ones cannot
// crowd out the answer a held packet waits for. A full channel drops the
// event (counted; the next packet from that neighbour repeats it). The
// master applies events in batches under one lock and publishes one copy
// when something changed: at most once per neighPublishInterval, or after
// neighPublishUrgent when a needed entry arrived (held packets wait for it);
// the gap also grows with the measured cost of a copy, so copying takes at
// most about 1/neighPublishCostFactor of the master's time whatever the
// table size. Refused, evicted and lost events are counted in the counters
// of the worker that saw the packet.
//
// Entries older than the reachable time are still used but probed; entries
// not confirmed within neighProbeGrace after that are removed, so traffic
// queues and resolves again.

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/internal/addrmap"
)

const (
	neighProbeGrace    = 5 * time.Second
	neighProbeInterval = time.Second
	neighPendingMaxAge = 3 * time.Second

	// DefaultNeighMaxEntries is the default bound on dynamic neighbour
	// entries per interface.
	DefaultNeighMaxEntries = 4096

	neighPublishInterval   = 10 * time.Millisecond
	neighPublishUrgent     = time.Millisecond
	neighPublishCostFactor = 10
	// neighLearnBatch bounds the events the master applies under one lock
	// before it looks at its other work.
	neighLearnBatch = 256
	learnChSize     = 4096
	needChSize      = 256
	solicitSlots    = 4096 // power of two
)

type neighEntry struct {
	mac    header.MAC
	iface  uint16
	static bool
	// needed is the master's alone: the entry answers a solicitation of the
	// dataplane (or was promoted by one), so eviction spares it.
	needed    bool
	confirmed atomic.Int64 // dataplane clock, ns
}

type neighMap map[netip.Addr]*neighEntry

// neighClass is what a learn event may do to the table.
type neighClass uint8

const (
	neighUpdate      neighClass = iota // refresh or change an existing entry only
	neighUnsolicited                   // may create an entry below the bound
	neighNeeded                        // may evict an unsolicited entry at the bound
)

type neighLearn struct {
	addr   netip.Addr
	mac    header.MAC
	iface  uint16
	class  neighClass
	worker uint16 // who saw the packet: outcomes are counted there
}

// learnResult is what a learn event did.
type learnResult uint8

const (
	learnNothing learnResult = iota // confirmed an entry, or an update about an unknown address
	learnChanged                    // created or changed an entry
	learnEvicted                    // created an entry by evicting an unsolicited one
	learnRefused                    // the interface is at its bound
)

// NeighState describes an entry for listings.
type NeighState string

const (
	NeighReachable NeighState = "REACHABLE"
	NeighStale     NeighState = "STALE"
	NeighStatic    NeighState = "PERMANENT"
)

// Neighbour is one entry as the API lists it.
type Neighbour struct {
	Addr  netip.Addr
	MAC   header.MAC
	Iface string
	State NeighState
	Age   time.Duration
}

// neighIface is the master's bookkeeping of one interface's dynamic entries.
type neighIface struct {
	dynamic int
	// fifo holds the unsolicited entries oldest first, plus stale refs
	// (entries since removed, replaced or promoted) that eviction skips and
	// compaction drops; low counts the live ones.
	fifo []neighRef
	head int
	low  int
}

type neighRef struct {
	addr netip.Addr
	e    *neighEntry
}

type neighbours struct {
	mu      sync.Mutex
	m       neighMap
	ifs     []neighIface // by interface index
	max     int
	dirty   bool  // m differs from the published copy
	urgent  bool  // ... and a needed entry is among the changes
	lastPub int64 // dataplane clock
	pubCost int64 // ns the last copy took
	clock   func() int64

	pub       atomic.Pointer[addrmap.Map[*neighEntry]] // the workers' copy: fixed-width keys
	full      atomic.Pointer[[]bool]                   // by interface index: at the bound when published
	version   atomic.Uint64
	reachable time.Duration
	solicit   solicitations
}

func newNeighbours(reachable time.Duration, maxPerIface int, clock func() int64) *neighbours {
	if maxPerIface <= 0 {
		maxPerIface = DefaultNeighMaxEntries
	}
	n := &neighbours{m: neighMap{}, reachable: reachable, max: maxPerIface, clock: clock}
	n.solicit.k0, n.solicit.k1 = rand.Uint64(), rand.Uint64()
	n.publishLocked()
	return n
}

// publishLocked makes the workers see the current table.
func (n *neighbours) publishLocked() {
	t0 := n.clock()
	c := addrmap.MustBuild(n.m) // no entry for :: (neither ARP nor ND learns it)
	n.publishFullLocked()
	n.pub.Store(&c)
	n.version.Add(1)
	t1 := n.clock()
	n.lastPub, n.pubCost = t1, t1-t0
	n.dirty, n.urgent = false, false
}

// publishIfDue publishes a changed table once its gap since the last
// publication has passed. Otherwise it returns how long until then (0:
// nothing to publish).
func (n *neighbours) publishIfDue() (published bool, wait time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.dirty {
		return false, 0
	}
	gap := int64(neighPublishInterval)
	if n.urgent {
		gap = int64(neighPublishUrgent)
	}
	gap = max(gap, neighPublishCostFactor*n.pubCost)
	if d := n.lastPub + gap - n.clock(); d > 0 {
		return false, time.Duration(d)
	}
	n.publishLocked()
	return true, 0
}

// publishFullLocked publishes which interfaces are at their bound. It runs
// with every publication, and at once when an interface fills up, so that
// workers stop posting unsolicited learns the master could only refuse
// without waiting for the next copy of the table.
func (n *neighbours) publishFullLocked() {
	full := make([]bool, len(n.ifs))
	for i := range n.ifs {
		full[i] = n.ifs[i].dynamic >= n.max
	}
	n.full.Store(&full)
}

// isFull reports whether iface was at its bound when the table was last
// published (any goroutine).
func (n *neighbours) isFull(iface uint16) bool {
	f := *n.full.Load()
	return int(iface) < len(f) && f[iface]
}

func (n *neighbours) ifState(i uint16) *neighIface {
	for int(i) >= len(n.ifs) {
		n.ifs = append(n.ifs, neighIface{})
	}
	return &n.ifs[i]
}

func (n *neighbours) insertLocked(a netip.Addr, e *neighEntry) {
	n.m[a] = e
	n.dirty = true
	if e.static {
		return
	}
	s := n.ifState(e.iface)
	s.dynamic++
	if e.needed {
		n.urgent = true
		return
	}
	s.low++
	s.fifo = append(s.fifo, neighRef{a, e})
	if len(s.fifo)-s.head >= 2*s.low+64 {
		n.compactLocked(s)
	}
}

func (n *neighbours) removeLocked(a netip.Addr, e *neighEntry) {
	delete(n.m, a)
	n.dirty = true
	if e.static {
		return
	}
	s := n.ifState(e.iface)
	s.dynamic--
	if !e.needed {
		s.low--
	}
}

// live reports whether r still names an unsolicited entry of the table.
func (n *neighbours) live(r neighRef) bool {
	cur, ok := n.m[r.addr]
	return ok && cur == r.e && !r.e.needed
}

// compactLocked drops the stale refs of s.fifo (amortised O(1) per insert:
// it runs when at least half of the queue is stale).
func (n *neighbours) compactLocked(s *neighIface) {
	keep := s.fifo[:0]
	for _, r := range s.fifo[s.head:] {
		if n.live(r) {
			keep = append(keep, r)
		}
	}
	clear(s.fifo[len(keep):])
	s.fifo, s.head = keep, 0
}

// evictLocked removes the oldest unsolicited entry of s; false if none.
func (n *neighbours) evictLocked(s *neighIface) bool {
	for s.head < len(s.fifo) {
		r := s.fifo[s.head]
		s.fifo[s.head] = neighRef{}
		s.head++
		if n.live(r) {
			n.removeLocked(r.addr, r.e)
			return true
		}
	}
	s.fifo, s.head = s.fifo[:0], 0
	return false
}

// learn applies what a worker saw; now is the dataplane clock.
func (n *neighbours) learn(l neighLearn, now int64) learnResult {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.learnLocked(l, now)
}

func (n *neighbours) learnLocked(l neighLearn, now int64) learnResult {
	needed := l.class == neighNeeded
	if old, ok := n.m[l.addr]; ok {
		switch {
		case old.static:
			return learnNothing
		case old.mac == l.mac && old.iface == l.iface:
			old.confirmed.Store(now)
			if needed && !old.needed {
				old.needed = true // its fifo ref turns stale
				n.ifState(old.iface).low--
			}
			return learnNothing
		case old.iface == l.iface:
			// a new MAC: a new entry (workers may be reading the old one)
			e := &neighEntry{mac: l.mac, iface: l.iface, needed: needed || old.needed}
			e.confirmed.Store(now)
			n.removeLocked(l.addr, old)
			n.insertLocked(l.addr, e)
			return learnChanged
		}
		// moved to another interface: learnt there as a new entry
		n.removeLocked(l.addr, old)
	} else if l.class == neighUpdate {
		return learnNothing
	}
	res := learnChanged
	s := n.ifState(l.iface)
	if s.dynamic >= n.max {
		if !needed || !n.evictLocked(s) {
			return learnRefused
		}
		res = learnEvicted
	}
	e := &neighEntry{mac: l.mac, iface: l.iface, needed: needed}
	e.confirmed.Store(now)
	n.insertLocked(l.addr, e)
	if s.dynamic >= n.max && !n.isFull(l.iface) {
		n.publishFullLocked()
	}
	return res
}

// addStatic installs a permanent entry.
func (n *neighbours) addStatic(a netip.Addr, mac header.MAC, iface uint16) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if old, ok := n.m[a]; ok {
		n.removeLocked(a, old)
	}
	n.insertLocked(a, &neighEntry{mac: mac, iface: iface, static: true})
	n.publishLocked()
}

// del removes an entry; false if there was none.
func (n *neighbours) del(a netip.Addr) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.m[a]
	if !ok {
		return false
	}
	n.removeLocked(a, e)
	n.publishLocked()
	return true
}

// flushIface removes the dynamic and static entries of an interface.
func (n *neighbours) flushIface(iface uint16) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for a, e := range n.m {
		if e.iface == iface {
			delete(n.m, a)
			n.dirty = true
		}
	}
	if int(iface) < len(n.ifs) {
		n.ifs[iface] = neighIface{}
	}
	if n.dirty {
		n.publishLocked()
	}
}

// expire removes dynamic entries not confirmed for reachable+grace; the
// next publication shows it.
func (n *neighbours) expire(now int64) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	limit := int64(n.reachable + neighProbeGrace)
	removed := 0
	for a, e := range n.m {
		if !e.static && now-e.confirmed.Load() > limit {
			n.removeLocked(a, e)
			removed++
		}
	}
	return removed
}

// dynamicOn returns the number of dynamic entries of iface (master's view).
func (n *neighbours) dynamicOn(iface uint16) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if int(iface) >= len(n.ifs) {
		return 0
	}
	return n.ifs[iface].dynamic
}

func (n *neighbours) list(now int64, ifName func(uint16) string) []Neighbour {
	tbl := n.pub.Load()
	out := make([]Neighbour, 0, tbl.Len())
	tbl.All(func(a netip.Addr, e *neighEntry) bool {
		nb := Neighbour{Addr: a, MAC: e.mac, Iface: ifName(e.iface), State: NeighReachable}
		switch {
		case e.static:
			nb.State = NeighStatic
		default:
			nb.Age = time.Duration(now - e.confirmed.Load())
			if nb.Age > n.reachable {
				nb.State = NeighStale
			}
		}
		out = append(out, nb)
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out
}

func (nb Neighbour) String() string {
	return fmt.Sprintf("%s lladdr %s dev %s %s", nb.Addr, nb.MAC, nb.Iface, nb.State)
}

// solicitations remembers the addresses workers are resolving, so that any
// worker can tell an answer to the dataplane's own ARP request or NS from an
// unsolicited one. Fixed size and lock-free: an address hashes (keyed, so a
// sender cannot aim at a slot) to a pair of slots that hold the hash and the
// time of the solicitation; a newer solicitation takes the older slot of the
// pair. An overwritten solicitation only costs the answer its priority
// until the next probe (once per neighProbeInterval) marks it again.
type solicitations struct {
	k0, k1 uint64 // random hash keys
	key    [solicitSlots]atomic.Uint64
	at     [solicitSlots]atomic.Int64
}

// hash is a keyed multiply-fold hash of the address (a few ns; it runs for
// every ARP/ND packet from a sender the table does not have fresh).
func (s *solicitations) hash(a netip.Addr) uint64 {
	b := a.As16()
	hi, lo := bits.Mul64(binary.LittleEndian.Uint64(b[:8])^s.k0, binary.LittleEndian.Uint64(b[8:])^s.k1)
	return (hi ^ lo) | 1 // 0 marks an empty slot
}

// mark records that a worker asked for a's link-layer address at now.
func (s *solicitations) mark(a netip.Addr, now int64) {
	h := s.hash(a)
	i := h & (solicitSlots - 1)
	if j := i ^ 1; s.key[i].Load() != h && (s.key[j].Load() == h || s.at[j].Load() < s.at[i].Load()) {
		i = j
	}
	s.at[i].Store(now)
	s.key[i].Store(h)
}

// has reports whether a was solicited within neighPendingMaxAge before now.
func (s *solicitations) has(a netip.Addr, now int64) bool {
	h := s.hash(a)
	i := h & (solicitSlots - 1)
	return (s.key[i].Load() == h && now-s.at[i].Load() <= int64(neighPendingMaxAge)) ||
		(s.key[i^1].Load() == h && now-s.at[i^1].Load() <= int64(neighPendingMaxAge))
}

// neighEvents is the master's handling of learn events: it applies l and
// whatever else is queued (answers first), up to neighLearnBatch events
// under one lock, and counts refusals and evictions for the workers that
// saw them. Publication is publishNeigh's.
func (d *Dataplane) neighEvents(l neighLearn) {
	n := d.neigh
	now := d.clock()
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := 0; ; i++ {
		switch n.learnLocked(l, now) {
		case learnRefused:
			d.countLearn(l, CtrDropNeighLearnFull)
		case learnEvicted:
			d.countLearn(l, CtrNeighEvicted)
		}
		if i == neighLearnBatch-1 {
			return
		}
		select {
		case l = <-d.needCh:
			continue
		default:
		}
		select {
		case l = <-d.learnCh:
		default:
			return
		}
	}
}

// countLearn counts an outcome the master decided in the counters of the
// worker that saw the packet (published counters: the worker's own
// publication adds to the same atomics).
func (d *Dataplane) countLearn(l neighLearn, c Counter) {
	if int(l.worker) < len(d.workers) {
		d.workers[l.worker].ctr.pub[c].Add(1)
	}
}

// publishNeigh publishes the neighbour table if it changed and its gap has
// passed, and then wakes the workers (held packets may go now). It returns
// how long until a pending publication is due, 0 if none is.
func (d *Dataplane) publishNeigh() time.Duration {
	published, wait := d.neigh.publishIfDue()
	if published {
		for _, w := range d.workers {
			w.wake()
		}
	}
	return wait
}
