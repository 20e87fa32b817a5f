package header

import (
	"encoding/binary"
	"net/netip"
)

// ICMPv4 header (RFC 792); echo messages carry identifier and sequence.
//
//	+--------+--------+-----------------+
//	| type   | code   | checksum        |
//	| identifier      | sequence        |
//	+--------+--------+-----------------+
type ICMPv4 []byte

// ICMPv4MinSize is the size of the fixed part.
const ICMPv4MinSize = 8

// ICMPv4 types.
const (
	ICMPv4EchoReply      = 0
	ICMPv4DstUnreachable = 3
	ICMPv4EchoRequest    = 8
	ICMPv4TimeExceeded   = 11
)

func (m ICMPv4) Type() uint8          { return m[0] }
func (m ICMPv4) Code() uint8          { return m[1] }
func (m ICMPv4) Checksum() uint16     { return binary.BigEndian.Uint16(m[2:]) }
func (m ICMPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(m[2:], c) }
func (m ICMPv4) Ident() uint16        { return binary.BigEndian.Uint16(m[4:]) }
func (m ICMPv4) Seq() uint16          { return binary.BigEndian.Uint16(m[6:]) }

// SetType changes the type with an incremental checksum update.
func (m ICMPv4) SetType(t uint8) {
	old := binary.BigEndian.Uint16(m[0:])
	m[0] = t
	m.SetChecksum(ChecksumUpdate16(m.Checksum(), old, binary.BigEndian.Uint16(m[0:])))
}

// ChecksumValid verifies the checksum over the whole message.
func (m ICMPv4) ChecksumValid() bool { return Checksum(m, 0) == 0xffff }

// ICMPv6 header (RFC 4443), same layout as ICMPv4; the checksum covers an
// IPv6 pseudo-header.
type ICMPv6 []byte

// ICMPv6 types.
const (
	ICMPv6DstUnreachable   = 1
	ICMPv6PacketTooBig     = 2
	ICMPv6TimeExceeded     = 3
	ICMPv6EchoRequest      = 128
	ICMPv6EchoReply        = 129
	ICMPv6RouterSolicit    = 133
	ICMPv6RouterAdvert     = 134
	ICMPv6NeighborSolicit  = 135
	ICMPv6NeighborAdvert   = 136
	ICMPv6MinSize          = 8
	NDPOptSourceLinkAddr   = 1
	NDPOptTargetLinkAddr   = 2
	ndpNSNAFixedSize       = 24 // type..reserved + target
	NDPNeighborAdvertFlags = 0x60000000
)

func (m ICMPv6) Type() uint8          { return m[0] }
func (m ICMPv6) Code() uint8          { return m[1] }
func (m ICMPv6) Checksum() uint16     { return binary.BigEndian.Uint16(m[2:]) }
func (m ICMPv6) SetChecksum(c uint16) { binary.BigEndian.PutUint16(m[2:], c) }

// SetType changes the type with an incremental checksum update.
func (m ICMPv6) SetType(t uint8) {
	old := binary.BigEndian.Uint16(m[0:])
	m[0] = t
	m.SetChecksum(ChecksumUpdate16(m.Checksum(), old, binary.BigEndian.Uint16(m[0:])))
}

// ICMPv6Checksum computes the checksum of m (with its checksum field taken
// as zero) for the given addresses.
func ICMPv6Checksum(m []byte, src, dst netip.Addr) uint16 {
	s, d := src.As16(), dst.As16()
	sum := PseudoHeaderChecksum(ProtoICMPv6, s[:], d[:], 0)
	// the pseudo-header length is 32 bits; messages here are < 64 KiB
	sum = ChecksumCombine(sum, uint16(len(m)))
	sum = Checksum(m[:2], sum)
	sum = Checksum(m[4:], sum)
	return ^sum
}

// ICMPv6ChecksumValid verifies m's checksum for the given addresses.
func ICMPv6ChecksumValid(m []byte, src, dst netip.Addr) bool {
	return len(m) >= 4 && ICMPv6Checksum(m, src, dst) == binary.BigEndian.Uint16(m[2:])
}

// NDP is a Neighbor Solicitation or Advertisement (RFC 4861 4.3/4.4).
//
//	+--------+--------+-----------------+
//	| type   | code   | checksum        |
//	| R S O flags / reserved (32)       |
//	| target address (16)              |
//	| options ...                       |
//	+-----------------------------------+
type NDP []byte

// IsValid reports whether n is long enough for an NS/NA.
func (n NDP) IsValid() bool { return len(n) >= ndpNSNAFixedSize }

// Target returns the target address.
func (n NDP) Target() netip.Addr { return netip.AddrFrom16([16]byte(n[8:24])) }

// Flags returns the R/S/O flag word of an advertisement.
func (n NDP) Flags() uint32 { return binary.BigEndian.Uint32(n[4:]) }

// LinkAddrOption returns the link-layer address in the first option of the
// given type (source or target link-layer address) and whether it exists.
// Malformed options (zero length, past the end) stop the search.
func (n NDP) LinkAddrOption(typ uint8) (MAC, bool) {
	o := n[ndpNSNAFixedSize:]
	for len(o) >= 8 {
		l := int(o[1]) * 8
		if l == 0 || l > len(o) {
			break
		}
		if o[0] == typ && l >= 8 {
			var m MAC
			copy(m[:], o[2:8])
			return m, true
		}
		o = o[l:]
	}
	return MAC{}, false
}

// NDPNeighborAdvertSize is an NA with a target link-layer address option.
const NDPNeighborAdvertSize = ndpNSNAFixedSize + 8

// EncodeNA writes an NA with the target link-layer option; the checksum is
// left zero for the caller to fill with ICMPv6Checksum.
func (n NDP) EncodeNA(target netip.Addr, flags uint32, mac MAC) {
	n[0], n[1] = ICMPv6NeighborAdvert, 0
	binary.BigEndian.PutUint16(n[2:], 0)
	binary.BigEndian.PutUint32(n[4:], flags)
	t := target.As16()
	copy(n[8:24], t[:])
	n[24], n[25] = NDPOptTargetLinkAddr, 1
	copy(n[26:32], mac[:])
}

// NDPNeighborSolicitSize is an NS with a source link-layer address option.
const NDPNeighborSolicitSize = ndpNSNAFixedSize + 8

// EncodeNS writes an NS with the source link-layer option; checksum zero.
func (n NDP) EncodeNS(target netip.Addr, mac MAC) {
	n[0], n[1] = ICMPv6NeighborSolicit, 0
	binary.BigEndian.PutUint16(n[2:], 0)
	binary.BigEndian.PutUint32(n[4:], 0)
	t := target.As16()
	copy(n[8:24], t[:])
	n[24], n[25] = NDPOptSourceLinkAddr, 1
	copy(n[26:32], mac[:])
}

// NA flags.
const (
	NAFlagRouter    = 0x80000000
	NAFlagSolicited = 0x40000000
	NAFlagOverride  = 0x20000000
)
