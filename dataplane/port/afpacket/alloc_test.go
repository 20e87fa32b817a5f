//go:build linux

package afpacket

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
)

// pingPong is two driver ports facing each other over the veth pair: a
// burst goes from A to B and back, through TxBurst and RxBurst only.
type pingPong struct {
	qa, qb   port.Queue
	a, b     []*pktbuf.Buf
	fds      [2][]unix.PollFd
	timeout  unix.Timespec
	deadline time.Duration
}

func newPingPong(t testing.TB, l *lab, burst int) *pingPong {
	pa := l.open(port.Config{}, Options{})
	pb := l.openIn(l.nsB, devB, port.Config{Name: "dp1"}, Options{})
	pp := &pingPong{
		qa: pa.Queue(0), qb: pb.Queue(0),
		a: make([]*pktbuf.Buf, burst), b: make([]*pktbuf.Buf, burst),
		timeout: unix.NsecToTimespec(int64(100 * time.Millisecond)), deadline: waitFor,
	}
	pp.fds[0] = []unix.PollFd{{Fd: int32(pp.qa.PollFD()), Events: unix.POLLIN}}
	pp.fds[1] = []unix.PollFd{{Fd: int32(pp.qb.PollFD()), Events: unix.POLLIN}}
	for i := range pp.a {
		pp.a[i] = pp.qa.Alloc()
		if !pp.a[i].CopyFrom(udp(l.t, pa.MAC(), pb.MAC(), uint16(5000+i), 80, payload(18, byte(i)))) {
			t.Fatal("CopyFrom")
		}
	}
	return pp
}

// round sends the burst A→B, B→A; false if a leg took longer than the
// deadline.
func (pp *pingPong) round() bool {
	if pp.qa.TxBurst(pp.a) != len(pp.a) {
		return false
	}
	if !pp.fill(pp.qb, pp.b, pp.fds[1]) {
		return false
	}
	if pp.qb.TxBurst(pp.b) != len(pp.b) {
		return false
	}
	if !pp.fill(pp.qa, pp.a, pp.fds[0]) {
		return false
	}
	// An idle worker's pair of calls: an empty RxBurst, then Flush (which
	// then reads the socket's error).
	for _, q := range []port.Queue{pp.qa, pp.qb} {
		q.RxBurst(pp.b[:0])
		q.Flush()
	}
	return true
}

func (pp *pingPong) fill(q port.Queue, bufs []*pktbuf.Buf, fds []unix.PollFd) bool {
	end := time.Now().Add(pp.deadline)
	n := 0
	for n < len(bufs) {
		n += q.RxBurst(bufs[n:])
		if n == len(bufs) {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		fds[0].Revents = 0
		unix.Ppoll(fds, &pp.timeout, nil)
	}
	return true
}

// TestAllocs asserts that a burst through TxBurst and RxBurst on both ends,
// and Flush, allocate nothing once warm.
func TestAllocs(t *testing.T) {
	l := newLab(t)
	pp := newPingPong(t, l, 32)
	for i := 0; i < 3; i++ {
		if !pp.round() {
			t.Fatal("warm-up round lost packets")
		}
	}
	ok := true
	allocs := testing.AllocsPerRun(20, func() {
		if !pp.round() {
			ok = false
		}
	})
	if !ok {
		t.Fatal("a round lost packets")
	}
	if allocs != 0 {
		t.Errorf("%.1f allocations per round of RxBurst+TxBurst on two ports, want 0", allocs)
	}
	c := pp.qa.Counters()
	if c.TxPackets.Load() != c.RxPackets.Load() || c.TxPackets.Load() != 24*32 {
		t.Errorf("port A sent %d, received %d, want %d each", c.TxPackets.Load(), c.RxPackets.Load(), 24*32)
	}
}

// BenchmarkPingPong measures a 32-frame burst A→B→A (both directions
// through the kernel's veth and the driver); ns/op is per round. With one
// burst in flight each leg waits for the kernel to retire a partly filled
// block, so the result is dominated by Options.BlockTimeout (~2 ms a round):
// it shows the latency cost of TPACKET_V3 at low rates, not throughput.
func BenchmarkPingPong(b *testing.B) {
	l := newLab(b)
	pp := newPingPong(b, l, 32)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !pp.round() {
			b.Fatal("a round lost packets")
		}
	}
	b.ReportMetric(float64(2*32*b.N)/b.Elapsed().Seconds(), "pkts/s")
}
