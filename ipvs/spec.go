// Package ipvs is GVS's virtual-service model in LVS vocabulary: services
// keyed by protocol, virtual address and port; destinations (real servers)
// with weights, thresholds and a forwarding method; local addresses for
// FullNAT. Specs are plain validated data; the Manager turns them into an
// immutable Table that workers read through an atomic pointer, rebuilt on
// every change (STYLE.md habit 6). Errors use ipvsadm's vocabulary so the
// CLI can print what operators know.
package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// Proto is a service's transport protocol.
type Proto uint8

const (
	TCP Proto = 6
	UDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	}
	return "proto-" + strconv.Itoa(int(p))
}

// FwdMethod is how packets reach a destination.
type FwdMethod uint8

const (
	FwdFullNAT FwdMethod = iota + 1
	FwdMasq
	FwdRoute // DR, ipvsadm's default
	FwdTunnel
	FwdSNAT
)

// String returns the word ipvsadm prints in the Forward column.
func (f FwdMethod) String() string {
	switch f {
	case FwdFullNAT:
		return "FullNat"
	case FwdMasq:
		return "Masq"
	case FwdRoute:
		return "Route"
	case FwdTunnel:
		return "Tunnel"
	case FwdSNAT:
		return "SNAT"
	}
	return "Unknown"
}

// ServiceKey identifies a service.
type ServiceKey struct {
	Proto Proto
	Addr  netip.Addr
	Port  uint16
	// Match is a SNAT match service's selector in its canonical form
	// (Match.String; ipvsadm -H); such a service has no Addr and Port.
	Match string
}

func (k ServiceKey) String() string {
	if k.Match != "" {
		return "match " + k.Match
	}
	return fmt.Sprintf("%s %s", k.Proto, netip.AddrPortFrom(k.Addr, k.Port))
}

// ServiceSpec is a service as the operator gives it.
type ServiceSpec struct {
	Key        ServiceKey
	Sched      string   // default wlc
	SchedFlags []string // sh-fallback, sh-port, mh-fallback, mh-port
	// Persistent (-p): a client's connections go to the real server its
	// first one was scheduled to while its persistence template lives,
	// PersistTimeout seconds after its last connection (ipvsadm's default
	// is 300). PersistPrefix (-M) is the client network a template covers,
	// as a prefix length of the service's family; 0 means one address
	// (32 or 128).
	Persistent     bool
	PersistTimeout uint32
	PersistPrefix  int
	// OnePacket (-o, UDP): every datagram is scheduled on its own and
	// leaves no connection behind.
	OnePacket bool
	// SynProxy (-j enable, TCP): clients handshake with GVS's SYN cookies
	// first; only a completed handshake makes a connection
	// (dataplane/lbsynproxy.go). Real servers must be FullNAT.
	SynProxy bool
	// Features of ipvsadm/DPVS that GVS refuses until they are built.
	ConnTimeout uint32
	// MidFlow (mh only): a TCP segment without SYN and without a
	// connection on this node is scheduled and gets a connection instead
	// of being dropped, so a flow the routers moved onto this node before
	// its sync arrived still reaches the real server mh picked for it on
	// every node. Off by default.
	MidFlow bool
	// ConnRateLimit is the most new connections per second the service
	// accepts (0: no limit); PerSourceRateLimit the most one client address
	// may open per second (0: no limit). Both are enforced per worker on
	// an even share (dataplane/lbacl.go).
	ConnRateLimit      uint32
	PerSourceRateLimit uint32
	// ProxyProtocol (--proxy-protocol, TCP, FullNAT) is 1 or 2: the PROXY
	// protocol header of that version goes in front of each connection's
	// data (dataplane/lbproxyproto.go); 0: none. ProxyProtocolInsecure
	// keeps a header of that version the client sent itself (a proxy in
	// front of GVS) instead of adding GVS's.
	ProxyProtocol         uint8
	ProxyProtocolInsecure bool
}

// ProxyProtocolName is the --proxy-protocol value of s ("" when off).
func (s *ServiceSpec) ProxyProtocolName() string {
	if s.ProxyProtocol == 0 {
		return ""
	}
	n := fmt.Sprintf("v%d", s.ProxyProtocol)
	if s.ProxyProtocolInsecure {
		n += "-insecure"
	}
	return n
}

// ParseProxyProtocol reads a --proxy-protocol value: v1, v2, v1-insecure,
// v2-insecure; "" and "disable" are off.
func ParseProxyProtocol(v string) (version uint8, insecure bool, err error) {
	switch v {
	case "", "disable":
		return 0, false, nil
	case "v1", "v2", "v1-insecure", "v2-insecure":
		return v[1] - '0', len(v) > 2, nil
	}
	return 0, false, fmt.Errorf("proxy protocol %q: use v1, v2, v1-insecure, v2-insecure or disable: %w", v, ErrInvalid)
}

// DestSpec is a destination (real server) of a service.
type DestSpec struct {
	Addr   netip.AddrPort
	Weight int
	Upper  uint32 // -x
	Lower  uint32 // -y
	Fwd    FwdMethod
	// Tunnel (-i) only: the encapsulation (--tun-type), the GUE UDP port
	// (--tun-port) and the checksum choice (--tun-nocsum, --tun-csum,
	// --tun-remcsum), with LVS's values.
	TunType  TunType
	TunPort  uint16
	TunFlags TunFlags
}

// TunType is a tunnel real server's encapsulation, numbered as LVS's
// IP_VS_CONN_F_TUNNEL_TYPE_*.
type TunType uint8

const (
	TunIPIP TunType = iota // IPv4-in-IPv4 (protocol 4) or IPv6-in-IPv6 (41); the default
	TunGUE                 // UDP to TunPort, a GUE variant 0 header, then the IP packet
	TunGRE                 // GRE (protocol 47, RFC 2784), protocol type of the inner family
)

// String returns ipvsadm's name (--tun-type).
func (t TunType) String() string {
	switch t {
	case TunIPIP:
		return "ipip"
	case TunGUE:
		return "gue"
	case TunGRE:
		return "gre"
	}
	return "tun-" + strconv.Itoa(int(t))
}

// TunFlags are LVS's IP_VS_TUNNEL_ENCAP_FLAG_* values: 0 is --tun-nocsum.
type TunFlags uint8

const (
	TunCsum    TunFlags = 1 << 0 // --tun-csum: UDP (GUE) or GRE checksum
	TunRemCsum TunFlags = 1 << 1 // --tun-remcsum (GUE): GVS's inner checksums are final, so a UDP checksum as --tun-csum
)

// String returns ipvsadm's option name without the dashes.
func (f TunFlags) String() string {
	switch f {
	case 0:
		return "tun-nocsum"
	case TunCsum:
		return "tun-csum"
	case TunRemCsum:
		return "tun-remcsum"
	}
	return "tun-flags-" + strconv.Itoa(int(f))
}

// Errors, worded as ipvsadm/libipvs print them.
var (
	ErrServiceExists = errors.New("Service already exists")
	ErrNoService     = errors.New("No such service")
	ErrServiceNotDef = errors.New("Service not defined")
	ErrDestExists    = errors.New("Destination already exists")
	ErrNoDest        = errors.New("No such destination")
	ErrSchedNotFound = errors.New("Scheduler or persistence engine not found")
	ErrLAddrExists   = errors.New("Local address already exists")
	ErrNoLAddr       = errors.New("No such local address")
	ErrNotSupported  = errors.New("not supported")
	ErrInvalid       = errors.New("invalid argument")
)

// Validate checks a service spec.
func (s *ServiceSpec) Validate() error {
	k := s.Key
	if k.Proto != TCP && k.Proto != UDP {
		return fmt.Errorf("service %s: protocol %d: use TCP or UDP: %w", k, k.Proto, ErrInvalid)
	}
	if k.Match != "" {
		return s.validateMatch()
	}
	if !k.Addr.IsValid() || k.Addr.IsUnspecified() || k.Addr.IsMulticast() || k.Addr.Is4In6() {
		return fmt.Errorf("service %s: virtual address must be a unicast IPv4 or IPv6 address: %w", k, ErrInvalid)
	}
	if k.Addr.Zone() != "" {
		return fmt.Errorf("service %s: a virtual address has no zone: drop %%%s: %w", k, k.Addr.Zone(), ErrInvalid)
	}
	if k.Port == 0 && !s.Persistent {
		return fmt.Errorf("service %s: port 0 (all ports) needs persistence: add -p or give a port: %w", k, ErrInvalid)
	}
	if !s.Persistent && (s.PersistTimeout != 0 || s.PersistPrefix != 0) {
		return fmt.Errorf("service %s: a persistence timeout or netmask without persistence: add -p: %w", k, ErrInvalid)
	}
	if s.Persistent && s.PersistTimeout == 0 {
		return fmt.Errorf("service %s: persistence timeout 0: give seconds (-p 300): %w", k, ErrInvalid)
	}
	if max := k.Addr.BitLen(); s.PersistPrefix < 0 || s.PersistPrefix > max {
		return fmt.Errorf("service %s: persistence netmask /%d: use a prefix length 0-%d: %w", k, s.PersistPrefix, max, ErrInvalid)
	}
	if s.OnePacket && k.Proto != UDP {
		return fmt.Errorf("service %s: one-packet scheduling (-o) is for UDP services: drop -o: %w", k, ErrInvalid)
	}
	if s.OnePacket && s.MidFlow {
		return fmt.Errorf("service %s: --mid-flow is for TCP, -o for UDP: drop one: %w", k, ErrInvalid)
	}
	if s.SynProxy && k.Proto != TCP {
		return fmt.Errorf("service %s: SYN proxy (-j) is for TCP services: drop -j: %w", k, ErrInvalid)
	}
	if s.ProxyProtocol != 0 && k.Proto != TCP {
		return fmt.Errorf("service %s: --proxy-protocol is for TCP services here: drop it: %w", k, ErrInvalid)
	}
	if s.ProxyProtocol > 2 || s.ProxyProtocol == 0 && s.ProxyProtocolInsecure {
		return fmt.Errorf("service %s: proxy protocol version %d: use 1 or 2: %w", k, s.ProxyProtocol, ErrInvalid)
	}
	if s.ConnTimeout != 0 {
		return fmt.Errorf("service %s: --conn-timeout is %w yet (use ipvsadm --set)", k, ErrNotSupported)
	}
	if s.MidFlow && s.Sched != "mh" {
		sc := s.Sched
		if sc == "" {
			sc = "wlc (the default)"
		}
		return fmt.Errorf("service %s: --mid-flow needs the mh scheduler, not %s (only mh gives every node the same real server for a flow): use -s mh or drop --mid-flow: %w",
			k, sc, ErrInvalid)
	}
	return nil
}

// Validate checks a destination spec for service k.
func (d *DestSpec) Validate(k ServiceKey) error {
	if !d.Addr.Addr().IsValid() || d.Addr.Addr().IsUnspecified() || d.Addr.Addr().IsMulticast() {
		return fmt.Errorf("destination %s of %s: not a unicast address: %w", d.Addr, k, ErrInvalid)
	}
	if z := d.Addr.Addr().Zone(); z != "" {
		return fmt.Errorf("destination %s of %s: a real server's address has no zone: drop %%%s: %w", d.Addr, k, z, ErrInvalid)
	}
	if k.Match != "" {
		return d.validateSNAT(k)
	}
	if d.Fwd != FwdTunnel && (d.TunType != 0 || d.TunPort != 0 || d.TunFlags != 0) {
		return fmt.Errorf("destination %s of %s: tunnel options with forwarding method %s: use -i or drop --tun-type/--tun-port/--tun-*csum: %w",
			d.Addr, k, d.Fwd, ErrInvalid)
	}
	if d.Addr.Addr().Is4() != k.Addr.Is4() && d.Fwd == FwdTunnel {
		return fmt.Errorf("destination %s of %s: a tunnel to a real server of the other address family is %w yet: give a real server address of the service's family", d.Addr, k, ErrNotSupported)
	}
	if d.Addr.Addr().Is4() != k.Addr.Is4() {
		// NAT64: an IPv6 service, IPv4 real servers behind FullNAT, whose
		// translation replaces the IP header (nat.To4/To6); a real server
		// that gets the client's packet as sent (-g) cannot change family
		switch {
		case k.Addr.Is4():
			return fmt.Errorf("destination %s of %s: an IPv6 real server behind an IPv4 service (NAT46) is %w: give an IPv4 real server", d.Addr, k, ErrNotSupported)
		case d.Fwd == FwdRoute:
			return fmt.Errorf("destination %s of %s: direct routing (-g) to a real server of the other address family is impossible (it gets the client's IPv6 packet unchanged): use FullNAT (-b) for NAT64: %w", d.Addr, k, ErrInvalid)
		case d.Fwd != FwdFullNAT:
			return fmt.Errorf("destination %s of %s: address family differs from the service: NAT64 needs FullNAT (-b), not %s: %w", d.Addr, k, d.Fwd, ErrNotSupported)
		}
	}
	if d.Weight < 0 || d.Weight > 65535 {
		return fmt.Errorf("destination %s of %s: weight %d: use 0-65535: %w", d.Addr, k, d.Weight, ErrInvalid)
	}
	if d.Lower > d.Upper && d.Upper != 0 {
		return fmt.Errorf("destination %s of %s: lower threshold %d above upper %d: %w", d.Addr, k, d.Lower, d.Upper, ErrInvalid)
	}
	switch d.Fwd {
	case FwdFullNAT:
	case FwdRoute:
		// DR rewrites only the MAC: the real server gets the packet for the
		// virtual address and port as the client sent it
		if p := d.Addr.Port(); p != 0 && p != k.Port {
			return fmt.Errorf("destination %s of %s: direct routing (-g) cannot change the port: give the service's port %d or none: %w",
				d.Addr, k, k.Port, ErrInvalid)
		}
	case FwdTunnel:
		// the real server decapsulates the packet for the virtual address
		// and port as the client sent it
		if p := d.Addr.Port(); p != 0 && p != k.Port {
			return fmt.Errorf("destination %s of %s: a tunnel (-i) cannot change the port: give the service's port %d or none: %w",
				d.Addr, k, k.Port, ErrInvalid)
		}
		if err := d.validateTunnel(k); err != nil {
			return err
		}
	case FwdMasq:
		// the real server answers the client itself, through GVS: its
		// address and port are all that change (dataplane/lbmasq.go)
	case FwdSNAT:
		return fmt.Errorf("destination %s of %s: SNAT (-J) is for match services (-H): use -b, -m, -g or -i here: %w", d.Addr, k, ErrInvalid)
	default:
		return fmt.Errorf("destination %s of %s: no forwarding method: %w", d.Addr, k, ErrInvalid)
	}
	if d.Addr.Port() == 0 && k.Port != 0 {
		return fmt.Errorf("destination %s of %s: port 0: give the real server's port: %w", d.Addr, k, ErrInvalid)
	}
	return nil
}

// validateTunnel checks the tunnel options as ipvsadm's tunnel_opt_check
// and LVS do: ipip takes none, gue needs a port and takes one checksum
// option, gre takes --tun-csum or --tun-nocsum.
func (d *DestSpec) validateTunnel(k ServiceKey) error {
	switch d.TunType {
	case TunIPIP:
		if d.TunPort != 0 || d.TunFlags != 0 {
			return fmt.Errorf("destination %s of %s: an ipip tunnel takes no --tun-port or checksum option: drop them or use --tun-type gue|gre: %w", d.Addr, k, ErrInvalid)
		}
	case TunGUE:
		if d.TunPort == 0 {
			return fmt.Errorf("destination %s of %s: a gue tunnel needs the real server's UDP port: add --tun-port (the port of its fou/gue receiver): %w", d.Addr, k, ErrInvalid)
		}
		if d.TunFlags != 0 && d.TunFlags != TunCsum && d.TunFlags != TunRemCsum {
			return fmt.Errorf("destination %s of %s: tunnel checksum flags %d: give one of --tun-nocsum, --tun-csum, --tun-remcsum: %w", d.Addr, k, d.TunFlags, ErrInvalid)
		}
	case TunGRE:
		if d.TunPort != 0 {
			return fmt.Errorf("destination %s of %s: a gre tunnel has no port: drop --tun-port: %w", d.Addr, k, ErrInvalid)
		}
		if d.TunFlags != 0 && d.TunFlags != TunCsum {
			return fmt.Errorf("destination %s of %s: a gre tunnel takes --tun-csum or --tun-nocsum, not --%s: %w", d.Addr, k, d.TunFlags, ErrInvalid)
		}
	default:
		return fmt.Errorf("destination %s of %s: tunnel type %s: use ipip, gue or gre: %w", d.Addr, k, d.TunType, ErrInvalid)
	}
	return nil
}

// validateMatch checks a SNAT match service (-H): its key is the
// canonical form of a valid match of the key's protocol, and none of the
// virtual-service options apply.
func (s *ServiceSpec) validateMatch() error {
	k := s.Key
	m, err := ParseMatch(k.Match)
	if err != nil {
		return fmt.Errorf("service %s: %w", k, err)
	}
	if m.Proto != k.Proto || m.String() != k.Match || k.Addr.IsValid() || k.Port != 0 {
		return fmt.Errorf("service %s: the key is not the match's canonical form %q for %s: %w", k, m.String(), m.Proto, ErrInvalid)
	}
	if s.Persistent || s.OnePacket || s.SynProxy || s.ProxyProtocol != 0 || s.MidFlow || s.ConnRateLimit != 0 || s.PerSourceRateLimit != 0 {
		return fmt.Errorf("service %s: persistence, -o, -j, --proxy-protocol, --mid-flow and limits are for virtual services, not SNAT match services: drop them: %w", k, ErrInvalid)
	}
	return nil
}

// validateSNAT checks a match service's destination: an SNAT address
// (-r WAN_IP:0 -J) of the match's family, the source its connections
// take (ports from the workers' pools, as local addresses).
func (d *DestSpec) validateSNAT(k ServiceKey) error {
	if d.Fwd != FwdSNAT {
		return fmt.Errorf("destination %s of %s: a match service's destinations are SNAT addresses: add -J: %w", d.Addr, k, ErrInvalid)
	}
	if d.Addr.Port() != 0 {
		return fmt.Errorf("destination %s of %s: an SNAT address takes no port: give %s:0: %w", d.Addr, k, d.Addr.Addr(), ErrInvalid)
	}
	if m, err := ParseMatch(k.Match); err != nil || m.V6() != d.Addr.Addr().Is6() {
		return fmt.Errorf("destination %s of %s: address family differs from the match: %w", d.Addr, k, ErrInvalid)
	}
	if d.Weight < 0 || d.Weight > 65535 || d.TunType != 0 || d.TunPort != 0 || d.TunFlags != 0 {
		return fmt.Errorf("destination %s of %s: weight 0-65535 and no tunnel options: %w", d.Addr, k, ErrInvalid)
	}
	return nil
}
