package main

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/nat"
)

type headBuf struct {
	frame []byte
	off   int
}

func (h *headBuf) Bytes() []byte { return h.frame[h.off:] }
func (h *headBuf) Prepend(n int) []byte {
	if h.off < n {
		return nil
	}
	h.off -= n
	return h.frame[h.off : h.off+n]
}

// oppPacket builds the UDP datagram from src to local with gopacket, puts
// the opp header for client into it as GVS does and returns what a raw
// socket of protocol 248 reads: what follows the IP header.
func oppPacket(t testing.TB, src, local, client netip.AddrPort, payload string, noCk bool) []byte {
	t.Helper()
	u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(local.Port())}
	var ipl gopacket.SerializableLayer
	hlen := 20
	if src.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(local.Addr().AsSlice())}
		u.SetNetworkLayerForChecksum(ip)
		ipl = ip
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(local.Addr().AsSlice())}
		u.SetNetworkLayerForChecksum(ip)
		ipl, hlen = ip, 40
	}
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ipl, u, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	pkt := sb.Bytes()
	if noCk {
		pkt[hlen+6], pkt[hlen+7] = 0, 0
	}
	b := &headBuf{frame: append(make([]byte, 64), pkt...), off: 64}
	if err := nat.InsertOPP(b, 0, client); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()[hlen:]
}

// TestOPPAnswer: gvs-testsrv's opp reader answers a datagram GVS gave the
// opp header with the client it names (IPv4, IPv6, an IPv6 client over
// IPv4 as NAT64 sends it) to the datagram's source, and ignores datagrams
// to other ports or with a UDP checksum that does not verify.
func TestOPPAnswer(t *testing.T) {
	l4 := netip.MustParseAddrPort("10.2.0.11:9000")
	l6 := netip.MustParseAddrPort("[fd00:2::11]:9000")
	s4 := netip.MustParseAddrPort("10.2.0.100:1030")
	s6 := netip.MustParseAddrPort("[fd00:2::100]:1030")
	c4 := netip.MustParseAddrPort("10.1.0.2:5353")
	c6 := netip.MustParseAddrPort("[fd00:1::2]:5353")
	for _, tc := range []struct {
		name               string
		src, local, client netip.AddrPort
		noCk               bool
	}{
		{"ipv4", s4, l4, c4, false},
		{"ipv4 without UDP checksum", s4, l4, c4, true},
		{"ipv6", s6, l6, c6, false},
		{"nat64", s4, l4, c6, false},
	} {
		pkt := oppPacket(t, tc.src, tc.local, tc.client, "q1", tc.noCk)
		reply, to, ok := oppAnswer("rs1", pkt, tc.src.Addr(), tc.local)
		if want := "rs1 uoa=" + tc.client.String() + " q1"; !ok || string(reply) != want || to != tc.src {
			t.Errorf("%s: %q to %v (%v), want %q to %v", tc.name, reply, to, ok, want, tc.src)
		}
		if _, _, ok := oppAnswer("rs1", pkt, tc.src.Addr(), netip.AddrPortFrom(tc.local.Addr(), 9001)); ok {
			t.Errorf("%s: answered a datagram to another port", tc.name)
		}
		if tc.noCk {
			continue
		}
		bad := append([]byte(nil), pkt...)
		bad[len(bad)-1] ^= 1
		if _, _, ok := oppAnswer("rs1", bad, tc.src.Addr(), tc.local); ok {
			t.Errorf("%s: answered a datagram whose checksum fails", tc.name)
		}
	}
}

// FuzzOPPAnswer: any packet is handled without panicking; an answer goes
// to an address of the local address's family.
func FuzzOPPAnswer(f *testing.F) {
	f.Add(oppPacket(f, netip.MustParseAddrPort("10.2.0.100:1030"), netip.MustParseAddrPort("10.2.0.11:9000"), netip.MustParseAddrPort("[fd00:1::2]:5353"), "q", false), false)
	f.Add(oppPacket(f, netip.MustParseAddrPort("[fd00:2::100]:1030"), netip.MustParseAddrPort("[fd00:2::11]:9000"), netip.MustParseAddrPort("[fd00:1::2]:5353"), "q", false), true)
	f.Fuzz(func(t *testing.T, pkt []byte, v6 bool) {
		src, local := netip.MustParseAddr("10.2.0.100"), netip.MustParseAddrPort("10.2.0.11:9000")
		if v6 {
			src, local = netip.MustParseAddr("fd00:2::100"), netip.MustParseAddrPort("[fd00:2::11]:9000")
		}
		if _, to, ok := oppAnswer("rs1", pkt, src, local); ok && to.Addr() != src {
			t.Fatalf("answer to %v", to)
		}
	})
}
