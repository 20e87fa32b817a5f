package dataplane

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/ipvs"
)

// masqDP: a service on v:80 (TCP or UDP) with one NAT (-m) real server.
func masqDP(t *testing.T, workers int, p ipvs.Proto, v netip.Addr, rs netip.AddrPort) (*testDP, ipvs.ServiceKey) {
	t.Helper()
	td := fixture{Options: Options{Workers: workers, ConnCapacity: 1 << 12}, addrs: lbAddrs, lbNeighbors: true}.build(t)
	k := ipvs.ServiceKey{Proto: p, Addr: v, Port: 80}
	if err := td.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	if err := td.d.AddDest(k, ipvs.DestSpec{Addr: rs, Weight: 1, Fwd: ipvs.FwdMasq}); err != nil {
		t.Fatal(err)
	}
	return td, k
}

// oneOut injects frame on port in, queue q, runs every worker and returns
// the single frame that leaves on port out.
func (td *testDP) oneOut(t *testing.T, in, q int, frame []byte, out int) decoded {
	t.Helper()
	td.injectQ(in, q, frame)
	td.stepAll() // a frame handed over is sent by its owner's next loop
	td.stepAll()
	f := td.outAll(out)
	if len(f) != 1 {
		ctr, _ := td.w.Stats()
		t.Fatalf("%d frames out of port %d; counters %v", len(f), out, nonZero(ctr))
	}
	return decodeL4(t, f[0])
}

// TestMasqTwoWorkers: a NAT connection made on worker 0; the real
// server's replies arrive on worker 1's queue, which has no entry for
// them: the owner index hands them to worker 0, which rewrites their
// source to the VIP. The server sees the client's own address; nothing
// grows (no TOA, no MSS clamp). IPv4 and IPv6.
func TestMasqTwoWorkers(t *testing.T) {
	for _, c := range []struct {
		name         string
		client, v, r netip.Addr
	}{
		{"ipv4", clientIP, vip, rs1IP},
		{"ipv6", clientIP6, vip6, rs1IP6},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs := netip.AddrPortFrom(c.r, 8080)
			td, k := masqDP(t, 2, ipvs.TCP, c.v, rs)
			client, vp := netip.AddrPortFrom(c.client, 41000), netip.AddrPortFrom(c.v, 80)

			d := td.oneOut(t, 0, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, syn: true, seq: 100, mss: 1460}), 1)
			if d.src != client || d.dst != rs || d.ttl != 63 || !bytes.Equal(d.dstMAC, macRS1) {
				t.Fatalf("SYN to the server: %s -> %s ttl %d mac %s, want %s -> %s ttl 63", d.src, d.dst, d.ttl, d.dstMAC, client, rs)
			}
			if toaOf(d.tcp) != nil || mssOf(d.tcp) != 1460 || d.tcp.Seq != 100 {
				t.Fatalf("SYN changed beyond the address: toa %x mss %d seq %d", toaOf(d.tcp), mssOf(d.tcp), d.tcp.Seq)
			}
			// the server's SYN-ACK lands on the other worker's queue
			d = td.oneOut(t, 1, 1, tcpFrame(t, tcpSeg{src: rs, dst: client, smac: macRS1, dmac: macDP1, syn: true, ack: true, seq: 9000, ackn: 101, mss: 1400}), 0)
			if d.src != vp || d.dst != client || d.ttl != 63 || mssOf(d.tcp) != 1400 || d.tcp.Ack != 101 {
				t.Fatalf("SYN-ACK to the client: %s -> %s ttl %d mss %d, want %s -> %s, mss 1400 untouched", d.src, d.dst, d.ttl, mssOf(d.tcp), vp, client)
			}
			if td.sum(CtrLBRedirectedOut) != 1 || td.sum(CtrLBRedirectedIn) != 1 {
				t.Fatalf("redirected out %d in %d, want 1 each", td.sum(CtrLBRedirectedOut), td.sum(CtrLBRedirectedIn))
			}
			// data both ways, the reply on the owner's own queue this time
			d = td.oneOut(t, 0, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 101, ackn: 9001, payload: []byte("GET /")}), 1)
			if d.dst != rs || string(d.tcp.Payload) != "GET /" {
				t.Fatalf("data to %s payload %q", d.dst, d.tcp.Payload)
			}
			d = td.oneOut(t, 1, 0, tcpFrame(t, tcpSeg{src: rs, dst: client, smac: macRS1, dmac: macDP1, ack: true, psh: true, seq: 9001, ackn: 106, payload: []byte("200 OK")}), 0)
			if d.src != vp || string(d.tcp.Payload) != "200 OK" {
				t.Fatalf("reply from %s payload %q", d.src, d.tcp.Payload)
			}
			if td.sum(CtrLBRedirectedOut) != 1 || td.sum(CtrLBOut) != 2 || td.sum(CtrLBIn) != 2 || td.sum(CtrLBNewConns) != 1 {
				t.Fatalf("redirected %d lb_out %d lb_in %d new %d", td.sum(CtrLBRedirectedOut), td.sum(CtrLBOut), td.sum(CtrLBIn), td.sum(CtrLBNewConns))
			}
			conns, _ := td.d.Conns(&k)
			if len(conns) != 1 || conns[0].State.String() != "ESTABLISHED" || conns[0].Local.IsValid() || conns[0].Dest != rs || conns[0].Client != client {
				t.Fatalf("conns %+v, want one ESTABLISHED to %s without a local address", conns, rs)
			}
			svc := td.d.IPVS().Table().Service(k)
			if svc.Dests[0].C.Active.Load() != 1 {
				t.Errorf("ActiveConn %d", svc.Dests[0].C.Active.Load())
			}
			// the connection ends: its owner entry goes, so a late reply on
			// the other worker is the server's own traffic, forwarded as it is
			for _, w := range td.d.workers {
				w.sess.Flush(w.onExpire)
			}
			td.stepAll() // the resets of its ends leave (lbreset_test.go)
			if r0, r1 := td.outAll(0), td.outAll(1); len(r0) != 1 || len(r1) != 1 {
				t.Fatalf("the connection's end: %d frames to the client, %d to the server, want a RST each", len(r0), len(r1))
			}
			d = td.oneOut(t, 1, 1, tcpFrame(t, tcpSeg{src: rs, dst: client, smac: macRS1, dmac: macDP1, ack: true, seq: 9007, ackn: 106}), 0)
			if d.src != rs || td.sum(CtrLBRedirectedOut) != 1 || td.sum(CtrLBMasqTransit) != 1 {
				t.Fatalf("after the end: from %s, redirected %d, lb_masq_transit %d", d.src, td.sum(CtrLBRedirectedOut), td.sum(CtrLBMasqTransit))
			}
			if svc.Dests[0].C.Active.Load() != 0 {
				t.Errorf("ActiveConn %d after the end", svc.Dests[0].C.Active.Load())
			}
		})
	}
}

// TestMasqUDP: a UDP NAT flow; the answer comes back on either worker.
func TestMasqUDP(t *testing.T) {
	rs := netip.AddrPortFrom(rs1IP, 5353)
	td, _ := masqDP(t, 2, ipvs.UDP, vip, rs)
	client, vp := netip.AddrPortFrom(clientIP, 40100), netip.AddrPortFrom(vip, 80)
	d := td.oneOut(t, 0, 1, udpFrame(t, macClient, macDP0, client, vp, []byte("query")), 1)
	if d.src != client || d.dst != rs || string(d.udp.Payload) != "query" {
		t.Fatalf("datagram %s -> %s %q", d.src, d.dst, d.udp.Payload)
	}
	for q := 0; q < 2; q++ {
		d = td.oneOut(t, 1, q, udpFrame(t, macRS1, macDP1, rs, client, []byte("answer")), 0)
		if d.src != vp || d.dst != client || string(d.udp.Payload) != "answer" {
			t.Fatalf("answer on queue %d: %s -> %s %q", q, d.src, d.dst, d.udp.Payload)
		}
	}
	if td.sum(CtrLBRedirectedIn) != 1 || td.sum(CtrLBOut) != 2 {
		t.Fatalf("redirected %d lb_out %d", td.sum(CtrLBRedirectedIn), td.sum(CtrLBOut))
	}
}

// TestMasqICMP: an ICMP error the real server sends the client about the
// connection (quoting client → server) reaches the client as the VIP's,
// quoting client → VIP, from the other worker's queue too; the client's
// error about a reply (to the VIP, quoting VIP → client) reaches the
// server quoting server → client.
func TestMasqICMP(t *testing.T) {
	rs := netip.AddrPortFrom(rs1IP, 8080)
	td, _ := masqDP(t, 2, ipvs.TCP, vip, rs)
	client, vp := netip.AddrPortFrom(clientIP, 41500), netip.AddrPortFrom(vip, 80)
	td.oneOut(t, 0, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, syn: true, seq: 1}), 1)
	quoted := tcpFrame(t, tcpSeg{src: client, dst: rs, smac: macDP1, dmac: macRS1, ack: true, seq: 2})[14 : 14+40]
	td.injectQ(1, 1, fragNeeded4(t, rs1IP, clientIP, macRS1, macDP1, quoted))
	td.stepAll()
	td.stepAll()
	out := td.outAll(0)
	if len(out) != 1 {
		t.Fatalf("%d frames to the client", len(out))
	}
	p := decode(t, out[0])
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	inner := gopacket.NewPacket(ic.Payload, layers.LayerTypeIPv4, gopacket.Default)
	iip, itcp := inner.Layer(layers.LayerTypeIPv4).(*layers.IPv4), inner.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ip.SrcIP.Equal(ipOf(vip)) || !ip.DstIP.Equal(ipOf(clientIP)) || !iip.SrcIP.Equal(ipOf(clientIP)) || !iip.DstIP.Equal(ipOf(vip)) ||
		uint16(itcp.SrcPort) != client.Port() || itcp.DstPort != 80 {
		t.Fatalf("error to the client: %s -> %s quoting %s:%d -> %s:%d", ip.SrcIP, ip.DstIP, iip.SrcIP, itcp.SrcPort, iip.DstIP, itcp.DstPort)
	}
	if td.sum(CtrLBRedirectedIn) != 1 {
		t.Errorf("redirected %d, want 1", td.sum(CtrLBRedirectedIn))
	}
	quoted = tcpFrame(t, tcpSeg{src: vp, dst: client, smac: macDP0, dmac: macClient, ack: true})[14 : 14+40]
	td.injectQ(0, 0, fragNeeded4(t, clientIP, vip, macClient, macDP0, quoted))
	td.stepAll()
	out = td.outAll(1)
	if len(out) != 1 {
		t.Fatalf("%d frames to the server", len(out))
	}
	p = decode(t, out[0])
	ip = p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	inner = gopacket.NewPacket(p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4).Payload, layers.LayerTypeIPv4, gopacket.Default)
	iip, itcp = inner.Layer(layers.LayerTypeIPv4).(*layers.IPv4), inner.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ip.SrcIP.Equal(ipOf(clientIP)) || !ip.DstIP.Equal(ipOf(rs1IP)) || !iip.SrcIP.Equal(ipOf(rs1IP)) || uint16(itcp.SrcPort) != rs.Port() {
		t.Fatalf("error to the server: %s -> %s quoting %s:%d", ip.SrcIP, ip.DstIP, iip.SrcIP, itcp.SrcPort)
	}
	if td.sum(CtrLBICMPTranslated) != 2 {
		t.Errorf("lb_icmp_translated %d", td.sum(CtrLBICMPTranslated))
	}
}

// TestMasqMixedWithRoute: a direct-routing and a NAT real server in one
// service: the DR connection's packets still leave untranslated.
func TestMasqMixedWithRoute(t *testing.T) {
	td, k := masqDP(t, 1, ipvs.TCP, vip, netip.AddrPortFrom(rs1IP, 8080))
	if err := td.d.AddDest(k, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs2IP, 80), Weight: 1, Fwd: ipvs.FwdRoute}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		d := td.oneOut(t, 0, 0, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, uint16(42000+i)), dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, syn: true}), 1)
		seen[d.dst.String()]++
	}
	if seen["10.2.0.11:8080"] != 2 || seen["10.1.0.100:80"] != 2 {
		t.Fatalf("mixed service: %v, want 2 NAT to 10.2.0.11:8080 and 2 direct-routed", seen)
	}
}

// TestMasqAllocs: a NAT reply handed over and one translated on its
// owner cost no allocation: as many as a plain forwarded packet in the
// same harness (whose frame copies are the test's own).
func TestMasqAllocs(t *testing.T) {
	rs := netip.AddrPortFrom(rs1IP, 8080)
	td, _ := masqDP(t, 2, ipvs.TCP, vip, rs)
	client, vp := netip.AddrPortFrom(clientIP, 41000), netip.AddrPortFrom(vip, 80)
	td.oneOut(t, 0, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, syn: true, seq: 1}), 1)
	run := func(q int, frame []byte) float64 {
		td.oneOut(t, 1, q, frame, 0) // warm up
		return testing.AllocsPerRun(50, func() {
			td.injectQ(1, q, frame)
			td.stepAll()
			td.stepAll()
			if len(td.outAll(0)) != 1 {
				t.Fatal("no frame out")
			}
		})
	}
	transit := run(1, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(rs2IP, 22), dst: client, smac: macRS1, dmac: macDP1, ack: true}))
	reply := tcpFrame(t, tcpSeg{src: rs, dst: client, smac: macRS1, dmac: macDP1, ack: true, seq: 9, ackn: 2})
	for _, q := range []int{0, 1} {
		if n := run(q, reply); n > transit {
			t.Errorf("reply on queue %d: %.0f allocations, a forwarded packet %.0f", q, n, transit)
		}
	}
}

// TestMasqReplyFragments: a NAT server's fragmented answer arriving on
// the other worker's queue: the first fragment is handed to the owner and
// the later ones follow it; all leave from the VIP and reassemble with a
// valid checksum. A fragmented datagram the server sends on its own
// (no connection) passes as it is.
func TestMasqReplyFragments(t *testing.T) {
	rs := netip.AddrPortFrom(rs1IP, 9001)
	td, _ := masqDP(t, 2, ipvs.UDP, vip, rs)
	client, vp := netip.AddrPortFrom(clientIP, 5800), netip.AddrPortFrom(vip, 80)
	td.oneOut(t, 0, 0, udpFrame(t, macClient, macDP0, client, vp, []byte("q")), 1)
	answer := datagram(3000)
	for _, f := range fragment(t, udpFrame(t, macRS1, macDP1, rs, client, answer), 1480, 0x77) {
		td.injectQ(1, 1, f)
	}
	td.stepAll()
	td.stepAll()
	checkDatagram(t, "answer", td.outAll(0), 3, vp, client, answer)
	if td.sum(CtrLBRedirectedIn) != 3 || td.sum(CtrLBFragForwarded) != 2 {
		t.Errorf("redirected %d (want 3), lb_frag_forwarded %d (want 2)", td.sum(CtrLBRedirectedIn), td.sum(CtrLBFragForwarded))
	}
	own := datagram(2000)
	for _, f := range fragment(t, udpFrame(t, macRS1, macDP1, netip.AddrPortFrom(rs1IP, 9002), client, own), 1480, 0x78) {
		td.injectQ(1, 1, f)
	}
	td.stepAll()
	checkDatagram(t, "the server's own datagram", td.outAll(0), 2, netip.AddrPortFrom(rs1IP, 9002), client, own)
}
