package dataplane

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"sort"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
)

// fragment splits the IP packet in the Ethernet frame into fragments of at
// most size bytes of payload (a multiple of 8), as a sender's IP layer
// does: IPv4 with MF and offsets (header checksum computed), IPv6 with a
// fragment header after the fixed header (identification id). The
// fragments are returned as frames in order.
func fragment(t testing.TB, frame []byte, size int, id uint32) [][]byte {
	t.Helper()
	eth, l3 := frame[:header.EthernetMinSize], frame[header.EthernetMinSize:]
	var out [][]byte
	if l3[0]>>4 == 4 {
		ip := header.IPv4(l3)
		hl := ip.HeaderLen()
		pay := l3[hl:ip.TotalLen()]
		for off := 0; off < len(pay); off += size {
			end := min(off+size, len(pay))
			f := append(append([]byte(nil), eth...), l3[:hl]...)
			f = append(f, pay[off:end]...)
			h := header.IPv4(f[header.EthernetMinSize:])
			binary.BigEndian.PutUint16(h[2:], uint16(hl+end-off))
			binary.BigEndian.PutUint16(h[4:], uint16(id))
			ff := uint16(off / 8)
			if end < len(pay) {
				ff |= header.IPv4MoreFragments
			}
			binary.BigEndian.PutUint16(h[6:], ff)
			h.SetChecksum(0)
			h.SetChecksum(^header.Checksum(h[:hl], 0))
			out = append(out, f)
		}
		return out
	}
	// IPv6: the unfragmentable part is the fixed header and the
	// hop-by-hop header if any
	unfrag := header.IPv6MinSize
	next := l3[6]
	if next == 0 {
		next = l3[unfrag]
		unfrag += (int(l3[unfrag+1]) + 1) * 8
	}
	pay := l3[unfrag : header.IPv6MinSize+int(header.IPv6(l3).PayloadLen())]
	for off := 0; off < len(pay); off += size {
		end := min(off+size, len(pay))
		f := append(append([]byte(nil), eth...), l3[:unfrag]...)
		ip := f[header.EthernetMinSize:]
		fh := make([]byte, 8)
		fh[0] = next
		v := uint16(off/8) << 3
		if end < len(pay) {
			v |= 1
		}
		binary.BigEndian.PutUint16(fh[2:], v)
		binary.BigEndian.PutUint32(fh[4:], id)
		if unfrag == header.IPv6MinSize {
			ip[6] = 44
		} else {
			ip[header.IPv6MinSize] = 44
		}
		f = append(f, fh...)
		f = append(f, pay[off:end]...)
		header.IPv6(f[header.EthernetMinSize:]).SetPayloadLen(uint16(unfrag - header.IPv6MinSize + 8 + end - off))
		out = append(out, f)
	}
	return out
}

// fragInfo is what a test checks of each fragment sent.
type fragInfo struct {
	src, dst   netip.Addr
	id         uint32
	off        int // bytes
	more       bool
	payload    []byte // after the IP header (and IPv6 fragment header)
	unfrag     []byte // IPv6: fixed header and extension headers before the fragment header
	next       uint8  // IPv6: the fragment header's next header
	srcMAC     net.HardwareAddr
	dstMAC     net.HardwareAddr
	ipv4Header []byte
}

// parseFrag decodes one fragment frame with gopacket (IPv4: its header
// checksum verified) and returns its fields.
func parseFrag(t testing.TB, frame []byte) fragInfo {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	fi := fragInfo{srcMAC: eth.SrcMAC, dstMAC: eth.DstMAC}
	if ip4, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		hdr := append([]byte(nil), ip4.Contents...)
		binary.BigEndian.PutUint16(hdr[10:], 0)
		if ck := ^header.Checksum(hdr, 0); ck != ip4.Checksum {
			t.Fatalf("IPv4 header checksum %04x, want %04x", ip4.Checksum, ck)
		}
		fi.src, _ = netip.AddrFromSlice(ip4.SrcIP.To4())
		fi.dst, _ = netip.AddrFromSlice(ip4.DstIP.To4())
		fi.id, fi.off, fi.more = uint32(ip4.Id), int(ip4.FragOffset)*8, ip4.Flags&layers.IPv4MoreFragments != 0
		fi.payload = frame[header.EthernetMinSize+int(ip4.IHL)*4 : header.EthernetMinSize+int(ip4.Length)]
		fi.ipv4Header = ip4.Contents
		return fi
	}
	ip6 := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	fr, ok := p.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment)
	if !ok {
		t.Fatalf("no IPv6 fragment header: %v", p)
	}
	fi.src, _ = netip.AddrFromSlice(ip6.SrcIP)
	fi.dst, _ = netip.AddrFromSlice(ip6.DstIP)
	fi.id, fi.off, fi.more, fi.next = fr.Identification, int(fr.FragmentOffset)*8, fr.MoreFragments, uint8(fr.NextHeader)
	l3 := frame[header.EthernetMinSize:]
	end := header.IPv6MinSize + int(ip6.Length)
	fo := len(l3) - len(fr.Contents) - len(fr.Payload)
	fi.unfrag, fi.payload = l3[:fo], l3[fo+8:end]
	return fi
}

// reassemble puts fragments (any order) back into one Ethernet frame
// with the first fragment's Ethernet header, checking that they agree on
// addresses and identification and leave no hole.
func reassemble(t testing.TB, frames [][]byte) []byte {
	t.Helper()
	fs := make([]fragInfo, len(frames))
	for i, f := range frames {
		fs[i] = parseFrag(t, f)
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].off < fs[j].off })
	var pay []byte
	for i, f := range fs {
		if f.off != len(pay) || f.src != fs[0].src || f.dst != fs[0].dst || f.id != fs[0].id || f.more != (i < len(fs)-1) {
			t.Fatalf("fragment %d: %s -> %s id %x offset %d more %v after %d bytes", i, f.src, f.dst, f.id, f.off, f.more, len(pay))
		}
		pay = append(pay, f.payload...)
	}
	first := frames[0]
	for i := range frames {
		if parseFrag(t, frames[i]).off == 0 {
			first = frames[i]
		}
	}
	out := append([]byte(nil), first[:header.EthernetMinSize]...)
	if fs[0].ipv4Header != nil {
		h := append([]byte(nil), fs[0].ipv4Header...)
		binary.BigEndian.PutUint16(h[2:], uint16(len(h)+len(pay)))
		binary.BigEndian.PutUint16(h[6:], 0)
		header.IPv4(h).SetChecksum(0)
		header.IPv4(h).SetChecksum(^header.Checksum(h, 0))
		return append(append(out, h...), pay...)
	}
	h := append([]byte(nil), fs[0].unfrag...)
	if len(h) == header.IPv6MinSize {
		h[6] = fs[0].next
	} else {
		h[header.IPv6MinSize] = fs[0].next
	}
	header.IPv6(h).SetPayloadLen(uint16(len(h) - header.IPv6MinSize + len(pay)))
	return append(append(out, h...), pay...)
}

func udp6Frame(t testing.TB, smac, dmac net.HardwareAddr, src, dst netip.AddrPort, payload []byte) []byte {
	u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: ipOf(src.Addr()), DstIP: ipOf(dst.Addr())}
	u.SetNetworkLayerForChecksum(ip)
	return serialize(t, &layers.Ethernet{SrcMAC: smac, DstMAC: dmac, EthernetType: layers.EthernetTypeIPv6}, ip, u, gopacket.Payload(payload))
}

func datagram(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i * 7)
	}
	return p
}

// sendFrags injects frames on port in, runs the workers and returns what
// port out sent.
func (td *testDP) sendFrags(in int, frames ...[]byte) [][]byte {
	for _, f := range frames {
		td.inject(in, f)
	}
	td.stepAll()
	return td.outAll(1 - in)
}

// checkDatagram reassembles what was sent and compares it with the
// expected addresses, ports and payload (decode verifies the checksums).
func checkDatagram(t *testing.T, what string, frames [][]byte, n int, src, dst netip.AddrPort, payload []byte) {
	t.Helper()
	if len(frames) != n {
		t.Fatalf("%s: %d fragments sent, want %d", what, len(frames), n)
	}
	d := decodeL4(t, reassemble(t, frames))
	if d.udp == nil || d.src != src || d.dst != dst || !bytes.Equal(d.udp.Payload, payload) {
		t.Fatalf("%s: reassembled %s -> %s, %d payload bytes (want %s -> %s, %d)", what, d.src, d.dst, len(d.udp.Payload), src, dst, len(payload))
	}
}

// TestFragUDPFullNAT: a 3000-byte UDP datagram in three IPv4 fragments
// through a FullNAT service: all three leave translated (addresses on
// each, the ports and checksum on the first), the reassembled datagram
// checks, and the real server's fragmented answer reaches the client.
func TestFragUDPFullNAT(t *testing.T) {
	td := newLBTestDP(t, 1)
	td.service(ipvs.UDP, vip, 9000, "rr", lip, netip.AddrPortFrom(rs1IP, 9001))
	client, vp, rs := netip.AddrPortFrom(clientIP, 5353), netip.AddrPortFrom(vip, 9000), netip.AddrPortFrom(rs1IP, 9001)
	req := datagram(3000)
	frags := fragment(t, udpFrame(t, macClient, macDP0, client, vp, req), 1480, 0x4242)
	if len(frags) != 3 {
		t.Fatalf("%d fragments", len(frags))
	}
	out := td.sendFrags(0, frags...)
	if len(out) != 3 {
		t.Fatalf("%d fragments out; counters %v", len(out), nonZero(td.counters()))
	}
	for i, f := range out {
		fi := parseFrag(t, f)
		if fi.src != lip || fi.dst != rs1IP || fi.id != 0x4242 || fi.off != 1480*i || !bytes.Equal(fi.dstMAC, macRS1) {
			t.Errorf("fragment %d: %s -> %s id %x offset %d to %s", i, fi.src, fi.dst, fi.id, fi.off, fi.dstMAC)
		}
	}
	lport := parseUDPPorts(t, out)
	checkDatagram(t, "request", out, 3, netip.AddrPortFrom(lip, lport), rs, req)
	// the answer, fragmented by the real server
	resp := datagram(2500)
	out = td.sendFrags(1, fragment(t, udpFrame(t, macRS1, macDP1, rs, netip.AddrPortFrom(lip, lport), resp), 1232, 7)...)
	checkDatagram(t, "response", out, 3, vp, client, resp)
	if n := td.sum(CtrLBFragFirst); n != 2 {
		t.Errorf("lb_frag_first %d, want 2", n)
	}
	if n := td.sum(CtrLBFragForwarded); n != 4 {
		t.Errorf("lb_frag_forwarded %d, want 4", n)
	}
	if conns, _ := td.d.Conns(nil); len(conns) != 1 {
		t.Errorf("%d connections", len(conns))
	}
}

func (td *testDP) counters() [NumCounters]uint64 {
	var s [NumCounters]uint64
	for _, w := range td.d.workers {
		c, _ := w.Stats()
		for i := range s {
			s[i] += c[i]
		}
	}
	return s
}

// parseUDPPorts returns the source port of the first fragment's UDP header.
func parseUDPPorts(t testing.TB, frames [][]byte) uint16 {
	for _, f := range frames {
		if fi := parseFrag(t, f); fi.off == 0 {
			return binary.BigEndian.Uint16(fi.payload)
		}
	}
	t.Fatal("no first fragment")
	return 0
}

// TestFragOutOfOrder: the last fragment first, then the middle one: both
// are held; the first releases them, and the datagram arrives whole.
func TestFragOutOfOrder(t *testing.T) {
	td := newLBTestDP(t, 1)
	td.service(ipvs.UDP, vip, 9000, "rr", lip, netip.AddrPortFrom(rs1IP, 9001))
	client, vp := netip.AddrPortFrom(clientIP, 5354), netip.AddrPortFrom(vip, 9000)
	req := datagram(3000)
	frags := fragment(t, udpFrame(t, macClient, macDP0, client, vp, req), 1480, 0x99)
	if out := td.sendFrags(0, frags[2], frags[1]); len(out) != 0 || td.sum(CtrLBFragHeld) != 2 {
		t.Fatalf("later fragments first: %d out, lb_frag_held %d", len(out), td.sum(CtrLBFragHeld))
	}
	out := td.sendFrags(0, frags[0])
	lport := parseUDPPorts(t, out)
	checkDatagram(t, "request", out, 3, netip.AddrPortFrom(lip, lport), netip.AddrPortFrom(rs1IP, 9001), req)
	if td.sum(CtrLBFragReleased) != 2 || td.w.frag.held != 0 {
		t.Errorf("lb_frag_released %d, %d still held", td.sum(CtrLBFragReleased), td.w.frag.held)
	}
}

// TestFragHoldTimeout: a later fragment whose first never comes is
// dropped after fragHoldTimeout of the worker's clock, and counted.
func TestFragHoldTimeout(t *testing.T) {
	td := newLBTestDP(t, 1)
	td.service(ipvs.UDP, vip, 9000, "rr", lip, netip.AddrPortFrom(rs1IP, 9001))
	frags := fragment(t, udpFrame(t, macClient, macDP0, netip.AddrPortFrom(clientIP, 5355), netip.AddrPortFrom(vip, 9000), datagram(3000)), 1480, 0x77)
	if out := td.sendFrags(0, frags[1]); len(out) != 0 || td.w.frag.held != 1 {
		t.Fatalf("%d out, %d held", len(out), td.w.frag.held)
	}
	td.stepAll()
	if td.w.frag.held != 1 || td.sum(CtrDropLBFragTimeout) != 0 {
		t.Fatalf("dropped before its time: %d held", td.w.frag.held)
	}
	td.d.start = td.d.start.Add(-fragHoldTimeout) // the worker's clock moves on
	td.stepAll()
	if td.w.frag.held != 0 || td.sum(CtrDropLBFragTimeout) != 1 {
		t.Fatalf("after the timeout: %d held, drop_lb_frag_timeout %d", td.w.frag.held, td.sum(CtrDropLBFragTimeout))
	}
	// the first fragment, late, goes alone: the held one is gone
	if out := td.sendFrags(0, frags[0]); len(out) != 1 {
		t.Fatalf("%d out", len(out))
	}
}

// TestFragIPv6UDP: a UDP datagram in IPv6 fragments (fragment header),
// to the VIP and back.
func TestFragIPv6UDP(t *testing.T) {
	td := newLBTestDP(t, 1)
	td.service(ipvs.UDP, vip6, 9000, "rr", lip6, netip.AddrPortFrom(rs1IP6, 9001))
	client, vp, rs := netip.AddrPortFrom(clientIP6, 5353), netip.AddrPortFrom(vip6, 9000), netip.AddrPortFrom(rs1IP6, 9001)
	req := datagram(3000)
	out := td.sendFrags(0, fragment(t, udp6Frame(t, macClient, macDP0, client, vp, req), 1448, 0xdeadbeef)...)
	if len(out) != 3 {
		t.Fatalf("%d fragments out; counters %v", len(out), nonZero(td.counters()))
	}
	for _, f := range out {
		if fi := parseFrag(t, f); fi.src != lip6 || fi.dst != rs1IP6 || fi.id != 0xdeadbeef {
			t.Errorf("fragment %s -> %s id %x", fi.src, fi.dst, fi.id)
		}
	}
	lport := parseUDPPorts(t, out)
	checkDatagram(t, "request", out, 3, netip.AddrPortFrom(lip6, lport), rs, req)
	resp := datagram(1999)
	out = td.sendFrags(1, fragment(t, udp6Frame(t, macRS1, macDP1, rs, netip.AddrPortFrom(lip6, lport), resp), 1000, 5)...)
	checkDatagram(t, "response", out, 3, vp, client, resp)
}

// TestFragDR: a fragmented TCP segment of a direct-routing connection:
// every fragment goes to the real server's MAC with its IP packet as the
// client sent it.
func TestFragDR(t *testing.T) {
	rs := netip.AddrPortFrom(rs1IP, 80)
	td, _ := drDP(t, 1, rs)
	client, vp := netip.AddrPortFrom(clientIP, 41100), netip.AddrPortFrom(vip, 80)
	td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, syn: true, seq: 1}), 1)
	in := fragment(t, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, seq: 2, ackn: 9, payload: datagram(2000)}), 1000, 0x55)
	// out of order: the second fragment first
	out := td.sendFrags(0, in[2], in[0], in[1])
	if len(out) != 3 {
		t.Fatalf("%d fragments out; counters %v", len(out), nonZero(td.counters()))
	}
	byOff := map[int][]byte{}
	for _, f := range out {
		fi := parseFrag(t, f)
		if !bytes.Equal(fi.dstMAC, macRS1) {
			t.Errorf("fragment at %d to %s", fi.off, fi.dstMAC)
		}
		byOff[fi.off] = f[header.EthernetMinSize:]
	}
	for _, f := range in {
		fi := parseFrag(t, f)
		if !bytes.Equal(byOff[fi.off], f[header.EthernetMinSize:]) {
			t.Errorf("fragment at %d changed", fi.off)
		}
	}
	d := decodeL4(t, reassemble(t, out))
	if d.src != client || d.dst != vp || len(d.tcp.Payload) != 2000 {
		t.Errorf("reassembled %s -> %s %d bytes", d.src, d.dst, len(d.tcp.Payload))
	}
}

// TestFragRepliesFollowOwner: a real server's fragmented answer lands on
// the worker that does not own the local port: the first fragment is
// handed to the owner, the later ones follow it there.
func TestFragRepliesFollowOwner(t *testing.T) {
	td := newLBTestDP(t, 2)
	td.service(ipvs.UDP, vip, 9000, "rr", lip, netip.AddrPortFrom(rs1IP, 9001))
	client, vp, rs := netip.AddrPortFrom(clientIP, 5400), netip.AddrPortFrom(vip, 9000), netip.AddrPortFrom(rs1IP, 9001)
	td.injectQ(0, 1, udpFrame(t, macClient, macDP0, client, vp, []byte("q")))
	td.stepAll()
	out := td.outAll(1)
	if len(out) != 1 {
		t.Fatalf("%d requests out", len(out))
	}
	lport := decodeL4(t, out[0]).src.Port()
	if td.d.steer.Owner(lport) != 1 {
		t.Fatalf("worker 1 picked port %d of worker %d", lport, td.d.steer.Owner(lport))
	}
	resp := datagram(3000)
	frags := fragment(t, udpFrame(t, macRS1, macDP1, rs, netip.AddrPortFrom(lip, lport), resp), 1480, 3)
	for _, f := range []int{1, 0, 2} { // one later fragment before the first
		td.injectQ(1, 0, frags[f])
	}
	settle(td)
	checkDatagram(t, "response", td.outAll(0), 3, vp, client, resp)
	c0, _ := td.d.workers[0].Stats()
	c1, _ := td.d.workers[1].Stats()
	if c0[CtrLBRedirectedOut] != 3 || c0[CtrLBFragFirst] != 0 || c1[CtrLBFragFirst] != 1 || c1[CtrLBFragForwarded] != 2 || c0[CtrLBFragHeld] != 1 {
		t.Errorf("worker 0: redirected %d held %d; worker 1: first %d forwarded %d", c0[CtrLBRedirectedOut], c0[CtrLBFragHeld], c1[CtrLBFragFirst], c1[CtrLBFragForwarded])
	}
}

// TestFragCacheEviction: a cache of one set: a fifth datagram evicts the
// oldest entry (counted); that datagram's later fragment is then held.
func TestFragCacheEviction(t *testing.T) {
	td := newLBTestDP(t, 1)
	td.service(ipvs.UDP, vip, 9000, "rr", lip, netip.AddrPortFrom(rs1IP, 9001))
	td.w.frag.init(1)
	var later [][]byte
	for i := 0; i <= fragWays; i++ {
		frags := fragment(t, udpFrame(t, macClient, macDP0, netip.AddrPortFrom(clientIP, 6000), netip.AddrPortFrom(vip, 9000), datagram(2000)), 1480, uint32(100+i))
		if out := td.sendFrags(0, frags[0]); len(out) != 1 {
			t.Fatalf("datagram %d: %d out", i, len(out))
		}
		td.d.start = td.d.start.Add(-1000) // distinct ages
		later = append(later, frags[1])
	}
	if td.sum(CtrLBFragEvicted) != 1 {
		t.Fatalf("lb_frag_evicted %d", td.sum(CtrLBFragEvicted))
	}
	if out := td.sendFrags(0, later[0]); len(out) != 0 || td.w.frag.held != 1 {
		t.Errorf("evicted datagram's fragment: %d out, %d held", len(out), td.w.frag.held)
	}
	if out := td.sendFrags(0, later[1:]...); len(out) != fragWays {
		t.Errorf("cached datagrams' fragments: %d out, want %d", len(out), fragWays)
	}
}

// TestFragUnsupported: fragments of a one-packet service are refused.
func TestFragUnsupported(t *testing.T) {
	td := newLBTestDP(t, 1)
	k := ipvs.ServiceKey{Proto: ipvs.UDP, Addr: vip, Port: 514}
	if err := td.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr", OnePacket: true}); err != nil {
		t.Fatal(err)
	}
	if err := td.d.AddDest(k, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs1IP, 514), Weight: 1, Fwd: ipvs.FwdFullNAT}); err != nil {
		t.Fatal(err)
	}
	if err := td.d.AddLAddr(k, ipvs.LAddr{Addr: lip}); err != nil {
		t.Fatal(err)
	}
	frags := fragment(t, udpFrame(t, macClient, macDP0, netip.AddrPortFrom(clientIP, 6001), netip.AddrPortFrom(vip, 514), datagram(2000)), 1480, 1)
	if out := td.sendFrags(0, frags[0]); len(out) != 0 || td.sum(CtrDropLBFragUnsupported) != 1 {
		t.Errorf("%d out, drop_lb_frag_unsupported %d", len(out), td.sum(CtrDropLBFragUnsupported))
	}
}

// TestFragAllocs: the fragment paths allocate nothing per packet: a
// first fragment (connection found, entry recorded), a later one
// forwarded from the cache, and a later one held, then released by
// fragService when its first has passed.
func TestFragAllocs(t *testing.T) {
	l := newLBLoop(t)
	l.service(ipvs.UDP, vip, 9000, "rr", lip, netip.AddrPortFrom(rs1IP, 9001))
	l.w.iterate() // the worker takes the new service table
	frags := fragment(t, udpFrame(t, macClient, macDP0, netip.AddrPortFrom(clientIP, 7000), netip.AddrPortFrom(vip, 9000), datagram(2000)), 1480, 9)
	for _, c := range []struct {
		name  string
		order []int
	}{{"in order", []int{0, 1}}, {"later fragment held", []int{1, 0}}} {
		run := func() {
			clear(l.w.frag.cache) // every datagram is new to the cache
			for _, i := range c.order {
				l.rx(t, 0, frags[i])
			}
			l.w.fragService()
			l.w.flushAll()
			if n := l.releaseAll(); n != 2 {
				t.Fatalf("%s: %d frames sent", c.name, n)
			}
		}
		for i := 0; i < 10; i++ {
			run()
		}
		if n := testing.AllocsPerRun(200, run); n != 0 {
			t.Errorf("%s: %v allocations", c.name, n)
		}
	}
	l.w.ctr.publish()
	if l.counter(CtrLBFragReleased) == 0 || l.counter(CtrLBFragForwarded) == 0 {
		t.Errorf("released %d forwarded %d", l.counter(CtrLBFragReleased), l.counter(CtrLBFragForwarded))
	}
}

// TestFragTunnel: tunnel (-i) real servers: every fragment of a client
// datagram is encapsulated as it came (the later ones as their first
// went, and with the same GUE source port), and an IPv6 segment behind
// hop-by-hop and destination options headers is encapsulated whole.
func TestFragTunnel(t *testing.T) {
	td, _ := tunDP(t, ipvs.UDP, vip, 9000, false, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs1IP, 9000), TunType: ipvs.TunGUE, TunPort: 6080})
	in := fragment(t, udpFrame(t, macClient, macDP0, netip.AddrPortFrom(clientIP, 5600), netip.AddrPortFrom(vip, 9000), datagram(3000)), 1400, 0x66)
	out := td.sendFrags(0, in[1], in[0], in[2])
	if len(out) != 3 {
		t.Fatalf("%d frames out; counters %v", len(out), nonZero(td.counters()))
	}
	var sport layers.UDPPort
	for i, f := range out {
		d := decodeTunnel(t, f)
		if d.udp == nil || d.dst != rs1IP || (i > 0 && d.udp.SrcPort != sport) {
			t.Fatalf("frame %d: to %s, outer UDP %v", i, d.dst, d.udp)
		}
		sport = d.udp.SrcPort
		found := false
		for _, x := range in {
			found = found || bytes.Equal(d.inner, x[header.EthernetMinSize:])
		}
		if !found {
			t.Errorf("frame %d: inner packet is none of the fragments sent", i)
		}
	}
	td6, _ := tunDP(t, ipvs.TCP, vip6, 80, false, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs1IP6, 80), TunType: ipvs.TunIPIP})
	syn := withHopByHop(withExt6(tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP6, 5601), dst: netip.AddrPortFrom(vip6, 80), smac: macClient, dmac: macDP0, syn: true}), 60, [6]byte{1, 4}))
	out = td6.sendFrags(0, syn)
	if len(out) != 1 {
		t.Fatalf("%d frames out", len(out))
	}
	if d := decodeTunnel(t, out[0]); d.dst != rs1IP6 || !bytes.Equal(d.inner, syn[header.EthernetMinSize:]) {
		t.Errorf("to %s, inner % x", d.dst, d.inner)
	}
}

// BenchmarkFragLater: one later fragment of a known datagram per op,
// forwarded from the fragment cache (FullNAT, IPv4), through the whole
// pipeline (L2, L3, IPVS, transmit).
func BenchmarkFragLater(b *testing.B) {
	l := newLBLoop(b)
	l.service(ipvs.UDP, vip, 9000, "rr", lip, netip.AddrPortFrom(rs1IP, 9001))
	l.w.iterate()
	frags := fragment(b, udpFrame(b, macClient, macDP0, netip.AddrPortFrom(clientIP, 7001), netip.AddrPortFrom(vip, 9000), datagram(1600)), 1480, 9)
	l.rx(b, 0, frags[0])
	l.w.flushAll()
	l.releaseAll()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		l.rx(b, 0, frags[1])
		l.w.flushAll()
		l.releaseAll()
	}
}

// BenchmarkFragFirst: the first fragment of a datagram of an established
// UDP connection per op (lookup, translation, cache entry).
func BenchmarkFragFirst(b *testing.B) {
	l := newLBLoop(b)
	l.service(ipvs.UDP, vip, 9000, "rr", lip, netip.AddrPortFrom(rs1IP, 9001))
	l.w.iterate()
	frags := fragment(b, udpFrame(b, macClient, macDP0, netip.AddrPortFrom(clientIP, 7002), netip.AddrPortFrom(vip, 9000), datagram(1600)), 1480, 9)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		l.rx(b, 0, frags[0])
		l.w.flushAll()
		l.releaseAll()
	}
}

// TestFragMasq: a client's fragmented datagram to a NAT (-m) service:
// every fragment reaches the real server with the destination rewritten
// and the client's own source; the reassembled datagram checks.
func TestFragMasq(t *testing.T) {
	rs := netip.AddrPortFrom(rs1IP, 9001)
	td, _ := masqDP(t, 1, ipvs.UDP, vip, rs)
	client := netip.AddrPortFrom(clientIP, 5700)
	req := datagram(3000)
	out := td.sendFrags(0, fragment(t, udpFrame(t, macClient, macDP0, client, netip.AddrPortFrom(vip, 80), req), 1480, 0x31)...)
	checkDatagram(t, "request", out, 3, client, rs, req)
	if td.sum(CtrLBFragForwarded) != 2 {
		t.Errorf("lb_frag_forwarded %d", td.sum(CtrLBFragForwarded))
	}
}
