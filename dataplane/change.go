package dataplane

// The one mutation path. Every control change — VLANs, addresses, routes,
// neighbours, KNI addresses, services, destinations, local addresses —
// runs under Dataplane.ctl, so changes apply one at a time in the order
// they arrive, whoever calls (the API server, the daemon at start-up, the
// KNI address watcher). The API server reaches the service model only
// through the Dataplane's methods: the ipvs.Manager is an unexported field,
// so no caller can skip the interface checks, the steering or the log.
//
// A change to the interface model is built on a copy: the change is
// applied to the copy, the worker snapshot is built from it (route.New can
// still refuse, e.g. a connected route equal to a static one), and only
// then the copy replaces the model and the snapshot is published — one
// atomic store that workers pick up at their next burst. On any error the
// model and the snapshot are those from before. The ipvs.Manager does the
// same with its table. Side effects outside both models (n-tuple steering
// rules) run after the commit and are reported, never left half done.
// Each applied change is logged once, at Info, with its object.
//
// A mutex rather than a management goroutine: callers need the result
// synchronously, the lock is never taken on the packet path, and it gives
// the same one-at-a-time order with less machinery. Lock order: ctl, then
// mu (which guards the model fields and the status strings).

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/dataplane/route"
	"github.com/gvs-lb/gvs/ipvs"
)

// model is what the control side changes: interfaces with their
// addresses, static routes and the kernel's KNI addresses.
type model struct {
	ifaces   []*Iface // index → iface; [0] nil; an *Iface is never written through, only replaced
	routes   []route.Route
	kniAddrs []netip.Addr
}

func (d *Dataplane) modelLocked() model {
	return model{ifaces: d.ifaces, routes: d.routes, kniAddrs: d.kniAddrs}
}

// currentModel returns the model (for reads; it must not be written).
func (d *Dataplane) currentModel() model {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.modelLocked()
}

func (m model) clone() model {
	return model{ifaces: slices.Clone(m.ifaces), routes: slices.Clone(m.routes), kniAddrs: slices.Clone(m.kniAddrs)}
}

func (m *model) iface(name string) *Iface {
	for _, ifc := range m.ifaces {
		if ifc != nil && ifc.Name == name {
			return ifc
		}
	}
	return nil
}

// setAddrs replaces ifc's addresses (copy on write).
func (m *model) setAddrs(ifc *Iface, addrs []netip.Prefix) {
	n := *ifc
	n.Addrs = addrs
	m.ifaces[ifc.Index] = &n
}

// change applies f to a copy of the model, builds the worker snapshot from
// the copy and commits both only if everything succeeded. The caller holds
// d.ctl.
func (d *Dataplane) change(f func(m *model) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.modelLocked().clone()
	if err := f(&m); err != nil {
		return err
	}
	s, err := d.buildSnapshot(m)
	if err != nil {
		return err
	}
	d.ifaces, d.routes, d.kniAddrs = m.ifaces, m.routes, m.kniAddrs
	d.snap.Store(s)
	return nil
}

// applied logs a committed change, once.
func (d *Dataplane) applied(what string, fields ...zap.Field) {
	d.log.Info("control: "+what, fields...)
}

// addrUse is one user of an address that deleting it would break.
type addrUse struct {
	what  string // "local address of service TCP 10.1.0.100:80"
	fix   string // the command that removes the user
	route int    // index into model.routes of a dependent static route, or -1
}

// addrUses lists the users of the addresses gone when m (a candidate in
// which they are removed) replaces the model: services whose virtual or
// local address it is, static routes with it as their source, and static
// routes whose gateway no remaining address's subnet reaches.
func (d *Dataplane) addrUses(m *model, gone []netip.Addr) []addrUse {
	var uses []addrUse
	for _, svc := range d.ipvs.Table().Services {
		k := svc.Spec.Key
		flag := "-t"
		if k.Proto == ipvs.UDP {
			flag = "-u"
		}
		vip := netip.AddrPortFrom(k.Addr, k.Port).String()
		if slices.Contains(gone, k.Addr) {
			uses = append(uses, addrUse{what: "virtual address of service " + k.String(),
				fix: "ipvsadm -D " + flag + " " + vip, route: -1})
		}
		for _, la := range svc.LAddrs {
			if slices.Contains(gone, la.Addr) {
				uses = append(uses, addrUse{what: "local address of service " + k.String(),
					fix: "ipvsadm --del-laddr -z " + la.Addr.String() + " " + flag + " " + vip + " -F " + la.Iface, route: -1})
			}
		}
	}
	for i, r := range m.routes {
		if r.Learnt {
			continue // the kernel's: the route watcher replaces them
		}
		switch {
		case r.Src.IsValid() && slices.Contains(gone, r.Src):
			uses = append(uses, addrUse{what: "source of route " + routeName(r), fix: "dpip route del " + r.Dst.String(), route: i})
		case r.Gateway.IsValid() && m.connected(r.Gateway, r.Iface) == nil && d.snapConnected(r.Gateway, r.Iface):
			uses = append(uses, addrUse{what: "only subnet reaching the gateway of route " + routeName(r),
				fix: "dpip route del " + r.Dst.String(), route: i})
		default:
			for _, nh := range r.NextHops[min(1, len(r.NextHops)):] { // a multipath route's other gateways
				if nh.Gateway.IsValid() && m.connected(nh.Gateway, nh.Iface) == nil && d.snapConnected(nh.Gateway, nh.Iface) {
					uses = append(uses, addrUse{what: "only subnet reaching the gateway " + nh.Gateway.String() + " of route " + r.Dst.String(),
						fix: "dpip route del " + r.Dst.String(), route: i})
					break
				}
			}
		}
	}
	return uses
}

// snapConnected reports whether the published model reaches gw on a
// connected subnet of interface ifIndex.
func (d *Dataplane) snapConnected(gw netip.Addr, ifIndex uint16) bool {
	m := d.modelLocked()
	return m.connected(gw, ifIndex) != nil
}

// connected returns the interface whose address subnet holds a (only
// interface ifIndex when it is not 0), or nil.
func (m *model) connected(a netip.Addr, ifIndex uint16) *Iface {
	for _, ifc := range m.ifaces {
		if ifc == nil || (ifIndex != 0 && ifc.Index != ifIndex) {
			continue
		}
		for _, p := range ifc.Addrs {
			if p.Bits() < p.Addr().BitLen() && p.Contains(a) {
				return ifc
			}
		}
	}
	return nil
}

// subnetOwner returns the interface with an address whose connected route
// is dst, or nil.
func (m *model) subnetOwner(dst netip.Prefix) *Iface {
	for _, ifc := range m.ifaces {
		if ifc == nil {
			continue
		}
		for _, p := range ifc.Addrs {
			if p.Bits() < p.Addr().BitLen() && p.Masked() == dst {
				return ifc
			}
		}
	}
	return nil
}

func routeName(r route.Route) string {
	if r.Gateway.IsValid() {
		return r.Dst.String() + " via " + r.Gateway.String()
	}
	return r.Dst.String()
}

// refuseOrForce turns the users of an address into the refusal of
// object (naming the first user and its fix), or, with force, removes the
// dependent static routes from m and returns what stays broken for the
// log.
func refuseOrForce(object string, m *model, uses []addrUse, force bool) ([]string, error) {
	if len(uses) == 0 {
		return nil, nil
	}
	if !force {
		u := uses[0]
		more := ""
		if len(uses) > 1 {
			more = fmt.Sprintf(" (and %d more user(s))", len(uses)-1)
		}
		return nil, fmt.Errorf("%s: in use as the %s%s: remove that first (%s) or add force: %w",
			object, u.what, more, u.fix, ErrInUse)
	}
	var left []string
	var drop []int
	for _, u := range uses {
		if u.route >= 0 {
			drop = append(drop, u.route)
		} else {
			left = append(left, u.what)
		}
	}
	slices.Sort(drop)
	drop = slices.Compact(drop)
	for i := len(drop) - 1; i >= 0; i-- {
		m.routes = slices.Delete(m.routes, drop[i], drop[i]+1)
	}
	return left, nil
}

// ErrInUse is returned when an object to delete is still used by another
// (the message names it and the fix).
var ErrInUse = errors.New("in use")

// zoneFree checks that a has no zone, or one naming dev (the interface the
// call gives anyway), and returns it without the zone: a zone is an
// interface, not part of the address.
func zoneFree(object string, a netip.Addr, dev string) (netip.Addr, error) {
	z := a.Zone()
	if z == "" {
		return a, nil
	}
	if !a.Is6() || !(a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast()) {
		return a, fmt.Errorf("%s: zone %%%s on an address that is not link-local: drop the zone: %w", object, z, ErrInvalid)
	}
	if dev == "" || z != dev {
		return a, fmt.Errorf("%s: zone %%%s differs from dev %q: the zone is the interface, give dev %s: %w", object, z, dev, z, ErrInvalid)
	}
	return a.WithZone(""), nil
}
