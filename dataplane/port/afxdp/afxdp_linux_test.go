//go:build linux

package afxdp

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink/nl"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
)

// TestRxTx moves frames both ways through a one-queue port in copy mode,
// with the program attached in each mode veth supports.
func TestRxTx(t *testing.T) {
	for _, mode := range []string{"generic", "native"} {
		t.Run(mode, func(t *testing.T) {
			l := newLab(t, 1)
			p := l.open(t, port.Config{Name: "dp0", Device: labDev, XDPMode: mode, ZeroCopy: "off"})
			if p.AttachMode() != mode || p.Mode() != "copy" {
				t.Fatalf("attach mode %q, socket mode %q; want %q, copy", p.AttachMode(), p.Mode(), mode)
			}
			dev := l.link(t, labDev).Attrs()
			if p.Name() != "dp0" || p.Driver() != "afxdp" || p.NumQueues() != 1 ||
				p.MTU() != dev.MTU || p.MAC().String() != dev.HardwareAddr.String() {
				t.Fatalf("port: name %q driver %q queues %d mtu %d mac %s; device mtu %d mac %s",
					p.Name(), p.Driver(), p.NumQueues(), p.MTU(), p.MAC(), dev.MTU, dev.HardwareAddr)
			}
			if !p.LinkUp() {
				t.Fatal("LinkUp false on an up veth with an up peer")
			}
			if id := xdpAttached(l.nl, dev.Index); id == 0 {
				t.Fatal("no XDP program attached to the device")
			}
			// The kernel's view of the attachment, not just ours.
			kernelMode := map[uint32]string{nl.XDP_ATTACHED_DRV: "native", nl.XDP_ATTACHED_SKB: "generic"}[dev.Xdp.AttachMode]
			if kernelMode != mode {
				t.Fatalf("kernel reports XDP attach mode %d, want %s", dev.Xdp.AttachMode, mode)
			}
			q := p.XSKQueue(0)
			peer := l.packet(t, labPeer)

			// Peer → port.
			marker := []byte("gvsxdp-rx-" + mode)
			var sent [][]byte
			var sentBytes int
			for i := 0; i < 64; i++ {
				f := udpFrame(t, peer.mac, p.MAC(), uint16(1000+i), marker, i, 10+i*22)
				sent = append(sent, f)
				sentBytes += len(f)
				peer.send(t, f)
			}
			res := rxUntil(t, []*Queue{q}, marker, len(sent))
			if len(res.frames) != len(sent) {
				t.Fatalf("received %d of %d frames", len(res.frames), len(sent))
			}
			for i := range sent {
				if !bytes.Equal(res.frames[i], sent[i]) {
					t.Fatalf("frame %d differs:\n got %x\nwant %x", i, res.frames[i], sent[i])
				}
			}
			if res.total != len(sent) {
				t.Errorf("received %d packets, %d of them ours: unexpected traffic in the lab", res.total, len(sent))
			}
			c := q.Counters()
			if c.RxPackets.Load() != uint64(res.total) || c.RxBytes.Load() != uint64(res.bytes) {
				t.Errorf("rx counters %d packets %d bytes, want %d, %d", c.RxPackets.Load(), c.RxBytes.Load(), res.total, res.bytes)
			}

			// Port → peer: half the frames in the queue's own buffers, half
			// in a foreign pool's (TxBurst copies those).
			marker = []byte("gvsxdp-tx-" + mode)
			foreign := pktbuf.NewPool(64, pktbuf.DefaultFrameSize)
			var out []*pktbuf.Buf
			sent, sentBytes = nil, 0
			for i := 0; i < 64; i++ {
				f := udpFrame(t, p.MAC(), peer.mac, uint16(2000+i), marker, i, 10+i*22)
				sent = append(sent, f)
				sentBytes += len(f)
				var b *pktbuf.Buf
				if i%2 == 0 {
					b = q.Alloc()
				} else {
					b = foreign.Get()
				}
				if b == nil || !b.CopyFrom(f) {
					t.Fatalf("buffer %d: alloc or copy failed", i)
				}
				out = append(out, b)
			}
			if n := q.TxBurst(out); n != len(out) {
				t.Fatalf("TxBurst accepted %d of %d", n, len(out))
			}
			if foreign.Free() != foreign.Size() {
				t.Errorf("foreign pool has %d of %d buffers back after TxBurst", foreign.Free(), foreign.Size())
			}
			got := peer.recv(t, marker, len(sent), q.Flush)
			if len(got) != len(sent) {
				t.Fatalf("peer received %d of %d frames", len(got), len(sent))
			}
			for i := range sent {
				if !bytes.Equal(got[i], sent[i]) {
					t.Fatalf("frame %d differs on the wire:\n got %x\nwant %x", i, got[i], sent[i])
				}
				if pl := checkUDP(t, got[i]); !bytes.HasPrefix(pl, marker) {
					t.Fatalf("frame %d payload %q", i, pl)
				}
			}
			if c.TxPackets.Load() != uint64(len(sent)) || c.TxBytes.Load() != uint64(sentBytes) || c.TxDropped.Load() != 0 {
				t.Errorf("tx counters %d packets %d bytes %d dropped, want %d, %d, 0",
					c.TxPackets.Load(), c.TxBytes.Load(), c.TxDropped.Load(), len(sent), sentBytes)
			}
			// Every transmitted frame comes back to the pool.
			if !waitTrue(func() bool { q.Flush(); _, tx := q.InFlight(); return tx == 0 }) {
				_, tx := q.InFlight()
				t.Fatalf("%d frames still in flight after the peer got everything", tx)
			}
			rxHeld, _ := q.InFlight()
			if q.Pool().Free()+rxHeld != q.Pool().Size() {
				t.Errorf("pool: %d free + %d lent for rx != %d frames: frames leaked", q.Pool().Free(), rxHeld, q.Pool().Size())
			}

			s := p.Stats()
			want := port.Stats{RxPackets: uint64(res.total), RxBytes: uint64(res.bytes),
				TxPackets: uint64(len(sent)), TxBytes: uint64(sentBytes)}
			if s != want {
				t.Errorf("Stats() = %+v, want %+v", s, want)
			}
		})
	}
}

// TestTwoQueues opens both queues of a two-queue veth and checks that every
// frame arrives exactly once, on the queue the kernel received it on, and
// that both queues transmit.
func TestTwoQueues(t *testing.T) {
	for _, mode := range []string{"generic", "native"} {
		t.Run(mode, func(t *testing.T) {
			l := newLab(t, 2)
			p := l.open(t, port.Config{Queues: 2, XDPMode: mode, ZeroCopy: "off"})
			if p.NumQueues() != 2 || p.XSKQueue(1).ID() != 1 {
				t.Fatalf("%d queues, second has id %d", p.NumQueues(), p.XSKQueue(1).ID())
			}
			qs := []*Queue{p.XSKQueue(0), p.XSKQueue(1)}
			peer := l.packet(t, labPeer)
			marker := []byte("gvsxdp-2q-" + mode)
			const n = 128
			for i := 0; i < n; i++ {
				peer.send(t, udpFrame(t, peer.mac, p.MAC(), uint16(3000+i), marker, i, 64))
			}
			res := rxUntil(t, qs, marker, n)
			if len(res.frames) != n {
				t.Fatalf("received %d of %d frames", len(res.frames), n)
			}
			seen := map[uint32]bool{}
			perQueue := [2]int{}
			for i, f := range res.frames {
				pl := checkUDP(t, f)
				seq := uint32(pl[len(marker)])<<24 | uint32(pl[len(marker)+1])<<16 | uint32(pl[len(marker)+2])<<8 | uint32(pl[len(marker)+3])
				if seen[seq] {
					t.Fatalf("frame %d received twice", seq)
				}
				seen[seq] = true
				perQueue[res.queue[i]]++
			}
			for i, q := range qs {
				if got := q.Counters().RxPackets.Load(); got != uint64(perQueue[i]) {
					t.Errorf("queue %d counts %d rx packets, delivered %d", i, got, perQueue[i])
				}
			}
			t.Logf("rx spread over the queues: %v", perQueue)

			for i, q := range qs {
				marker := []byte(fmt.Sprintf("gvsxdp-2q-tx%d", i))
				f := udpFrame(t, p.MAC(), peer.mac, 4000, marker, i, 100)
				b := q.Alloc()
				b.CopyFrom(f)
				if q.TxBurst([]*pktbuf.Buf{b}) != 1 {
					t.Fatalf("queue %d refused a frame", i)
				}
				got := peer.recv(t, marker, 1, q.Flush)
				if len(got) != 1 || !bytes.Equal(got[0], f) {
					t.Fatalf("queue %d: peer got %d frames, want the one sent", i, len(got))
				}
			}
		})
	}
}

// TestTooManyQueues asks for more queues than the veth has.
func TestTooManyQueues(t *testing.T) {
	l := newLab(t, 1)
	_, err := Open(port.Config{Name: "dp0", Device: labDev, Queues: 2})
	if err == nil {
		t.Fatal("Open with 2 queues on a 1-queue veth succeeded")
	}
	t.Logf("%v", err)
	for _, want := range []string{labDev, "2 queues", "1 rx queues", "numrxqueues 2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if id := xdpAttached(l.nl, l.link(t, labDev).Attrs().Index); id != 0 {
		t.Errorf("failed Open left XDP program %d attached", id)
	}
	// Nothing was left behind: the device still opens.
	p := l.open(t, port.Config{Name: "dp0", Device: labDev})
	if p.NumQueues() != 1 {
		t.Fatalf("%d queues", p.NumQueues())
	}
}

// TestCloseDetachesAndReopens closes a port, checks the program is gone and
// the close is idempotent, then opens the device again at once (the kernel
// may still be tearing the old socket down) and receives on it.
func TestCloseDetachesAndReopens(t *testing.T) {
	l := newLab(t, 1)
	ifindex := l.link(t, labDev).Attrs().Index
	peer := l.packet(t, labPeer)
	for round := 0; round < 3; round++ {
		p, err := Open(port.Config{Name: "dp0", Device: labDev, ZeroCopy: "off"})
		if err != nil {
			t.Fatalf("round %d: Open: %v", round, err)
		}
		if xdpAttached(l.nl, ifindex) == 0 {
			p.Close()
			t.Fatalf("round %d: no XDP program attached", round)
		}
		marker := []byte(fmt.Sprintf("gvsxdp-reopen-%d", round))
		f := udpFrame(t, peer.mac, p.MAC(), 5000, marker, round, 50)
		peer.send(t, f)
		res := rxUntil(t, []*Queue{p.XSKQueue(0)}, marker, 1)
		if err := p.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
		if len(res.frames) != 1 || !bytes.Equal(res.frames[0], f) {
			t.Fatalf("round %d: received %d frames, want the one sent", round, len(res.frames))
		}
		if id := xdpAttached(l.nl, ifindex); id != 0 {
			t.Fatalf("round %d: XDP program %d still attached after Close", round, id)
		}
		if err := p.Close(); err != nil {
			t.Fatalf("round %d: second Close: %v", round, err)
		}
		if p.LinkUp() {
			t.Errorf("round %d: closed port reports link up", round)
		}
	}
	// Without the program the kernel gets the traffic back: the frame
	// reaches xdp0's own AF_PACKET sockets.
	dev := l.packet(t, labDev)
	marker := []byte("gvsxdp-after-close")
	peer.send(t, udpFrame(t, peer.mac, dev.mac, 5001, marker, 0, 50))
	if got := dev.recv(t, marker, 1, nil); len(got) != 1 {
		t.Fatalf("kernel saw %d frames after Close, want 1", len(got))
	}
}

// TestZeroCopySettings: veth has no zero-copy, so "auto" falls back to copy
// and "on" fails naming the fix.
func TestZeroCopySettings(t *testing.T) {
	l := newLab(t, 1)
	p := l.open(t, port.Config{ZeroCopy: "auto"})
	if p.Mode() != "copy" || p.AttachMode() != "native" {
		t.Errorf("defaults on veth gave %s/%s, want copy/native", p.Mode(), p.AttachMode())
	}
	// The queue is taken while p is open.
	start := time.Now()
	if p2, err := Open(port.Config{Name: "dp1", Device: labDev}); err == nil {
		p2.Close()
		t.Error("second Open of a taken queue succeeded")
	} else if !strings.Contains(err.Error(), "another AF_XDP socket holds the queue") || strings.Count(err.Error(), "busy") != 1 {
		t.Errorf("second Open: %v", err)
	} else {
		t.Logf("second Open after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p2, err := Open(port.Config{Name: "dp0", Device: labDev, ZeroCopy: "on"})
	if err == nil {
		defer p2.Close()
		if p2.Mode() != "zerocopy" {
			t.Fatalf("ZeroCopy on gave mode %q", p2.Mode())
		}
		t.Logf("this kernel's veth does zero-copy")
		return
	}
	t.Logf("ZeroCopy on: %v", err)
	for _, want := range []string{"bind " + labDev + " queue 0", "zero-copy", "auto or off"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	for _, cfg := range []port.Config{
		{Device: labDev, ZeroCopy: "maybe"},
		{Device: labDev, XDPMode: "offload"},
		{Device: labDev, RxRing: 1000},
		{Device: labDev, FrameCount: 10},
		{Device: "nosuchdev0"},
	} {
		_, err := Open(cfg)
		if err == nil || !strings.Contains(err.Error(), cfg.Device) {
			t.Errorf("Open(%+v): %v", cfg, err)
		} else {
			t.Logf("%v", err)
		}
	}
}

// TestRxRingFullCountsDrops overflows a small rx ring and checks the kernel's
// drops show up in Stats.
func TestRxRingFullCountsDrops(t *testing.T) {
	l := newLab(t, 1)
	p := l.open(t, port.Config{RxRing: 64, TxRing: 64, FrameCount: 256, XDPMode: "generic", ZeroCopy: "off"})
	q := p.XSKQueue(0)
	peer := l.packet(t, labPeer)
	marker := []byte("gvsxdp-overflow")
	const n = 200
	for i := 0; i < n; i++ {
		peer.send(t, udpFrame(t, peer.mac, p.MAC(), 6000, marker, i, 64))
	}
	if !waitTrue(func() bool { return p.Stats().RxDropped >= n-64 }) {
		t.Fatalf("Stats().RxDropped = %d, want %d", p.Stats().RxDropped, n-64)
	}
	res := rxUntil(t, []*Queue{q}, marker, 64)
	s := p.Stats()
	if len(res.frames) != 64 || s.RxPackets != 64 || s.RxDropped != n-64 {
		t.Fatalf("received %d, Stats %+v; want 64 received, %d dropped", len(res.frames), s, n-64)
	}
	xs, err := p.XDPStats()
	if err != nil {
		t.Fatal(err)
	}
	if xs[0].RxRingFull+xs[0].RxDropped != n-64 {
		t.Errorf("XDPStats %+v", xs[0])
	}
	// as dpip -s link show lists them: no fast path, no verdicts
	x := xstats(t, p)
	if x["gvs_xsk_rx_ring_full"]+x["gvs_xsk_rx_dropped"] != n-64 || len(x) != 6 {
		t.Errorf("XStats %v: want the 6 socket counters, %d dropped", x, n-64)
	}
}

// xstats returns p's extended counters by name.
func xstats(t *testing.T, p *Port) map[string]uint64 {
	t.Helper()
	xs, err := p.XStats()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint64{}
	for _, x := range xs {
		m[x.Name] = x.Value
	}
	return m
}

// TestLinkUp follows the carrier of the veth.
func TestLinkUp(t *testing.T) {
	l := newLab(t, 1)
	p := l.open(t, port.Config{})
	if !p.LinkUp() {
		t.Fatal("link down at start")
	}
	run(t, "ip", "-n", l.ns, "link", "set", "dev", labPeer, "down")
	if !waitTrue(func() bool { return !p.LinkUp() }) {
		t.Fatal("LinkUp stays true with the peer down")
	}
	run(t, "ip", "-n", l.ns, "link", "set", "dev", labPeer, "up")
	if !waitTrue(p.LinkUp) {
		t.Fatal("LinkUp stays false with the peer up again")
	}
}

// TestRoundTripAllocs: receiving a burst and transmitting it back allocates
// nothing.
func TestRoundTripAllocs(t *testing.T) {
	l := newLab(t, 1)
	p := l.open(t, port.Config{XDPMode: "generic", ZeroCopy: "off"})
	q := p.XSKQueue(0)
	peer := l.packet(t, labPeer)
	const runs, burst = 50, 16
	frame := udpFrame(t, peer.mac, p.MAC(), 7000, []byte("gvsxdp-allocs"), 0, 64)
	for i := 0; i < (runs+2)*burst; i++ {
		peer.send(t, frame)
	}
	bufs := make([]*pktbuf.Buf, burst)
	empty := 0
	roundTrip := func() {
		deadline := time.Now().Add(waitFor)
		n := 0
		for n == 0 && time.Now().Before(deadline) {
			n = q.RxBurst(bufs)
		}
		if n == 0 {
			empty++
		}
		port.TxOwned(q, bufs[:n])
		q.Flush()
	}
	roundTrip() // warm-up outside the measurement
	if a := testing.AllocsPerRun(runs, roundTrip); a != 0 {
		t.Errorf("RxBurst+TxBurst+Flush allocates %v times per burst", a)
	}
	if empty > 0 {
		t.Fatalf("%d of %d bursts were empty: the measurement did not cover the packet path", empty, runs+1)
	}
	if c := q.Counters(); c.TxPackets.Load() == 0 || c.TxPackets.Load() != c.RxPackets.Load() {
		t.Errorf("rx %d tx %d packets", c.RxPackets.Load(), c.TxPackets.Load())
	}
}

// TestTxRingFull offers more than the tx ring holds in one burst: the queue
// takes what fits, the caller keeps (and here drops) the rest, and what was
// taken arrives.
func TestTxRingFull(t *testing.T) {
	l := newLab(t, 1)
	p := l.open(t, port.Config{TxRing: 64, RxRing: 64, FrameCount: 512, XDPMode: "generic", ZeroCopy: "off"})
	q := p.XSKQueue(0)
	peer := l.packet(t, labPeer)
	marker := []byte("gvsxdp-txfull")
	var out []*pktbuf.Buf
	var sent [][]byte
	for i := 0; i < 200; i++ {
		f := udpFrame(t, p.MAC(), peer.mac, 8000, marker, i, 64)
		b := q.Alloc()
		if b == nil {
			t.Fatalf("pool exhausted at %d", i)
		}
		b.CopyFrom(f)
		out = append(out, b)
		sent = append(sent, f)
	}
	free := q.Pool().Free()
	n := port.TxOwned(q, out)
	if n != 64 {
		t.Fatalf("TxBurst accepted %d of 200 on an empty 64-entry ring, want 64", n)
	}
	if c := q.Counters(); c.TxPackets.Load() != 64 || c.TxDropped.Load() != 136 {
		t.Errorf("tx %d dropped %d, want 64, 136", c.TxPackets.Load(), c.TxDropped.Load())
	}
	if got := q.Pool().Free(); got < free+136 {
		t.Errorf("pool has %d free after the caller freed 136 of 200 (had %d)", got, free)
	}
	got := peer.recv(t, marker, n, q.Flush)
	if len(got) != n {
		t.Fatalf("peer got %d of %d", len(got), n)
	}
	for i := range got {
		if !bytes.Equal(got[i], sent[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
}

// TestReflect bounces a few thousand frames off the port through tiny rings,
// so every ring index wraps many times, and checks each one byte for byte.
func TestReflect(t *testing.T) {
	l := newLab(t, 1)
	p := l.open(t, port.Config{TxRing: 32, RxRing: 32, FrameCount: 128, ZeroCopy: "off"})
	q := p.XSKQueue(0)
	peer := l.packet(t, labPeer)
	marker := []byte("gvsxdp-reflect")
	bufs := make([]*pktbuf.Buf, 32)
	const rounds, batch = 100, 24
	for r := 0; r < rounds; r++ {
		var sent [][]byte
		for i := 0; i < batch; i++ {
			f := udpFrame(t, peer.mac, p.MAC(), uint16(9000+i), marker, r*batch+i, 20+(r*batch+i)%1400)
			sent = append(sent, f)
			peer.send(t, f)
		}
		reflected := 0
		got := peer.recv(t, marker, batch, func() {
			if reflected < batch {
				n := q.RxBurst(bufs)
				reflected += n
				if k := q.TxBurst(bufs[:n]); k != n {
					t.Fatalf("round %d: TxBurst took %d of %d", r, k, n)
				}
			}
			q.Flush()
		})
		if len(got) != batch {
			t.Fatalf("round %d: %d of %d frames came back (%d reflected)", r, len(got), batch, reflected)
		}
		for i := range got {
			if !bytes.Equal(got[i], sent[i]) {
				t.Fatalf("round %d frame %d differs", r, i)
			}
		}
	}
	s := p.Stats()
	if s.RxPackets != rounds*batch || s.TxPackets != rounds*batch || s.RxDropped != 0 || s.TxDropped != 0 {
		t.Errorf("Stats %+v", s)
	}
	if !waitTrue(func() bool { q.Flush(); _, tx := q.InFlight(); return tx == 0 }) {
		t.Fatal("frames still in flight")
	}
	rxHeld, _ := q.InFlight()
	if q.Pool().Free()+rxHeld != q.Pool().Size() || rxHeld != 64 {
		t.Errorf("pool %d free, %d lent for rx, %d frames", q.Pool().Free(), rxHeld, q.Pool().Size())
	}
}

// BenchmarkTxBurst transmits bursts of 32 64-byte frames in copy mode (the
// peer's stack drops them); most of the time is the kernel's copy-mode
// transmit path.
func BenchmarkTxBurst(b *testing.B) {
	l := newLab(b, 1)
	p := l.open(b, port.Config{XDPMode: "native", ZeroCopy: "off"})
	q := p.XSKQueue(0)
	peer := l.link(b, labPeer).Attrs().HardwareAddr
	frame := udpFrame(b, p.MAC(), peer, 10000, []byte("gvsxdp-bench"), 0, 18)
	const burst = 32
	bufs := make([]*pktbuf.Buf, burst)
	b.ReportAllocs()
	for b.Loop() {
		for i := range bufs {
			bufs[i] = q.Alloc()
			if bufs[i] == nil {
				b.Fatal("pool exhausted")
			}
			bufs[i].CopyFrom(frame)
		}
		port.TxOwned(q, bufs)
		q.Flush()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*burst), "ns/pkt")
	if d := q.Counters().TxDropped.Load(); d > 0 {
		b.Logf("%d frames refused by a full tx ring", d)
	}
}
