package dataplane

// Multipath routes and the routes learnt from the kernel. A multipath
// route is resolved next hop by next hop as a single-gateway route is.
// Learnt routes mirror what a routing daemon (BIRD, FRR) installed in the
// kernel's table on a KNI interface (kni.learn_routes): the watcher hands
// the whole current set to SetLearntRoutes after every kernel change, and
// the set replaces the previous one. They live in the model beside the
// static routes, marked Learnt; dpip route add/del never touch them, and a
// static or connected route of the same prefix hides them (shadowLearnt).

import (
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/dataplane/route"
)

// resolveMultipath resolves a route with next hops: each must be reachable
// as the gateway of a single-path route would be.
func resolveMultipath(m *model, rs RouteSpec) (route.Route, error) {
	if rs.Gateway.IsValid() || rs.Iface != "" {
		return route.Route{}, fmt.Errorf("route %s: give either via/dev or nexthops, not both: %w", rs.Dst, ErrInvalid)
	}
	if len(rs.NextHops) > route.MaxNextHops {
		return route.Route{}, fmt.Errorf("route %s: %d next hops, at most %d: %w", rs.Dst, len(rs.NextHops), route.MaxNextHops, ErrInvalid)
	}
	var r route.Route
	for i, nh := range rs.NextHops {
		if nh.Weight > route.MaxWeight {
			return r, fmt.Errorf("route %s nexthop %d: weight %d: use 1-%d: %w", rs.Dst, i+1, nh.Weight, route.MaxWeight, ErrInvalid)
		}
		one := rs
		one.NextHops, one.Gateway, one.Iface = nil, nh.Gateway, nh.Iface
		p, err := resolveRoute(m, one)
		if err != nil {
			return r, err
		}
		if i == 0 {
			r = p
			r.NextHops = nil
		}
		if p.Scope == route.ScopeGlobal {
			r.Scope = route.ScopeGlobal
		}
		for _, o := range r.NextHops {
			if o.Gateway == p.Gateway && o.Iface == p.Iface {
				return r, fmt.Errorf("route %s: next hop %s given twice: drop one: %w", rs.Dst, routeNH(p), ErrInvalid)
			}
		}
		r.NextHops = append(r.NextHops, route.NextHop{Gateway: p.Gateway, Iface: p.Iface, Weight: nh.Weight})
	}
	if len(r.NextHops) == 1 {
		r.NextHops = nil // one next hop is a plain route
	}
	return r, nil
}

func routeNH(r route.Route) string {
	if r.Gateway.IsValid() {
		return "via " + r.Gateway.String()
	}
	return fmt.Sprintf("dev index %d", r.Iface)
}

// SetLearntRoutes replaces the routes learnt from the kernel with rs. A
// route that does not resolve (its gateway on no connected subnet of the
// dataplane, an unknown interface) is left out and reported in skipped;
// the others are installed. A learnt route never replaces a static or
// connected one of the same prefix.
func (d *Dataplane) SetLearntRoutes(rs []RouteSpec) (skipped []error, err error) {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	var n int
	err = d.change(func(m *model) error {
		m.routes = slices.DeleteFunc(m.routes, func(r route.Route) bool { return r.Learnt })
		seen := map[string]bool{}
		for _, spec := range rs {
			r, err := resolveRoute(m, spec)
			if err != nil {
				skipped = append(skipped, err)
				continue
			}
			key := fmt.Sprintf("%s/%d", r.Dst, r.Metric)
			if seen[key] {
				skipped = append(skipped, fmt.Errorf("route %s metric %d: learnt twice: %w", r.Dst, r.Metric, ErrExists))
				continue
			}
			seen[key] = true
			r.Learnt = true
			m.routes = append(m.routes, r)
			n++
		}
		return nil
	})
	if err != nil {
		return skipped, err
	}
	d.applied("learnt routes replaced", zap.Int("routes", n), zap.Int("skipped", len(skipped)))
	return skipped, nil
}
