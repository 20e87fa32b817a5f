//go:build linux

package xdpfast

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/nat"
)

// FuzzFastProgram runs arbitrary frames through the program with both
// directions of a TCP and a UDP connection offloaded in each family, and
// checks it against a plain Go reading of the same frame: a frame the
// fast path may take (unicast, untagged IPv4 without options or IPv6
// without extension headers, not a fragment, whole TCP/UDP header, an
// entry, no SYN/FIN/RST, TTL above 1, within the MTU) leaves redirected
// and rewritten exactly as nat.RewriteAt rewrites it; any other frame
// leaves unchanged towards the AF_XDP socket. Each frame is counted once.
func FuzzFastProgram(f *testing.F) {
	fast := loadTest(f, Options{MaxConns: 64})
	const mtu = 1000
	entries := map[Key]nat.Endpoints{}
	for _, k := range []fnatConn{conn4, conn6} {
		for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
			offload(f, fast, proto, k, mtu)
			entries[keyOf(proto, k.clientSent())] = k.toServer()
			entries[keyOf(proto, k.serverSent())] = k.toClient()
		}
	}
	for _, fr := range []frame{
		{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, payload: []byte("abc")},
		{ep: conn6.serverSent(), proto: header.ProtoUDP, payload: []byte("abcd")},
		{ep: conn4.serverSent(), proto: header.ProtoUDP, noUDPCk: true},
		{ep: conn6.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagSYN},
		{ep: conn4.clientSent(), proto: header.ProtoUDP, ipOpts: true},
		{ep: conn6.clientSent(), proto: header.ProtoUDP, hopByHop: true},
		{ep: conn4.clientSent(), proto: header.ProtoUDP, fragOff: 0x2000},
		{ep: conn4.clientSent(), proto: header.ProtoUDP, ttl: 1},
		{ep: conn6.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, vlan: true},
	} {
		f.Add(fr.build(f))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 14 || len(in) > 1600 {
			return // BPF_PROG_RUN wants an Ethernet header; a page holds the rest
		}
		before := verdicts(t, fast)
		ret, out := run(t, fast, in)
		after := verdicts(t, fast)
		if sum(after) != sum(before)+1 {
			t.Fatalf("verdicts %v -> %v: want one more", before, after)
		}
		to, fastOK := reference(in, entries, mtu)
		switch {
		case fastOK:
			if ret != xdpRedirect {
				t.Fatalf("action %d, want XDP_REDIRECT; verdicts %v", ret, after)
			}
			src, dst := egressPort, serverHop
			if to.Dst == conn4.c || to.Dst == conn6.c {
				src, dst = portMAC, clientHop
			}
			if want := expectFast(t, in, to, src, dst); !bytes.Equal(out, want) {
				t.Fatalf("frame\n got  %x\n want %x", out, want)
			}
		case ret != xdpPass || !bytes.Equal(out, in):
			t.Fatalf("action %d (want XDP_PASS), frame changed %v; verdicts %v", ret, !bytes.Equal(out, in), after)
		}
	})
}

// reference says whether the fast path takes frame b, and the endpoints
// it rewrites it to.
func reference(b []byte, entries map[Key]nat.Endpoints, mtu int) (nat.Endpoints, bool) {
	if b[0]&1 != 0 {
		return nat.Endpoints{}, false
	}
	l3 := b[14:]
	var k Key
	var l4 []byte
	switch {
	case b[12] == 0x08 && b[13] == 0x00:
		if len(l3) < 20 || l3[0] != 0x45 {
			return nat.Endpoints{}, false
		}
		ip := header.IPv4(l3)
		n := int(ip.TotalLen())
		if n < 20 || n > len(l3) || n > mtu || ip.FlagsFrag()&(header.IPv4MoreFragments|header.IPv4FragOffset) != 0 || ip.TTL() <= 1 {
			return nat.Endpoints{}, false
		}
		k = Key{Proto: ip.Protocol(), Src: netip.AddrFrom4([4]byte(l3[12:16])), Dst: netip.AddrFrom4([4]byte(l3[16:20]))}
		l4 = l3[20:n]
	case b[12] == 0x86 && b[13] == 0xdd:
		if len(l3) < 40 || l3[0]>>4 != 6 {
			return nat.Endpoints{}, false
		}
		ip := header.IPv6(l3)
		n := 40 + int(ip.PayloadLen())
		if n > len(l3) || n > mtu || ip.HopLimit() <= 1 {
			return nat.Endpoints{}, false
		}
		k = Key{Proto: ip.NextHeader(), Src: netip.AddrFrom16([16]byte(l3[8:24])), Dst: netip.AddrFrom16([16]byte(l3[24:40]))}
		l4 = l3[40:n]
	default:
		return nat.Endpoints{}, false
	}
	switch {
	case k.Proto == header.ProtoTCP && len(l4) >= 20:
		if l4[13]&(header.TCPFlagSYN|header.TCPFlagFIN|header.TCPFlagRST) != 0 {
			return nat.Endpoints{}, false
		}
	case k.Proto == header.ProtoUDP && len(l4) >= 8:
	default:
		return nat.Endpoints{}, false
	}
	k.SrcPort, k.DstPort = uint16(l4[0])<<8|uint16(l4[1]), uint16(l4[2])<<8|uint16(l4[3])
	to, ok := entries[k]
	return to, ok
}
