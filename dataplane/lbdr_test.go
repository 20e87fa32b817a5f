package dataplane

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
)

// drDP: a TCP service on vip:80 with real servers by direct routing (no
// local address: DR needs none).
func drDP(t *testing.T, workers int, dests ...netip.AddrPort) (*testDP, ipvs.ServiceKey) {
	t.Helper()
	td := fixture{Options: Options{Workers: workers, ConnCapacity: 1 << 12}, addrs: lbAddrs, lbNeighbors: true}.build(t)
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 80}
	if err := td.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range dests {
		if err := td.d.AddDest(k, ipvs.DestSpec{Addr: d, Weight: 1, Fwd: ipvs.FwdRoute}); err != nil {
			t.Fatal(err)
		}
	}
	return td, k
}

// TestDirectRouting: the client's segments reach the real server with
// only the Ethernet header changed (addresses, ports, TTL, checksums and
// options as the client sent them), the connection follows LVS's
// input-only states, and the listing shows no local address.
func TestDirectRouting(t *testing.T) {
	rs := netip.AddrPortFrom(rs1IP, 80)
	td, k := drDP(t, 1, rs)
	client := netip.AddrPortFrom(clientIP, 41000)
	vp := netip.AddrPortFrom(vip, 80)
	for i, seg := range []tcpSeg{
		{src: client, dst: vp, smac: macClient, dmac: macDP0, syn: true, seq: 100, mss: 1460},
		{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, seq: 101, ackn: 9001},
		{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 101, ackn: 9001, payload: []byte("GET / HTTP/1.0\r\n\r\n")},
	} {
		in := tcpFrame(t, seg)
		td.inject(0, in)
		td.stepAll()
		out := td.outAll(1)
		if len(out) != 1 {
			ctr, _ := td.w.Stats()
			t.Fatalf("segment %d: %d frames out of dp1; counters %v", i, len(out), nonZero(ctr))
		}
		d := decodeL4(t, out[0]) // gopacket checks the checksums
		if !bytes.Equal(d.dstMAC, macRS1) || !bytes.Equal(d.srcMAC, macDP1) {
			t.Errorf("segment %d: MACs %s -> %s, want %s -> %s", i, d.srcMAC, d.dstMAC, macDP1, macRS1)
		}
		ipIn := in[header.EthernetMinSize:]
		ipIn = ipIn[:header.IPv4(ipIn).TotalLen()] // without the Ethernet padding
		if !bytes.Equal(out[0][header.EthernetMinSize:], ipIn) {
			t.Errorf("segment %d: the IP packet changed:\n% x\n% x", i, out[0][14:], in[14:])
		}
		if toaOf(d.tcp) != nil {
			t.Errorf("segment %d carries a TOA", i)
		}
	}
	conns, _ := td.d.Conns(&k)
	if len(conns) != 1 || conns[0].State.String() != "ESTABLISHED" || conns[0].Local.IsValid() || conns[0].Dest != rs || conns[0].Client != client {
		t.Fatalf("conns %+v, want one ESTABLISHED to %s without a local address", conns, rs)
	}
	svc := td.d.IPVS().Table().Service(k)
	if svc.Dests[0].C.Active.Load() != 1 || td.sum(CtrLBOut) != 0 {
		t.Errorf("ActiveConn %d, lb_out %d", svc.Dests[0].C.Active.Load(), td.sum(CtrLBOut))
	}
	// the connection ends: nothing to give back to a port pool
	td.w.sess.Flush(td.w.onExpire)
	if svc.Dests[0].C.Active.Load() != 0 {
		t.Error("ActiveConn after the connection ended")
	}
}

// TestDirectRoutingNotOnLink: a real server the dataplane reaches only
// through a gateway cannot take direct routing (the gateway would route
// the virtual address back): refused per packet and counted.
func TestDirectRoutingNotOnLink(t *testing.T) {
	far := netip.MustParseAddr("192.0.2.50")
	td, _ := drDP(t, 1, netip.AddrPortFrom(far, 80))
	if err := td.d.AddRoute(RouteSpec{Dst: netip.MustParsePrefix("192.0.2.0/24"), Gateway: rs1IP}); err != nil {
		t.Fatal(err)
	}
	td.inject(0, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, 41001), dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, syn: true}))
	td.stepAll()
	if n := len(td.outAll(1)); n != 0 || td.sum(CtrDropLBDRNotOnLink) != 1 {
		t.Fatalf("%d frames out, drop_lb_dr_not_onlink %d", n, td.sum(CtrDropLBDRNotOnLink))
	}
}

// TestDirectRoutingMixed: one service with a FullNAT and a DR real server
// (LVS allows a method per real server): each connection is forwarded
// by its own real server's method.
func TestDirectRoutingMixed(t *testing.T) {
	td, k := drDP(t, 1, netip.AddrPortFrom(rs2IP, 80))
	if err := td.d.AddDest(k, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs1IP, 8080), Weight: 1, Fwd: ipvs.FwdFullNAT}); err != nil {
		t.Fatal(err)
	}
	// without a local address the FullNAT server's connections are refused
	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		td.inject(0, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, uint16(42000+i)), dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, syn: true}))
		td.stepAll()
		for _, f := range td.outAll(1) {
			d := decodeL4(t, f)
			seen[d.src.Addr().String()+">"+d.dst.String()]++
		}
	}
	if seen["10.1.0.2>10.1.0.100:80"] != 2 || td.sum(CtrDropLBNoLAddr) != 2 {
		t.Fatalf("without a local address: %v, drop_lb_no_laddr %d", seen, td.sum(CtrDropLBNoLAddr))
	}
	if err := td.d.AddLAddr(k, ipvs.LAddr{Addr: lip}); err != nil {
		t.Fatal(err)
	}
	seen = map[string]int{}
	for i := 0; i < 4; i++ {
		td.inject(0, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, uint16(43000+i)), dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, syn: true}))
		td.stepAll()
		for _, f := range td.outAll(1) {
			d := decodeL4(t, f)
			seen[d.src.Addr().String()+">"+d.dst.Addr().String()]++
		}
	}
	if seen["10.1.0.2>10.1.0.100"] != 2 || seen["10.2.0.100>10.2.0.11"] != 2 {
		t.Fatalf("mixed service: %v, want 2 direct-routed and 2 FullNAT", seen)
	}
}

func TestDirectRoutingPortRefused(t *testing.T) {
	td, k := drDP(t, 1)
	err := td.d.AddDest(k, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs1IP, 8080), Weight: 1, Fwd: ipvs.FwdRoute})
	if err == nil {
		t.Fatal("a direct-routing real server on another port was accepted")
	}
}

// TestForwardingMethodEditKeepsConnections: changing a real server's
// method (ipvsadm -e … -b / -g) leaves its open connections forwarded as
// they began, as LVS does; new ones take the new method.
func TestForwardingMethodEditKeepsConnections(t *testing.T) {
	rs := netip.AddrPortFrom(rs1IP, 80)
	td, k := drDP(t, 1, rs)
	if err := td.d.AddLAddr(k, ipvs.LAddr{Addr: lip}); err != nil {
		t.Fatal(err)
	}
	client := netip.AddrPortFrom(clientIP, 44000)
	vp := netip.AddrPortFrom(vip, 80)
	td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, syn: true, seq: 1}), 1)
	if err := td.d.EditDest(k, ipvs.DestSpec{Addr: rs, Weight: 1, Fwd: ipvs.FwdFullNAT}); err != nil {
		t.Fatal(err)
	}
	d := td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, seq: 2, ackn: 10}), 1)
	if d.src != client || d.dst != vp {
		t.Fatalf("the open DR connection's ACK left as %s -> %s after the edit to FullNAT, want it unchanged", d.src, d.dst)
	}
	n := td.one(t, 0, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, 44001), dst: vp, smac: macClient, dmac: macDP0, syn: true}), 1)
	if n.src.Addr() != lip || n.dst != rs {
		t.Fatalf("a new connection after the edit left as %s -> %s, want FullNAT from %s", n.src, n.dst, lip)
	}
}
