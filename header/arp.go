package header

import (
	"encoding/binary"
	"net/netip"
)

// ARP for IPv4 over Ethernet (RFC 826).
//
//	+---------+---------+-----+-----+--------+
//	| htype 1 | ptype   | hl 6| pl 4| op     |
//	+---------+---------+-----+-----+--------+
//	| sha (6) | spa (4) | tha (6) | tpa (4)   |
//	+---------+---------+---------+-----------+
type ARP []byte

// ARPSize is the size of an Ethernet/IPv4 ARP packet.
const ARPSize = 28

// ARP operations.
const (
	ARPRequest = 1
	ARPReply   = 2
)

// IsValid reports whether a is a complete Ethernet/IPv4 ARP packet.
func (a ARP) IsValid() bool {
	return len(a) >= ARPSize && binary.BigEndian.Uint16(a[0:]) == 1 &&
		binary.BigEndian.Uint16(a[2:]) == EtherTypeIPv4 && a[4] == 6 && a[5] == 4
}

func (a ARP) Op() uint16 { return binary.BigEndian.Uint16(a[6:]) }
func (a ARP) SenderMAC() (m MAC) {
	copy(m[:], a[8:14])
	return
}
func (a ARP) SenderIP() netip.Addr { return netip.AddrFrom4([4]byte(a[14:18])) }
func (a ARP) TargetMAC() (m MAC) {
	copy(m[:], a[18:24])
	return
}
func (a ARP) TargetIP() netip.Addr { return netip.AddrFrom4([4]byte(a[24:28])) }

// Set writes a complete Ethernet/IPv4 ARP packet.
func (a ARP) Set(op uint16, sha MAC, spa netip.Addr, tha MAC, tpa netip.Addr) {
	binary.BigEndian.PutUint16(a[0:], 1)
	binary.BigEndian.PutUint16(a[2:], EtherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], op)
	copy(a[8:14], sha[:])
	s4 := spa.As4()
	copy(a[14:18], s4[:])
	copy(a[18:24], tha[:])
	t4 := tpa.As4()
	copy(a[24:28], t4[:])
}
