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

// connRelease resets a TCP connection's ends (lbreset.go) and gives back
// what the connection held: its destination's counter, its persistence
// template reference, its local port; and tells session sync it is gone.
// Expiry and eviction (lbpressure.go) both end here.
func (w *Worker) connRelease(id uint32, c *session.Conn) {
	w.xdpGone(id, c) // lbxdp.go; first: it notes the fast path's sequence numbers for connReset
	w.connReset(id, c)
	if d := w.lb.Dests[c.Dest]; d != nil {
		if c.State.Active() {
			d.C.Active.Add(-1)
		} else {
			d.C.Inactive.Add(-1)
		}
	}
	w.connUnref(c)
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

// lbStat is one destination's traffic on one worker as the API reads it:
// the worker counts in lbCount, with no atomic operation per packet, and
// stores the totals of the destinations it counted for here once per loop
// iteration (publish), as it does its counters; the API sums the workers'.
type lbStat struct {
	inPkts, outPkts, inBytes, outBytes atomic.Uint64
}

// lbCount is the worker's own running total for one destination.
type lbCount struct {
	inPkts, outPkts, inBytes, outBytes uint64
	dirty                              bool // in lbDirty: to publish
}

// destIn counts a packet of n bytes from a client towards destination id.
func (w *Worker) destIn(id uint32, n uint64) {
	s := &w.lbCounts[id]
	s.inPkts++
	s.inBytes += n
	w.destDirty(id, s)
}

// destOut counts a packet of n bytes from destination id to a client.
func (w *Worker) destOut(id uint32, n uint64) {
	s := &w.lbCounts[id]
	s.outPkts++
	s.outBytes += n
	w.destDirty(id, s)
}

// destAdd counts in and out packets and bytes of destination id at once
// (what the XDP fast path forwarded, lbxdp.go).
func (w *Worker) destAdd(id uint32, inPkts, inBytes, outPkts, outBytes uint64) {
	s := &w.lbCounts[id]
	s.inPkts += inPkts
	s.inBytes += inBytes
	s.outPkts += outPkts
	s.outBytes += outBytes
	w.destDirty(id, s)
}

func (w *Worker) destDirty(id uint32, s *lbCount) {
	if !s.dirty {
		s.dirty = true
		w.lbDirty = append(w.lbDirty, id) // cap: len(lbCounts), no allocation
	}
}

// publishDests stores the totals of the destinations counted for since the
// last call where the API reads them.
func (w *Worker) publishDests() {
	for _, id := range w.lbDirty {
		s, p := &w.lbCounts[id], &w.lbStats[id]
		p.inPkts.Store(s.inPkts)
		p.outPkts.Store(s.outPkts)
		p.inBytes.Store(s.inBytes)
		p.outBytes.Store(s.outBytes)
		s.dirty = false
	}
	w.lbDirty = w.lbDirty[:0]
}

// growLBStats makes room for destination ids up to max; it runs when the
// service table changes, never per packet.
func (w *Worker) growLBStats(max int) {
	w.publishDests()
	n := make([]lbStat, max+64)
	c := make([]lbCount, len(n))
	copy(c, w.lbCounts)
	for i := range w.lbStats {
		o := &w.lbStats[i]
		n[i].inPkts.Store(o.inPkts.Load())
		n[i].outPkts.Store(o.outPkts.Load())
		n[i].inBytes.Store(o.inBytes.Load())
		n[i].outBytes.Store(o.outBytes.Load())
	}
	w.lbStats, w.lbCounts, w.lbDirty = n, c, make([]uint32, 0, len(n))
	w.lbPub.Store(&n)
}
