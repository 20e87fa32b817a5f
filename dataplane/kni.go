package dataplane

// The worker side of the KNI exception path. Frames the dataplane does not
// consume are copied into a punt ring of the worker (so the receive buffer
// goes back to its driver at once) under a per-port token bucket, and the
// master writes them to the port's TAP device. Frames the kernel sends on a
// TAP come back through per-port rings to worker 0, which transmits them on
// queue 0 of the port.
//
// Two classes keep the exception path from being starved: control frames —
// ARP and neighbour discovery, traffic for the kernel's own KNI addresses
// (routing daemons, health-check replies, ssh) and link-local multicast
// (OSPF, VRRP) — have their own ring and their own budget, and the master
// writes them first; everything else punted shares the bulk budget. A flood
// of bulk frames can use up the bulk budget only.

import "github.com/gvs-lb/gvs/dataplane/pktbuf"

// kniClass says which budget a punted frame is charged to.
type kniClass uint8

const (
	kniBulk kniClass = iota
	kniControl
)

// toKNI hands b to the kernel behind its port's KNI device.
func (w *Worker) toKNI(b *pktbuf.Buf, class kniClass) {
	p := int(b.Port)
	bucket, out, limited, full := &w.kniBucket[p], w.kniOut, CtrDropKNIRateLimit, CtrDropKNIRingFull
	if class == kniControl {
		bucket, out, limited, full = &w.kniCtlBucket[p], w.kniCtlOut, CtrDropKNICtlRateLimit, CtrDropKNICtlRingFull
	}
	switch {
	case !w.snap.kniOn[p]:
		w.drop(b, CtrDropKNIDisabled)
	case !bucket.allow(w.now):
		w.drop(b, limited)
	case !out.Put(b.Bytes(), uint16(p)):
		w.drop(b, full)
	default:
		if w.trBuf == b {
			w.traceKNI(p)
		}
		w.ctr.inc(CtrKNIPunted)
		w.kniSignal = true
		b.Free()
	}
}

// toKNIOr punts b to the kernel in the bulk class, or, where the port has
// no KNI device, drops it under the counter that names why the dataplane
// itself had no use for it.
func (w *Worker) toKNIOr(b *pktbuf.Buf, why Counter) {
	if !w.snap.kniOn[b.Port] {
		w.drop(b, why)
		return
	}
	w.toKNI(b, kniBulk)
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
