package dataplane

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
)

var (
	vip   = netip.MustParseAddr("10.1.0.100")
	vip6  = netip.MustParseAddr("fd00:1::100")
	lip   = netip.MustParseAddr("10.2.0.100")
	lip6  = netip.MustParseAddr("fd00:2::100")
	rs2IP = netip.MustParseAddr("10.2.0.12")
)

// newLBTestDP: the two-port test dataplane with workers workers, VIPs on
// dp0, LIPs on dp1, static neighbours, and a FullNAT TCP service with rs1.
func newLBTestDP(t testing.TB, workers int) *testDP {
	td := fixture{Options: Options{Workers: workers, ConnCapacity: 1 << 16}, addrs: lbAddrs, lbNeighbors: true}.build(t)
	td.service(ipvs.TCP, vip, 80, "rr", lip, netip.AddrPortFrom(rs1IP, 8080))
	return td
}

func (td *testDP) service(p ipvs.Proto, v netip.Addr, vport uint16, sched string, l netip.Addr, dests ...netip.AddrPort) ipvs.ServiceKey {
	k := ipvs.ServiceKey{Proto: p, Addr: v, Port: vport}
	m := td.d
	if err := m.AddService(ipvs.ServiceSpec{Key: k, Sched: sched}); err != nil {
		td.t.Fatal(err)
	}
	for _, d := range dests {
		if err := m.AddDest(k, ipvs.DestSpec{Addr: d, Weight: 1, Fwd: ipvs.FwdFullNAT}); err != nil {
			td.t.Fatal(err)
		}
	}
	if err := td.d.AddLAddr(k, ipvs.LAddr{Addr: l}); err != nil {
		td.t.Fatal(err)
	}
	return k
}

// stepAll runs every worker once (worker 0 first) and repeats, so frames
// handed between workers get processed.
func (td *testDP) stepAll() {
	for round := 0; round < 2; round++ {
		for _, w := range td.d.workers {
			w.iterate()
		}
	}
}

func (td *testDP) injectQ(port, queue int, frame []byte) {
	if !td.ports[port].MemQueue(queue).Inject(frame) {
		td.t.Fatal("inject: ring full")
	}
}

func (td *testDP) outAll(port int) [][]byte {
	var out [][]byte
	for q := 0; q < td.ports[port].NumQueues(); q++ {
		out = append(out, td.ports[port].MemQueue(q).Drain()...)
	}
	return out
}

func (td *testDP) sum(c Counter) uint64 {
	var n uint64
	for _, w := range td.d.workers {
		ctr, _ := w.Stats()
		n += ctr[c]
	}
	return n
}

type tcpSeg struct {
	src, dst      netip.AddrPort
	smac, dmac    net.HardwareAddr
	syn, ack, fin bool
	rst, psh      bool
	seq, ackn     uint32
	mss           uint16
	opts          []layers.TCPOption // after the MSS option
	payload       []byte
	ttl           uint8
}

func tcpFrame(t testing.TB, s tcpSeg) []byte {
	if s.ttl == 0 {
		s.ttl = 64
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(s.src.Port()), DstPort: layers.TCPPort(s.dst.Port()), SYN: s.syn, ACK: s.ack,
		FIN: s.fin, RST: s.rst, PSH: s.psh, Seq: s.seq, Ack: s.ackn, Window: 65535}
	if s.mss != 0 {
		m := make([]byte, 2)
		binary.BigEndian.PutUint16(m, s.mss)
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: m}}
	}
	tcp.Options = append(tcp.Options, s.opts...)
	if s.src.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: s.ttl, Protocol: layers.IPProtocolTCP, SrcIP: ipOf(s.src.Addr()), DstIP: ipOf(s.dst.Addr())}
		tcp.SetNetworkLayerForChecksum(ip)
		return serialize(t, &layers.Ethernet{SrcMAC: s.smac, DstMAC: s.dmac, EthernetType: layers.EthernetTypeIPv4}, ip, tcp, gopacket.Payload(s.payload))
	}
	ip := &layers.IPv6{Version: 6, HopLimit: s.ttl, NextHeader: layers.IPProtocolTCP, SrcIP: ipOf(s.src.Addr()), DstIP: ipOf(s.dst.Addr())}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, &layers.Ethernet{SrcMAC: s.smac, DstMAC: s.dmac, EthernetType: layers.EthernetTypeIPv6}, ip, tcp, gopacket.Payload(s.payload))
}

// decoded is a frame's fields the tests compare.
type decoded struct {
	src, dst netip.AddrPort
	ttl      uint8
	tcp      *layers.TCP
	udp      *layers.UDP
	srcMAC   net.HardwareAddr
	dstMAC   net.HardwareAddr
}

func decodeL4(t testing.TB, frame []byte) decoded {
	t.Helper()
	p := decode(t, frame)
	var d decoded
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	d.srcMAC, d.dstMAC = eth.SrcMAC, eth.DstMAC
	var sa, da netip.Addr
	if ip4, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		sa, _ = netip.AddrFromSlice(ip4.SrcIP.To4())
		da, _ = netip.AddrFromSlice(ip4.DstIP.To4())
		d.ttl = ip4.TTL
	} else {
		ip6 := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		sa, _ = netip.AddrFromSlice(ip6.SrcIP)
		da, _ = netip.AddrFromSlice(ip6.DstIP)
		d.ttl = ip6.HopLimit
	}
	if tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
		d.tcp = tcp
		d.src, d.dst = netip.AddrPortFrom(sa, uint16(tcp.SrcPort)), netip.AddrPortFrom(da, uint16(tcp.DstPort))
	} else if udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		d.udp = udp
		d.src, d.dst = netip.AddrPortFrom(sa, uint16(udp.SrcPort)), netip.AddrPortFrom(da, uint16(udp.DstPort))
	}
	return d
}

func toaOf(tcp *layers.TCP) []byte {
	for _, o := range tcp.Options {
		if o.OptionType == 254 {
			return o.OptionData
		}
	}
	return nil
}

func mssOf(tcp *layers.TCP) uint16 {
	for _, o := range tcp.Options {
		if o.OptionType == layers.TCPOptionKindMSS {
			return binary.BigEndian.Uint16(o.OptionData)
		}
	}
	return 0
}

// one runs a frame through and returns the single frame sent on port out.
func (td *testDP) one(t *testing.T, in int, frame []byte, out int) decoded {
	t.Helper()
	td.inject(in, frame)
	td.stepAll()
	fs := td.outAll(out)
	if len(fs) != 1 {
		ctr, _ := td.w.Stats()
		t.Fatalf("port %d sent %d frames, want 1; counters %v", out, len(fs), nonZero(ctr))
	}
	return decodeL4(t, fs[0])
}

func nonZero(ctr [NumCounters]uint64) map[string]uint64 {
	m := map[string]uint64{}
	for i, v := range ctr {
		if v != 0 {
			m[Counter(i).String()] = v
		}
	}
	return m
}

func fullNATHandshake(t *testing.T, td *testDP, client, vipPort, rs netip.AddrPort) (lport uint16) {
	t.Helper()
	local := lip
	if client.Addr().Is6() {
		local = lip6
	}
	// SYN: client → VIP becomes LIP → real server
	syn := td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vipPort, smac: macClient, dmac: macDP0, syn: true, seq: 1000, mss: 1460}), 1)
	if syn.src.Addr() != local || syn.dst != rs || !syn.tcp.SYN || syn.tcp.Seq != 1000 || syn.ttl != 63 {
		t.Fatalf("SYN out: %s -> %s syn=%v seq=%d ttl=%d", syn.src, syn.dst, syn.tcp.SYN, syn.tcp.Seq, syn.ttl)
	}
	if !bytes.Equal(syn.srcMAC, macDP1) || !bytes.Equal(syn.dstMAC, macRS1) {
		t.Errorf("SYN out MACs %s -> %s", syn.srcMAC, syn.dstMAC)
	}
	if toaOf(syn.tcp) != nil {
		t.Error("TOA on the SYN")
	}
	lport = syn.src.Port()
	// SYN-ACK: real server → LIP becomes VIP → client, MSS clamped for TOA
	sa := td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: netip.AddrPortFrom(local, lport), smac: macRS1, dmac: macDP1,
		syn: true, ack: true, seq: 5000, ackn: 1001, mss: 1460}), 0)
	if sa.src != vipPort || sa.dst != client || !sa.tcp.SYN || !sa.tcp.ACK || sa.tcp.Ack != 1001 {
		t.Fatalf("SYN-ACK out: %s -> %s", sa.src, sa.dst)
	}
	toaLen := 8
	hdr := 40
	if client.Addr().Is6() {
		toaLen, hdr = 20, 60
	}
	if got, want := mssOf(sa.tcp), uint16(1500-hdr-toaLen); got != want {
		t.Errorf("SYN-ACK MSS %d, want %d (room for TOA)", got, want)
	}
	// ACK: carries TOA with the client's address and port
	ack := td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vipPort, smac: macClient, dmac: macDP0, ack: true, seq: 1001, ackn: 5001}), 1)
	toa := toaOf(ack.tcp)
	if len(toa) != toaLen-2 {
		t.Fatalf("first ACK TOA = %x, want %d bytes of data", toa, toaLen-2)
	}
	if port := binary.BigEndian.Uint16(toa); port != client.Port() {
		t.Errorf("TOA port %d, want %d", port, client.Port())
	}
	if a, _ := netip.AddrFromSlice(toa[2:]); a != client.Addr() {
		t.Errorf("TOA address %s, want %s", a, client.Addr())
	}
	// data before the server has answered: the ACK may have been lost, so
	// it carries the TOA as well; payload intact
	data := td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vipPort, smac: macClient, dmac: macDP0, ack: true, psh: true,
		seq: 1001, ackn: 5001, payload: []byte("GET / HTTP/1.0\r\n\r\n")}), 1)
	if !bytes.Equal(toaOf(data.tcp), toa) || string(data.tcp.Payload) != "GET / HTTP/1.0\r\n\r\n" {
		t.Errorf("data segment: toa %x (want %x) payload %q", toaOf(data.tcp), toa, data.tcp.Payload)
	}
	return lport
}

func TestFullNATTCPv4(t *testing.T) {
	td := newLBTestDP(t, 1)
	client := netip.AddrPortFrom(clientIP, 40000)
	fullNATHandshake(t, td, client, netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080))
	svc := td.d.IPVS().Table().Services[0]
	if a, i := svc.Dests[0].C.Active.Load(), svc.Dests[0].C.Inactive.Load(); a != 1 || i != 0 {
		t.Errorf("ActiveConn %d InActConn %d, want 1 0", a, i)
	}
	conns, err := td.d.Conns(nil)
	if err != nil || len(conns) != 1 || conns[0].State.String() != "ESTABLISHED" || conns[0].Client != client {
		t.Errorf("conns = %+v %v", conns, err)
	}
	if td.sum(CtrLBTOAAdded) != 2 || td.sum(CtrLBNewConns) != 1 {
		t.Errorf("toa=%d new=%d", td.sum(CtrLBTOAAdded), td.sum(CtrLBNewConns))
	}
	// as received, like LVS: SYN (40+4 MSS), ACK (40), data (40+18) in; SYN-ACK (44) out
	tr := td.d.DestTraffic(svc.Dests[0].ID)
	if want := (Traffic{InPkts: 3, OutPkts: 1, InBytes: 44 + 40 + 58, OutBytes: 44}); tr != want {
		t.Errorf("destination traffic %+v, want %+v", tr, want)
	}
}

func TestFullNATTCPv6(t *testing.T) {
	td := newLBTestDP(t, 1)
	td.service(ipvs.TCP, vip6, 80, "rr", lip6, netip.AddrPortFrom(rs1IP6, 8080))
	fullNATHandshake(t, td, netip.AddrPortFrom(clientIP6, 40001), netip.AddrPortFrom(vip6, 80), netip.AddrPortFrom(rs1IP6, 8080))
}

func TestFullNATUDP(t *testing.T) {
	td := newLBTestDP(t, 1)
	td.service(ipvs.UDP, vip, 9000, "rr", lip, netip.AddrPortFrom(rs1IP, 9001))
	udp := func(src, dst netip.AddrPort, smac, dmac net.HardwareAddr, payload string) []byte {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: ipOf(src.Addr()), DstIP: ipOf(dst.Addr())}
		u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
		u.SetNetworkLayerForChecksum(ip)
		return serialize(t, &layers.Ethernet{SrcMAC: smac, DstMAC: dmac, EthernetType: layers.EthernetTypeIPv4}, ip, u, gopacket.Payload(payload))
	}
	client := netip.AddrPortFrom(clientIP, 5353)
	req := td.one(t, 0, udp(client, netip.AddrPortFrom(vip, 9000), macClient, macDP0, "question?"), 1)
	if req.src.Addr() != lip || req.dst != netip.AddrPortFrom(rs1IP, 9001) || string(req.udp.Payload) != "question?" {
		t.Fatalf("request out %s -> %s %q", req.src, req.dst, req.udp.Payload)
	}
	resp := td.one(t, 1, udp(netip.AddrPortFrom(rs1IP, 9001), req.src, macRS1, macDP1, "answer!"), 0)
	if resp.src != netip.AddrPortFrom(vip, 9000) || resp.dst != client || string(resp.udp.Payload) != "answer!" {
		t.Fatalf("response out %s -> %s %q", resp.src, resp.dst, resp.udp.Payload)
	}
	conns, _ := td.d.Conns(nil)
	if len(conns) != 1 || conns[0].State.String() != "UDP" {
		t.Errorf("conns = %+v", conns)
	}
}

func TestFullNATRefusesStrayPackets(t *testing.T) {
	td := newLBTestDP(t, 1)
	client := netip.AddrPortFrom(clientIP, 40002)
	// an ACK without a connection
	td.inject(0, tcpFrame(t, tcpSeg{src: client, dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, ack: true}))
	// a reply to a local port without a connection
	td.inject(1, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(rs1IP, 8080), dst: netip.AddrPortFrom(lip, 2000), smac: macRS1, dmac: macDP1, ack: true}))
	td.stepAll()
	if len(td.outAll(0))+len(td.outAll(1)) != 0 {
		t.Error("stray packets forwarded")
	}
	if td.sum(CtrDropLBNotSYN) != 1 || td.sum(CtrDropLBNoConn) != 1 {
		t.Errorf("not_syn=%d no_conn=%d", td.sum(CtrDropLBNotSYN), td.sum(CtrDropLBNoConn))
	}
}

func TestQuiescedDestKeepsConnections(t *testing.T) {
	td := newLBTestDP(t, 1)
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 80}
	rs := netip.AddrPortFrom(rs1IP, 8080)
	client := netip.AddrPortFrom(clientIP, 40003)
	fullNATHandshake(t, td, client, netip.AddrPortFrom(vip, 80), rs)
	if err := td.d.EditDest(k, ipvs.DestSpec{Addr: rs, Weight: 0, Fwd: ipvs.FwdFullNAT}); err != nil {
		t.Fatal(err)
	}
	// a new connection finds no destination
	td.inject(0, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, 40004), dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, syn: true}))
	td.stepAll()
	if len(td.outAll(1)) != 0 || td.sum(CtrDropLBNoDest) != 1 {
		t.Fatalf("quiesced destination got a new connection (drop_lb_no_dest=%d)", td.sum(CtrDropLBNoDest))
	}
	// the established one goes on
	d := td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, ack: true, psh: true,
		seq: 1019, ackn: 5001, payload: []byte("more")}), 1)
	if d.dst != rs {
		t.Errorf("established conn went to %s", d.dst)
	}
	// deleting the destination keeps it too; with expire it ends
	if err := td.d.DelDest(k, rs, false); err != nil {
		t.Fatal(err)
	}
	td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, ack: true, seq: 1023, ackn: 5001}), 1)
	td.d.AddDest(k, ipvs.DestSpec{Addr: rs, Weight: 1, Fwd: ipvs.FwdFullNAT})
	client2 := netip.AddrPortFrom(clientIP, 40005)
	syn := td.one(t, 0, tcpFrame(t, tcpSeg{src: client2, dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, syn: true}), 1)
	_ = syn
	if err := td.d.DelDest(k, rs, true); err != nil {
		t.Fatal(err)
	}
	td.inject(0, tcpFrame(t, tcpSeg{src: client2, dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, ack: true}))
	td.stepAll()
	if len(td.outAll(1)) != 0 || td.sum(CtrDropLBExpiredDest) != 1 {
		t.Errorf("connection of a destination deleted with expire still forwarded (drop_lb_expired_dest=%d)", td.sum(CtrDropLBExpiredDest))
	}
}

func TestRepliesHandedToOwnerWorker(t *testing.T) {
	td := newLBTestDP(t, 2)
	client := netip.AddrPortFrom(clientIP, 40010)
	// the SYN arrives on queue 1: worker 1 owns the connection
	td.injectQ(0, 1, tcpFrame(t, tcpSeg{src: client, dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, syn: true, seq: 1}))
	td.stepAll()
	out := td.outAll(1)
	if len(out) != 1 {
		t.Fatalf("%d frames towards the real server", len(out))
	}
	syn := decodeL4(t, out[0])
	if td.d.steer.Owner(syn.src.Port()) != 1 {
		t.Fatalf("worker 1 picked port %d owned by worker %d", syn.src.Port(), td.d.steer.Owner(syn.src.Port()))
	}
	// the SYN-ACK lands on queue 0: worker 0 hands it to worker 1
	td.injectQ(1, 0, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(rs1IP, 8080), dst: syn.src, smac: macRS1, dmac: macDP1, syn: true, ack: true, ackn: 2}))
	td.stepAll()
	out = td.outAll(0)
	if len(out) != 1 {
		t.Fatalf("%d frames towards the client", len(out))
	}
	if sa := decodeL4(t, out[0]); sa.dst != client || sa.src != netip.AddrPortFrom(vip, 80) {
		t.Errorf("SYN-ACK %s -> %s", sa.src, sa.dst)
	}
	c0, _ := td.d.workers[0].Stats()
	c1, _ := td.d.workers[1].Stats()
	if c0[CtrLBRedirectedOut] != 1 || c1[CtrLBRedirectedIn] != 1 || c1[CtrLBOut] != 1 {
		t.Errorf("redirected out %d in %d, worker 1 lb_out %d", c0[CtrLBRedirectedOut], c1[CtrLBRedirectedIn], c1[CtrLBOut])
	}
}

// fragNeeded4 is an ICMP fragmentation-needed (MTU 1400) from src to dst
// quoting q.
func fragNeeded4(t testing.TB, src, dst netip.Addr, smac, dmac net.HardwareAddr, q []byte) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: ipOf(src), DstIP: ipOf(dst)}
	return serialize(t, &layers.Ethernet{SrcMAC: smac, DstMAC: dmac, EthernetType: layers.EthernetTypeIPv4}, ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1400}, gopacket.Payload(q))
}

func TestICMPErrorsTranslated(t *testing.T) {
	td := newLBTestDP(t, 1)
	client := netip.AddrPortFrom(clientIP, 40020)
	vp := netip.AddrPortFrom(vip, 80)
	rs := netip.AddrPortFrom(rs1IP, 8080)
	lport := fullNATHandshake(t, td, client, vp, rs)
	local := netip.AddrPortFrom(lip, lport)
	// the real server's side reports "fragmentation needed" about L→D
	quoted := tcpFrame(t, tcpSeg{src: local, dst: rs, ack: true, smac: macDP1, dmac: macRS1, seq: 7})[14 : 14+40]
	td.inject(1, fragNeeded4(t, rs1IP, lip, macRS1, macDP1, quoted))
	td.stepAll()
	out := td.outAll(0)
	if len(out) != 1 {
		t.Fatalf("%d frames to the client", len(out))
	}
	p := decode(t, out[0])
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if !ip.SrcIP.Equal(ipOf(vip)) || !ip.DstIP.Equal(ipOf(clientIP)) || ic.TypeCode != layers.CreateICMPv4TypeCode(3, 4) {
		t.Fatalf("outer %s -> %s %v", ip.SrcIP, ip.DstIP, ic.TypeCode)
	}
	inner := gopacket.NewPacket(ic.Payload, layers.LayerTypeIPv4, gopacket.Default)
	iip := inner.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	itcp := inner.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !iip.SrcIP.Equal(ipOf(clientIP)) || !iip.DstIP.Equal(ipOf(vip)) || uint16(itcp.SrcPort) != client.Port() || itcp.DstPort != 80 {
		t.Errorf("inner %s:%d -> %s:%d, want the client's view", iip.SrcIP, itcp.SrcPort, iip.DstIP, itcp.DstPort)
	}
	if header.Checksum(ic.Contents, 0) == 0 && false {
		t.Error("unreachable")
	}
	// and from the client side about V→C
	quoted = tcpFrame(t, tcpSeg{src: vp, dst: client, ack: true, smac: macDP0, dmac: macClient})[14 : 14+40]
	td.inject(0, fragNeeded4(t, clientIP, vip, macClient, macDP0, quoted))
	td.stepAll()
	out = td.outAll(1)
	if len(out) != 1 {
		t.Fatalf("%d frames to the real server", len(out))
	}
	p = decode(t, out[0])
	ip = p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !ip.SrcIP.Equal(ipOf(lip)) || !ip.DstIP.Equal(ipOf(rs1IP)) {
		t.Errorf("outer towards the server %s -> %s", ip.SrcIP, ip.DstIP)
	}
	inner = gopacket.NewPacket(p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4).Payload, layers.LayerTypeIPv4, gopacket.Default)
	itcp = inner.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if uint16(itcp.SrcPort) != rs.Port() || uint16(itcp.DstPort) != lport {
		t.Errorf("inner ports %d -> %d", itcp.SrcPort, itcp.DstPort)
	}
	if td.sum(CtrLBICMPTranslated) != 2 {
		t.Errorf("lb_icmp_translated = %d", td.sum(CtrLBICMPTranslated))
	}
}

func TestConnectionsExpire(t *testing.T) {
	td := newLBTestDP(t, 1)
	if err := td.d.SetTimeouts(0, 0, 0); err != nil {
		t.Fatal(err)
	}
	client := netip.AddrPortFrom(clientIP, 40030)
	td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, syn: true}), 1)
	svc := td.d.IPVS().Table().Services[0]
	if svc.Dests[0].C.Inactive.Load() != 1 {
		t.Fatalf("InActConn = %d", svc.Dests[0].C.Inactive.Load())
	}
	free := td.w.pool.Free(lip, netip.AddrPortFrom(rs1IP, 8080))
	// jump the worker's clock past SYN_RECV's timeout
	td.d.start = td.d.start.Add(-2 * 60 * 1e9)
	td.w.iterate()
	td.w.iterate()
	if n := td.w.sess.Len(); n != 0 {
		t.Fatalf("%d conns left after their timeout", n)
	}
	if svc.Dests[0].C.Inactive.Load() != 0 || td.w.pool.Free(lip, netip.AddrPortFrom(rs1IP, 8080)) != free+1 || td.sum(CtrLBConnsExpired) != 1 {
		t.Errorf("after expiry: InActConn %d, free ports %d (was %d), expired %d",
			svc.Dests[0].C.Inactive.Load(), td.w.pool.Free(lip, netip.AddrPortFrom(rs1IP, 8080)), free, td.sum(CtrLBConnsExpired))
	}
}
