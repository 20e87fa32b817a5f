package dataplane

// Control methods of interfaces, addresses, routes, neighbours and KNI
// addresses. Each takes d.ctl, validates, applies the change to a copy of
// the model, builds the snapshot and commits (change.go); workers pick the
// snapshot up at their next burst without stopping.

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/route"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/internal/addrmap"
)

// publishLocked builds the snapshot of the model as it is and publishes
// it (at start-up; changes go through change).
func (d *Dataplane) publishLocked() error {
	s, err := d.buildSnapshot(d.modelLocked())
	if err != nil {
		return err
	}
	d.snap.Store(s)
	return nil
}

// buildSnapshot builds the worker snapshot of model m; it changes nothing.
func (d *Dataplane) buildSnapshot(m model) (*snapshot, error) {
	s := &snapshot{
		ifaces:    slices.Clone(m.ifaces),
		portIface: make([]uint16, len(d.ports)),
		vlans:     make([]map[uint16]uint16, len(d.ports)),
		fwd4:      d.opts.Forward4,
		fwd6:      d.opts.Forward6,
		kniOn:     make([]bool, len(d.ports)),
	}
	for i, ps := range d.ports {
		s.vlans[i] = map[uint16]uint16{}
		s.kniOn[i] = ps.KNI != nil
	}
	routes := slices.Clone(m.routes)
	local, kniAddrs := map[netip.Addr]uint16{}, map[netip.Addr]struct{}{}
	for _, ifc := range m.ifaces {
		if ifc == nil {
			continue
		}
		if ifc.Kind == KindPort {
			s.portIface[ifc.Port] = ifc.Index
		} else {
			s.vlans[ifc.Port][ifc.VID] = ifc.Index
		}
		for _, p := range ifc.Addrs {
			local[p.Addr()] = ifc.Index
			if p.Bits() < p.Addr().BitLen() {
				routes = append(routes, route.Route{Dst: p.Masked(), Iface: ifc.Index, Src: p.Addr(),
					Scope: route.ScopeLink, Connected: true})
			}
		}
	}
	for _, a := range m.kniAddrs {
		kniAddrs[a] = struct{}{}
	}
	var err error
	if s.local, err = addrmap.Build(local); err != nil {
		return nil, fmt.Errorf("dataplane: interface addresses: %w", err)
	}
	if s.kniAddrs, err = addrmap.Build(kniAddrs); err != nil {
		return nil, fmt.Errorf("dataplane: kni addresses: %w", err)
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
	t, err := route.New(dedupConnected(shadowLearnt(routes)))
	if err != nil {
		return nil, err
	}
	s.routes = t
	return s, nil
}

// shadowLearnt drops the routes learnt from the kernel whose prefix has a
// static or connected route: what the operator configured always wins.
func shadowLearnt(rs []route.Route) []route.Route {
	own := map[netip.Prefix]bool{}
	for _, r := range rs {
		if !r.Learnt {
			own[r.Dst] = true
		}
	}
	return slices.DeleteFunc(rs, func(r route.Route) bool { return r.Learnt && own[r.Dst] })
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

// IfaceName returns the name of interface index i ("" if none).
func (d *Dataplane) IfaceName(i uint16) string {
	if ifc := d.snap.Load().iface(i); ifc != nil {
		return ifc.Name
	}
	return ""
}

// AddVLAN creates the 802.1Q sub-interface name on portName with vid.
func (d *Dataplane) AddVLAN(name, portName string, vid uint16) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	if err := d.change(func(m *model) error { return addVLANOn(m, name, portName, vid) }); err != nil {
		return err
	}
	d.applied("vlan added", zap.String("vlan", name), zap.String("port", portName), zap.Uint16("id", vid))
	return nil
}

// addVLANOn adds the VLAN to m.
func addVLANOn(m *model, name, portName string, vid uint16) error {
	if vid == 0 || vid > 4094 {
		return fmt.Errorf("vlan %s: id %d out of range: use 1-4094: %w", name, vid, ErrInvalid)
	}
	if name == "" {
		return fmt.Errorf("vlan on %s id %d: name missing: %w", portName, vid, ErrInvalid)
	}
	if m.iface(name) != nil {
		return fmt.Errorf("vlan %s: interface %w", name, ErrExists)
	}
	parent := m.iface(portName)
	if parent == nil || parent.Kind != KindPort {
		return fmt.Errorf("vlan %s: port %s %w: name an existing port", name, portName, ErrNotFound)
	}
	for _, ifc := range m.ifaces {
		if ifc != nil && ifc.Kind == KindVLAN && ifc.Port == parent.Port && ifc.VID == vid {
			return fmt.Errorf("vlan %s: id %d on %s is already %s: %w", name, vid, portName, ifc.Name, ErrExists)
		}
	}
	if len(m.ifaces) >= 1<<16-1 {
		return fmt.Errorf("vlan %s: too many interfaces: %w", name, ErrInvalid)
	}
	m.ifaces = append(m.ifaces, &Iface{Index: uint16(len(m.ifaces)), Name: name, Kind: KindVLAN, Port: parent.Port,
		VID: vid, MAC: parent.MAC, MTU: parent.MTU})
	return nil
}

// DelVLAN removes a VLAN sub-interface with its addresses, routes and
// neighbours. It refuses while one of its addresses is a service's virtual
// or local address or another interface's route source.
func (d *Dataplane) DelVLAN(name string) error { return d.delVLAN(name, false) }

// DelVLANForce is DelVLAN without the refusal: the services keep their
// addresses, routes sourced from its addresses go with it.
func (d *Dataplane) DelVLANForce(name string) error { return d.delVLAN(name, true) }

func (d *Dataplane) delVLAN(name string, force bool) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	var index uint16
	var left []string
	err := d.change(func(m *model) (err error) {
		index, left, err = d.delVLANOn(m, name, force)
		return err
	})
	if err != nil {
		return err
	}
	d.neigh.flushIface(index)
	d.applied("vlan deleted", zap.String("vlan", name), zap.Bool("force", force), zap.Strings("left_without_address", left))
	return nil
}

// delVLANOn removes the VLAN from m; it returns its index and, with force,
// the users left without an address.
func (d *Dataplane) delVLANOn(m *model, name string, force bool) (uint16, []string, error) {
	ifc := m.iface(name)
	if ifc == nil || ifc.Kind != KindVLAN {
		return 0, nil, fmt.Errorf("vlan %s: %w", name, ErrNotFound)
	}
	var gone []netip.Addr
	for _, p := range ifc.Addrs {
		gone = append(gone, p.Addr())
	}
	// Indexes are stable: the slot stays, empty.
	m.ifaces[ifc.Index] = nil
	m.routes = slices.DeleteFunc(m.routes, func(r route.Route) bool { return r.Iface == ifc.Index })
	left, err := refuseOrForce("vlan "+name, m, d.addrUses(m, gone), force)
	return ifc.Index, left, err
}

// ParseIfaceAddr parses an interface address as dpip gives it: ADDR,
// ADDR/LEN, or for IPv6 link-local addresses ADDR%ZONE[/LEN], where the
// zone must name dev (it is the interface; the stored address is the one
// given, on dev). A bare address is a host prefix.
func ParseIfaceAddr(s, dev string) (netip.Prefix, error) {
	addr, bits, hasBits := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("addr %q: not an address or address/prefix-length: %w", s, ErrInvalid)
	}
	if a, err = zoneFree("addr "+s, a, dev); err != nil {
		return netip.Prefix{}, err
	}
	n := a.BitLen()
	if hasBits {
		p, err := netip.ParsePrefix(a.String() + "/" + bits)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("addr %q: prefix length %q: use 0-%d: %w", s, bits, n, ErrInvalid)
		}
		return p, nil
	}
	return netip.PrefixFrom(a, n), nil
}

// AddAddr adds an address with its prefix length to interface ifname.
func (d *Dataplane) AddAddr(p netip.Prefix, ifname string) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	err := d.change(func(m *model) error { return addAddrOn(m, p, ifname) })
	if err != nil {
		if !strings.HasPrefix(err.Error(), "addr ") {
			err = fmt.Errorf("addr %s dev %s: %w", p, ifname, err)
		}
		return err
	}
	d.applied("address added", zap.Stringer("addr", p), zap.String("dev", ifname))
	return nil
}

// addAddrOn adds the address to ifname in m.
func addAddrOn(m *model, p netip.Prefix, ifname string) error {
	if !p.IsValid() || p.Addr().Zone() != "" || p.Addr().IsUnspecified() || p.Addr().IsMulticast() {
		return fmt.Errorf("addr %s: not a unicast address/prefix: %w", p, ErrInvalid)
	}
	if p.Addr().Is4In6() {
		return fmt.Errorf("addr %s: an IPv4-mapped IPv6 address: give it as IPv4 (%s): %w", p, p.Addr().Unmap(), ErrInvalid)
	}
	ifc := m.iface(ifname)
	if ifc == nil {
		return fmt.Errorf("addr %s dev %s: interface %w", p, ifname, ErrNotFound)
	}
	for _, other := range m.ifaces {
		if other == nil {
			continue
		}
		for _, q := range other.Addrs {
			if q.Addr() == p.Addr() {
				return fmt.Errorf("addr %s: already on %s: %w", p.Addr(), other.Name, ErrExists)
			}
		}
	}
	if p.Bits() < p.Addr().BitLen() && m.subnetOwner(p.Masked()) == nil {
		for _, r := range m.routes {
			if r.Dst == p.Masked() && r.Metric == 0 && !r.Learnt { // a learnt one is hidden by it
				return fmt.Errorf("addr %s dev %s: its subnet's connected route would duplicate the static route %s: "+
					"delete the route first (dpip route del %s) or add the address as /%d: %w",
					p, ifname, routeName(r), r.Dst, p.Addr().BitLen(), ErrExists)
			}
		}
	}
	m.setAddrs(ifc, append(slices.Clone(ifc.Addrs), p))
	return nil
}

// DelAddr removes an address from interface ifname. It refuses while the
// address is a service's virtual or local address, a static route's source
// or the only subnet reaching a static route's gateway; with force it
// deletes anyway, and the dependent static routes with it.
func (d *Dataplane) DelAddr(a netip.Addr, ifname string, force bool) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	a = a.Unmap()
	var left []string
	err := d.change(func(m *model) (err error) {
		left, err = d.delAddrOn(m, a, ifname, force)
		return err
	})
	if err != nil {
		return err
	}
	d.applied("address deleted", zap.Stringer("addr", a), zap.String("dev", ifname), zap.Bool("force", force),
		zap.Strings("left_without_address", left))
	return nil
}

// delAddrOn removes the address from ifname in m.
func (d *Dataplane) delAddrOn(m *model, a netip.Addr, ifname string, force bool) ([]string, error) {
	ifc := m.iface(ifname)
	if ifc == nil {
		return nil, fmt.Errorf("addr %s dev %s: interface %w", a, ifname, ErrNotFound)
	}
	i := slices.IndexFunc(ifc.Addrs, func(p netip.Prefix) bool { return p.Addr() == a })
	if i < 0 {
		return nil, fmt.Errorf("addr %s dev %s: address %w", a, ifname, ErrNotFound)
	}
	m.setAddrs(ifc, slices.Delete(slices.Clone(ifc.Addrs), i, i+1))
	return refuseOrForce(fmt.Sprintf("addr %s dev %s", a, ifname), m, d.addrUses(m, []netip.Addr{a}), force)
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
	// NextHops makes a multipath route (instead of Gateway and Iface):
	// flows are spread over them by a hash of their 5-tuple.
	NextHops []NextHopSpec
}

// NextHopSpec is one path of a multipath route.
type NextHopSpec struct {
	Gateway netip.Addr
	Iface   string
	Weight  uint16 // 1-256, 0 means 1
}

// AddRoute adds a static route. The gateway must be on a connected subnet
// of the interface; the interface may be omitted when the gateway says it.
func (d *Dataplane) AddRoute(rs RouteSpec) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	var r route.Route
	err := d.change(func(m *model) (err error) {
		r, err = addRouteOn(m, rs)
		return err
	})
	if err != nil {
		if !strings.HasPrefix(err.Error(), "route ") {
			err = fmt.Errorf("route %s: %w", rs.Dst, err)
		}
		return err
	}
	d.applied("route added", zap.String("route", routeName(r)), zap.String("dev", d.IfaceName(r.Iface)), zap.Uint32("metric", r.Metric))
	return nil
}

// addRouteOn adds the static route to m.
func addRouteOn(m *model, rs RouteSpec) (route.Route, error) {
	r, err := resolveRoute(m, rs)
	if err != nil {
		return r, err
	}
	for _, o := range m.routes {
		if o.Dst == r.Dst && o.Metric == r.Metric && !o.Learnt {
			return r, fmt.Errorf("route %s metric %d: %w", r.Dst, r.Metric, ErrExists)
		}
	}
	if r.Metric == 0 {
		if ifc := m.subnetOwner(r.Dst); ifc != nil {
			return r, fmt.Errorf("route %s metric 0: is the connected route of %s's address: give another metric: %w",
				r.Dst, ifc.Name, ErrExists)
		}
	}
	m.routes = append(m.routes, r)
	return r, nil
}

func resolveRoute(m *model, rs RouteSpec) (route.Route, error) {
	if len(rs.NextHops) > 0 {
		return resolveMultipath(m, rs)
	}
	if !rs.Dst.IsValid() {
		return route.Route{}, fmt.Errorf("route: destination missing: %w", ErrInvalid)
	}
	if rs.Dst.Addr().Zone() != "" {
		return route.Route{}, fmt.Errorf("route %s: a destination prefix has no zone: name the interface with dev: %w", rs.Dst, ErrInvalid)
	}
	r := route.Route{Dst: rs.Dst.Masked(), Src: rs.Src.Unmap(), Metric: rs.Metric, Scope: route.ScopeLink}
	if rs.Gateway.IsValid() {
		gw, err := zoneFree(fmt.Sprintf("route %s via %s", r.Dst, rs.Gateway), rs.Gateway.Unmap(), orZone(rs.Iface, rs.Gateway))
		if err != nil {
			return r, err
		}
		if rs.Iface == "" {
			rs.Iface = rs.Gateway.Zone()
		}
		r.Gateway = gw
		if r.Gateway.Is4() != r.Dst.Addr().Is4() {
			return r, fmt.Errorf("route %s via %s: address families differ: %w", r.Dst, r.Gateway, ErrInvalid)
		}
		r.Scope = route.ScopeGlobal
	}
	if r.Src.IsValid() && r.Src.Zone() != "" {
		return r, fmt.Errorf("route %s src %s: a source address has no zone: drop it: %w", r.Dst, r.Src, ErrInvalid)
	}
	var ifc *Iface
	if rs.Iface != "" {
		ifc = m.iface(rs.Iface)
		if ifc == nil {
			return r, fmt.Errorf("route %s dev %s: interface %w", r.Dst, rs.Iface, ErrNotFound)
		}
	}
	if r.Gateway.IsValid() {
		var want uint16
		if ifc != nil {
			want = ifc.Index
		}
		gi := m.connected(r.Gateway, want)
		if gi == nil {
			return r, fmt.Errorf("route %s via %s: gateway is not on a connected subnet%s: add an address in its subnet first: %w",
				r.Dst, r.Gateway, onDev(rs.Iface), ErrInvalid)
		}
		ifc = gi
	}
	if ifc == nil {
		return r, fmt.Errorf("route %s: give a gateway (via) or an interface (dev): %w", r.Dst, ErrInvalid)
	}
	r.Iface = ifc.Index
	return r, nil
}

// orZone is the interface a zoned gateway must name: dev, or its own zone
// when no dev was given.
func orZone(dev string, gw netip.Addr) string {
	if dev != "" {
		return dev
	}
	return gw.Zone()
}

func onDev(name string) string {
	if name == "" {
		return ""
	}
	return " of " + name
}

// DelRoute deletes the static route to dst (with that gateway if given).
func (d *Dataplane) DelRoute(dst netip.Prefix, gw netip.Addr) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	dst = dst.Masked()
	gw = gw.Unmap().WithZone("")
	err := d.change(func(m *model) error { return delRouteOn(m, dst, gw) })
	if err != nil {
		return err
	}
	d.applied("route deleted", zap.Stringer("route", dst), zap.Stringer("via", gw))
	return nil
}

// delRouteOn deletes the static route to dst (through gw if valid) from m.
func delRouteOn(m *model, dst netip.Prefix, gw netip.Addr) error {
	dst, gw = dst.Masked(), gw.Unmap().WithZone("")
	i := slices.IndexFunc(m.routes, func(r route.Route) bool {
		return r.Dst == dst && !r.Learnt && (!gw.IsValid() || r.HasGateway(gw))
	})
	if i < 0 {
		return fmt.Errorf("route %s: %w (connected routes go with their address)", dst, ErrNotFound)
	}
	m.routes = slices.Delete(m.routes, i, i+1)
	return nil
}

// RouteInfo is a route for listings.
type RouteInfo struct {
	route.Route
	IfaceName string
	// NextHopIfaces names the interfaces of a multipath route's next hops.
	NextHopIfaces []string
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
		ri := RouteInfo{Route: r, IfaceName: name}
		for _, nh := range r.NextHops {
			n := ""
			if ifc := s.iface(nh.Iface); ifc != nil {
				n = ifc.Name
			}
			ri.NextHopIfaces = append(ri.NextHopIfaces, n)
		}
		out = append(out, ri)
	}
	return out
}

// AddNeigh installs a permanent neighbour entry.
func (d *Dataplane) AddNeigh(a netip.Addr, mac header.MAC, ifname string) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	m := d.currentModel()
	ifc := m.iface(ifname)
	if ifc == nil {
		return fmt.Errorf("neigh %s dev %s: interface %w", a, ifname, ErrNotFound)
	}
	if !a.IsValid() || a.IsMulticast() || a.IsUnspecified() || mac.IsMulticast() {
		return fmt.Errorf("neigh %s lladdr %s: need a unicast address and MAC: %w", a, mac, ErrInvalid)
	}
	a, err := zoneFree("neigh "+a.String(), a.Unmap(), ifname)
	if err != nil {
		return err
	}
	d.neigh.addStatic(a, mac, ifc.Index)
	d.applied("neighbour added", zap.Stringer("addr", a), zap.Stringer("lladdr", mac), zap.String("dev", ifname))
	return nil
}

// DelNeigh removes a neighbour entry.
func (d *Dataplane) DelNeigh(a netip.Addr) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	if !d.neigh.del(a.Unmap().WithZone("")) {
		return fmt.Errorf("neigh %s: %w", a, ErrNotFound)
	}
	d.applied("neighbour deleted", zap.Stringer("addr", a))
	return nil
}

// Neighbours lists the neighbour table.
func (d *Dataplane) Neighbours() []Neighbour {
	return d.neigh.list(d.clock(), d.IfaceName)
}

// SetKNIAddrs tells the dataplane which addresses the kernel holds behind
// the KNI devices: packets to them go to the kernel, never forwarded.
func (d *Dataplane) SetKNIAddrs(addrs []netip.Addr) {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	err := d.change(func(m *model) error {
		m.kniAddrs = slices.Clone(addrs)
		sort.Slice(m.kniAddrs, func(i, j int) bool { return m.kniAddrs[i].Less(m.kniAddrs[j]) })
		return nil
	})
	if err != nil {
		d.log.Error("KNI addresses not applied", zap.Error(err))
		return
	}
	d.applied("KNI addresses set", zap.Int("count", len(addrs)))
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
	// XStats are the port's extended counters (port.XStatsReader; none
	// for drivers without them or when the driver could not read them).
	XStats []port.XStat
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
			if xr, ok := ps.Port.(port.XStatsReader); ok {
				if xs, err := xr.XStats(); err == nil {
					li.XStats = xs
				} else {
					d.log.Warn("reading extended counters", zap.String("port", ps.Port.Name()), zap.Error(err))
				}
			}
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
