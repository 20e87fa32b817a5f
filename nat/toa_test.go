package nat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
)

// toaOption is the option InsertTOA must produce, spelled out byte by byte.
func toaOption(client netip.AddrPort) []byte {
	a := client.Addr().Unmap()
	o := []byte{254, 0, byte(client.Port() >> 8), byte(client.Port())}
	o = append(o, a.AsSlice()...)
	o[1] = byte(len(o))
	return o
}

func TestInsertTOA(t *testing.T) {
	c4 := netip.AddrPortFrom(conn4.c, cport)
	c6 := netip.AddrPortFrom(conn6.c, cport)
	sack := []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindSACK, OptionLength: 26, OptionData: seqPayload(24)}}
	tests := []struct {
		desc    string
		in      pkt
		client  netip.AddrPort
		padTo60 bool
	}{
		{"IPv4 first ACK, no options", pkt{ep: conn4.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 1, ack: 2}, c4, false},
		{"IPv4 first ACK in a padded 60-byte frame", pkt{ep: conn4.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 1, ack: 2}, c4, true},
		{"IPv4 data with timestamps", pkt{ep: conn4.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK | header.TCPFlagPSH, seq: 1, ack: 2, opts: tsOpts, payload: seqPayload(1000)}, c4, false},
		{"IPv4 data with odd payload length", pkt{ep: conn4.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 1, ack: 2, opts: tsOpts, payload: seqPayload(101)}, c4, false},
		{"IPv4 SYN with a full Linux option set", pkt{ep: conn4.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagSYN, seq: 1, opts: synOpts}, c4, false},
		{"IPv4 options at 32 bytes, IPv4 client fits exactly", pkt{ep: conn4.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: append(append([]layers.TCPOption{}, tsOpts...), sack[0], sack[1], layers.TCPOption{OptionType: layers.TCPOptionKindSACK, OptionLength: 18, OptionData: seqPayload(16)})}, c4, false},
		{"IPv6 first ACK", pkt{ep: conn6.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 1, ack: 2}, c6, false},
		{"IPv6 first ACK behind a hop-by-hop header", pkt{ep: conn6.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 1, ack: 2, hopByHop: true}, c6, false},
		{"IPv6 data with timestamps", pkt{ep: conn6.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK, seq: 9, ack: 8, opts: tsOpts, payload: seqPayload(1200)}, c6, false},
		{"IPv6 ACK with a SACK block", pkt{ep: conn6.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: []layers.TCPOption{sack[0], sack[1], {OptionType: layers.TCPOptionKindSACK, OptionLength: 10, OptionData: seqPayload(8)}}}, c6, false},
		{"IPv4 packet, IPv6 client (20-byte option)", pkt{ep: conn4.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK, payload: seqPayload(5)}, c6, false},
		{"IPv6 packet, IPv4-mapped client (8-byte option)", pkt{ep: conn6.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK}, netip.AddrPortFrom(netip.AddrFrom16(conn4.c.As16()), 1), false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			l3 := tc.in.build(t)
			b := newBuf(t, l3, etherTypeOf(l3))
			if tc.padTo60 {
				pad := b.Append(60 - b.Len())
				for i := range pad {
					pad[i] = 0xee
				}
			}
			eth := append([]byte(nil), b.Bytes()[:header.EthernetMinSize]...)
			room, n0 := b.Headroom(), b.Len()
			opt := toaOption(tc.client)

			if err := InsertTOA(b, int(b.L3), tc.client); err != nil {
				t.Fatalf("InsertTOA: %v", err)
			}
			if b.Headroom() != room-len(opt) || b.Len() != n0+len(opt) {
				t.Errorf("headroom %d, len %d; want %d, %d", b.Headroom(), b.Len(), room-len(opt), n0+len(opt))
			}
			out := b.Bytes()
			if !bytes.Equal(out[:header.EthernetMinSize], eth) {
				t.Errorf("Ethernet header not moved intact: %x, want %x", out[:header.EthernetMinSize], eth)
			}
			got := out[b.L3:]
			if tc.padTo60 {
				tail := got[len(l3)+len(opt):]
				if len(tail) != 60-header.EthernetMinSize-len(l3) || !bytes.Equal(tail, bytes.Repeat([]byte{0xee}, len(tail))) {
					t.Errorf("padding after the packet changed: %x", tail)
				}
				got = got[:len(l3)+len(opt)]
			}

			p := verifyChecksums(t, got)
			tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			hdr := 20
			for _, o := range tc.in.opts {
				hdr += max(1, int(o.OptionLength))
			}
			if int(tcp.DataOffset)*4 != hdr+len(opt) {
				t.Errorf("data offset %d bytes, want %d", tcp.DataOffset*4, hdr+len(opt))
			}
			if !bytes.Equal(tcp.Contents[20:20+len(opt)], opt) {
				t.Errorf("TOA option = %x, want %x", tcp.Contents[20:20+len(opt)], opt)
			}
			if !bytes.Equal(tcp.Contents[20+len(opt):], l3[len(l3)-len(tc.in.payload)-(hdr-20):len(l3)-len(tc.in.payload)]) {
				t.Errorf("existing options not kept: %x", tcp.Contents[20+len(opt):])
			}
			if !bytes.Equal(tcp.Payload, tc.in.payload) && len(tc.in.payload) > 0 {
				t.Errorf("payload changed")
			}
			switch n := p.NetworkLayer().(type) {
			case *layers.IPv4:
				if int(n.Length) != len(l3)+len(opt) {
					t.Errorf("IPv4 total length %d, want %d", n.Length, len(l3)+len(opt))
				}
			case *layers.IPv6:
				if int(n.Length) != len(l3)-40+len(opt) {
					t.Errorf("IPv6 payload length %d, want %d", n.Length, len(l3)-40+len(opt))
				}
			}
			if tcp.Seq != tc.in.seq || tcp.Ack != tc.in.ack {
				t.Errorf("seq/ack changed: %d/%d", tcp.Seq, tcp.Ack)
			}
			// The whole packet equals one built from scratch with the TOA
			// as its first option.
			want := tc.in
			want.opts = append([]layers.TCPOption{{OptionType: TOAKind, OptionLength: opt[1], OptionData: opt[2:]}}, tc.in.opts...)
			if w := want.build(t); !bytes.Equal(got, w) {
				t.Errorf("packet with TOA:\n got  %x\n want %x", got, w)
			}
		})
	}
}

func TestInsertTOARefuses(t *testing.T) {
	c4 := netip.AddrPortFrom(conn4.c, cport)
	c6 := netip.AddrPortFrom(conn6.c, cport)
	// 40 bytes of options: data offset 15.
	full := []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: seqPayload(8)},
		{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindSACK, OptionLength: 26, OptionData: seqPayload(24)}}
	// 24 bytes of options: room for 16 more, enough for IPv4's 8, not IPv6's 20.
	some := append(append([]layers.TCPOption{}, tsOpts...), layers.TCPOption{OptionType: layers.TCPOptionKindSACK, OptionLength: 10, OptionData: seqPayload(8)},
		layers.TCPOption{OptionType: layers.TCPOptionKindNop}, layers.TCPOption{OptionType: layers.TCPOptionKindNop})
	tests := []struct {
		desc     string
		l3       []byte
		client   netip.AddrPort
		headroom int // -1: default
		want     error
	}{
		{"options full (data offset 15)", pkt{ep: conn4.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: full, payload: seqPayload(10)}.build(t), c4, -1, ErrOptionSpace},
		{"room for 16 bytes, IPv6 client needs 20", pkt{ep: conn6.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: some}.build(t), c6, -1, ErrOptionSpace},
		{"headroom too small", pkt{ep: conn4.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK}.build(t), c4, 7, ErrHeadroom},
		{"UDP", pkt{ep: conn4.toServer(), proto: header.ProtoUDP}.build(t), c4, -1, ErrUnsupportedProto},
		{"invalid client", pkt{ep: conn4.toServer(), proto: header.ProtoTCP}.build(t), netip.AddrPort{}, -1, ErrFamily},
		{"IPv4 first fragment", pkt{ep: conn4.toServer(), proto: header.ProtoTCP, flagsFrag: 0x2000, payload: seqPayload(16)}.build(t), c4, -1, ErrFragment},
		{"IPv6 first fragment", withExt6(pkt{ep: conn6.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK}.build(t), ext6Fragment, ext6FirstFrag), c6, -1, ErrFragment},
		{"IPv6 routing header with a segment left", withExt6(pkt{ep: conn6.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK}.build(t), ext6Routing, ext6RouteLeft), c6, -1, ErrExtHeader},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			b := newBuf(t, tc.l3, etherTypeOf(tc.l3))
			if tc.headroom >= 0 {
				frame := append([]byte(nil), b.Bytes()...)
				b.Reset(tc.headroom, len(frame))
				copy(b.Bytes(), frame)
				b.L3 = header.EthernetMinSize
			}
			before := append([]byte(nil), b.Bytes()...)
			room := b.Headroom()
			if err := InsertTOA(b, int(b.L3), tc.client); !errors.Is(err, tc.want) {
				t.Fatalf("InsertTOA = %v, want %v", err, tc.want)
			}
			if b.Headroom() != room || !bytes.Equal(before, b.Bytes()) {
				t.Errorf("refused packet or buffer changed")
			}
		})
	}
	t.Run("bad l3 offset", func(t *testing.T) {
		b := newBuf(t, pkt{ep: conn4.toServer(), proto: header.ProtoTCP}.build(t), header.EtherTypeIPv4)
		if err := InsertTOA(b, b.Len()+1, c4); !errors.Is(err, ErrMalformed) {
			t.Fatalf("InsertTOA = %v, want ErrMalformed", err)
		}
	})
}

// TestInsertTOARandom inserts TOA into random segments and checks the TCP
// checksum against a from-scratch computation.
func TestInsertTOARandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	pool := [][]layers.TCPOption{nil, tsOpts, synOpts[:1], synOpts}
	for i := 0; i < 500; i++ {
		k := conn4
		if r.IntN(2) == 0 {
			k = conn6
		}
		p := pkt{ep: k.toServer(), proto: header.ProtoTCP, flags: uint8(r.Uint32()) & 0x1f, seq: r.Uint32(), ack: r.Uint32(),
			opts: pool[r.IntN(len(pool))], payload: make([]byte, r.IntN(1400))}
		for j := range p.payload {
			p.payload[j] = byte(r.Uint32())
		}
		var a [16]byte
		binary.BigEndian.PutUint64(a[:], r.Uint64())
		binary.BigEndian.PutUint64(a[8:], r.Uint64())
		client := netip.AddrPortFrom(netip.AddrFrom16(a), uint16(r.Uint32()))
		if r.IntN(2) == 0 {
			client = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[:4])), client.Port())
		}
		l3 := p.build(t)
		b := newBuf(t, l3, etherTypeOf(l3))
		if err := InsertTOA(b, int(b.L3), client); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		got := b.Bytes()[b.L3:]
		l4 := header.IPv4MinSize
		var src, dst []byte
		if k == conn6 {
			l4 = header.IPv6MinSize
			src, dst = header.IPv6(got).SrcBytes(), header.IPv6(got).DstBytes()
		} else {
			if header.IPv4(got).Validate() != header.Valid {
				t.Fatalf("case %d: IPv4 header invalid after insertion", i)
			}
			src, dst = header.IPv4(got).SrcBytes(), header.IPv4(got).DstBytes()
		}
		if ck, want := be16(got[l4+tcpCksumOff:]), header.TransportChecksum(header.ProtoTCP, src, dst, got[l4:], tcpCksumOff); ck != want {
			t.Fatalf("case %d: TCP checksum %#04x, from scratch %#04x", i, ck, want)
		}
		if !bytes.Equal(got[l4+20:l4+20+TOALen(client.Addr())], toaOption(client)) {
			t.Fatalf("case %d: option %x", i, got[l4+20:l4+20+TOALen(client.Addr())])
		}
	}
}

func TestTOALen(t *testing.T) {
	for _, tc := range []struct {
		a    netip.Addr
		want int
	}{
		{conn4.c, 8}, {conn6.c, 20}, {netip.AddrFrom16(conn4.c.As16()), 8}, {netip.Addr{}, 0},
	} {
		if got := TOALen(tc.a); got != tc.want {
			t.Errorf("TOALen(%v) = %d, want %d", tc.a, got, tc.want)
		}
	}
}
