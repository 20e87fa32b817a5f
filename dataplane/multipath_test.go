package dataplane

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/header"
)

var (
	macGwA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa1}
	macGwB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb1}
)

// addECMP adds two routers on dev (gateways gwA, gwB with macGwA, macGwB
// resolved statically) and the multipath route dst via both.
func addECMP(t testing.TB, d *Dataplane, dst string, dev string, gwA, gwB netip.Addr) {
	t.Helper()
	for _, n := range []struct {
		a   netip.Addr
		mac net.HardwareAddr
	}{{gwA, macGwA}, {gwB, macGwB}} {
		if err := d.AddNeigh(n.a, header.MAC(n.mac), dev); err != nil {
			t.Fatal(err)
		}
	}
	err := d.AddRoute(RouteSpec{Dst: netip.MustParsePrefix(dst), NextHops: []NextHopSpec{{Gateway: gwA, Iface: dev}, {Gateway: gwB}}})
	if err != nil {
		t.Fatal(err)
	}
}

// Forwarded flows spread over both next hops of a multipath route; every
// packet of a flow takes its flow's; the packet is forwarded unchanged but
// for the TTL and the MACs. IPv4 and IPv6.
func TestForwardMultipath(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		td := newTestDP(t)
		gwA, gwB, dst := netip.MustParseAddr("10.2.0.251"), netip.MustParseAddr("10.2.0.252"), netip.MustParseAddr("198.51.100.7")
		prefix, client := "198.51.100.0/24", clientIP
		if v6 {
			gwA, gwB, dst = netip.MustParseAddr("fd00:2::251"), netip.MustParseAddr("fd00:2::252"), netip.MustParseAddr("2001:db8:7::7")
			prefix, client = "2001:db8:7::/48", clientIP6
		}
		addECMP(t, td.d, prefix, "dp1", gwA, gwB)
		td.step() // load the snapshot and the neighbours
		perGw, flowGw := map[string]int{}, map[string]string{}
		for round := 0; round < 2; round++ {
			for i := 0; i < 64; i++ {
				src, dstp := netip.AddrPortFrom(client, uint16(20000+i)), netip.AddrPortFrom(dst, 443)
				frame := tcpFrame(t, tcpSeg{src: src, dst: dstp, smac: macClient, dmac: macDP0, ack: true, seq: uint32(round), ttl: 64,
					payload: []byte("flow")})
				d := td.one(t, 0, frame, 1)
				if d.src != src || d.dst != dstp || d.ttl != 63 || !bytes.Equal(d.srcMAC, macDP1) || string(d.tcp.Payload) != "flow" {
					t.Fatalf("forwarded %s -> %s ttl %d from %s", d.src, d.dst, d.ttl, d.srcMAC)
				}
				if !bytes.Equal(d.dstMAC, macGwA) && !bytes.Equal(d.dstMAC, macGwB) {
					t.Fatalf("flow %d sent to %s, neither next hop", i, d.dstMAC)
				}
				key := src.String()
				if round == 0 {
					perGw[d.dstMAC.String()]++
					flowGw[key] = d.dstMAC.String()
				} else if flowGw[key] != d.dstMAC.String() {
					t.Errorf("flow %s moved from %s to %s", key, flowGw[key], d.dstMAC)
				}
			}
		}
		if perGw[macGwA.String()] < 16 || perGw[macGwB.String()] < 16 {
			t.Errorf("v6=%v: flows per next hop %v, want both well used", v6, perGw)
		}
	}
}

// FullNAT replies to clients behind a multipath route spread over the
// routers by the client's flow: each connection's replies keep one router.
func TestFullNATRepliesFollowMultipath(t *testing.T) {
	td := newLBTestDP(t, 1)
	addECMP(t, td.d, "192.0.2.0/24", "dp0", netip.MustParseAddr("10.1.0.251"), netip.MustParseAddr("10.1.0.252"))
	vipPort, rs := netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
	perGw := map[string]int{}
	for i := 0; i < 48; i++ {
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i%7)}), uint16(30000+i))
		syn := td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vipPort, smac: macGwA, dmac: macDP0, syn: true, seq: 1}), 1)
		if syn.dst != rs || syn.src.Addr() != lip {
			t.Fatalf("SYN out %s -> %s", syn.src, syn.dst)
		}
		var first net.HardwareAddr
		for k := 0; k < 3; k++ { // SYN-ACK, then data: the same router
			seg := tcpSeg{src: rs, dst: syn.src, smac: macRS1, dmac: macDP1, ack: true, seq: 100, ackn: 2, syn: k == 0}
			out := td.one(t, 1, tcpFrame(t, seg), 0)
			if out.src != vipPort || out.dst != client || out.ttl != 63 || !bytes.Equal(out.srcMAC, macDP0) {
				t.Fatalf("reply out %s -> %s ttl %d", out.src, out.dst, out.ttl)
			}
			if k == 0 {
				first = out.dstMAC
				perGw[first.String()]++
			} else if !bytes.Equal(out.dstMAC, first) {
				t.Fatalf("connection %s: reply %d to %s, first to %s", client, k, out.dstMAC, first)
			}
		}
	}
	if perGw[macGwA.String()] < 10 || perGw[macGwB.String()] < 10 {
		t.Errorf("connections per router %v, want both well used", perGw)
	}
}

// The forwarding path over a multipath route allocates nothing.
func TestForwardMultipathAllocs(t *testing.T) {
	l := newLoopDP(t)
	addECMP(t, l.d, "198.51.100.0/24", "dp1", netip.MustParseAddr("10.2.0.251"), netip.MustParseAddr("10.2.0.252"))
	l.w.iterate()
	frame := udp4(t, macClient, macDP0, clientIP, netip.MustParseAddr("198.51.100.7"), 64, []byte("x"))
	sent := 0
	run := func() {
		l.rx(t, 0, frame)
		l.w.flushAll()
		sent += l.releaseAll()
	}
	for i := 0; i < 100; i++ {
		run()
	}
	sent = 0
	if n := testing.AllocsPerRun(1000, run); n != 0 {
		t.Errorf("%v allocations per packet", n)
	}
	if sent != 1001 {
		t.Errorf("%d frames sent for 1001 packets", sent)
	}
	l.checkPools(t)
}

// BenchmarkForwardIPv4Multipath forwards over a four-way multipath route
// (ways=4) or a plain route (ways=1) in the same harness, each packet of
// another flow.
func BenchmarkForwardIPv4Multipath(b *testing.B) {
	for _, ways := range []int{1, 4} {
		b.Run(fmt.Sprintf("ways=%d", ways), func(b *testing.B) { benchForwardWays(b, ways) })
	}
}

func benchForwardWays(b *testing.B, ways int) {
	l := newLoopDP(b)
	gws := []NextHopSpec{}
	for i := 0; i < ways; i++ {
		gw := netip.AddrFrom4([4]byte{10, 2, 0, byte(250 + i)})
		if err := l.d.AddNeigh(gw, header.MAC(macGwA), "dp1"); err != nil {
			b.Fatal(err)
		}
		gws = append(gws, NextHopSpec{Gateway: gw})
	}
	if err := l.d.AddRoute(RouteSpec{Dst: netip.MustParsePrefix("198.51.100.0/24"), NextHops: gws}); err != nil {
		b.Fatal(err)
	}
	l.w.iterate()
	frame := udp4(b, macClient, macDP0, clientIP, netip.MustParseAddr("198.51.100.7"), 64, []byte("x"))
	sport := 14 + header.IPv4MinSize // the UDP source port, after Ethernet and IPv4
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		frame[sport+1] = byte(i) // another flow (the UDP checksum is not checked on forwarding)
		l.rx(b, 0, frame)
		if i%32 == 31 {
			l.w.flushAll()
			l.releaseAll()
		}
	}
	l.w.flushAll()
	l.releaseAll()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
}
