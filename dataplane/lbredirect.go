package dataplane

// Software flow steering: a reply to a local port another worker owns is
// handed to that worker over a per-pair frame ring.
//
// A client's segments reach the worker holding their connection as long as
// the port's queue selection keeps a flow on one queue, as a NIC's RSS
// does. It can move a flow: veth takes the sending socket's hash, which
// Linux picks anew after a retransmission timeout, and an operator can
// rewrite a NIC's RSS table at run time. So a non-SYN TCP segment a worker
// has no connection for is not dropped at once: it is handed to the next
// worker to look for its connection there (lb_seek_out), each worker at
// most once, and the last dropped it (drop_lb_not_syn). The ring tag
// carries the port and how many workers have looked. A flood of stray
// segments costs the other workers at most seekBudget hand-offs per
// worker and second; beyond that they are dropped where they land
// (lb_seek_limited).

import (
	"github.com/gvs-lb/gvs/dataplane/pktbuf"
)

// A handed frame's ring tag holds its port index in the low tagPortBits
// bits and, above them, how many workers have looked for its connection
// (seek; 0 for a redirect).
const (
	tagPortBits = 10
	tagPortMask = 1<<tagPortBits - 1
	maxPorts    = 1 << tagPortBits
	seekBudget  = 4096 // seek hand-offs per worker and second
)

// redirect hands b to the worker owning its connection.
func (w *Worker) redirect(b *pktbuf.Buf, owner int) {
	if w.handTo(b, owner, b.Port) {
		w.ctr.inc(CtrLBRedirectedOut)
	}
}

// handTo puts a copy of b on the ring to worker to, with tag; false if
// the ring was full (b dropped and counted). b is freed either way.
func (w *Worker) handTo(b *pktbuf.Buf, to int, tag uint16) bool {
	if !w.redirOut[to].Put(b.Bytes(), tag) {
		w.drop(b, CtrDropLBRedirectFull)
		return false
	}
	if w.trBuf == b {
		w.traceRedirect(to)
	}
	w.redirWake |= 1 << uint(to)
	b.Free()
	return true
}

// seek hands b, a client's TCP segment that is not a SYN and has no
// connection on this worker, to the next worker to look for its
// connection (see the top of the file): true when b was taken, false when
// every worker has looked or the budget is spent, and b is the caller's to
// drop.
func (w *Worker) seek(b *pktbuf.Buf) bool {
	n := len(w.dp.workers)
	looked := w.looked + 1
	if looked >= n {
		return false
	}
	if !w.seekRate.allow(w.now) {
		w.ctr.inc(CtrLBSeekLimited)
		return false
	}
	if w.handTo(b, (w.id+1)%n, b.Port|uint16(looked)<<tagPortBits) {
		w.ctr.inc(CtrLBSeekOut)
	}
	return true
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
			f, tag, ok := r.Peek()
			if !ok {
				break
			}
			p := tag & tagPortMask
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
				w.cur, w.looked = b, int(tag>>tagPortBits)
				if t != nil {
					w.traceRedirected(t, b, from)
				} else {
					w.input(b)
				}
				w.cur, w.looked = nil, 0
			}
			r.Release()
			n++
		}
	}
	return n
}
