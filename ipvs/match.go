package ipvs

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Match is a SNAT service's packet selector (ipvsadm -H, as DPVS writes
// it): "proto=tcp,src-range=10.2.0.1-10.2.0.254:1024-65535,
// dst-range=0.0.0.0-0.0.0.0:80-80,iif=dp1,oif=dp0". A match service has
// no virtual address: the first packet of a connection GVS forwards
// (not one to a VIP) that matches it is scheduled onto one of its SNAT
// addresses (-r WAN_IP:0 -J), which becomes the connection's source.
//
// A range is IP1[-IP2][:PORT1[-PORT2]]; an absent range, or one of all
// zeros, matches everything. iif is the interface the packet arrived on,
// oif the one its route leaves by.
type Match struct {
	Proto    Proto
	Src, Dst AddrRange
	IIf, OIf string
}

// AddrRange is an inclusive address and port range; the zero range (all
// zeros) matches any address and port.
type AddrRange struct {
	MinAddr, MaxAddr netip.Addr
	MinPort, MaxPort uint16
}

// Any reports whether r is the zero range.
func (r AddrRange) Any() bool {
	return (!r.MinAddr.IsValid() || r.MinAddr.IsUnspecified()) && (!r.MaxAddr.IsValid() || r.MaxAddr.IsUnspecified()) &&
		r.MinPort == 0 && r.MaxPort == 0
}

// Contains reports whether a:port is in r.
func (r AddrRange) Contains(a netip.Addr, port uint16) bool {
	if !r.MaxAddr.IsUnspecified() && r.MaxAddr.IsValid() {
		if a.Is4() != r.MinAddr.Is4() || a.Compare(r.MinAddr) < 0 || a.Compare(r.MaxAddr) > 0 {
			return false
		}
	}
	if r.MaxPort != 0 && (port < r.MinPort || port > r.MaxPort) {
		return false
	}
	return true
}

// String writes r as DPVS prints a range: 10.0.0.1-10.0.0.9:0-0,
// [2001:db8::1-2001:db8::9]:80-80.
func (r AddrRange) String(v6 bool) string {
	lo, hi := r.MinAddr, r.MaxAddr
	if !lo.IsValid() {
		lo, hi = netip.IPv4Unspecified(), netip.IPv4Unspecified()
		if v6 {
			lo, hi = netip.IPv6Unspecified(), netip.IPv6Unspecified()
		}
	}
	if v6 {
		return fmt.Sprintf("[%s-%s]:%d-%d", lo, hi, r.MinPort, r.MaxPort)
	}
	return fmt.Sprintf("%s-%s:%d-%d", lo, hi, r.MinPort, r.MaxPort)
}

// V6 reports whether the match is for IPv6 packets.
func (m *Match) V6() bool {
	return m.Src.MinAddr.Is6() || m.Dst.MinAddr.Is6()
}

// String is the match in ipvsadm -S's canonical form (every field, the
// way ipvsadm -R reads it back); it is the service's key.
func (m *Match) String() string {
	v6 := m.V6()
	return fmt.Sprintf("proto=%s,src-range=%s,dst-range=%s,iif=%s,oif=%s", strings.ToLower(m.Proto.String()),
		m.Src.String(v6), m.Dst.String(v6), m.IIf, m.OIf)
}

// Listing is the match as ipvsadm -L shows it: MATCH tcp,from=…,to=…,
// iif=…,oif=… with the empty fields left out.
func (m *Match) Listing() string {
	v6 := m.V6()
	s := "MATCH " + strings.ToLower(m.Proto.String())
	if !m.Src.Any() {
		s += ",from=" + m.Src.String(v6)
	}
	if !m.Dst.Any() {
		s += ",to=" + m.Dst.String(v6)
	}
	if m.IIf != "" {
		s += ",iif=" + m.IIf
	}
	if m.OIf != "" {
		s += ",oif=" + m.OIf
	}
	return s
}

// Packet reports whether a packet from src to dst, arrived on iif and
// routed out of oif, matches.
func (m *Match) Packet(proto Proto, src, dst netip.AddrPort, iif, oif string) bool {
	return proto == m.Proto && src.Addr().Is6() == m.V6() && m.Src.Contains(src.Addr(), src.Port()) && m.Dst.Contains(dst.Addr(), dst.Port()) &&
		(m.IIf == "" || m.IIf == iif) && (m.OIf == "" || m.OIf == oif)
}

// ParseMatch reads an ipvsadm -H argument. Errors name the field and the
// fix.
func ParseMatch(s string) (*Match, error) {
	m := &Match{}
	seen := map[string]bool{}
	fam := 0 // 4 or 6 once a range gave one
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("match %q: %q is not key=value: write proto=tcp,src-range=IP1-IP2,oif=IFNAME: %w", s, kv, ErrInvalid)
		}
		if seen[k] {
			return nil, fmt.Errorf("match %q: %s given twice: %w", s, k, ErrInvalid)
		}
		seen[k] = true
		switch k {
		case "proto":
			switch v {
			case "tcp":
				m.Proto = TCP
			case "udp":
				m.Proto = UDP
			case "icmp", "icmpv6", "sctp":
				return nil, fmt.Errorf("match %q: proto=%s: SNAT of %s is %w yet: use proto=tcp or proto=udp", s, v, v, ErrNotSupported)
			default:
				return nil, fmt.Errorf("match %q: proto=%s: use tcp or udp: %w", s, v, ErrInvalid)
			}
		case "src-range", "dst-range":
			r, f, err := parseRange(v)
			if err != nil {
				return nil, fmt.Errorf("match %q: %s=%s: %v: write IP1[-IP2][:PORT1[-PORT2]]: %w", s, k, v, err, ErrInvalid)
			}
			if f != 0 && fam != 0 && f != fam {
				return nil, fmt.Errorf("match %q: src-range, dst-range and af of different address families: %w", s, ErrInvalid)
			}
			if f != 0 {
				fam = f
			}
			if k == "src-range" {
				m.Src = r
			} else {
				m.Dst = r
			}
		case "iif", "oif":
			if len(v) > 15 || strings.ContainsAny(v, " /") {
				return nil, fmt.Errorf("match %q: %s=%s: not an interface name: %w", s, k, v, ErrInvalid)
			}
			if k == "iif" {
				m.IIf = v
			} else {
				m.OIf = v
			}
		case "af":
			switch v {
			case "ipv4":
				if fam == 6 {
					return nil, fmt.Errorf("match %q: af=ipv4 with IPv6 ranges: %w", s, ErrInvalid)
				}
				fam = 4
			case "ipv6":
				if fam == 4 {
					return nil, fmt.Errorf("match %q: af=ipv6 with IPv4 ranges: %w", s, ErrInvalid)
				}
				fam = 6
			default:
				return nil, fmt.Errorf("match %q: af=%s: use ipv4 or ipv6: %w", s, v, ErrInvalid)
			}
		default:
			return nil, fmt.Errorf("match %q: unknown key %s: use proto, src-range, dst-range, iif, oif or af: %w", s, k, ErrInvalid)
		}
	}
	if m.Proto == 0 {
		return nil, fmt.Errorf("match %q: no proto: add proto=tcp or proto=udp: %w", s, ErrInvalid)
	}
	if fam == 0 {
		return nil, fmt.Errorf("match %q: no src-range, dst-range or af: give one (src-range=10.2.0.0-10.2.0.255): %w", s, ErrInvalid)
	}
	if fam == 6 {
		// an all-zero range of the other family stays "any" in IPv6 form
		for _, r := range []*AddrRange{&m.Src, &m.Dst} {
			if r.MinAddr.Is4() && r.MinAddr.IsUnspecified() && r.MaxAddr.IsUnspecified() {
				r.MinAddr, r.MaxAddr = netip.IPv6Unspecified(), netip.IPv6Unspecified()
			}
		}
	}
	if !m.Src.MinAddr.IsValid() {
		m.Src.MinAddr, m.Src.MaxAddr = unspecified(fam), unspecified(fam)
	}
	if !m.Dst.MinAddr.IsValid() {
		m.Dst.MinAddr, m.Dst.MaxAddr = unspecified(fam), unspecified(fam)
	}
	return m, nil
}

func unspecified(fam int) netip.Addr {
	if fam == 6 {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

// parseRange reads IP1[-IP2][:PORT1[-PORT2]] (IPv6 in brackets when a
// port follows); fam is 4 or 6 (0: no address given).
func parseRange(v string) (r AddrRange, fam int, err error) {
	ips, ports := v, ""
	if strings.HasPrefix(v, "[") {
		end := strings.Index(v, "]")
		if end < 0 {
			return r, 0, fmt.Errorf("no closing ]")
		}
		ips, ports = v[1:end], strings.TrimPrefix(v[end+1:], ":")
		if v[end+1:] != "" && !strings.HasPrefix(v[end+1:], ":") {
			return r, 0, fmt.Errorf("junk after ]")
		}
	} else if strings.Count(v, ":") == 1 {
		ips, ports, _ = strings.Cut(v, ":")
	} else if strings.Count(v, ":") > 1 {
		// bare IPv6 without ports
		ips = v
	}
	if ips != "" {
		lo, hi, two := strings.Cut(ips, "-")
		if r.MinAddr, err = netip.ParseAddr(lo); err != nil || r.MinAddr.Zone() != "" || r.MinAddr.Is4In6() {
			return r, 0, fmt.Errorf("address %q", lo)
		}
		r.MaxAddr = r.MinAddr
		if two {
			if r.MaxAddr, err = netip.ParseAddr(hi); err != nil || r.MaxAddr.Zone() != "" || r.MaxAddr.Is4() != r.MinAddr.Is4() {
				return r, 0, fmt.Errorf("address %q", hi)
			}
		}
		if r.MaxAddr.Compare(r.MinAddr) < 0 {
			return r, 0, fmt.Errorf("%s above %s", r.MinAddr, r.MaxAddr)
		}
		fam = 4
		if r.MinAddr.Is6() {
			fam = 6
		}
	}
	if ports != "" {
		lo, hi, two := strings.Cut(ports, "-")
		p1, err1 := strconv.ParseUint(lo, 10, 16)
		p2 := p1
		var err2 error
		if two {
			p2, err2 = strconv.ParseUint(hi, 10, 16)
		}
		if err1 != nil || err2 != nil || p2 < p1 {
			return r, 0, fmt.Errorf("ports %q", ports)
		}
		r.MinPort, r.MaxPort = uint16(p1), uint16(p2)
	}
	return r, fam, nil
}
