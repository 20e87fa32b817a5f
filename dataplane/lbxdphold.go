package dataplane

// The XDP fast path's take-backs (lbxdp.go): a connection's directions
// leave the fast path, and the packets of a direction the program
// forwarded wait until the program's last ones have arrived (docs/xdp.md).

import (
	"net/netip"
	"time"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port/afxdp/xdpfast"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/session"
)

// xdpHeld is a translated packet held after its direction was taken back.
type xdpHeld struct {
	b      *pktbuf.Buf
	off, n int // the IP packet within b.Bytes()
	dst    netip.Addr
	until  int64
	key    uint64 // its direction's key of drain
}

// xdpDrain is a direction taken back while the program's last packets of
// it may still be in the kernel.
type xdpDrain struct {
	until int64 // when its packets go at the latest
	// fast (TCP): where the segments the program forwarded ended; once the
	// other direction acknowledges fast.End, those have all arrived and the
	// drain ends (xdpAckDrain)
	fast xdpfast.SeqEnds
}

// xdpGone is connRelease's part: a connection that ends leaves the fast
// path with it.
func (w *Worker) xdpGone(id uint32, c *session.Conn) {
	if !w.xdp.on {
		return
	}
	w.xdp.seen[id] = 0 // the next connection in this slot counts from nothing
	if w.xdp.slot[id] != 0 {
		w.xdpRemove(id, c)
	}
}

// xdpRemove takes offloaded connection id back: its entries' last counts
// go to its destination's counters and the entries are deleted.
func (w *Worker) xdpRemove(id uint32, c *session.Conn) {
	x := &w.xdp
	// the hold runs from the entries' deletion, which may come late in a
	// long iteration: the clock now, not w.now (see xdpMarks)
	now := w.dp.clock()
	i := x.slot[id] - 1
	xc := &x.conns[i]
	for dir := session.In; dir <= session.Out; dir++ {
		if xc.dirs&(1<<dir) == 0 {
			continue
		}
		t := x.ports[xc.dir[dir].port].t
		k := xdpKey(c, dir)
		e, err := t.Lookup(k)
		if err == nil {
			w.xdpCount(c, dir, &xc.dir[dir], e)
			if dir == session.Out && e.Seq.Known && e.Packets > xc.endsAfter {
				// the server's segments the program forwarded: the numbers
				// of the resets at the connection's end (lbreset.go)
				w.sess.NoteEnds(id, e.Seq.End, e.Seq.Ack)
			}
		}
		_ = t.Delete(k) // gone already: nothing to undo
		w.ctr.inc(CtrLBXDPRemoved)
		if err != nil || e.Packets > 0 || !e.Armed && c.Proto == header.ProtoTCP {
			// the program forwarded some (or may have): the next packets
			// wait until those have left
			if x.drain == nil {
				x.drain = make(map[uint64]xdpDrain)
			}
			d := xdpDrain{until: now + xdpDrainHold}
			if err == nil {
				d.fast = e.Seq
			}
			x.drain[xdpDrainKey(id, dir)] = d
		}
	}
	last := len(x.conns) - 1
	if int(i) != last {
		x.conns[i] = x.conns[last]
		x.slot[x.conns[i].id] = i + 1
	}
	x.conns = x.conns[:last]
	x.slot[id] = 0
	if x.sweep > len(x.conns) {
		x.sweep = len(x.conns)
	}
}

// xdpForgetEnds is the fast path's part of forgetEnds (lbreset.go): the
// server numbers the program noted for connection id until now are not
// this node's to reset with either; those of the segments it forwards from
// now on are (the flow runs through this node again).
func (w *Worker) xdpForgetEnds(id uint32) {
	x := &w.xdp
	if !x.on || x.slot[id] == 0 {
		return
	}
	xc := &x.conns[x.slot[id]-1]
	if xc.dirs&(1<<session.Out) == 0 {
		return
	}
	xc.endsAfter = ^uint64(0) // unreadable: none of its notes count
	if e, err := x.ports[xc.dir[session.Out].port].t.Lookup(xdpKey(w.sess.Get(id), session.Out)); err == nil {
		xc.endsAfter = e.Packets
	}
}

// xdpDrainKey is direction dir of connection id as a key of drain.
func xdpDrainKey(id uint32, dir session.Direction) uint64 { return uint64(id)<<1 | uint64(dir) }

// xdpDraining reports whether direction dir of connection id was taken
// back less than xdpDrainHold ago, and until when it drains; it forgets
// the direction when the time is up.
func (w *Worker) xdpDraining(id uint32, dir session.Direction) (until int64, ok bool) {
	k := xdpDrainKey(id, dir)
	d, ok := w.xdp.drain[k]
	if ok && d.until <= w.now {
		delete(w.xdp.drain, k)
		return 0, false
	}
	return d.until, ok
}

// xdpAckDrain ends the drain of the other direction of connection id when
// the TCP segment in l3 (t: its transport; of direction dir) acknowledges
// everything the program forwarded of that direction: the peer has
// received it, so what is held of that direction can go now, and nothing
// needs holding any more.
func (w *Worker) xdpAckDrain(l3 []byte, t header.Transport, id uint32, dir session.Direction) {
	x := &w.xdp
	k := xdpDrainKey(id, 1-dir)
	d, ok := x.drain[k]
	if !ok || !d.fast.Known || t.Fragment() || t.TCPFlags(l3)&header.TCPFlagACK == 0 || // TCPFlags: 0 without a whole header
		int32(header.TCP(l3[t.Off:]).Ack()-d.fast.End) < 0 {
		return
	}
	delete(x.drain, k)
	for i := range x.held {
		if h := &x.held[i]; h.key == k {
			h.until = w.now
			x.heldNext = min(x.heldNext, w.now)
		}
	}
	w.ctr.inc(CtrLBXDPHoldAcked)
}

// xdpHold is lbConn's last step before routing a translated packet (l3
// within b, to dst; t its transport) of direction dir of connection id,
// while some direction drains or packets are held: a TCP segment that
// acknowledges what the program forwarded of the other direction ends that
// direction's drain; held packets that are due go first; the packet is
// held when its direction drains (true: b is taken).
func (w *Worker) xdpHold(b *pktbuf.Buf, l3 []byte, t header.Transport, dst netip.Addr, id uint32, dir session.Direction) bool {
	x := &w.xdp
	if len(x.drain) > 0 && t.Proto == header.ProtoTCP {
		w.xdpAckDrain(l3, t, id, dir)
	}
	if len(x.held) > 0 {
		w.xdpRelease(false)
	}
	if len(x.drain) == 0 {
		return false
	}
	until, draining := w.xdpDraining(id, dir)
	if !draining {
		return false
	}
	if len(x.held) == xdpHoldMax {
		// no room: what is held goes now, in order, and this one after it
		w.ctr.inc(CtrLBXDPHoldFull)
		w.xdpRelease(true)
		return false
	}
	buf := b.Bytes()
	if len(x.held) == 0 || until < x.heldNext {
		x.heldNext = until
	}
	x.held = append(x.held, xdpHeld{b: b, off: len(buf) - len(l3), n: len(l3), dst: dst, until: until, key: xdpDrainKey(id, dir)})
	w.ctr.inc(CtrLBXDPHeld)
	return true
}

// xdpRelease routes the held packets that are due (all of them when all
// is set: the worker stops), in the order they came; the others stay.
// Called every loop while packets are held, and by xdpHold.
func (w *Worker) xdpRelease(all bool) {
	x := &w.xdp
	if !all && w.now < x.heldNext {
		return
	}
	keep := x.held[:0]
	for _, h := range x.held {
		if !all && h.until > w.now {
			if len(keep) == 0 || h.until < x.heldNext {
				x.heldNext = h.until
			}
			keep = append(keep, h)
			continue
		}
		l3 := h.b.Bytes()[h.off : h.off+h.n]
		if w.lbRoute(h.b, l3, h.dst) > 0 {
			w.drop(h.b, CtrDropMTUExceeded) // the route's MTU shrank while it was held
		}
	}
	clear(x.held[len(keep):])
	x.held = keep
	if len(x.drain) > 0 && len(x.held) == 0 {
		for k, d := range x.drain {
			if d.until <= w.now {
				delete(x.drain, k)
			}
		}
	}
}

// xdpHoldWait is how long the adaptive idle mode may sleep before held
// packets are due (0: none held).
func (w *Worker) xdpHoldWait() time.Duration {
	if len(w.xdp.marks) > 0 { // a mark to write once it settled (xdpMarks)
		if w.xdp.pollMarks {
			return xdpMarkPoll
		}
		return time.Duration(xdpArmSettle)
	}
	if len(w.xdp.held) == 0 {
		return 0
	}
	return time.Duration(max(w.xdp.heldNext-w.now, 1))
}
