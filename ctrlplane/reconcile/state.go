// Package reconcile keeps the dataplane's services equal to the desired
// state: the configuration with the health checks' verdicts applied. The
// Reconciler is the control plane's only writer to the dataplane; config
// loads and reloads, health changes, dataplane restarts and periodic resyncs
// all end in the same step: list the dataplane's services (actual), compute
// the desired state, Diff the two and Apply only the difference. A service
// whose desired state equals its actual state gets no call at all, so its
// connections are never disturbed.
package reconcile

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/config"
)

// HealthView answers whether a real server passes its health checks.
type HealthView interface {
	Up(svc config.ServiceKey, addr netip.AddrPort) bool
}

// DestState is what the dataplane holds of a destination.
type DestState struct {
	Weight       int
	Upper, Lower uint32
	// Fwd is the forwarding method in the API's words: config.FwdFullNAT,
	// config.FwdRoute (lb_kind DR) or config.FwdTunnel (lb_kind TUN, with
	// its encapsulation in Tun).
	Fwd string
	Tun config.Tunnel
}

// ServiceState is what the dataplane holds of a service.
type ServiceState struct {
	Key    config.ServiceKey
	Sched  string
	Flags  []string              // sorted
	LAddrs map[netip.Addr]string // address → device ("" in desired: any)
	Dests  map[netip.AddrPort]DestState
	// MidFlow is the mh mid-flow option; Backup the backup local
	// addresses (a subset of LAddrs; nil when there are none).
	MidFlow bool
	Backup  map[netip.Addr]bool
	// Persistence as the API carries it: PersistTimeout seconds and
	// PersistPrefix (0: one client address) are 0 unless Persistent;
	// OnePacket is keepalived's ops.
	Persistent     bool
	PersistTimeout uint32
	PersistPrefix  int
	OnePacket      bool
	// Admission: the limits (new connections per second, 0: none), the
	// SYN proxy and the deny and allow lists (masked prefixes; nil when
	// empty). The lists are sets to the reconciler: their order does not
	// matter, only which entries are in them.
	ConnRateLimit, PerSourceLimit uint32
	SynProxy                      bool
	Deny, Allow                   map[netip.Prefix]bool
}

// State is a set of services.
type State map[config.ServiceKey]*ServiceState

// Desired computes the dataplane state the configuration asks for given the
// health verdicts (nil: all up):
//   - a real server that is up gets its configured weight;
//   - one that is down is quiesced (weight 0) with inhibit_on_failure, and
//     absent otherwise;
//   - the sorry server is present exactly while no real server is up with
//     a weight above 0.
func Desired(services []config.Service, h HealthView) State {
	st := State{}
	for _, s := range services {
		ss := &ServiceState{Key: s.Key, Sched: s.Sched, Flags: slices.Clone(s.SchedFlags),
			LAddrs: map[netip.Addr]string{}, Dests: map[netip.AddrPort]DestState{}}
		ss.MidFlow = s.MidFlow
		if s.PersistTimeout > 0 {
			ss.Persistent, ss.PersistTimeout, ss.PersistPrefix = true, uint32(s.PersistTimeout/time.Second), s.PersistPrefix
		}
		ss.OnePacket = s.OnePacket
		ss.ConnRateLimit, ss.PerSourceLimit, ss.SynProxy = s.ConnRateLimit, s.PerSourceLimit, s.SynProxy
		ss.Deny, ss.Allow = prefixSet(s.Deny), prefixSet(s.Allow)
		fwd := cmp.Or(s.Fwd, config.FwdFullNAT)
		for _, la := range s.LAddrs {
			ss.LAddrs[la.Addr] = la.Dev
			if la.Backup {
				ss.setBackup(la.Addr)
			}
		}
		serving := 0
		for _, r := range s.Reals {
			d := DestState{Weight: r.Weight, Upper: r.Upper, Lower: r.Lower, Fwd: fwd, Tun: s.Tun}
			switch {
			case h == nil || h.Up(s.Key, r.Addr):
				if r.Weight > 0 {
					serving++
				}
			case r.Inhibit:
				d.Weight = 0
			default:
				continue
			}
			ss.Dests[r.Addr] = d
		}
		if serving == 0 && s.Sorry != nil {
			ss.Dests[s.Sorry.Addr] = DestState{Weight: s.Sorry.Weight, Upper: s.Sorry.Upper, Lower: s.Sorry.Lower, Fwd: fwd, Tun: s.Tun}
		}
		st[s.Key] = ss
	}
	return st
}

// Actual converts a ListServices answer.
func Actual(r *pb.ListServicesResponse) (State, error) {
	st := State{}
	for _, s := range r.GetServices() {
		k, err := keyOf(s.GetKey())
		if err != nil {
			return nil, err
		}
		ss := &ServiceState{Key: k, Sched: s.Sched, Flags: slices.Sorted(slices.Values(s.SchedFlags)),
			LAddrs: map[netip.Addr]string{}, Dests: map[netip.AddrPort]DestState{}}
		for _, la := range s.Laddrs {
			a, err := netip.ParseAddr(la.Addr)
			if err != nil {
				return nil, fmt.Errorf("dataplane listed local address %q of %s: %w", la.Addr, k, err)
			}
			ss.LAddrs[a.Unmap()] = la.Dev
			if la.Backup {
				ss.setBackup(a.Unmap())
			}
		}
		ss.MidFlow = s.MidFlow
		if s.Persistent {
			ss.Persistent, ss.PersistTimeout, ss.PersistPrefix = true, s.PersistentTimeout, int(s.PersistentPrefix)
			if ss.PersistPrefix == k.Addr.BitLen() {
				ss.PersistPrefix = 0 // ipvsadm -M 255.255.255.255: one client, as 0
			}
		}
		ss.OnePacket = s.OnePacket
		ss.ConnRateLimit, ss.PerSourceLimit, ss.SynProxy = s.ConnRateLimit, s.PerSourceRateLimit, s.Synproxy
		if ss.Deny, err = listedPrefixes(s.Deny, "deny", k); err != nil {
			return nil, err
		}
		if ss.Allow, err = listedPrefixes(s.Allow, "allow", k); err != nil {
			return nil, err
		}
		for _, d := range s.Dests {
			a, err := netip.ParseAddr(d.Addr)
			if err != nil || d.Port > 65535 {
				return nil, fmt.Errorf("dataplane listed destination %q port %d of %s", d.Addr, d.Port, k)
			}
			ss.Dests[netip.AddrPortFrom(a.Unmap(), uint16(d.Port))] = DestState{Weight: int(d.Weight), Upper: d.Upper, Lower: d.Lower,
				Fwd: cmp.Or(d.Fwd, config.FwdFullNAT), Tun: config.Tunnel{Type: d.TunType, Port: uint16(d.TunPort), Csum: d.TunCsum}}
		}
		st[k] = ss
	}
	return st, nil
}

func keyOf(k *pb.ServiceKey) (config.ServiceKey, error) {
	a, err := netip.ParseAddr(k.GetAddr())
	if err != nil || k.GetPort() > 65535 {
		return config.ServiceKey{}, fmt.Errorf("dataplane listed service %v: not an address and port", k)
	}
	return config.ServiceKey{Proto: strings.ToUpper(k.GetProto()), Addr: a.Unmap(), Port: uint16(k.GetPort())}, nil
}

func pbKey(k config.ServiceKey) *pb.ServiceKey {
	return &pb.ServiceKey{Proto: k.Proto, Addr: k.Addr.String(), Port: uint32(k.Port)}
}

// compareKeys orders services for deterministic plans.
func compareKeys(a, b config.ServiceKey) int {
	return cmp.Or(strings.Compare(a.Proto, b.Proto), a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port))
}

// sortedKeys returns a map's keys in order.
func sortedKeys[K comparable, V any](m map[K]V, compare func(a, b K) int) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, compare)
	return ks
}

func (ss *ServiceState) setBackup(a netip.Addr) {
	if ss.Backup == nil {
		ss.Backup = map[netip.Addr]bool{}
	}
	ss.Backup[a] = true
}

// prefixSet is a configured list as a set (nil when empty).
func prefixSet(ps []netip.Prefix) map[netip.Prefix]bool {
	if len(ps) == 0 {
		return nil
	}
	m := make(map[netip.Prefix]bool, len(ps))
	for _, p := range ps {
		m[p] = true
	}
	return m
}

// listedPrefixes reads a list of a ListServices answer.
func listedPrefixes(ss []string, list string, k config.ServiceKey) (map[netip.Prefix]bool, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	m := make(map[netip.Prefix]bool, len(ss))
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("dataplane listed %s list entry %q of %s: not a prefix", list, s, k)
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		m[p.Masked()] = true
	}
	return m, nil
}
