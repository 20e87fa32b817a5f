package header

import "encoding/binary"

// EtherType values GVS handles.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeVLAN = 0x8100
	EtherTypeQinQ = 0x88a8
	EtherTypeIPv6 = 0x86dd
)

// Ethernet header (no FCS).
//
//	+------------+------------+-----------+
//	| dst (6)    | src (6)    | type (2)  |
//	+------------+------------+-----------+
type Ethernet []byte

// EthernetMinSize is the size of an untagged Ethernet header.
const EthernetMinSize = 14

// MAC is an Ethernet address as a comparable value.
type MAC [6]byte

// BroadcastMAC is ff:ff:ff:ff:ff:ff.
var BroadcastMAC = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// IsMulticast reports whether the group bit is set (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// String formats m as aa:bb:cc:dd:ee:ff.
func (m MAC) String() string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 17)
	for i, c := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hex[c>>4], hex[c&15])
	}
	return string(b)
}

func (e Ethernet) Dst() (m MAC)     { copy(m[:], e[0:6]); return }
func (e Ethernet) Src() (m MAC)     { copy(m[:], e[6:12]); return }
func (e Ethernet) Type() uint16     { return binary.BigEndian.Uint16(e[12:]) }
func (e Ethernet) SetDst(m MAC)     { copy(e[0:6], m[:]) }
func (e Ethernet) SetSrc(m MAC)     { copy(e[6:12], m[:]) }
func (e Ethernet) SetType(t uint16) { binary.BigEndian.PutUint16(e[12:], t) }

// VLAN is an 802.1Q tag following the MAC addresses, as it sits in the
// frame: TPID (2) TCI (2); the inner EtherType follows it.
//
//	+-----------+-----+-----+------------+
//	| TPID 8100 | PCP DEI VID (12 bits)  |
//	+-----------+-----+-----+------------+
type VLAN []byte

// VLANSize is the size of one tag.
const VLANSize = 4

func (v VLAN) TCI() uint16 { return binary.BigEndian.Uint16(v[2:]) }
func (v VLAN) VID() uint16 { return v.TCI() & 0x0fff }
func (v VLAN) SetTCI(t uint16) {
	binary.BigEndian.PutUint16(v[0:], EtherTypeVLAN)
	binary.BigEndian.PutUint16(v[2:], t)
}

// L2 is what a frame's link-layer header says: the EtherType after at most
// one 802.1Q tag, that tag's VLAN id, and where the L3 header starts.
type L2 struct {
	Type   uint16
	VID    uint16
	Tagged bool
	L3     int
}

// ParseL2 reads the Ethernet header at the start of frame and at most one
// 802.1Q tag (a second tag's TPID is the Type returned). ok is false when
// the frame is shorter than the header, or than the tag it announces.
func ParseL2(frame []byte) (l L2, ok bool) {
	if len(frame) < EthernetMinSize {
		return l, false
	}
	l.Type, l.L3 = binary.BigEndian.Uint16(frame[12:]), EthernetMinSize
	if l.Type == EtherTypeVLAN {
		if len(frame) < EthernetMinSize+VLANSize {
			return l, false
		}
		l.VID = VLAN(frame[12:]).VID()
		l.Type = binary.BigEndian.Uint16(frame[16:])
		l.L3, l.Tagged = EthernetMinSize+VLANSize, true
	}
	return l, true
}
