package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/nat"
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

// lbPath is one row of the FullNAT fixture table, in the manner of
// Katran's packet fixtures: a description, the input (port and frame), the
// expected output (port and frame, built independently with gopacket) and
// the verdict (the counter the packet moves). The same table drives the
// correctness test (TestLBPaths), the allocation assertions
// (TestLBPathsAllocs) and the benchmarks (BenchmarkLBPaths).
type lbPath struct {
	name    string
	in, out int
	// frame returns the next input; the new-connection row changes the
	// client port each time.
	frame func() []byte
	// want is the expected output frame; nil when it depends on the local
	// port the worker picks, and check decodes it instead.
	want  []byte
	check func(tb testing.TB, got []byte)
	ctr   Counter
}

// lbPaths sets up l (an established connection whose TOA the server has
// confirmed, and a second one it has not) and returns the table.
func lbPaths(tb testing.TB, l *lbLoop) []lbPath {
	in, out := l.establish(tb)
	local := netip.AddrPortFrom(lip, l.lport)
	payload := make([]byte, 64)
	// a client's forged TOA, scrubbed on every segment: NOPs in its place
	forged := tcpFrame(tb, tcpSeg{src: l.client, dst: l.vipPort, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 2, ackn: 1,
		opts: []layers.TCPOption{nopOpt, nopOpt, tsOpt, forgedTOA4}, payload: payload})
	nops := []layers.TCPOption{nopOpt, nopOpt, tsOpt}
	for range 8 {
		nops = append(nops, nopOpt)
	}
	// a second connection the real server has not acknowledged yet: every
	// segment is verified and gets the TOA
	c2 := netip.AddrPortFrom(clientIP, 40001)
	syn2 := l.pass(tb, 0, 1, tcpFrame(tb, tcpSeg{src: c2, dst: l.vipPort, smac: macClient, dmac: macDP0, syn: true, seq: 1}))
	local2 := netip.AddrPortFrom(lip, binary.BigEndian.Uint16(syn2[14+20:]))
	l.pass(tb, 1, 0, tcpFrame(tb, tcpSeg{src: l.rs, dst: local2, smac: macRS1, dmac: macDP1, syn: true, ack: true, ackn: 2}))
	unconfirmed := tcpFrame(tb, tcpSeg{src: c2, dst: l.vipPort, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 2, ackn: 1, payload: payload})
	toa := layers.TCPOption{OptionType: nat.TOAKind, OptionLength: 8, OptionData: append(binary.BigEndian.AppendUint16(nil, c2.Port()), clientIP.AsSlice()...)}
	syn := tcpFrame(tb, tcpSeg{src: netip.AddrPortFrom(clientIP, 1024), dst: l.vipPort, smac: macClient, dmac: macDP0, syn: true, seq: 1})
	toServer := func(seg tcpSeg) []byte {
		seg.smac, seg.dmac, seg.dst, seg.ttl = macDP1, macRS1, l.rs, 63
		return tcpFrame(tb, seg)
	}
	return []lbPath{
		{name: "established-in", in: 0, out: 1, frame: func() []byte { return in }, ctr: CtrLBIn,
			want: toServer(tcpSeg{src: local, ack: true, psh: true, seq: 2, ackn: 1, payload: payload})},
		{name: "established-out", in: 1, out: 0, frame: func() []byte { return out }, ctr: CtrLBOut,
			want: tcpFrame(tb, tcpSeg{src: l.vipPort, dst: l.client, smac: macDP0, dmac: macClient, ack: true, psh: true, seq: 1, ackn: 66,
				payload: payload, ttl: 63})},
		{name: "established-in, client TOA scrubbed", in: 0, out: 1, frame: func() []byte { return forged }, ctr: CtrLBTOAScrubbed,
			want: toServer(tcpSeg{src: local, ack: true, psh: true, seq: 2, ackn: 1, opts: nops, payload: payload})},
		{name: "in before the server's ACK, TOA inserted", in: 0, out: 1, frame: func() []byte { return unconfirmed }, ctr: CtrLBTOAAdded,
			want: toServer(tcpSeg{src: local2, ack: true, psh: true, seq: 2, ackn: 1, opts: []layers.TCPOption{toa}, payload: payload})},
		{name: "new-connection", in: 0, out: 1, frame: func() []byte { nextSYN(syn); return syn }, ctr: CtrLBNewConns,
			check: func(tb testing.TB, got []byte) {
				tb.Helper()
				d := decodeL4(tb, got)
				if d.src.Addr() != lip || d.dst != l.rs || d.tcp == nil || !d.tcp.SYN || d.tcp.ACK || d.ttl != 63 {
					tb.Errorf("new connection sent %v → %v ttl %d", d.src, d.dst, d.ttl)
				}
			}},
	}
}

// TestLBPaths checks each row's output against the frame it expects, byte
// for byte (gopacket verifies both frames' checksums first).
func TestLBPaths(t *testing.T) {
	l := newLBLoop(t)
	for _, p := range lbPaths(t, l) {
		l.w.ctr.publish()
		before := l.counter(p.ctr)
		got := l.pass(t, p.in, p.out, p.frame())
		if s := frameProblem(got); s != "" {
			t.Errorf("%s: output: %s", p.name, s)
		}
		l.w.ctr.publish()
		if n := l.counter(p.ctr) - before; n != 1 {
			t.Errorf("%s: %s grew by %d, want 1", p.name, p.ctr, n)
		}
		if p.check != nil {
			p.check(t, got)
			continue
		}
		if s := frameProblem(p.want); s != "" {
			t.Fatalf("%s: expected frame: %s", p.name, s)
		}
		if !bytes.Equal(got, p.want) {
			t.Errorf("%s:\n got  %x\n want %x", p.name, got, p.want)
		}
	}
}

func TestLBPathsAllocs(t *testing.T) {
	l := newLBLoop(t)
	for _, p := range lbPaths(t, l) {
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

// BenchmarkLBPaths runs each row in bursts of 32 as the worker loop does;
// one op is one packet (ns/op is ns per packet, frame copies included).
func BenchmarkLBPaths(b *testing.B) {
	for _, name := range []string{"established-in", "established-out", "established-in, client TOA scrubbed", "new-connection"} {
		b.Run(strings.ReplaceAll(name, " ", "_"), func(b *testing.B) { benchLB(b, name) })
	}
}

// benchLB runs the table's row named path in bursts of 32; one op is one
// packet.
func benchLB(b *testing.B, path string) { benchLBSetup(b, path, nil) }

// benchLBSetup is benchLB on a dataplane setup has configured further.
func benchLBSetup(b *testing.B, path string, setup func(*lbLoop)) {
	l := newLBLoop(b)
	if setup != nil {
		setup(l)
	}
	var row *lbPath
	for _, p := range lbPaths(b, l) {
		if p.name == path {
			row = &p
		}
	}
	if row == nil {
		b.Fatalf("no FullNAT path %q", path)
	}
	port, frame := row.in, row.frame()
	isNew := path == "new-connection"
	next := func() []byte { return frame }
	if isNew {
		next = row.frame // a new client port each
	}
	made := 0
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		if isNew && made >= 30000 {
			// keep the table and the port pool from filling: not timed
			b.StopTimer()
			l.w.sess.Flush(l.w.onExpire)
			made = 0
			b.StartTimer()
		}
		n := min(benchBurst, b.N-done)
		l.burst(port, n, next) // modes_bench_test.go
		made += n
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
}

func BenchmarkFullNATEstablishedIn(b *testing.B)  { benchLB(b, "established-in") }
func BenchmarkFullNATEstablishedOut(b *testing.B) { benchLB(b, "established-out") }
func BenchmarkFullNATNewConn(b *testing.B)        { benchLB(b, "new-connection") }
