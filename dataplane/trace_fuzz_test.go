package dataplane

import "testing"

// FuzzTrace runs any frame through the FullNAT test dataplane with a trace
// of every packet armed: nothing panics, every packet is traced, the stage
// that ends a packet's trace (transmit, drop, kni, redirect) is its last,
// and the record's decode and stages format without panicking.
func FuzzTrace(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s.port, s.frame)
	}
	l := newLBLoop(f)
	l.establish(f)
	f.Fuzz(func(t *testing.T, port uint8, frame []byte) {
		if len(frame) > 1514 {
			return
		}
		tr := l.d.trace.Load()
		if tr == nil { // the last one's records are used up
			var err error
			if tr, err = l.d.armTrace(TraceOptions{Count: MaxTraceCount, Port: -1, Worker: -1}); err != nil {
				t.Fatal(err)
			}
		}
		before := tr.next.Load()
		l.rxBurst(t, int(port%2), frame, 1)
		l.releaseAll()
		if tr.next.Load() != before+1 || !tr.ready[before].Load() {
			t.Fatalf("the packet was not traced (%d → %d records)", before, tr.next.Load())
		}
		r := &tr.recs[before]
		for i, e := range r.Stages() {
			switch e.Stage {
			case StageTransmit, StageDrop, StageKNI, StageRedirect:
				if i != r.NEvent-1 {
					t.Fatalf("stage %s is not the last of %v", e.Stage, stageList(r))
				}
			}
			if e.At < 0 {
				t.Fatalf("stage %s at %d ns", e.Stage, e.At)
			}
		}
		if pkt, steps := l.d.DescribeTrace(r); pkt == "" || len(steps) != r.NEvent {
			t.Fatalf("decode %q, %d steps for %d stages", pkt, len(steps), r.NEvent)
		}
	})
}
