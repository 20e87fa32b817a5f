package nat

import "github.com/gvs-lb/gvs/header"

// l4loc locates the transport header of a packet starting at its IP header.
// It has at most four fields so that the compiler keeps it in registers
// (larger structs are spilled and copied: a few ns per packet).
type l4loc struct {
	v6    bool
	l4    int   // offset of the transport header
	end   int   // end of the IP datagram (total length)
	proto uint8 // transport protocol (IPv4 protocol / IPv6 next header)
}

// locate checks the IP header just enough to index it safely and returns
// where its transport header is, past IPv6 extension headers (walked by
// header.LocateIPv6). It refuses fragments with an offset (ErrFragment),
// IPv6 routing headers with segments left and extension header chains it
// cannot follow (ErrExtHeader); it does not look at the transport protocol.
func locate(l3 []byte) (l4loc, error) {
	if len(l3) == 0 {
		return l4loc{}, ErrMalformed
	}
	switch l3[0] >> 4 {
	case 4:
		if len(l3) < header.IPv4MinSize {
			return l4loc{}, ErrMalformed
		}
		ip := header.IPv4(l3)
		hl, tl := ip.HeaderLen(), int(ip.TotalLen())
		if hl < header.IPv4MinSize || tl < hl || tl > len(l3) {
			return l4loc{}, ErrMalformed
		}
		if ip.FlagsFrag()&ipv4FragOffset != 0 {
			return l4loc{}, ErrFragment
		}
		return l4loc{l4: hl, end: tl, proto: ip.Protocol()}, nil
	case 6:
		if len(l3) < header.IPv6MinSize {
			return l4loc{}, ErrMalformed
		}
		ip := header.IPv6(l3)
		end := header.IPv6MinSize + int(ip.PayloadLen())
		if end > len(l3) {
			return l4loc{}, ErrMalformed
		}
		// extension headers: header.LocateIPv6 is the one walk of them
		t := header.LocateIPv6(ip[:end])
		if !t.HasL4() {
			if t.Fragment() {
				return l4loc{}, ErrFragment
			}
			return l4loc{}, ErrExtHeader
		}
		return l4loc{v6: true, l4: int(t.Off), end: end, proto: t.Proto}, nil
	}
	return l4loc{}, ErrMalformed
}

// The wire layout is header's; these are its names as Rewrite uses them.
const (
	ipv4MoreFragments = header.IPv4MoreFragments
	ipv4FragOffset    = header.IPv4FragOffset
	l4SrcPort         = header.L4SrcPortOffset
	l4DstPort         = header.L4DstPortOffset
	tcpCksumOff       = header.TCPChecksumOffset
	udpCksumOff       = header.UDPChecksumOffset
	ipv4TTL           = header.IPv4TTLOffset
	ipv4Cksum         = header.IPv4ChecksumOffset
	ipv4Src           = header.IPv4SrcOffset
	ipv4Dst           = header.IPv4DstOffset
)

// l4CksumOff returns the offset of the checksum in a TCP or UDP header and
// the minimum header size the rewrite needs.
func l4CksumOff(proto uint8) (off, min int, ok bool) {
	switch proto {
	case header.ProtoTCP:
		return tcpCksumOff, header.TCPMinSize, true
	case header.ProtoUDP:
		return udpCksumOff, header.UDPSize, true
	}
	return 0, 0, false
}
