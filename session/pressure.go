package session

// Pressure: what a table does when connections that never complete (a SYN
// flood from random sources) fill it. Two defences, after LVS's secure_tcp
// defense levels and what DPVS operators tune by hand:
//
//   - Short timeouts. At and above the high-water mark (Options.HighWater,
//     a percentage of Capacity) a conn inserted or touched takes its
//     state's pressure timeout instead of its normal one, if shorter: a
//     SYN_RECV conn lives seconds instead of a minute. Only embryonic
//     states (NONE, SYN_SENT, SYN_RECV, SYNACK) and closing ones (FIN_WAIT,
//     TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK) shrink; ESTABLISHED, LISTEN
//     and UDP keep theirs. A conn filed before the mark keeps its expiry
//     until it is next touched, as with any timeout change.
//   - Eviction. When the table is full, Evict removes one embryonic or
//     closing TCP conn, the one nearest to expiry (for one timeout, the
//     oldest), so that a new conn can take its place. ESTABLISHED, LISTEN
//     and UDP conns are never evicted. The caller releases what the conn
//     held through the same callback it gives Expire.
//
// Evict never walks the table: it looks at the conns due now that Expire
// has not reached yet, then at the timer wheel's slots from the current
// tick on, each slot's list from its oldest filed conn (lists are pushed at
// the head), with a cursor that survives calls. One call looks at no more
// than evictScanConns conns (a quarter of them on the due list) and at most
// one revolution of slots. A slot whose oldest evictScanConns conns are not evictable is
// passed over on that lap. A lap without a victim makes Evict give up
// until the caller's clock moves to the next tick, so a table full of
// established conns costs a refused SYN one look per tick, not per SYN.

import (
	"fmt"
	"math"
	"time"

	"github.com/gvs-lb/gvs/header"
)

// DefaultHighWater is the high-water mark a dataplane uses when its
// configuration names none, in percent of the table's capacity.
const DefaultHighWater = 90

// evictScanConns bounds the conns one Evict call looks at.
const evictScanConns = 256

// Embryonic reports whether s is a TCP state before the handshake
// completed: NONE, SYN_SENT, SYN_RECV or SYNACK.
func (s State) Embryonic() bool {
	return s == StateNone || s == StateSynSent || s == StateSynRecv || s == StateSynAck
}

// Closing reports whether s is a TCP state after a FIN or RST: FIN_WAIT,
// TIME_WAIT, CLOSE, CLOSE_WAIT or LAST_ACK.
func (s State) Closing() bool {
	return s == StateFinWait || s == StateTimeWait || s == StateClose || s == StateCloseWait || s == StateLastAck
}

// evictable: the states pressure shortens and Evict may remove.
func (s State) evictable() bool { return s.Embryonic() || s.Closing() }

// DefaultPressureTimeouts returns the timeouts under pressure: a few
// seconds for embryonic and closing states (a real client's handshake takes
// a round trip; DPVS ships 3-7 s for most of these states even without
// pressure); the fields of the other states are zero (never shortened).
func DefaultPressureTimeouts() Timeouts {
	return Timeouts{
		None:      2 * time.Second,
		SynSent:   5 * time.Second,
		SynRecv:   5 * time.Second,
		SynAck:    5 * time.Second,
		FinWait:   10 * time.Second,
		TimeWait:  5 * time.Second,
		Close:     3 * time.Second,
		CloseWait: 10 * time.Second,
		LastAck:   5 * time.Second,
	}
}

// pressure is a table's high-water mark and what it does above it.
type pressure struct {
	pct      int
	hw       uint32 // conns at and above which the table is under pressure; MaxUint32: never
	timeouts Timeouts
	ticks    [numStates]uint32 // pressure timeouts; 0: not shortened
	to       [16]uint32        // by State&15: min(normal, pressure)

	// Evict's cursor: the wheel tick whose slot it looks at next, the
	// slots passed since its last victim, and the caller's tick of its
	// last fruitless lap.
	slot   uint32
	passed uint32
	missAt uint32
	missed bool
}

// setPressure validates and sets the high-water mark and the pressure
// timeouts; SetTimeouts then clamps them.
func (t *Table) setPressure(pct int, to Timeouts) error {
	if pct < 0 || pct > 100 {
		return fmt.Errorf("session: HighWater %d: must be a percentage of Capacity, 1-100 (0: no pressure handling)", pct)
	}
	p := &t.pressure
	p.pct, p.hw = pct, math.MaxUint32
	if pct > 0 {
		p.hw = uint32((uint64(t.cap)*uint64(pct) + 99) / 100)
	}
	def := DefaultPressureTimeouts()
	df, f := def.fields(), to.fields()
	p.timeouts = Timeouts{}
	pf := p.timeouts.fields()
	for i := range f {
		s := State(i)
		d := *f[i].d
		if d == 0 {
			d = *df[i].d
		}
		switch {
		case d == 0:
			continue
		case !s.evictable():
			return fmt.Errorf("session: PressureTimeouts.%s: %s never shrinks under pressure: leave it zero", f[i].name, TimeoutName(s))
		case d < 0 || (d+t.tick-1)/t.tick > maxTimeoutTicks:
			return fmt.Errorf("session: PressureTimeouts.%s (%s) is %v: must be positive and at most %v",
				f[i].name, TimeoutName(s), d, MaxTimeout(t.tick))
		}
		*pf[i].d = d
		p.ticks[i] = uint32((d + t.tick - 1) / t.tick)
	}
	return nil
}

// clamp derives the pressure timeouts in use from the normal ones.
func (p *pressure) clamp(normal *[16]uint32) {
	p.to = *normal
	for i, n := range p.ticks {
		if n != 0 && n < p.to[i] {
			p.to[i] = n
		}
	}
}

// timeout returns the timeout in ticks a conn in state s takes now.
func (t *Table) timeout(s State) uint32 {
	if t.n >= t.pressure.hw {
		return t.pressure.to[s&15]
	}
	return t.to[s&15]
}

// UnderPressure reports whether the table is at or above its high-water
// mark. Owner only.
func (t *Table) UnderPressure() bool { return t.n >= t.pressure.hw }

// HighWater returns the number of conns at and above which the table is
// under pressure, or 0 if it never is. It never changes, so any goroutine
// may call it (compare it with Published().Conns).
func (t *Table) HighWater() int {
	if t.pressure.pct == 0 {
		return 0
	}
	return int(t.pressure.hw)
}

// PressureTimeouts returns the timeouts under pressure as configured
// (zero: not shortened); a state whose normal timeout is shorter keeps
// that one.
func (t *Table) PressureTimeouts() Timeouts { return t.pressure.timeouts }

// Full reports whether the table holds Capacity conns, so that Insert
// would return ErrFull.
func (t *Table) Full() bool { return t.n == t.cap }

// Evict removes one embryonic or closing TCP conn to make room (see the
// top of this file for which one and how far it looks): it calls fn
// (which may be nil) with it, as Expire does, then removes it, and returns
// its state. It returns false if it found none; then the table is
// unchanged. fn may call Get, Lookup, Touch, Update and ExpireNow, but not
// Insert, Delete, Expire or Flush.
func (t *Table) Evict(now uint32, fn func(id uint32, c *Conn)) (State, bool) {
	p := &t.pressure
	w := &t.wheel
	if t.n == 0 || !w.begun || p.missed && p.missAt == now {
		return StateNone, false
	}
	// due conns that Expire has not reached yet are the oldest of all
	due := evictScanConns / 4
	if id, ok := t.evictable(w.base+w.size+1, &due); ok {
		return t.evict(id, fn), true
	}
	budget := evictScanConns
	if p.slot-w.cur >= w.size {
		p.slot, p.passed = w.cur, 0 // the cursor fell behind the wheel: restart at its front
	}
	for n := uint32(0); n < w.size && budget > 0; n++ {
		if id, ok := t.evictable(w.base+(p.slot&w.mask), &budget); ok {
			p.passed, p.missed = 0, false
			return t.evict(id, fn), true
		}
		p.slot++
		if p.passed++; p.passed >= w.size {
			// a whole lap without a victim: back to the front, and no
			// more looking until the clock moves
			p.slot, p.passed = w.cur, 0
			p.missed, p.missAt = true, now
			return StateNone, false
		}
	}
	return StateNone, false
}

// evictable returns the oldest filed evictable conn of the list with
// sentinel head, spending budget on every conn it looks at.
func (t *Table) evictable(head uint32, budget *int) (uint32, bool) {
	w := &t.wheel
	for id := w.prev[head-t.cap]; id != head && *budget > 0; id = t.conns[id].tprev {
		*budget--
		if c := &t.conns[id]; c.Proto == header.ProtoTCP && c.State.evictable() {
			return id, true
		}
	}
	return NoID, false
}

func (t *Table) evict(id uint32, fn func(uint32, *Conn)) State {
	c := &t.conns[id]
	s := c.State
	if fn != nil {
		fn(id, c)
	}
	t.release(id)
	t.st.Evicted++
	return s
}
