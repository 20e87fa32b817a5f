package dataplane

// Control methods: the one mutation path used by the API server and the
// config loader. Each validates, changes the model under d.mu and publishes
// a new snapshot; workers pick it up at their next burst without stopping.

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/route"
	"github.com/gvs-lb/gvs/header"
)

// publishLocked rebuilds the worker snapshot from the model.
func (d *Dataplane) publishLocked() error {
	s := &snapshot{
		ifaces:    slices.Clone(d.ifaces),
		portIface: make([]uint16, len(d.ports)),
		vlans:     make([]map[uint16]uint16, len(d.ports)),
		local:     map[netip.Addr]uint16{},
		kniAddrs:  map[netip.Addr]struct{}{},
		fwd4:      d.opts.Forward4,
		fwd6:      d.opts.Forward6,
		kniOn:     make([]bool, len(d.ports)),
	}
	for i, ps := range d.ports {
		s.vlans[i] = map[uint16]uint16{}
		s.kniOn[i] = ps.KNI != nil
	}
	routes := slices.Clone(d.routes)
	for _, ifc := range d.ifaces {
		if ifc == nil {
			continue
		}
		if ifc.Kind == KindPort {
			s.portIface[ifc.Port] = ifc.Index
		} else {
			s.vlans[ifc.Port][ifc.VID] = ifc.Index
		}
		for _, p := range ifc.Addrs {
			s.local[p.Addr()] = ifc.Index
			if p.Bits() < p.Addr().BitLen() {
				routes = append(routes, route.Route{Dst: p.Masked(), Iface: ifc.Index, Src: p.Addr(),
					Scope: route.ScopeLink, Connected: true})
			}
		}
	}
	for _, a := range d.kniAddrs {
		s.kniAddrs[a] = struct{}{}
	}
	for i, ifc := range s.ifaces {
		if ifc == nil {
			continue
		}
		n := *ifc
		n.bcast4 = nil
		for _, p := range ifc.Addrs {
			if p.Addr().Is4() && p.Bits() < 31 {
				n.bcast4 = append(n.bcast4, lastAddr4(p))
			}
		}
		s.ifaces[i] = &n
	}
	t, err := route.New(dedupConnected(routes))
	if err != nil {
		return err
	}
	s.routes = t
	d.snap.Store(s)
	return nil
}

// dedupConnected keeps one connected route per prefix (two addresses in one
// subnet yield one route).
func dedupConnected(rs []route.Route) []route.Route {
	seen := map[netip.Prefix]bool{}
	out := rs[:0]
	for _, r := range rs {
		if r.Connected {
			if seen[r.Dst] {
				continue
			}
			seen[r.Dst] = true
		}
		out = append(out, r)
	}
	return out
}

func (d *Dataplane) ifaceByName(name string) *Iface {
	for _, ifc := range d.ifaces {
		if ifc != nil && ifc.Name == name {
			return ifc
		}
	}
	return nil
}

// IfaceName returns the name of interface index i ("" if none).
func (d *Dataplane) IfaceName(i uint16) string {
	if ifc := d.snap.Load().iface(i); ifc != nil {
		return ifc.Name
	}
	return ""
}

// AddVLAN creates the 802.1Q sub-interface name on portName with vid.
func (d *Dataplane) AddVLAN(name, portName string, vid uint16) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if vid == 0 || vid > 4094 {
		return fmt.Errorf("vlan %s: id %d out of range: use 1-4094: %w", name, vid, ErrInvalid)
	}
	if d.ifaceByName(name) != nil {
		return fmt.Errorf("vlan %s: interface %w", name, ErrExists)
	}
	parent := d.ifaceByName(portName)
	if parent == nil || parent.Kind != KindPort {
		return fmt.Errorf("vlan %s: port %s %w: name an existing port", name, portName, ErrNotFound)
	}
	for _, ifc := range d.ifaces {
		if ifc != nil && ifc.Kind == KindVLAN && ifc.Port == parent.Port && ifc.VID == vid {
			return fmt.Errorf("vlan %s: id %d on %s is already %s: %w", name, vid, portName, ifc.Name, ErrExists)
		}
	}
	if len(d.ifaces) >= 1<<16-1 {
		return fmt.Errorf("vlan %s: too many interfaces: %w", name, ErrInvalid)
	}
	mtu := parent.MTU
	d.ifaces = append(d.ifaces, &Iface{Index: uint16(len(d.ifaces)), Name: name, Kind: KindVLAN, Port: parent.Port,
		VID: vid, MAC: parent.MAC, MTU: mtu})
	return d.publishLocked()
}

// DelVLAN removes a VLAN sub-interface, its addresses, routes and neighbours.
func (d *Dataplane) DelVLAN(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ifc := d.ifaceByName(name)
	if ifc == nil || ifc.Kind != KindVLAN {
		return fmt.Errorf("vlan %s: %w", name, ErrNotFound)
	}
	// Indexes are stable: the slot stays, empty.
	d.ifaces[ifc.Index] = nil
	d.routes = slices.DeleteFunc(d.routes, func(r route.Route) bool { return r.Iface == ifc.Index })
	d.neigh.flushIface(ifc.Index)
	return d.publishLocked()
}

// AddAddr adds an address with its prefix length to interface ifname.
func (d *Dataplane) AddAddr(p netip.Prefix, ifname string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !p.IsValid() || p.Addr().Zone() != "" || p.Addr().IsUnspecified() || p.Addr().IsMulticast() {
		return fmt.Errorf("addr %s: not a unicast address/prefix: %w", p, ErrInvalid)
	}
	p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits())
	ifc := d.ifaceByName(ifname)
	if ifc == nil {
		return fmt.Errorf("addr %s dev %s: interface %w", p, ifname, ErrNotFound)
	}
	for _, other := range d.ifaces {
		if other == nil {
			continue
		}
		for _, q := range other.Addrs {
			if q.Addr() == p.Addr() {
				return fmt.Errorf("addr %s: already on %s: %w", p.Addr(), other.Name, ErrExists)
			}
		}
	}
	n := *ifc
	n.Addrs = append(slices.Clone(ifc.Addrs), p)
	d.ifaces[ifc.Index] = &n
	return d.publishLocked()
}

// DelAddr removes an address from interface ifname.
func (d *Dataplane) DelAddr(a netip.Addr, ifname string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ifc := d.ifaceByName(ifname)
	if ifc == nil {
		return fmt.Errorf("addr %s dev %s: interface %w", a, ifname, ErrNotFound)
	}
	i := slices.IndexFunc(ifc.Addrs, func(p netip.Prefix) bool { return p.Addr() == a.Unmap() })
	if i < 0 {
		return fmt.Errorf("addr %s dev %s: address %w", a, ifname, ErrNotFound)
	}
	n := *ifc
	n.Addrs = slices.Delete(slices.Clone(ifc.Addrs), i, i+1)
	d.ifaces[ifc.Index] = &n
	return d.publishLocked()
}

// Addr is an address on an interface, for listings.
type Addr struct {
	Prefix netip.Prefix
	Iface  string
}

// Addrs lists all addresses (of one interface if ifname is not empty).
func (d *Dataplane) Addrs(ifname string) []Addr {
	s := d.snap.Load()
	var out []Addr
	for _, ifc := range s.ifaces {
		if ifc == nil || (ifname != "" && ifc.Name != ifname) {
			continue
		}
		for _, p := range ifc.Addrs {
			out = append(out, Addr{Prefix: p, Iface: ifc.Name})
		}
	}
	return out
}

// RouteSpec is a route as the API gives it.
type RouteSpec struct {
	Dst     netip.Prefix
	Gateway netip.Addr
	Iface   string
	Src     netip.Addr
	Metric  uint32
}

// AddRoute adds a static route. The gateway must be on a connected subnet
// of the interface; the interface may be omitted when the gateway says it.
func (d *Dataplane) AddRoute(rs RouteSpec) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, err := d.resolveRouteLocked(rs)
	if err != nil {
		return err
	}
	for _, o := range d.routes {
		if o.Dst == r.Dst && o.Metric == r.Metric {
			return fmt.Errorf("route %s metric %d: %w", r.Dst, r.Metric, ErrExists)
		}
	}
	d.routes = append(d.routes, r)
	if err := d.publishLocked(); err != nil {
		d.routes = d.routes[:len(d.routes)-1]
		return fmt.Errorf("route %s: %w", r.Dst, err)
	}
	return nil
}

func (d *Dataplane) resolveRouteLocked(rs RouteSpec) (route.Route, error) {
	if !rs.Dst.IsValid() {
		return route.Route{}, fmt.Errorf("route: destination missing: %w", ErrInvalid)
	}
	r := route.Route{Dst: rs.Dst.Masked(), Gateway: rs.Gateway.Unmap(), Src: rs.Src, Metric: rs.Metric, Scope: route.ScopeLink}
	if r.Gateway.IsValid() {
		if r.Gateway.Is4() != r.Dst.Addr().Is4() {
			return r, fmt.Errorf("route %s via %s: address families differ: %w", r.Dst, r.Gateway, ErrInvalid)
		}
		r.Scope = route.ScopeGlobal
	}
	var ifc *Iface
	if rs.Iface != "" {
		ifc = d.ifaceByName(rs.Iface)
		if ifc == nil {
			return r, fmt.Errorf("route %s dev %s: interface %w", r.Dst, rs.Iface, ErrNotFound)
		}
	}
	if r.Gateway.IsValid() {
		s := d.snap.Load()
		gr := s.routes.Lookup(r.Gateway)
		if gr == nil || !gr.Connected || (ifc != nil && gr.Iface != ifc.Index) {
			return r, fmt.Errorf("route %s via %s: gateway is not on a connected subnet%s: add an address in its subnet first: %w",
				r.Dst, r.Gateway, onDev(rs.Iface), ErrInvalid)
		}
		if ifc == nil {
			ifc = s.iface(gr.Iface)
		}
	}
	if ifc == nil {
		return r, fmt.Errorf("route %s: give a gateway (via) or an interface (dev): %w", r.Dst, ErrInvalid)
	}
	r.Iface = ifc.Index
	return r, nil
}

func onDev(name string) string {
	if name == "" {
		return ""
	}
	return " of " + name
}

// DelRoute deletes the static route to dst (with that gateway if given).
func (d *Dataplane) DelRoute(dst netip.Prefix, gw netip.Addr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	dst = dst.Masked()
	i := slices.IndexFunc(d.routes, func(r route.Route) bool {
		return r.Dst == dst && (!gw.IsValid() || r.Gateway == gw.Unmap())
	})
	if i < 0 {
		return fmt.Errorf("route %s: %w (connected routes go with their address)", dst, ErrNotFound)
	}
	d.routes = slices.Delete(d.routes, i, i+1)
	return d.publishLocked()
}

// RouteInfo is a route for listings.
type RouteInfo struct {
	route.Route
	IfaceName string
}

// Routes lists all routes, connected ones included.
func (d *Dataplane) Routes() []RouteInfo {
	s := d.snap.Load()
	var out []RouteInfo
	for _, r := range s.routes.Routes() {
		name := ""
		if ifc := s.iface(r.Iface); ifc != nil {
			name = ifc.Name
		}
		out = append(out, RouteInfo{Route: r, IfaceName: name})
	}
	return out
}

// AddNeigh installs a permanent neighbour entry.
func (d *Dataplane) AddNeigh(a netip.Addr, mac header.MAC, ifname string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ifc := d.ifaceByName(ifname)
	if ifc == nil {
		return fmt.Errorf("neigh %s dev %s: interface %w", a, ifname, ErrNotFound)
	}
	if !a.IsValid() || a.IsMulticast() || a.IsUnspecified() || mac.IsMulticast() {
		return fmt.Errorf("neigh %s lladdr %s: need a unicast address and MAC: %w", a, mac, ErrInvalid)
	}
	d.neigh.addStatic(a.Unmap(), mac, ifc.Index)
	return nil
}

// DelNeigh removes a neighbour entry.
func (d *Dataplane) DelNeigh(a netip.Addr) error {
	if !d.neigh.del(a.Unmap()) {
		return fmt.Errorf("neigh %s: %w", a, ErrNotFound)
	}
	return nil
}

// Neighbours lists the neighbour table.
func (d *Dataplane) Neighbours() []Neighbour {
	return d.neigh.list(d.clock(), d.IfaceName)
}

// SetKNIAddrs tells the dataplane which addresses the kernel holds behind
// the KNI devices: packets to them go to the kernel, never forwarded.
func (d *Dataplane) SetKNIAddrs(addrs []netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.kniAddrs = slices.Clone(addrs)
	sort.Slice(d.kniAddrs, func(i, j int) bool { return d.kniAddrs[i].Less(d.kniAddrs[j]) })
	if err := d.publishLocked(); err != nil {
		d.log.Error(err.Error())
	}
}

// KNIAddrs returns the addresses the kernel holds behind KNI.
func (d *Dataplane) KNIAddrs() []netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.kniAddrs)
}

// LinkInfo describes an interface for `dpip link show`.
type LinkInfo struct {
	Index   uint16
	Name    string
	Kind    IfaceKind
	Parent  string
	VID     uint16
	MAC     header.MAC
	MTU     int
	Up      bool
	Driver  string
	Queues  int
	KNI     string
	Stats   port.Stats
	HasStat bool
}

// Links lists ports and VLAN interfaces.
func (d *Dataplane) Links() []LinkInfo {
	s := d.snap.Load()
	var out []LinkInfo
	for _, ifc := range s.ifaces {
		if ifc == nil {
			continue
		}
		ps := d.ports[ifc.Port]
		li := LinkInfo{Index: ifc.Index, Name: ifc.Name, Kind: ifc.Kind, VID: ifc.VID, MAC: ifc.MAC, MTU: ifc.MTU,
			Up: ps.Port.LinkUp(), Driver: ps.Port.Driver(), Queues: ps.Port.NumQueues()}
		if ifc.Kind == KindVLAN {
			li.Parent = ps.Port.Name()
		} else {
			li.Stats = ps.Port.Stats()
			li.HasStat = true
			if ps.KNI != nil {
				li.KNI = ps.KNI.Name()
			}
		}
		out = append(out, li)
	}
	return out
}

// WorkerInfo is one worker's counters.
type WorkerInfo struct {
	ID       int
	Core     int
	Counters [NumCounters]uint64
	Loop     LoopStats
}

// Workers returns every worker's counters.
func (d *Dataplane) Workers() []WorkerInfo {
	out := make([]WorkerInfo, len(d.workers))
	for i, w := range d.workers {
		out[i].ID, out[i].Core = w.id, w.core
		out[i].Counters, out[i].Loop = w.Stats()
	}
	return out
}

// KNIDrops returns frames lost between the master and the KNI devices.
func (d *Dataplane) KNIDrops() (toKernel, fromKernel uint64) {
	return d.kniWriteDrops.Load(), d.kniReadDrops.Load()
}

// Uptime returns how long the dataplane has existed.
func (d *Dataplane) Uptime() time.Duration { return time.Since(d.start) }

// Options returns the options the dataplane runs with.
func (d *Dataplane) Options() Options { return d.opts }
