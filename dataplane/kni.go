package dataplane

// The worker side of the KNI exception path. Frames the dataplane does not
// consume are copied into the worker's punt ring (so the receive buffer goes
// back to its driver at once) under a per-port token bucket, and the master
// writes them to the port's TAP device. Frames the kernel sends on a TAP
// come back through per-port rings to worker 0, which transmits them on
// queue 0 of the port.

import "github.com/gvs-lb/gvs/dataplane/pktbuf"

// toKNI hands b to the kernel behind its port's KNI device.
func (w *Worker) toKNI(b *pktbuf.Buf) {
	p := int(b.Port)
	switch {
	case !w.snap.kniOn[p]:
		w.drop(b, CtrDropKNIDisabled)
	case !w.kniBucket[p].allow(w.now):
		w.drop(b, CtrDropKNIRateLimit)
	case !w.kniOut.Put(b.Bytes(), uint16(p)):
		w.drop(b, CtrDropKNIRingFull)
	default:
		w.ctr.inc(CtrKNIPunted)
		w.kniSignal = true
		b.Free()
	}
}

// kniTransmit sends frames the kernel wrote to the KNI devices (worker 0).
func (w *Worker) kniTransmit() int {
	n := 0
	for p, r := range w.kniIn {
		for i := 0; i < w.burst; i++ {
			f, _, ok := r.Peek()
			if !ok {
				break
			}
			b := w.queues[p].Alloc()
			if b == nil {
				w.ctr.inc(CtrDropNoBuffer)
				break // retried next loop; the master drops when the ring fills
			}
			if !b.CopyFrom(f) {
				b.Free()
				w.ctr.inc(CtrDropNoBuffer)
			} else {
				w.enqueueTx(p, b)
				w.ctr.inc(CtrKNISent)
			}
			r.Release()
			n++
		}
	}
	return n
}
