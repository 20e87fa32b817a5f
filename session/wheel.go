package session

import (
	"math"

	"github.com/gvs-lb/gvs/header"
)

// The timer wheel: a hashed timing wheel of WheelSlots slots, one tick
// each. Every conn is on exactly one circular doubly linked list, threaded
// through Conn.tnext/tprev as uint32 indexes: a slot's list, the "doomed"
// list of ExpireNow, or the in-progress list of the slot Expire is working
// through. The list heads are sentinel nodes numbered after the slab
// (index cap+i), with their links in wheel.next/prev, so unlinking needs no
// knowledge of which list a conn is on.
//
// Invariant: a conn is filed under a slot that the wheel reaches no later
// than the conn's expiry tick. Touch only moves expiry later (LVS resets
// the timeout of the conn's current state on every packet), so it just
// writes Conn.expires and the conn stays where it is; when the wheel gets
// there and the conn is not yet due, it is re-filed under its current
// expiry. The rare Touch that moves expiry earlier (a state with a shorter
// timeout, or shorter Timeouts) re-files at once. A conn whose expiry is
// more than a revolution away is re-filed under the same slot on each
// revolution.
//
// Expire bounds its work per call: at most max expirations and at most
// refileFactor×max re-filings; a slot interrupted half-way stays on the
// in-progress list and is finished by the next call.
type wheel struct {
	base  uint32 // sentinel index of slot 0: the table's capacity
	size  uint32 // number of slots, a power of two
	mask  uint32
	next  []uint32 // links of the sentinels: slots, then doomed, then in-progress
	prev  []uint32
	cur   uint32 // the next tick whose slot has not been started
	begun bool   // cur is set
}

const refileFactor = 16

func (w *wheel) init(base, size uint32) {
	w.base, w.size, w.mask = base, size, size-1
	w.next = make([]uint32, size+2)
	w.prev = make([]uint32, size+2)
	w.reset()
}

func (w *wheel) reset() {
	for i := range w.next {
		s := w.base + uint32(i)
		w.next[i], w.prev[i] = s, s
	}
	w.begun = false
}

// start sets the wheel's clock on the first call that tells the time.
func (w *wheel) start(now uint32) {
	if !w.begun {
		w.cur, w.begun = now, true
	}
}

func (w *wheel) doomed() uint32     { return w.base + w.size }
func (w *wheel) inProgress() uint32 { return w.base + w.size + 1 }

func (t *Table) nextOf(i uint32) uint32 {
	if i < t.cap {
		return t.conns[i].tnext
	}
	return t.wheel.next[i-t.cap]
}

func (t *Table) setNext(i, v uint32) {
	if i < t.cap {
		t.conns[i].tnext = v
	} else {
		t.wheel.next[i-t.cap] = v
	}
}

func (t *Table) setPrev(i, v uint32) {
	if i < t.cap {
		t.conns[i].tprev = v
	} else {
		t.wheel.prev[i-t.cap] = v
	}
}

// unlink takes conn id off whatever list it is on.
func (t *Table) unlink(id uint32) {
	c := &t.conns[id]
	t.setNext(c.tprev, c.tnext)
	t.setPrev(c.tnext, c.tprev)
}

// push puts conn id at the head of the list with sentinel head.
func (t *Table) push(head, id uint32) {
	first := t.nextOf(head)
	c := &t.conns[id]
	c.tprev, c.tnext = head, first
	t.setPrev(first, id)
	t.setNext(head, id)
}

// file puts conn id under the slot of tick exp, or of the wheel's current
// tick if exp is already behind it.
func (t *Table) file(id, exp uint32) {
	w := &t.wheel
	if int32(exp-w.cur) < 0 {
		exp = w.cur
	}
	t.push(w.base+(exp&w.mask), id)
}

// Touch records a packet on conn id at now: the conn will expire after
// the timeout of its current state. It is the per-packet call: usually a
// single store. Unknown ids are ignored.
func (t *Table) Touch(id, now uint32) {
	if id >= t.cap {
		return
	}
	c := &t.conns[id]
	if c.Proto == 0 {
		return
	}
	exp := now + t.timeout(c.State)
	if int32(exp-c.expires) < 0 && c.Flags&flagDoomed == 0 {
		t.unlink(id)
		t.file(id, exp)
	}
	c.expires = exp
}

// Update applies one packet to conn id: for TCP the LVS state transition
// for a segment with tcpFlags in direction dir (see Transition), then Touch.
// It returns the conn's state and the change for the destination counters.
func (t *Table) Update(id uint32, dir Direction, tcpFlags uint8, now uint32) (State, Change) {
	c := t.Get(id)
	if c == nil {
		return StateNone, Unchanged
	}
	s, ch := c.State, Unchanged
	if c.Proto == header.ProtoTCP {
		s, ch = Transition(c, dir, tcpFlags)
	}
	t.Touch(id, now)
	return s, ch
}

// ExpireNow makes conn id due at once: the next Expire call hands it to fn
// and removes it, whatever happens to it meanwhile. It reports whether
// there was such a conn.
func (t *Table) ExpireNow(id uint32) bool {
	c := t.Get(id)
	if c == nil {
		return false
	}
	if c.Flags&flagDoomed == 0 {
		c.Flags |= flagDoomed
		t.unlink(id)
		t.push(t.wheel.doomed(), id)
	}
	return true
}

// Expire advances the wheel to now and expires the conns that are due: it
// calls fn (which may be nil) with each, then removes it. It processes at
// most max expirations (max <= 0: no limit) and returns how many it did;
// the rest follow on the next calls. Conns queued by ExpireNow go first.
//
// fn sees the conn before it is removed, to release what the caller holds
// for it (destination counters, local port). fn may call Get, Lookup,
// Touch, Update and ExpireNow, but not Insert, Delete or Flush.
func (t *Table) Expire(now uint32, max int, fn func(id uint32, c *Conn)) int {
	w := &t.wheel
	w.start(now)
	if max <= 0 {
		max = math.MaxInt / refileFactor
	}
	n, refiles := 0, 0
	for doomed := w.doomed(); n < max; n++ {
		id := w.next[w.size]
		if id == doomed {
			break
		}
		t.expire(id, fn)
	}
	prog := w.inProgress()
	for {
		for {
			id := w.next[w.size+1]
			if id == prog {
				break
			}
			c := &t.conns[id]
			if int32(c.expires-now) <= 0 {
				if n >= max {
					return n
				}
				t.expire(id, fn)
				n++
				continue
			}
			if refiles >= refileFactor*max {
				return n
			}
			t.unlink(id)
			t.file(id, c.expires)
			refiles++
		}
		if int32(now-w.cur) < 0 {
			return n
		}
		if now-w.cur >= w.size {
			// More than a revolution behind: every slot is visited once
			// and due-ness is judged against now, so the older ticks add
			// nothing.
			w.cur = now - w.mask
		}
		t.splice(w.cur&w.mask, w.size+1)
		w.cur++
	}
}

// splice moves the whole list of sentinel slot from onto the empty list of
// sentinel to.
func (t *Table) splice(from, to uint32) {
	w := &t.wheel
	first, last := w.next[from], w.prev[from]
	if first == w.base+from {
		return
	}
	s := w.base + to
	w.next[to], w.prev[to] = first, last
	t.setPrev(first, s)
	t.setNext(last, s)
	w.next[from], w.prev[from] = w.base+from, w.base+from
}

func (t *Table) expire(id uint32, fn func(uint32, *Conn)) {
	if fn != nil {
		fn(id, &t.conns[id])
	}
	t.release(id)
	t.st.Expired++
}

// Flush calls fn (which may be nil) with every conn, then removes them
// all, and returns how many there were. fn must not change the table.
// The removals count as Deleted.
func (t *Table) Flush(fn func(id uint32, c *Conn)) int {
	n := int(t.n)
	if fn != nil {
		for id := range t.hwm {
			if c := &t.conns[id]; c.Proto != 0 {
				fn(id, c)
			}
		}
	}
	if uint64(t.n)*16 < uint64(len(t.index)) {
		// few conns: delete them one by one rather than clear the index
		for id := range t.hwm {
			if t.conns[id].Proto != 0 {
				t.release(id)
			}
		}
	} else {
		clear(t.index)
		clear(t.conns[:t.hwm])
		t.hwm, t.free, t.n = 0, NoID, 0
		cur, begun := t.wheel.cur, t.wheel.begun
		t.wheel.reset()
		t.wheel.cur, t.wheel.begun = cur, begun
	}
	t.st.Deleted += uint64(n)
	return n
}
