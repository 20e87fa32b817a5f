package dataplane

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/proxyproto"
)

// Regression tests from the review of NAT, SNAT, fragments and NAT64.

// TestNAT64ProxyProtocolICMPQuote: a packet-too-big to an IPv6 client of a
// NAT64 proxy-protocol connection quotes the client's own sequence number.
func TestNAT64ProxyProtocolICMPQuote(t *testing.T) {
	td := newLBTestDP(t, 1)
	addNAT64Services(t, td)
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip6, Port: 80}
	if err := td.d.EditService(ipvs.ServiceSpec{Key: k, Sched: "rr", ProxyProtocol: 2}); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 128)
	hdr = hdr[:proxyproto.Write(hdr, 2, 6, client64, nat64VIP)]
	n := uint32(len(hdr))
	syn := td.one(t, 0, tcpFrame(t, tcpSeg{src: client64, dst: nat64VIP, smac: macClient, dmac: macDP0, syn: true, seq: 1000, mss: 1460}), 1)
	local := syn.src
	td.one(t, 1, tcpFrame(t, tcpSeg{src: nat64RS, dst: local, smac: macRS1, dmac: macDP1, syn: true, ack: true, seq: 5000, ackn: 1001, mss: 1460}), 0)
	td.one(t, 0, tcpFrame(t, tcpSeg{src: client64, dst: nat64VIP, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 1001, ackn: 5001, payload: []byte("a")}), 1)
	td.one(t, 1, tcpFrame(t, tcpSeg{src: nat64RS, dst: local, smac: macRS1, dmac: macDP1, ack: true, seq: 5001, ackn: 1002 + n}), 0)
	sent := td.one(t, 0, tcpFrame(t, tcpSeg{src: client64, dst: nat64VIP, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 1002, ackn: 5001, payload: make([]byte, 40)}), 1)
	t.Logf("segment to the server seq %d (client seq 1002, shift %d)", sent.tcp.Seq, n)
	quoted := tcpFrame(t, tcpSeg{src: local, dst: nat64RS, smac: macDP1, dmac: macRS1, ack: true, seq: sent.tcp.Seq, ackn: 5001, payload: make([]byte, 40)})[14:]
	out := oneRaw(t, td, 1, fragNeeded4(t, rs2IP, lip, macRS1, macDP1, quoted), 0)
	p := decode(t, out)
	m := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	q := gopacket.NewPacket(m.Payload[4:], layers.LayerTypeIPv6, gopacket.Default)
	tcp := q.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tcp.Seq != 1002 {
		t.Errorf("packet-too-big to the client quotes seq %d, want the client's own 1002", tcp.Seq)
	}
}

// TestMasqSyncedOtherWorker: a NAT connection synced to a 2-worker node is
// installed on a worker of its own choosing; the client's next segment,
// arriving on the other worker's queue, is handed over by the owner index.
func TestMasqSyncedOtherWorker(t *testing.T) {
	rs := netip.AddrPortFrom(rs1IP, 8080)
	a, _ := masqDP(t, 1, ipvs.TCP, vip, rs)
	b, _ := masqDP(t, 2, ipvs.TCP, vip, rs)
	setSync(a, SyncPolicy{Threshold: 2})
	client, vp := netip.AddrPortFrom(clientIP, 41001), netip.AddrPortFrom(vip, 80) // odd port: owner worker 1 of 2
	a.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, syn: true, seq: 100}), 1)
	a.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: client, smac: macRS1, dmac: macDP1, syn: true, ack: true, seq: 900, ackn: 101}), 0)
	a.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, seq: 101, ackn: 901}), 1)
	ev := popSync(a)
	if len(ev) != 1 {
		t.Fatalf("%d events", len(ev))
	}
	if res, err := b.d.InstallSynced(ev); err != nil || res.Installed != 1 {
		t.Fatalf("install %+v %v", res, err)
	}
	// the client flow: RSS put it on queue 0 (the origin had one worker)
	b.injectQ(0, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, seq: 101, ackn: 901}))
	b.stepAll()
	b.stepAll()
	if n := len(b.outAll(1)); n != 1 {
		c0, _ := b.d.workers[0].Stats()
		t.Errorf("client segment after failover: %d frames to the server; worker 0 counters %v", n, nonZero(c0))
	}
}

// TestICMPv6ErrorBehindExtHeader: an ICMPv6 error behind a hop-by-hop
// header about a NAT64 connection is checksummed where the message is.
func TestICMPv6ErrorBehindExtHeader(t *testing.T) {
	td := newLBTestDP(t, 1)
	addNAT64Services(t, td)
	nat64Open(t, td)
	toClient := tcpFrame(t, tcpSeg{src: nat64VIP, dst: client64, smac: macDP0, dmac: macClient, ack: true, seq: 5001, ackn: 1001, payload: []byte("x")})[14:]
	ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: ipOf(clientIP6), DstIP: ipOf(vip6)}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeDestinationUnreachable, 4)}
	ic.SetNetworkLayerForChecksum(ip6)
	f := serialize(t, &layers.Ethernet{SrcMAC: macClient, DstMAC: macDP0, EthernetType: layers.EthernetTypeIPv6}, ip6, ic,
		gopacket.Payload(append(make([]byte, 4), toClient...)))
	// insert a hop-by-hop header (PadN) in front of the ICMPv6 message
	hbh := []byte{58, 0, 1, 4, 0, 0, 0, 0}
	g := append(append(append([]byte(nil), f[:54]...), hbh...), f[54:]...)
	g[14+6] = 0
	pl := int(g[14+4])<<8 | int(g[14+5]) + 8
	g[14+4], g[14+5] = byte(pl>>8), byte(pl)
	td.inject(0, g)
	td.stepAll()
	if n := len(td.outAll(1)); n != 1 {
		t.Errorf("ICMPv6 error behind hop-by-hop: %d frames to the server; drop_icmp_invalid %d", n, td.sum(CtrDropICMPInvalid))
	}
}

// TestOtherProtocolFragmentToVIP: a later fragment of a protocol GVS does
// not balance (GRE) to a VIP goes to the kernel, not into the hold queue.
func TestOtherProtocolFragmentToVIP(t *testing.T) {
	td := newLBTestDP(t, 1)
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolGRE, SrcIP: ipOf(clientIP), DstIP: ipOf(vip), Id: 7, FragOffset: 100}
	f := serialize(t, &layers.Ethernet{SrcMAC: macClient, DstMAC: macDP0, EthernetType: layers.EthernetTypeIPv4}, ip, gopacket.Payload(make([]byte, 64)))
	td.inject(0, f)
	td.stepAll()
	if td.sum(CtrLBFragHeld) != 0 || td.sum(CtrKNIPunted)+td.sum(CtrDropKNIDisabled) != 1 {
		t.Errorf("a GRE fragment to the VIP: held %d, to the kernel %d (or refused there %d), want it passed on",
			td.sum(CtrLBFragHeld), td.sum(CtrKNIPunted), td.sum(CtrDropKNIDisabled))
	}
}

// TestSNATFragmentOtherWorker: an SNAT UDP flow, an unfragmented datagram
// on queue 0, then a fragmented one of the same flow (hashed by addresses
// only) on queue 1: both leave from the same SNAT port.
func TestSNATFragmentOtherWorker(t *testing.T) {
	td, _ := snatDP(t, 2, "proto=udp,af=ipv4")
	inside, peer := netip.AddrPortFrom(rs1IP, 5000), netip.AddrPortFrom(clientIP, 7000)
	d := td.oneOut(t, 1, 0, udpFrame(t, macRS1, macDP1, inside, peer, []byte("small")), 0)
	frags := fragment(t, udpFrame(t, macRS1, macDP1, inside, peer, datagram(3000)), 1480, 0x61)
	for _, f := range frags {
		td.injectQ(1, 1, f)
	}
	td.stepAll()
	td.stepAll()
	out := td.outAll(0)
	if len(out) == 0 {
		t.Fatal("nothing out")
	}
	d2 := decodeL4(t, reassemble(t, out))
	if d2.src != d.src {
		t.Errorf("same inside flow leaves from %v and %v; new conns %d", d.src, d2.src, td.sum(CtrLBNewConns))
	}
}

// TestSNATMatchFamily: an IPv6-only match service (af=ipv6, no ranges)
// leaves IPv4 traffic alone.
func TestSNATMatchFamily(t *testing.T) {
	td := fixture{Options: Options{Workers: 1, ConnCapacity: 1 << 12}, addrs: append(append([]string(nil), lbAddrs...), "fd00:1::200/128 dp0"),
		lbNeighbors: true}.build(t)
	m, err := ipvs.ParseMatch("proto=udp,af=ipv6,iif=dp1")
	if err != nil {
		t.Fatal(err)
	}
	k := ipvs.ServiceKey{Proto: m.Proto, Match: m.String()}
	if err := td.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	if err := td.d.AddDest(k, ipvs.DestSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("fd00:1::200"), 0), Weight: 1, Fwd: ipvs.FwdSNAT}); err != nil {
		t.Fatal(err)
	}
	inside, peer := netip.AddrPortFrom(rs1IP, 5000), netip.AddrPortFrom(clientIP, 53)
	td.injectQ(1, 0, udpFrame(t, macRS1, macDP1, inside, peer, []byte("v4 dns")))
	td.stepAll()
	if n := len(td.outAll(0)); n != 1 {
		c, _ := td.w.Stats()
		t.Errorf("IPv4 datagram under an af=ipv6 match: %d frames out; counters %v", n, nonZero(c))
	}
}
