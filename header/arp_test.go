package header

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func randARP(t testing.TB, r *rand.Rand) []byte {
	return mustSerialize(t, &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: uint16(1 + r.IntN(2)),
		SourceHwAddress: randBytes(r, 6), SourceProtAddress: randBytes(r, 4),
		DstHwAddress: randBytes(r, 6), DstProtAddress: randBytes(r, 4)})
}

func TestARPMatchesGopacket(t *testing.T) {
	r := newRand(50)
	for i := 0; i < 300; i++ {
		raw := randARP(t, r)
		var want layers.ARP
		if err := want.DecodeFromBytes(raw, gopacket.NilDecodeFeedback); err != nil {
			t.Fatal(err)
		}
		a := ARP(raw)
		if !a.IsValid() {
			t.Fatal("IsValid false for a gopacket-built packet")
		}
		sm, tm := a.SenderMAC(), a.TargetMAC()
		if a.Op() != want.Operation || !bytes.Equal(sm[:], want.SourceHwAddress) || !bytes.Equal(tm[:], want.DstHwAddress) ||
			a.SenderIP() != netip.AddrFrom4([4]byte(want.SourceProtAddress)) ||
			a.TargetIP() != netip.AddrFrom4([4]byte(want.DstProtAddress)) {
			t.Fatalf("getters disagree with gopacket %+v", want)
		}
		// Set writes a whole packet that gopacket reads back.
		op := uint16(r.Uint32())
		sha, tha := MAC(randBytes(r, 6)), MAC(randBytes(r, 6))
		spa, tpa := randAddr4(r), randAddr4(r)
		out := ARP(randBytes(r, ARPSize))
		out.Set(op, sha, spa, tha, tpa)
		var got layers.ARP
		if err := got.DecodeFromBytes(out, gopacket.NilDecodeFeedback); err != nil {
			t.Fatal(err)
		}
		if !out.IsValid() || got.AddrType != layers.LinkTypeEthernet || got.Protocol != layers.EthernetTypeIPv4 ||
			got.HwAddressSize != 6 || got.ProtAddressSize != 4 || got.Operation != op ||
			!bytes.Equal(got.SourceHwAddress, sha[:]) || !net.IP(got.SourceProtAddress).Equal(spa.AsSlice()) ||
			!bytes.Equal(got.DstHwAddress, tha[:]) || !net.IP(got.DstProtAddress).Equal(tpa.AsSlice()) {
			t.Fatalf("Set(%d, %s, %s, %s, %s): gopacket reads %+v", op, sha, spa, tha, tpa, got)
		}
	}
}

func TestARPIsValid(t *testing.T) {
	good := randARP(t, newRand(51))
	mut := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	for _, c := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"good", good, true},
		{"padded", append(append([]byte(nil), good...), make([]byte, 18)...), true},
		{"27 bytes", good[:27], false},
		{"empty", nil, false},
		{"hardware type 6 (IEEE 802)", mut(func(b []byte) { binary.BigEndian.PutUint16(b, 6) }), false},
		{"protocol IPv6", mut(func(b []byte) { binary.BigEndian.PutUint16(b[2:], EtherTypeIPv6) }), false},
		{"hardware length 8", mut(func(b []byte) { b[4] = 8 }), false},
		{"protocol length 16", mut(func(b []byte) { b[5] = 16 }), false},
		{"unknown op is still ARP", mut(func(b []byte) { binary.BigEndian.PutUint16(b[6:], 9) }), true},
	} {
		if got := ARP(c.pkt).IsValid(); got != c.want {
			t.Errorf("%s: IsValid = %v, want %v", c.name, got, c.want)
		}
	}
}

func FuzzARP(f *testing.F) {
	r := newRand(52)
	for i := 0; i < 4; i++ {
		p := randARP(f, r)
		f.Add(p)
		f.Add(p[:20])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a := ARP(b)
		if !a.IsValid() {
			return
		}
		// A valid packet survives a round trip through its getters and Set.
		c := ARP(make([]byte, ARPSize))
		c.Set(a.Op(), a.SenderMAC(), a.SenderIP(), a.TargetMAC(), a.TargetIP())
		if !bytes.Equal(c, b[:ARPSize]) || !c.IsValid() {
			t.Fatalf("round trip\n % x\nfrom\n % x", []byte(c), b[:ARPSize])
		}
	})
}
