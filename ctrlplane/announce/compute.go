// Package announce decides which of this node's prefixes the routers should
// send traffic to, and tells them through routing protocols: OSPF through a
// BIRD 2 daemon beside the control plane (BIRD), BGP through an embedded
// GoBGP speaker (BGP).
//
// Compute is the rule, a pure function: a VIP (/32 or /128) is announced
// only while the dataplane answers, the node is not draining, and its
// services exist in the dataplane with at least one real server that passes
// its health checks and has a weight above 0 there (every service of the
// VIP, or one of them, as announce.require says). The sorry server does not
// count: a node that can only serve the sorry page withdraws so that the
// routers prefer nodes with healthy real servers. Local addresses (and the
// extra prefixes other parts hand in) are announced while the dataplane
// answers, draining or not: the replies of the connections a draining node
// keeps serving come back to them. A hold (the session sync's start-up
// bulk transfer) withholds the own local addresses with the VIPs: a node
// that returns must hold the connections a backup node carried for it
// before the replies to its addresses come back to it.
//
// A backup local address (a peer node's, held in case it dies) is a
// candidate of its own kind, announced like a local address but as a
// backup Route: the speakers give it a worse metric (BIRD: backup_cost; BGP:
// AS-path prepends and a higher MED), so the routers deliver its traffic to
// the owner while the owner announces it, and to this node once the owner's
// routes are gone (OSPF dead interval, BGP hold time). A prefix that is a
// node's own local address in one service and a backup in another is its
// own.
//
// The Manager (manager.go) evaluates the rule on events and on a timer,
// and makes every Speaker's announced set equal to the result.
package announce

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/gvs-lb/gvs/ctrlplane/config"
	"github.com/gvs-lb/gvs/ctrlplane/reconcile"
)

// Kinds of prefixes.
const (
	KindVIP          = "vip"
	KindLocalAddress = "local_address"
	// KindBackupLocalAddress is a peer's local address held as a backup.
	KindBackupLocalAddress = "backup_local_address"
	KindExtra              = "extra"
)

// Input is what the rule looks at.
type Input struct {
	Services []config.Service
	// Health says whether a real server passes its checks (nil: all do).
	Health reconcile.HealthView
	// Actual is what the dataplane holds; nil: the dataplane does not answer.
	Actual reconcile.State
	// Draining withdraws the VIPs.
	Draining bool
	// Hold, non-empty, withholds the VIPs and this node's own local
	// addresses for that reason (e.g. the session sync's start-up bulk
	// transfer is not done yet); backup local addresses stay.
	Hold string
	// Require is "all" (every service of a VIP must serve) or "any".
	Require string
	// LocalAddresses adds the services' local addresses.
	LocalAddresses bool
	// Extra prefixes are announced like local addresses.
	Extra []netip.Prefix
}

// Candidate is one prefix and the verdict on it.
type Candidate struct {
	Prefix   netip.Prefix `json:"prefix"`
	Kind     string       `json:"kind"`
	Announce bool         `json:"announce"`
	// Reason says why it is not announced.
	Reason string `json:"reason,omitempty"`
}

// Route is a prefix a speaker announces. A Backup route is announced with
// a worse metric than the owner's, so the routers use it only once the
// owner's route is gone.
type Route struct {
	Prefix netip.Prefix `json:"prefix"`
	Backup bool         `json:"backup,omitempty"`
}

// Host returns a as a /32 or /128.
func Host(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen())
}

// Compute applies the rule. The candidates are every VIP and, with
// LocalAddresses, every local address of the services, plus Extra; they
// come sorted by prefix, each once.
func Compute(in Input) []Candidate {
	type vip struct {
		ok, bad []string // services that can serve, and why others cannot
	}
	vips := map[netip.Addr]*vip{}
	var order []netip.Addr
	laddrs := map[netip.Prefix]bool{} // prefix → this node's own (not only a backup)
	for _, s := range in.Services {
		v := vips[s.Key.Addr]
		if v == nil {
			v = &vip{}
			vips[s.Key.Addr] = v
			order = append(order, s.Key.Addr)
		}
		if why := serves(s, in.Actual, in.Health); why != "" {
			v.bad = append(v.bad, why)
		} else {
			v.ok = append(v.ok, s.Key.String())
		}
		if in.LocalAddresses {
			for _, la := range s.LAddrs {
				p := Host(la.Addr)
				laddrs[p] = laddrs[p] || !la.Backup
			}
		}
	}
	var out []Candidate
	for _, a := range order {
		v := vips[a]
		c := Candidate{Prefix: Host(a), Kind: KindVIP}
		switch {
		case in.Actual == nil:
			c.Reason = "dataplane unreachable"
		case in.Draining:
			c.Reason = "draining"
		case in.Hold != "":
			c.Reason = in.Hold
		case in.Require == "any" && len(v.ok) == 0:
			c.Reason = strings.Join(v.bad, "; ")
		case in.Require != "any" && len(v.bad) > 0:
			c.Reason = strings.Join(v.bad, "; ")
		default:
			c.Announce = true
		}
		out = append(out, c)
	}
	add := func(p netip.Prefix, kind string) {
		c := Candidate{Prefix: p, Kind: kind, Announce: in.Actual != nil}
		switch {
		case !c.Announce:
			c.Reason = "dataplane unreachable"
		case kind == KindLocalAddress && in.Hold != "":
			// a node that returns takes the replies to its own local
			// addresses back from the backup node only once it holds
			// the connections that use them (the bulk transfer)
			c.Announce, c.Reason = false, in.Hold
		}
		out = append(out, c)
	}
	for p, own := range laddrs {
		if _, isVIP := vips[p.Addr()]; isVIP {
			continue
		}
		if own {
			add(p, KindLocalAddress)
		} else {
			add(p, KindBackupLocalAddress)
		}
	}
	for _, p := range in.Extra {
		p = p.Masked()
		if !slices.ContainsFunc(out, func(c Candidate) bool { return c.Prefix == p }) {
			add(p, KindExtra)
		}
	}
	slices.SortFunc(out, func(a, b Candidate) int { return comparePrefix(a.Prefix, b.Prefix) })
	return out
}

// serves returns "" when the service exists in the dataplane with a
// configured real server that is up and has a weight above 0 there, else
// why not.
func serves(s config.Service, actual reconcile.State, h reconcile.HealthView) string {
	if actual == nil {
		return "dataplane unreachable"
	}
	a := actual[s.Key]
	if a == nil {
		return fmt.Sprintf("%s is not in the dataplane", s.Key)
	}
	for _, r := range s.Reals {
		if r.Weight <= 0 || (h != nil && !h.Up(s.Key, r.Addr)) {
			continue
		}
		if d, ok := a.Dests[r.Addr]; ok && d.Weight > 0 {
			return ""
		}
	}
	return fmt.Sprintf("%s has no real server up", s.Key)
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// Wanted returns the prefixes to announce.
func Wanted(cs []Candidate) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range cs {
		if c.Announce {
			out = append(out, c.Prefix)
		}
	}
	return out
}

// Routes returns the routes to announce (sorted by prefix as cs is):
// backup local addresses as backup routes.
func Routes(cs []Candidate) []Route {
	var out []Route
	for _, c := range cs {
		if c.Announce {
			out = append(out, Route{Prefix: c.Prefix, Backup: c.Kind == KindBackupLocalAddress})
		}
	}
	return out
}

// Prefixes returns the routes' prefixes.
func Prefixes(rs []Route) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Prefix)
	}
	return out
}
