package dataplane

// Software flow steering: a reply to a local port another worker owns is
// handed to that worker over a per-pair frame ring.

import (
	"github.com/gvs-lb/gvs/dataplane/pktbuf"
)

// redirect hands b to the worker owning its connection.
func (w *Worker) redirect(b *pktbuf.Buf, owner int) {
	if !w.redirOut[owner].Put(b.Bytes(), b.Port) {
		w.drop(b, CtrDropLBRedirectFull)
		return
	}
	if w.trBuf == b {
		w.traceRedirect(owner)
	}
	w.ctr.inc(CtrLBRedirectedOut)
	w.redirWake |= 1 << uint(owner)
	b.Free()
}

// redirectIn runs the frames other workers handed over through the
// pipeline; the owner's session table has their connections.
func (w *Worker) redirectIn() int {
	n := 0
	t := w.dp.trace.Load() // armed: trace what matches (trace.go)
	for from, r := range w.redirIn {
		if r == nil {
			continue
		}
		for i := 0; i < w.burst; i++ {
			f, p, ok := r.Peek()
			if !ok {
				break
			}
			b := w.queues[p].Alloc()
			if b == nil {
				w.ctr.inc(CtrDropNoBuffer)
				break
			}
			if !b.CopyFrom(f) {
				b.Free()
				w.ctr.inc(CtrDropNoBuffer)
			} else {
				b.Port = p
				w.ctr.inc(CtrLBRedirectedIn)
				w.cur = b
				if t != nil {
					w.traceRedirected(t, b, from)
				} else {
					w.input(b)
				}
				w.cur = nil
			}
			r.Release()
			n++
		}
	}
	return n
}
