package dataplane

// Link settings a port driver applies to its device: `dpip link set dev
// PORT mtu N` and `promisc on|off`. Drivers that program the NIC
// themselves (the dpdk driver) offer them through the optional interfaces
// below; the kernel-device drivers (afxdp, afpacket) leave them to the
// kernel (ip link set), and are refused with that fix. The device is
// changed first; the interface model (the MTU the workers check against)
// follows through the one mutation path, and the device is set back if
// that fails.

import (
	"errors"
	"fmt"

	"go.uber.org/zap"
)

// portMTUSetter is a port that sets its device's MTU.
type portMTUSetter interface{ SetMTU(mtu int) error }

// portPromiscSetter is a port that switches its device's promiscuous mode.
type portPromiscSetter interface{ SetPromisc(on bool) error }

// minMTU is the smallest MTU IPv4 allows (RFC 791); IPv6 needs 1280 on
// links that carry it, which the operator decides.
const minMTU = 68

// linkPort returns the port interface name refers to.
func (d *Dataplane) linkPort(name, what string) (*Iface, PortSpec, error) {
	m := d.currentModel()
	ifc := m.iface(name)
	if ifc == nil {
		return nil, PortSpec{}, fmt.Errorf("link %s: %s: %w", name, what, ErrNotFound)
	}
	if ifc.Kind != KindPort {
		return nil, PortSpec{}, fmt.Errorf("link %s: %s: a VLAN interface takes its port's settings: set them on %s: %w",
			name, what, d.ports[ifc.Port].Port.Name(), ErrInvalid)
	}
	return ifc, d.ports[ifc.Port], nil
}

// SetLinkMTU sets the MTU of port name on its device and in the interface
// model; its VLAN interfaces above the new MTU come down to it (as
// Linux's VLAN devices do).
func (d *Dataplane) SetLinkMTU(name string, mtu int) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	ifc, ps, err := d.linkPort(name, fmt.Sprintf("set mtu %d", mtu))
	if err != nil {
		return err
	}
	if mtu < minMTU || mtu > 65535 {
		return fmt.Errorf("link %s: mtu %d out of range: use %d-65535 (the driver may allow less): %w", name, mtu, minMTU, ErrInvalid)
	}
	ms, ok := ps.Port.(portMTUSetter)
	if !ok {
		return fmt.Errorf("link %s: the %s driver does not set the MTU: set it on the kernel device (ip link set dev DEV mtu %d) and restart the dataplane: %w",
			name, ps.Port.Driver(), mtu, ErrInvalid)
	}
	old := ifc.MTU
	if err := ms.SetMTU(mtu); err != nil {
		return fmt.Errorf("link %s: set mtu %d: %v: %w", name, mtu, err, ErrInvalid)
	}
	err = d.change(func(m *model) error {
		for _, x := range m.ifaces {
			if x == nil || x.Port != ifc.Port || (x.Kind != KindPort && x.MTU <= mtu) {
				continue
			}
			n := *x
			n.MTU = mtu
			m.ifaces[x.Index] = &n
		}
		return nil
	})
	if err != nil {
		if rerr := ms.SetMTU(old); rerr != nil {
			err = errors.Join(err, fmt.Errorf("link %s: set the device back to mtu %d: %w", name, old, rerr))
		}
		return err
	}
	d.applied("link mtu set", zap.String("link", name), zap.Int("mtu", mtu), zap.Int("was", old))
	return nil
}

// SetLinkPromisc switches the promiscuous mode of port name's device. GVS
// turns it on at open (it answers for many addresses); off, the device
// only takes frames to its own MAC, broadcast and multicast.
func (d *Dataplane) SetLinkPromisc(name string, on bool) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	what := map[bool]string{true: "promisc on", false: "promisc off"}[on]
	_, ps, err := d.linkPort(name, what)
	if err != nil {
		return err
	}
	pr, ok := ps.Port.(portPromiscSetter)
	if !ok {
		return fmt.Errorf("link %s: the %s driver does not switch promiscuous mode: use ip link set dev DEV %s on the kernel device: %w",
			name, ps.Port.Driver(), what, ErrInvalid)
	}
	if err := pr.SetPromisc(on); err != nil {
		return fmt.Errorf("link %s: %s: %v: %w", name, what, err, ErrInvalid)
	}
	d.applied("link "+what, zap.String("link", name))
	return nil
}
