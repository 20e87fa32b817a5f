package pktgen

// The receive-side parser: one pass over a frame that fills a Packet value
// the caller reuses, so the receive loop neither allocates nor re-parses.
// Every length is checked once here; code that reads a Packet afterwards
// trusts it.

import (
	"encoding/binary"
	"errors"

	"github.com/gvs-lb/gvs/header"
)

// Parse errors; each doubles as the name of a receive-side counter.
var (
	ErrShort      = errors.New("truncated frame")
	ErrNotIP      = errors.New("not IPv4 or ARP")
	ErrBadIP      = errors.New("bad IPv4 header")
	ErrFragment   = errors.New("IPv4 fragment")
	ErrBadL4      = errors.New("bad or truncated L4 header")
	ErrBadOptions = errors.New("malformed TCP options")
	ErrBadARP     = errors.New("bad ARP packet")
)

// Packet is what Parse extracts from a frame. Payload aliases the frame.
type Packet struct {
	SrcMAC, DstMAC header.MAC
	EthType        uint16

	// ARP
	ARPOp                    uint16
	ARPSenderIP, ARPTargetIP [4]byte

	// IPv4
	Src, Dst [4]byte
	Proto    uint8
	TTL      uint8
	L3Off    int // offset of the IP header
	L4Off    int // offset of the L4 header
	IPLen    int // total length of the IP packet

	// UDP and TCP
	SrcPort, DstPort uint16

	// TCP
	Seq, Ack uint32
	Flags    uint8
	Window   uint16
	MSS      uint16 // 0: no MSS option
	HasTS    bool
	TSVal    uint32
	TSEcr    uint32
	// HasTOA is set when a TOA option (kind 253/254) was present; TOA holds
	// its client address and port for the IPv4 form.
	HasTOA  bool
	TOAAddr [4]byte
	TOAPort uint16

	Payload []byte
}

// Parse decodes frame into p. ARP packets fill the ARP fields; IPv4 packets
// the IP fields and, for UDP and TCP, the L4 fields, options and payload.
// Other protocols over IPv4 parse without error and with Proto set. It
// returns one of the Err values above on malformed input. Ethernet padding
// after the IP packet is ignored.
func Parse(frame []byte, p *Packet) error {
	if len(frame) < EthLen {
		return ErrShort
	}
	eth := header.Ethernet(frame)
	p.DstMAC, p.SrcMAC, p.EthType = eth.Dst(), eth.Src(), eth.Type()
	p.Payload = nil
	switch p.EthType {
	case header.EtherTypeARP:
		a := header.ARP(frame[EthLen:])
		if !a.IsValid() {
			return ErrBadARP
		}
		p.ARPOp = a.Op()
		copy(p.ARPSenderIP[:], a[14:18])
		copy(p.ARPTargetIP[:], a[24:28])
		return nil
	case header.EtherTypeIPv4:
	default:
		return ErrNotIP
	}
	ip := header.IPv4(frame[EthLen:])
	if len(ip) < IPv4Len {
		return ErrShort
	}
	hl := ip.HeaderLen()
	tl := int(ip.TotalLen())
	if ip[0]>>4 != 4 || hl < IPv4Len || tl < hl || tl > len(ip) {
		return ErrBadIP
	}
	ip = ip[:tl]
	p.L3Off, p.L4Off, p.IPLen = EthLen, EthLen+hl, tl
	p.Proto, p.TTL = ip.Protocol(), ip.TTL()
	copy(p.Src[:], ip[12:16])
	copy(p.Dst[:], ip[16:20])
	if ip.IsFragment() {
		return ErrFragment
	}
	l4 := ip[hl:]
	switch p.Proto {
	case header.ProtoUDP:
		if len(l4) < UDPLen || int(binary.BigEndian.Uint16(l4[4:])) < UDPLen || int(binary.BigEndian.Uint16(l4[4:])) > len(l4) {
			return ErrBadL4
		}
		u := header.UDP(l4)
		p.SrcPort, p.DstPort = u.SrcPort(), u.DstPort()
		p.Payload = l4[UDPLen:u.Length()]
	case header.ProtoTCP:
		t := header.TCP(l4)
		if !t.IsValid() {
			return ErrBadL4
		}
		p.SrcPort, p.DstPort = t.SrcPort(), t.DstPort()
		p.Seq, p.Ack, p.Flags, p.Window = t.Seq(), t.Ack(), t.Flags(), t.Window()
		off := t.DataOffset()
		if err := ParseTCPOptions(l4[TCPLen:off], p); err != nil {
			return err
		}
		p.Payload = l4[off:]
	}
	return nil
}

// ParseTCPOptions reads the options pktgen cares about (MSS, timestamps,
// TOA) into p and skips the others by their length. It fails on an option
// whose length is below 2 or runs past the end, and on known options of
// the wrong length. Options after End-of-List are ignored.
func ParseTCPOptions(opts []byte, p *Packet) error {
	p.MSS, p.HasTS, p.TSVal, p.TSEcr, p.HasTOA = 0, false, 0, 0, false
	for len(opts) > 0 {
		kind := opts[0]
		if kind == OptEOL {
			return nil
		}
		if kind == OptNOP {
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 {
			return ErrBadOptions
		}
		l := int(opts[1])
		if l < 2 || l > len(opts) {
			return ErrBadOptions
		}
		o := opts[:l]
		switch kind {
		case OptMSS:
			if l != 4 {
				return ErrBadOptions
			}
			p.MSS = binary.BigEndian.Uint16(o[2:])
		case OptTimestamp:
			if l != 10 {
				return ErrBadOptions
			}
			p.HasTS = true
			p.TSVal = binary.BigEndian.Uint32(o[2:])
			p.TSEcr = binary.BigEndian.Uint32(o[6:])
		case OptTOA, OptTOAv6:
			// accepted and otherwise ignored: IPv4 form 8 bytes, IPv6 20
			if l != 8 && l != 20 {
				return ErrBadOptions
			}
			p.HasTOA = true
			p.TOAPort = binary.BigEndian.Uint16(o[2:])
			if l == 8 {
				copy(p.TOAAddr[:], o[4:8])
			} else {
				p.TOAAddr = [4]byte{}
			}
		}
		opts = opts[l:]
	}
	return nil
}

// ChecksumsValid verifies the IPv4 header checksum and the UDP or TCP
// checksum of a frame Parse accepted. A UDP checksum of zero (none) counts
// as valid.
func ChecksumsValid(frame []byte, p *Packet) bool {
	if p.EthType != header.EtherTypeIPv4 {
		return true
	}
	ip := frame[p.L3Off : p.L3Off+p.IPLen]
	if header.Checksum(ip[:p.L4Off-p.L3Off], 0) != 0xffff {
		return false
	}
	l4 := ip[p.L4Off-p.L3Off:]
	switch p.Proto {
	case header.ProtoUDP:
		if binary.BigEndian.Uint16(l4[6:]) == 0 {
			return true
		}
		l4 = l4[:binary.BigEndian.Uint16(l4[4:])]
	case header.ProtoTCP:
	default:
		return true
	}
	sum := header.PseudoHeaderChecksum(p.Proto, p.Src[:], p.Dst[:], uint16(len(l4)))
	return header.Checksum(l4, sum) == 0xffff
}
