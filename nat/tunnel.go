package nat

// Tunnel encapsulation for LVS's tunnel method (ipvsadm -i): the client's
// IP packet, untouched, behind an outer IP header towards the real server
// — IPIP (protocol 4 for IPv4 inside, 41 for IPv6 inside), GRE (protocol
// 47, the RFC 2784 base header with an optional checksum; protocol type
// 0x0800 or 0x86DD by the inner family, as the Linux gre/ip6gre devices
// expect) or GUE (UDP to the real server's port, then the 4-byte variant 0
// header of draft-ietf-intarea-gue as the Linux fou module's gue mode
// reads it: version 0, no control flag, no extension fields, protocol of
// the inner packet). The outer family is the inner one's.
//
// EncapHeader writes into bytes the caller has already made room for in
// front of the inner packet (the buffer's headroom): nothing is copied or
// allocated. Decap is the other side, for GVS's userspace test receiver
// and for checking what EncapHeader wrote; it parses untrusted input.

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/gvs-lb/gvs/header"
)

// EncapKind is a tunnel's encapsulation.
type EncapKind uint8

const (
	EncapIPIP EncapKind = iota
	EncapGUE
	EncapGRE
)

// Sizes of what EncapHeader adds after the outer IP header.
const (
	GREHeaderLen  = 4 // flags and version, protocol type
	GRECsumLen    = 4 // checksum and reserved1, when the C bit is set
	UDPHeaderLen  = 8
	GUEHeaderLen  = 4
	TunnelTTL     = 64 // outer TTL / hop limit
	ProtoGRE      = 47 // the IP protocol number of GRE
	greCsumFlag   = 0x8000
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
)

// Encap describes the outer headers of one packet.
type Encap struct {
	Kind EncapKind
	// Src and Dst are the outer addresses, of the inner packet's family.
	Src, Dst netip.Addr
	// SrcPort and DstPort are GUE's UDP ports (the source port carries
	// the flow's entropy for the receiver's RSS).
	SrcPort, DstPort uint16
	// Csum asks for the GRE checksum or a UDP checksum (GUE); without it
	// GUE's UDP checksum is 0 (for IPv6 the receiver must accept zero
	// UDP checksums on the port, RFC 6935).
	Csum bool
	// ID is the outer IPv4 header's identification.
	ID uint16
}

// EncapLen returns how many bytes EncapHeader puts in front of an inner
// packet of family v6.
func EncapLen(kind EncapKind, v6, csum bool) int {
	n := header.IPv4MinSize
	if v6 {
		n = header.IPv6MinSize
	}
	switch kind {
	case EncapGRE:
		n += GREHeaderLen
		if csum {
			n += GRECsumLen
		}
	case EncapGUE:
		n += UDPHeaderLen + GUEHeaderLen
	}
	return n
}

// innerProto is the IP protocol number of the inner packet.
func innerProto(inner []byte) uint8 {
	if inner[0]>>4 == 6 {
		return header.ProtoIPv6
	}
	return header.ProtoIPIP
}

// EncapHeader writes the outer headers for inner into hdr, which holds
// exactly EncapLen bytes and sits right in front of inner. inner is a
// complete IP packet with final checksums; the outer header takes its
// DSCP/ECN byte, and for IPv4 its DF bit (set: the path MTU is the
// client's to learn; clear: the outer packet may be fragmented on the
// way), for IPv6 its flow label.
func EncapHeader(hdr, inner []byte, e *Encap) {
	v6 := inner[0]>>4 == 6
	var tos uint8
	var flow uint32
	var df uint16
	if v6 {
		w := binary.BigEndian.Uint32(inner)
		tos, flow = uint8(w>>20), w&0xfffff
	} else {
		ip := header.IPv4(inner)
		tos = ip.TOS()
		df = ip.FlagsFrag() & header.IPv4DontFragment
	}
	total := len(hdr) + len(inner)
	proto := innerProto(inner)
	l4 := header.IPv4MinSize
	if v6 {
		l4 = header.IPv6MinSize
	}
	outerProto := proto
	switch e.Kind {
	case EncapGRE:
		outerProto = ProtoGRE
		g := hdr[l4:]
		et := uint16(etherTypeIPv4)
		if v6 {
			et = etherTypeIPv6
		}
		binary.BigEndian.PutUint16(g[2:], et)
		if e.Csum {
			binary.BigEndian.PutUint16(g[0:], greCsumFlag)
			binary.BigEndian.PutUint32(g[4:], 0)
			s := header.Checksum(g[:GREHeaderLen+GRECsumLen], 0)
			s = header.Checksum(inner, s)
			binary.BigEndian.PutUint16(g[4:], ^s)
		} else {
			binary.BigEndian.PutUint16(g[0:], 0)
		}
	case EncapGUE:
		outerProto = header.ProtoUDP
		u := hdr[l4:]
		ulen := uint16(total - l4)
		binary.BigEndian.PutUint16(u[0:], e.SrcPort)
		binary.BigEndian.PutUint16(u[2:], e.DstPort)
		binary.BigEndian.PutUint16(u[4:], ulen)
		binary.BigEndian.PutUint16(u[6:], 0)
		g := u[UDPHeaderLen:]
		g[0], g[1] = 0, proto // variant 0, C 0, Hlen 0
		binary.BigEndian.PutUint16(g[2:], 0)
		if e.Csum {
			var ph uint16
			if v6 {
				s, d := e.Src.As16(), e.Dst.As16()
				ph = header.PseudoHeaderChecksum(header.ProtoUDP, s[:], d[:], ulen)
			} else {
				s, d := e.Src.As4(), e.Dst.As4()
				ph = header.PseudoHeaderChecksum(header.ProtoUDP, s[:], d[:], ulen)
			}
			s := header.Checksum(u[:UDPHeaderLen+GUEHeaderLen], ph)
			s = ^header.Checksum(inner, s)
			if s == 0 {
				s = 0xffff
			}
			binary.BigEndian.PutUint16(u[6:], s)
		}
	}
	if v6 {
		header.IPv6(hdr).Encode(&header.IPv6Fields{TrafficClass: tos, FlowLabel: flow, PayloadLen: uint16(total - header.IPv6MinSize),
			NextHeader: outerProto, HopLimit: TunnelTTL, Src: e.Src, Dst: e.Dst})
		return
	}
	header.IPv4(hdr).Encode(&header.IPv4Fields{TOS: tos, TotalLen: uint16(total), ID: e.ID, Flags: df, TTL: TunnelTTL,
		Protocol: outerProto, Src: e.Src, Dst: e.Dst})
}

// Errors of Decap.
var (
	ErrNotTunnel   = errors.New("not a tunnel packet")
	ErrBadTunnel   = errors.New("malformed tunnel header")
	ErrBadChecksum = errors.New("bad tunnel checksum")
	ErrBadInner    = errors.New("inner packet is not a whole IP packet")
)

// Decap returns the inner IP packet of pkt, an outer IPv4 or IPv6 packet
// (no extension headers) carrying IPIP, GRE (base header, optional
// checksum, verified) or GUE on UDP port guePort (0: no GUE). The UDP
// checksum, when not 0, is verified. inner aliases pkt.
func Decap(pkt []byte, guePort uint16) (inner []byte, kind EncapKind, err error) {
	if len(pkt) < 1 {
		return nil, 0, ErrNotTunnel
	}
	var proto uint8
	var payload, src, dst []byte
	switch pkt[0] >> 4 {
	case 4:
		ip := header.IPv4(pkt)
		if ip.Validate() != header.Valid || ip.IsFragment() {
			return nil, 0, ErrNotTunnel
		}
		proto, payload, src, dst = ip.Protocol(), ip.Payload(), ip.SrcBytes(), ip.DstBytes()
	case 6:
		ip := header.IPv6(pkt)
		if ip.Validate() != header.Valid {
			return nil, 0, ErrNotTunnel
		}
		t := header.LocateIPv6(ip[:header.IPv6MinSize+int(ip.PayloadLen())]) // past extension headers
		if !t.HasL4() || t.Fragment() {
			return nil, 0, ErrNotTunnel
		}
		proto, payload, src, dst = t.Proto, ip[t.Off:t.End], ip.SrcBytes(), ip.DstBytes()
	default:
		return nil, 0, ErrNotTunnel
	}
	switch proto {
	case header.ProtoIPIP, header.ProtoIPv6:
		inner, err = wholeInner(payload, proto)
		return inner, EncapIPIP, err
	case ProtoGRE:
		inner, err = DecapGRE(payload)
		return inner, EncapGRE, err
	case header.ProtoUDP:
		if guePort == 0 || len(payload) < UDPHeaderLen || binary.BigEndian.Uint16(payload[2:]) != guePort {
			return nil, 0, ErrNotTunnel
		}
		ulen := int(binary.BigEndian.Uint16(payload[4:]))
		if ulen < UDPHeaderLen || ulen > len(payload) {
			return nil, 0, ErrBadTunnel
		}
		payload = payload[:ulen]
		if c := binary.BigEndian.Uint16(payload[6:]); c != 0 {
			ph := header.PseudoHeaderChecksum(header.ProtoUDP, src, dst, uint16(ulen))
			if header.Checksum(payload, ph) != 0xffff {
				return nil, 0, ErrBadChecksum
			}
		}
		inner, err = DecapGUE(payload[UDPHeaderLen:])
		return inner, EncapGUE, err
	}
	return nil, 0, ErrNotTunnel
}

// DecapGRE returns the inner packet of a GRE payload (the bytes after the
// outer IP header): version 0, no routing, key or sequence number, the
// checksum verified when present, protocol type IPv4 or IPv6.
func DecapGRE(p []byte) ([]byte, error) {
	if len(p) < GREHeaderLen {
		return nil, ErrBadTunnel
	}
	flags := binary.BigEndian.Uint16(p)
	if flags&^greCsumFlag != 0 {
		return nil, ErrBadTunnel // version, key, sequence, routing: not what GVS sends
	}
	var proto uint8
	switch binary.BigEndian.Uint16(p[2:]) {
	case etherTypeIPv4:
		proto = header.ProtoIPIP
	case etherTypeIPv6:
		proto = header.ProtoIPv6
	default:
		return nil, ErrBadTunnel
	}
	n := GREHeaderLen
	if flags&greCsumFlag != 0 {
		n += GRECsumLen
		if len(p) < n {
			return nil, ErrBadTunnel
		}
		if header.Checksum(p, 0) != 0xffff {
			return nil, ErrBadChecksum
		}
	}
	return wholeInner(p[n:], proto)
}

// DecapGUE returns the inner packet of a GUE datagram (the UDP payload):
// variant 0 data messages with their extension fields skipped, and
// variant 1 (the IP packet directly).
func DecapGUE(p []byte) ([]byte, error) {
	if len(p) < 1 {
		return nil, ErrBadTunnel
	}
	switch p[0] >> 6 {
	case 1: // variant 1: an IP packet without a GUE header
		switch p[0] >> 4 {
		case 4:
			return wholeInner(p, header.ProtoIPIP)
		case 6:
			return wholeInner(p, header.ProtoIPv6)
		}
		return nil, ErrBadTunnel
	case 0:
	default:
		return nil, ErrBadTunnel
	}
	if len(p) < GUEHeaderLen || p[0]&0x20 != 0 { // a control message carries no packet
		return nil, ErrBadTunnel
	}
	n := GUEHeaderLen + int(p[0]&0x1f)*4
	if len(p) < n {
		return nil, ErrBadTunnel
	}
	if p[1] != header.ProtoIPIP && p[1] != header.ProtoIPv6 {
		return nil, ErrBadTunnel
	}
	return wholeInner(p[n:], p[1])
}

// wholeInner checks that p starts with an IP packet of the family proto
// names (IPIP: IPv4, 41: IPv6) and returns it cut to its own length.
func wholeInner(p []byte, proto uint8) ([]byte, error) {
	if proto == header.ProtoIPIP {
		ip := header.IPv4(p)
		if len(p) < header.IPv4MinSize || p[0]>>4 != 4 || ip.Validate() != header.Valid {
			return nil, ErrBadInner
		}
		return p[:ip.TotalLen()], nil
	}
	ip := header.IPv6(p)
	if len(p) < header.IPv6MinSize || p[0]>>4 != 6 || ip.Validate() != header.Valid {
		return nil, ErrBadInner
	}
	return p[:header.IPv6MinSize+int(ip.PayloadLen())], nil
}
