package dataplane

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/internal/cbpf"
)

// captureFilter compiles a tcpdump expression as dpip does; the tests that
// use it are about programs tcpdump really emits, so it fails without one.
func captureFilter(tb testing.TB, expr string) *cbpf.Filter {
	tb.Helper()
	raw, err := cbpf.Compile(expr)
	if err != nil {
		tb.Fatalf("%v (scripts/deps.sh installs tcpdump)", err)
	}
	f, err := cbpf.New(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

func startCapture(tb testing.TB, d *Dataplane, s CaptureSpec) *Capture {
	tb.Helper()
	c, err := d.StartCapture(s)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// loopOnce receives frame on port in through the worker's real loop
// (iterate: the rx burst and its capture point) and drains the tx buffers
// (flushPort: the tx capture point); it returns copies of what each port
// sent.
func (l *loopDP) loopOnce(tb testing.TB, in int, frames ...[]byte) [][][]byte {
	tb.Helper()
	for _, f := range frames {
		if !l.ports[in].MemQueue(0).Inject(f) {
			tb.Fatal("inject: ring full")
		}
	}
	l.w.iterate()
	l.w.flushAll()
	sent := make([][][]byte, len(l.sinks))
	for p, s := range l.sinks {
		for _, b := range s.out {
			sent[p] = append(sent[p], append([]byte(nil), b.Bytes()...))
		}
	}
	l.releaseAll()
	return sent
}

type capRec struct {
	port   int
	dir    CaptureDir
	worker int
	orig   int
	data   []byte
}

func drainAll(c *Capture) []capRec {
	var out []capRec
	c.Drain(func(r *CaptureRecord) {
		out = append(out, capRec{r.Port, r.Dir, r.Worker, r.OrigLen, append([]byte(nil), r.Data...)})
	})
	return out
}

// TestCaptureFullNATBothSides: a FullNAT exchange is seen untranslated on
// the receiving port and translated on the sending one, byte for byte what
// the ports received and sent.
func TestCaptureFullNATBothSides(t *testing.T) {
	l := newLBLoop(t)
	paths := lbPaths(t, l)
	c := startCapture(t, l.d, CaptureSpec{Worker: -1})
	for _, p := range paths[:2] { // established-in, established-out
		in := p.frame()
		sent := l.loopOnce(t, p.in, in)
		if len(sent[p.out]) != 1 || !bytes.Equal(sent[p.out][0], p.want) {
			t.Fatalf("%s: port %d sent %x, want %x", p.name, p.out, sent[p.out], p.want)
		}
		recs := drainAll(c)
		if len(recs) != 2 {
			t.Fatalf("%s: %d records, want rx and tx", p.name, len(recs))
		}
		for i, want := range []capRec{{p.in, CaptureRx, 0, len(in), in}, {p.out, CaptureTx, 0, len(p.want), p.want}} {
			got := recs[i]
			if got.port != want.port || got.dir != want.dir || got.worker != want.worker || got.orig != want.orig || !bytes.Equal(got.data, want.data) {
				t.Errorf("%s: record %d: port %d %v worker %d len %d %x, want port %d %v worker %d len %d %x", p.name, i,
					got.port, got.dir, got.worker, got.orig, got.data, want.port, want.dir, want.worker, want.orig, want.data)
			}
		}
		rx, tx := decodeL4(t, recs[0].data), decodeL4(t, recs[1].data)
		if p.in == 0 && (rx.src != l.client || rx.dst != l.vipPort || tx.src != netip.AddrPortFrom(lip, l.lport) || tx.dst != l.rs) {
			t.Errorf("%s: rx %v→%v tx %v→%v: want client→VIP before and laddr→real server after", p.name, rx.src, rx.dst, tx.src, tx.dst)
		}
		if p.in == 1 && (rx.src != l.rs || rx.dst != netip.AddrPortFrom(lip, l.lport) || tx.src != l.vipPort || tx.dst != l.client) {
			t.Errorf("%s: rx %v→%v tx %v→%v: want real server→laddr before and VIP→client after", p.name, rx.src, rx.dst, tx.src, tx.dst)
		}
	}
	st := c.Stats()
	if len(st) != 1 || st[0] != (CaptureStats{Worker: 0, Captured: 4}) {
		t.Errorf("stats %+v, want 4 captured on worker 0", st)
	}
}

// TestCaptureSelects: port, direction and filter each leave out what they
// do not select; snaplen cuts the copy, not the recorded length.
func TestCaptureSelects(t *testing.T) {
	l := newLBLoop(t)
	paths := lbPaths(t, l)
	in, out := paths[0], paths[1] // client → VIP on dp0, real server → laddr on dp1
	for _, tc := range []struct {
		name string
		spec CaptureSpec
		want []capRec // data: the first len(data) bytes expected
	}{
		{"dp1 only", CaptureSpec{Port: "dp1", Worker: -1}, []capRec{{1, CaptureTx, 0, len(in.want), in.want}, {1, CaptureRx, 0, len(out.frame()), out.frame()}}},
		{"rx only", CaptureSpec{Dir: CaptureRx, Worker: -1}, []capRec{{0, CaptureRx, 0, len(in.frame()), in.frame()}, {1, CaptureRx, 0, len(out.frame()), out.frame()}}},
		{"tx on dp0", CaptureSpec{Port: "dp0", Dir: CaptureTx, Worker: 0}, []capRec{{0, CaptureTx, 0, len(out.want), out.want}}},
		{"filter on the client", CaptureSpec{Worker: -1, Filter: captureFilter(t, "host "+clientIP.String()+" and tcp port 80")},
			[]capRec{{0, CaptureRx, 0, len(in.frame()), in.frame()}, {0, CaptureTx, 0, len(out.want), out.want}}},
		{"filter on the real server's port", CaptureSpec{Worker: -1, Filter: captureFilter(t, "src port 8080")},
			[]capRec{{1, CaptureRx, 0, len(out.frame()), out.frame()}}},
		{"snaplen 54", CaptureSpec{Worker: -1, Dir: CaptureRx, Port: "dp0", Snaplen: 54}, []capRec{{0, CaptureRx, 0, len(in.frame()), in.frame()[:54]}}},
	} {
		c := startCapture(t, l.d, tc.spec)
		l.loopOnce(t, 0, in.frame())
		l.loopOnce(t, 1, out.frame())
		c.Stop()
		got := drainAll(c)
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d records, want %d", tc.name, len(got), len(tc.want))
			continue
		}
		for i, w := range tc.want {
			g := got[i]
			if g.port != w.port || g.dir != w.dir || g.worker != w.worker || g.orig != w.orig || !bytes.Equal(g.data, w.data) {
				t.Errorf("%s: record %d: port %d %v len %d %x, want port %d %v len %d %x", tc.name, i, g.port, g.dir, g.orig, g.data, w.port, w.dir, w.orig, w.data)
			}
		}
	}
}

// TestCaptureBounded: a full ring and the rate limit drop and count, and
// never hold the worker up.
func TestCaptureBounded(t *testing.T) {
	l := newLBLoop(t)
	in := lbPaths(t, l)[0].frame()
	burst := make([][]byte, 32)
	for i := range burst {
		burst[i] = in
	}
	c := startCapture(t, l.d, CaptureSpec{Worker: -1, Dir: CaptureRx, Ring: 8, Rate: 1e9})
	if sent := l.loopOnce(t, 0, burst...); len(sent[1]) != 32 {
		t.Fatalf("%d of 32 forwarded with a full capture ring", len(sent[1]))
	}
	if st := c.Stats(); st[0] != (CaptureStats{Captured: 8, RingDrops: 24}) {
		t.Errorf("ring of 8: %+v, want 8 captured, 24 ring drops", st[0])
	}
	if n := len(drainAll(c)); n != 8 {
		t.Errorf("%d records drained, want 8", n)
	}
	c.Stop()
	// 16 packets of burst at a rate of 16 pps: one loop iteration (one
	// clock reading) lets 16 through
	c = startCapture(t, l.d, CaptureSpec{Worker: -1, Dir: CaptureRx, Ring: 64, Rate: 16})
	l.loopOnce(t, 0, burst...)
	if st := c.Stats(); st[0] != (CaptureStats{Captured: 16, RateLimited: 16}) {
		t.Errorf("rate 16: %+v, want 16 captured, 16 rate-limited", st[0])
	}
}

func TestCaptureOneAtATime(t *testing.T) {
	td := newTestDP(t)
	c := startCapture(t, td.d, CaptureSpec{Worker: -1})
	if _, err := td.d.StartCapture(CaptureSpec{Worker: -1}); !errors.Is(err, ErrCaptureBusy) {
		t.Fatalf("second capture: %v, want ErrCaptureBusy", err)
	}
	c.Stop()
	if td.d.capture.Load() != nil {
		t.Fatal("capture still published after Stop")
	}
	startCapture(t, td.d, CaptureSpec{Worker: -1}).Stop()
	for _, s := range []CaptureSpec{{Port: "dp9", Worker: -1}, {Worker: 1}, {Worker: -1, Snaplen: MaxCaptureSnaplen + 1},
		{Worker: -1, Dir: 4}, {Worker: -1, Ring: MaxCaptureRing + 1}} {
		if _, err := td.d.StartCapture(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", s, err)
		}
	}
	if td.d.capture.Load() != nil {
		t.Fatal("a refused capture was published")
	}
}

// TestCaptureAllocs: the worker path allocates nothing with a capture
// running (filter, copy into the ring, counters).
func TestCaptureAllocs(t *testing.T) {
	l := newLBLoop(t)
	p := lbPaths(t, l)[0]
	c := startCapture(t, l.d, CaptureSpec{Worker: -1, Rate: 1e9, Filter: captureFilter(t, "tcp port 80 or tcp port 8080")})
	run := func() {
		l.benchBurst(p.in, p.frame(), 1)
		c.Drain(func(*CaptureRecord) {})
		if l.releaseAll() != 1 {
			t.Fatal("no frame sent")
		}
	}
	run()
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Errorf("%v allocations per packet with a capture running", n)
	}
	if st := c.Stats(); st[0].Captured != 2*202 {
		t.Errorf("%d captured, want %d (rx and tx of every packet)", st[0].Captured, 2*202)
	}
}

// benchBurst runs n copies of frame as one rx burst on port in the way
// iterate does (its capture point, then the pipeline) and drains the tx
// buffers (the tx capture point).
func (l *loopDP) benchBurst(in int, frame []byte, n int) {
	q := l.ports[in].MemQueue(0)
	w := l.w
	for i := range n {
		b := q.Alloc()
		b.CopyFrom(frame)
		w.rx[i] = b
	}
	if c := w.dp.capture.Load(); c != nil {
		w.capture(c, in, CaptureRx, w.rx[:n])
	}
	for i := range n {
		b := w.rx[i]
		w.rx[i] = nil
		b.Port = uint16(in)
		w.input(b)
	}
	w.flushAll()
}

// benchCapture: the established FullNAT client→server path in bursts of
// 32, without a capture, with one that takes everything, and with one
// whose filter selects nothing. One op is one packet.
func benchCapture(b *testing.B, mode string) {
	l := newLBLoop(b)
	p := lbPaths(b, l)[0]
	frame := p.frame()
	var c *Capture
	switch mode {
	case "all":
		c = startCapture(b, l.d, CaptureSpec{Worker: -1, Rate: 1e9, Ring: 4096})
	case "filtered-out":
		c = startCapture(b, l.d, CaptureSpec{Worker: -1, Rate: 1e9, Filter: captureFilter(b, "udp port 53")})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(benchBurst, b.N-done)
		l.benchBurst(p.in, frame, n)
		if c != nil {
			c.Drain(func(*CaptureRecord) {}) // the API server's side, here on the same core
		}
		if l.releaseAll() != n {
			b.Fatal("frames lost")
		}
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
	if c != nil && mode == "all" {
		if st := c.Stats(); st[0].Captured != 2*uint64(b.N) {
			b.Fatalf("%+v for %d packets", st[0], b.N)
		}
	}
}

func BenchmarkCaptureOff(b *testing.B)         { benchCapture(b, "off") }
func BenchmarkCaptureAll(b *testing.B)         { benchCapture(b, "all") }
func BenchmarkCaptureFilteredOut(b *testing.B) { benchCapture(b, "filtered-out") }
