package dataplane

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// withHopByHop inserts an 8-byte hop-by-hop options header (PadN) after
// the IPv6 header of an Ethernet frame; the transport checksum is
// unchanged (its pseudo-header has no extension headers).
func withHopByHop(frame []byte) []byte {
	const l3 = 14
	out := append([]byte(nil), frame[:l3+40]...)
	next := out[l3+6]
	out[l3+6] = 0
	binary.BigEndian.PutUint16(out[l3+4:], binary.BigEndian.Uint16(out[l3+4:])+8)
	out = append(out, next, 0, 1, 4, 0, 0, 0, 0)
	return append(out, frame[l3+40:]...)
}

// TestLBOneParse: the L3 stage locates the transport header once and the
// IPVS stage follows it: an IPv6 SYN behind a hop-by-hop header is
// translated where its TCP header is (the header kept, the checksum valid),
// and an IPv4 first fragment takes the connection path and is recorded for
// its later fragments (lbfrag.go).
func TestLBOneParse(t *testing.T) {
	td := newLBTestDP(t, 1)
	td.service(6, vip6, 80, "rr", lip6, netip.AddrPortFrom(rs1IP6, 8080))
	client := netip.AddrPortFrom(clientIP6, 40100)
	syn := tcpFrame(t, tcpSeg{src: client, dst: netip.AddrPortFrom(vip6, 80), smac: macClient, dmac: macDP0, syn: true, seq: 7})
	d := td.one(t, 0, withHopByHop(syn), 1)
	if d.src.Addr() != lip6 || d.dst != netip.AddrPortFrom(rs1IP6, 8080) || !d.tcp.SYN || d.tcp.Seq != 7 || td.w.sess.Len() != 1 {
		t.Fatalf("SYN with a hop-by-hop header out %s -> %s, %d connections", d.src, d.dst, td.w.sess.Len())
	}
	// an IPv4 first fragment to the VIP: forwarded and recorded
	f := tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, 40101), dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, syn: true})
	f[14+6] |= 0x20 // MF
	f[14+10], f[14+11] = 0, 0
	var sum uint32
	for i := 14; i < 34; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(f[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(f[14+10:], ^uint16(sum))
	td.inject(0, f)
	td.stepAll()
	if n := len(td.outAll(1)); n != 1 || td.sum(CtrLBFragFirst) != 1 {
		t.Fatalf("first fragment: %d frames out, lb_frag_first %d", n, td.sum(CtrLBFragFirst))
	}
}
