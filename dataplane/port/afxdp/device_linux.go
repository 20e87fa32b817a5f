//go:build linux

// What the driver needs to know about the kernel interface behind a port.
// Everything goes through netlink and ethtool, never /sys/class/net: sysfs
// shows the network namespace it was mounted in, not the one the port lives
// in, and tests (and labs) open ports inside throw-away namespaces.
package afxdp

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// device is a snapshot of the interface taken at Open.
type device struct {
	name     string
	ifindex  int
	mac      net.HardwareAddr
	mtu      int
	kind     string // netlink link type: veth, device, ...
	driver   string // ethtool driver name: veth, mlx5_core, ...
	rxQueues int
	txQueues int
}

func lookupDevice(h *netlink.Handle, name string) (device, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return device{}, fmt.Errorf("no such interface (check the name, and that GVS runs in the interface's network namespace)")
		}
		return device{}, err
	}
	a := l.Attrs()
	d := device{
		name:    name,
		ifindex: a.Index,
		mac:     append(net.HardwareAddr(nil), a.HardwareAddr...),
		mtu:     a.MTU,
		kind:    l.Type(),
	}
	// ETHTOOL_GCHANNELS gives the queues in use (what bind checks against);
	// the netlink counts are what was allocated, the fallback for devices
	// without channel support.
	d.driver, d.rxQueues, d.txQueues, err = ethtoolInfo(name)
	if err != nil || d.rxQueues == 0 {
		d.rxQueues, d.txQueues = a.NumRxQueues, a.NumTxQueues
	}
	if d.driver == "" {
		d.driver = d.kind
	}
	return d, nil
}

// queueFix says how to give dev n queues.
func (d device) queueFix(n int) string {
	if d.kind == "veth" || d.driver == "veth" {
		return fmt.Sprintf("create the veth with %d queues on both ends: ip link add name %s numrxqueues %d numtxqueues %d type veth peer name PEER numrxqueues %d numtxqueues %d", n, d.name, n, n, n, n)
	}
	return fmt.Sprintf("raise the channel count: ethtool -L %s combined %d", d.name, n)
}

// linkUp reports the carrier (IFF_LOWER_UP) of ifindex.
func linkUp(h *netlink.Handle, ifindex int) bool {
	l, err := h.LinkByIndex(ifindex)
	if err != nil {
		return false
	}
	a := l.Attrs()
	return a.RawFlags&unix.IFF_UP != 0 && a.RawFlags&unix.IFF_LOWER_UP != 0
}

// xdpAttached returns the id of the XDP program attached to ifindex, 0 if
// none.
func xdpAttached(h *netlink.Handle, ifindex int) uint32 {
	l, err := h.LinkByIndex(ifindex)
	if err != nil || l.Attrs().Xdp == nil || !l.Attrs().Xdp.Attached {
		return 0
	}
	return l.Attrs().Xdp.ProgId
}
