package nat

import (
	"net/netip"

	"github.com/gvs-lb/gvs/header"
)

// RewriteAddrs sets the source and destination addresses of l3, a
// fragment without its transport header (an IPv4 fragment with an offset,
// an IPv6 fragment with an offset), to src and dst: the translation its
// first fragment got from Rewrite. The IPv4 header checksum is updated
// incrementally; there is no transport header to touch (the first
// fragment's transport checksum, updated by Rewrite, covers the whole
// datagram's pseudo-header).
//
// Errors (the packet is unchanged): ErrMalformed when l3 is shorter than
// its IP header, ErrFamily when src or dst is not of the packet's family.
func RewriteAddrs(l3 []byte, src, dst netip.Addr) error {
	if len(l3) == 0 {
		return ErrMalformed
	}
	switch l3[0] >> 4 {
	case 4:
		if len(l3) < header.IPv4MinSize {
			return ErrMalformed
		}
		if !src.Is4() || !dst.Is4() {
			return ErrFamily
		}
		ip := header.IPv4(l3)
		var acc uint64
		acc = diffAddr4(acc, ip.SrcBytes(), src.As4())
		acc = diffAddr4(acc, ip.DstBytes(), dst.As4())
		ip.SetChecksum(apply(ip.Checksum(), acc))
		return nil
	case 6:
		if len(l3) < header.IPv6MinSize {
			return ErrMalformed
		}
		if !src.Is6() || !dst.Is6() {
			return ErrFamily
		}
		ip := header.IPv6(l3)
		s, d := src.As16(), dst.As16()
		diffAddr16(0, ip.SrcBytes(), &s)
		diffAddr16(0, ip.DstBytes(), &d)
		return nil
	}
	return ErrMalformed
}
