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
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
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

// WatchOptions tune WatchAddrs.
type WatchOptions struct {
	// OnError is told of every failure of the subscription (it is then
	// restarted); nil ignores them.
	OnError func(error)
	// Retry is the pause before re-subscribing (default 1s).
	Retry time.Duration
}

// WatchAddrs calls update with the addresses on the given interfaces every
// time they change, starting with the current set, until ctx ends. When
// the netlink subscription fails (a dropped socket, an overrun), it is
// re-established and the whole set read again, so no change is lost for
// good; each failure is reported to o.OnError.
func WatchAddrs(ctx context.Context, ifindexes []int, update func([]netip.Addr), o WatchOptions) error {
	_, err := watchAddrs(ctx, ifindexes, update, o)
	return err
}

func watchAddrs(ctx context.Context, ifindexes []int, update func([]netip.Addr), o WatchOptions) (*addrWatch, error) {
	want := o.prepare(ifindexes)
	// re-subscriptions run on other threads: pin them to the caller's
	// network namespace, where the KNI devices are
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("kni: watch addresses: network namespace: %w", err)
	}
	w := &addrWatch{want: want, update: update, ns: ns}
	s, err := w.subscribe()
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("kni: watch addresses: %w", err)
	}
	w.errc = s.errc
	go func() {
		defer w.ns.Close()
		keepFollowing(ctx, o, "address", s, w.subscribe, w.follow)
	}()
	return w, nil
}

// addrWatch is one watcher's state across subscriptions.
type addrWatch struct {
	want   map[int]bool
	update func([]netip.Addr)
	set    map[netip.Addr]int
	errc   chan error // the first subscription's (tests inject failures)
	ns     netns.NsHandle
}

// subscribe starts a subscription that lists the existing addresses
// first; the set is rebuilt from that listing.
func (w *addrWatch) subscribe() (subscription[netlink.AddrUpdate], error) {
	ch := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	errc := make(chan error, 1)
	err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{
		ListExisting: true,
		Namespace:    &w.ns,
		ErrorCallback: func(err error) {
			select {
			case errc <- err:
			default:
			}
		},
	})
	if err != nil {
		return subscription[netlink.AddrUpdate]{}, err
	}
	w.set = map[netip.Addr]int{}
	w.update(nil) // until the listing arrives, nothing is known
	return subscription[netlink.AddrUpdate]{ch: ch, done: done, errc: errc}, nil
}

// follow applies updates until the subscription fails or ctx ends.
func (w *addrWatch) follow(ctx context.Context, s subscription[netlink.AddrUpdate]) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-s.errc:
			return err
		case u, ok := <-s.ch:
			if !ok {
				return errors.New("subscription closed")
			}
			if !w.want[u.LinkIndex] {
				continue
			}
			a, ok := netip.AddrFromSlice(u.LinkAddress.IP)
			if !ok {
				continue
			}
			a = a.Unmap()
			if u.NewAddr {
				w.set[a] = u.LinkIndex
			} else {
				delete(w.set, a)
			}
			out := make([]netip.Addr, 0, len(w.set))
			for a := range w.set {
				out = append(out, a)
			}
			w.update(out)
		}
	}
}
