package nat

import (
	"net/netip"

	"github.com/gvs-lb/gvs/header"
)

// TOA ("TCP Option Address") carries the client's address and port to a
// FullNAT real server, whose toa kernel module reports it as the peer of the
// accepted socket. The wire format is the one DPVS and its toa module use:
//
//	IPv4 client:  | 254 | 8  | port (2) | IPv4 address (4)  |
//	IPv6 client:  | 254 | 20 | port (2) | IPv6 address (16) |
//
// (some other toa modules use kind 253 for the IPv6 form; DPVS's tells the
// two apart by length), both a multiple of 4 bytes, so inserting one keeps the alignment of the
// options after it. InsertTOA puts it first, right after the fixed 20-byte
// header (where DPVS puts it too): the existing options keep their bytes and
// their order, and the TOA can never end up behind an End-of-Options-List
// where the receiver would not look for it.
//
// TCP options occupy no sequence space, so unlike proxy-protocol insertion no
// sequence or acknowledgement number of the connection has to be adjusted.
//
// The packet grows by 8 or 20 bytes. The caller decides when to insert and
// must check that the grown packet still fits the egress MTU; for segments
// with data that fit only because of the MSS, see ClampMSS. InsertTOA does
// not look for a TOA already in the segment: the caller scrubs the client's
// own first (ScrubTOA, toascrub.go), so that the server finds only GVS's.
// The dataplane inserts into every client segment until the real server
// shows that its handshake completed (see dataplane/lbtoa.go).
const (
	TOAKind    = 254
	TOALenIPv4 = 8
	TOALenIPv6 = 20
)

// TOALen returns the size of the TOA option for a client address, 0 if the
// address is invalid. IPv4-mapped IPv6 addresses count as IPv4.
func TOALen(client netip.Addr) int {
	client = client.Unmap()
	switch {
	case client.Is4():
		return TOALenIPv4
	case client.Is6():
		return TOALenIPv6
	}
	return 0
}

// Buffer is the packet buffer InsertTOA grows at the front: the dataplane's
// *pktbuf.Buf. Bytes is the packet; Prepend(n) moves its start n bytes into
// the headroom and returns the new packet, or nil without room.
type Buffer interface {
	Bytes() []byte
	Prepend(n int) []byte
}

// InsertTOA inserts the TOA option for client into the TCP header of the
// packet at b.Bytes()[l3off:] (an IPv4 or IPv6 TCP packet, validated and
// with the IP length fields describing it; trailing Ethernet padding is left
// where it is). The bytes in front of the insertion point — L2 header, IP
// header and the fixed TCP header — move towards the front into the buffer's
// headroom (b.Prepend), so the payload is not copied; the IP header stays at
// l3off from the start of the packet, so b.L3 remains valid.
//
// It updates the TCP data offset, the IPv4 total length and header checksum
// or the IPv6 payload length, and the TCP checksum, incrementally: the added
// option words, the length in the pseudo-header and the data-offset byte.
// The option's size follows the client's family (IPv4-mapped counts as
// IPv4), independently of the packet's family.
//
// Errors (the packet and the buffer are unchanged): ErrMalformed,
// ErrFragment for any fragment (IPv4, or IPv6 with a fragment header), ErrExtHeader, ErrUnsupportedProto
// unless TCP, ErrTruncated if the TCP header is incomplete, ErrFamily for an
// invalid client address, ErrOptionSpace when the TCP header would exceed 60
// bytes, ErrTooBig when the IP length would overflow, ErrHeadroom when the
// buffer cannot grow at the front.
func InsertTOA(b Buffer, l3off int, client netip.AddrPort) error {
	p := b.Bytes()
	if l3off < 0 || l3off > len(p) {
		return ErrMalformed
	}
	loc, err := locate(p[l3off:])
	if err != nil {
		return err
	}
	if !loc.v6 && header.IPv4(p[l3off:]).FlagsFrag()&ipv4MoreFragments != 0 || loc.v6 && header.LocateIPv6(p[l3off:l3off+loc.end]).Fragment() {
		// Growing a first fragment would shift the data of the others.
		return ErrFragment
	}
	if loc.proto != header.ProtoTCP {
		return ErrUnsupportedProto
	}
	tcp := header.TCP(p[l3off+loc.l4 : l3off+loc.end])
	if !tcp.IsValid() {
		return ErrTruncated
	}

	var opt [TOALenIPv6]byte
	addr := client.Addr().Unmap()
	n := TOALen(addr)
	if n == 0 {
		return ErrFamily
	}
	opt[0], opt[1] = TOAKind, byte(n)
	put16(opt[2:], client.Port())
	if n == TOALenIPv4 {
		a := addr.As4()
		copy(opt[4:], a[:])
	} else {
		a := addr.As16()
		copy(opt[4:], a[:])
	}

	if tcp.DataOffset()+n > 60 {
		return ErrOptionSpace
	}
	// IP length after insertion: IPv4 total length or IPv6 payload length.
	newLen := loc.end + n
	if loc.v6 {
		newLen -= header.IPv6MinSize
	}
	if newLen > 0xffff {
		return ErrTooBig
	}
	if b.Prepend(n) == nil {
		return ErrHeadroom
	}

	// Move everything up to the end of the fixed TCP header to the front.
	p = b.Bytes()
	front := l3off + loc.l4 + header.TCPMinSize
	copy(p[:front], p[n:n+front])
	copy(p[front:front+n], opt[:n])
	l3 := p[l3off:]
	tcp = header.TCP(l3[loc.l4 : loc.end+n])

	// TCP checksum: inserted words (n is even and the insertion offset is
	// even, so the bytes after it keep their position in their 16-bit words),
	// the pseudo-header length and the data-offset nibble.
	oldSegLen := uint16(loc.end - loc.l4)
	acc := addWords(0, opt[:n])
	acc = diff16(acc, oldSegLen, oldSegLen+uint16(n))
	w := be16(tcp[12:])
	acc = diff16(acc, w, w+uint16(n/4)<<12)
	put16(tcp[12:], w+uint16(n/4)<<12)
	tcp.SetChecksum(apply(tcp.Checksum(), acc))

	if loc.v6 {
		header.IPv6(l3).SetPayloadLen(uint16(newLen))
	} else {
		ip := header.IPv4(l3)
		old := ip.TotalLen()
		ip.SetTotalLen(uint16(newLen))
		ip.SetChecksum(header.ChecksumUpdate16(ip.Checksum(), old, uint16(newLen)))
	}
	return nil
}
