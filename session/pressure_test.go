package session

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/header"
)

// tcpConn returns a FullNAT TCP conn of client 192.0.2.x:port in state s.
func tcpConn(i int, s State) Conn {
	client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i >> 8)}), uint16(1024+i))
	local := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(2000+i))
	c := NewConn(header.ProtoTCP, client, ap("198.51.100.1:80"), local, ap("10.0.1.1:80"))
	c.State = s
	return c
}

// fill inserts conns made by mk until the table is full, conn i at tick
// start+i, and returns their ids in order.
func fill(t *testing.T, tb *Table, start uint32, mk func(i int) Conn) []uint32 {
	t.Helper()
	var ids []uint32
	for i := 0; !tb.Full(); i++ {
		id, err := tb.Insert(mk(i), start+uint32(i))
		if err != nil {
			t.Fatalf("Insert #%d: %v", i, err)
		}
		ids = append(ids, id)
	}
	return ids
}

// TestEvictOldestEmbryonic: a table full of SYN_RECV conns makes room
// for each new conn by evicting the oldest one, handing it to the callback
// first; the new conn is then inserted.
func TestEvictOldestEmbryonic(t *testing.T) {
	tb := newTable(t, Options{Capacity: 64, WheelSlots: 1 << 14})
	ids := fill(t, tb, 0, func(i int) Conn { return tcpConn(i, StateSynRecv) })
	if _, err := tb.Insert(tcpConn(1000, StateSynRecv), 100); err != ErrFull {
		t.Fatalf("Insert into a full table = %v, want ErrFull", err)
	}
	now := uint32(100)
	for n := range 10 {
		var seen []Conn
		s, ok := tb.Evict(now, func(id uint32, c *Conn) {
			if id != ids[n] {
				t.Errorf("eviction %d: callback got conn %d, want the oldest, %d", n, id, ids[n])
			}
			seen = append(seen, *c)
		})
		if !ok || s != StateSynRecv || len(seen) != 1 {
			t.Fatalf("eviction %d: Evict = %v %v, callback saw %d conns", n, s, ok, len(seen))
		}
		want := tcpConn(n, StateSynRecv)
		if !sameConn(&seen[0], &want) {
			t.Fatalf("eviction %d: callback saw %+v, want %+v", n, seen[0], want)
		}
		if _, _, found := tb.Lookup(want.InKey()); found {
			t.Fatalf("eviction %d: evicted conn still indexed (in key)", n)
		}
		if _, _, found := tb.Lookup(want.OutKey()); found {
			t.Fatalf("eviction %d: evicted conn still indexed (out key)", n)
		}
		nc := tcpConn(1000+n, StateSynRecv)
		id, err := tb.Insert(nc, now)
		if err != nil {
			t.Fatalf("Insert after eviction %d: %v", n, err)
		}
		if got, dir, found := tb.Lookup(nc.InKey()); !found || got != id || dir != In {
			t.Fatalf("new conn not found: %d %v %v", got, dir, found)
		}
		checkInvariants(t, tb)
	}
	st := tb.Stats()
	if st.Evicted != 10 || st.Expired != 0 || st.Deleted != 0 || st.Conns != 64 || st.RefusedFull != 1 {
		t.Fatalf("Stats = %+v", st)
	}
	tb.Publish()
	if p := tb.Published(); p.Evicted != 10 {
		t.Fatalf("Published().Evicted = %d, want 10", p.Evicted)
	}
}

// TestEvictNeverEstablished: ESTABLISHED, LISTEN and UDP conns are never
// evicted; embryonic and closing ones are, wherever the wheel holds them.
func TestEvictNeverEstablished(t *testing.T) {
	for _, keep := range []State{StateEstablished, StateListen, StateUDP} {
		t.Run(keep.String(), func(t *testing.T) {
			tb := newTable(t, Options{Capacity: 32, WheelSlots: 256})
			mk := func(i int) Conn { return tcpConn(i, keep) }
			if keep == StateUDP {
				mk = func(i int) Conn { c := tcpConn(i, StateNone); c.Proto = header.ProtoUDP; return c }
			}
			fill(t, tb, 0, mk)
			for now := uint32(50); now < 60; now++ {
				if s, ok := tb.Evict(now, func(uint32, *Conn) { t.Fatal("callback called") }); ok {
					t.Fatalf("Evict removed a %v conn", s)
				}
			}
			if st := tb.Stats(); st.Evicted != 0 || st.Conns != 32 {
				t.Fatalf("Stats = %+v", st)
			}
			checkInvariants(t, tb)
		})
	}
	for _, s := range []State{StateNone, StateSynSent, StateSynRecv, StateSynAck,
		StateFinWait, StateTimeWait, StateClose, StateCloseWait, StateLastAck} {
		t.Run("one "+s.String(), func(t *testing.T) {
			// one evictable conn among established ones, filed late
			tb := newTable(t, Options{Capacity: 32, WheelSlots: 256})
			ids := fill(t, tb, 0, func(i int) Conn {
				if i == 20 {
					return tcpConn(i, s)
				}
				return tcpConn(i, StateEstablished)
			})
			tb.Expire(30, 0, nil)
			var got uint32 = NoID
			// Evict gives up for the rest of a tick after a fruitless
			// lap, so a call per tick is enough to find it
			for now := uint32(31); got == NoID && now < 40; now++ {
				tb.Evict(now, func(id uint32, c *Conn) { got = id })
			}
			if got != ids[20] {
				t.Fatalf("evicted %d, want the %v conn %d", got, s, ids[20])
			}
			if _, ok := tb.Evict(41, nil); ok {
				t.Fatal("a second conn was evicted")
			}
			checkInvariants(t, tb)
		})
	}
}

// TestEvictGivesUpForTheTick: after a lap without a victim Evict does not
// look again until the clock moves, even if a victim appeared meanwhile.
func TestEvictGivesUpForTheTick(t *testing.T) {
	tb := newTable(t, Options{Capacity: 16, WheelSlots: 64})
	ids := fill(t, tb, 0, func(i int) Conn { return tcpConn(i, StateEstablished) })
	if _, ok := tb.Evict(5, nil); ok {
		t.Fatal("evicted an established conn")
	}
	if !tb.pressure.missed {
		t.Fatal("a fruitless lap was not recorded")
	}
	tb.Update(ids[3], In, header.TCPFlagFIN, 5) // ESTABLISHED → CLOSE_WAIT (the client's FIN)
	if _, ok := tb.Evict(5, nil); ok {
		t.Fatal("looked again within the tick")
	}
	if s, ok := tb.Evict(6, nil); !ok || s != StateCloseWait {
		t.Fatalf("next tick: Evict = %v %v, want the CLOSE_WAIT conn", s, ok)
	}
	checkInvariants(t, tb)
}

// TestEvictDueFirst: conns that are due but not yet expired (Expire is
// bounded per call) go before any other.
func TestEvictDueFirst(t *testing.T) {
	tb := newTable(t, Options{Capacity: 16, WheelSlots: 64})
	to := tb.to[StateClose]
	ids := fill(t, tb, 0, func(i int) Conn {
		if i < 4 {
			return tcpConn(i, StateClose)
		}
		return tcpConn(i, StateSynRecv)
	})
	if n := tb.Expire(to+10, 1, nil); n != 1 {
		t.Fatalf("Expire = %d, want 1", n)
	}
	// now the table has a free id; fill it again with a SYN_RECV conn
	if _, err := tb.Insert(tcpConn(100, StateSynRecv), to+10); err != nil {
		t.Fatal(err)
	}
	var got uint32
	if s, ok := tb.Evict(to+10, func(id uint32, c *Conn) { got = id }); !ok || s != StateClose {
		t.Fatalf("Evict = %v %v, want a due CLOSE conn", s, ok)
	}
	if got != ids[1] && got != ids[2] && got != ids[3] {
		t.Fatalf("evicted %d, want one of the due CLOSE conns %v", got, ids[1:4])
	}
	checkInvariants(t, tb)
}

// TestPressureTimeouts: at and above the high-water mark, embryonic and
// closing conns inserted or touched take the shorter pressure timeouts;
// established ones keep theirs; below the mark the normal ones apply again.
func TestPressureTimeouts(t *testing.T) {
	tb := newTable(t, Options{Capacity: 16, HighWater: 50})
	if tb.HighWater() != 8 {
		t.Fatalf("HighWater = %d, want 8", tb.HighWater())
	}
	normal, short := ticks(time.Minute), ticks(5*time.Second)
	var ids []uint32
	for i := range 8 {
		if tb.UnderPressure() {
			t.Fatalf("under pressure at %d conns", i)
		}
		id, _ := tb.Insert(tcpConn(i, StateSynRecv), 0)
		ids = append(ids, id)
		if e := tb.Get(id).Expires(); e != normal {
			t.Fatalf("conn %d below the mark expires at %d, want %d", i, e, normal)
		}
	}
	if !tb.UnderPressure() {
		t.Fatal("not under pressure at the mark")
	}
	id, _ := tb.Insert(tcpConn(8, StateSynRecv), 10)
	if e := tb.Get(id).Expires(); e != 10+short {
		t.Fatalf("SYN_RECV inserted at the mark expires at %d, want %d", e, 10+short)
	}
	est, _ := tb.Insert(tcpConn(9, StateEstablished), 10)
	if e := tb.Get(est).Expires(); e != 10+ticks(15*time.Minute) {
		t.Fatalf("ESTABLISHED under pressure expires at %d, want the normal timeout", e)
	}
	// a conn filed before the mark shrinks when touched
	tb.Touch(ids[0], 20)
	if e := tb.Get(ids[0]).Expires(); e != 20+short {
		t.Fatalf("touched SYN_RECV expires at %d, want %d", e, 20+short)
	}
	// the client's FIN under pressure: CLOSE_WAIT's pressure timeout (10 s)
	if s, _ := tb.Update(est, In, header.TCPFlagFIN, 30); s != StateCloseWait {
		t.Fatalf("client FIN: state %v", s)
	}
	if e := tb.Get(est).Expires(); e != 30+ticks(10*time.Second) {
		t.Fatalf("CLOSE_WAIT under pressure expires at %d, want %d", e, 30+ticks(10*time.Second))
	}
	// they really go then: the touched one at 20+short, not a minute later
	var gone []uint32
	tb.Expire(20+short, 0, func(id uint32, c *Conn) { gone = append(gone, id) })
	if len(gone) != 2 || !(gone[0] == ids[0] || gone[1] == ids[0]) {
		t.Fatalf("expired %v by %d, want the touched conn %d and conn %d", gone, 20+short, ids[0], id)
	}
	// below the mark again: normal timeouts
	tb.Delete(ids[2])
	if tb.UnderPressure() {
		t.Fatalf("still under pressure at %d conns", tb.Len())
	}
	tb.Touch(ids[1], 1000)
	if e := tb.Get(ids[1]).Expires(); e != 1000+normal {
		t.Fatalf("touched below the mark expires at %d, want %d", e, 1000+normal)
	}
	checkInvariants(t, tb)
}

// TestPressureTimeoutsNeverLonger: a normal timeout shorter than the
// pressure one wins under pressure, also after SetTimeouts.
func TestPressureTimeoutsNeverLonger(t *testing.T) {
	tb := newTable(t, Options{Capacity: 4, HighWater: 1, Timeouts: Timeouts{SynRecv: time.Second},
		PressureTimeouts: Timeouts{SynRecv: 3 * time.Second}})
	tb.Insert(tcpConn(0, StateSynRecv), 0)
	id, _ := tb.Insert(tcpConn(1, StateSynRecv), 0)
	if e := tb.Get(id).Expires(); e != ticks(time.Second) {
		t.Fatalf("expires at %d, want the shorter normal timeout %d", e, ticks(time.Second))
	}
	if err := tb.SetTimeouts(Timeouts{SynRecv: time.Minute}); err != nil {
		t.Fatal(err)
	}
	tb.Touch(id, 5)
	if e := tb.Get(id).Expires(); e != 5+ticks(3*time.Second) {
		t.Fatalf("after SetTimeouts: expires at %d, want %d", e, 5+ticks(3*time.Second))
	}
	if got := tb.PressureTimeouts(); got.SynRecv != 3*time.Second || got.Established != 0 || got.TimeWait != 5*time.Second {
		t.Fatalf("PressureTimeouts = %+v", got)
	}
}

func TestPressureOptionErrors(t *testing.T) {
	for _, o := range []Options{
		{Capacity: 8, HighWater: -1},
		{Capacity: 8, HighWater: 101},
		{Capacity: 8, HighWater: 90, PressureTimeouts: Timeouts{Established: time.Second}},
		{Capacity: 8, HighWater: 90, PressureTimeouts: Timeouts{UDP: time.Second}},
		{Capacity: 8, HighWater: 90, PressureTimeouts: Timeouts{SynRecv: -time.Second}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		} else {
			t.Log(err)
		}
	}
	tb := newTable(t, Options{Capacity: 8})
	if tb.HighWater() != 0 {
		t.Fatalf("HighWater = %d without a mark, want 0", tb.HighWater())
	}
	fill(t, tb, 0, func(i int) Conn { return tcpConn(i, StateSynRecv) })
	if tb.UnderPressure() {
		t.Fatal("under pressure without a mark")
	}
}

// TestEvictZeroAllocs: eviction and the insert it makes room for
// allocate nothing.
func TestEvictZeroAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	tb := newTable(t, Options{Capacity: 1024, HighWater: 90})
	fill(t, tb, 0, func(i int) Conn { return tcpConn(i, StateSynRecv) })
	spare := make([]Conn, 4096)
	for i := range spare {
		spare[i] = tcpConn(2000+i, StateSynRecv)
	}
	evicted, i := 0, 0
	fn := func(uint32, *Conn) { evicted++ }
	now := uint32(1)
	a := testing.AllocsPerRun(1000, func() {
		if _, ok := tb.Evict(now, fn); !ok {
			panic(fmt.Sprintf("nothing evicted at %d", i))
		}
		if _, err := tb.Insert(spare[i%len(spare)], now); err != nil {
			panic(err)
		}
		i++
		now++
	})
	if a != 0 {
		t.Fatalf("%v allocations per eviction, want 0", a)
	}
	if evicted == 0 {
		t.Fatal("nothing evicted")
	}
	checkInvariants(t, tb)
}
