package dataplane

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/port/mem"
	"github.com/gvs-lb/gvs/header"
)

// masterLearn does what the master does with queued learn events, then
// publishes at once: the tests step the loop and do not wait for the
// publication gap.
func (d *Dataplane) masterLearn() {
	d.masterEvents()
	d.neigh.mu.Lock()
	if d.neigh.dirty {
		d.neigh.publishLocked()
	}
	d.neigh.mu.Unlock()
}

// masterEvents applies the queued learn events as the master's loop does.
func (d *Dataplane) masterEvents() {
	for {
		select {
		case l := <-d.needCh:
			d.neighEvents(l)
		case l := <-d.learnCh:
			d.neighEvents(l)
		default:
			return
		}
	}
}

func nthAddr4(base netip.Addr, i int) netip.Addr {
	b := base.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func nthAddr6(base netip.Addr, i int) netip.Addr {
	b := base.As16()
	b[12], b[13], b[14], b[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	return netip.AddrFrom16(b)
}

func nthMAC(i int) header.MAC {
	return header.MAC{0x02, 0xaa, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
}

func TestNeighLearnClasses(t *testing.T) {
	n := newNeighbours(time.Second, 4, time.Now().UnixNano)
	base := netip.MustParseAddr("10.9.0.0")
	learn := func(i int, c neighClass, mac header.MAC) learnResult {
		return n.learn(neighLearn{addr: nthAddr4(base, i), mac: mac, iface: 1, class: c}, 0)
	}
	has := func(i int) bool { _, ok := n.m[nthAddr4(base, i)]; return ok }
	if r := learn(0, neighUpdate, nthMAC(0)); r != learnNothing || has(0) {
		t.Fatalf("an update created an entry (%d)", r)
	}
	for i := range 4 {
		if r := learn(i, neighUnsolicited, nthMAC(i)); r != learnChanged {
			t.Fatalf("unsolicited %d below the bound: %d", i, r)
		}
	}
	if r := learn(4, neighUnsolicited, nthMAC(4)); r != learnRefused || has(4) {
		t.Fatalf("unsolicited learn at the bound: %d", r)
	}
	// static entries do not count, on a full interface or otherwise
	n.addStatic(nthAddr4(base, 100), nthMAC(100), 1)
	if n.dynamicOn(1) != 4 || !n.isFull(1) || n.isFull(2) {
		t.Fatalf("dynamic %d, full %v/%v", n.dynamicOn(1), n.isFull(1), n.isFull(2))
	}
	// a needed answer about an unsolicited entry promotes it: no longer evictable
	if r := learn(1, neighNeeded, nthMAC(1)); r != learnNothing {
		t.Fatalf("promotion: %d", r)
	}
	// needed learns evict the oldest unsolicited entries: 0, 2, 3 (1 was promoted)
	for k, gone := range []int{0, 2, 3} {
		if r := learn(10+k, neighNeeded, nthMAC(10+k)); r != learnEvicted || has(gone) || !has(10+k) {
			t.Fatalf("needed learn %d: %d, evicted %d: %v", 10+k, r, gone, !has(gone))
		}
	}
	if r := learn(20, neighNeeded, nthMAC(20)); r != learnRefused || has(20) {
		t.Fatalf("needed learn with nothing evictable: %d", r)
	}
	// a changed MAC replaces the entry without counting twice
	if r := learn(1, neighUnsolicited, nthMAC(99)); r != learnChanged || n.m[nthAddr4(base, 1)].mac != nthMAC(99) || n.dynamicOn(1) != 4 {
		t.Fatalf("MAC change: %d, dynamic %d", r, n.dynamicOn(1))
	}
	if !has(100) || !n.m[nthAddr4(base, 100)].static {
		t.Fatal("static entry lost")
	}
	// expiry frees room for unsolicited entries again
	if got := n.expire(int64(2*time.Second + neighProbeGrace)); got != 4 {
		t.Fatalf("expired %d, want the 4 dynamic entries", got)
	}
	if n.dynamicOn(1) != 0 {
		t.Fatalf("dynamic %d after expiry", n.dynamicOn(1))
	}
	n.mu.Lock()
	n.publishLocked()
	n.mu.Unlock()
	if n.isFull(1) {
		t.Fatal("still full after expiry")
	}
	if r := learn(5, neighUnsolicited, nthMAC(5)); r != learnChanged {
		t.Fatalf("unsolicited after expiry: %d", r)
	}
}

// The eviction queue stays proportional to the live unsolicited entries
// however often entries churn.
func TestNeighEvictionQueueBounded(t *testing.T) {
	n := newNeighbours(time.Second, 64, time.Now().UnixNano)
	base := netip.MustParseAddr("10.9.0.0")
	for round := range 200 {
		for i := range 64 {
			n.learn(neighLearn{addr: nthAddr4(base, i), mac: nthMAC(round*64 + i), iface: 1, class: neighUnsolicited}, 0)
		}
	}
	s := &n.ifs[1]
	if s.dynamic != 64 || s.low != 64 || len(s.fifo)-s.head > 2*s.low+64 {
		t.Fatalf("dynamic %d low %d queue %d", s.dynamic, s.low, len(s.fifo)-s.head)
	}
}

func TestSolicitations(t *testing.T) {
	n := newNeighbours(time.Second, 0, time.Now().UnixNano)
	a, b := netip.MustParseAddr("10.2.0.11"), netip.MustParseAddr("fd00:2::11")
	if n.solicit.has(a, 0) {
		t.Fatal("never solicited")
	}
	n.solicit.mark(a, 100)
	n.solicit.mark(b, 100)
	if !n.solicit.has(a, 100+int64(neighPendingMaxAge)) || !n.solicit.has(b, 200) {
		t.Fatal("solicitation not remembered")
	}
	if n.solicit.has(a, 101+int64(neighPendingMaxAge)) {
		t.Fatal("solicitation remembered past neighPendingMaxAge")
	}
	if n.solicit.has(netip.MustParseAddr("10.2.0.12"), 100) {
		t.Fatal("another address counted as solicited")
	}
	// thousands of other solicitations may push a out, never make a stranger solicited
	for i := range 2 * solicitSlots {
		n.solicit.mark(nthAddr4(netip.MustParseAddr("10.64.0.0"), i), 200)
	}
	for i := range 1000 {
		if n.solicit.has(nthAddr4(netip.MustParseAddr("10.80.0.0"), i), 200) {
			t.Fatalf("stranger %d counted as solicited", i)
		}
	}
}

// Unsolicited ARP replies and NAs never create entries; they update
// existing ones.
func TestNeighUnsolicitedAnswersIgnored(t *testing.T) {
	td := newTestDP(t)
	reply := func(mac net.HardwareAddr, sip netip.Addr) []byte {
		return serialize(t,
			&layers.Ethernet{SrcMAC: mac, DstMAC: macDP0, EthernetType: layers.EthernetTypeARP},
			&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
				Operation: layers.ARPReply, SourceHwAddress: mac, SourceProtAddress: ipOf(sip),
				DstHwAddress: macDP0, DstProtAddress: ipOf(lbIP)})
	}
	td.inject(0, reply(macClient, clientIP))
	td.inject(0, ndAdvert(t, macClient, clientIP6, lbIP6))
	td.step()
	if nb := td.d.Neighbours(); len(nb) != 0 {
		t.Fatalf("unsolicited answers created entries: %v", nb)
	}
	if got := td.counter(CtrDropNeighUnsolicited); got != 2 {
		t.Fatalf("drop_neigh_unsolicited = %d, want 2", got)
	}
	// a request creates the entry; a later unsolicited reply with a new MAC updates it
	td.inject(0, arpRequest(t, macClient, clientIP, lbIP))
	td.step()
	td.out(0)
	moved := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x03}
	td.inject(0, reply(moved, clientIP))
	td.step()
	if nb := td.d.Neighbours(); len(nb) != 1 || nb[0].MAC != header.MAC(moved) {
		t.Fatalf("neighbours = %v, want %s at %s", nb, clientIP, moved)
	}
}

// ndAdvert builds a solicited NA from target to the dataplane address dst.
func ndAdvert(t testing.TB, smac net.HardwareAddr, target, dst netip.Addr) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: ipOf(target), DstIP: ipOf(dst)}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)}
	ic.SetNetworkLayerForChecksum(ip)
	na := &layers.ICMPv6NeighborAdvertisement{Flags: 0x60, TargetAddress: ipOf(target),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: smac}}}
	return serialize(t, &layers.Ethernet{SrcMAC: smac, DstMAC: macDP0, EthernetType: layers.EthernetTypeIPv6}, ip, ic, na)
}

// fakeClock drives the neighbour table's publication gaps in the flood test,
// so when the master publishes is a function of the steps, not of how fast
// the machine runs them.
type fakeClock struct{ now int64 }

func (c *fakeClock) read() int64 { return c.now }

const (
	floodSources = 100000
	floodNet4    = "10.64.0.0/14"
	floodNet6    = "fd00:64::/64"
)

var (
	floodLB4   = netip.MustParseAddr("10.64.0.1")
	floodLB6   = netip.MustParseAddr("fd00:64::1")
	floodSrv4  = netip.MustParseAddr("10.64.0.50")
	floodSrv6  = netip.MustParseAddr("fd00:64::50")
	floodBase4 = netip.MustParseAddr("10.65.0.0")
	floodBase6 = netip.MustParseAddr("fd00:64::1:0:0")
	macSrv     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x50}
)

// newFloodDP is newTestDP with dp0 on large connected subnets (10.64.0.0/14,
// fd00:64::/64) for the spoofed sources.
func newFloodDP(t testing.TB, maxEntries int) *testDP {
	td := newTestDP(t)
	td.d.neigh.max = maxEntries
	for _, p := range []string{"10.64.0.1/14", "fd00:64::1/64"} {
		if err := td.d.AddAddr(netip.MustParsePrefix(p), "dp0"); err != nil {
			t.Fatal(err)
		}
	}
	return td
}

// floodFrame is spoofed source i: an ARP request for the dataplane's
// address (even i) or an NS for it (odd i), each from its own address and MAC.
func floodFrame(t testing.TB, i int) []byte {
	mac := nthMAC(i)
	if i%2 == 0 {
		return arpRequest(t, net.HardwareAddr(mac[:]), nthAddr4(floodBase4, i), floodLB4)
	}
	return ndSolicit(t, net.HardwareAddr(mac[:]), nthAddr6(floodBase6, i), floodLB6)
}

// TestNeighFloodBounded: ARP requests and NS from 100k spoofed sources on a
// connected subnet, through the worker and the master's learn handling. The
// interface's table stays at its bound, every refused learn is counted, the
// flood is still answered, and a forwarded packet that needs ARP (and one
// that needs ND) towards a real server on the flooded segment goes out
// during the flood.
func TestNeighFloodBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("100k-source flood")
	}
	td := newFloodDP(t, DefaultNeighMaxEntries)
	clk := &fakeClock{now: td.d.clock()}
	td.d.neigh.clock = clk.read
	const dp0 = 1 // interface index of port dp0
	var arpReplies, naReplies, forwarded4, forwarded6 int
	var firstARP, firstNA []byte
	legitAt := floodSources / 2
	legitOutAt := -1
	collect := func(i int) {
		for _, f := range td.out(0) {
			switch et := uint16(f[12])<<8 | uint16(f[13]); {
			case et == header.EtherTypeARP && f[21] == 2:
				arpReplies++
				if firstARP == nil {
					firstARP = f
				}
			case et == header.EtherTypeARP:
				// our request for the server
			case et == header.EtherTypeIPv4:
				forwarded4++
				checkForwarded(t, f, floodSrv4)
			case et == header.EtherTypeIPv6 && f[14+6] == 58 && f[14+40] == 136:
				naReplies++
				if firstNA == nil {
					firstNA = f
				}
			case et == header.EtherTypeIPv6 && f[14+6] == 17:
				forwarded6++
				checkForwarded(t, f, floodSrv6)
			}
		}
		if legitOutAt < 0 && forwarded4 == 1 && forwarded6 == 1 {
			legitOutAt = i
		}
	}
	// one master loop: worker iteration, the master's batch, its publication
	iterate := func(i int) {
		td.w.iterate()
		td.d.masterEvents()
		td.d.publishNeigh()
		clk.now += int64(100 * time.Microsecond)
		collect(i)
		if n := td.d.neigh.dynamicOn(dp0); n > DefaultNeighMaxEntries {
			t.Fatalf("after %d sources: %d dynamic entries on dp0, bound %d", i, n, DefaultNeighMaxEntries)
		}
	}
	for i := 0; i < floodSources; i++ {
		td.inject(0, floodFrame(t, i))
		if i == legitAt {
			// a client behind dp1 sends to real servers on the flooded segment
			td.inject(1, udp4(t, macRS1, macDP1, rs1IP, floodSrv4, 64, []byte("legit-4")))
			td.inject(1, udp6(t, macRS1, macDP1, rs1IP6, floodSrv6, 64, []byte("legit-6")))
			iterate(i)
			td.inject(0, arpReplyFrom(t, macSrv, floodSrv4, macDP0, floodLB4))
			td.inject(0, ndAdvert(t, macSrv, floodSrv6, floodLB6))
		}
		if i%benchBurst == benchBurst-1 {
			iterate(i)
		}
	}
	iterate(floodSources)
	td.d.masterLearn()
	td.w.iterate()
	collect(floodSources)

	if legitOutAt < 0 || legitOutAt >= floodSources {
		t.Fatalf("held packets not sent during the flood (forwarded v4 %d v6 %d)", forwarded4, forwarded6)
	}
	if forwarded4 != 1 || forwarded6 != 1 {
		t.Fatalf("forwarded v4 %d v6 %d, want 1 each", forwarded4, forwarded6)
	}
	// the table: exactly the bound, the servers among the entries
	nb := td.d.Neighbours()
	onDP0 := 0
	found := 0
	for _, e := range nb {
		if e.Iface == "dp0" {
			onDP0++
		}
		if (e.Addr == floodSrv4 || e.Addr == floodSrv6) && e.MAC == header.MAC(macSrv) {
			found++
		}
	}
	if onDP0 != DefaultNeighMaxEntries || found != 2 {
		t.Fatalf("dp0 holds %d entries (bound %d), servers found %d", onDP0, DefaultNeighMaxEntries, found)
	}
	// every source is accounted for: admitted (the bound, of which two were
	// evicted for the servers) or refused; none lost
	refused, evicted, lost := td.counter(CtrDropNeighLearnFull), td.counter(CtrNeighEvicted), td.counter(CtrDropNeighLearnLost)
	if evicted != 2 || lost != 0 || refused != floodSources-DefaultNeighMaxEntries {
		t.Fatalf("refused %d (want %d), evicted %d (want 2), lost %d", refused, floodSources-DefaultNeighMaxEntries, evicted, lost)
	}
	// the flood is answered as the RFCs ask
	if arpReplies != floodSources/2 || naReplies != floodSources/2 ||
		td.counter(CtrARPReplied) != floodSources/2 || td.counter(CtrNDReplied) != floodSources/2 {
		t.Fatalf("answered %d ARP, %d NS of %d each", arpReplies, naReplies, floodSources/2)
	}
	arp := decode(t, firstARP).Layer(layers.LayerTypeARP).(*layers.ARP)
	if arp.Operation != layers.ARPReply || !bytes.Equal(arp.SourceHwAddress, macDP0) ||
		!net.IP(arp.SourceProtAddress).Equal(ipOf(floodLB4)) || !net.IP(arp.DstProtAddress).Equal(ipOf(floodBase4)) {
		t.Errorf("first ARP reply %+v", arp)
	}
	na := decode(t, firstNA).Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if !na.TargetAddress.Equal(ipOf(floodLB6)) || !na.Solicited() {
		t.Errorf("first NA %+v", na)
	}
	t.Logf("refused %d, evicted %d, publications %d, held packets out %d sources after their answers",
		refused, evicted, td.d.neigh.version.Load(), legitOutAt-legitAt)
}

// TestNeighFloodRunningDataplane runs the dataplane's own goroutines (two
// workers, the master with its publication timer) under an ARP/ND flood on
// dp0, with a small bound. A packet forwarded by worker 1 needs ARP for a
// server on the flooded segment; the server's answer arrives on worker 0's
// queue, so only the shared solicitation filter makes it a needed learn.
// The test waits for events (frames, counters), never for fixed times.
func TestNeighFloodRunningDataplane(t *testing.T) {
	const (
		bound   = 256
		sources = 20000
	)
	td := fixture{Options: Options{Workers: 2, NeighMaxEntries: bound},
		addrs: []string{"10.64.0.1/14 dp0", "fd00:64::1/64 dp0", "10.2.0.1/24 dp1"}}.build(t)
	d, p0, p1 := td.d, td.ports[0], td.ports[1]
	frames := make([][]byte, sources)
	for i := range frames {
		frames[i] = floodFrame(t, i)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			d.Stop()
		}
	}()
	deadline := time.Now().Add(30 * time.Second) // a hung test, not a timing assertion
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s", what)
			}
			runtime.Gosched()
		}
	}
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		for i, f := range frames {
			for !p0.MemQueue(i % 2).Inject(f) {
				runtime.Gosched()
			}
		}
	}()
	var forwarded [][]byte
	sawRequest := false
	scan := func() {
		for q := range 2 {
			for _, f := range p0.MemQueue(q).Drain() {
				et := uint16(f[12])<<8 | uint16(f[13])
				switch {
				case et == header.EtherTypeARP && f[21] == 1 && netip.AddrFrom4([4]byte(f[38:42])) == floodSrv4:
					sawRequest = true
				case et == header.EtherTypeIPv4:
					forwarded = append(forwarded, f)
				}
			}
		}
	}
	waitFor("dp0 to fill", func() bool { return d.neigh.isFull(1) })
	// the flood fills the queues meanwhile: a refused inject is retried, as
	// a NIC's ring would be by the sender's retransmission
	inject := func(q *mem.Queue, f []byte) { waitFor("room in the queue", func() bool { return q.Inject(f) }) }
	inject(p1.MemQueue(1), udp4(t, macRS1, macDP1, rs1IP, floodSrv4, 64, []byte("legit-4")))
	waitFor("the ARP request for the server", func() bool { scan(); return sawRequest })
	inject(p0.MemQueue(0), arpReplyFrom(t, macSrv, floodSrv4, macDP0, floodLB4))
	waitFor("the held packet", func() bool { scan(); return len(forwarded) > 0 })
	<-floodDone
	rx := func() uint64 { return p0.Stats().RxPackets }
	waitFor("the flood to be received", func() bool { return rx() == sources+1 })
	d.Stop()
	stopped = true
	d.masterEvents() // what the stopped master left in its channels

	checkForwarded(t, forwarded[0], floodSrv4)
	if len(forwarded) != 1 {
		t.Errorf("%d frames forwarded, want 1", len(forwarded))
	}
	var refused, lost, evicted uint64
	for _, w := range d.workers {
		ctr, _ := w.Stats()
		refused += ctr[CtrDropNeighLearnFull]
		lost += ctr[CtrDropNeighLearnLost]
		evicted += ctr[CtrNeighEvicted]
	}
	dyn := d.neigh.dynamicOn(1)
	if dyn != bound || evicted != 1 {
		t.Fatalf("dp0 holds %d dynamic entries (bound %d), evicted %d", dyn, bound, evicted)
	}
	// every source was admitted (the bound, one evicted for the server), refused or lost
	if admitted := uint64(dyn - 1 + 1); refused+lost+admitted != sources {
		t.Fatalf("refused %d + lost %d + admitted %d != %d sources", refused, lost, admitted, sources)
	}
	t.Logf("refused %d, lost %d, evicted %d, publications %d", refused, lost, evicted, d.neigh.version.Load())
}

func arpReplyFrom(t testing.TB, smac net.HardwareAddr, sip netip.Addr, dmac net.HardwareAddr, dip netip.Addr) []byte {
	return serialize(t,
		&layers.Ethernet{SrcMAC: smac, DstMAC: dmac, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPReply, SourceHwAddress: smac, SourceProtAddress: ipOf(sip),
			DstHwAddress: dmac, DstProtAddress: ipOf(dip)})
}

// checkForwarded decodes a forwarded frame towards dst and checks its L2.
func checkForwarded(t testing.TB, f []byte, dst netip.Addr) {
	t.Helper()
	p := decode(t, f)
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	var gotDst net.IP
	var payload []byte
	if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		gotDst = ip.DstIP
	} else if ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		gotDst = ip.DstIP
	}
	if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		payload = u.Payload
	}
	if !bytes.Equal(eth.DstMAC, macSrv) || !bytes.Equal(eth.SrcMAC, macDP0) || !gotDst.Equal(ipOf(dst)) ||
		!bytes.HasPrefix(payload, []byte("legit-")) {
		t.Errorf("forwarded %s -> %s to %s payload %q", eth.SrcMAC, eth.DstMAC, gotDst, payload)
	}
}

// At the bound, a flood packet costs the worker no allocation and reaches
// the master only as a counter.
func TestNeighFloodAtBoundAllocs(t *testing.T) {
	l := newLoopDP(t)
	l.d.neigh.max = 16
	if err := l.d.AddAddr(netip.MustParsePrefix("10.64.0.1/14"), "dp0"); err != nil {
		t.Fatal(err)
	}
	frames := make([][]byte, 256)
	for i := range frames {
		frames[i] = floodFrame(t, 2*i)
	}
	l.w.iterate() // the new addresses
	for _, f := range frames[:32] {
		l.rx(t, 0, f)
	}
	l.d.masterLearn()
	l.w.iterate()
	l.releaseAll()
	if !l.d.neigh.isFull(1) {
		t.Fatal("dp0 not full")
	}
	i := 32
	allocs := testing.AllocsPerRun(200, func() {
		l.rx(t, 0, frames[i%len(frames)])
		i++
		l.w.flushAll()
		l.releaseAll()
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per flood packet at the bound", allocs)
	}
	l.w.ctr.publish()
	if len(l.d.learnCh) != 0 || l.counter(CtrDropNeighLearnFull) == 0 {
		t.Fatalf("%d events queued, %d refused", len(l.d.learnCh), l.counter(CtrDropNeighLearnFull))
	}
	n := l.d.neigh
	ev := neighLearn{addr: nthAddr4(floodBase4, 1), mac: nthMAC(1), iface: 1, class: neighUnsolicited}
	if a := testing.AllocsPerRun(100, func() { n.learn(ev, 0) }); a != 0 {
		t.Fatalf("%.1f allocations per refused learn at the master", a)
	}
}

// BenchmarkNeighMaster measures the master's side of an ARP/ND flood with
// dp0 at its bound (4096 entries): a refused learn, an eviction for a needed
// learn, one publication of the table, and a whole flood burst (32 spoofed
// ARP requests through the worker, the master's batch and publication).
func BenchmarkNeighMaster(b *testing.B) {
	fill := func(b *testing.B) *neighbours {
		n := newNeighbours(time.Minute, DefaultNeighMaxEntries, time.Now().UnixNano)
		for i := range DefaultNeighMaxEntries {
			n.learn(neighLearn{addr: nthAddr4(floodBase4, i), mac: nthMAC(i), iface: 1, class: neighUnsolicited}, 0)
		}
		return n
	}
	b.Run("refuse", func(b *testing.B) {
		n := fill(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if n.learn(neighLearn{addr: nthAddr4(floodBase4, 1<<20+i), mac: nthMAC(i), iface: 1, class: neighUnsolicited}, 0) != learnRefused {
				b.Fatal("not refused")
			}
			i++
		}
	})
	b.Run("evict", func(b *testing.B) {
		n := fill(b)
		b.ReportAllocs()
		i, round := 0, 0
		for b.Loop() {
			if i == DefaultNeighMaxEntries {
				b.StopTimer()
				n = fill(b)
				i = 0
				round++
				b.StartTimer()
			}
			if n.learn(neighLearn{addr: nthAddr4(floodBase4, 1<<20+i), mac: nthMAC(i), iface: 1, class: neighNeeded}, 0) != learnEvicted {
				b.Fatal("not evicted")
			}
			i++
		}
	})
	b.Run("publish", func(b *testing.B) {
		n := fill(b)
		b.ReportAllocs()
		for b.Loop() {
			n.mu.Lock()
			n.publishLocked()
			n.mu.Unlock()
		}
	})
	b.Run("flood-burst", func(b *testing.B) {
		td := newFloodDP(b, DefaultNeighMaxEntries)
		const nframes = 1 << 14
		frames := make([][]byte, nframes)
		for i := range frames {
			frames[i] = floodFrame(b, 2*i)
		}
		// fill dp0 to its bound with other sources
		for i := range DefaultNeighMaxEntries {
			td.d.neigh.learn(neighLearn{addr: nthAddr4(floodBase4, 1<<20+i), mac: nthMAC(i), iface: 1, class: neighUnsolicited}, 0)
		}
		td.d.masterLearn()
		var worst, total time.Duration
		k := 0
		b.ReportAllocs()
		for b.Loop() {
			for range benchBurst {
				td.inject(0, frames[k%nframes])
				k++
			}
			td.w.iterate()
			t0 := time.Now()
			td.d.masterEvents()
			td.d.publishNeigh()
			dt := time.Since(t0)
			worst, total = max(worst, dt), total+dt
			td.out(0)
		}
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "master-ns/burst")
		b.ReportMetric(float64(worst.Nanoseconds()), "worst-master-ns/burst")
		if n := td.d.neigh.dynamicOn(1); n != DefaultNeighMaxEntries {
			b.Fatalf("dp0 holds %d", n)
		}
	})
}
