package dataplane

// Neighbour table (ARP and IPv6 ND). The master owns the authoritative map
// and publishes immutable copies; workers read the published copy without
// locks. An entry's confirmation time is an atomic inside the entry, so the
// frequent "still there" refreshes from ARP traffic do not republish the
// table: only new entries, changed MACs and expiries do.
//
// Workers learn from ARP/ND packets addressed to the dataplane and post what
// they learnt to the master over a buffered channel (a full channel drops
// the update; the next packet from that neighbour repeats it). Entries older
// than the reachable time are still used but probed; entries not confirmed
// within neighProbeGrace after that are removed, so traffic queues and
// resolves again.

import (
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gvs-lb/gvs/header"
)

const (
	neighProbeGrace    = 5 * time.Second
	neighProbeInterval = time.Second
	neighPendingMaxAge = 3 * time.Second
)

type neighEntry struct {
	mac       header.MAC
	iface     uint16
	static    bool
	confirmed atomic.Int64 // dataplane clock, ns
}

type neighMap map[netip.Addr]*neighEntry

type neighLearn struct {
	addr  netip.Addr
	mac   header.MAC
	iface uint16
}

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

type neighbours struct {
	mu        sync.Mutex
	m         neighMap
	pub       atomic.Pointer[neighMap]
	version   atomic.Uint64
	reachable time.Duration
}

func newNeighbours(reachable time.Duration) *neighbours {
	n := &neighbours{m: neighMap{}, reachable: reachable}
	n.publishLocked()
	return n
}

func (n *neighbours) publishLocked() {
	c := make(neighMap, len(n.m))
	for k, v := range n.m {
		c[k] = v
	}
	n.pub.Store(&c)
	n.version.Add(1)
}

// learn applies what a worker saw; now is the dataplane clock. It reports
// whether the table was republished.
func (n *neighbours) learn(l neighLearn, now int64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if e, ok := n.m[l.addr]; ok {
		if e.static {
			return false
		}
		if e.mac == l.mac && e.iface == l.iface {
			e.confirmed.Store(now)
			return false
		}
	}
	e := &neighEntry{mac: l.mac, iface: l.iface}
	e.confirmed.Store(now)
	n.m[l.addr] = e
	n.publishLocked()
	return true
}

// addStatic installs a permanent entry.
func (n *neighbours) addStatic(a netip.Addr, mac header.MAC, iface uint16) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := &neighEntry{mac: mac, iface: iface, static: true}
	n.m[a] = e
	n.publishLocked()
}

// del removes an entry; false if there was none.
func (n *neighbours) del(a netip.Addr) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.m[a]; !ok {
		return false
	}
	delete(n.m, a)
	n.publishLocked()
	return true
}

// flushIface removes the dynamic and static entries of an interface.
func (n *neighbours) flushIface(iface uint16) {
	n.mu.Lock()
	defer n.mu.Unlock()
	changed := false
	for a, e := range n.m {
		if e.iface == iface {
			delete(n.m, a)
			changed = true
		}
	}
	if changed {
		n.publishLocked()
	}
}

// expire removes dynamic entries not confirmed for reachable+grace.
func (n *neighbours) expire(now int64) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	limit := int64(n.reachable + neighProbeGrace)
	removed := 0
	for a, e := range n.m {
		if !e.static && now-e.confirmed.Load() > limit {
			delete(n.m, a)
			removed++
		}
	}
	if removed > 0 {
		n.publishLocked()
	}
	return removed
}

func (n *neighbours) list(now int64, ifName func(uint16) string) []Neighbour {
	tbl := *n.pub.Load()
	out := make([]Neighbour, 0, len(tbl))
	for a, e := range tbl {
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
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out
}

func (nb Neighbour) String() string {
	return fmt.Sprintf("%s lladdr %s dev %s %s", nb.Addr, nb.MAC, nb.Iface, nb.State)
}
