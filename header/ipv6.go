package header

import (
	"encoding/binary"
	"net/netip"
)

// IPv6 fixed header (RFC 8200).
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	|                    Source Address (16)                        |
//	|                  Destination Address (16)                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type IPv6 []byte

// IPv6MinSize is the size of the fixed header.
const IPv6MinSize = 40

const (
	v6PayloadLen = 4
	v6NextHdr    = 6
	v6HopLimit   = 7
	v6Src        = 8
	v6Dst        = 24
)

// Validate checks version and payload length against the bytes present.
func (ip IPv6) Validate() Verdict {
	if len(ip) < IPv6MinSize {
		return TooShort
	}
	if ip[0]>>4 != 6 {
		return BadVersion
	}
	if IPv6MinSize+int(ip.PayloadLen()) > len(ip) {
		return BadTotalLen
	}
	return Valid
}

func (ip IPv6) PayloadLen() uint16     { return binary.BigEndian.Uint16(ip[v6PayloadLen:]) }
func (ip IPv6) NextHeader() uint8      { return ip[v6NextHdr] }
func (ip IPv6) HopLimit() uint8        { return ip[v6HopLimit] }
func (ip IPv6) SetHopLimit(h uint8)    { ip[v6HopLimit] = h }
func (ip IPv6) Src() netip.Addr        { return netip.AddrFrom16([16]byte(ip[v6Src : v6Src+16])) }
func (ip IPv6) Dst() netip.Addr        { return netip.AddrFrom16([16]byte(ip[v6Dst : v6Dst+16])) }
func (ip IPv6) SrcBytes() []byte       { return ip[v6Src : v6Src+16] }
func (ip IPv6) DstBytes() []byte       { return ip[v6Dst : v6Dst+16] }
func (ip IPv6) Payload() []byte        { return ip[IPv6MinSize : IPv6MinSize+int(ip.PayloadLen())] }
func (ip IPv6) SetPayloadLen(n uint16) { binary.BigEndian.PutUint16(ip[v6PayloadLen:], n) }

// IPv6Fields are the values Encode writes.
type IPv6Fields struct {
	TrafficClass uint8
	FlowLabel    uint32
	PayloadLen   uint16
	NextHeader   uint8
	HopLimit     uint8
	Src, Dst     netip.Addr
}

// Encode writes the fixed header.
func (ip IPv6) Encode(f *IPv6Fields) {
	binary.BigEndian.PutUint32(ip[0:], 6<<28|uint32(f.TrafficClass)<<20|f.FlowLabel&0xfffff)
	binary.BigEndian.PutUint16(ip[v6PayloadLen:], f.PayloadLen)
	ip[v6NextHdr] = f.NextHeader
	ip[v6HopLimit] = f.HopLimit
	s, d := f.Src.As16(), f.Dst.As16()
	copy(ip[v6Src:], s[:])
	copy(ip[v6Dst:], d[:])
}

// SolicitedNodeMulticast returns ff02::1:ffXX:XXXX for a.
func SolicitedNodeMulticast(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

// MulticastMAC returns the Ethernet group address of an IPv6 multicast
// address (33:33 + low 32 bits).
func MulticastMAC(a netip.Addr) MAC {
	b := a.As16()
	return MAC{0x33, 0x33, b[12], b[13], b[14], b[15]}
}
