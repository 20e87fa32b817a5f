package nat

import "github.com/gvs-lb/gvs/header"

// Rewrite sets the source and destination addresses and ports of the TCP or
// UDP packet l3 (starting at its IP header) to those of to, for either
// direction of FullNAT. It updates the IPv4 header checksum and the TCP/UDP
// checksum incrementally (pseudo-header addresses and ports); it does not
// touch the TTL or hop limit.
//
// A UDP checksum of zero ("none", legal for IPv4; tolerated for IPv6 where
// RFC 6935 allows it for tunnels) stays zero. A first IPv4 fragment (MF set,
// offset 0) is rewritten like a whole packet: the transport checksum covers
// the reassembled datagram and an incremental update of it is still exact.
//
// IPv6 extension headers are walked (header.LocateIPv6); a first IPv6
// fragment is rewritten as a first IPv4 fragment is.
//
// Errors (the packet is unchanged): ErrMalformed, ErrFragment for fragments
// with an offset, ErrExtHeader for IPv6 routing headers with segments left
// or extension header chains that cannot be followed,
// ErrUnsupportedProto unless TCP or UDP, ErrTruncated when the transport
// header is cut short, ErrFamily when an address of to is not of the
// packet's family.
func Rewrite(l3 []byte, to *Endpoints) error {
	loc, err := locate(l3)
	if err != nil {
		return err
	}
	return rewrite(l3, loc, to)
}

// RewriteAt is Rewrite for a packet whose transport header the caller
// already located (header.LocateIPv4/LocateIPv6 on a validated packet):
// it does not parse the IP header again. The transport header is at t.Off,
// past any IPv6 extension headers (their contents do not enter the
// checksum). The packet must carry its transport header: a later fragment
// is refused (ErrFragment, see RewriteAddrs), as is a routing header with
// segments left (ErrExtHeader).
func RewriteAt(l3 []byte, t header.Transport, to *Endpoints) error {
	switch {
	case int(t.End) > len(l3) || t.Off < header.IPv4MinSize:
		return ErrMalformed
	case !t.HasL4() && t.Fragment():
		return ErrFragment
	case !t.HasL4():
		return ErrExtHeader
	}
	return rewrite(l3, l4loc{v6: t.V6(), l4: int(t.Off), end: int(t.End), proto: t.Proto}, to)
}

func rewrite(l3 []byte, loc l4loc, to *Endpoints) error {
	ckOff, min, ok := l4CksumOff(loc.proto)
	if !ok {
		return ErrUnsupportedProto
	}
	seg := l3[loc.l4:loc.end]
	if len(seg) < min {
		return ErrTruncated
	}

	var acc uint64 // address difference: IPv4 header and pseudo-header
	if loc.v6 {
		if !to.Src.Is6() || !to.Dst.Is6() {
			return ErrFamily
		}
		ip := header.IPv6(l3)
		s, d := to.Src.As16(), to.Dst.As16()
		acc = diffAddr16(acc, ip.SrcBytes(), &s)
		acc = diffAddr16(acc, ip.DstBytes(), &d)
	} else {
		if !to.Src.Is4() || !to.Dst.Is4() {
			return ErrFamily
		}
		ip := header.IPv4(l3)
		s, d := to.Src.As4(), to.Dst.As4()
		acc = diffAddr4(acc, ip.SrcBytes(), s)
		acc = diffAddr4(acc, ip.DstBytes(), d)
		ip.SetChecksum(apply(ip.Checksum(), acc))
	}

	setPorts(seg, loc.proto, ckOff, acc, to.SrcPort, to.DstPort)
	return nil
}

// setPorts writes the ports of the TCP or UDP header seg (its checksum at
// ckOff) and updates the checksum by acc, the difference of the fields the
// caller changed that it covers (the pseudo-header addresses), and by the
// ports' own. A UDP checksum of zero ("none") stays zero.
func setPorts(seg []byte, proto uint8, ckOff int, acc uint64, sport, dport uint16) {
	acc = diff16(acc, be16(seg[l4SrcPort:]), sport)
	acc = diff16(acc, be16(seg[l4DstPort:]), dport)
	put16(seg[l4SrcPort:], sport)
	put16(seg[l4DstPort:], dport)
	ck := be16(seg[ckOff:])
	if proto == header.ProtoUDP {
		if ck != 0 {
			put16(seg[ckOff:], udpChecksum(apply(ck, acc)))
		}
		return
	}
	put16(seg[ckOff:], apply(ck, acc))
}
