package dataplane

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/cbpf"
	"github.com/gvs-lb/gvs/session"
)

// tcpdumpFilter compiles a tcpdump expression the way dpip does.
func tcpdumpFilter(tb testing.TB, expr string) *cbpf.Filter {
	tb.Helper()
	raw, err := cbpf.Compile(expr)
	if err != nil {
		tb.Skipf("no filter compiler: %v", err)
	}
	f, err := cbpf.New(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// armTrace arms a trace on td's dataplane (as Dataplane.Trace does) and
// returns it; the test drives the workers, then collects.
func armTrace(tb testing.TB, d *Dataplane, o TraceOptions) *traceSession {
	tb.Helper()
	t, err := d.armTrace(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.trace.CompareAndSwap(t, nil) })
	return t
}

// collect returns the complete records, as the API streams them.
func (t *traceSession) collect(tb testing.TB, want int) []TraceRecord {
	tb.Helper()
	if n := int(t.next.Load()); n != want {
		tb.Fatalf("%d packets traced, want %d", n, want)
	}
	var out []TraceRecord
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := t.stream(ctx, func(r *TraceRecord) error {
		out = append(out, *r)
		if len(out) == want {
			cancel() // the records the test expects are in
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		tb.Fatal(err)
	}
	if len(out) != want {
		tb.Fatalf("%d records streamed, want %d", len(out), want)
	}
	return out
}

// stageList is "parse lookup …" for a record.
func stageList(r *TraceRecord) string {
	var s []string
	for _, e := range r.Stages() {
		s = append(s, e.Stage.String())
	}
	return strings.Join(s, " ")
}

func checkTimes(t *testing.T, r *TraceRecord) {
	t.Helper()
	var last int64
	for _, e := range r.Stages() {
		if e.At < last {
			t.Errorf("stage %s at %d ns, before the previous one (%d ns)", e.Stage, e.At, last)
		}
		last = e.At
	}
}

func TestTraceFullNATSYN(t *testing.T) {
	td := newLBTestDP(t, 1)
	client := netip.AddrPortFrom(clientIP, 40000)
	vipPort := netip.AddrPortFrom(vip, 80)
	tr := armTrace(t, td.d, TraceOptions{Count: 2, Port: -1, Worker: -1, Filter: tcpdumpFilter(t, "tcp src port 40000")})
	// another client port: not traced, forwarded all the same
	other := td.one(t, 0, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, 40001), dst: vipPort, smac: macClient, dmac: macDP0, syn: true, seq: 7}), 1)
	if other.dst != netip.AddrPortFrom(rs1IP, 8080) {
		t.Fatalf("untraced SYN went to %s", other.dst)
	}
	if n := tr.next.Load(); n != 0 {
		t.Fatalf("a packet the filter does not match was traced (%d records)", n)
	}
	out := td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vipPort, smac: macClient, dmac: macDP0, syn: true, seq: 1000, mss: 1460}), 1)
	r := tr.collect(t, 1)[0]
	if got, want := stageList(&r), "parse lookup schedule rewrite route neighbour transmit"; got != want {
		t.Fatalf("stages %q, want %q", got, want)
	}
	if r.Seq != 1 || r.Worker != 0 || r.Port != 0 || r.From != -1 {
		t.Errorf("record seq %d worker %d port %d from %d", r.Seq, r.Worker, r.Port, r.From)
	}
	checkTimes(t, &r)
	ev := r.Stages()
	if e := ev[0]; e.Code != 4 || e.Name != "dp0" {
		t.Errorf("parse: IPv%d on %s, want IPv4 on dp0", e.Code, e.Name)
	}
	if e := ev[1]; e.Code != LookupMiss {
		t.Errorf("lookup: code %d, want a miss", e.Code)
	}
	svc := td.d.IPVS().Table().Services[0]
	if e := ev[2]; e.N != svc.ID || e.Name != "rr" || e.A != netip.AddrPortFrom(rs1IP, 8080) || e.B != vipPort {
		t.Errorf("schedule: service %d (%s) sched %s real server %s, want %d (%s) rr %s", e.N, e.B, e.Name, e.A, svc.ID, vipPort,
			netip.AddrPortFrom(rs1IP, 8080))
	}
	// the rewrite is what left the box, decoded by gopacket
	if e := ev[3]; session.Direction(e.Code) != session.In || e.A != out.src || e.B != out.dst {
		t.Errorf("rewrite: dir %d %s > %s, the packet sent was %s > %s", e.Code, e.A, e.B, out.src, out.dst)
	}
	if out.src.Addr() != lip {
		t.Errorf("sent from %s, want the local address %s", out.src, lip)
	}
	if e := ev[4]; e.Name != "dp1" || e.A.Addr() != rs1IP {
		t.Errorf("route: dev %s via %s, want dp1 via %s", e.Name, e.A.Addr(), rs1IP)
	}
	if e := ev[5]; e.Code != NeighResolved || e.MAC.String() != macRS1.String() || e.MAC.String() != out.dstMAC.String() {
		t.Errorf("neighbour: code %d MAC %s, want resolved %s (sent to %s)", e.Code, e.MAC, macRS1, out.dstMAC)
	}
	if e := ev[6]; e.N != 1 || e.Q != 0 {
		t.Errorf("transmit: port %d queue %d, want 1 0", e.N, e.Q)
	}
	pkt, steps := td.d.DescribeTrace(&r)
	if want := "IP 10.1.0.2:40000 > 10.1.0.100:80: TCP [S] seq 1000 win 65535, 60 bytes"; pkt != want {
		t.Errorf("decode %q, want %q", pkt, want)
	}
	if s := steps[2].Verdict; s != "service TCP 10.1.0.100:80 scheduler rr: real server 10.2.0.11:8080" {
		t.Errorf("schedule verdict %q", s)
	}
	if s := steps[6].Verdict; s != "port dp1 queue 0" {
		t.Errorf("transmit verdict %q", s)
	}
}

func TestTraceDrops(t *testing.T) {
	td := newLBTestDP(t, 1)
	client := netip.AddrPortFrom(clientIP, 40000)
	tr := armTrace(t, td.d, TraceOptions{Count: 2, Port: 0, Worker: -1, Filter: tcpdumpFilter(t, "tcp and host 10.1.0.100")})
	// a port of the VIP without a service, then an ACK without a connection
	td.inject(0, tcpFrame(t, tcpSeg{src: client, dst: netip.AddrPortFrom(vip, 81), smac: macClient, dmac: macDP0, syn: true}))
	td.inject(0, tcpFrame(t, tcpSeg{src: client, dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, ack: true}))
	td.stepAll()
	if n := len(td.outAll(1)); n != 0 {
		t.Fatalf("%d frames forwarded", n)
	}
	recs := tr.collect(t, 2)
	for i, want := range []Counter{CtrDropLBNoService, CtrDropLBNotSYN} {
		r := &recs[i]
		if got := stageList(r); got != "parse lookup drop" {
			t.Errorf("packet %d: stages %q, want parse lookup drop", i+1, got)
			continue
		}
		if e := r.Stages()[2]; e.Ctr != want {
			t.Errorf("packet %d: dropped under %s, want %s", i+1, e.Ctr, want)
		}
		if _, steps := td.d.DescribeTrace(r); steps[2].Counter != want.String() || steps[2].Counter != counterNames[want] {
			t.Errorf("packet %d: counter %q, want %q", i+1, steps[2].Counter, want)
		}
		if td.sum(want) != 1 {
			t.Errorf("%s = %d, want 1", want, td.sum(want))
		}
	}
}

func TestTraceReplyHitsOut(t *testing.T) {
	td := newLBTestDP(t, 1)
	client := netip.AddrPortFrom(clientIP, 40000)
	vipPort := netip.AddrPortFrom(vip, 80)
	rs := netip.AddrPortFrom(rs1IP, 8080)
	syn := td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vipPort, smac: macClient, dmac: macDP0, syn: true, seq: 1000}), 1)
	tr := armTrace(t, td.d, TraceOptions{Count: 1, Port: 1, Worker: 0, Filter: tcpdumpFilter(t, "src host 10.2.0.11")})
	out := td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: syn.src, smac: macRS1, dmac: macDP1, syn: true, ack: true, seq: 5000, ackn: 1001}), 0)
	r := tr.collect(t, 1)[0]
	if got, want := stageList(&r), "parse lookup rewrite route neighbour transmit"; got != want {
		t.Fatalf("stages %q, want %q", got, want)
	}
	ev := r.Stages()
	if e := ev[1]; e.Code != LookupHitOut || e.A != rs {
		t.Errorf("lookup: code %d real server %s, want a hit out of %s", e.Code, e.A, rs)
	}
	if e := ev[2]; session.Direction(e.Code) != session.Out || e.A != vipPort || e.B != client || out.src != vipPort || out.dst != client {
		t.Errorf("rewrite: %s > %s, sent %s > %s, want %s > %s", e.A, e.B, out.src, out.dst, vipPort, client)
	}
	if e := ev[4]; e.MAC.String() != macClient.String() {
		t.Errorf("neighbour %s, want the client's %s", e.MAC, macClient)
	}
	if e := ev[5]; e.N != 0 {
		t.Errorf("transmit on port %d, want 0", e.N)
	}
	if _, steps := td.d.DescribeTrace(&r); !strings.HasPrefix(steps[1].Verdict, "hit out") {
		t.Errorf("lookup verdict %q", steps[1].Verdict)
	}
}

// A reply to a local port another worker owns is traced on both: handed
// over on the first, forwarded by the owner.
func TestTraceRedirect(t *testing.T) {
	td := newLBTestDP(t, 2)
	client := netip.AddrPortFrom(clientIP, 40000)
	td.injectQ(0, 0, tcpFrame(t, tcpSeg{src: client, dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, syn: true}))
	td.stepAll()
	outs := td.outAll(1)
	if len(outs) != 1 {
		t.Fatalf("%d SYNs sent", len(outs))
	}
	syn := decodeL4(t, outs[0])
	owner := td.d.steer.Owner(syn.src.Port())
	tr := armTrace(t, td.d, TraceOptions{Count: 2, Port: -1, Worker: -1, Filter: tcpdumpFilter(t, "src host 10.2.0.11")})
	td.injectQ(1, 1-owner, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(rs1IP, 8080), dst: syn.src, smac: macRS1, dmac: macDP1, syn: true, ack: true}))
	td.stepAll()
	td.stepAll() // the owner's transmit buffer drains on its next idle loop
	if n := len(td.outAll(0)); n != 1 {
		t.Fatalf("%d SYN-ACKs sent", n)
	}
	recs := tr.collect(t, 2)
	if got := stageList(&recs[0]); got != "parse lookup redirect" || recs[0].Worker != 1-owner || recs[0].Stages()[2].N != uint32(owner) {
		t.Errorf("receiving worker %d: %q to worker %d", recs[0].Worker, got, recs[0].Stages()[2].N)
	}
	if got := stageList(&recs[1]); got != "parse lookup rewrite route neighbour transmit" || recs[1].Worker != owner || recs[1].From != 1-owner {
		t.Errorf("owner %d (from %d): %q", recs[1].Worker, recs[1].From, got)
	}
}

func TestTraceHeldEchoAndKNI(t *testing.T) {
	td, _ := newKNITestDP(t, 0)
	// transit to an unresolved next hop: held; an echo request answered in
	// place; TCP to the dataplane's own address: the kernel's
	tr := armTrace(t, td.d, TraceOptions{Count: 3, Port: -1, Worker: -1, Filter: tcpdumpFilter(t, "udp or icmp or tcp port 22")})
	td.inject(0, udp4(t, macClient, macDP0, clientIP, rs1IP, 64, []byte("x")))
	td.inject(0, echo4(t, macClient, macDP0, clientIP, lbIP, 64, []byte("ping")))
	td.inject(0, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, 40000), dst: netip.AddrPortFrom(lbIP, 22), smac: macClient, dmac: macDP0, syn: true}))
	td.w.iterate()
	recs := tr.collect(t, 3)
	if got := stageList(&recs[0]); got != "parse route neighbour" || recs[0].Stages()[2].Code != NeighHeld {
		t.Errorf("held packet: %q (code %d)", got, recs[0].Stages()[2].Code)
	}
	if got := stageList(&recs[1]); got != "parse transmit" || recs[1].Stages()[1].N != 0 {
		t.Errorf("echo: %q", got)
	}
	if got := stageList(&recs[2]); got != "parse kni" || recs[2].Stages()[1].N != 0 {
		t.Errorf("to the kernel: %q", got)
	}
	if _, steps := td.d.DescribeTrace(&recs[0]); steps[2].Verdict != "10.2.0.11 unresolved: held, resolution sent" {
		t.Errorf("neighbour verdict %q", steps[2].Verdict)
	}
}

func TestTraceBusyAndBounds(t *testing.T) {
	td := newLBTestDP(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- td.d.Trace(ctx, TraceOptions{Count: 5, Port: -1, Worker: -1}, func(*TraceRecord) error { return nil })
	}()
	for td.d.trace.Load() == nil { // armed from its start to its end
		runtime.Gosched()
	}
	if err := td.d.Trace(ctx, TraceOptions{Port: -1, Worker: -1}, nil); !errors.Is(err, ErrTraceBusy) {
		t.Errorf("second trace: %v, want ErrTraceBusy", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("trace ended with %v", err)
	}
	if td.d.trace.Load() != nil {
		t.Error("trace still armed after its client left")
	}
	for _, o := range []TraceOptions{{Count: MaxTraceCount + 1, Worker: -1, Port: -1}, {Worker: 1, Port: -1}, {Port: 2, Worker: -1}} {
		if _, err := td.d.armTrace(o); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", o, err)
		}
	}
}

// rxBurst hands n copies of frame to the worker as one burst received on
// port in, through the same entry iterate uses.
func (l *loopDP) rxBurst(tb testing.TB, in int, frame []byte, n int) {
	q := l.ports[in].MemQueue(0)
	for i := range n {
		b := q.Alloc()
		if b == nil || !b.CopyFrom(frame) {
			tb.Fatal("rx: no buffer")
		}
		l.w.rx[i] = b
	}
	l.w.inputBurst(in, n)
	l.w.flushAll()
}

func TestTraceAllocs(t *testing.T) {
	l := newLBLoop(t)
	paths := lbPaths(t, l)
	for _, p := range []lbPath{paths[0], paths[len(paths)-1]} { // established-in, new-connection
		tr := armTrace(t, l.d, TraceOptions{Count: MaxTraceCount, Port: -1, Worker: -1, Filter: tcpdumpFilter(t, "tcp")})
		run := func() {
			l.rxBurst(t, p.in, p.frame(), 1)
			if l.releaseAll() != 1 {
				t.Fatalf("%s: no frame sent", p.name)
			}
		}
		run()
		allocs := testing.AllocsPerRun(100, run)
		if n := tr.next.Load(); n != 102 {
			t.Fatalf("%s: %d packets traced, want 102", p.name, n)
		}
		if got := stageList(&tr.recs[101]); !strings.HasSuffix(got, "rewrite route neighbour transmit") {
			t.Errorf("%s: last record %q", p.name, got)
		}
		t.Logf("%s traced: %v allocations per packet", p.name, allocs)
		if allocs != 0 {
			t.Errorf("%s traced: %v allocations per packet, want 0", p.name, allocs)
		}
		l.d.trace.Store(nil)
	}
}

// BenchmarkTraceOverhead: the established-in path in bursts of 32 through
// the worker's burst entry, interleaved burst by burst (so that the load of
// a shared machine weighs on all alike): no trace armed; a trace armed
// whose tcpdump filter matches nothing; a trace armed for another port.
// Reported as ns per packet of each; one op is one burst of each.
func BenchmarkTraceOverhead(b *testing.B) {
	l := newLBLoop(b)
	in, _ := l.establish(b)
	notMatching, err := l.d.armTrace(TraceOptions{Count: 10, Port: -1, Worker: -1, Filter: tcpdumpFilter(b, "host 192.0.2.1 and tcp port 9")})
	if err != nil {
		b.Fatal(err)
	}
	otherPort := &traceSession{opts: TraceOptions{Port: 1, Worker: -1}, recs: make([]TraceRecord, 10), ready: make([]atomic.Bool, 10)}
	modes := []struct {
		name string
		t    *traceSession
		ns   time.Duration
	}{{"off", nil, 0}, {"armed-not-matching", notMatching, 0}, {"armed-other-port", otherPort, 0}}
	q := l.ports[0].MemQueue(0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for i := range modes {
			m := &modes[i]
			l.d.trace.Store(m.t)
			for j := range benchBurst {
				buf := q.Alloc()
				buf.CopyFrom(in)
				l.w.rx[j] = buf
			}
			start := time.Now()
			l.w.inputBurst(0, benchBurst)
			l.w.flushAll()
			m.ns += time.Since(start)
			l.releaseAll()
		}
	}
	b.StopTimer()
	l.d.trace.Store(nil)
	if notMatching.next.Load() != 0 || otherPort.next.Load() != 0 {
		b.Fatal("a packet was traced")
	}
	for _, m := range modes {
		b.ReportMetric(float64(m.ns.Nanoseconds())/float64(b.N*benchBurst), m.name+"-ns/pkt")
	}
}
