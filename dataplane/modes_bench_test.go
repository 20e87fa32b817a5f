package dataplane

import (
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/ipvs"
)

// burst sends n frames (frame() each) through worker 0 as received on
// port, flushes, and returns how many left (the sinkQueues took them).
func (l *loopDP) burst(port, n int, frame func() []byte) int {
	q := l.ports[port].MemQueue(0)
	for i := range n {
		l.w.rx[i] = q.Alloc()
		l.w.rx[i].CopyFrom(frame())
	}
	l.w.inputBurst(port, n) // as the worker loop hands a received burst on
	l.w.flushAll()
	return l.releaseAll()
}

// benchBursts runs b.N copies of frame through worker 0 in bursts of
// benchBurst, as received on port, and reports the cost per packet;
// every packet must leave.
func benchBursts(b *testing.B, l *loopDP, port int, frame []byte) {
	same := func() []byte { return frame }
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(benchBurst, b.N-done)
		if l.burst(port, n, same) != n {
			b.Fatal("a packet was not sent")
		}
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
}

// benchCounted runs b.N frames (next() each) through worker 0 in bursts
// of benchBurst, as received on port, and reports the cost per packet;
// ctr must grow by one and a frame leave for every packet.
func benchCounted(b *testing.B, l *loopDP, port int, next func() []byte, ctr Counter) {
	l.w.ctr.publish()
	before := l.counter(ctr)
	sent := 0
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(benchBurst, b.N-done)
		sent += l.burst(port, n, next)
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
	l.w.ctr.publish()
	if got := l.counter(ctr) - before; got != uint64(b.N) || sent != b.N {
		b.Fatalf("%s counted %d, %d frames sent, for %d packets", ctr, got, sent, b.N)
	}
}

// BenchmarkModes: the per-packet cost of an established connection's
// packet in each forwarding mode, on the mem driver, one worker, 64-byte
// TCP payloads (docs/benchmarks.md, "Forwarding modes"). in: client →
// server; out: server → client (direct routing and tunnels have none).
func BenchmarkModes(b *testing.B) {
	payload := make([]byte, 64)
	client := netip.AddrPortFrom(clientIP, 42000)
	add := func(b *testing.B, l *lbLoop, port uint16, d ipvs.DestSpec) netip.AddrPort {
		k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: port}
		if err := l.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr"}); err != nil {
			b.Fatal(err)
		}
		if err := l.d.AddDest(k, d); err != nil {
			b.Fatal(err)
		}
		l.w.iterate()
		return netip.AddrPortFrom(vip, port)
	}
	type frames struct{ in, out []byte }
	cases := []struct {
		name  string
		setup func(b *testing.B, l *lbLoop) frames
	}{
		{"fullnat", func(b *testing.B, l *lbLoop) frames {
			in, out := l.establish(b)
			return frames{in, out}
		}},
		{"masq", func(b *testing.B, l *lbLoop) frames {
			rs := netip.AddrPortFrom(rs1IP, 8082)
			vp := add(b, l, 82, ipvs.DestSpec{Addr: rs, Weight: 1, Fwd: ipvs.FwdMasq})
			l.pass(b, 0, 1, tcpFrame(b, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, syn: true, seq: 1}))
			l.pass(b, 1, 0, tcpFrame(b, tcpSeg{src: rs, dst: client, smac: macRS1, dmac: macDP1, syn: true, ack: true, ackn: 2}))
			return frames{
				tcpFrame(b, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 2, ackn: 1, payload: payload}),
				tcpFrame(b, tcpSeg{src: rs, dst: client, smac: macRS1, dmac: macDP1, ack: true, psh: true, seq: 1, ackn: 66, payload: payload})}
		}},
		{"dr", func(b *testing.B, l *lbLoop) frames {
			vp := add(b, l, 83, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs1IP, 83), Weight: 1, Fwd: ipvs.FwdRoute})
			l.pass(b, 0, 1, tcpFrame(b, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, syn: true, seq: 1}))
			return frames{in: tcpFrame(b, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 2, ackn: 1, payload: payload})}
		}},
		{"tunnel-ipip", func(b *testing.B, l *lbLoop) frames {
			vp := add(b, l, 84, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs1IP, 84), Weight: 1, Fwd: ipvs.FwdTunnel, TunType: ipvs.TunIPIP})
			l.pass(b, 0, 1, tcpFrame(b, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, syn: true, seq: 1}))
			return frames{in: tcpFrame(b, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 2, ackn: 1, payload: payload})}
		}},
		{"snat", func(b *testing.B, l *lbLoop) frames {
			if err := l.d.AddAddr(netip.MustParsePrefix("10.1.0.200/32"), "dp0"); err != nil {
				b.Fatal(err)
			}
			m, _ := ipvs.ParseMatch("proto=tcp,src-range=10.2.0.0-10.2.0.255")
			k := ipvs.ServiceKey{Proto: ipvs.TCP, Match: m.String()}
			if err := l.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr"}); err != nil {
				b.Fatal(err)
			}
			if err := l.d.AddDest(k, ipvs.DestSpec{Addr: netip.MustParseAddrPort("10.1.0.200:0"), Weight: 1, Fwd: ipvs.FwdSNAT}); err != nil {
				b.Fatal(err)
			}
			l.w.iterate()
			inside, peer := netip.AddrPortFrom(rs1IP, 40000), netip.AddrPortFrom(clientIP, 80)
			syn := decodeL4(b, l.pass(b, 1, 0, tcpFrame(b, tcpSeg{src: inside, dst: peer, smac: macRS1, dmac: macDP1, syn: true, seq: 1})))
			// "in" is the inside host's packet out, "out" the peer's answer
			return frames{
				tcpFrame(b, tcpSeg{src: inside, dst: peer, smac: macRS1, dmac: macDP1, ack: true, psh: true, seq: 2, ackn: 1, payload: payload}),
				tcpFrame(b, tcpSeg{src: peer, dst: syn.src, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 1, ackn: 66, payload: payload})}
		}},
	}
	for _, c := range cases {
		for _, dir := range []string{"in", "out"} {
			b.Run(c.name+"-"+dir, func(b *testing.B) {
				l := newLBLoop(b)
				f := c.setup(b, l)
				frame, port := f.in, 0
				if c.name == "snat" {
					port = 1 // the inside hosts are behind dp1
				}
				if dir == "out" {
					frame, port = f.out, 1-port
				}
				if frame == nil {
					b.Skip("no packets this way: the real server answers the client directly")
				}
				benchBursts(b, l.loopDP, port, frame)
			})
		}
	}
}
