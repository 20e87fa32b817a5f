package header

// Where a packet's transport header is: found once per packet by the L3
// stage, with one rule for fragments and IPv6 extension headers, and used
// by every later stage (connection lookup, state, rewriting) instead of
// each parsing the IP header again.

import "encoding/binary"

// Transport locates the transport header of a validated IP packet. It has
// four fields so that it travels in registers.
type Transport struct {
	Off   uint16 // offset of the transport header from the IP header
	End   uint16 // end of the IP datagram (its total length)
	Proto uint8  // the transport protocol: IPv4 protocol, IPv6 last next header
	Flags uint8  // TransportV6, TransportFragment, TransportNoL4
}

// Transport flags.
const (
	TransportV6 uint8 = 1 << iota
	// TransportFragment: the packet is a fragment (IPv4 MF or an offset;
	// an IPv6 fragment header).
	TransportFragment
	// TransportNoL4: no transport header follows where Off says — a
	// fragment other than the first (Off: where its data starts; Proto:
	// the IPv4 protocol or the IPv6 fragment header's next header, the same
	// in every fragment of a datagram), an IPv6 routing header with segments
	// left (the packet is not for this node), too many extension headers,
	// or a header that runs past the datagram. Proto is then not a
	// transport protocol to act on.
	TransportNoL4
)

// IPv6 extension headers walked to find the transport header (RFC 8200
// §4.1 order); ESP, AH and the others end the walk as the protocol.
const (
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6DestOpts = 60

	maxIPv6ExtHeaders = 8
)

// IPv6OptionsNext reports whether next header p is an extension header a
// later fragment's data may start with (hop-by-hop, routing, destination
// options): what follows is unknown until the first fragment is seen.
func IPv6OptionsNext(p uint8) bool {
	return p == ipv6HopByHop || p == ipv6Routing || p == ipv6DestOpts
}

// V6 reports an IPv6 packet.
func (t Transport) V6() bool { return t.Flags&TransportV6 != 0 }

// Fragment reports a fragment (first or not).
func (t Transport) Fragment() bool { return t.Flags&TransportFragment != 0 }

// HasL4 reports whether a transport header of Proto starts at Off.
func (t Transport) HasL4() bool { return t.Flags&TransportNoL4 == 0 }

// Ports returns a TCP or UDP packet's ports; ok is false when the packet
// has no transport header or it is shorter than 4 bytes.
func (t Transport) Ports(l3 []byte) (src, dst uint16, ok bool) {
	if !t.HasL4() || int(t.Off)+4 > int(t.End) || int(t.End) > len(l3) {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(l3[t.Off:]), binary.BigEndian.Uint16(l3[t.Off+2:]), true
}

// TCPFlags returns a TCP segment's flags byte, 0 for anything else.
func (t Transport) TCPFlags(l3 []byte) uint8 {
	if t.Proto != ProtoTCP || !t.HasL4() || int(t.Off)+TCPMinSize > int(t.End) || int(t.End) > len(l3) {
		return 0
	}
	return TCP(l3[t.Off:]).Flags()
}

// Payload returns the transport payload of a UDP datagram (nil for
// anything else).
func (t Transport) UDPPayload(l3 []byte) []byte {
	if t.Proto != ProtoUDP || !t.HasL4() || int(t.Off)+UDPSize > int(t.End) || int(t.End) > len(l3) {
		return nil
	}
	return l3[int(t.Off)+UDPSize : t.End]
}

// LocateIPv4 locates the transport header of a validated IPv4 packet
// (Validate returned Valid; ip is trimmed to its total length).
func LocateIPv4(ip IPv4) Transport {
	t := Transport{Off: uint16(ip.HeaderLen()), End: uint16(len(ip)), Proto: ip.Protocol()}
	ff := ip.FlagsFrag()
	if ff&(IPv4MoreFragments|IPv4FragOffset) != 0 {
		t.Flags |= TransportFragment
		if ff&IPv4FragOffset != 0 {
			t.Flags |= TransportNoL4
		}
	}
	return t
}

// LocateIPv6 locates the transport header of a validated IPv6 packet
// (trimmed to its payload length), walking hop-by-hop, destination
// options, routing (with no segment left) and fragment headers.
func LocateIPv6(ip IPv6) Transport {
	t, _ := LocateIPv6Frag(ip)
	return t
}

// LocateIPv6Frag is LocateIPv6 that also returns the offset of the
// fragment header (its identification is at frag+4), 0 when the walk met
// none: the fragment path keys a datagram's fragments by it.
func LocateIPv6Frag(ip IPv6) (t Transport, frag int) {
	t = Transport{Off: IPv6MinSize, End: uint16(len(ip)), Proto: ip.NextHeader(), Flags: TransportV6}
	off := IPv6MinSize
	for range maxIPv6ExtHeaders + 1 { // the extension headers, then the transport header
		switch t.Proto {
		case ipv6HopByHop, ipv6DestOpts, ipv6Routing:
			if len(ip) < off+8 {
				t.Flags |= TransportNoL4
				return t, frag
			}
			if t.Proto == ipv6Routing && ip[off+3] != 0 { // segments left: not the final destination
				t.Flags |= TransportNoL4
				return t, frag
			}
			t.Proto, off = ip[off], off+(int(ip[off+1])+1)*8
		case ipv6Fragment:
			if len(ip) < off+8 {
				t.Flags |= TransportNoL4
				return t, frag
			}
			t.Flags |= TransportFragment
			frag = off
			later := binary.BigEndian.Uint16(ip[off+2:])>>3 != 0
			t.Proto, off = ip[off], off+8
			if later { // an offset: data, no header here; Off is where it starts
				t.Flags |= TransportNoL4
				t.Off = uint16(off)
				return t, frag
			}
		default:
			if off > len(ip) {
				t.Flags |= TransportNoL4
				return t, frag
			}
			t.Off = uint16(off)
			return t, frag
		}
	}
	t.Flags |= TransportNoL4 // more extension headers than anyone sends
	return t, frag
}

// Locate validates the IPv4 or IPv6 header at the start of l3 and locates
// its transport header (within the datagram's stated length; trailing
// bytes are ignored). ok is false for anything that does not validate.
func Locate(l3 []byte) (t Transport, ok bool) {
	if len(l3) == 0 {
		return t, false
	}
	switch l3[0] >> 4 {
	case 4:
		ip := IPv4(l3)
		if ip.Validate() != Valid {
			return t, false
		}
		return LocateIPv4(ip[:ip.TotalLen()]), true
	case 6:
		ip := IPv6(l3)
		if ip.Validate() != Valid {
			return t, false
		}
		return LocateIPv6(ip[:IPv6MinSize+int(ip.PayloadLen())]), true
	}
	return t, false
}
