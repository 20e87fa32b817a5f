package session

import (
	"errors"
	"fmt"
	"iter"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gvs-lb/gvs/header"
)

// Errors returned by Insert. Each leaves the table unchanged.
var (
	// ErrFull: the table holds Capacity conns. Counted in Stats.RefusedFull.
	ErrFull = errors.New("session: table full")
	// ErrExists: the conn's in key or out key is already indexed.
	// Counted in Stats.RefusedExists.
	ErrExists = errors.New("session: connection exists")
	// ErrInvalid: the conn's protocol is neither TCP nor UDP, its TCP state
	// is unknown, or its in and out keys are equal.
	ErrInvalid = errors.New("session: invalid connection")
)

// Defaults and limits of Options.
const (
	DefaultTick       = 10 * time.Millisecond
	DefaultWheelSlots = 1 << 14 // 163.84 s per revolution at the default tick
	MaxCapacity       = 1 << 28 // 32 GiB of slab and index
	maxWheelSlots     = 1 << 24
)

// NoID is never a connection id.
const NoID = ^uint32(0)

// Options configure a Table.
type Options struct {
	// Capacity is the number of conns the table holds, rounded up to a
	// power of two (at most MaxCapacity). Required.
	Capacity int
	// Timeouts per state; zero fields take DefaultTimeouts.
	Timeouts Timeouts
	// Tick is the unit of the "now" arguments; zero means DefaultTick.
	// Timeouts are rounded up to whole ticks.
	Tick time.Duration
	// Prefault makes all of the table's memory resident at once (touching
	// every page) instead of as connections first use it: a dataplane
	// wants the page faults at start-up, not in the middle of a SYN flood.
	Prefault bool
	// WheelSlots is the timer wheel's size, a power of two; zero means
	// DefaultWheelSlots. A conn whose timeout is longer than one revolution
	// (WheelSlots×Tick) is looked at once per revolution until it is due.
	WheelSlots int
	// HighWater is the fill, in percent of Capacity (1-100), at and above
	// which the table is under pressure: conns inserted or touched then
	// take PressureTimeouts (see pressure.go). Zero: never under pressure.
	HighWater int
	// PressureTimeouts are the timeouts under pressure; zero fields take
	// DefaultPressureTimeouts, and a state never gets a longer timeout
	// under pressure than without.
	PressureTimeouts Timeouts
	// Ends: keep each TCP conn's last server sequence numbers (ends.go),
	// 8 bytes per conn beside the slab.
	Ends bool
}

// Stats are a table's counters.
type Stats struct {
	Conns         uint64 // current number of conns
	Inserted      uint64 // successful Inserts
	RefusedFull   uint64 // Inserts refused with ErrFull
	RefusedExists uint64 // Inserts refused with ErrExists
	Deleted       uint64 // conns removed by Delete or Flush
	Expired       uint64 // conns removed by Expire (including ExpireNow)
	Evicted       uint64 // conns removed by Evict to make room
}

// Table is one worker's connection table. It is not safe for concurrent
// use: only its owner calls its methods, except Published.
type Table struct {
	conns []Conn // slab; len is the capacity
	index []slot // 4 slots per conn
	ends  []Ends // by conn id, when Options.Ends (ends.go); nil otherwise
	imask uint32 // len(index) - 1

	cap      uint32 // len(conns)
	n        uint32 // live conns
	hwm      uint32 // ids [0, hwm) have been handed out at least once
	free     uint32 // head of the free list (through Conn.tnext), NoID if empty
	seed     [6]uint64
	to       [16]uint32 // timeout in ticks by State&15
	tick     time.Duration
	timeouts Timeouts
	pressure pressure // high-water mark, short timeouts, eviction (pressure.go)

	// hashMask is all ones; tests narrow it to force collisions.
	hashMask uint32

	wheel wheel

	st  Stats
	pub [7]atomic.Uint64 // Stats as published by Publish
}

// New returns an empty table. Its memory is allocated up front but only
// made resident as conns use it.
func New(opts Options) (*Table, error) {
	if opts.Capacity <= 0 || opts.Capacity > MaxCapacity {
		return nil, fmt.Errorf("session: Capacity %d: must be between 1 and %d", opts.Capacity, MaxCapacity)
	}
	if opts.Tick == 0 {
		opts.Tick = DefaultTick
	}
	if opts.Tick < 0 {
		return nil, fmt.Errorf("session: Tick %v: must be positive", opts.Tick)
	}
	if opts.WheelSlots == 0 {
		opts.WheelSlots = DefaultWheelSlots
	}
	if opts.WheelSlots < 2 || opts.WheelSlots > maxWheelSlots || opts.WheelSlots&(opts.WheelSlots-1) != 0 {
		return nil, fmt.Errorf("session: WheelSlots %d: must be a power of two between 2 and %d",
			opts.WheelSlots, maxWheelSlots)
	}
	capacity := uint32(1) << bits.Len32(uint32(opts.Capacity-1))
	t := &Table{
		conns:    newResident[Conn](capacity, opts.Prefault),
		index:    newResident[slot](4*capacity, opts.Prefault),
		imask:    4*capacity - 1,
		cap:      capacity,
		free:     NoID,
		tick:     opts.Tick,
		hashMask: ^uint32(0),
	}
	if opts.Ends {
		t.ends = newResident[Ends](capacity, opts.Prefault)
	}
	for i := range t.seed {
		t.seed[i] = rand.Uint64()
	}
	if err := t.setPressure(opts.HighWater, opts.PressureTimeouts); err != nil {
		return nil, err
	}
	if err := t.SetTimeouts(opts.Timeouts); err != nil {
		return nil, err
	}
	t.wheel.init(capacity, uint32(opts.WheelSlots))
	return t, nil
}

// newResident allocates n Ts for a table, advised for transparent huge
// pages and, with prefault, made resident at once (a write to every page).
func newResident[T any](n uint32, prefault bool) []T {
	s := make([]T, n)
	var zero T
	size := unsafe.Sizeof(zero)
	adviseHugePages(unsafe.Pointer(&s[0]), uintptr(len(s))*size)
	if prefault {
		const page = 4096
		for i := 0; i < len(s); i += max(1, page/int(size)) {
			s[i] = zero
		}
	}
	return s
}

// SetTimeouts replaces the timeouts (zero fields take the defaults). A
// conn picks up its new timeout when it is next touched, as in LVS.
func (t *Table) SetTimeouts(to Timeouts) error {
	ticks, err := to.ticks(t.tick)
	if err != nil {
		return err
	}
	for i := range t.to {
		t.to[i] = ticks[StateNone] // unknown states time out like NONE
	}
	copy(t.to[:], ticks[:])
	t.timeouts = to.withDefaults()
	t.pressure.clamp(&t.to)
	return nil
}

// Timeouts returns the timeouts in use.
func (t *Table) Timeouts() Timeouts { return t.timeouts }

// Tick returns the length of one tick.
func (t *Table) Tick() time.Duration { return t.tick }

// Ticks converts a duration to ticks, rounding down; the caller's clock is
// typically uint32(t.Ticks(time.Since(start))).
func (t *Table) Ticks(d time.Duration) uint32 { return uint32(d / t.tick) }

// Len returns the number of conns.
func (t *Table) Len() int { return int(t.n) }

// Capacity returns the maximum number of conns.
func (t *Table) Capacity() int { return int(t.cap) }

// Lookup returns the conn a packet with key k belongs to, and whether k
// is the conn's in or out key.
func (t *Table) Lookup(k Key) (id uint32, dir Direction, ok bool) {
	ref := t.find(&k, t.hashKey(&k))
	if ref == 0 {
		return NoID, In, false
	}
	return refID(ref), refDir(ref), true
}

// LookupAt is Lookup for the packet whose key KeyAt would return, without
// making the key: an IPv4 packet is hashed and matched from its header's
// fields. ok is false where KeyAt's is (not TCP or UDP, ports missing);
// found is Lookup's ok.
func (t *Table) LookupAt(pkt []byte, tr header.Transport) (id uint32, dir Direction, found, ok bool) {
	if tr.V6() {
		k, ok := KeyAt(pkt, tr)
		if !ok {
			return NoID, In, false, false
		}
		id, dir, found = t.Lookup(k)
		return id, dir, found, true
	}
	if tr.Proto != header.ProtoTCP && tr.Proto != header.ProtoUDP || len(pkt) < header.IPv4MinSize {
		return NoID, In, false, false
	}
	sp, dp, ok := tr.Ports(pkt)
	if !ok {
		return NoID, In, false, false
	}
	src, dst := mapped4(pkt[12:16]), mapped4(pkt[16:20])
	ref := t.find4(tr.Proto, src, dst, sp, dp, t.hashWords(tr.Proto, addrWords{0, src}, addrWords{0, dst}, sp, dp))
	if ref == 0 {
		return NoID, In, false, true
	}
	return refID(ref), refDir(ref), true, true
}

// Get returns the conn with id, or nil if there is none. The pointer is
// into the slab and valid until the conn is deleted or expired. The caller
// may change any exported field except the address, port and Proto fields
// (which are indexed; delete and insert instead); after changing State,
// call Touch.
func (t *Table) Get(id uint32) *Conn {
	if id >= t.cap {
		return nil
	}
	c := &t.conns[id]
	if c.Proto == 0 {
		return nil
	}
	return c
}

// All iterates over the conns in id order, for listings (ipvsadm -lc) and
// sync. It visits only the ids ever handed out, not the whole Capacity.
// The loop body must not call Insert, Delete, Expire or Flush.
func (t *Table) All() iter.Seq2[uint32, *Conn] {
	return func(yield func(uint32, *Conn) bool) {
		for id := range t.hwm {
			if c := &t.conns[id]; c.Proto != 0 && !yield(id, c) {
				return
			}
		}
	}
}

// Walk is All in bounded steps, for listings that must not hold up the
// owner's loop: it calls fn for each live conn with an id in
// [from, from+span), in id order, and returns the id to continue from, or
// NoID once it has passed every id handed out. It looks at no more than
// span ids (so fn runs at most span times) and allocates nothing. fn must
// not call Insert, Delete, Expire or Flush.
//
// Between calls the table may change: a conn that lives through the whole
// walk is visited exactly once (ids never move); one inserted or removed
// meanwhile is visited at most once.
func (t *Table) Walk(from uint32, span int, fn func(id uint32, c *Conn)) (next uint32) {
	if from >= t.hwm || span <= 0 {
		if from >= t.hwm {
			return NoID
		}
		return from
	}
	end := t.hwm
	if uint64(span) < uint64(end-from) {
		end = from + uint32(span)
	}
	for id := from; id < end; id++ {
		if c := &t.conns[id]; c.Proto != 0 {
			fn(id, c)
		}
	}
	if end >= t.hwm {
		return NoID
	}
	return end
}

// Insert adds a copy of c, indexed by its in and out keys, expiring after
// the timeout of its state from now, and returns its id. A UDP conn's state
// is set to StateUDP. Insert returns ErrInvalid, ErrFull or ErrExists (see
// there) and then leaves the table unchanged.
func (t *Table) Insert(c Conn, now uint32) (id uint32, err error) {
	switch {
	case c.Proto == header.ProtoUDP:
		c.State = StateUDP
	case c.Proto != header.ProtoTCP || int(c.State) >= numTCP:
		return NoID, ErrInvalid
	}
	if c.CAddr == c.DAddr && c.VAddr == c.LAddr && c.CPort == c.DPort && c.VPort == c.LPort {
		return NoID, ErrInvalid
	}
	if t.n == t.cap {
		t.st.RefusedFull++
		return NoID, ErrFull
	}
	kin, kout := c.InKey(), c.OutKey()
	hin, hout := t.hashKey(&kin), t.hashKey(&kout)
	pin, found := t.probe(&kin, hin)
	if found {
		t.st.RefusedExists++
		return NoID, ErrExists
	}
	pout, found := t.probe(&kout, hout)
	if found {
		t.st.RefusedExists++
		return NoID, ErrExists
	}

	id = t.alloc()
	c.Flags &^= flagsInternal
	c.expires = now + t.timeout(c.State)
	t.conns[id] = c
	if t.ends != nil {
		t.ends[id] = Ends{}
	}
	t.index[pin] = slot{tag: hin, ref: makeRef(id, In)}
	if pout == pin {
		// the in entry took the slot the out key probed to; the out
		// key's chain continues after it.
		pout = t.nextEmpty(pout)
	}
	t.index[pout] = slot{tag: hout, ref: makeRef(id, Out)}
	t.wheel.start(now)
	t.file(id, c.expires)
	t.n++
	t.st.Inserted++
	return id, nil
}

func (t *Table) alloc() uint32 {
	if id := t.free; id != NoID {
		t.free = t.conns[id].tnext
		return id
	}
	id := t.hwm
	t.hwm++
	return id
}

// Delete removes the conn with id: both index entries and its timer.
// It reports whether there was such a conn.
func (t *Table) Delete(id uint32) bool {
	if t.Get(id) == nil {
		return false
	}
	t.release(id)
	t.st.Deleted++
	return true
}

// release removes a live conn.
func (t *Table) release(id uint32) {
	c := &t.conns[id]
	t.remove(t.hashIn(c), makeRef(id, In))
	t.remove(t.hashOut(c), makeRef(id, Out))
	t.unlink(id)
	c.Proto = 0
	c.tnext = t.free
	t.free = id
	t.n--
}

// Stats returns the counters. Owner only.
func (t *Table) Stats() Stats {
	s := t.st
	s.Conns = uint64(t.n)
	return s
}

// Publish makes the current counters visible to Published. Owner only;
// call it every so often from the worker loop.
func (t *Table) Publish() {
	s := t.Stats()
	for i, v := range [...]uint64{s.Conns, s.Inserted, s.RefusedFull, s.RefusedExists, s.Deleted, s.Expired, s.Evicted} {
		t.pub[i].Store(v)
	}
}

// Published returns the counters as of the owner's last Publish. Safe for
// concurrent use.
func (t *Table) Published() Stats {
	return Stats{
		Conns: t.pub[0].Load(), Inserted: t.pub[1].Load(), RefusedFull: t.pub[2].Load(),
		RefusedExists: t.pub[3].Load(), Deleted: t.pub[4].Load(), Expired: t.pub[5].Load(),
		Evicted: t.pub[6].Load(),
	}
}
