package nat

import (
	"encoding/binary"
	"net/netip"

	"github.com/gvs-lb/gvs/header"
)

// UOA ("UDP option of address"): on FullNAT UDP the real server would see
// only the local address, so the first datagrams of a connection carry the
// client's address and port in an IPv4 option (DPVS's "ipo" mode): kind
// 31, length 8, port, IPv4 address. A UDP server reads it with the
// IP_RECVOPTS socket option; Linux keeps unknown options of received
// packets. IPv6 has no such option: IPv6 (and NAT64) clients need the
// "opp" mode (uoaopp.go).
const (
	UOAKind = 31
	UOALen  = 8
)

// InsertUOA puts the UOA option for client into the IPv4 header of the
// packet at b.Bytes()[l3off:] (validated, without IP options, not a
// fragment): the IP header moves 8 bytes towards the front into the
// buffer's headroom, so b.L3 stays valid, and its length, total length and
// checksum are updated. The UDP checksum does not cover the IP header.
// Errors leave the packet unchanged: ErrMalformed (not IPv4 without
// options), ErrFragment, ErrFamily (client not IPv4), ErrTooBig,
// ErrHeadroom.
func InsertUOA(b Buffer, l3off int, client netip.AddrPort) error {
	p := b.Bytes()
	if l3off < 0 || len(p) < l3off+header.IPv4MinSize {
		return ErrMalformed
	}
	ip := header.IPv4(p[l3off:])
	if ip[0] != 0x45 {
		return ErrMalformed
	}
	if ip.IsFragment() {
		return ErrFragment
	}
	if !client.Addr().Unmap().Is4() {
		return ErrFamily
	}
	total := int(ip.TotalLen()) + UOALen
	if total > 0xffff {
		return ErrTooBig
	}
	if b.Prepend(UOALen) == nil {
		return ErrHeadroom
	}
	p = b.Bytes()
	front := l3off + header.IPv4MinSize
	copy(p[:front], p[UOALen:UOALen+front])
	o := p[front : front+UOALen]
	o[0], o[1] = UOAKind, UOALen
	binary.BigEndian.PutUint16(o[2:], client.Port())
	a := client.Addr().Unmap().As4()
	copy(o[4:], a[:])
	ip = header.IPv4(p[l3off:])
	ip[0] = 0x47
	ip.SetTotalLen(uint16(total))
	ip.SetChecksum(0)
	ip.SetChecksum(^header.Checksum(ip[:header.IPv4MinSize+UOALen], 0))
	return nil
}

// ParseUOA finds the UOA option in an IPv4 options area (as IP_RECVOPTS
// delivers it) and returns the client it names.
func ParseUOA(opts []byte) (netip.AddrPort, bool) { return findUOA(opts, 4) }

// findUOA finds the UOA option with an address of alen bytes (4 or 16) in
// an area of IPv4-format options (an IPv4 header's or an opp header's).
func findUOA(opts []byte, alen int) (netip.AddrPort, bool) {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0: // end of list
			return netip.AddrPort{}, false
		case 1: // no-op
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			return netip.AddrPort{}, false
		}
		if opts[i] == UOAKind && int(opts[i+1]) == 4+alen {
			o := opts[i:]
			port := binary.BigEndian.Uint16(o[2:])
			if alen == 4 {
				return netip.AddrPortFrom(netip.AddrFrom4([4]byte(o[4:8])), port), true
			}
			return netip.AddrPortFrom(netip.AddrFrom16([16]byte(o[4:20])), port), true
		}
		i += int(opts[i+1])
	}
	return netip.AddrPort{}, false
}
