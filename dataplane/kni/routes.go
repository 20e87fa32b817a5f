package kni

// The route watcher: routes a routing daemon (BIRD, FRR, or an operator
// with ip route) installs in the kernel's main table through the KNI
// interfaces are what the dataplane should forward by — the default route,
// real-server subnets, ECMP next hops. WatchRoutes follows the kernel's
// route notifications and, after each burst of them, lists the main table
// again and hands the whole set of KNI routes to the caller: the kernel's
// table stays the one source of truth, so a missed or reordered
// notification cannot leave a stale route behind. Like WatchAddrs, a failed
// subscription is re-established and the table read again.
//
// Kept: unicast routes of the main table, not installed by the kernel
// itself (proto kernel: the connected routes of the KNI addresses), whose
// next hops leave through a watched interface (other next hops are dropped;
// a route left without any is skipped). IPv6 link-local and multicast
// prefixes are never kept. Next hops are sorted (interface, gateway).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Route is a kernel route through KNI interfaces.
type Route struct {
	Dst      netip.Prefix
	Metric   uint32 // the kernel's priority
	NextHops []NextHop
	Proto    int // the installer (unix.RTPROT_*: boot for ip route, 12 BIRD, 186/188 FRR's BGP/OSPF)
}

// NextHop is one path of a Route.
type NextHop struct {
	Gateway netip.Addr // invalid: on-link
	Ifindex int
	Weight  uint16 // 1-256
}

func (r Route) String() string {
	s := fmt.Sprintf("%s metric %d", r.Dst, r.Metric)
	for _, nh := range r.NextHops {
		s += fmt.Sprintf(" nexthop via %v ifindex %d weight %d", nh.Gateway, nh.Ifindex, nh.Weight)
	}
	return s
}

// WatchRoutes calls update with the kernel's routes through the given
// interfaces every time they change, starting with the current set, until
// ctx ends. Subscription failures are reported to o.OnError and the watch
// restarts with a fresh listing.
func WatchRoutes(ctx context.Context, ifindexes []int, update func([]Route), o WatchOptions) error {
	_, err := watchRoutes(ctx, ifindexes, update, o)
	return err
}

func watchRoutes(ctx context.Context, ifindexes []int, update func([]Route), o WatchOptions) (*routeWatch, error) {
	want := o.prepare(ifindexes)
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("kni: watch routes: network namespace: %w", err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("kni: watch routes: netlink: %w", err)
	}
	w := &routeWatch{want: want, update: update, ns: ns, h: h}
	sub, err := w.subscribe()
	if err != nil {
		h.Close()
		ns.Close()
		return nil, fmt.Errorf("kni: watch routes: %w", err)
	}
	w.errc = sub.errc
	go func() {
		defer ns.Close()
		defer h.Close()
		keepFollowing(ctx, o, "route", sub, w.subscribe, w.follow)
	}()
	return w, nil
}

type routeWatch struct {
	want   map[int]bool
	update func([]Route)
	ns     netns.NsHandle
	h      *netlink.Handle
	last   []Route
	sent   bool
	errc   chan error // the first subscription's (tests inject failures)
}

// subscribe starts a subscription and reads the whole table, reporting
// it whether it changed or not.
func (w *routeWatch) subscribe() (subscription[netlink.RouteUpdate], error) {
	s := subscription[netlink.RouteUpdate]{ch: make(chan netlink.RouteUpdate, 256), done: make(chan struct{}), errc: make(chan error, 1)}
	err := netlink.RouteSubscribeWithOptions(s.ch, s.done, netlink.RouteSubscribeOptions{
		Namespace: &w.ns,
		ErrorCallback: func(err error) {
			select {
			case s.errc <- err:
			default:
			}
		},
	})
	if err != nil {
		return s, err
	}
	w.sent = false
	if err := w.relist(); err != nil {
		close(s.done)
		return s, err
	}
	return s, nil
}

// follow re-lists the table after each burst of notifications until the
// subscription fails or ctx ends.
func (w *routeWatch) follow(ctx context.Context, s subscription[netlink.RouteUpdate]) error {
	ch := s.ch
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-s.errc:
			return err
		case _, ok := <-ch:
			if !ok {
				return errors.New("subscription closed")
			}
			for drained := false; !drained; { // coalesce a burst
				select {
				case _, ok := <-ch:
					if !ok {
						return errors.New("subscription closed")
					}
				default:
					drained = true
				}
			}
			if err := w.relist(); err != nil {
				return err
			}
		}
	}
}

// relist reads the main table and reports the KNI routes if they changed.
func (w *routeWatch) relist() error {
	rs, err := w.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	out := KNIRoutes(rs, w.want)
	if w.sent && slices.EqualFunc(out, w.last, routeEqual) {
		return nil
	}
	w.last, w.sent = out, true
	w.update(out)
	return nil
}

func routeEqual(a, b Route) bool {
	return a.Dst == b.Dst && a.Metric == b.Metric && a.Proto == b.Proto && slices.Equal(a.NextHops, b.NextHops)
}

// KNIRoutes selects and converts the routes through the interfaces in
// want (see the file comment), sorted by prefix and metric.
func KNIRoutes(rs []netlink.Route, want map[int]bool) []Route {
	var out []Route
	for _, r := range rs {
		if r.Type != unix.RTN_UNICAST || r.Protocol == unix.RTPROT_KERNEL || (r.Table != 0 && r.Table != unix.RT_TABLE_MAIN) {
			continue
		}
		fam := r.Family
		var dst netip.Prefix
		if r.Dst != nil {
			a, ok := netip.AddrFromSlice(r.Dst.IP)
			if !ok {
				continue
			}
			ones, _ := r.Dst.Mask.Size()
			if a.Is4In6() || len(r.Dst.IP) == net.IPv4len {
				a = a.Unmap()
			}
			dst = netip.PrefixFrom(a, ones).Masked()
		} else if fam == unix.AF_INET6 {
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		} else {
			dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		}
		if !dst.IsValid() || dst.Addr().IsLinkLocalUnicast() || dst.Addr().IsMulticast() {
			continue
		}
		kr := Route{Dst: dst, Metric: uint32(r.Priority), Proto: int(r.Protocol)}
		add := func(gw net.IP, ifindex, hops int) {
			if !want[ifindex] {
				return
			}
			nh := NextHop{Ifindex: ifindex, Weight: uint16(min(hops+1, 256))}
			if g, ok := netip.AddrFromSlice(gw); ok && !g.IsUnspecified() {
				nh.Gateway = g.Unmap()
			}
			kr.NextHops = append(kr.NextHops, nh)
		}
		if len(r.MultiPath) > 0 {
			for _, nh := range r.MultiPath {
				add(nh.Gw, nh.LinkIndex, nh.Hops)
			}
		} else {
			add(r.Gw, r.LinkIndex, 0)
		}
		if len(kr.NextHops) == 0 {
			continue
		}
		out = append(out, kr)
	}
	slices.SortFunc(out, func(a, b Route) int {
		if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
			return c
		}
		if a.Dst.Bits() != b.Dst.Bits() {
			return a.Dst.Bits() - b.Dst.Bits()
		}
		return int(a.Metric) - int(b.Metric)
	})
	// a kernel that lists an ECMP route as several routes with one next
	// hop each (IPv6 on some kernels): one multipath route
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && merged[n-1].Dst == r.Dst && merged[n-1].Metric == r.Metric {
			for _, nh := range r.NextHops {
				if !slices.Contains(merged[n-1].NextHops, nh) {
					merged[n-1].NextHops = append(merged[n-1].NextHops, nh)
				}
			}
			continue
		}
		merged = append(merged, r)
	}
	// next hops in a fixed order, whatever order the daemon installed
	// them in: the dataplane's split of the hash space stays the same
	for _, r := range merged {
		slices.SortFunc(r.NextHops, func(a, b NextHop) int {
			if a.Ifindex != b.Ifindex {
				return a.Ifindex - b.Ifindex
			}
			return a.Gateway.Compare(b.Gateway)
		})
	}
	return merged
}
