package dataplane

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
	"github.com/gvs-lb/gvs/header"
)

// The allocation tests and benchmarks drive the worker's per-packet path
// directly: take a buffer from the ingress queue's pool, copy a frame in
// (what a copying driver does), Worker.input, Worker.flushAll, and take the
// transmitted buffers back from the egress queue. Nothing else runs, so
// any allocation is the pipeline's.
//
// The transmit side is sinkQueue rather than mem's Loop mode: Loop mode
// allocates by itself (its RxBurst reslices q.loop[1:], so every packet
// that goes round costs a slot of capacity and append reallocates), which
// would hide the pipeline's own figure.

// sinkQueue is a mem queue whose transmissions stay in a fixed-capacity
// slice for the test to take back. Like every driver it adopts buffers of
// another queue's pool into its own (port.Adopt).
type sinkQueue struct {
	*mem.Queue
	out []*pktbuf.Buf
}

func (q *sinkQueue) TxBurst(bufs []*pktbuf.Buf) int {
	for i, b := range bufs {
		if b = port.Adopt(q.Pool(), b); b != nil {
			q.out = append(q.out, b)
		}
		bufs[i] = nil
	}
	return len(bufs)
}

// release frees what was transmitted and returns how many frames that was.
func (q *sinkQueue) release() int {
	n := len(q.out)
	for _, b := range q.out {
		b.Free()
	}
	clear(q.out)
	q.out = q.out[:0]
	return n
}

// loopDP is a testDP whose worker transmits into sinkQueues.
type loopDP struct {
	*testDP
	sinks []*sinkQueue
}

// newLoopDP builds the test dataplane with the rs1 next hops resolved
// statically, as a router with a warm neighbour table.
func newLoopDP(tb testing.TB) *loopDP {
	td := newTestDP(tb)
	for _, n := range []struct {
		a   netip.Addr
		dev string
	}{{rs1IP, "dp1"}, {rs1IP6, "dp1"}} {
		if err := td.d.AddNeigh(n.a, header.MAC(macRS1), n.dev); err != nil {
			tb.Fatal(err)
		}
	}
	l := &loopDP{testDP: td}
	for p, mp := range td.ports {
		s := &sinkQueue{Queue: mp.MemQueue(0), out: make([]*pktbuf.Buf, 0, 2*txBufSize)}
		td.w.queues[p] = s
		l.sinks = append(l.sinks, s)
	}
	td.w.iterate() // load the snapshot and the neighbour table
	return l
}

// rx hands frame to the worker as if received on port in.
func (l *loopDP) rx(tb testing.TB, in int, frame []byte) {
	b := l.ports[in].MemQueue(0).Alloc()
	if b == nil || !b.CopyFrom(frame) {
		tb.Fatal("rx: no buffer")
	}
	b.Port = uint16(in)
	l.w.input(b)
}

// releaseAll frees every transmitted frame and returns how many there were.
func (l *loopDP) releaseAll() int {
	n := 0
	for _, s := range l.sinks {
		n += s.release()
	}
	return n
}

func (l *loopDP) checkPools(tb testing.TB) {
	tb.Helper()
	for i, p := range l.ports {
		if pool := p.MemQueue(0).Pool(); pool.Free() != pool.Size() {
			tb.Errorf("port %d: %d of %d buffers free", i, pool.Free(), pool.Size())
		}
	}
}

func echo6(t testing.TB, smac, dmac net.HardwareAddr, src, dst netip.Addr, payload []byte) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: ipOf(src), DstIP: ipOf(dst)}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
	ic.SetNetworkLayerForChecksum(ip)
	return serialize(t, &layers.Ethernet{SrcMAC: smac, DstMAC: dmac, EthernetType: layers.EthernetTypeIPv6}, ip, ic,
		&layers.ICMPv6Echo{Identifier: 0x4242, SeqNumber: 1}, gopacket.Payload(payload))
}

func udp6(t testing.TB, smac, dmac net.HardwareAddr, src, dst netip.Addr, hops uint8, payload []byte) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: hops, NextHeader: layers.IPProtocolUDP, SrcIP: ipOf(src), DstIP: ipOf(dst)}
	u := &layers.UDP{SrcPort: 40000, DstPort: 9999}
	u.SetNetworkLayerForChecksum(ip)
	return serialize(t, &layers.Ethernet{SrcMAC: smac, DstMAC: dmac, EthernetType: layers.EthernetTypeIPv6}, ip, u,
		gopacket.Payload(payload))
}

// hotPath is one packet path: a frame received on port in must leave on
// port out, counted by ctr; check looks at the transmitted frame.
type hotPath struct {
	name    string
	in, out int
	frame   []byte
	ctr     Counter
	check   func(p gopacket.Packet) bool
}

func hotPaths(tb testing.TB) []hotPath {
	payload := make([]byte, 56) // what ping sends
	for i := range payload {
		payload[i] = byte(i)
	}
	return []hotPath{
		{"EchoIPv4", 0, 0, echo4(tb, macClient, macDP0, clientIP, lbIP, 64, payload), CtrEchoReplied,
			func(p gopacket.Packet) bool {
				ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
				return ok && ic.TypeCode.Type() == layers.ICMPv4TypeEchoReply
			}},
		{"EchoIPv6", 0, 0, echo6(tb, macClient, macDP0, clientIP6, lbIP6, payload), CtrEchoReplied,
			func(p gopacket.Packet) bool {
				ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
				return ok && ic.TypeCode.Type() == layers.ICMPv6TypeEchoReply
			}},
		{"ARPReply", 0, 0, arpRequest(tb, macClient, clientIP, lbIP), CtrARPReplied,
			func(p gopacket.Packet) bool {
				a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
				return ok && a.Operation == layers.ARPReply && net.HardwareAddr(a.SourceHwAddress).String() == macDP0.String()
			}},
		{"ForwardIPv4", 0, 1, udp4(tb, macClient, macDP0, clientIP, rs1IP, 64, payload), CtrForwarded,
			func(p gopacket.Packet) bool {
				eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
				ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
				return ok && ip.TTL == 63 && eth.DstMAC.String() == macRS1.String() && eth.SrcMAC.String() == macDP1.String()
			}},
		{"ForwardIPv6", 0, 1, udp6(tb, macClient, macDP0, clientIP6, rs1IP6, 64, payload), CtrForwarded,
			func(p gopacket.Packet) bool {
				eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
				ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
				return ok && ip.HopLimit == 63 && eth.DstMAC.String() == macRS1.String()
			}},
	}
}

// TestHotPathsAllocs asserts that the per-packet path allocates nothing,
// once the worker is warm, for each hot path.
func TestHotPathsAllocs(t *testing.T) {
	for _, hp := range hotPaths(t) {
		t.Run(hp.name, func(t *testing.T) {
			l := newLoopDP(t)
			// First make sure the packet takes the path under test.
			l.rx(t, hp.in, hp.frame)
			l.w.flushAll()
			sink := l.sinks[hp.out]
			if len(sink.out) != 1 {
				t.Fatalf("%d frames on port %d, want 1", len(sink.out), hp.out)
			}
			p := decode(t, sink.out[0].Bytes())
			if !hp.check(p) {
				t.Fatalf("unexpected output %v", p)
			}
			if n := l.releaseAll(); n != 1 {
				t.Fatalf("%d frames transmitted, want 1", n)
			}
			sent := 0
			run := func() {
				l.rx(t, hp.in, hp.frame)
				l.w.flushAll()
				sent += l.releaseAll()
			}
			for i := 0; i < 100; i++ { // warm up: map buckets, slices
				run()
			}
			l.w.ctr.publish() // the loop does this once per iteration
			before := l.counter(hp.ctr)
			sent = 0
			const runs = 1000
			allocs := testing.AllocsPerRun(runs, run)
			l.w.ctr.publish()
			// AllocsPerRun runs the function once more before measuring.
			if got := l.counter(hp.ctr) - before; got != runs+1 || sent != runs+1 {
				t.Fatalf("%s counted %d, %d frames sent, for %d packets", hp.ctr, got, sent, runs+1)
			}
			t.Logf("%s: %v allocations per packet", hp.name, allocs)
			if allocs != 0 {
				t.Errorf("%s: %v allocations per packet, want 0", hp.name, allocs)
			}
			l.checkPools(t)
		})
	}
}
