package nat

// UOA in the "opp" mode (DPVS's "Option Protocol", IP protocol 248): the
// IPv4 option of the "ipo" mode (uoa.go) has no IPv6 form, some switches
// drop or rate-limit IPv4 packets with options, and an IPv4 header cannot
// carry an IPv6 address. So the client's address travels in a small
// header of its own between the IP header (with its options or extension
// headers) and the UDP header:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-------+-------+---------------+-------------------------------+
//	|  Ver  | Rsvd  |   Protocol    |            Length             |
//	+-------+-------+---------------+-------------------------------+
//	|  Kind = 31    |  Len = 8/20   |          Client port          |
//	+---------------+---------------+-------------------------------+
//	|          Client address (4 or 16 bytes)                       |
//	+---------------------------------------------------------------+
//	|          UDP header and payload, unchanged                    |
//
// Ver names the family of the address in the option (1 IPv4, 2 IPv6), not
// of the packet: a NAT64 connection's IPv4 datagrams carry version 2 and a
// 20-byte option. Protocol is the next protocol (UDP); Length covers the
// fixed 4 bytes and the options, not the payload. The options area uses the
// IPv4 option format; the UOA option is kind 31 (IPOPT_UOA = 31 |
// IPOPT_CONTROL, which is 0).
//
// The IP header's protocol (IPv4) or last next header (IPv6) becomes 248
// and its length grows; the UDP header and its checksum stay as they
// were: the real server's UOA module takes the header out again (IPv4: it
// turns it into NOP options and restores the protocol; IPv6: it moves the
// datagram back and restores the next header and payload length), so the
// UDP checksum is verified against the pseudo-header with protocol 17 and
// the UDP length, which is what it was computed over.

import (
	"encoding/binary"
	"net/netip"

	"github.com/gvs-lb/gvs/header"
)

const (
	// ProtoOPP is the IP protocol number of the opp header.
	ProtoOPP = 248
	// OPPHeaderLen is the fixed part of the opp header.
	OPPHeaderLen = 4
	// OPPVersionIPv4 and OPPVersionIPv6: the version nibble, the family
	// of the address the UOA option carries.
	OPPVersionIPv4 = 1
	OPPVersionIPv6 = 2
	// UOALen6 is the UOA option's length with an IPv6 address.
	UOALen6 = 20

	maxOPPExtHeaders = 8
)

// OPPLen returns how many bytes InsertOPP adds for a client of this
// address: 12 for IPv4, 24 for IPv6.
func OPPLen(client netip.Addr) int {
	if client.Unmap().Is4() {
		return OPPHeaderLen + UOALen
	}
	return OPPHeaderLen + UOALen6
}

// InsertOPP puts the opp header with the UOA option for client between the
// IP header and the UDP header of the datagram at b.Bytes()[l3off:] (IPv4
// with or without options, or IPv6 behind hop-by-hop, destination options
// and routing headers; validated, not a fragment): everything in front of
// the UDP header (L2 and IP headers) moves OPPLen(client) bytes towards
// the front into the buffer's headroom, so b.L3 stays valid; the IP
// protocol or last next header becomes ProtoOPP, the IP length grows and
// the IPv4 header checksum is updated. The UDP header and checksum are
// unchanged. The client may be of either family whatever the packet's.
// Errors leave the packet unchanged: ErrMalformed (not a UDP datagram, an
// unknown extension header), ErrFragment, ErrTooBig, ErrHeadroom.
func InsertOPP(b Buffer, l3off int, client netip.AddrPort) error {
	p := b.Bytes()
	if l3off < 0 || len(p) < l3off+header.IPv4MinSize {
		return ErrMalformed
	}
	ip := p[l3off:]
	n := OPPLen(client.Addr())
	var hlen, nh int // the IP headers in front of UDP; where the protocol byte naming UDP is
	switch ip[0] >> 4 {
	case 4:
		v4 := header.IPv4(ip)
		hlen, nh = v4.HeaderLen(), 9
		if hlen < header.IPv4MinSize || len(ip) < hlen+header.UDPSize || v4.Protocol() != header.ProtoUDP {
			return ErrMalformed
		}
		if v4.IsFragment() {
			return ErrFragment
		}
		if int(v4.TotalLen())+n > 0xffff {
			return ErrTooBig
		}
	case 6:
		if len(ip) < header.IPv6MinSize {
			return ErrMalformed
		}
		hlen, nh = header.IPv6MinSize, 6
		for i := 0; ip[nh] != header.ProtoUDP; i++ {
			switch ip[nh] {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if i == maxOPPExtHeaders || len(ip) < hlen+8 {
					return ErrMalformed
				}
				nh, hlen = hlen, hlen+(int(ip[hlen+1])+1)*8
			case 44:
				return ErrFragment
			default:
				return ErrMalformed
			}
		}
		if len(ip) < hlen+header.UDPSize {
			return ErrMalformed
		}
		if int(header.IPv6(ip).PayloadLen())+n > 0xffff {
			return ErrTooBig
		}
	default:
		return ErrMalformed
	}
	if b.Prepend(n) == nil {
		return ErrHeadroom
	}
	p = b.Bytes()
	front := l3off + hlen
	copy(p[:front], p[n:n+front])
	o := p[front : front+n]
	a := client.Addr().Unmap()
	o[0] = OPPVersionIPv4 << 4
	if !a.Is4() {
		o[0] = OPPVersionIPv6 << 4
	}
	o[1] = header.ProtoUDP
	binary.BigEndian.PutUint16(o[2:], uint16(n))
	o[4], o[5] = UOAKind, byte(n-OPPHeaderLen)
	binary.BigEndian.PutUint16(o[6:], client.Port())
	if a.Is4() {
		a4 := a.As4()
		copy(o[8:], a4[:])
	} else {
		a16 := a.As16()
		copy(o[8:], a16[:])
	}
	ip = p[l3off:]
	ip[nh] = ProtoOPP
	if ip[0]>>4 == 4 {
		v4 := header.IPv4(ip)
		v4.SetTotalLen(v4.TotalLen() + uint16(n))
		v4.SetChecksum(0)
		v4.SetChecksum(^header.Checksum(ip[:hlen], 0))
	} else {
		v6 := header.IPv6(ip)
		v6.SetPayloadLen(v6.PayloadLen() + uint16(n))
	}
	return nil
}

// ParseOPP reads an opp header at the start of b (what follows the IP
// header of a protocol-248 packet, as an IPv6 raw socket delivers it) and
// returns the client its UOA option names and the UDP datagram behind it
// (header and payload, cut to the UDP length). ok is false when b is not a
// well-formed opp header (reserved bits set, a next protocol other than
// UDP, a length outside b, no UOA option of the version's family) or the
// UDP header is truncated.
func ParseOPP(b []byte) (client netip.AddrPort, udp []byte, ok bool) {
	if len(b) < OPPHeaderLen || b[0]&0x0f != 0 || b[1] != header.ProtoUDP {
		return client, nil, false
	}
	l := int(binary.BigEndian.Uint16(b[2:]))
	if l < OPPHeaderLen || l > len(b) {
		return client, nil, false
	}
	alen := 4
	switch b[0] >> 4 {
	case OPPVersionIPv4:
	case OPPVersionIPv6:
		alen = 16
	default:
		return client, nil, false
	}
	if client, ok = findUOA(b[OPPHeaderLen:l], alen); !ok {
		return client, nil, false
	}
	udp = b[l:]
	if len(udp) < header.UDPSize {
		return netip.AddrPort{}, nil, false
	}
	if ul := int(binary.BigEndian.Uint16(udp[4:])); ul >= header.UDPSize && ul <= len(udp) {
		return client, udp[:ul], true
	}
	return netip.AddrPort{}, nil, false
}
