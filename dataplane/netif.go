package dataplane

import (
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/route"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/internal/addrmap"
)

// IfaceKind tells ports from VLAN sub-interfaces.
type IfaceKind uint8

const (
	KindPort IfaceKind = iota
	KindVLAN
)

func (k IfaceKind) String() string {
	if k == KindVLAN {
		return "vlan"
	}
	return "port"
}

// Iface is a logical interface of the dataplane: a port, or an 802.1Q
// sub-interface of a port. Index 0 is never used so that a zero index means
// "none".
type Iface struct {
	Index uint16
	Name  string
	Kind  IfaceKind
	Port  int    // index into Dataplane.ports
	VID   uint16 // VLAN id, KindVLAN only
	MAC   header.MAC
	MTU   int
	Addrs []netip.Prefix
	// bcast4 are the IPv4 subnet broadcast addresses of Addrs, computed
	// when the snapshot is built.
	bcast4 []netip.Addr
}

// snapshot is the immutable view of interfaces, addresses and routes that
// workers read. The master builds a new one for every change and publishes
// it with an atomic pointer swap; workers load it once per burst.
type snapshot struct {
	ifaces    []*Iface // by index; [0] is nil
	portIface []uint16 // port index → its untagged iface
	vlans     []map[uint16]uint16
	local     addrmap.Map[uint16]   // dataplane-owned address → iface
	kniAddrs  addrmap.Map[struct{}] // addresses the kernel owns behind KNI
	routes    *route.Table
	fwd4      bool
	fwd6      bool
	kniOn     []bool // per port
}

func (s *snapshot) iface(i uint16) *Iface {
	if int(i) >= len(s.ifaces) {
		return nil
	}
	return s.ifaces[i]
}

// ifaceFor returns the interface a frame belongs to: the port itself or the
// VLAN sub-interface with the frame's VID (0 if none is configured).
func (s *snapshot) ifaceFor(port int, vid uint16, tagged bool) uint16 {
	if !tagged {
		return s.portIface[port]
	}
	return s.vlans[port][vid]
}

// connectedOn reports whether a is inside a subnet of iface i.
func (s *snapshot) connectedOn(i uint16, a netip.Addr) bool {
	ifc := s.iface(i)
	if ifc == nil {
		return false
	}
	for _, p := range ifc.Addrs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// sourceFor picks the address of iface i to use as the source of packets
// the dataplane originates towards dst: one in dst's subnet if any, else the
// first of the family.
func (s *snapshot) sourceFor(i uint16, dst netip.Addr) (netip.Addr, bool) {
	ifc := s.iface(i)
	if ifc == nil {
		return netip.Addr{}, false
	}
	var first netip.Addr
	for _, p := range ifc.Addrs {
		if p.Addr().Is4() != dst.Is4() {
			continue
		}
		if p.Contains(dst) {
			return p.Addr(), true
		}
		if !first.IsValid() {
			first = p.Addr()
		}
	}
	if first.IsValid() {
		return first, true
	}
	// any local address of the family
	for _, ifc := range s.ifaces {
		if ifc == nil {
			continue
		}
		for _, p := range ifc.Addrs {
			if p.Addr().Is4() == dst.Is4() {
				return p.Addr(), true
			}
		}
	}
	return netip.Addr{}, false
}
