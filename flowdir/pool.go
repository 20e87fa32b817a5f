package flowdir

// Local address pools. Every worker owns a disjoint share of each local
// address's port space: the ports whose low bits equal the worker's index
// (with the bit mask rounded up to a power of two, as flow-director rules
// match on masked ports). The owner of a FullNAT reply is therefore a pure
// function of its destination port, and a worker allocates local ports
// without talking to anybody.
//
// A connection is identified on the wire by its 4-tuple, so one local port
// may serve several connections at once as long as their real servers
// differ. The pool therefore keeps one port space per (local address, real
// server address and port) key: with one local address, each real server
// gets all of the worker's ports (64,512 with one worker).
//
// A port space is a bitmap over the worker's port slots (slot s is port
// s<<shift | worker) plus a summary bitmap of full words, so that finding a
// free port from the moving cursor costs a few word operations even in a
// nearly full space: 8 KiB + 128 B per key with one worker, half that with
// two. The cursor moves on after every allocation instead of reusing the
// port just freed, so a real server does not see a 4-tuple again while its
// previous connection may still be in TIME_WAIT.
//
// Memory is bounded by the configuration, never by traffic: a key's space
// is created on its first connection and stays keyed while idle (no
// allocation when a quiet real server gets connections again); an idle
// space is handed to a new key before any new one is allocated, so the
// number of spaces is the peak number of (local address, real server)
// pairs holding connections at the same time. In steady state Get and Put
// allocate nothing.
//
// The pool is owned by its worker. Usage is the one method safe to call
// from other goroutines: it reads atomics the worker stores.

import (
	"errors"
	"math/bits"
	"net/netip"
	"sync/atomic"

	"github.com/gvs-lb/gvs/internal/addrmap"
)

// MinPort is the lowest local port handed out; ports below are left to
// services and the kernel behind KNI.
const MinPort = 1024

// Steering computes port ownership for a number of workers.
type Steering struct {
	workers int
	mask    uint16
}

// NewSteering returns the port split for n workers.
func NewSteering(n int) Steering {
	if n < 1 {
		n = 1
	}
	m := 1
	for m < n {
		m <<= 1
	}
	return Steering{workers: n, mask: uint16(m - 1)}
}

// Owner returns the worker owning local port p.
func (s Steering) Owner(p uint16) int { return int(p & s.mask) }

// Mask returns the port bit mask the ownership is computed with.
func (s Steering) Mask() uint16 { return s.mask }

// Workers returns the number of workers.
func (s Steering) Workers() int { return s.workers }

// RSSFilter, when set on a Pool, restricts ports to those whose reply
// (from the real server to the local address) hashes onto the worker's
// receive queue, so a NIC whose only steering tool is RSS still delivers
// replies to their owner.
type RSSFilter struct {
	Hash   *Toeplitz
	Queues int
	// RETA is the NIC's redirection table (hash low bits → queue); nil
	// means the usual default: entry i is queue i % Queues, 128 entries.
	RETA []uint16
}

// Queue returns the queue a packet hashing to h lands on.
func (f *RSSFilter) Queue(h uint32) int {
	if len(f.RETA) > 0 {
		return int(f.RETA[h%uint32(len(f.RETA))])
	}
	return int(h&127) % f.Queues
}

// ErrExhausted is returned when a (local address, real server) pair has no
// free port left on this worker.
var ErrExhausted = errors.New("local ports exhausted")

// rssTries bounds the ports looked at for one whose reply hashes onto the
// worker's queue.
const rssTries = 64

type spaceKey struct {
	la netip.Addr
	rs netip.AddrPort
}

const cacheSize = 16

type cacheEntry struct {
	k spaceKey
	s *portSpace
}

// cacheFor returns k's cache entry.
func (p *Pool) cacheFor(k spaceKey) *cacheEntry {
	_, r := addrmap.Words(k.rs.Addr())
	_, l := addrmap.Words(k.la)
	h := uint32(r) ^ uint32(l) ^ uint32(k.rs.Port())
	return &p.cache[(h*0x9e3779b1)>>(32-4)]
}

type addrState struct {
	addr netip.Addr
	idx  int32 // index in Pool.addrList
	rss  *RSSFilter
	// conflicts counts Gets refused with ErrExhausted (ipvsadm -G's
	// CONFLICTS); written by the owner, read by Usage.
	conflicts atomic.Uint64
}

// portSpace is one key's ports. bits has a 1 for every slot in use or not
// a usable port (below MinPort); full has a 1 for every word of bits that
// is all ones, and for the summary positions past the last word.
type portSpace struct {
	key  spaceKey
	addr *addrState
	bits []uint64
	full []uint64
	next int // cursor: the slot the next search starts at
	used int

	// for Usage: what readers see of used and addr
	pubUsed atomic.Uint32
	pubAddr atomic.Int32
}

// Pool is one worker's local ports of every (local address, real server).
// Owned by the worker; not safe for concurrent use except Usage.
type Pool struct {
	worker   int
	st       Steering
	shift    uint // slot = port >> shift
	nslots   int
	capacity int      // usable slots per space
	tmpl     []uint64 // bits of an empty space
	tmplFull []uint64
	rss      *RSSFilter
	seed     uint32

	spaces   map[spaceKey]*portSpace
	addrs    map[netip.Addr]*addrState
	addrList []netip.Addr
	all      []*portSpace // every space allocated
	idle     int          // keyed spaces with no port in use
	reuse    int          // where the search for an idle space resumes

	// recently used keys, direct-mapped: a map lookup hashes the whole
	// key and costs several times a cache hit
	cache [cacheSize]cacheEntry

	pubAddrs  atomic.Pointer[[]*addrState]
	pubSpaces atomic.Pointer[[]*portSpace]
}

// NewPool returns worker w's pool.
func NewPool(w int, st Steering, rss *RSSFilter) *Pool {
	p := &Pool{worker: w, st: st, rss: rss, seed: 2463534242 + uint32(w),
		spaces: map[spaceKey]*portSpace{}, addrs: map[netip.Addr]*addrState{}}
	p.shift = uint(bits.Len16(st.mask))
	p.nslots = 65536 >> p.shift
	nw := (p.nslots + 63) / 64
	p.tmpl = make([]uint64, nw)
	p.tmplFull = make([]uint64, (nw+63)/64)
	for slot := 0; slot < nw*64; slot++ {
		port := slot<<p.shift | w
		if slot >= p.nslots || port < MinPort || port > 65535 {
			p.tmpl[slot>>6] |= 1 << (slot & 63)
		} else {
			p.capacity++
		}
	}
	for i := 0; i < len(p.tmplFull)*64; i++ {
		if i >= nw || p.tmpl[i] == ^uint64(0) {
			p.tmplFull[i>>6] |= 1 << (i & 63)
		}
	}
	p.pubAddrs.Store(&[]*addrState{})
	p.pubSpaces.Store(&[]*portSpace{})
	return p
}

// rand is a xorshift generator: cheap, allocation-free, good enough to
// spread probes.
func (p *Pool) rand() uint32 {
	x := p.seed
	x ^= x << 13
	x ^= x >> 17
	x ^= x << 5
	p.seed = x
	return x
}

// PortsPerServer is how many ports of one local address this worker can
// hand out towards one real server.
func (p *Pool) PortsPerServer() int { return p.capacity }

func (p *Pool) addr(a netip.Addr) *addrState {
	as := p.addrs[a]
	if as == nil {
		as = &addrState{addr: a, idx: int32(len(p.addrList))}
		p.addrs[a] = as
		p.addrList = append(p.addrList, a)
		l := append(append([]*addrState(nil), *p.pubAddrs.Load()...), as)
		p.pubAddrs.Store(&l)
	}
	return as
}

// space returns k's space, creating it on first use.
func (p *Pool) space(k spaceKey) *portSpace {
	e := p.cacheFor(k)
	if e.s != nil && e.k == k {
		return e.s
	}
	s := p.spaces[k]
	if s == nil {
		s = p.newSpace(k)
	}
	e.k, e.s = k, s
	return s
}

// newSpace keys a space for k: an idle one if there is one, else a new one.
func (p *Pool) newSpace(k spaceKey) *portSpace {
	var s *portSpace
	if p.idle > 0 {
		for n := 0; n < len(p.all); n++ {
			c := p.all[p.reuse%len(p.all)]
			p.reuse++
			if c.used == 0 {
				s = c
				break
			}
		}
	}
	if s != nil {
		delete(p.spaces, s.key)
		if e := p.cacheFor(s.key); e.s == s {
			e.s = nil
		}
		copy(s.bits, p.tmpl)
		copy(s.full, p.tmplFull)
	} else {
		s = &portSpace{bits: append([]uint64(nil), p.tmpl...), full: append([]uint64(nil), p.tmplFull...)}
		p.all = append(p.all, s)
		l := append([]*portSpace(nil), p.all...)
		p.pubSpaces.Store(&l)
		p.idle++
	}
	s.key, s.addr = k, p.addr(k.la)
	s.next = int(p.rand() % uint32(p.nslots))
	s.pubAddr.Store(s.addr.idx)
	p.spaces[k] = s
	return s
}

// findFree returns the first free slot at or after from, wrapping around.
// The space must have one.
func (s *portSpace) findFree(from int) int {
	nw := len(s.bits)
	wi := from >> 6
	if wi >= nw {
		wi, from = 0, 0
	}
	if f := ^s.bits[wi] & (^uint64(0) << uint(from&63)); f != 0 {
		return wi<<6 | bits.TrailingZeros64(f)
	}
	j := wi + 1
	for n := 0; n <= len(s.full); n++ {
		if j >= nw {
			j = 0
		}
		si := j >> 6
		if f := ^s.full[si] & (^uint64(0) << uint(j&63)); f != 0 {
			w := si<<6 | bits.TrailingZeros64(f)
			return w<<6 | bits.TrailingZeros64(^s.bits[w])
		}
		j = (si + 1) << 6
	}
	return -1
}

func (s *portSpace) isSet(slot int) bool { return s.bits[slot>>6]&(1<<(slot&63)) != 0 }

func (s *portSpace) take(slot int) {
	w := slot >> 6
	s.bits[w] |= 1 << (slot & 63)
	if s.bits[w] == ^uint64(0) {
		s.full[w>>6] |= 1 << (w & 63)
	}
}

func (s *portSpace) release(slot int) {
	w := slot >> 6
	s.bits[w] &^= 1 << (slot & 63)
	s.full[w>>6] &^= 1 << (w & 63)
}

func (p *Pool) port(slot int) uint16 { return uint16(slot<<p.shift | p.worker) }

// Get takes a free port of local address a for a connection to real
// server rs. It returns ErrExhausted when every port of this worker is in
// use towards rs. With an RSS filter it looks at up to 64 free ports for
// one whose reply lands on this worker's queue and takes the first
// otherwise.
func (p *Pool) Get(a netip.Addr, rs netip.AddrPort) (uint16, error) {
	s := p.space(spaceKey{a, rs})
	if s.used >= p.capacity {
		s.addr.conflicts.Add(1)
		return 0, ErrExhausted
	}
	rss := s.addr.rss
	if rss == nil {
		rss = p.rss
	}
	var slot int
	if rss == nil {
		slot = s.findFree(s.next)
	} else {
		slot = p.probe(s, rss)
	}
	s.take(slot)
	if s.next = slot + 1; s.next >= p.nslots {
		s.next = 0
	}
	if s.used == 0 {
		p.idle--
	}
	s.used++
	s.pubUsed.Store(uint32(s.used))
	return p.port(slot), nil
}

// probe looks at free ports from random starting points: which ones land
// on this queue depends on the real server too, so they cannot be sorted
// out in advance.
func (p *Pool) probe(s *portSpace, f *RSSFilter) int {
	first := -1
	for try := 0; try < rssTries; try++ {
		slot := s.findFree(int(p.rand() % uint32(p.nslots)))
		if first < 0 {
			first = slot
		}
		h := f.Hash.Hash4Tuple(s.key.rs.Addr(), s.key.la, s.key.rs.Port(), p.port(slot), true)
		if f.Queue(h) == p.worker {
			return slot
		}
	}
	return first
}

// SetRSS makes the ports of local address a follow the RSS filter f (that
// of the device a's replies arrive on); nil reverts to the pool's default.
func (p *Pool) SetRSS(a netip.Addr, f *RSSFilter) { p.addr(a).rss = f }

// Put returns port of local address a, taken for real server rs. Ports
// not taken from this pool are ignored (false).
func (p *Pool) Put(a netip.Addr, rs netip.AddrPort, port uint16) bool {
	if port < MinPort || p.st.Owner(port) != p.worker {
		return false
	}
	k := spaceKey{a, rs}
	e := p.cacheFor(k)
	s := e.s
	if s == nil || e.k != k {
		if s = p.spaces[k]; s == nil {
			return false
		}
		e.k, e.s = k, s
	}
	slot := int(port >> p.shift)
	if !s.isSet(slot) {
		return false
	}
	s.release(slot)
	s.used--
	s.pubUsed.Store(uint32(s.used))
	if s.used == 0 {
		p.idle++
	}
	return true
}

// ErrPortTaken is returned by Reserve for a port already in use towards
// the same real server; ErrNotOwned for a port of another worker (or below
// MinPort).
var (
	ErrPortTaken = errors.New("local port already in use towards this real server")
	ErrNotOwned  = errors.New("local port not owned by this worker")
)

// Reserve takes the given port of local address a towards real server rs,
// for a connection made elsewhere (session sync): Put returns it like any
// other. The port must be owned by this worker (Steering.Owner) and free
// towards rs.
func (p *Pool) Reserve(a netip.Addr, rs netip.AddrPort, port uint16) error {
	if port < MinPort || p.st.Owner(port) != p.worker {
		return ErrNotOwned
	}
	s := p.space(spaceKey{a, rs})
	slot := int(port >> p.shift)
	if slot >= p.nslots {
		return ErrNotOwned
	}
	if s.isSet(slot) {
		return ErrPortTaken
	}
	s.take(slot)
	if s.used == 0 {
		p.idle--
	}
	s.used++
	s.pubUsed.Store(uint32(s.used))
	return nil
}

// Free returns the number of free ports of local address a towards real
// server rs.
func (p *Pool) Free(a netip.Addr, rs netip.AddrPort) int {
	if s := p.spaces[spaceKey{a, rs}]; s != nil {
		return p.capacity - s.used
	}
	return p.capacity
}

// AddrUsage is one local address's ports on one worker.
type AddrUsage struct {
	Addr netip.Addr
	// InUse counts the ports taken towards all real servers together.
	InUse int
	// Busiest is the most ports taken towards one real server: the binding
	// limit, as each real server has PortsPerServer ports.
	Busiest int
	// Servers counts the real servers holding ports.
	Servers int
	// PortsPerServer is the port space towards each real server.
	PortsPerServer int
	// Conflicts counts the port allocations refused because the ports
	// towards the real server asked for were exhausted (Get's
	// ErrExhausted), since the address was first used.
	Conflicts uint64
}

// BusiestFree returns the ports left towards the busiest real server.
func (u AddrUsage) BusiestFree() int { return u.PortsPerServer - u.Busiest }

// Usage returns the port usage of every local address the pool has seen,
// in the order first seen. Safe for concurrent use with the owner: it
// reads what the worker stores after every Get and Put (a space handed to
// a new key may be counted under its old address for that instant).
func (p *Pool) Usage() []AddrUsage {
	addrs := *p.pubAddrs.Load()
	out := make([]AddrUsage, len(addrs))
	for i, a := range addrs {
		out[i] = AddrUsage{Addr: a.addr, PortsPerServer: p.capacity, Conflicts: a.conflicts.Load()}
	}
	for _, s := range *p.pubSpaces.Load() {
		u := int(s.pubUsed.Load())
		i := int(s.pubAddr.Load())
		if u == 0 || i >= len(out) {
			continue
		}
		o := &out[i]
		o.InUse += u
		o.Servers++
		o.Busiest = max(o.Busiest, u)
	}
	return out
}
