package dataplane

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/port/mem"
	"github.com/gvs-lb/gvs/header"
)

var (
	macDP0    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}
	macDP1    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	macClient = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	macRS1    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x21}
	lbIP      = netip.MustParseAddr("10.1.0.1")
	lbIP6     = netip.MustParseAddr("fd00:1::1")
	clientIP  = netip.MustParseAddr("10.1.0.2")
	clientIP6 = netip.MustParseAddr("fd00:1::2")
	rs1IP     = netip.MustParseAddr("10.2.0.11")
	rs1IP6    = netip.MustParseAddr("fd00:2::11")
)

type testDP struct {
	t     testing.TB
	d     *Dataplane
	ports []*mem.Port
	w     *Worker
}

// newTestDP builds a one-worker dataplane over two mem ports without
// starting it: tests drive the worker loop with step().
func newTestDP(t testing.TB) *testDP { return fixture{}.build(t) }

// step runs the worker once and applies what it learnt, as the master would
// (publishing at once rather than after the publication gap).
func (td *testDP) step() {
	td.w.iterate()
	td.d.masterLearn()
	td.w.iterate()
}

func (td *testDP) inject(port int, frame []byte) {
	if !td.ports[port].MemQueue(0).Inject(frame) {
		td.t.Fatal("inject: ring full")
	}
}

func (td *testDP) out(port int) [][]byte { return td.ports[port].MemQueue(0).Drain() }

func (td *testDP) counter(c Counter) uint64 {
	ctr, _ := td.w.Stats()
	return ctr[c]
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	for _, l := range ls {
		if n, ok := l.(gopacket.NetworkLayer); ok {
			for _, x := range ls {
				if tl, ok := x.(interface {
					SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
				}); ok {
					tl.SetNetworkLayerForChecksum(n)
				}
			}
		}
	}
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decode parses a frame and verifies every checksum by re-serialising the
// decoded layers with checksums computed and comparing the bytes.
func decode(t testing.TB, frame []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("decode: %v", el.Error())
	}
	var ls []gopacket.SerializableLayer
	var netl gopacket.NetworkLayer
	for _, l := range p.Layers() {
		if n, ok := l.(gopacket.NetworkLayer); ok && netl == nil {
			netl = n
		}
		switch x := l.(type) {
		case *layers.TCP:
			x.SetNetworkLayerForChecksum(netl)
		case *layers.UDP:
			x.SetNetworkLayerForChecksum(netl)
		case *layers.ICMPv6:
			x.SetNetworkLayerForChecksum(netl)
		}
		if s, ok := l.(gopacket.SerializableLayer); ok {
			ls = append(ls, s)
		} else if _, ok := l.(*gopacket.Payload); !ok {
			// e.g. ICMPv6 echo / ND body layers serialize through their parents' payloads
			if pl, ok := l.(interface{ LayerContents() []byte }); ok {
				pp := gopacket.Payload(pl.LayerContents())
				ls = append(ls, &pp)
			}
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("re-serialize: %v", err)
	}
	want := buf.Bytes()
	if len(want) > len(frame) && len(want) == 60 && bytes.Equal(want[len(frame):], make([]byte, len(want)-len(frame))) {
		want = want[:len(frame)] // gopacket pads to the Ethernet minimum; the NIC does that
	}
	if !bytes.Equal(want, frame) {
		t.Fatalf("checksums wrong:\n got  %x\n want %x", frame, want)
	}
	return p
}

func ipOf(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }

func arpRequest(t testing.TB, smac net.HardwareAddr, sip, tip netip.Addr) []byte {
	return serialize(t,
		&layers.Ethernet{SrcMAC: smac, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: smac, SourceProtAddress: ipOf(sip),
			DstHwAddress: make([]byte, 6), DstProtAddress: ipOf(tip)})
}

func echo4(t testing.TB, smac, dmac net.HardwareAddr, src, dst netip.Addr, ttl uint8, payload []byte) []byte {
	return serialize(t,
		&layers.Ethernet{SrcMAC: smac, DstMAC: dmac, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Protocol: layers.IPProtocolICMPv4, SrcIP: ipOf(src), DstIP: ipOf(dst), Id: 7},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 0x1234, Seq: 9},
		gopacket.Payload(payload))
}

func udp4(t testing.TB, smac, dmac net.HardwareAddr, src, dst netip.Addr, ttl uint8, payload []byte) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Protocol: layers.IPProtocolUDP, SrcIP: ipOf(src), DstIP: ipOf(dst), Flags: layers.IPv4DontFragment}
	u := &layers.UDP{SrcPort: 40000, DstPort: 9999}
	u.SetNetworkLayerForChecksum(ip)
	return serialize(t, &layers.Ethernet{SrcMAC: smac, DstMAC: dmac, EthernetType: layers.EthernetTypeIPv4}, ip, u, gopacket.Payload(payload))
}

func TestARPReply(t *testing.T) {
	td := newTestDP(t)
	td.inject(0, arpRequest(t, macClient, clientIP, lbIP))
	td.step()
	out := td.out(0)
	if len(out) != 1 {
		t.Fatalf("got %d frames, want 1 ARP reply", len(out))
	}
	p := decode(t, out[0])
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	arp := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if !bytes.Equal(eth.DstMAC, macClient) || !bytes.Equal(eth.SrcMAC, macDP0) {
		t.Errorf("eth %s -> %s", eth.SrcMAC, eth.DstMAC)
	}
	if arp.Operation != layers.ARPReply || !bytes.Equal(arp.SourceHwAddress, macDP0) ||
		!net.IP(arp.SourceProtAddress).Equal(ipOf(lbIP)) || !bytes.Equal(arp.DstHwAddress, macClient) ||
		!net.IP(arp.DstProtAddress).Equal(ipOf(clientIP)) {
		t.Errorf("bad reply %+v", arp)
	}
	if td.counter(CtrARPReplied) != 1 {
		t.Errorf("arp_replied = %d", td.counter(CtrARPReplied))
	}
	// the sender was learnt
	nb := td.d.Neighbours()
	if len(nb) != 1 || nb[0].Addr != clientIP || nb[0].MAC.String() != macClient.String() || nb[0].Iface != "dp0" {
		t.Errorf("neighbours = %v", nb)
	}
	// a request for an address the dataplane does not own is not answered
	td.inject(0, arpRequest(t, macClient, clientIP, netip.MustParseAddr("10.1.0.77")))
	td.step()
	if out := td.out(0); len(out) != 0 {
		t.Errorf("answered for a foreign address: %d frames", len(out))
	}
	if td.counter(CtrDropKNIDisabled) != 1 {
		t.Errorf("foreign ARP not handed to (disabled) KNI: %d", td.counter(CtrDropKNIDisabled))
	}
}

func TestEchoReplyIPv4(t *testing.T) {
	td := newTestDP(t)
	payload := []byte("gvs-echo-payload-0123456789")
	td.inject(0, echo4(t, macClient, macDP0, clientIP, lbIP, 64, payload))
	td.step()
	out := td.out(0)
	if len(out) != 1 {
		t.Fatalf("got %d frames", len(out))
	}
	p := decode(t, out[0])
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if !bytes.Equal(eth.DstMAC, macClient) || !bytes.Equal(eth.SrcMAC, macDP0) {
		t.Errorf("eth %s -> %s", eth.SrcMAC, eth.DstMAC)
	}
	if !ip.SrcIP.Equal(ipOf(lbIP)) || !ip.DstIP.Equal(ipOf(clientIP)) || ip.TTL != 64 {
		t.Errorf("ip %s -> %s ttl %d", ip.SrcIP, ip.DstIP, ip.TTL)
	}
	if ic.TypeCode.Type() != layers.ICMPv4TypeEchoReply || ic.Id != 0x1234 || ic.Seq != 9 || !bytes.Equal(ic.Payload, payload) {
		t.Errorf("icmp %v id %x seq %d payload %q", ic.TypeCode, ic.Id, ic.Seq, ic.Payload)
	}
}

func ndSolicit(t testing.TB, smac net.HardwareAddr, src, target netip.Addr) []byte {
	dst := header.SolicitedNodeMulticast(target)
	dmac := header.MulticastMAC(dst)
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: ipOf(src), DstIP: ipOf(dst)}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	ic.SetNetworkLayerForChecksum(ip)
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: ipOf(target),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: smac}}}
	return serialize(t, &layers.Ethernet{SrcMAC: smac, DstMAC: net.HardwareAddr(dmac[:]), EthernetType: layers.EthernetTypeIPv6}, ip, ic, ns)
}

func TestNeighborAdvert(t *testing.T) {
	td := newTestDP(t)
	td.inject(0, ndSolicit(t, macClient, clientIP6, lbIP6))
	td.step()
	out := td.out(0)
	if len(out) != 1 {
		t.Fatalf("got %d frames", len(out))
	}
	p := decode(t, out[0])
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	na, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if !ok {
		t.Fatalf("not an NA: %v", p)
	}
	if !bytes.Equal(eth.DstMAC, macClient) || !ip.SrcIP.Equal(ipOf(lbIP6)) || !ip.DstIP.Equal(ipOf(clientIP6)) || ip.HopLimit != 255 {
		t.Errorf("NA addressing: %s %s -> %s hl %d", eth.DstMAC, ip.SrcIP, ip.DstIP, ip.HopLimit)
	}
	if !na.TargetAddress.Equal(ipOf(lbIP6)) || !na.Solicited() || !na.Override() || !na.Router() {
		t.Errorf("NA body %+v", na)
	}
	if len(na.Options) != 1 || na.Options[0].Type != layers.ICMPv6OptTargetAddress || !bytes.Equal(na.Options[0].Data, macDP0) {
		t.Errorf("NA options %+v", na.Options)
	}
	if nb := td.d.Neighbours(); len(nb) != 1 || nb[0].Addr != clientIP6 {
		t.Errorf("neighbours = %v", nb)
	}
}

func TestEchoReplyIPv6(t *testing.T) {
	td := newTestDP(t)
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: ipOf(clientIP6), DstIP: ipOf(lbIP6)}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
	ic.SetNetworkLayerForChecksum(ip)
	frame := serialize(t, &layers.Ethernet{SrcMAC: macClient, DstMAC: macDP0, EthernetType: layers.EthernetTypeIPv6}, ip, ic,
		&layers.ICMPv6Echo{Identifier: 77, SeqNumber: 3}, gopacket.Payload("ping6"))
	td.inject(0, frame)
	td.step()
	out := td.out(0)
	if len(out) != 1 {
		t.Fatalf("got %d frames", len(out))
	}
	p := decode(t, out[0])
	rip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	ric := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	re := p.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo)
	if !rip.SrcIP.Equal(ipOf(lbIP6)) || !rip.DstIP.Equal(ipOf(clientIP6)) || ric.TypeCode.Type() != layers.ICMPv6TypeEchoReply ||
		re.Identifier != 77 || re.SeqNumber != 3 || string(re.Payload) != "ping6" {
		t.Errorf("reply %s -> %s %v id %d seq %d %q", rip.SrcIP, rip.DstIP, ric.TypeCode, re.Identifier, re.SeqNumber, re.Payload)
	}
}

func TestForwardResolvesNextHop(t *testing.T) {
	td := newTestDP(t)
	payload := []byte("forward-me")
	td.inject(0, udp4(t, macClient, macDP0, clientIP, rs1IP, 64, payload))
	td.step()
	// the packet waits; an ARP request goes out dp1
	out := td.out(1)
	if len(out) != 1 {
		t.Fatalf("dp1 sent %d frames, want 1 ARP request", len(out))
	}
	arp := decode(t, out[0]).Layer(layers.LayerTypeARP).(*layers.ARP)
	if arp.Operation != layers.ARPRequest || !net.IP(arp.DstProtAddress).Equal(ipOf(rs1IP)) ||
		!net.IP(arp.SourceProtAddress).Equal(net.IPv4(10, 2, 0, 1)) {
		t.Fatalf("bad ARP request %+v", arp)
	}
	// rs1 answers
	reply := serialize(t,
		&layers.Ethernet{SrcMAC: macRS1, DstMAC: macDP1, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPReply, SourceHwAddress: macRS1, SourceProtAddress: ipOf(rs1IP),
			DstHwAddress: macDP1, DstProtAddress: net.IPv4(10, 2, 0, 1).To4()})
	td.inject(1, reply)
	td.step()
	out = td.out(1)
	if len(out) != 1 {
		t.Fatalf("dp1 sent %d frames after resolution, want the held packet", len(out))
	}
	p := decode(t, out[0])
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	u := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if !bytes.Equal(eth.SrcMAC, macDP1) || !bytes.Equal(eth.DstMAC, macRS1) {
		t.Errorf("eth %s -> %s", eth.SrcMAC, eth.DstMAC)
	}
	if ip.TTL != 63 || !ip.SrcIP.Equal(ipOf(clientIP)) || !ip.DstIP.Equal(ipOf(rs1IP)) || string(u.Payload) != string(payload) {
		t.Errorf("ip ttl %d %s -> %s payload %q", ip.TTL, ip.SrcIP, ip.DstIP, u.Payload)
	}
	// next packets go straight through
	td.inject(0, udp4(t, macClient, macDP0, clientIP, rs1IP, 10, payload))
	td.step()
	if out := td.out(1); len(out) != 1 || decode(t, out[0]).Layer(layers.LayerTypeIPv4).(*layers.IPv4).TTL != 9 {
		t.Fatalf("second packet not forwarded directly")
	}
	if td.counter(CtrForwarded) != 2 || td.counter(CtrNeighQueued) != 1 {
		t.Errorf("forwarded=%d queued=%d", td.counter(CtrForwarded), td.counter(CtrNeighQueued))
	}
}

func TestTTLExceededAndNoRoute(t *testing.T) {
	td := newTestDP(t)
	if err := td.d.AddNeigh(clientIP, header.MAC(macClient), "dp0"); err != nil {
		t.Fatal(err)
	}
	orig := udp4(t, macClient, macDP0, clientIP, rs1IP, 1, []byte("x"))
	td.inject(0, orig)
	td.step()
	out := td.out(0)
	if len(out) != 1 {
		t.Fatalf("got %d frames, want ICMP time exceeded", len(out))
	}
	p := decode(t, out[0])
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ic.TypeCode.Type() != layers.ICMPv4TypeTimeExceeded || !ip.SrcIP.Equal(ipOf(lbIP)) || !ip.DstIP.Equal(ipOf(clientIP)) {
		t.Errorf("got %v from %s to %s", ic.TypeCode, ip.SrcIP, ip.DstIP)
	}
	if q := orig[14 : 14+20+8+1]; !bytes.Equal(ic.Payload, q) {
		t.Errorf("quoted %x, want %x", ic.Payload, q)
	}
	if td.counter(CtrDropTTLExceeded) != 1 {
		t.Errorf("drop_ttl_exceeded = %d", td.counter(CtrDropTTLExceeded))
	}
	td.inject(0, udp4(t, macClient, macDP0, clientIP, netip.MustParseAddr("192.0.2.1"), 64, []byte("x")))
	td.step()
	if td.counter(CtrDropNoRoute) != 1 {
		t.Errorf("drop_no_route = %d", td.counter(CtrDropNoRoute))
	}
	if out := td.out(0); len(out) != 1 || decode(t, out[0]).Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4).TypeCode.Type() != layers.ICMPv4TypeDestinationUnreachable {
		t.Errorf("no destination unreachable sent")
	}
}

func TestVLAN(t *testing.T) {
	td := newTestDP(t)
	if err := td.d.AddVLAN("dp0.100", "dp0", 100); err != nil {
		t.Fatal(err)
	}
	if err := td.d.AddAddr(netip.MustParsePrefix("10.100.0.1/24"), "dp0.100"); err != nil {
		t.Fatal(err)
	}
	req := serialize(t,
		&layers.Ethernet{SrcMAC: macClient, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeDot1Q},
		&layers.Dot1Q{VLANIdentifier: 100, Type: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: macClient, SourceProtAddress: net.IPv4(10, 100, 0, 2).To4(),
			DstHwAddress: make([]byte, 6), DstProtAddress: net.IPv4(10, 100, 0, 1).To4()})
	td.inject(0, req)
	// the same address asked untagged is not the VLAN's
	td.inject(0, arpRequest(t, macClient, netip.MustParseAddr("10.100.0.2"), netip.MustParseAddr("10.100.0.1")))
	td.step()
	out := td.out(0)
	if len(out) != 1 {
		ctr, _ := td.w.Stats()
		t.Fatalf("got %d frames, want 1 tagged reply; counters %v", len(out), ctr)
	}
	p := decode(t, out[0])
	q, ok := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
	if !ok || q.VLANIdentifier != 100 {
		t.Fatalf("reply not tagged 100: %v", p)
	}
	if arp := p.Layer(layers.LayerTypeARP).(*layers.ARP); !net.IP(arp.SourceProtAddress).Equal(net.IPv4(10, 100, 0, 1)) {
		t.Errorf("reply from %s", net.IP(arp.SourceProtAddress))
	}
	// forwarding out of the VLAN adds the tag
	if err := td.d.AddNeigh(netip.MustParseAddr("10.100.0.2"), header.MAC(macClient), "dp0.100"); err != nil {
		t.Fatal(err)
	}
	td.inject(1, udp4(t, macRS1, macDP1, rs1IP, netip.MustParseAddr("10.100.0.2"), 64, []byte("to-vlan")))
	td.step()
	out = td.out(0)
	if len(out) != 1 {
		t.Fatalf("got %d frames on dp0", len(out))
	}
	p = decode(t, out[0])
	if q, ok := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); !ok || q.VLANIdentifier != 100 || q.Type != layers.EthernetTypeIPv4 {
		t.Fatalf("forwarded frame not tagged: %v", p)
	}
	// unknown VLANs go to the kernel (here: KNI disabled, counted)
	if err := td.d.DelVLAN("dp0.100"); err != nil {
		t.Fatal(err)
	}
	td.inject(0, req)
	td.step()
	if td.counter(CtrDropKNIDisabled) == 0 {
		t.Error("frame of a deleted VLAN not handed to KNI")
	}
}

func TestMalformedDropped(t *testing.T) {
	td := newTestDP(t)
	good := echo4(t, macClient, macDP0, clientIP, lbIP, 64, []byte("abcdefgh"))
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name  string
		frame []byte
		ctr   Counter
	}{
		{"runt", good[:10], CtrDropEthTooShort},
		{"ipv4 truncated", good[:14+12], CtrDropIPv4TooShort},
		{"bad version", mut(func(b []byte) []byte { b[14] = 0x55; return b }), CtrDropIPv4BadVersion},
		{"bad ihl", mut(func(b []byte) []byte { b[14] = 0x43; return b }), CtrDropIPv4BadHeaderLen},
		{"ihl past end", mut(func(b []byte) []byte { b[14] = 0x4f; return b[:14+40] }), CtrDropIPv4BadHeaderLen},
		{"total len too big", mut(func(b []byte) []byte { b[16], b[17] = 0x10, 0; return b }), CtrDropIPv4BadTotalLen},
		{"bad checksum", mut(func(b []byte) []byte { b[24] ^= 0xff; return b }), CtrDropIPv4BadChecksum},
		{"bad icmp checksum", mut(func(b []byte) []byte { b[14+20+8+7] ^= 0xff; return b }), CtrDropICMPInvalid},
		{"arp truncated", arpRequest(t, macClient, clientIP, lbIP)[:14+20], CtrDropARPInvalid},
		{"ipv6 truncated", ndSolicit(t, macClient, clientIP6, lbIP6)[:14+30], CtrDropIPv6TooShort},
		{"ipv6 payload len", func() []byte {
			b := ndSolicit(t, macClient, clientIP6, lbIP6)
			b[18], b[19] = 0xff, 0
			return b
		}(), CtrDropIPv6BadPayloadLen},
		{"nd bad hop limit", func() []byte {
			b := ndSolicit(t, macClient, clientIP6, lbIP6)
			b[14+7] = 64
			return b
		}(), CtrDropNDInvalid},
		{"not for us", echo4(t, macClient, macRS1, clientIP, lbIP, 64, nil), CtrDropNotForUs},
	}
	for _, c := range cases {
		before := td.counter(c.ctr)
		td.inject(0, c.frame)
		td.step()
		if got := td.counter(c.ctr) - before; got != 1 {
			t.Errorf("%s: %s += %d, want 1", c.name, c.ctr, got)
		}
		if out := td.out(0); len(out) != 0 {
			t.Errorf("%s: %d frames sent", c.name, len(out))
		}
	}
	// and the worker still answers
	td.inject(0, good)
	td.step()
	if len(td.out(0)) != 1 {
		t.Error("no echo reply after malformed frames")
	}
	pool := td.ports[0].MemQueue(0).Pool()
	if pool.Free() != pool.Size() {
		t.Errorf("buffers leaked: %d of %d free", pool.Free(), pool.Size())
	}
}

func TestNeighbourExpiry(t *testing.T) {
	n := newNeighbours(time.Second, 0, time.Now().UnixNano)
	n.learn(neighLearn{addr: clientIP, mac: header.MAC(macClient), iface: 1, class: neighUnsolicited}, 0)
	n.addStatic(rs1IP, header.MAC(macRS1), 2)
	v := n.version.Load()
	n.learn(neighLearn{addr: clientIP, mac: header.MAC(macClient), iface: 1, class: neighUnsolicited}, int64(500*time.Millisecond))
	if n.version.Load() != v {
		t.Error("a refresh republished the table")
	}
	if got := n.expire(int64(time.Second + neighProbeGrace)); got != 0 {
		t.Errorf("expired %d entries too early", got)
	}
	if got := n.expire(int64(2*time.Second + neighProbeGrace)); got != 1 {
		t.Errorf("expired %d entries, want 1 (the static one stays)", got)
	}
	if !n.pub.Load().Has(rs1IP) {
		t.Error("static entry expired")
	}
}

func TestMartianSourcesDropped(t *testing.T) {
	td := newTestDP(t)
	for _, src := range []string{"127.0.0.1", "224.0.0.1", "0.0.0.0", "255.255.255.255", "10.1.0.255", "10.1.0.1"} {
		before := td.counter(CtrDropMartian)
		td.inject(0, echo4(t, macClient, macDP0, netip.MustParseAddr(src), lbIP, 64, []byte("martian")))
		td.inject(0, udp4(t, macClient, macDP0, netip.MustParseAddr(src), rs1IP, 64, []byte("martian transit")))
		td.step()
		if got := td.counter(CtrDropMartian) - before; got != 2 {
			t.Errorf("source %s: drop_martian += %d, want 2", src, got)
		}
		if out := append(td.out(0), td.out(1)...); len(out) != 0 {
			t.Errorf("source %s: %d frames sent", src, len(out))
		}
	}
	for _, src := range []string{"::1", "ff02::1", "::", "fd00:1::1"} {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: net.ParseIP(src), DstIP: ipOf(lbIP6)}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
		ic.SetNetworkLayerForChecksum(ip)
		before := td.counter(CtrDropMartian)
		td.inject(0, serialize(t, &layers.Ethernet{SrcMAC: macClient, DstMAC: macDP0, EthernetType: layers.EthernetTypeIPv6}, ip, ic,
			&layers.ICMPv6Echo{Identifier: 1, SeqNumber: 1}))
		td.step()
		if got := td.counter(CtrDropMartian) - before; got != 1 {
			t.Errorf("source %s: drop_martian += %d, want 1", src, got)
		}
		if out := td.out(0); len(out) != 0 {
			t.Errorf("source %s: answered", src)
		}
	}
}
