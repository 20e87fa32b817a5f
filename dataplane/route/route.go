// Package route is GVS's routing table: longest-prefix match for IPv4 and
// IPv6 over immutable tables. The master builds a new Table for every change
// and publishes it atomically; workers look up without locks.
//
// Lookup walks the prefix lengths present in the table from longest to
// shortest and probes one hash map per length (at most 33 or 129 probes, in
// practice a handful): no allocation, and fast for the few hundred routes a
// load balancer carries.
package route

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
)

// Scope of a route.
type Scope uint8

const (
	// ScopeLink: the destination is on the link (connected route).
	ScopeLink Scope = iota
	// ScopeGlobal: the destination is reached through a gateway.
	ScopeGlobal
)

func (s Scope) String() string {
	if s == ScopeLink {
		return "link"
	}
	return "global"
}

// Route is one entry.
type Route struct {
	Dst     netip.Prefix // masked
	Gateway netip.Addr   // invalid for connected routes
	Iface   uint16       // outgoing interface index
	Src     netip.Addr   // preferred source (optional)
	Metric  uint32
	Scope   Scope
	// Connected marks routes derived from interface addresses.
	Connected bool
	// Learnt marks routes mirrored from the kernel's table on a KNI
	// interface (what a routing daemon installed there).
	Learnt bool
	// NextHops makes the route multipath when it has two or more entries
	// (see multipath.go); Gateway and Iface are then its first one's.
	NextHops []NextHop
}

// NextHop returns the address to resolve on the link for dst.
func (r *Route) NextHop(dst netip.Addr) netip.Addr {
	if r.Gateway.IsValid() {
		return r.Gateway
	}
	return dst
}

func (r Route) String() string {
	s := r.Dst.String()
	if r.Multipath() {
		return fmt.Sprintf("%s scope %s metric %d", s, r.Scope, r.Metric) +
			r.nextHopsString(func(i uint16) string { return "iface" + fmt.Sprint(i) })
	}
	if r.Gateway.IsValid() {
		s += " via " + r.Gateway.String()
	}
	return fmt.Sprintf("%s iface %d scope %s metric %d", s, r.Iface, r.Scope, r.Metric)
}

// Errors.
var (
	ErrExists   = errors.New("route exists")
	ErrNotFound = errors.New("no such route")
)

type family struct {
	lens  []int // prefix lengths present, longest first
	byLen map[int]map[netip.Addr]*Route
	// IPv4 tables keyed by the masked address as a number: hashing a
	// uint32 is several times cheaper than hashing a netip.Addr.
	v4 []v4Len
}

type v4Len struct {
	mask uint32
	m    map[uint32]*Route
}

func v4u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// Table is an immutable routing table. The zero value is empty.
type Table struct {
	v4, v6 family
	all    []Route
}

// New builds a table from routes; duplicates (same prefix and metric) are
// refused with ErrExists. For one prefix the route with the lowest metric
// wins the lookup.
func New(routes []Route) (*Table, error) {
	t := &Table{}
	seen := map[string]bool{}
	for _, r := range routes {
		r.Dst = r.Dst.Masked()
		if err := prepareMultipath(&r); err != nil {
			return nil, err
		}
		key := fmt.Sprintf("%s/%d", r.Dst, r.Metric)
		if seen[key] {
			return nil, fmt.Errorf("route %s metric %d: %w", r.Dst, r.Metric, ErrExists)
		}
		seen[key] = true
		t.all = append(t.all, r)
	}
	sort.SliceStable(t.all, func(i, j int) bool {
		a, b := t.all[i], t.all[j]
		if a.Dst.Addr().Is4() != b.Dst.Addr().Is4() {
			return a.Dst.Addr().Is4()
		}
		if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
			return c < 0
		}
		if a.Dst.Bits() != b.Dst.Bits() {
			return a.Dst.Bits() < b.Dst.Bits()
		}
		return a.Metric < b.Metric
	})
	for i := range t.all {
		r := &t.all[i]
		f := &t.v6
		if r.Dst.Addr().Is4() {
			f = &t.v4
		}
		if f.byLen == nil {
			f.byLen = map[int]map[netip.Addr]*Route{}
		}
		m := f.byLen[r.Dst.Bits()]
		if m == nil {
			m = map[netip.Addr]*Route{}
			f.byLen[r.Dst.Bits()] = m
			f.lens = append(f.lens, r.Dst.Bits())
		}
		if old, ok := m[r.Dst.Addr()]; !ok || r.Metric < old.Metric {
			m[r.Dst.Addr()] = r
		}
	}
	for _, f := range []*family{&t.v4, &t.v6} {
		slices.Sort(f.lens)
		slices.Reverse(f.lens)
	}
	for _, l := range t.v4.lens {
		e := v4Len{mask: ^uint32(0) << (32 - l), m: map[uint32]*Route{}}
		if l == 0 {
			e.mask = 0
		}
		for a, r := range t.v4.byLen[l] {
			e.m[v4u32(a)] = r
		}
		t.v4.v4 = append(t.v4.v4, e)
	}
	return t, nil
}

// Lookup returns the longest-prefix route for dst, or nil.
func (t *Table) Lookup(dst netip.Addr) *Route {
	if t == nil {
		return nil
	}
	f := &t.v6
	if dst.Is4() {
		a := v4u32(dst)
		for _, e := range t.v4.v4 {
			if r, ok := e.m[a&e.mask]; ok {
				return r
			}
		}
		return nil
	} else if dst.Is4In6() {
		return nil
	}
	for _, l := range f.lens {
		p, _ := dst.Prefix(l)
		if r, ok := f.byLen[l][p.Addr()]; ok {
			return r
		}
	}
	return nil
}

// Routes returns a copy of all routes, sorted.
func (t *Table) Routes() []Route {
	if t == nil {
		return nil
	}
	return slices.Clone(t.all)
}

// Add returns a new table with r added.
func (t *Table) Add(r Route) (*Table, error) {
	return New(append(t.Routes(), r))
}

// Delete returns a new table without the routes matching dst (and gateway
// — of any next hop — when valid, and connected-ness), or ErrNotFound.
func (t *Table) Delete(dst netip.Prefix, gw netip.Addr, connected bool) (*Table, error) {
	dst = dst.Masked()
	var keep []Route
	found := false
	for _, r := range t.Routes() {
		if r.Dst == dst && r.Connected == connected && (!gw.IsValid() || r.HasGateway(gw)) {
			found = true
			continue
		}
		keep = append(keep, r)
	}
	if !found {
		return nil, fmt.Errorf("route %s: %w", dst, ErrNotFound)
	}
	return New(keep)
}
