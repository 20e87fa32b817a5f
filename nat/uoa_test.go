package nat

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

type prependBuf struct {
	frame []byte
	off   int
}

func (p *prependBuf) Bytes() []byte { return p.frame[p.off:] }
func (p *prependBuf) Prepend(n int) []byte {
	if p.off < n {
		return nil
	}
	p.off -= n
	return p.frame[p.off : p.off+n]
}

// TestInsertUOA: the option lands in the IPv4 header, gopacket decodes
// the packet with valid checksums, the UDP datagram is untouched, and
// ParseUOA reads the client back.
func TestInsertUOA(t *testing.T) {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: []byte{10, 2, 0, 100}, DstIP: []byte{10, 2, 0, 11}}
	u := &layers.UDP{SrcPort: 1025, DstPort: 9000}
	u.SetNetworkLayerForChecksum(ip)
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, u, gopacket.Payload("query")); err != nil {
		t.Fatal(err)
	}
	pkt := sb.Bytes()
	b := &prependBuf{frame: append(make([]byte, 64), pkt...), off: 64}
	client := netip.MustParseAddrPort("192.0.2.7:5353")
	if err := InsertUOA(b, 0, client); err != nil {
		t.Fatal(err)
	}
	p := gopacket.NewPacket(b.Bytes(), layers.LayerTypeIPv4, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatal(el.Error())
	}
	got := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if got.IHL != 7 || got.Length != uint16(len(pkt)+8) || len(got.Options) != 1 || got.Options[0].OptionType != UOAKind {
		t.Fatalf("IPv4 IHL %d length %d options %+v", got.IHL, got.Length, got.Options)
	}
	raw := b.Bytes()
	if ck := got.Checksum; ck == 0 || checksumOf(raw[:28]) != 0xffff {
		t.Errorf("IPv4 header checksum wrong")
	}
	if string(p.Layer(layers.LayerTypeUDP).(*layers.UDP).Payload) != "query" {
		t.Error("payload changed")
	}
	if a, ok := ParseUOA(raw[20:28]); !ok || a != client {
		t.Errorf("ParseUOA = %v %v", a, ok)
	}
	if err := InsertUOA(b, 0, client); err != ErrMalformed {
		t.Errorf("a second insertion: %v, want ErrMalformed (options present)", err)
	}
	if err := InsertUOA(&prependBuf{frame: append([]byte(nil), pkt...)}, 0, client); err != ErrHeadroom {
		t.Errorf("no headroom: %v", err)
	}
	if err := InsertUOA(&prependBuf{frame: append(make([]byte, 8), pkt...), off: 8}, 0, netip.MustParseAddrPort("[2001:db8::1]:1")); err != ErrFamily {
		t.Errorf("IPv6 client: %v", err)
	}
}

func checksumOf(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// FuzzParseUOA: any options area parses without panicking; what is found
// lies within it.
func FuzzParseUOA(f *testing.F) {
	f.Add([]byte{1, UOAKind, UOALen, 0x14, 0xe9, 192, 0, 2, 7, 0})
	f.Add([]byte{7, 3})
	f.Fuzz(func(t *testing.T, opts []byte) {
		if a, ok := ParseUOA(opts); ok && !a.Addr().Is4() {
			t.Fatalf("%v", a)
		}
	})
}
