package dataplane

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
)

// lbLoop is the FullNAT test dataplane driven packet by packet, with the
// transmit side in sinkQueues (see alloc_test.go).
type lbLoop struct {
	*loopDP
	client, vipPort, rs netip.AddrPort
	lport               uint16
}

func newLBLoop(tb testing.TB) *lbLoop {
	td := newLBTestDP(tb, 1)
	l := &loopDP{testDP: td}
	for p, mp := range td.ports {
		s := &sinkQueue{Queue: mp.MemQueue(0), out: make([]*pktbuf.Buf, 0, 2*txBufSize)}
		td.w.queues[p] = s
		l.sinks = append(l.sinks, s)
	}
	td.w.iterate()
	return &lbLoop{loopDP: l, client: netip.AddrPortFrom(clientIP, 40000), vipPort: netip.AddrPortFrom(vip, 80),
		rs: netip.AddrPortFrom(rs1IP, 8080)}
}

// pass sends frame in on port in and returns the frame sent on port out.
func (l *lbLoop) pass(tb testing.TB, in, out int, frame []byte) []byte {
	l.rx(tb, in, frame)
	l.w.flushAll()
	s := l.sinks[out]
	if len(s.out) != 1 {
		tb.Fatalf("%d frames on port %d", len(s.out), out)
	}
	f := append([]byte(nil), s.out[0].Bytes()...)
	l.releaseAll()
	return f
}

// establish runs a handshake, lets the real server acknowledge it (which
// confirms the TOA: no more insertion) and returns the data frames of both
// directions of the now established connection.
func (l *lbLoop) establish(tb testing.TB) (in, out []byte) {
	syn := l.pass(tb, 0, 1, tcpFrame(tb, tcpSeg{src: l.client, dst: l.vipPort, smac: macClient, dmac: macDP0, syn: true, seq: 1}))
	l.lport = binary.BigEndian.Uint16(syn[14+20:])
	local := netip.AddrPortFrom(lip, l.lport)
	l.pass(tb, 1, 0, tcpFrame(tb, tcpSeg{src: l.rs, dst: local, smac: macRS1, dmac: macDP1, syn: true, ack: true, ackn: 2}))
	l.pass(tb, 0, 1, tcpFrame(tb, tcpSeg{src: l.client, dst: l.vipPort, smac: macClient, dmac: macDP0, ack: true, seq: 2, ackn: 1}))
	l.pass(tb, 1, 0, tcpFrame(tb, tcpSeg{src: l.rs, dst: local, smac: macRS1, dmac: macDP1, ack: true, seq: 1, ackn: 2}))
	payload := make([]byte, 64)
	in = tcpFrame(tb, tcpSeg{src: l.client, dst: l.vipPort, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 2, ackn: 1, payload: payload})
	out = tcpFrame(tb, tcpSeg{src: l.rs, dst: local, smac: macRS1, dmac: macDP1, ack: true, psh: true, seq: 1, ackn: 66, payload: payload})
	return in, out
}

// nextSYN turns syn (a client SYN frame) into the SYN of the next client
// port, fixing the TCP checksum incrementally.
func nextSYN(syn []byte) {
	tcp := header.TCP(syn[14+20:])
	old := tcp.SrcPort()
	nw := old + 1
	if nw < 1024 {
		nw = 1024
	}
	tcp.SetSrcPort(nw)
	tcp.SetChecksum(header.ChecksumUpdate16(tcp.Checksum(), old, nw))
}

func TestLBPathsAllocs(t *testing.T) {
	l := newLBLoop(t)
	in, out := l.establish(t)
	// a client's forged TOA, scrubbed on every segment
	forged := tcpFrame(t, tcpSeg{src: l.client, dst: l.vipPort, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 2, ackn: 1,
		opts: []layers.TCPOption{nopOpt, nopOpt, tsOpt, forgedTOA4}, payload: make([]byte, 64)})
	// a second connection the real server has not acknowledged yet: every
	// segment is verified and gets the TOA
	c2 := netip.AddrPortFrom(clientIP, 40001)
	syn2 := l.pass(t, 0, 1, tcpFrame(t, tcpSeg{src: c2, dst: l.vipPort, smac: macClient, dmac: macDP0, syn: true, seq: 1}))
	l.pass(t, 1, 0, tcpFrame(t, tcpSeg{src: l.rs, dst: netip.AddrPortFrom(lip, binary.BigEndian.Uint16(syn2[14+20:])), smac: macRS1, dmac: macDP1, syn: true, ack: true, ackn: 2}))
	unconfirmed := tcpFrame(t, tcpSeg{src: c2, dst: l.vipPort, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 2, ackn: 1, payload: make([]byte, 64)})
	syn := tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, 1024), dst: l.vipPort, smac: macClient, dmac: macDP0, syn: true, seq: 1})
	paths := []struct {
		name    string
		in, out int
		frame   func() []byte
		ctr     Counter
	}{
		{"established-in", 0, 1, func() []byte { return in }, CtrLBIn},
		{"established-out", 1, 0, func() []byte { return out }, CtrLBOut},
		{"established-in, client TOA scrubbed", 0, 1, func() []byte { return forged }, CtrLBTOAScrubbed},
		{"in before the server's ACK, TOA inserted", 0, 1, func() []byte { return unconfirmed }, CtrLBTOAAdded},
		{"new-connection", 0, 1, func() []byte { nextSYN(syn); return syn }, CtrLBNewConns},
	}
	for _, p := range paths {
		run := func() {
			l.rx(t, p.in, p.frame())
			l.w.flushAll()
			if l.releaseAll() != 1 {
				t.Fatalf("%s: no frame sent", p.name)
			}
		}
		for i := 0; i < 100; i++ {
			run()
		}
		l.w.ctr.publish()
		before := l.counter(p.ctr)
		allocs := testing.AllocsPerRun(500, run)
		l.w.ctr.publish()
		if got := l.counter(p.ctr) - before; got != 501 {
			t.Fatalf("%s: %s grew by %d for 501 packets", p.name, p.ctr, got)
		}
		t.Logf("%s: %v allocations per packet", p.name, allocs)
		if allocs != 0 {
			t.Errorf("%s: %v allocations per packet, want 0", p.name, allocs)
		}
	}
}

// benchLB runs a FullNAT path in bursts of 32; one op is one packet.
func benchLB(b *testing.B, path string) {
	l := newLBLoop(b)
	in, out := l.establish(b)
	syn := tcpFrame(b, tcpSeg{src: netip.AddrPortFrom(clientIP, 1024), dst: l.vipPort, smac: macClient, dmac: macDP0, syn: true, seq: 1})
	port, frame := 0, in
	switch path {
	case "out":
		port, frame = 1, out
	case "new":
		frame = syn
	}
	q := l.ports[port].MemQueue(0)
	var burst [benchBurst]*pktbuf.Buf
	made := 0
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		if path == "new" && made >= 30000 {
			// keep the table and the port pool from filling: not timed
			b.StopTimer()
			l.w.sess.Flush(l.w.onExpire)
			made = 0
			b.StartTimer()
		}
		n := min(benchBurst, b.N-done)
		for i := range n {
			if path == "new" {
				nextSYN(syn)
				made++
			}
			burst[i] = q.Alloc()
			burst[i].CopyFrom(frame)
			burst[i].Port = uint16(port)
		}
		for i := range n {
			l.w.input(burst[i])
			burst[i] = nil
		}
		l.w.flushAll()
		l.releaseAll()
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
}

func BenchmarkFullNATEstablishedIn(b *testing.B)  { benchLB(b, "in") }
func BenchmarkFullNATEstablishedOut(b *testing.B) { benchLB(b, "out") }
func BenchmarkFullNATNewConn(b *testing.B)        { benchLB(b, "new") }
