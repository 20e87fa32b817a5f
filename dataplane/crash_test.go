package dataplane

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// TestWorkerPanicReported: a panic on a worker's thread while it holds a
// frame reaches OnCrash with the frame (hex, bounded) and the stack, and
// the other goroutines are not taken down with it.
func TestWorkerPanicReported(t *testing.T) {
	reports := make(chan CrashReport, 1)
	d := fixture{Options: Options{ConnCapacity: 64, OnCrash: func(r CrashReport) { reports <- r }}}.build(t).d
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	frame := make([]byte, 1000)
	for i := range frame {
		frame[i] = byte(i)
	}
	w := d.workers[0]
	w.ctl <- func() {
		b := w.queues[0].Alloc()
		b.CopyFrom(frame)
		w.cur = b
		var m map[int]int
		m[1] = 1 // a nil-map write: a runtime panic, as a bug would give
	}
	w.wake()
	select {
	case r := <-reports:
		if r.Where != "worker 0" || !strings.Contains(r.String(), "nil map") {
			t.Errorf("report %q", r)
		}
		if r.FrameLen != len(frame) || r.Frame != hex.EncodeToString(frame[:crashFrameMax]) {
			t.Errorf("frame in the report: %d bytes, %q", r.FrameLen, r.Frame)
		}
		if !strings.Contains(string(r.Stack), "TestWorkerPanicReported") {
			t.Errorf("the stack does not name the panicking function:\n%s", r.Stack)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no crash report")
	}
}
