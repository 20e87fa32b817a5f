package config

// Admission settings of a virtual server: its deny and allow lists (DPVS's
// blklst and whtlst, ipvsadm --add-blklst/--add-whtlst), its
// new-connection limits (ipvsadm --conn-rate-limit, --per-source-limit)
// and the SYN proxy switch (ipvsadm -j). The resolved model keeps each
// list as masked prefixes in the file's order without duplicates, so the
// reconciler compares them with the dataplane's listing (which masks too)
// entry by entry and adds or removes only the difference.

import (
	"math"
	"net/netip"
	"strings"
)

// MaxListEntries bounds each list of a service in the file: the
// dataplane's own bound.
const MaxListEntries = 1 << 20

func (v *VirtualServer) resolveAdmission(s *Service, where string, e *errs) {
	s.Deny = resolveList(v.DenyList, "deny_list", s.Key.Addr, where, e)
	s.Allow = resolveList(v.AllowList, "allow_list", s.Key.Addr, where, e)
	for _, l := range []struct {
		name string
		v    int64
		out  *uint32
	}{{"conn_rate_limit", v.ConnRateLimit, &s.ConnRateLimit}, {"per_source_limit", v.PerSourceLimit, &s.PerSourceLimit}} {
		if l.v < 0 || l.v > math.MaxUint32 {
			e.add(where, "%s %d: give new connections per second, 0-%d (0: no limit)", l.name, l.v, uint32(math.MaxUint32))
			continue
		}
		*l.out = uint32(l.v)
	}
	if v.SynProxy {
		if s.Key.Proto != "TCP" {
			e.add(where, "synproxy: the SYN proxy is for TCP services only: remove synproxy or set protocol: TCP")
		} else {
			s.SynProxy = true
		}
	}
}

// resolveList parses a deny or allow list: addresses ("192.0.2.7",
// "2001:db8::1") and prefixes ("10.0.0.0/8") of the vip's family.
func resolveList(entries []string, name string, vip netip.Addr, where string, e *errs) []netip.Prefix {
	if len(entries) > MaxListEntries {
		e.add(where, "%s has %d entries, the most GVS takes is %d: merge entries into shorter prefixes", name, len(entries), MaxListEntries)
		return nil
	}
	var out []netip.Prefix
	seen := map[netip.Prefix]int{}
	for j, raw := range entries {
		p, msg := parseListEntry(strings.TrimSpace(raw), vip)
		if msg != "" {
			e.add(where, "%s[%d] %q: %s", name, j, raw, msg)
			continue
		}
		if k, dup := seen[p]; dup {
			e.add(where, "%s[%d] %s: listed twice (also %s[%d]): remove one", name, j, p, name, k)
			continue
		}
		seen[p] = j
		out = append(out, p)
	}
	return out
}

// parseListEntry returns the entry as a prefix, or a message saying what
// is wrong and what to write instead.
func parseListEntry(s string, vip netip.Addr) (netip.Prefix, string) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		q, err := netip.ParsePrefix(s)
		if err != nil || q.Addr().Zone() != "" {
			return p, "not a prefix: write one like 10.0.0.0/8 or 2001:db8::/32"
		}
		if q.Addr().Is4In6() && q.Bits() >= 96 {
			q = netip.PrefixFrom(q.Addr().Unmap(), q.Bits()-96)
		}
		if q.Masked() != q {
			return p, "host bits set: write " + q.Masked().String() + " (or the address alone for one client)"
		}
		p = q
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return p, "not an address or prefix: write one like 192.0.2.7, 10.0.0.0/8 or 2001:db8::/32"
		}
		a = a.Unmap()
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4() != vip.Is4() {
		return netip.Prefix{}, "address family differs from the vip (the service's clients are IPv" +
			map[bool]string{true: "4", false: "6"}[vip.Is4()] + "): give an entry of the vip's family"
	}
	return p, ""
}
