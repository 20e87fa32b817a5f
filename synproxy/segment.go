package synproxy

import (
	"encoding/binary"
	"net/netip"

	"github.com/gvs-lb/gvs/header"
)

// Segment is a TCP segment the proxy writes over a packet it owns: the
// client's SYN becomes the SYN-ACK, the client's first ACK the SYN to the
// real server, the server's SYN-ACK the ACK that completes its handshake.
type Segment struct {
	Src, Dst         netip.Addr // one family
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8
	Window           uint16
	TTL              uint8 // hop limit for IPv6
	Opts             Options
}

// HeaderLen returns the length of the IP and TCP headers Write writes.
func (s *Segment) HeaderLen() int {
	n := header.IPv4MinSize
	if s.Src.Is6() {
		n = header.IPv6MinSize
	}
	return n + header.TCPMinSize + optionsLen(&s.Opts)
}

// Write writes s's headers (an IPv4 header without options, or a fixed
// IPv6 header) at the start of l3, in front of the payload bytes already
// at l3[s.HeaderLen():], computes both checksums and returns the packet's
// length. l3 must hold HeaderLen()+payload bytes.
func (s *Segment) Write(l3 []byte, payload int) int {
	ipLen := header.IPv4MinSize
	if s.Src.Is6() {
		ipLen = header.IPv6MinSize
	}
	tcpLen := header.TCPMinSize + optionsLen(&s.Opts)
	total := ipLen + tcpLen + payload
	if s.Src.Is6() {
		header.IPv6(l3).Encode(&header.IPv6Fields{PayloadLen: uint16(tcpLen + payload), NextHeader: header.ProtoTCP,
			HopLimit: s.TTL, Src: s.Src, Dst: s.Dst})
	} else {
		header.IPv4(l3).Encode(&header.IPv4Fields{TotalLen: uint16(total), Flags: header.IPv4DontFragment,
			TTL: s.TTL, Protocol: header.ProtoTCP, Src: s.Src, Dst: s.Dst})
	}
	tcp := l3[ipLen:total]
	binary.BigEndian.PutUint16(tcp[0:], s.SrcPort)
	binary.BigEndian.PutUint16(tcp[2:], s.DstPort)
	binary.BigEndian.PutUint32(tcp[4:], s.Seq)
	binary.BigEndian.PutUint32(tcp[8:], s.Ack)
	tcp[12] = byte(tcpLen/4) << 4
	tcp[13] = s.Flags
	binary.BigEndian.PutUint16(tcp[14:], s.Window)
	binary.BigEndian.PutUint32(tcp[16:], 0) // checksum, urgent pointer
	writeOptions(tcp[header.TCPMinSize:], &s.Opts)
	var src, dst []byte
	if s.Src.Is6() {
		src, dst = header.IPv6(l3).SrcBytes(), header.IPv6(l3).DstBytes()
	} else {
		src, dst = header.IPv4(l3).SrcBytes(), header.IPv4(l3).DstBytes()
	}
	header.TCP(tcp).SetChecksum(header.TransportChecksum(header.ProtoTCP, src, dst, tcp, 16))
	return total
}
