package dataplane

import (
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/ipvs"
)

// benchBurst is the burst the pipeline benchmarks run in: 32, DPDK's
// usual one and the worker's default before it became 64 (kept, so that
// figures stay comparable across revisions; a larger burst only spreads
// the per-burst costs further).
const benchBurst = 32

// benchPath runs the hot path named name in bursts of 32 packets, as the
// worker loop does: receive a burst (buffer from the pool, frame copied in),
// process every packet, drain the tx buffers, and take the frames back from
// the egress queue. One op is one packet, so ns/op is ns per packet.
func benchPath(b *testing.B, name string) {
	var hp hotPath
	for _, h := range hotPaths(b) {
		if h.name == name {
			hp = h
		}
	}
	if hp.frame == nil {
		b.Fatalf("no hot path %s", name)
	}
	l := newLoopDP(b)
	benchCounted(b, l, hp.in, func() []byte { return hp.frame }, hp.ctr)
	l.checkPools(b)
}

func BenchmarkEchoIPv4(b *testing.B)    { benchPath(b, "EchoIPv4") }
func BenchmarkEchoIPv6(b *testing.B)    { benchPath(b, "EchoIPv6") }
func BenchmarkARPReply(b *testing.B)    { benchPath(b, "ARPReply") }
func BenchmarkForwardIPv4(b *testing.B) { benchPath(b, "ForwardIPv4") }
func BenchmarkForwardIPv6(b *testing.B) { benchPath(b, "ForwardIPv6") }

// BenchmarkSynProxyCookie: SYNs at a SYN-proxy service (-j enable), each
// answered in place with a cookie SYN-ACK (checksum check, option parse,
// SipHash cookie, SYN-ACK written, routed back), in bursts of 32 as the
// worker loop does; one op is one SYN. Next to BenchmarkFullNATEstablishedIn
// it tells what a SYN flood costs per packet against forwarding.
func BenchmarkSynProxyCookie(b *testing.B) {
	l := newLBLoop(b)
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 80}
	if err := l.d.EditService(ipvs.ServiceSpec{Key: k, Sched: "rr", SynProxy: true}); err != nil {
		b.Fatal(err)
	}
	l.w.iterate() // takes the new service table
	syn := tcpFrame(b, tcpSeg{src: l.client, dst: l.vipPort, smac: macClient, dmac: macDP0, syn: true, seq: 1, mss: 1460,
		opts: []layers.TCPOption{optSACKPerm, optTS(1, 0), nopOpt, optWS(7)}})
	l.w.ctr.publish()
	before := l.counter(CtrLBSynProxyCookies)
	sent := 0
	same := func() []byte { return syn }
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(benchBurst, b.N-done)
		sent += l.burst(0, n, same) // modes_bench_test.go
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
	l.w.ctr.publish()
	if got := l.counter(CtrLBSynProxyCookies) - before; got != uint64(b.N) || sent != b.N || l.w.sess.Len() != 0 {
		b.Fatalf("%d cookies, %d SYN-ACKs sent, %d connections for %d SYNs", got, sent, l.w.sess.Len(), b.N)
	}
	l.checkPools(b)
}

// BenchmarkHarness is the benchmarks' own cost per packet with no
// pipeline: a buffer taken from the port's pool, the frame copied in, the
// buffer queued for transmission on the other port unchanged, the tx
// burst flushed into the sink and the buffer given back, in bursts of 32
// as benchPath and benchLB run them. Subtracted from their ns/op it
// leaves what the pipeline costs (docs/benchmarks.md, "The mem
// pipeline").
func BenchmarkHarness(b *testing.B) {
	l := newLBLoop(b)
	var hp lbPath
	for _, p := range lbPaths(b, l) {
		if p.name == "established-in" {
			hp = p
		}
	}
	frame := hp.frame()
	var burst [benchBurst]*pktbuf.Buf
	sent := 0
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(benchBurst, b.N-done)
		l.received(burst[:n], hp.in, frame)
		for i := range n {
			l.w.enqueueTx(1-hp.in, burst[i])
			burst[i] = nil
		}
		l.w.flushAll()
		sent += l.releaseAll()
		done += n
	}
	b.StopTimer()
	if sent != b.N {
		b.Fatalf("%d frames sent for %d", sent, b.N)
	}
	l.checkPools(b)
}

// received fills bufs with copies of frame as received on port: buffers
// from the port's pool, as its receive burst hands them over.
func (l *loopDP) received(bufs []*pktbuf.Buf, port int, frame []byte) {
	q := l.ports[port].MemQueue(0)
	for i := range bufs {
		bufs[i] = q.Alloc()
		bufs[i].CopyFrom(frame)
		bufs[i].Port = uint16(port)
	}
}
