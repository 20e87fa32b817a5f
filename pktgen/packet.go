// Package pktgen is GVS's traffic generator: packet builders and parsers,
// flow sets, the UDP/SYN senders, a stateful TCP client and server that
// need no kernel stack, a counting receive side with loss and latency, and
// the port plumbing over GVS's own port drivers (AF_XDP, AF_PACKET).
// cmd/gvs-pktgen is its command line; bench/run.sh drives it.
//
// Packets are IPv4 over untagged Ethernet. Every generated packet that
// carries a payload starts it with a Stamp (who sent it, which flow, a
// per-flow sequence number and the send time), so the receive side can
// attribute what arrives to flows even when a FullNAT balancer rewrote
// every address and port, and measure one-way latency: sender and receiver
// share the host's monotonic clock.
package pktgen

import (
	"encoding/binary"
	"net/netip"

	"github.com/gvs-lb/gvs/header"
)

// Sizes of the headers pktgen writes.
const (
	EthLen  = header.EthernetMinSize
	IPv4Len = header.IPv4MinSize
	UDPLen  = header.UDPSize
	TCPLen  = header.TCPMinSize
	// FCSLen is the Ethernet frame check sequence, which the device adds:
	// a "64-byte frame" is 60 bytes in memory.
	FCSLen = 4
	// MinFrame is the smallest Ethernet frame in memory (without FCS).
	MinFrame = 60
	// UDPHeaders is Ethernet + IPv4 + UDP.
	UDPHeaders = EthLen + IPv4Len + UDPLen
	// TCPHeaders is Ethernet + IPv4 + TCP without options.
	TCPHeaders = EthLen + IPv4Len + TCPLen
)

// Stamp is the 18-byte record at the start of every generated payload:
//
//	+-------+-------------+-----------+----------+------------------+
//	| magic | kind|sender |  flow (4) |  seq (4) |  sent at, ns (8) |
//	+-------+-------------+-----------+----------+------------------+
//
// It fits the payload of a 64-byte UDP frame exactly. Kind and sender
// share a byte (4 bits each).
type Stamp struct {
	Kind   Kind
	Sender uint8 // 0-15
	Flow   uint32
	Seq    uint32
	// SentNs is the send time on the clock of Now.
	SentNs int64
}

// StampLen is the encoded size of a Stamp.
const StampLen = 18

// stampMagic marks a pktgen payload.
const stampMagic = 0xa7

// Kind says what a stamped payload is.
type Kind uint8

// Payload kinds.
const (
	KindUDP      Kind = 1
	KindRequest  Kind = 2 // TCP client request
	KindResponse Kind = 3 // TCP server response
)

// PutStamp writes s at the start of b (len(b) >= StampLen).
func PutStamp(b []byte, s *Stamp) {
	_ = b[StampLen-1]
	b[0] = stampMagic
	b[1] = byte(s.Kind)<<4 | s.Sender&0x0f
	binary.BigEndian.PutUint32(b[2:], s.Flow)
	binary.BigEndian.PutUint32(b[6:], s.Seq)
	binary.BigEndian.PutUint64(b[10:], uint64(s.SentNs))
}

// ParseStamp reads a Stamp from the start of b; ok is false when b is too
// short or does not start with one.
func ParseStamp(b []byte) (s Stamp, ok bool) {
	if len(b) < StampLen || b[0] != stampMagic {
		return s, false
	}
	s.Kind = Kind(b[1] >> 4)
	s.Sender = b[1] & 0x0f
	s.Flow = binary.BigEndian.Uint32(b[2:])
	s.Seq = binary.BigEndian.Uint32(b[6:])
	s.SentNs = int64(binary.BigEndian.Uint64(b[10:]))
	return s, true
}

// Hdr holds the Ethernet and IPv4 fields of a packet to build.
type Hdr struct {
	SrcMAC, DstMAC header.MAC
	Src, Dst       [4]byte
	SrcPort        uint16
	DstPort        uint16
	TTL            uint8 // 0 means 64
	ID             uint16
}

// SetAddrs sets the IPv4 addresses and ports from address-port pairs.
func (h *Hdr) SetAddrs(src, dst netip.AddrPort) {
	h.Src, h.Dst = src.Addr().As4(), dst.Addr().As4()
	h.SrcPort, h.DstPort = src.Port(), dst.Port()
}

// writeL2L3 writes the Ethernet and IPv4 headers for an L4 segment of
// l4Len bytes of protocol proto, with the header checksum.
func writeL2L3(b []byte, h *Hdr, proto uint8, l4Len int) {
	eth := header.Ethernet(b)
	eth.SetDst(h.DstMAC)
	eth.SetSrc(h.SrcMAC)
	eth.SetType(header.EtherTypeIPv4)
	ip := b[EthLen : EthLen+IPv4Len]
	ip[0] = 0x45
	ip[1] = 0
	binary.BigEndian.PutUint16(ip[2:], uint16(IPv4Len+l4Len))
	binary.BigEndian.PutUint16(ip[4:], h.ID)
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8] = h.TTL
	if ip[8] == 0 {
		ip[8] = 64
	}
	ip[9] = proto
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], h.Src[:])
	copy(ip[16:20], h.Dst[:])
	binary.BigEndian.PutUint16(ip[10:], ^header.Checksum(ip, 0))
}

// UDPFrameLen returns the in-memory frame length for a UDP frame of
// wireSize bytes on the wire (FCS included), never below MinFrame and
// never below the headers plus a stamp.
func UDPFrameLen(wireSize int) int {
	n := wireSize - FCSLen
	if n < UDPHeaders+StampLen {
		n = UDPHeaders + StampLen
	}
	return max(n, MinFrame)
}

// EncodeUDP writes a complete Ethernet/IPv4/UDP frame of frameLen bytes
// (UDPFrameLen) into b: headers, the stamp st (if not nil) at the start of
// the payload, zeros after it, and both checksums. It returns frameLen, or
// 0 if b is too small or frameLen too small for the headers.
func EncodeUDP(b []byte, h *Hdr, frameLen int, st *Stamp) int {
	if frameLen < UDPHeaders || len(b) < frameLen {
		return 0
	}
	l4Len := frameLen - EthLen - IPv4Len
	writeL2L3(b, h, header.ProtoUDP, l4Len)
	u := b[EthLen+IPv4Len : frameLen]
	binary.BigEndian.PutUint16(u[0:], h.SrcPort)
	binary.BigEndian.PutUint16(u[2:], h.DstPort)
	binary.BigEndian.PutUint16(u[4:], uint16(l4Len))
	pay := u[UDPLen:]
	if st != nil && len(pay) >= StampLen {
		PutStamp(pay, st)
		clear(pay[StampLen:])
	} else {
		clear(pay)
	}
	u[6], u[7] = 0, 0
	binary.BigEndian.PutUint16(u[6:], header.TransportChecksum(header.ProtoUDP, h.Src[:], h.Dst[:], u, 6))
	return frameLen
}

// TCPSeg is the TCP part of a segment to build.
type TCPSeg struct {
	Seq, Ack uint32
	Flags    uint8
	Window   uint16
	// Options are copied after the fixed header; their length must be a
	// multiple of 4 (pad with NOPs).
	Options []byte
	// PayloadLen bytes follow the options: the stamp (if Stamp is set and
	// the payload holds one), then zeros.
	PayloadLen int
	Stamp      *Stamp
}

// TCPFrameLen returns the frame length EncodeTCP writes for seg (padded to
// MinFrame, as Ethernet requires).
func TCPFrameLen(seg *TCPSeg) int {
	return max(TCPHeaders+len(seg.Options)+seg.PayloadLen, MinFrame)
}

// EncodeTCP writes a complete Ethernet/IPv4/TCP frame into b and returns
// its length (TCPFrameLen), or 0 if b is too small or the options are not
// a multiple of 4 bytes (or longer than 40). Frames shorter than MinFrame
// are zero-padded after the IP packet, which its total length excludes.
func EncodeTCP(b []byte, h *Hdr, seg *TCPSeg) int {
	optLen := len(seg.Options)
	if optLen%4 != 0 || optLen > 40 || seg.PayloadLen < 0 {
		return 0
	}
	l4Len := TCPLen + optLen + seg.PayloadLen
	n := TCPFrameLen(seg)
	if len(b) < n {
		return 0
	}
	writeL2L3(b, h, header.ProtoTCP, l4Len)
	t := b[EthLen+IPv4Len : EthLen+IPv4Len+l4Len]
	binary.BigEndian.PutUint16(t[0:], h.SrcPort)
	binary.BigEndian.PutUint16(t[2:], h.DstPort)
	binary.BigEndian.PutUint32(t[4:], seg.Seq)
	binary.BigEndian.PutUint32(t[8:], seg.Ack)
	t[12] = byte((TCPLen+optLen)/4) << 4
	t[13] = seg.Flags
	binary.BigEndian.PutUint16(t[14:], seg.Window)
	t[16], t[17], t[18], t[19] = 0, 0, 0, 0
	copy(t[TCPLen:], seg.Options)
	pay := t[TCPLen+optLen:]
	if seg.Stamp != nil && len(pay) >= StampLen {
		PutStamp(pay, seg.Stamp)
		clear(pay[StampLen:])
	} else {
		clear(pay)
	}
	binary.BigEndian.PutUint16(t[16:], header.TransportChecksum(header.ProtoTCP, h.Src[:], h.Dst[:], t, 16))
	clear(b[EthLen+IPv4Len+l4Len : n])
	return n
}

// TCP option kinds pktgen reads or writes.
const (
	OptEOL       = 0
	OptNOP       = 1
	OptMSS       = 2
	OptWScale    = 3
	OptSACKPerm  = 4
	OptSACK      = 5
	OptTimestamp = 8
	// OptTOA is the TCP Option Address a FullNAT balancer inserts (DPVS
	// and GVS use 254; some toa modules use 253 for IPv6).
	OptTOA   = 254
	OptTOAv6 = 253
)

// SynOptions writes the options of a Linux-like SYN into b (20 bytes):
// MSS, SACK permitted, timestamps (TSval tsval, TSecr 0), NOP, window
// scale 7. It returns the options.
func SynOptions(b *[20]byte, mss uint16, tsval uint32) []byte {
	o := b[:]
	o[0], o[1] = OptMSS, 4
	binary.BigEndian.PutUint16(o[2:], mss)
	o[4], o[5] = OptSACKPerm, 2
	o[6], o[7] = OptTimestamp, 10
	binary.BigEndian.PutUint32(o[8:], tsval)
	binary.BigEndian.PutUint32(o[12:], 0)
	o[16] = OptNOP
	o[17], o[18], o[19] = OptWScale, 3, 7
	return o
}

// MSSOption writes a lone MSS option (4 bytes), as a SYN-ACK may carry.
func MSSOption(b *[4]byte, mss uint16) []byte {
	b[0], b[1] = OptMSS, 4
	binary.BigEndian.PutUint16(b[2:], mss)
	return b[:]
}

// EncodeARP writes an Ethernet ARP frame (padded to MinFrame) into b and
// returns its length, or 0 if b is too small. Requests go to the broadcast
// address with an all-zero target MAC.
func EncodeARP(b []byte, op uint16, sha header.MAC, spa netip.Addr, tha header.MAC, tpa netip.Addr) int {
	if len(b) < MinFrame {
		return 0
	}
	eth := header.Ethernet(b)
	dst := tha
	if op == header.ARPRequest {
		dst = header.BroadcastMAC
		tha = header.MAC{}
	}
	eth.SetDst(dst)
	eth.SetSrc(sha)
	eth.SetType(header.EtherTypeARP)
	header.ARP(b[EthLen:]).Set(op, sha, spa, tha, tpa)
	clear(b[EthLen+header.ARPSize : MinFrame])
	return MinFrame
}
