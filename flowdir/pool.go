package flowdir

// Local address pools. Every worker owns a disjoint share of each local
// address's port space: the ports whose low bits equal the worker's index
// (with the bit mask rounded up to a power of two, as flow-director rules
// match on masked ports). The owner of a FullNAT reply is therefore a pure
// function of its destination port, and a worker allocates local ports
// without talking to anybody.

import (
	"errors"
	"net/netip"
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

// ErrExhausted is returned when an address has no free port left.
var ErrExhausted = errors.New("local ports exhausted")

// Pool is one worker's free local ports of every local address. Owned by
// the worker; not safe for concurrent use.
type Pool struct {
	worker int
	st     Steering
	rss    *RSSFilter
	addrs  map[netip.Addr]*portStack
	seed   uint32
	// the last address used: most connections of a worker share one
	last      netip.Addr
	lastStack *portStack
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

type portStack struct {
	free  []uint16
	inUse []uint64 // bitmap over all 65536 ports
	rss   *RSSFilter
}

// NewPool returns worker w's pool.
func NewPool(w int, st Steering, rss *RSSFilter) *Pool {
	return &Pool{worker: w, st: st, rss: rss, addrs: map[netip.Addr]*portStack{}, seed: 2463534242 + uint32(w)}
}

func (p *Pool) stack(a netip.Addr) *portStack {
	if p.lastStack != nil && a == p.last {
		return p.lastStack
	}
	s := p.addrs[a]
	if s != nil {
		p.last, p.lastStack = a, s
		return s
	}
	// Built once per local address (on its first connection).
	s = &portStack{inUse: make([]uint64, 1024)}
	for port := 65535; port >= MinPort; port-- {
		if p.st.Owner(uint16(port)) == p.worker {
			s.free = append(s.free, uint16(port))
		}
	}
	p.addrs[a] = s
	p.last, p.lastStack = a, s
	return s
}

// Get takes a free port of local address a for a connection to real
// server rs. With an RSS filter it looks at a few candidates for one whose
// reply lands on this worker's queue and takes the first otherwise.
func (p *Pool) Get(a netip.Addr, rs netip.AddrPort) (uint16, error) {
	s := p.stack(a)
	n := len(s.free)
	if n == 0 {
		return 0, ErrExhausted
	}
	pick := n - 1
	rss := s.rss
	if rss == nil {
		rss = p.rss
	}
	if rss != nil {
		// Probe random free ports: which ones land on this queue depends
		// on the real server too, so they cannot be sorted out in advance.
		for try := 0; try < 64; try++ {
			i := int(p.rand() % uint32(n))
			h := rss.Hash.Hash4Tuple(rs.Addr(), a, rs.Port(), s.free[i], true)
			if rss.Queue(h) == p.worker {
				pick = i
				break
			}
		}
	}
	port := s.free[pick]
	s.free[pick] = s.free[n-1]
	s.free = s.free[:n-1]
	s.inUse[port>>6] |= 1 << (port & 63)
	return port, nil
}

// SetRSS makes the ports of local address a follow the RSS filter f (that
// of the device a's replies arrive on); nil reverts to the pool's default.
func (p *Pool) SetRSS(a netip.Addr, f *RSSFilter) { p.stack(a).rss = f }

// Put returns a port. Ports not taken from this pool are ignored (false).
func (p *Pool) Put(a netip.Addr, port uint16) bool {
	s := p.lastStack
	if s == nil || a != p.last {
		s = p.addrs[a]
	}
	if s == nil || s.inUse[port>>6]&(1<<(port&63)) == 0 {
		return false
	}
	s.inUse[port>>6] &^= 1 << (port & 63)
	s.free = append(s.free, port)
	return true
}

// Free returns the number of free ports of a (0 for an unknown address
// before its first use: its ports are created on demand).
func (p *Pool) Free(a netip.Addr) int {
	if s := p.addrs[a]; s != nil {
		return len(s.free)
	}
	return 0
}
