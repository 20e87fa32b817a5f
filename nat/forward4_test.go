package nat

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
)

func word4(a netip.Addr) uint32 { b := a.As4(); return be32(b[:]) }

// forward4Want is what Forward4 must write: RewriteAt, then the TTL
// decremented with its own checksum update.
func forward4Want(l3 []byte, to *Endpoints) ([]byte, error) {
	want := append([]byte(nil), l3...)
	if err := RewriteAt(want, header.LocateIPv4(header.IPv4(want)), to); err != nil {
		return nil, err
	}
	header.IPv4(want).DecTTL()
	return want, nil
}

// TestForward4: on TCP and UDP packets of random endpoints, TTLs, sizes,
// TCP options, IPv4 options and UDP without a checksum, Forward4 writes
// exactly RewriteAt followed by DecTTL, and the result decodes (gopacket)
// with the translated tuple, the TTL one lower and every checksum equal to
// a from-scratch computation.
func TestForward4(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	addr := func() netip.Addr {
		return netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
	}
	ep := func() Endpoints { return Endpoints{addr(), addr(), uint16(r.Uint32()), uint16(r.Uint32())} }
	for i := 0; i < 2000; i++ {
		p := pkt{ep: ep(), proto: header.ProtoTCP, seq: r.Uint32(), ack: r.Uint32(), flags: uint8(r.Uint32()) & 0x1f,
			payload: seqPayload(r.IntN(1400)), ttl: uint8(2 + r.IntN(254))}
		switch r.IntN(4) {
		case 0:
			p.proto = header.ProtoUDP
			p.noUDPCk = r.IntN(3) == 0
		case 1:
			p.opts = tsOpts
		case 2:
			p.ipOpts = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
		}
		for j := range p.payload {
			p.payload[j] = byte(r.Uint32())
		}
		l3 := p.build(t)
		to := ep()
		want, err := forward4Want(l3, &to)
		if err != nil {
			t.Fatalf("case %d: RewriteAt: %v", i, err)
		}
		if err := Forward4(l3, header.LocateIPv4(header.IPv4(l3)), word4(to.Src), word4(to.Dst), to.SrcPort, to.DstPort); err != nil {
			t.Fatalf("case %d: Forward4: %v", i, err)
		}
		if !bytes.Equal(l3, want) {
			t.Fatalf("case %d: Forward4 wrote\n% x\nRewriteAt and DecTTL\n% x", i, l3, want)
		}
		if i%10 != 0 {
			continue
		}
		d := verifyChecksums(t, l3)
		if got := tuple(t, d); got != to {
			t.Fatalf("case %d: tuple %+v, want %+v", i, got, to)
		}
		if ttl := d.Layer(layers.LayerTypeIPv4).(*layers.IPv4).TTL; ttl != p.ttl-1 {
			t.Fatalf("case %d: TTL %d, want %d", i, ttl, p.ttl-1)
		}
	}
}

// TestForward4Refuses: what RewriteAt refuses, Forward4 refuses with the
// same error, leaving the packet as it was.
func TestForward4Refuses(t *testing.T) {
	to := conn4.toServer()
	for _, c := range []struct {
		name string
		l3   []byte
		want error
	}{
		{"ICMP", pkt{ep: conn4.clientSent(), proto: header.ProtoICMP}.build(t), ErrUnsupportedProto},
		{"fragment with an offset", pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flagsFrag: 185, payload: seqPayload(8)}.build(t), ErrFragment},
		{"TCP header cut short", pkt{ep: conn4.clientSent(), proto: header.ProtoUDP, payload: seqPayload(4)}.build(t), ErrTruncated},
	} {
		if c.name == "TCP header cut short" { // a UDP datagram of 12 bytes relabelled TCP
			ip := header.IPv4(c.l3)
			old := be16(c.l3[8:])
			c.l3[9] = header.ProtoTCP
			ip.SetChecksum(header.ChecksumUpdate16(ip.Checksum(), old, be16(c.l3[8:])))
		}
		before := string(c.l3)
		err := Forward4(c.l3, header.LocateIPv4(header.IPv4(c.l3)), word4(to.Src), word4(to.Dst), to.SrcPort, to.DstPort)
		if err != c.want || string(c.l3) != before {
			t.Errorf("%s: %v, want %v and the packet unchanged", c.name, err, c.want)
		}
	}
	l3 := pkt{ep: conn6.clientSent(), proto: header.ProtoTCP}.build(t)
	if err := Forward4(l3, header.LocateIPv6(header.IPv6(l3)), 1, 2, 3, 4); err != ErrMalformed {
		t.Errorf("IPv6 packet: %v, want %v", err, ErrMalformed)
	}
}

// FuzzForward4: on any bytes and any transport location Forward4 does
// not panic and changes nothing when it refuses; on a validated IPv4
// packet with a TTL above 1 it writes what RewriteAt and DecTTL write, or
// refuses what RewriteAt refuses.
func FuzzForward4(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data, seed []byte, sp, dp uint16, odd bool) {
		src, dst := word4(fuzzAddr(false, seed, 0)), word4(fuzzAddr(false, seed, 1))
		raw := append([]byte(nil), data...)
		var tr header.Transport
		if len(seed) >= 6 {
			tr = header.Transport{Off: be16(seed), End: be16(seed[2:]), Proto: seed[4], Flags: seed[5]}
		}
		if err := Forward4(raw, tr, src, dst, sp, dp); err != nil && !bytes.Equal(raw, data) {
			t.Fatalf("Forward4 refused (%v) and changed the packet", err)
		}

		l3, ok := validL3(append([]byte(nil), data...))
		if !ok || l3[0]>>4 != 4 || header.IPv4(l3).TTL() <= 1 {
			return
		}
		to := Endpoints{netip.AddrFrom4([4]byte{byte(src >> 24), byte(src >> 16), byte(src >> 8), byte(src)}),
			netip.AddrFrom4([4]byte{byte(dst >> 24), byte(dst >> 16), byte(dst >> 8), byte(dst)}), sp, dp}
		want, werr := forward4Want(l3, &to)
		before := append([]byte(nil), l3...)
		err := Forward4(l3, header.LocateIPv4(header.IPv4(l3)), src, dst, sp, dp)
		switch {
		case err != werr:
			t.Fatalf("Forward4: %v, RewriteAt: %v", err, werr)
		case err != nil && !bytes.Equal(l3, before):
			t.Fatalf("Forward4 refused (%v) and changed the packet", err)
		case err == nil && !bytes.Equal(l3, want):
			t.Fatalf("Forward4 wrote\n% x\nRewriteAt and DecTTL\n% x", l3, want)
		case err == nil && header.IPv4(l3).Validate() != header.Valid:
			t.Fatalf("IPv4 header checksum broken")
		}
	})
}
