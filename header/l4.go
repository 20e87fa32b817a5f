package header

import "encoding/binary"

// UDP header (RFC 768).
//
//	+-----------------+-----------------+
//	| source port     | dest port       |
//	| length          | checksum        |
//	+-----------------+-----------------+
type UDP []byte

// UDPSize is the header size.
const UDPSize = 8

// Field offsets in TCP and UDP headers, for code that rewrites them in
// place (NAT): the ports sit at the same place in both.
const (
	L4SrcPortOffset   = 0
	L4DstPortOffset   = 2
	UDPChecksumOffset = 6
	TCPFlagsOffset    = 13
	TCPChecksumOffset = 16
)

func (u UDP) SrcPort() uint16      { return binary.BigEndian.Uint16(u[0:]) }
func (u UDP) DstPort() uint16      { return binary.BigEndian.Uint16(u[2:]) }
func (u UDP) Length() uint16       { return binary.BigEndian.Uint16(u[4:]) }
func (u UDP) Checksum() uint16     { return binary.BigEndian.Uint16(u[6:]) }
func (u UDP) SetChecksum(c uint16) { binary.BigEndian.PutUint16(u[6:], c) }
func (u UDP) SetSrcPort(p uint16)  { binary.BigEndian.PutUint16(u[0:], p) }
func (u UDP) SetDstPort(p uint16)  { binary.BigEndian.PutUint16(u[2:], p) }
func (u UDP) SetLength(n uint16)   { binary.BigEndian.PutUint16(u[4:], n) }

// TCP header (RFC 9293).
//
//	+-----------------+-----------------+
//	| source port     | dest port       |
//	| sequence number                   |
//	| acknowledgment number             |
//	| off | flags     | window          |
//	| checksum        | urgent pointer  |
//	| options ...                       |
//	+-----------------------------------+
type TCP []byte

// TCPMinSize is the size without options.
const TCPMinSize = 20

// TCP flags.
const (
	TCPFlagFIN = 0x01
	TCPFlagSYN = 0x02
	TCPFlagRST = 0x04
	TCPFlagPSH = 0x08
	TCPFlagACK = 0x10
)

func (t TCP) SrcPort() uint16      { return binary.BigEndian.Uint16(t[0:]) }
func (t TCP) DstPort() uint16      { return binary.BigEndian.Uint16(t[2:]) }
func (t TCP) Seq() uint32          { return binary.BigEndian.Uint32(t[4:]) }
func (t TCP) Ack() uint32          { return binary.BigEndian.Uint32(t[8:]) }
func (t TCP) DataOffset() int      { return int(t[12]>>4) * 4 }
func (t TCP) Flags() uint8         { return t[13] }
func (t TCP) Window() uint16       { return binary.BigEndian.Uint16(t[14:]) }
func (t TCP) Checksum() uint16     { return binary.BigEndian.Uint16(t[16:]) }
func (t TCP) SetChecksum(c uint16) { binary.BigEndian.PutUint16(t[16:], c) }
func (t TCP) SetSrcPort(p uint16)  { binary.BigEndian.PutUint16(t[0:], p) }
func (t TCP) SetDstPort(p uint16)  { binary.BigEndian.PutUint16(t[2:], p) }

// IsValid reports whether t holds a complete header including options.
func (t TCP) IsValid() bool {
	return len(t) >= TCPMinSize && t.DataOffset() >= TCPMinSize && t.DataOffset() <= len(t)
}

// TransportChecksum computes the TCP/UDP checksum of segment seg (checksum
// field included in seg, treated as zero at offset ckOff) for a pseudo-header
// with the given addresses (4 or 16 bytes each).
func TransportChecksum(proto uint8, src, dst []byte, seg []byte, ckOff int) uint16 {
	sum := PseudoHeaderChecksum(proto, src, dst, uint16(len(seg)))
	sum = Checksum(seg[:ckOff], sum)
	sum = Checksum(seg[ckOff+2:], sum)
	if c := ^sum; c != 0 || proto != ProtoUDP {
		return c
	}
	// a computed UDP checksum of 0 is sent as all ones (RFC 768): 0
	// means "no checksum" in IPv4 and is invalid in IPv6
	return 0xffff
}
