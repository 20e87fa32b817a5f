package config

// Validation turns the raw file into the resolved model. Every problem is
// collected (so --dry-run shows them all at once) and each message says
// where it is — the service, the real server, the field — and what to do.

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gvs-lb/gvs/ipvs/sched"
)

// Defaults of the health checks (keepalived's, where it has them).
const (
	DefaultDelayLoop        = 5 * time.Second
	DefaultConnectTimeout   = 5 * time.Second
	DefaultDelayBeforeRetry = time.Second
	DefaultRetry            = 1 // fall = 2
	DefaultRise             = 1
)

// Schedulers the dataplane has, as ipvsadm spells them (the scheduler
// package's own list).
var Schedulers = sched.Names()

type errs []error

func (e *errs) add(where, format string, a ...any) {
	*e = append(*e, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, a...)))
}

func (c *Config) validate() error {
	var e errs
	c.validateProcess(&e)
	c.validateGlobal(&e)
	seen := map[ServiceKey]string{}
	for i := range c.VirtualServers {
		s, ok := c.VirtualServers[i].resolve(i, &c.Global, &e)
		if !ok {
			continue
		}
		if prev, dup := seen[s.Key]; dup {
			e.add(fmt.Sprintf("virtual_servers[%d]", i), "%s is defined twice (also %s): merge the two blocks", s.Key, prev)
			continue
		}
		seen[s.Key] = fmt.Sprintf("virtual_servers[%d]", i)
		c.Services = append(c.Services, s)
	}
	return errors.Join(e...)
}

func (s *Service) where() string {
	if s.Name != s.Key.String() {
		return fmt.Sprintf("virtual_server %q (%s)", s.Name, s.Key)
	}
	return "virtual_server " + s.Key.String()
}

func (c *Config) validateProcess(e *errs) {
	for _, d := range []struct {
		name string
		v    Duration
	}{{"poll_interval", c.Dataplane.PollInterval}, {"call_timeout", c.Dataplane.CallTimeout}} {
		if d.v < Duration(10*time.Millisecond) {
			e.add("dataplane."+d.name, "%s is too short: give at least 10ms", d.v.D())
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		e.add("log.level", "%q: use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		e.add("log.format", "%q: use json or console", c.Log.Format)
	}
	if c.HTTP.Listen != "off" {
		if _, p, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			e.add("http.listen", "%q: write host:port (e.g. 127.0.0.1:9105) or off", c.HTTP.Listen)
		} else if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
			e.add("http.listen", "%q: port %q: use 0-65535", c.HTTP.Listen, p)
		}
	}
	if err := CheckCPUs(c.CPUs); err != nil {
		e.add("cpus", "%v", err)
	}
}

// CheckCPUs validates a CPU list (config cpus or --cpus).
func CheckCPUs(cpus []int) error {
	for i, n := range cpus {
		if n < 0 || n >= 1024 {
			return fmt.Errorf("CPU %d: give CPU numbers 0-1023", n)
		}
		if slices.Contains(cpus[:i], n) {
			return fmt.Errorf("CPU %d listed twice", n)
		}
	}
	return nil
}

func (c *Config) validateGlobal(e *errs) {
	for _, t := range c.Global.Timeouts.named() {
		d := t.v.D()
		if d < 0 || d%time.Second != 0 || d/time.Second > math.MaxUint32 {
			e.add("global_defs.timeouts."+t.name, "%s: give whole seconds (as ipvsadm --set does)", d)
		}
	}
	if c.Global.Bindto != "" {
		if _, err := parseUnicast(c.Global.Bindto); err != nil {
			e.add("global_defs.bindto", "%q: %v", c.Global.Bindto, err)
		}
	}
}

func parseUnicast(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, errors.New("not an IP address")
	}
	a = a.Unmap()
	if a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" {
		return a, errors.New("give a unicast address")
	}
	return a, nil
}

func checkPort(p int, what string) error {
	switch {
	case p == 0:
		return fmt.Errorf("%s missing: give a port (1-65535)", what)
	case p < 0 || p > 65535:
		return fmt.Errorf("%s %d: use 1-65535", what, p)
	}
	return nil
}

// checkDestPort checks a real or sorry server's port: required, and 0
// (the port the client asked for) only on a port-0 service.
func checkDestPort(p *int, svcPort uint16) error {
	switch {
	case p == nil:
		return errors.New("port missing: give a port (1-65535)")
	case *p == 0 && svcPort != 0:
		return errors.New("port 0 (the port the client asked for) is only for a port-0 service: give the server's port (1-65535)")
	case *p == 0:
		return nil
	}
	return checkPort(*p, "port")
}

// resolve validates one virtual_server; ok is false when it cannot even be
// identified (its other errors are reported anyway).
func (v *VirtualServer) resolve(i int, g *Global, e *errs) (Service, bool) {
	where := fmt.Sprintf("virtual_servers[%d]", i)
	if v.Name != "" {
		where = fmt.Sprintf("virtual_server %q (virtual_servers[%d])", v.Name, i)
	}
	var s Service
	ok := true
	proto := strings.ToUpper(v.Protocol)
	switch proto {
	case "":
		proto = "TCP"
	case "TCP", "UDP":
	default:
		e.add(where, "protocol %q: use TCP or UDP", v.Protocol)
		ok = false
	}
	vip, err := parseUnicast(v.VIP)
	if v.VIP == "" {
		e.add(where, "vip missing: give the virtual address")
		ok = false
	} else if err != nil {
		e.add(where, "vip %q: %v", v.VIP, err)
		ok = false
	}
	port := 0
	switch {
	case v.Port == nil:
		e.add(where, "port missing: give the service's port (or port: 0, all ports, with persistence_timeout)")
		ok = false
	case *v.Port == 0 && v.PersistenceTimeout == 0:
		e.add(where, "port 0 (all ports) needs persistence: add persistence_timeout (e.g. 300) or give a port (1-65535)")
		ok = false
	case *v.Port != 0:
		if err := checkPort(*v.Port, "port"); err != nil {
			e.add(where, "%v", err)
			ok = false
		}
		port = *v.Port
	}
	if !ok {
		return s, false
	}
	s.Key = ServiceKey{Proto: proto, Addr: vip, Port: uint16(port)}
	s.Name = v.Name
	if s.Name == "" {
		s.Name = s.Key.String()
	}
	where = s.where()

	s.Sched = strings.ToLower(v.LBAlgo)
	if s.Sched == "" {
		s.Sched = "wlc"
	}
	if !slices.Contains(Schedulers, s.Sched) {
		e.add(where, "lb_algo %q: use one of %s", v.LBAlgo, strings.Join(Schedulers, ", "))
	}
	s.Fwd = FwdFullNAT
	switch strings.ToUpper(v.LBKind) {
	case "", "FULLNAT", "FNAT":
	case "DR":
		s.Fwd = FwdRoute
	case "TUN":
		s.Fwd = FwdTunnel
	case "NAT":
		s.Fwd = FwdMasq
	case "SNAT":
		e.add(where, "lb_kind %s: not supported in virtual_servers (SNAT has no virtual address): configure match services with ipvsadm -A -H MATCH and -a -H MATCH -r ADDR:0 -J, or write lb_kind: FULLNAT, NAT, DR or TUN", v.LBKind)
	default:
		e.add(where, "lb_kind %q: unknown: write lb_kind: FULLNAT, NAT, DR or TUN", v.LBKind)
	}
	v.resolveTunnel(&s, where, e)
	for _, f := range v.SchedFlags {
		// the scheduler package's parser decides; the message adds the fix
		if _, err := sched.ParseFlags(s.Sched, f); err != nil {
			if fam, _, _ := strings.Cut(f, "-"); (fam == sched.SH || fam == sched.MH) && fam != s.Sched {
				e.add(where, "sched_flags %s: only for lb_algo %s: remove it or change lb_algo", f, fam)
			} else {
				e.add(where, "sched_flags %q: %v: use sh-fallback, sh-port (lb_algo sh), mh-fallback or mh-port (lb_algo mh)", f, err)
			}
		}
		if !slices.Contains(s.SchedFlags, f) {
			s.SchedFlags = append(s.SchedFlags, f)
		}
	}
	slices.Sort(s.SchedFlags)
	if v.MidFlow && s.Sched != sched.MH {
		e.add(where, "mid_flow: only for lb_algo mh (only mh gives every node the same real server for a flow): set lb_algo: mh or remove mid_flow")
	}
	s.MidFlow = v.MidFlow
	v.resolvePersistence(&s, where, e)
	v.resolveAdmission(&s, where, e)
	if v.InhibitOnFailure != nil {
		s.Inhibit = *v.InhibitOnFailure
	}
	delay := v.DelayLoop.D()
	if delay == 0 {
		delay = DefaultDelayLoop
	}

	switch {
	case s.Fwd == FwdFullNAT && len(v.LocalAddresses) == 0:
		e.add(where, "local_addresses missing: FULLNAT needs at least one local address, e.g. local_addresses: [{ip: 10.2.0.100, interface: dp1}]")
	case s.Fwd == FwdRoute && len(v.LocalAddresses) > 0:
		// direct routing keeps the client's address: nothing to translate to
		e.add(where, "local_addresses with lb_kind DR: direct routing uses no local address: remove local_addresses (or write lb_kind: FULLNAT)")
	case s.Fwd == FwdMasq && len(v.LocalAddresses) > 0:
		// NAT keeps the client's address: the real servers answer it through GVS
		e.add(where, "local_addresses with lb_kind NAT: NAT keeps the client's address and uses no local address: remove local_addresses (or write lb_kind: FULLNAT)")
	case s.Fwd == FwdTunnel && len(v.LocalAddresses) > 0:
		e.add(where, "local_addresses with lb_kind TUN: a tunnel keeps the client's address and uses no local address: remove local_addresses (or write lb_kind: FULLNAT)")
	}
	for j, la := range v.LocalAddresses {
		a, err := parseUnicast(la.IP)
		if err != nil {
			e.add(where, "local_addresses[%d].ip %q: %v", j, la.IP, err)
			continue
		}
		if a.Is6() && vip.Is4() { // an IPv6 vip takes IPv4 ones too, for NAT64 real servers
			e.add(where, "local_addresses[%d].ip %s: address family differs from the vip: give an IPv%d address", j, a, family(vip))
			continue
		}
		if slices.ContainsFunc(s.LAddrs, func(l LAddr) bool { return l.Addr == a }) {
			e.add(where, "local_addresses[%d].ip %s: listed twice: remove one", j, a)
			continue
		}
		s.LAddrs = append(s.LAddrs, LAddr{Addr: a, Dev: la.Interface, Backup: la.Backup})
	}

	for j := range v.RealServers {
		rs := &v.RealServers[j]
		r, ok := rs.resolve(j, where, s.Key, s.Inhibit, delay, g, e)
		if !ok {
			continue
		}
		if err := s.checkDRPort(r.Addr); err != nil {
			e.add(where, "real_server %s: %v", r.Addr, err)
			continue
		}
		if r.Addr.Addr().Is4() && s.Key.Addr.Is6() && s.Fwd != FwdFullNAT {
			// NAT64 translates the client's packets: only FullNAT does
			e.add(where, "real_server %s: an IPv4 real server behind an IPv6 vip (NAT64) needs lb_kind FULLNAT: write lb_kind: FULLNAT or give an IPv6 address", r.Addr)
			continue
		}
		if slices.ContainsFunc(s.Reals, func(o Real) bool { return o.Addr == r.Addr }) {
			e.add(where, "real_server %s: listed twice: remove one", r.Addr)
			continue
		}
		s.Reals = append(s.Reals, r)
	}

	if ss := v.SorryServer; ss != nil {
		a, err := parseUnicast(ss.IP)
		w := 1
		if ss.Weight != nil {
			w = *ss.Weight
		}
		switch {
		case err != nil:
			e.add(where, "sorry_server.ip %q: %v", ss.IP, err)
		case a.Is4() != vip.Is4():
			e.add(where, "sorry_server.ip %s: address family differs from the vip: give an IPv%d address", a, family(vip))
		case checkDestPort(ss.Port, s.Key.Port) != nil:
			e.add(where, "sorry_server: %v", checkDestPort(ss.Port, s.Key.Port))
		case w < 1 || w > 65535:
			e.add(where, "sorry_server.weight %d: use 1-65535", w)
		default:
			ap := netip.AddrPortFrom(a, uint16(*ss.Port))
			if err := s.checkDRPort(ap); err != nil {
				e.add(where, "sorry_server %s: %v", ap, err)
			} else if slices.ContainsFunc(s.Reals, func(r Real) bool { return r.Addr == ap }) {
				e.add(where, "sorry_server %s is also a real_server: give another address or port", ap)
			} else {
				s.Sorry = &Dest{Addr: ap, Weight: w}
			}
		}
	}
	return s, true
}

// checkDRPort: direct routing rewrites only the Ethernet header and a
// tunnel only wraps the packet, so a real server of a DR or TUN service
// receives the service's own port.
func (s *Service) checkDRPort(a netip.AddrPort) error {
	if (s.Fwd != FwdRoute && s.Fwd != FwdTunnel) || a.Port() == s.Key.Port {
		return nil
	}
	kind, how := "DR", "direct routing"
	if s.Fwd == FwdTunnel {
		kind, how = "TUN", "a tunnel"
	}
	if s.Key.Port == 0 {
		return fmt.Errorf("port %d with lb_kind %s: %s cannot change the port: give port 0 (the port the client asked for)", a.Port(), kind, how)
	}
	return fmt.Errorf("port %d with lb_kind %s: %s cannot change the port: give port %d (the service's) and make the server listen on it", a.Port(), kind, how, s.Key.Port)
}

// resolveTunnel reads tun_type, tun_port and tun_csum (lb_kind TUN only)
// with ipvsadm's rules: ipip takes neither port nor checksum option, gue
// needs a port, gre takes csum or nocsum.
func (v *VirtualServer) resolveTunnel(s *Service, where string, e *errs) {
	if s.Fwd != FwdTunnel {
		if v.TunType != "" || v.TunPort != 0 || v.TunCsum != "" {
			e.add(where, "tun_type, tun_port or tun_csum without lb_kind TUN: remove them or write lb_kind: TUN")
		}
		return
	}
	t := Tunnel{Type: strings.ToLower(cmp.Or(v.TunType, "ipip"))}
	csum := strings.ToLower(strings.TrimPrefix(v.TunCsum, "tun-"))
	switch t.Type {
	case "ipip":
		if v.TunPort != 0 || v.TunCsum != "" {
			e.add(where, "tun_port or tun_csum with tun_type ipip: an ipip tunnel has neither: remove them (or use tun_type gue or gre)")
		}
		s.Tun = t
		return
	case "gue":
		if v.TunPort < 1 || v.TunPort > 65535 {
			e.add(where, "tun_port %d with tun_type gue: give the real servers' fou/gue UDP port (1-65535)", v.TunPort)
		}
		t.Port = uint16(v.TunPort)
	case "gre":
		if v.TunPort != 0 {
			e.add(where, "tun_port with tun_type gre: a gre tunnel has no port: remove tun_port")
		}
		if csum == "remcsum" {
			e.add(where, "tun_csum remcsum with tun_type gre: gre takes csum or nocsum")
		}
	default:
		e.add(where, "tun_type %q: use ipip, gue or gre", v.TunType)
		return
	}
	switch csum {
	case "", "nocsum":
		t.Csum = "tun-nocsum"
	case "csum", "remcsum":
		t.Csum = "tun-" + csum
	default:
		e.add(where, "tun_csum %q: use nocsum, csum or remcsum", v.TunCsum)
	}
	s.Tun = t
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

func (rs *RealServer) resolve(j int, svc string, key ServiceKey, inhibit bool, delay time.Duration, g *Global, e *errs) (Real, bool) {
	var r Real
	vip := key.Addr
	where := fmt.Sprintf("%s: real_servers[%d]", svc, j)
	a, err := parseUnicast(rs.IP)
	switch {
	case rs.IP == "":
		e.add(where, "ip missing: give the real server's address")
		return r, false
	case err != nil:
		e.add(where, "ip %q: %v", rs.IP, err)
		return r, false
	case a.Is6() && vip.Is4():
		e.add(where, "ip %s: an IPv6 real server behind an IPv4 vip (NAT46) is not supported, only NAT64 (an IPv6 vip, IPv4 servers): give an IPv4 address", a)
		return r, false
	}
	if err := checkDestPort(rs.Port, key.Port); err != nil {
		e.add(where, "%v", err)
		return r, false
	}
	r.Addr = netip.AddrPortFrom(a, uint16(*rs.Port))
	where = fmt.Sprintf("%s: real_server %s", svc, r.Addr)
	r.Weight = 1
	if rs.Weight != nil {
		r.Weight = *rs.Weight
	}
	if r.Weight < 0 || r.Weight > 65535 {
		e.add(where, "weight %d: use 0-65535", r.Weight)
	}
	for _, t := range []struct {
		name string
		v    int64
	}{{"uthreshold", rs.UThreshold}, {"lthreshold", rs.LThreshold}} {
		if t.v < 0 || t.v > math.MaxUint32 {
			e.add(where, "%s %d: use 0-%d (0: no threshold)", t.name, t.v, uint32(math.MaxUint32))
		}
	}
	r.Upper, r.Lower = uint32(rs.UThreshold), uint32(rs.LThreshold)
	if r.Upper != 0 && r.Lower > r.Upper {
		e.add(where, "lthreshold %d above uthreshold %d: make it lower", r.Lower, r.Upper)
	}
	r.Inhibit = inhibit
	if rs.InhibitOnFailure != nil {
		r.Inhibit = *rs.InhibitOnFailure
	}
	base := Check{Target: r.Addr, Interval: delay}
	if rs.TCPCheck != nil {
		if c, ok := rs.TCPCheck.Connect.resolve(where+": TCP_CHECK", TCPCheckKind, base, g, e); ok {
			r.Checks = append(r.Checks, c)
		}
	}
	for _, h := range []struct {
		kind string
		c    *HTTPCheck
	}{{HTTPGetKind, rs.HTTPGet}, {SSLGetKind, rs.SSLGet}} {
		if h.c == nil {
			continue
		}
		w := where + ": " + h.kind
		c, ok := h.c.Connect.resolve(w, h.kind, base, g, e)
		c.VirtualHost = h.c.VirtualHost
		urls := h.c.URL
		if len(urls) == 0 {
			urls = []URL{{Path: "/"}}
		}
		for k, u := range urls {
			if !strings.HasPrefix(u.Path, "/") {
				e.add(w, "url[%d].path %q: give an absolute path starting with /", k, u.Path)
				ok = false
			}
			if u.Regex != "" {
				if _, err := regexp.Compile(u.Regex); err != nil {
					e.add(w, "url[%d].regex %q: %v: fix the regular expression (Go RE2 syntax)", k, u.Regex, err)
					ok = false
				}
			}
			d := strings.ToLower(u.Digest)
			if b, err := hex.DecodeString(d); d != "" && (err != nil || len(b) != 16) {
				e.add(w, "url[%d].digest %q: give the body's MD5 as 32 hex digits (genhash prints it)", k, u.Digest)
				ok = false
			}
			c.URLs = append(c.URLs, URLCheck{Path: u.Path, Codes: u.StatusCode, Regex: u.Regex, Digest: d})
		}
		if ok {
			r.Checks = append(r.Checks, c)
		}
	}
	if u := rs.UDPCheck; u != nil {
		w := where + ": UDP_CHECK"
		c, ok := u.Connect.resolve(w, UDPCheckKind, base, g, e)
		c.Payload = []byte(u.Payload)
		if u.PayloadHex != "" {
			b, err := hex.DecodeString(strings.ReplaceAll(u.PayloadHex, " ", ""))
			switch {
			case u.Payload != "":
				e.add(w, "payload and payload_hex both given: keep one")
				ok = false
			case err != nil:
				e.add(w, "payload_hex %q: write hex digits, e.g. 0a0b0c", u.PayloadHex)
				ok = false
			}
			c.Payload = b
		}
		c.RequireReply = u.RequireReply == nil || *u.RequireReply
		c.Regex = u.Regex
		if u.Regex != "" {
			if _, err := regexp.Compile(u.Regex); err != nil {
				e.add(w, "regex %q: %v: fix the regular expression (Go RE2 syntax)", u.Regex, err)
				ok = false
			} else if !c.RequireReply {
				e.add(w, "regex needs a reply: remove require_reply: false or the regex")
				ok = false
			}
		}
		if ok {
			r.Checks = append(r.Checks, c)
		}
	}
	if m := rs.MiscCheck; m != nil {
		w := where + ": MISC_CHECK"
		c, ok := m.Timing.resolve(w, base, e)
		c.Kind = MiscCheckKind
		c.Target = netip.AddrPort{}
		c.Script = strings.TrimSpace(m.MiscPath)
		if c.Script == "" {
			e.add(w, "misc_path missing: give the command to run (exit 0: healthy, 1: failed)")
			ok = false
		}
		c.Timeout = m.MiscTimeout.D()
		if c.Timeout == 0 {
			c.Timeout = c.Interval // keepalived: misc_timeout defaults to delay_loop
		}
		if ok {
			r.Checks = append(r.Checks, c)
		}
	}
	return r, true
}

// resolve applies the timing defaults: keepalived's retry (fall = retry+1)
// or fall, rise, delay_loop and delay_before_retry.
func (t *Timing) resolve(where string, c Check, e *errs) (Check, bool) {
	ok := true
	if t.DelayLoop != 0 {
		c.Interval = t.DelayLoop.D()
	}
	if c.Interval < 10*time.Millisecond {
		e.add(where, "delay_loop %s is too short: give at least 10ms", c.Interval)
		ok = false
	}
	c.RetryInterval = t.DelayBeforeRetry.D()
	if c.RetryInterval == 0 {
		c.RetryInterval = min(DefaultDelayBeforeRetry, c.Interval)
	}
	switch {
	case t.Retry != nil && t.Fall != 0:
		e.add(where, "retry and fall both given: keep one (fall = retry + 1)")
		ok = false
	case t.Retry != nil && (*t.Retry < 0 || *t.Retry > 100):
		e.add(where, "retry %d: use 0-100", *t.Retry)
		ok = false
	case t.Retry != nil:
		c.Fall = *t.Retry + 1
	case t.Fall < 0 || t.Fall > 100:
		e.add(where, "fall %d: use 1-100", t.Fall)
		ok = false
	case t.Fall > 0:
		c.Fall = t.Fall
	default:
		c.Fall = DefaultRetry + 1
	}
	c.Rise = t.Rise
	switch {
	case t.Rise < 0 || t.Rise > 100:
		e.add(where, "rise %d: use 1-100", t.Rise)
		ok = false
	case t.Rise == 0:
		c.Rise = DefaultRise
	}
	c.Alpha = t.Alpha
	return c, ok
}

func (n *Connect) resolve(where, kind string, c Check, g *Global, e *errs) (Check, bool) {
	c, ok := n.Timing.resolve(where, c, e)
	c.Kind = kind
	addr, port := c.Target.Addr(), c.Target.Port()
	if n.ConnectIP != "" {
		a, err := parseUnicast(n.ConnectIP)
		if err != nil {
			e.add(where, "connect_ip %q: %v", n.ConnectIP, err)
			ok = false
		} else {
			addr = a
		}
	}
	if n.ConnectPort != 0 {
		if err := checkPort(n.ConnectPort, "connect_port"); err != nil {
			e.add(where, "%v", err)
			ok = false
		} else {
			port = uint16(n.ConnectPort)
		}
	}
	if port == 0 && n.ConnectPort == 0 {
		// a real server of a port-0 service with port 0 takes each
		// client's port: there is no one port to check
		e.add(where, "connect_port missing: the real server's port is 0 (the port the client asked for): give the port to check, e.g. connect_port: 80")
		ok = false
	}
	c.Target = netip.AddrPortFrom(addr, port)
	switch {
	case n.Bindto != "":
		a, err := parseUnicast(n.Bindto)
		if err != nil {
			e.add(where, "bindto %q: %v", n.Bindto, err)
			ok = false
		} else if a.Is4() != addr.Is4() {
			e.add(where, "bindto %s: address family differs from the target %s", a, addr)
			ok = false
		} else {
			c.Bind = a
		}
	case g.Bindto != "":
		// the global default applies to checks of its own family
		if a, err := parseUnicast(g.Bindto); err == nil && a.Is4() == addr.Is4() {
			c.Bind = a
		}
	}
	c.Timeout = n.ConnectTimeout.D()
	if c.Timeout == 0 {
		c.Timeout = DefaultConnectTimeout
	}
	return c, ok
}
