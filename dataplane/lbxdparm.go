package dataplane

// The XDP fast path's armed entries (lbxdp.go): when the worker writes the
// mark of a TCP direction it offloaded, after which the program forwards
// the direction's segments (docs/xdp.md).

import (
	"time"

	"github.com/gvs-lb/gvs/dataplane/port/afxdp/xdpfast"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/session"
)

// noteAck records ack, carried by a segment of direction dir the worker
// forwarded.
func (xc *xdpConn) noteAck(dir session.Direction, ack uint32) {
	if !xc.ackSet[dir] || int32(ack-xc.acked[dir]) > 0 {
		xc.acked[dir], xc.ackSet[dir] = ack, true
	}
}

// xdpMarkDirty queues d's mark (of connection id) for xdpMarks.
func (w *Worker) xdpMarkDirty(id uint32, d *xdpDir) {
	if !d.dirty {
		d.dirty = true
		w.xdp.marks = append(w.xdp.marks, id)
	}
}

// txInFlight is a queue that tells whether transmissions are still
// waiting in the kernel (afxdp.Queue).
type txInFlight interface {
	InFlight() (rx, tx int)
}

// zeroCopyQueue is a queue that tells whether its socket runs in AF_XDP
// zero-copy mode (afxdp.Queue): the completion ring then gives a frame
// back once the device has sent it, not when the kernel took a copy.
type zeroCopyQueue interface {
	ZeroCopy() bool
}

// xdpMarkPoll bounds a worker's sleep while a mark waits for what does
// not wake it (workerXDP.pollMarks).
const xdpMarkPoll = 50 * time.Microsecond

// xdpAcked reports whether the other direction of connection c (xc) has
// acknowledged everything direction dir's worker sent, up to its mark:
// the peer has received those segments, so the kernel is no longer
// delivering any of them and the program cannot overtake one. The
// acknowledgments come from the other direction's segments the worker
// forwarded and, once that direction is offloaded, from its entry, where
// the program notes those it forwards (xdpfast.Entry.Seq). FullNAT keeps
// sequence numbers (SYN-proxy connections are not offloaded), so both
// sides count in the same space.
func (w *Worker) xdpAcked(c *session.Conn, xc *xdpConn, dir session.Direction) bool {
	if c.Proto != header.ProtoTCP {
		return false
	}
	peer := 1 - dir
	mark := xc.dir[dir].mark
	if xc.dir[dir].lastEnd != mark {
		// the worker sent a retransmission last: its bytes were
		// acknowledged from an earlier copy, and this one may still be on
		// its way
		return false
	}
	if xc.ackSet[peer] && int32(xc.acked[peer]-mark) >= 0 {
		return true
	}
	if xc.dirs&(1<<peer) == 0 {
		return false
	}
	e, err := w.xdp.ports[xc.dir[peer].port].t.Lookup(xdpKey(c, peer))
	return err == nil && e.Seq.Known && int32(e.Seq.Ack-mark) >= 0
}

// xdpMarks runs at the end of flushAll: the marks of armed entries whose
// packets have all left (their egress queue holds no transmission) are
// written to the program; the others wait for the next flush.
//
// Times are the clock's when read here, not the loop iteration's start
// (w.now): a segment forwarded in an iteration is handed to the kernel at
// its flush, and an iteration preempted on a busy core can last
// milliseconds; measured from its start, xdpArmSettle would shrink by as
// much (TestXDPOffloadLab saw a segment overtaken once in CI).
func (w *Worker) xdpMarks() {
	x := &w.xdp
	if len(x.marks) == 0 {
		return
	}
	now := w.dp.clock() // what the worker queued has been handed over by now
	keep := x.marks[:0]
	x.pollMarks = false
	for _, id := range x.marks {
		s := x.slot[id]
		if s == 0 {
			continue // taken back meanwhile
		}
		xc := &x.conns[s-1]
		c := w.sess.Get(id)
		wait := false
		for dir := session.In; dir <= session.Out; dir++ {
			d := &xc.dir[dir]
			if xc.dirs&(1<<dir) == 0 || !d.dirty {
				continue
			}
			if d.queued {
				d.sent, d.queued = now, false
			}
			q, ok := w.queues[d.oport].(txInFlight)
			zc := false
			if ok {
				z, isZC := q.(zeroCopyQueue)
				zc = isZC && z.ZeroCopy()
				if _, tx := q.InFlight(); tx > 0 {
					wait = true
					x.pollMarks = x.pollMarks || zc
					continue
				}
			}
			if now-d.sent < xdpArmSettle && !zc && !w.xdpAcked(c, xc, dir) {
				// the kernel may still be delivering it (see xdpArmSettle);
				// the other direction's acknowledgment may say it has
				// arrived first, by the program when that direction is
				// offloaded (its packets do not wake the worker)
				wait = true
				x.pollMarks = x.pollMarks || xc.dirs&(1<<(1-dir)) != 0
				continue
			}
			d.dirty = false
			if err := x.ports[d.port].t.Arm(xdpKey(c, dir), xdpfast.Mark{Seq: d.mark, LastEnd: d.lastEnd, LastAck: d.lastAck}); err != nil {
				w.ctr.inc(CtrLBXDPOffloadFailed) // stays armed: its packets go on reaching the worker
			}
		}
		if wait {
			keep = append(keep, id)
		}
	}
	x.marks = keep
}
