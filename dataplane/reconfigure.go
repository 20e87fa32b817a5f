package dataplane

// Reconfigure applies a set of interface-model changes — VLANs, addresses,
// static routes and static neighbours — as one change: all of it or none.
// gvs-dataplane's reload turns the difference between two configuration
// files into one Reconfig, so a file that fails halfway changes nothing.

import (
	"fmt"
	"net/netip"

	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/header"
)

// VLANSpec is a VLAN sub-interface.
type VLANSpec struct {
	Name, Port string
	VID        uint16
}

// NeighSpec is a static neighbour.
type NeighSpec struct {
	Addr  netip.Addr
	MAC   header.MAC
	Iface string
}

// Reconfig lists changes in the order they apply: removals first (routes,
// addresses, VLANs, neighbours), then additions (VLANs, addresses, routes,
// neighbours). A removal never forces: an address a service still uses is
// refused as by DelAddr.
type Reconfig struct {
	DelRoutes []RouteSpec // Dst and Gateway identify the route
	DelAddrs  []Addr
	DelVLANs  []string
	DelNeighs []netip.Addr
	AddVLANs  []VLANSpec
	AddAddrs  []Addr
	AddRoutes []RouteSpec
	AddNeighs []NeighSpec
}

// Empty reports whether rc changes nothing.
func (rc Reconfig) Empty() bool {
	return len(rc.DelRoutes)+len(rc.DelAddrs)+len(rc.DelVLANs)+len(rc.DelNeighs)+
		len(rc.AddVLANs)+len(rc.AddAddrs)+len(rc.AddRoutes)+len(rc.AddNeighs) == 0
}

// Reconfigure applies rc on a copy of the model and commits it whole, or
// returns the first error and changes nothing.
func (d *Dataplane) Reconfigure(rc Reconfig) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	var flushed []uint16
	neighIdx := make([]uint16, len(rc.AddNeighs))
	err := d.change(func(m *model) error {
		for _, r := range rc.DelRoutes {
			if err := delRouteOn(m, r.Dst, r.Gateway); err != nil {
				return err
			}
		}
		for _, a := range rc.DelAddrs {
			if _, err := d.delAddrOn(m, a.Prefix.Addr().Unmap(), a.Iface, false); err != nil {
				return err
			}
		}
		for _, name := range rc.DelVLANs {
			idx, _, err := d.delVLANOn(m, name, false)
			if err != nil {
				return err
			}
			flushed = append(flushed, idx)
		}
		for _, v := range rc.AddVLANs {
			if err := addVLANOn(m, v.Name, v.Port, v.VID); err != nil {
				return err
			}
		}
		for _, a := range rc.AddAddrs {
			if err := addAddrOn(m, a.Prefix, a.Iface); err != nil {
				return fmt.Errorf("addr %s dev %s: %w", a.Prefix, a.Iface, err)
			}
		}
		for _, r := range rc.AddRoutes {
			if _, err := addRouteOn(m, r); err != nil {
				return err
			}
		}
		// neighbours live outside the model: checked against it here,
		// applied after the commit (they cannot fail then)
		for i, n := range rc.AddNeighs {
			ifc := m.iface(n.Iface)
			if ifc == nil {
				return fmt.Errorf("neigh %s dev %s: interface %w", n.Addr, n.Iface, ErrNotFound)
			}
			if !n.Addr.IsValid() || n.Addr.IsMulticast() || n.Addr.IsUnspecified() || n.MAC.IsMulticast() {
				return fmt.Errorf("neigh %s lladdr %s: need a unicast address and MAC: %w", n.Addr, n.MAC, ErrInvalid)
			}
			if _, err := zoneFree("neigh "+n.Addr.String(), n.Addr.Unmap(), n.Iface); err != nil {
				return err
			}
			neighIdx[i] = ifc.Index
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, idx := range flushed {
		d.neigh.flushIface(idx)
	}
	for _, a := range rc.DelNeighs {
		d.neigh.del(a.Unmap().WithZone(""))
	}
	for i, n := range rc.AddNeighs {
		d.neigh.addStatic(n.Addr.Unmap().WithZone(""), n.MAC, neighIdx[i])
	}
	d.applied("reconfigured", zap.Int("routes_deleted", len(rc.DelRoutes)), zap.Int("addrs_deleted", len(rc.DelAddrs)),
		zap.Int("vlans_deleted", len(rc.DelVLANs)), zap.Int("neighbours_deleted", len(rc.DelNeighs)),
		zap.Int("vlans_added", len(rc.AddVLANs)), zap.Int("addrs_added", len(rc.AddAddrs)),
		zap.Int("routes_added", len(rc.AddRoutes)), zap.Int("neighbours_added", len(rc.AddNeighs)))
	return nil
}
