package nat

import "github.com/gvs-lb/gvs/header"

// Forward4 translates an IPv4 TCP or UDP packet that is forwarded on: it
// sets its source to src:sport and its destination to dst:dport (addresses
// as big-endian words) and decrements its TTL, with one incremental update
// of the IPv4 header checksum for all three and one of the transport
// checksum (pseudo-header addresses and ports). It is RewriteAt followed
// by header.IPv4.DecTTL, in one pass over the header.
//
// The caller has validated the header (header.IPv4.Validate) and located
// the transport header (t, from header.LocateIPv4), and checked that the
// TTL is above 1. A packet without its transport header (a later
// fragment), of another protocol or cut short is refused with the errors
// of RewriteAt and left unchanged.
func Forward4(l3 []byte, t header.Transport, src, dst uint32, sport, dport uint16) error {
	ckOff, min, ok := l4CksumOff(t.Proto)
	switch {
	case t.V6() || int(t.End) > len(l3) || t.Off < header.IPv4MinSize:
		return ErrMalformed
	case !t.HasL4() && t.Fragment():
		return ErrFragment
	case !t.HasL4():
		return ErrExtHeader
	case !ok:
		return ErrUnsupportedProto
	case int(t.End)-int(t.Off) < min:
		return ErrTruncated
	}
	seg := l3[t.Off:t.End]
	_ = seg[min-1]
	_ = l3[header.IPv4MinSize-1]

	// addresses: IPv4 header and pseudo-header
	os, od := be32(l3[ipv4Src:]), be32(l3[ipv4Dst:])
	acc := uint64(^os) + uint64(src) + uint64(^od) + uint64(dst)
	put32(l3[ipv4Src:], src)
	put32(l3[ipv4Dst:], dst)
	// the TTL with the protocol, one word of the header checksum only
	ttl := be16(l3[ipv4TTL:])
	put16(l3[ipv4TTL:], ttl-0x100)
	put16(l3[ipv4Cksum:], apply(be16(l3[ipv4Cksum:]), acc+uint64(^ttl)+uint64(ttl-0x100)))

	setPorts(seg, t.Proto, ckOff, acc, sport, dport)
	return nil
}
