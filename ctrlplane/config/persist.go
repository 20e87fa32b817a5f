package config

// Persistence and one-packet scheduling in keepalived's words:
// persistence_timeout (ipvsadm -p), persistence_granularity (-M) and ops
// (-o). The resolved model carries them as the dataplane's API does: a
// timeout in whole seconds (0: not persistent) and the granularity as a
// prefix length where 0 means one client address, so a full-length mask
// (255.255.255.255, /128) and an absent granularity resolve alike and the
// reconciler never sees a difference between them.

import (
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

func (v *VirtualServer) resolvePersistence(s *Service, where string, e *errs) {
	if d := v.PersistenceTimeout.D(); d != 0 {
		if d < time.Second || d%time.Second != 0 || d/time.Second > math.MaxUint32 {
			e.add(where, "persistence_timeout %s: give whole seconds, at least 1 (e.g. 300, as ipvsadm -p)", d)
		} else {
			s.PersistTimeout = d
		}
	}
	if g := strings.TrimSpace(v.PersistenceGranularity); g != "" {
		bitLen := s.Key.Addr.BitLen()
		n, err := parseGranularity(g, s.Key.Addr)
		switch {
		case v.PersistenceTimeout == 0:
			e.add(where, "persistence_granularity %s without persistence: add persistence_timeout (e.g. 300) or remove persistence_granularity", g)
		case err != nil:
			e.add(where, "persistence_granularity %q: %v", g, err)
		case n == 0:
			e.add(where, "persistence_granularity %s: a mask of 0 bits (every client on one real server) is not supported: give a prefix length 1-%d", g, bitLen)
		case n < bitLen:
			s.PersistPrefix = n
		}
	}
	if v.OPS {
		switch {
		case s.Key.Proto != "UDP":
			e.add(where, "ops: one-packet scheduling is for UDP services only: remove ops or set protocol: UDP")
		case v.MidFlow:
			e.add(where, "ops and mid_flow: mid_flow is for TCP, ops for UDP: remove mid_flow")
		default:
			s.OnePacket = true
		}
	}
}

// parseGranularity reads a netmask (255.255.255.0, or an IPv6 mask such as
// ffff:ffff:ffff:ffff::) or a prefix length (24, /24, 64) for a vip's
// family and returns the prefix length. Masks must be contiguous.
func parseGranularity(g string, vip netip.Addr) (int, error) {
	bitLen := vip.BitLen()
	if n, err := strconv.Atoi(strings.TrimPrefix(g, "/")); err == nil {
		if n < 0 || n > bitLen {
			return 0, fmt.Errorf("prefix length %d: use 1-%d for an IPv%d service", n, bitLen, family(vip))
		}
		return n, nil
	}
	m, err := netip.ParseAddr(g)
	if err != nil || m.Zone() != "" {
		if vip.Is4() {
			return 0, fmt.Errorf("not a netmask: give one like 255.255.255.0 (or a prefix length, 24)")
		}
		return 0, fmt.Errorf("not a prefix length: give one like 64 (or a mask, ffff:ffff:ffff:ffff::)")
	}
	if m.Is4() != vip.Is4() {
		return 0, fmt.Errorf("an IPv%d mask for an IPv%d service: give an IPv%d mask or a prefix length (1-%d)", family(m), family(vip), family(vip), bitLen)
	}
	b := m.AsSlice()
	ones := 0
	for len(b) > 0 && b[0] == 0xff {
		ones += 8
		b = b[1:]
	}
	if len(b) > 0 {
		ones += bits.LeadingZeros8(^b[0])
		rest := b[0] << (bits.LeadingZeros8(^b[0]))
		if rest != 0 {
			return 0, noncontiguous(m)
		}
		for _, x := range b[1:] {
			if x != 0 {
				return 0, noncontiguous(m)
			}
		}
	}
	return ones, nil
}

func noncontiguous(m netip.Addr) error {
	return fmt.Errorf("netmask %s is not contiguous (ones, then zeros): give a mask like %s or a prefix length", m, contiguousExample(m))
}

func contiguousExample(m netip.Addr) string {
	if m.Is4() {
		return "255.255.255.0"
	}
	return "ffff:ffff:ffff:ffff::"
}
