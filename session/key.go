package session

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/gvs-lb/gvs/header"
)

// Key identifies one direction of a connection: the packet's protocol,
// source and destination. It is a comparable fixed-size value, usable as a
// map key without allocation. Addresses are 16-byte, IPv4 v4-mapped (see
// Conn); ports are in host byte order.
type Key struct {
	Proto            uint8
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
}

// MakeKey returns the key of a packet from src to dst.
func MakeKey(proto uint8, src, dst netip.AddrPort) Key {
	return Key{Proto: proto, Src: src.Addr().As16(), Dst: dst.Addr().As16(),
		SrcPort: src.Port(), DstPort: dst.Port()}
}

// KeyFromBytes returns the key of a packet whose addresses are given as
// 4-byte (IPv4) or 16-byte (IPv6) slices, as header views return them.
// ok is false if an address has another length.
func KeyFromBytes(proto uint8, src, dst []byte, srcPort, dstPort uint16) (k Key, ok bool) {
	k = Key{Proto: proto, SrcPort: srcPort, DstPort: dstPort}
	if !put16(&k.Src, src) || !put16(&k.Dst, dst) {
		return Key{}, false
	}
	return k, true
}

// put16 stores a 4- or 16-byte address in its 16-byte form.
func put16(d *[16]byte, a []byte) bool {
	switch len(a) {
	case 4:
		*d = [16]byte{10: 0xff, 11: 0xff}
		copy(d[12:], a)
	case 16:
		copy(d[:], a)
	default:
		return false
	}
	return true
}

// IPv6 extension headers ParseKey walks over.
const (
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6DestOpts = 60

	maxExtHeaders = 8
)

// ParseKey returns the key of a TCP or UDP packet starting at its IPv4 or
// IPv6 header. ok is false for anything else: other protocols, truncated
// headers, non-first fragments (no ports), or more than 8 IPv6 extension
// headers. Only what the key needs is checked; validate the packet itself
// with the header package.
func ParseKey(pkt []byte) (k Key, ok bool) {
	if len(pkt) == 0 {
		return Key{}, false
	}
	switch pkt[0] >> 4 {
	case 4:
		return parseKey4(pkt)
	case 6:
		return parseKey6(pkt)
	}
	return Key{}, false
}

func parseKey4(pkt []byte) (Key, bool) {
	if len(pkt) < header.IPv4MinSize {
		return Key{}, false
	}
	hl := int(pkt[0]&0x0f) * 4
	if hl < header.IPv4MinSize || len(pkt) < hl+4 {
		return Key{}, false
	}
	if binary.BigEndian.Uint16(pkt[6:])&0x1fff != 0 { // fragment offset
		return Key{}, false
	}
	proto := pkt[9]
	if proto != header.ProtoTCP && proto != header.ProtoUDP {
		return Key{}, false
	}
	k := Key{Proto: proto,
		SrcPort: binary.BigEndian.Uint16(pkt[hl:]), DstPort: binary.BigEndian.Uint16(pkt[hl+2:])}
	// the v4-mapped form's last 8 bytes, ::ffff:a.b.c.d, as one store each
	const mapped = 0xffff << 16
	binary.LittleEndian.PutUint64(k.Src[8:], mapped|uint64(binary.LittleEndian.Uint32(pkt[12:]))<<32)
	binary.LittleEndian.PutUint64(k.Dst[8:], mapped|uint64(binary.LittleEndian.Uint32(pkt[16:]))<<32)
	return k, true
}

func parseKey6(pkt []byte) (Key, bool) {
	if len(pkt) < header.IPv6MinSize {
		return Key{}, false
	}
	nh, off := pkt[6], header.IPv6MinSize
	for range maxExtHeaders + 1 { // the extension headers, then TCP/UDP
		switch nh {
		case header.ProtoTCP, header.ProtoUDP:
			if len(pkt) < off+4 {
				return Key{}, false
			}
			k := Key{Proto: nh,
				SrcPort: binary.BigEndian.Uint16(pkt[off:]), DstPort: binary.BigEndian.Uint16(pkt[off+2:])}
			copy(k.Src[:], pkt[8:24])
			copy(k.Dst[:], pkt[24:40])
			return k, true
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts:
			if len(pkt) < off+2 {
				return Key{}, false
			}
			nh, off = pkt[off], off+(int(pkt[off+1])+1)*8
		case ipv6Fragment:
			if len(pkt) < off+8 || binary.BigEndian.Uint16(pkt[off+2:])>>3 != 0 {
				return Key{}, false
			}
			nh, off = pkt[off], off+8
		default:
			return Key{}, false
		}
	}
	return Key{}, false
}

// SrcAddrPort returns the source; IPv4 addresses come back unmapped.
func (k Key) SrcAddrPort() netip.AddrPort { return addrPortOf(&k.Src, k.SrcPort) }

// DstAddrPort returns the destination; IPv4 addresses come back unmapped.
func (k Key) DstAddrPort() netip.AddrPort { return addrPortOf(&k.Dst, k.DstPort) }

// Reverse returns the key of the opposite direction of the same flow.
func (k Key) Reverse() Key {
	return Key{Proto: k.Proto, Src: k.Dst, Dst: k.Src, SrcPort: k.DstPort, DstPort: k.SrcPort}
}

// String formats the key as "TCP 10.0.0.1:1234->10.0.0.2:80".
func (k Key) String() string {
	return fmt.Sprintf("%s %s->%s", protoName(k.Proto), k.SrcAddrPort(), k.DstAddrPort())
}

func protoName(p uint8) string {
	switch p {
	case header.ProtoTCP:
		return "TCP"
	case header.ProtoUDP:
		return "UDP"
	}
	return fmt.Sprintf("proto-%d", p)
}
