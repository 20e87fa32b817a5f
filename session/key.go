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

// KeyAt returns the key of a validated packet whose transport header the
// L3 stage located (header.LocateIPv4/LocateIPv6): the addresses from the
// IP header and the ports from t, without parsing the packet again. ok is
// false unless the packet is TCP or UDP with its ports present.
func KeyAt(pkt []byte, t header.Transport) (k Key, ok bool) {
	if t.Proto != header.ProtoTCP && t.Proto != header.ProtoUDP {
		return Key{}, false
	}
	sp, dp, ok := t.Ports(pkt)
	if !ok {
		return Key{}, false
	}
	k = Key{Proto: t.Proto, SrcPort: sp, DstPort: dp}
	if t.V6() {
		copy(k.Src[:], pkt[8:24])
		copy(k.Dst[:], pkt[24:40])
		return k, true
	}
	const mapped = 0xffff << 16
	binary.LittleEndian.PutUint64(k.Src[8:], mapped|uint64(binary.LittleEndian.Uint32(pkt[12:]))<<32)
	binary.LittleEndian.PutUint64(k.Dst[8:], mapped|uint64(binary.LittleEndian.Uint32(pkt[16:]))<<32)
	return k, true
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
