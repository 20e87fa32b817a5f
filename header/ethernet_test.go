package header

import (
	"bytes"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestEthernetMatchesGopacket(t *testing.T) {
	r := newRand(40)
	for i := 0; i < 200; i++ {
		src, dst := net.HardwareAddr(randBytes(r, 6)), net.HardwareAddr(randBytes(r, 6))
		et := layers.EthernetType(r.Uint32())
		if et == layers.EthernetTypeDot1Q {
			et = layers.EthernetTypeIPv4
		}
		frame := mustSerialize(t, &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: et},
			gopacket.Payload(randBytes(r, 50)))
		e := Ethernet(frame)
		if d, s := e.Dst(), e.Src(); !bytes.Equal(d[:], dst) || !bytes.Equal(s[:], src) || e.Type() != uint16(et) {
			t.Fatalf("%s > %s type %#04x, want %s > %s %#04x", e.Src(), e.Dst(), e.Type(), src, dst, uint16(et))
		}
		nd, ns := MAC(randBytes(r, 6)), MAC(randBytes(r, 6))
		e.SetDst(nd)
		e.SetSrc(ns)
		e.SetType(EtherTypeARP)
		var got layers.Ethernet
		if err := got.DecodeFromBytes(frame, gopacket.NilDecodeFeedback); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.DstMAC, nd[:]) || !bytes.Equal(got.SrcMAC, ns[:]) || got.EthernetType != layers.EthernetTypeARP {
			t.Fatalf("after setters gopacket reads %s > %s %v", got.SrcMAC, got.DstMAC, got.EthernetType)
		}
	}
}

func TestVLANMatchesGopacket(t *testing.T) {
	r := newRand(41)
	for i := 0; i < 200; i++ {
		prio, dei, vid := uint8(r.IntN(8)), r.IntN(2) == 1, uint16(r.IntN(4096))
		frame := mustSerialize(t,
			&layers.Ethernet{SrcMAC: randBytes(r, 6), DstMAC: randBytes(r, 6), EthernetType: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{Priority: prio, DropEligible: dei, VLANIdentifier: vid, Type: layers.EthernetTypeIPv6},
			gopacket.Payload(randBytes(r, 50)))
		v := VLAN(frame[12:])
		tci := uint16(prio)<<13 | vid
		if dei {
			tci |= 1 << 12
		}
		if v.TCI() != tci || v.VID() != vid {
			t.Fatalf("TCI %#04x VID %d, want %#04x %d", v.TCI(), v.VID(), tci, vid)
		}
		// SetTCI writes the TPID and the TCI over an untagged frame's room.
		out := make([]byte, EthernetMinSize+VLANSize+50)
		copy(out, frame[:12])
		nt := uint16(r.Uint32())
		VLAN(out[12:]).SetTCI(nt)
		Ethernet(out[VLANSize:]).SetType(EtherTypeIPv4) // the inner type
		p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
		q, ok := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
		if !ok {
			t.Fatalf("gopacket finds no 802.1Q tag: %v", p)
		}
		if q.Priority != uint8(nt>>13) || q.DropEligible != (nt&0x1000 != 0) || q.VLANIdentifier != nt&0xfff ||
			q.Type != layers.EthernetTypeIPv4 {
			t.Fatalf("SetTCI(%#04x): gopacket reads %+v", nt, q)
		}
	}
}

func TestMAC(t *testing.T) {
	for _, c := range []struct {
		m     MAC
		s     string
		multi bool
	}{
		{MAC{}, "00:00:00:00:00:00", false},
		{BroadcastMAC, "ff:ff:ff:ff:ff:ff", true},
		{MAC{0x02, 0, 0, 0, 0, 0x10}, "02:00:00:00:00:10", false},
		{MAC{0x01, 0x00, 0x5e, 0x7f, 0xab, 0xcd}, "01:00:5e:7f:ab:cd", true},
		{MAC{0x33, 0x33, 0xff, 0, 0, 1}, "33:33:ff:00:00:01", true},
		{MAC{0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54}, "fe:dc:ba:98:76:54", false},
	} {
		if got := c.m.String(); got != c.s {
			t.Errorf("String() = %q, want %q", got, c.s)
		}
		if got := c.m.IsMulticast(); got != c.multi {
			t.Errorf("%s: IsMulticast = %v", c.s, got)
		}
	}
	r := newRand(42)
	for i := 0; i < 500; i++ {
		m := MAC(randBytes(r, 6))
		if got, want := m.String(), net.HardwareAddr(m[:]).String(); got != want {
			t.Fatalf("String() = %q, net.HardwareAddr says %q", got, want)
		}
	}
}

// TestParseL2MatchesGopacket compares ParseL2 with gopacket's decode of
// untagged, tagged and double-tagged frames, and checks that frames cut
// inside the header or the tag are refused.
func TestParseL2MatchesGopacket(t *testing.T) {
	r := newRand(42)
	for i := 0; i < 300; i++ {
		eth := &layers.Ethernet{SrcMAC: randBytes(r, 6), DstMAC: randBytes(r, 6), EthernetType: layers.EthernetTypeIPv4}
		vid := uint16(r.IntN(4096))
		var ls []gopacket.SerializableLayer
		switch i % 3 {
		case 0:
			ls = []gopacket.SerializableLayer{eth}
		case 1:
			eth.EthernetType = layers.EthernetTypeDot1Q
			ls = []gopacket.SerializableLayer{eth, &layers.Dot1Q{Priority: uint8(r.IntN(8)), VLANIdentifier: vid, Type: layers.EthernetTypeIPv6}}
		case 2: // QinQ as the kernel sends it: 802.1Q outer, 802.1Q inner
			eth.EthernetType = layers.EthernetTypeDot1Q
			ls = []gopacket.SerializableLayer{eth,
				&layers.Dot1Q{VLANIdentifier: vid, Type: layers.EthernetTypeDot1Q},
				&layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeARP}}
		}
		frame := mustSerialize(t, append(ls, gopacket.Payload(randBytes(r, 30)))...)
		l, ok := ParseL2(frame)
		if !ok {
			t.Fatalf("frame %d (%d bytes) refused", i, len(frame))
		}
		p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
		first, _ := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
		want := L2{Type: uint16(p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet).EthernetType), L3: EthernetMinSize}
		if first != nil {
			want = L2{Type: uint16(first.Type), VID: first.VLANIdentifier, Tagged: true, L3: EthernetMinSize + VLANSize}
		}
		if l != want {
			t.Fatalf("frame %d: ParseL2 %+v, gopacket %+v", i, l, want)
		}
		for cut := 0; cut < want.L3; cut++ {
			if _, ok := ParseL2(frame[:cut]); ok {
				t.Fatalf("frame %d cut to %d bytes (L3 at %d) accepted", i, cut, want.L3)
			}
		}
	}
}

// FuzzParseL2 checks that ParseL2 never reads past the frame and that what
// it accepts has its L3 offset inside the frame and a tag only when the
// frame announced one.
func FuzzParseL2(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, EthernetMinSize))
	f.Add(append(make([]byte, 12), 0x81, 0x00, 0x0f, 0xff))
	f.Add(append(make([]byte, 12), 0x81, 0x00, 0x0f, 0xff, 0x08, 0x00))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, ok := ParseL2(b)
		if !ok {
			if len(b) >= EthernetMinSize+VLANSize {
				t.Fatalf("%d bytes refused", len(b))
			}
			return
		}
		if l.L3 > len(b) || l.Tagged != (Ethernet(b).Type() == EtherTypeVLAN) || l.VID > 0x0fff {
			t.Fatalf("%d bytes: %+v", len(b), l)
		}
		if l.Tagged && (l.VID != VLAN(b[12:]).VID() || l.L3 != EthernetMinSize+VLANSize) {
			t.Fatalf("tagged %d bytes: %+v", len(b), l)
		}
	})
}
