package pktgen

// Ports: pktgen reuses GVS's own port drivers as its I/O layer, so the
// generator has the same AF_XDP code path (UMEM frames, need_wakeup, one
// kick per burst) as the system it measures. A port is opened inside the
// network namespace of its device on a thread switched into it; the driver
// keeps working from any goroutine afterwards.

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/afpacket"
	"github.com/gvs-lb/gvs/dataplane/port/afxdp"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/internal/nsutil"
)

// PortSpec names a device for pktgen and how to drive it.
type PortSpec struct {
	// Netns is the network namespace of the device ("" for the current).
	Netns string
	// Dev is the kernel interface.
	Dev string
	// Driver is "afxdp" (default) or "afpacket".
	Driver string
	// Queues is the number of queues to open (default 1).
	Queues int
	// Frames per queue and ring sizes (0: driver defaults).
	Frames, Ring int
	// XDPMode for afxdp: "native", "generic" or "" (native, else generic).
	XDPMode string
}

// OpenPort opens s with its driver inside its namespace.
func OpenPort(s PortSpec) (port.Port, error) {
	if s.Queues <= 0 {
		s.Queues = 1
	}
	cfg := port.Config{Name: s.Dev, Device: s.Dev, Queues: s.Queues, FrameCount: s.Frames,
		RxRing: s.Ring, TxRing: s.Ring, XDPMode: s.XDPMode, ZeroCopy: "auto"}
	var p port.Port
	open := func() error {
		var err error
		switch s.Driver {
		case "", "afxdp":
			p, err = afxdp.Open(cfg)
		case "afpacket":
			// pktgen owns the device like a dataplane does: the kernel must
			// not also process (and answer) what arrives
			p, err = afpacket.Open(cfg)
		default:
			return fmt.Errorf("driver %q: use afxdp or afpacket", s.Driver)
		}
		return err
	}
	var err error
	if s.Netns == "" {
		err = open()
	} else {
		err = nsutil.Do(s.Netns, open)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s, err)
	}
	return p, nil
}

func (s PortSpec) String() string {
	if s.Netns == "" {
		return s.Dev
	}
	return s.Netns + "/" + s.Dev
}

// MACOf returns the MAC of a port as a header.MAC.
func MACOf(p port.Port) header.MAC {
	var m header.MAC
	copy(m[:], p.MAC())
	return m
}

// DevCounters are a kernel interface's packet counters.
type DevCounters struct {
	RxPackets, TxPackets, RxDropped, TxDropped uint64
}

// ReadDevCounters returns the kernel's counters of dev in namespace ns
// (netlink RTM_GETLINK, the numbers `ip -s link` shows).
func ReadDevCounters(ns, dev string) (DevCounters, error) {
	var c DevCounters
	read := func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer h.Close()
		l, err := h.LinkByName(dev)
		if err != nil {
			return err
		}
		st := l.Attrs().Statistics
		if st == nil {
			return fmt.Errorf("%s: no statistics", dev)
		}
		c = DevCounters{RxPackets: st.RxPackets, TxPackets: st.TxPackets, RxDropped: st.RxDropped, TxDropped: st.TxDropped}
		return nil
	}
	var err error
	if ns == "" {
		err = read()
	} else {
		err = nsutil.Do(ns, read)
	}
	if err != nil {
		return c, fmt.Errorf("counters of %s/%s: %w", ns, dev, err)
	}
	return c, nil
}

// ParseMAC parses aa:bb:cc:dd:ee:ff.
func ParseMAC(s string) (header.MAC, error) {
	var m header.MAC
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return m, fmt.Errorf("MAC %q: want aa:bb:cc:dd:ee:ff", s)
	}
	copy(m[:], hw)
	return m, nil
}
