// Package kni provides the kernel side of GVS's exception path: one TAP
// device per port (named <port>.kni by default, with the port's MAC), through
// which management traffic, routing protocols and everything else the
// dataplane does not consume reaches the Linux stack, and through which the
// kernel's own packets leave by the port. It also watches the addresses the
// kernel holds on those devices, so the dataplane knows which destinations
// to hand over rather than forward.
package kni

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Device is an open TAP device.
type Device struct {
	name  string
	f     *os.File
	index int
}

// Open creates TAP device name with the given MAC and MTU. The device goes
// away when it is closed.
func Open(name string, mac net.HardwareAddr, mtu int) (*Device, error) {
	if len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("kni %s: name longer than %d bytes: choose a shorter kni name", name, unix.IFNAMSIZ-1)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("kni %s: open /dev/net/tun: %w (is the tun module loaded?)", name, err)
	}
	var req [unix.IFNAMSIZ + 64]byte
	copy(req[:], name)
	*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = unix.IFF_TAP | unix.IFF_NO_PI
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); e != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("kni %s: TUNSETIFF: %w", name, e)
	}
	d := &Device{name: name, f: os.NewFile(uintptr(fd), "/dev/net/tun:"+name)}
	link, err := netlink.LinkByName(name)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("kni %s: %w", name, err)
	}
	d.index = link.Attrs().Index
	if len(mac) == 6 {
		if err := netlink.LinkSetHardwareAddr(link, mac); err != nil {
			d.Close()
			return nil, fmt.Errorf("kni %s: set MAC %s: %w", name, mac, err)
		}
	}
	if mtu > 0 {
		if err := netlink.LinkSetMTU(link, mtu); err != nil {
			d.Close()
			return nil, fmt.Errorf("kni %s: set MTU %d: %w", name, mtu, err)
		}
	}
	return d, nil
}

// Name returns the device name.
func (d *Device) Name() string { return d.name }

// Index returns the kernel's interface index.
func (d *Device) Index() int { return d.index }

// Read reads one frame the kernel sent; it blocks (in Go's poller).
func (d *Device) Read(p []byte) (int, error) { return d.f.Read(p) }

// Write gives one frame to the kernel.
func (d *Device) Write(p []byte) (int, error) { return d.f.Write(p) }

// Close removes the device.
func (d *Device) Close() error { return d.f.Close() }

// WatchAddrs calls update with the addresses on the given interfaces every
// time they change, starting with the current set, until ctx ends.
func WatchAddrs(ctx context.Context, ifindexes []int, update func([]netip.Addr)) error {
	ch := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	errc := make(chan error, 1)
	err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case errc <- err:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("kni: watch addresses: %w", err)
	}
	want := map[int]bool{}
	for _, i := range ifindexes {
		want[i] = true
	}
	var mu sync.Mutex
	set := map[netip.Addr]int{}
	emit := func() {
		out := make([]netip.Addr, 0, len(set))
		for a := range set {
			out = append(out, a)
		}
		update(out)
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-ch:
				if !ok {
					return
				}
				if !want[u.LinkIndex] {
					continue
				}
				a, ok := netip.AddrFromSlice(u.LinkAddress.IP)
				if !ok {
					continue
				}
				a = a.Unmap()
				mu.Lock()
				if u.NewAddr {
					set[a] = u.LinkIndex
				} else {
					delete(set, a)
				}
				emit()
				mu.Unlock()
			}
		}
	}()
	return nil
}
