package dataplane

// Connection expiry and the per-destination traffic counters a worker
// keeps for its connections.

import (
	"sync/atomic"

	"github.com/gvs-lb/gvs/session"
)

// expireConns releases what expired connections held.
func (w *Worker) expireConns() {
	w.sess.Expire(w.tick(), w.dp.opts.ConnExpirePerLoop, w.onExpire)
	w.sess.Publish() // the table's fill for LBUsage: a few stores per loop
	w.fragService()  // held fragments: released or timed out (lbfrag.go)
	w.xdpSweep()     // offloaded connections' traffic and timers (lbxdp.go)
}

func (w *Worker) connGone(id uint32, c *session.Conn) {
	w.connRelease(id, c)
	w.ctr.inc(CtrLBConnsExpired)
}

// connRelease gives back what a connection held: its destination's
// counter, its persistence template reference, its local port; and tells
// session sync it is gone. Expiry and eviction (lbpressure.go) both end
// here.
func (w *Worker) connRelease(id uint32, c *session.Conn) {
	if d := w.lb.Dests[c.Dest]; d != nil {
		if c.State.Active() {
			d.C.Active.Add(-1)
		} else {
			d.C.Inactive.Add(-1)
		}
	}
	w.connUnref(c)
	w.xdpGone(id, c) // lbxdp.go
	if c.Flags&session.FlagAdjusted != 0 {
		w.sp.release(c) // a held segment (lbsynproxy.go)
	}
	snat := false
	if w.isMasq(id) {
		snat = c.HasLocal()
		w.masqGone(id, c) // lbmasq.go
	}
	if c.HasLocal() {
		l := c.LAddrPort()
		rs := unmapAP(c.DAddrPort())
		if snat {
			rs = snatPeer // lbsnat.go
		}
		w.pool.Put(l.Addr().Unmap(), rs, l.Port())
	}
	w.syncGone(c)
}

// lbStat counts one destination's traffic on one worker: written by the
// worker (one uncontended atomic add per field), summed by the API.
type lbStat struct {
	inPkts, outPkts, inBytes, outBytes atomic.Uint64
}

// growLBStats makes room for destination ids up to max; it runs when the
// service table changes, never per packet.
func (w *Worker) growLBStats(max int) {
	n := make([]lbStat, max+64)
	for i := range w.lbStats {
		o := &w.lbStats[i]
		n[i].inPkts.Store(o.inPkts.Load())
		n[i].outPkts.Store(o.outPkts.Load())
		n[i].inBytes.Store(o.inBytes.Load())
		n[i].outBytes.Store(o.outBytes.Load())
	}
	w.lbStats = n
	w.lbPub.Store(&n)
}
