package dataplane_test

import (
	"math/bits"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
	"github.com/gvs-lb/gvs/internal/testenv"
)

// TestLoopHist: every loop is counted once in the duration histogram, and
// its highest bucket is the one holding the longest loop.
func TestLoopHist(t *testing.T) {
	p0 := mem.New(port.Config{Name: "dp0", Queues: 1}, lsMAC0)
	d, err := dataplane.New(dataplane.Options{Workers: 1, Idle: dataplane.IdleBusy}, []dataplane.PortSpec{{Port: p0}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "1000 loops", func() bool { return d.Workers()[0].Loop.Loops >= 1000 })
	d.Stop()
	l := d.Workers()[0].Loop
	var sum uint64
	top := -1
	for i, n := range l.LoopHist {
		sum += n
		if n > 0 {
			top = i
		}
	}
	if sum != l.Loops {
		t.Errorf("the histogram counts %d loops, the worker ran %d", sum, l.Loops)
	}
	if want := min(bits.Len64(l.LongestLoopNs), dataplane.LoopHistBuckets-1); top != want {
		t.Errorf("highest bucket %d, but the longest loop (%d ns) belongs in bucket %d", top, l.LongestLoopNs, want)
	}
}

// TestLoopBusy: the busy time counts only iterations that had packets:
// none while the worker polls an empty port, some once it handles frames,
// never more than the time it ran.
func TestLoopBusy(t *testing.T) {
	p0 := mem.New(port.Config{Name: "dp0", Queues: 1}, lsMAC0)
	d, err := dataplane.New(dataplane.Options{Workers: 1, Idle: dataplane.IdleBusy}, []dataplane.PortSpec{{Port: p0}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	testenv.Eventually(t, 10*time.Second, "1000 loops", func() bool { return d.Workers()[0].Loop.Loops >= 1000 })
	if l := d.Workers()[0].Loop; l.BusyNs != 0 || l.Packets != 0 {
		t.Fatalf("an idle worker: %d packets, busy %d ns over %d loops", l.Packets, l.BusyNs, l.Loops)
	}
	// frames for another MAC: each is received, looked at and dropped
	frame := make([]byte, 60)
	copy(frame, lsMACDst)
	copy(frame[6:], lsMACSrc)
	frame[12], frame[13] = 0x08, 0x00
	const n = 100
	for range n {
		if !p0.MemQueue(0).Inject(frame) {
			t.Fatal("the port's receive queue is full")
		}
	}
	testenv.Eventually(t, 10*time.Second, "the frames handled", func() bool { return d.Workers()[0].Loop.Packets >= n })
	l := d.Workers()[0].Loop
	if ran := uint64(time.Since(start)); l.BusyNs == 0 || l.BusyNs > ran {
		t.Fatalf("after %d packets: busy %d ns, the worker ran at most %d ns", l.Packets, l.BusyNs, ran)
	}
}

// TestListingSteps: a listing's steps are counted per worker, at least
// one per listChunkSize conns, and their total time covers the longest.
func TestListingSteps(t *testing.T) {
	const n = 5000
	p0 := mem.New(port.Config{Name: "dp0", Queues: 1}, lsMAC0)
	p1 := mem.New(port.Config{Name: "dp1", Queues: 1}, lsMAC1)
	d, err := dataplane.New(dataplane.Options{Workers: 1, Forward4: true, ConnCapacity: 1 << 14, Idle: dataplane.IdleAdaptive},
		[]dataplane.PortSpec{{Port: p0}, {Port: p1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := dataplane.FillConns(d, lsVIP, lsLAddr, n); err != nil {
		t.Fatal(err)
	}
	if s := d.ListingSteps(); len(s) != 1 || s[0] != (dataplane.ListingSteps{}) {
		t.Fatalf("before any listing: %+v", s)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	conns, err := d.Conns(nil)
	if err != nil || len(conns) != n {
		t.Fatalf("listed %d conns (%v), want %d", len(conns), err, n)
	}
	s := d.ListingSteps()[0]
	if s.Steps < (n+dataplane.ListChunkSize-1)/dataplane.ListChunkSize || s.MaxStepNs == 0 || s.StepNs < s.MaxStepNs ||
		s.StepsOver1ms > s.Steps {
		t.Errorf("after listing %d conns: %+v", n, s)
	}
}
