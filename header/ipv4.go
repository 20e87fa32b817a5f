package header

import (
	"encoding/binary"
	"net/netip"
)

// IPv4 header (RFC 791).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	|         Identification        |Flags|      Fragment Offset    |
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	|                       Source Address                          |
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type IPv4 []byte

// IPv4MinSize is the size of a header without options.
const IPv4MinSize = 20

const (
	v4VerIHL   = 0
	v4TOS      = 1
	v4TotalLen = 2
	v4ID       = 4
	v4Flags    = 6
	v4TTL      = 8
	v4Proto    = 9
	v4Cksum    = 10
	v4Src      = 12
	v4Dst      = 16
)

// Field offsets in the IPv4 header, for code that rewrites it in place
// (NAT): the TTL with the protocol is one 16-bit word of the checksum.
const (
	IPv4TTLOffset      = v4TTL
	IPv4ChecksumOffset = v4Cksum
	IPv4SrcOffset      = v4Src
	IPv4DstOffset      = v4Dst
)

// IP protocol numbers.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoIPIP   = 4
	ProtoIPv6   = 41
	ProtoICMPv6 = 58
)

// Verdict of a header validation. Zero is valid; the others name the defect
// and double as drop-counter names.
type Verdict uint8

const (
	Valid Verdict = iota
	TooShort
	BadVersion
	BadHeaderLen
	BadTotalLen
	BadChecksum
)

var verdictNames = [...]string{"valid", "too_short", "bad_version", "bad_header_len", "bad_total_len", "bad_checksum"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "unknown"
}

// Validate checks version, header length, total length against the bytes
// present, and the header checksum. Trailing bytes after Total Length
// (Ethernet padding) are allowed.
func (ip IPv4) Validate() Verdict {
	if len(ip) < IPv4MinSize {
		return TooShort
	}
	if ip[v4VerIHL]>>4 != 4 {
		return BadVersion
	}
	hl := ip.HeaderLen()
	if hl < IPv4MinSize || hl > len(ip) {
		return BadHeaderLen
	}
	tl := int(ip.TotalLen())
	if tl < hl || tl > len(ip) {
		return BadTotalLen
	}
	if Checksum(ip[:hl], 0) != 0xffff {
		return BadChecksum
	}
	return Valid
}

func (ip IPv4) HeaderLen() int       { return int(ip[v4VerIHL]&0x0f) * 4 }
func (ip IPv4) TOS() uint8           { return ip[v4TOS] }
func (ip IPv4) TotalLen() uint16     { return binary.BigEndian.Uint16(ip[v4TotalLen:]) }
func (ip IPv4) ID() uint16           { return binary.BigEndian.Uint16(ip[v4ID:]) }
func (ip IPv4) TTL() uint8           { return ip[v4TTL] }
func (ip IPv4) Protocol() uint8      { return ip[v4Proto] }
func (ip IPv4) Checksum() uint16     { return binary.BigEndian.Uint16(ip[v4Cksum:]) }
func (ip IPv4) Src() netip.Addr      { return netip.AddrFrom4([4]byte(ip[v4Src : v4Src+4])) }
func (ip IPv4) Dst() netip.Addr      { return netip.AddrFrom4([4]byte(ip[v4Dst : v4Dst+4])) }
func (ip IPv4) SrcBytes() []byte     { return ip[v4Src : v4Src+4] }
func (ip IPv4) DstBytes() []byte     { return ip[v4Dst : v4Dst+4] }
func (ip IPv4) Payload() []byte      { return ip[ip.HeaderLen():ip.TotalLen()] }
func (ip IPv4) FlagsFrag() uint16    { return binary.BigEndian.Uint16(ip[v4Flags:]) }
func (ip IPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(ip[v4Cksum:], c) }

// SetTotalLen writes the total length; the header checksum is the caller's
// (ChecksumUpdate16 with the old value).
func (ip IPv4) SetTotalLen(n uint16) { binary.BigEndian.PutUint16(ip[v4TotalLen:], n) }

// Bits of the IPv4 flags/fragment-offset field (FlagsFrag).
const (
	IPv4DontFragment  = 0x4000
	IPv4MoreFragments = 0x2000
	IPv4FragOffset    = 0x1fff
)

// IsFragment reports whether the packet is a fragment (MF set or a non-zero
// offset).
func (ip IPv4) IsFragment() bool { return ip.FlagsFrag()&(IPv4MoreFragments|IPv4FragOffset) != 0 }

// DontFragment reports the DF flag.
func (ip IPv4) DontFragment() bool { return ip.FlagsFrag()&IPv4DontFragment != 0 }

// DecTTL decrements the TTL and updates the checksum incrementally.
func (ip IPv4) DecTTL() {
	// TTL and protocol as one word, written back whole: reading the word
	// after a byte store into it would stall the load on the store
	old := binary.BigEndian.Uint16(ip[v4TTL:])
	n := old - 0x100
	binary.BigEndian.PutUint16(ip[v4TTL:], n)
	ip.SetChecksum(ChecksumUpdate16(ip.Checksum(), old, n))
}

// SetSrc rewrites the source address with an incremental checksum update.
func (ip IPv4) SetSrc(a netip.Addr) {
	n := a.As4()
	ip.SetChecksum(ChecksumUpdate(ip.Checksum(), ip[v4Src:v4Src+4], n[:]))
	copy(ip[v4Src:], n[:])
}

// SetDst rewrites the destination address with an incremental checksum update.
func (ip IPv4) SetDst(a netip.Addr) {
	n := a.As4()
	ip.SetChecksum(ChecksumUpdate(ip.Checksum(), ip[v4Dst:v4Dst+4], n[:]))
	copy(ip[v4Dst:], n[:])
}

// IPv4Fields are the values Encode writes.
type IPv4Fields struct {
	TOS      uint8
	TotalLen uint16
	ID       uint16
	Flags    uint16 // flags and fragment offset
	TTL      uint8
	Protocol uint8
	Src, Dst netip.Addr
}

// Encode writes a 20-byte header (no options) with its checksum.
func (ip IPv4) Encode(f *IPv4Fields) {
	ip[v4VerIHL] = 0x45
	ip[v4TOS] = f.TOS
	binary.BigEndian.PutUint16(ip[v4TotalLen:], f.TotalLen)
	binary.BigEndian.PutUint16(ip[v4ID:], f.ID)
	binary.BigEndian.PutUint16(ip[v4Flags:], f.Flags)
	ip[v4TTL] = f.TTL
	ip[v4Proto] = f.Protocol
	ip.SetChecksum(0)
	s, d := f.Src.As4(), f.Dst.As4()
	copy(ip[v4Src:], s[:])
	copy(ip[v4Dst:], d[:])
	ip.SetChecksum(^Checksum(ip[:IPv4MinSize], 0))
}

// SwapAddrs exchanges source and destination; the checksum is unchanged.
func (ip IPv4) SwapAddrs() {
	var t [4]byte
	copy(t[:], ip[v4Src:v4Src+4])
	copy(ip[v4Src:v4Src+4], ip[v4Dst:v4Dst+4])
	copy(ip[v4Dst:v4Dst+4], t[:])
}
