package ipvsadm

import (
	"net/netip"
	"strconv"
	"strings"
)

// Names turns ports into service names and back (getservbyname,
// getservbyport), and addresses into host names (gethostbyaddr). The
// parser uses PortByName for ports such as "http"; listings without -n use
// the other two. A nil Names is purely numeric. Host names are never
// resolved to addresses: a host that is not a numeric address is refused
// with ipvsadm's message.
type Names interface {
	PortByName(name, proto string) (uint16, bool)
	ServiceByPort(port uint16, proto string) (string, bool)
	HostByAddr(a netip.Addr) (string, bool)
}

// IP protocol numbers, as ipvsadm keeps them.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132
)

// protoKey is the protocol's lower-case name, as in /etc/services.
func protoKey(p int) string {
	switch p {
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	case protoSCTP:
		return "sctp"
	case protoICMP:
		return "icmp"
	case protoICMPv6:
		return "icmpv6"
	}
	return ""
}

// protoFromName maps the API's protocol names ("TCP", "UDP", …).
func protoFromName(s string) int {
	switch strings.ToUpper(s) {
	case "TCP":
		return protoTCP
	case "UDP":
		return protoUDP
	case "SCTP":
		return protoSCTP
	case "ICMP":
		return protoICMP
	case "ICMPV6":
		return protoICMPv6
	}
	return 0
}

// parse_service's result bits.
const (
	serviceNone = 0
	serviceAddr = 1
	servicePort = 2
)

// parseService is ipvsadm's parse_service: "[v6]:port", "v6", "v4[:port]"
// with v4 in inet_aton's forms, port numeric or a service name of proto.
func parseService(buf string, proto int, names Names) (addr netip.Addr, port uint16, result int) {
	if strDigits(buf) {
		return addr, 0, serviceNone
	}
	var portStr string
	havePort := false
	if strings.HasPrefix(buf, "[") {
		buf = buf[1:]
		i := strings.IndexByte(buf, ']')
		if i < 0 {
			return addr, 0, serviceNone
		}
		after := buf[i+1:]
		buf = buf[:i]
		if !strings.HasPrefix(after, ":") {
			return addr, 0, serviceNone
		}
		portStr, havePort = after[1:], true
	}
	if a, ok := parseIPv6(buf); ok {
		addr = a
	} else {
		// the port is looked for again, in what is left of buf: an IPv4
		// address in brackets loses its port, as in ipvsadm
		havePort = false
		if i := strings.LastIndexByte(buf, ':'); i >= 0 {
			portStr, havePort = buf[i+1:], true
			buf = buf[:i]
		}
		a, ok := inetAton(buf)
		if !ok {
			return addr, 0, serviceNone
		}
		addr = a
	}
	result = serviceAddr
	if havePort {
		result |= servicePort
		if n := stringToNumber(portStr, 0, 65535); n != -1 {
			port = uint16(n)
		} else if p, ok := lookupPort(names, portStr, proto); ok {
			port = p
		} else {
			return netip.Addr{}, 0, serviceNone
		}
	}
	return addr, port, result
}

func lookupPort(names Names, name string, proto int) (uint16, bool) {
	key := protoKey(proto)
	if names == nil || key == "" {
		return 0, false
	}
	return names.PortByName(name, key)
}

// strDigits is str_is_digit: true for "" and for all-digit strings.
func strDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseIPv6 accepts what inet_pton(AF_INET6) accepts: no zones.
func parseIPv6(s string) (netip.Addr, bool) {
	if !strings.Contains(s, ":") || strings.Contains(s, "%") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return netip.Addr{}, false
	}
	return a, true
}

// inetAton is glibc's inet_aton: one to four parts, each decimal, octal
// (leading 0) or hex (0x); the last part fills the remaining bytes; white
// space ends the address.
func inetAton(s string) (netip.Addr, bool) {
	var parts []uint64
	i := 0
	for {
		if i >= len(s) || !(s[i] >= '0' && s[i] <= '9') {
			return netip.Addr{}, false
		}
		base := uint64(10)
		if s[i] == '0' {
			base = 8
			i++
			if i < len(s) && (s[i] == 'x' || s[i] == 'X') {
				base = 16
				i++
			}
		}
		var v uint64
		for i < len(s) {
			d := uint64(digitVal(s[i]))
			if d >= base {
				break
			}
			v = v*base + d
			if v > 0xffffffff {
				return netip.Addr{}, false
			}
			i++
		}
		parts = append(parts, v)
		if i < len(s) && s[i] == '.' {
			if len(parts) == 4 {
				return netip.Addr{}, false
			}
			i++
			continue
		}
		break
	}
	if i < len(s) && !isSpace(s[i]) {
		return netip.Addr{}, false
	}
	var val uint64
	switch len(parts) {
	case 1:
		val = parts[0]
	case 2:
		if parts[0] > 0xff || parts[1] > 0xffffff {
			return netip.Addr{}, false
		}
		val = parts[0]<<24 | parts[1]
	case 3:
		if parts[0] > 0xff || parts[1] > 0xff || parts[2] > 0xffff {
			return netip.Addr{}, false
		}
		val = parts[0]<<24 | parts[1]<<16 | parts[2]
	case 4:
		if parts[0] > 0xff || parts[1] > 0xff || parts[2] > 0xff || parts[3] > 0xff {
			return netip.Addr{}, false
		}
		val = parts[0]<<24 | parts[1]<<16 | parts[2]<<8 | parts[3]
	}
	return netip.AddrFrom4([4]byte{byte(val >> 24), byte(val >> 16), byte(val >> 8), byte(val)}), true
}

// addrPortName is ipvsadm's addrport_to_anyname: "[v6]:port" or "v4:port",
// numeric, or with names when names are given; at most 59 bytes, like
// ipvsadm's 60-byte buffer.
func addrPortName(a netip.Addr, port uint16, proto int, names Names) string {
	host, svc := "", ""
	if names != nil {
		if h, ok := names.HostByAddr(a); ok && h != "" {
			host = h
		}
		if key := protoKey(proto); key != "" {
			if s, ok := names.ServiceByPort(port, key); ok && s != "" {
				svc = s
			}
		}
	}
	if host == "" {
		host = a.String()
	}
	if svc == "" {
		svc = strconv.Itoa(int(port))
	}
	var s string
	if a.Is4() {
		s = host + ":" + svc
	} else {
		s = "[" + host + "]:" + svc
	}
	if len(s) > 59 {
		s = s[:59]
	}
	return s
}
