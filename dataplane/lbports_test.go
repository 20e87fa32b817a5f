package dataplane

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

// 200,000 UDP flows to a service with four real servers through ONE local
// address and one worker: more flows than one local address has ports, so
// they only all get connections because every real server has its own port
// space on that address.
func TestManyFlowsOneLocalAddress(t *testing.T) {
	const flows = 200000
	td := fixture{Options: Options{ConnCapacity: 1 << 18},
		addrs: []string{"10.1.0.1/16 dp0", "10.2.0.1/24 dp1", "10.1.0.100/32 dp0", "10.2.0.100/32 dp1"}}.build(t)
	d := td.d
	var rss []netip.AddrPort
	for i := 0; i < 4; i++ {
		a := netip.AddrFrom4([4]byte{10, 2, 0, byte(21 + i)})
		if err := d.AddNeigh(a, header.MAC(macRS1), "dp1"); err != nil {
			t.Fatal(err)
		}
		rss = append(rss, netip.AddrPortFrom(a, 5300))
	}
	td.service(ipvs.UDP, vip, 5300, "rr", lip, rss...)

	// one template per client address, its source port changed per flow
	eth := &layers.Ethernet{SrcMAC: macClient, DstMAC: macDP0, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, DstIP: ipOf(vip)}
	udp := &layers.UDP{DstPort: 5300}
	type tuple struct {
		lport uint16
		rs    netip.AddrPort
	}
	seen := make(map[tuple]bool, flows)
	perRS := map[netip.AddrPort]int{}
	lports := map[uint16]int{}
	// decode only up to UDP: some local ports are well-known ports that
	// gopacket would otherwise decode as their application
	var oeth layers.Ethernet
	var oip layers.IPv4
	var oudp layers.UDP
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &oeth, &oip, &oudp)
	parser.IgnoreUnsupported = true // UDP's payload stays a payload
	var got []gopacket.LayerType
	drain := func() {
		for _, f := range td.outAll(1) {
			if err := parser.DecodeLayers(f, &got); err != nil || len(got) != 3 {
				t.Fatalf("flow %d: decode %v (%v)", len(seen), err, got)
			}
			// checksums: re-serialise with computed checksums, compare (the
			// serialiser pads to the Ethernet minimum)
			opay := gopacket.Payload(oudp.Payload)
			oudp.SetNetworkLayerForChecksum(&oip)
			if re := serialize(t, &oeth, &oip, &oudp, opay); len(re) < len(f) || !bytes.Equal(re[:len(f)], f) {
				t.Fatalf("flow %d: checksums differ\n got % x\nwant % x", len(seen), f, re)
			}
			src, _ := netip.AddrFromSlice(oip.SrcIP.To4())
			dst, _ := netip.AddrFromSlice(oip.DstIP.To4())
			o := struct{ src, dst netip.AddrPort }{netip.AddrPortFrom(src, uint16(oudp.SrcPort)), netip.AddrPortFrom(dst, uint16(oudp.DstPort))}
			if o.src.Addr() != lip || o.src.Port() < 1024 || string(opay) != "q" {
				t.Fatalf("flow %d: out %s -> %s %q", len(seen), o.src, o.dst, opay)
			}
			k := tuple{o.src.Port(), o.dst}
			if seen[k] {
				t.Fatalf("two connections on %s -> %s", o.src, o.dst)
			}
			seen[k] = true
			perRS[o.dst]++
			lports[o.src.Port()]++
		}
	}
	for i := 0; i < flows; i++ {
		client := netip.AddrFrom4([4]byte{10, 1, byte(1 + i/50000), byte(1 + i/250%200)})
		ip.SrcIP = ipOf(client)
		udp.SrcPort = layers.UDPPort(10000 + i%250)
		udp.SetNetworkLayerForChecksum(ip)
		td.inject(0, serialize(t, eth, ip, udp, gopacket.Payload("q")))
		if i%1024 == 1023 || i == flows-1 {
			for td.w.iterate() > 0 {
			}
			drain()
		}
	}
	if n := td.sum(CtrDropLBNoPort); n != 0 {
		t.Errorf("drop_lb_no_port = %d", n)
	}
	if n := td.sum(CtrLBNewConns); n != flows || td.w.sess.Len() != flows || len(seen) != flows {
		t.Errorf("%d new connections, %d in the table, %d distinct flows out; want %d", n, td.w.sess.Len(), len(seen), flows)
	}
	if len(perRS) != 4 {
		t.Errorf("real servers seen: %v", perRS)
	}
	shared := 0
	for _, n := range lports {
		if n > 1 {
			shared++
		}
	}
	if len(lports) > 65536-1024 || shared == 0 {
		t.Errorf("%d local ports, %d of them towards several real servers", len(lports), shared)
	}
	u := td.w.pool.Usage()
	if len(u) != 1 || u[0].Addr != lip || u[0].InUse != flows || u[0].Servers != 4 || u[0].Busiest != flows/4 {
		t.Errorf("pool usage %+v", u)
	}
	us := d.LBUsage()
	if len(us) != 1 || us[0].Conns != flows || us[0].ConnCapacity != 1<<18 || len(us[0].LAddrs) != 1 ||
		us[0].LAddrs[0] != u[0] || u[0].BusiestFree() != 64512-flows/4 {
		t.Errorf("LBUsage = %+v", us)
	}
	t.Logf("%d flows: %d local ports, %d towards several servers, per server %v", flows, len(lports), shared, perRS)
}

// Timeouts changed at run time apply to new connections of every state:
// here SYN_RECV, which ipvsadm --set cannot reach.
func TestUpdateTimeoutsDriveExpiry(t *testing.T) {
	td := newLBTestDP(t, 1)
	if err := td.d.UpdateTimeouts(session.Timeouts{SynRecv: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if got := td.d.Timeouts(); got.SynRecv != 5*time.Second || got.Established != 15*time.Minute {
		t.Fatalf("Timeouts = %+v", got)
	}
	client := netip.AddrPortFrom(clientIP, 40031)
	td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, syn: true}), 1)
	conns, _ := td.d.Conns(nil)
	if len(conns) != 1 || conns[0].State != session.StateSynRecv || conns[0].Expires > 5*time.Second {
		t.Fatalf("conns %+v", conns)
	}
	td.d.start = td.d.start.Add(-4 * time.Second)
	td.w.iterate()
	if n := td.w.sess.Len(); n != 1 {
		t.Fatalf("%d conns 4s into a 5s SYN_RECV timeout", n)
	}
	td.d.start = td.d.start.Add(-2 * time.Second)
	td.w.iterate()
	td.w.iterate()
	if n := td.w.sess.Len(); n != 0 {
		t.Fatalf("%d conns 6s into a 5s SYN_RECV timeout", n)
	}
	if err := td.d.UpdateTimeouts(session.Timeouts{TimeWait: -time.Second}); err == nil || !strings.Contains(err.Error(), "time_wait") {
		t.Errorf("negative time_wait: %v", err)
	}
	if got := td.d.Timeouts().SynRecv; got != 5*time.Second {
		t.Errorf("a refused change changed SYN_RECV to %v", got)
	}
}
