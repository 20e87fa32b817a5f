package nat

// NAT64 for FullNAT services with an IPv6 virtual address and IPv4 real
// servers: the IP header of each TCP or UDP packet is replaced by one of
// the other family following RFC 7915's header translation, while the
// addresses and ports are set to the connection's other side as Rewrite
// does:
//
//	in:  [IPv6 40 | ext headers] TCP/UDP …  →  [IPv4 20] TCP/UDP …   (To4)
//	out: [IPv4 20 | options]     TCP/UDP …  →  [IPv6 40] TCP/UDP …   (To6)
//
// The transport header and payload never move: the new IP header is written
// right in front of them, so the packet starts 20 bytes later (To4) or
// earlier (To6) in its buffer; the caller moves the buffer's start (the
// returned offset). IPv6 extension headers and IPv4 options are not carried
// over (RFC 7915 §4.1, §5.1).
//
// Field rules (RFC 7915 §4.1 and §5.1, no fragmentation by the translator):
//   - IPv6 → IPv4: TOS = traffic class, TTL = hop limit, protocol = the
//     transport protocol, DF set, MF and offset 0, identification from the
//     caller (a per-worker counter), header checksum computed.
//   - IPv4 → IPv6: traffic class = TOS, flow label 0, hop limit = TTL, next
//     header = protocol. IPv4 fragments are refused (ErrFragment).
//   - The TCP/UDP checksum is updated incrementally: the pseudo-headers of
//     both families sum the length and protocol alike, so only the address
//     and port differences count. A UDP datagram without a checksum (0, legal
//     in IPv4 only) gets one computed on its way to IPv6; one from IPv6 with
//     0 (invalid there) stays 0 in IPv4, where it means "none".
//
// TTL/hop limit are the caller's to decrement, as for Rewrite. Nothing is
// allocated; errors leave the packet unchanged.

import (
	"encoding/binary"

	"github.com/gvs-lb/gvs/header"
)

// NAT64Growth is how much longer a packet is as IPv6 than as IPv4 (without
// IPv4 options or IPv6 extension headers).
const NAT64Growth = header.IPv6MinSize - header.IPv4MinSize

// ipv4DF is the IPv4 don't-fragment flag in the flags/offset word.
const ipv4DF = 0x4000

// To4 translates the IPv6 TCP or UDP packet p (validated and trimmed;
// t located its transport header) to IPv4 with the addresses and ports of
// to (IPv4) and identification id. The IPv4 header is written over the
// last 20 bytes in front of the transport header; start is where the
// translated packet begins: it is p[start:t.End].
//
// Errors: ErrMalformed, ErrFragment (an IPv6 fragment), ErrUnsupportedProto
// unless TCP or UDP, ErrTruncated, ErrFamily unless to is IPv4.
func To4(p []byte, t header.Transport, to *Endpoints, id uint16) (start int, err error) {
	switch {
	case !t.V6() || int(t.End) > len(p) || t.Off < header.IPv6MinSize || t.End < t.Off || len(p) < header.IPv6MinSize:
		return 0, ErrMalformed
	case t.Fragment() || !t.HasL4():
		return 0, ErrFragment
	}
	ckOff, min, ok := l4CksumOff(t.Proto)
	if !ok {
		return 0, ErrUnsupportedProto
	}
	seg := p[t.Off:t.End]
	if len(seg) < min {
		return 0, ErrTruncated
	}
	if !to.Src.Is4() || !to.Dst.Is4() {
		return 0, ErrFamily
	}
	if len(seg) > 0xffff-header.IPv4MinSize {
		return 0, ErrTooBig
	}
	tc := p[0]<<4 | p[1]>>4
	hop := p[7]
	s, d := to.Src.As4(), to.Dst.As4()

	// checksum difference: old IPv6 addresses out, new IPv4 ones in, ports
	acc := notWords32(0, p[8:40])
	acc += uint64(binary.BigEndian.Uint32(s[:])) + uint64(binary.BigEndian.Uint32(d[:]))
	acc = diff16(acc, be16(seg[l4SrcPort:]), to.SrcPort)
	acc = diff16(acc, be16(seg[l4DstPort:]), to.DstPort)
	put16(seg[l4SrcPort:], to.SrcPort)
	put16(seg[l4DstPort:], to.DstPort)
	if ck := be16(seg[ckOff:]); t.Proto != header.ProtoUDP {
		put16(seg[ckOff:], apply(ck, acc))
	} else if ck != 0 {
		put16(seg[ckOff:], udpChecksum(apply(ck, acc)))
	}

	start = int(t.Off) - header.IPv4MinSize
	ip := p[start:t.Off]
	ip[0] = 0x45
	ip[1] = tc
	put16(ip[2:], uint16(header.IPv4MinSize+len(seg)))
	put16(ip[4:], id)
	put16(ip[6:], ipv4DF)
	ip[8] = hop
	ip[9] = t.Proto
	put16(ip[10:], 0)
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	put16(ip[10:], ^header.Checksum(ip, 0))
	return start, nil
}

// To6 translates the IPv4 TCP or UDP packet p[v4:] (validated and
// trimmed; t located its transport header, offsets relative to p[v4:]) to
// IPv6 with the addresses and ports of to (IPv6). The IPv6 header is
// written over the 40 bytes in front of the transport header, so p needs
// v4+t.Off >= 40 (room in front of a 20-byte IPv4 header); start is where
// the translated packet begins: it is p[start:v4+t.End].
//
// Errors: ErrMalformed, ErrFragment for any IPv4 fragment,
// ErrUnsupportedProto unless TCP or UDP, ErrTruncated, ErrFamily unless to
// is IPv6, ErrHeadroom when p has too little room in front.
func To6(p []byte, v4 int, t header.Transport, to *Endpoints) (start int, err error) {
	if v4 < 0 || v4 > len(p) {
		return 0, ErrMalformed
	}
	ip := p[v4:]
	switch {
	case t.V6() || int(t.End) > len(ip) || t.Off < header.IPv4MinSize || t.End < t.Off || len(ip) < header.IPv4MinSize:
		return 0, ErrMalformed
	case t.Fragment() || !t.HasL4() || header.IPv4(ip).IsFragment():
		return 0, ErrFragment
	}
	ckOff, min, ok := l4CksumOff(t.Proto)
	if !ok {
		return 0, ErrUnsupportedProto
	}
	seg := ip[t.Off:t.End]
	if len(seg) < min {
		return 0, ErrTruncated
	}
	if !to.Src.Is6() || !to.Dst.Is6() || to.Src.Is4In6() || to.Dst.Is4In6() {
		return 0, ErrFamily
	}
	start = v4 + int(t.Off) - header.IPv6MinSize
	if start < 0 {
		return 0, ErrHeadroom
	}
	tos, ttl := ip[1], ip[8]
	s, d := to.Src.As16(), to.Dst.As16()

	acc := notWords32(0, ip[12:20])
	acc = addWords32(acc, s[:])
	acc = addWords32(acc, d[:])
	acc = diff16(acc, be16(seg[l4SrcPort:]), to.SrcPort)
	acc = diff16(acc, be16(seg[l4DstPort:]), to.DstPort)
	put16(seg[l4SrcPort:], to.SrcPort)
	put16(seg[l4DstPort:], to.DstPort)
	ck := be16(seg[ckOff:])
	switch {
	case t.Proto != header.ProtoUDP:
		put16(seg[ckOff:], apply(ck, acc))
	case ck != 0:
		put16(seg[ckOff:], udpChecksum(apply(ck, acc)))
	default:
		// no checksum in IPv4; IPv6 requires one (RFC 8200 §8.1)
		put16(seg[ckOff:], header.TransportChecksum(header.ProtoUDP, s[:], d[:], seg, ckOff))
	}

	h := p[start : v4+int(t.Off)]
	put32(h[0:], 6<<28|uint32(tos)<<20)
	put16(h[4:], uint16(len(seg)))
	h[6] = t.Proto
	h[7] = ttl
	copy(h[8:24], s[:])
	copy(h[24:40], d[:])
	return start, nil
}

// notWords32 adds the one's-complement negation of the 32-bit words of b
// (a multiple of 4 bytes): the contribution of data taken out of a checksum.
func notWords32(acc uint64, b []byte) uint64 {
	for i := 0; i+4 <= len(b); i += 4 {
		acc += uint64(^binary.BigEndian.Uint32(b[i:]))
	}
	return acc
}

// addWords32 adds the 32-bit words of b (a multiple of 4 bytes).
func addWords32(acc uint64, b []byte) uint64 {
	for i := 0; i+4 <= len(b); i += 4 {
		acc += uint64(binary.BigEndian.Uint32(b[i:]))
	}
	return acc
}
