package session

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/header"
)

// expireAll calls Expire without a limit and returns the ids it expired.
func expireAll(tb *Table, now uint32) []uint32 {
	var got []uint32
	tb.Expire(now, 0, func(id uint32, c *Conn) { got = append(got, id) })
	return got
}

func TestExpireAtTheRightTick(t *testing.T) {
	tests := []struct {
		name    string
		slots   int
		timeout uint32 // ticks
		start   uint32
	}{
		{"timeout within a revolution", 1024, 100, 5},
		{"timeout of many revolutions", 8, 100, 0},
		{"timeout of exactly one revolution", 64, 64, 3},
		{"one tick", 8, 1, 9},
		{"tick counter wraps", 8, 50, 1<<32 - 20},
		{"LVS UDP default, wrapping", DefaultWheelSlots, 30000, 1<<32 - 10000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(t, Options{Capacity: 4, WheelSlots: tc.slots,
				Timeouts: Timeouts{UDP: time.Duration(tc.timeout) * DefaultTick}})
			r := rand.New(rand.NewPCG(1, 1))
			c := randConn(r, false)
			c.Proto = header.ProtoUDP
			id, err := tb.Insert(c, tc.start)
			if err != nil {
				t.Fatal(err)
			}
			due := tc.start + tc.timeout
			if got := tb.Get(id).Expires(); got != due {
				t.Fatalf("Expires = %d, want %d", got, due)
			}
			for now := tc.start; now != due; now++ {
				if got := expireAll(tb, now); len(got) != 0 {
					t.Fatalf("expired at %d, due at %d", now, due)
				}
			}
			if got := expireAll(tb, due); len(got) != 1 || got[0] != id {
				t.Fatalf("at the due tick %d: expired %v, want [%d]", due, got, id)
			}
			if tb.Len() != 0 || tb.Stats().Expired != 1 {
				t.Fatalf("Len %d, Stats %+v", tb.Len(), tb.Stats())
			}
			if _, _, ok := tb.Lookup(c.InKey()); ok {
				t.Fatal("expired conn still indexed")
			}
		})
	}
}

func TestTouchPostpones(t *testing.T) {
	tb := newTable(t, Options{Capacity: 4, WheelSlots: 16, Timeouts: Timeouts{UDP: time.Second}})
	r := rand.New(rand.NewPCG(2, 2))
	c := randConn(r, true)
	c.Proto = header.ProtoUDP
	id, _ := tb.Insert(c, 0)
	for now := uint32(0); now < 400; now++ {
		if now%60 == 0 {
			tb.Touch(id, now) // the last touch is at 360
		}
		if got := expireAll(tb, now); len(got) != 0 {
			t.Fatalf("expired at %d", now)
		}
	}
	for now := uint32(400); now < 460; now++ {
		if got := expireAll(tb, now); len(got) != 0 {
			t.Fatalf("expired at %d, due at 460", now)
		}
	}
	if got := expireAll(tb, 460); len(got) != 1 {
		t.Fatalf("not expired at 460")
	}
	tb.Touch(id, 500) // a deleted id is ignored
	tb.Touch(NoID, 500)
}

// TestShorterTimeoutTakesEffect: a conn filed under a long timeout that
// moves to a state with a short one must expire on the short one.
func TestShorterTimeoutTakesEffect(t *testing.T) {
	// a revolution longer than the ESTABLISHED timeout: the wheel does not
	// look at the conn before its original expiry unless it is re-filed
	tb := newTable(t, Options{Capacity: 4, WheelSlots: 1 << 17})
	c := NewConn(header.ProtoTCP, ap("192.0.2.1:1000"), ap("198.51.100.1:80"), ap("10.0.0.1:2000"), ap("10.0.1.1:80"))
	c.State = StateEstablished
	id, _ := tb.Insert(c, 0)
	if s, ch := tb.Update(id, In, header.TCPFlagRST, 10); s != StateClose || ch != Deactivated {
		t.Fatalf("Update = %v %v", s, ch)
	}
	due := 10 + ticks(10*time.Second)
	for now := uint32(0); now < due; now++ {
		if got := expireAll(tb, now); len(got) != 0 {
			t.Fatalf("expired at %d, due at %d", now, due)
		}
	}
	if got := expireAll(tb, due); len(got) != 1 {
		t.Fatalf("CLOSE conn not expired at %d: it kept its ESTABLISHED slot", due)
	}

	// shorter Timeouts apply at the next touch
	c.State = StateEstablished
	id, _ = tb.Insert(c, due)
	if err := tb.SetTimeouts(Timeouts{Established: time.Second}); err != nil {
		t.Fatal(err)
	}
	tb.Touch(id, due+1)
	if got := expireAll(tb, due+100); len(got) != 0 {
		t.Fatal("expired early")
	}
	if got := expireAll(tb, due+101); len(got) != 1 {
		t.Fatal("new Established timeout not applied")
	}
	if tb.Timeouts().Established != time.Second || tb.Timeouts().Close != 10*time.Second {
		t.Fatalf("Timeouts = %+v", tb.Timeouts())
	}
}

func TestExpireBounded(t *testing.T) {
	tb := newTable(t, Options{Capacity: 1024, WheelSlots: 8, Timeouts: Timeouts{UDP: time.Second}})
	r := rand.New(rand.NewPCG(3, 3))
	for range 1000 {
		c := randConn(r, false)
		c.Proto = header.ProtoUDP
		if _, err := tb.Insert(c, 0); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	for tb.Len() > 0 {
		n := tb.Expire(100, 10, nil)
		if n != 10 {
			t.Fatalf("call %d expired %d, want 10", calls, n)
		}
		calls++
	}
	if calls != 100 || tb.Stats().Expired != 1000 {
		t.Fatalf("%d calls, %+v", calls, tb.Stats())
	}
	checkInvariants(t, tb)
}

// TestRefileBounded: conns that are not due are re-filed at most
// refileFactor×max per call; the rest wait on the in-progress list.
func TestRefileBounded(t *testing.T) {
	tb := newTable(t, Options{Capacity: 1024, WheelSlots: 8, Timeouts: Timeouts{UDP: time.Second}})
	r := rand.New(rand.NewPCG(4, 4))
	var ids []uint32
	for range 1000 {
		c := randConn(r, false)
		c.Proto = header.ProtoUDP
		id, _ := tb.Insert(c, 0) // filed for tick 100, slot 4
		ids = append(ids, id)
	}
	for _, id := range ids {
		tb.Touch(id, 50) // due at 150
	}
	for now := uint32(0); now < 100; now++ {
		tb.Expire(now, 1, nil)
	}
	calls := 0
	for {
		if n := tb.Expire(100, 1, nil); n != 0 {
			t.Fatalf("expired %d early", n)
		}
		calls++
		checkInvariants(t, tb)
		if tb.wheel.next[tb.wheel.size+1] == tb.wheel.inProgress() {
			break
		}
	}
	if want := 1000 / refileFactor; calls < want {
		t.Fatalf("re-filed 1000 conns in %d calls: more than %d per call", calls, refileFactor)
	}
	for now := uint32(101); now < 150; now++ {
		if n := tb.Expire(now, 0, nil); n != 0 {
			t.Fatalf("expired %d at %d", n, now)
		}
	}
	if n := tb.Expire(150, 0, nil); n != 1000 {
		t.Fatalf("expired %d at 150", n)
	}
}

func TestExpireCatchUp(t *testing.T) {
	tb := newTable(t, Options{Capacity: 64, WheelSlots: 16,
		Timeouts: Timeouts{UDP: time.Second, Established: 10 * time.Second}})
	r := rand.New(rand.NewPCG(5, 5))
	short, long := map[uint32]bool{}, map[uint32]bool{}
	for i := range 20 {
		c := randConn(r, false)
		if i%2 == 0 {
			c.Proto, c.State = header.ProtoUDP, StateUDP
		} else {
			c.Proto, c.State = header.ProtoTCP, StateEstablished
		}
		id, _ := tb.Insert(c, uint32(i))
		if i%2 == 0 {
			short[id] = true
		} else {
			long[id] = true
		}
	}
	// 500 ticks later, 31 revolutions: the UDP conns (due by 119) go, the
	// ESTABLISHED ones (due from 1001) stay
	for _, id := range expireAll(tb, 500) {
		if !short[id] {
			t.Fatalf("conn %d expired early", id)
		}
		delete(short, id)
	}
	if len(short) != 0 || tb.Len() != 10 {
		t.Fatalf("left %d UDP conns, Len %d", len(short), tb.Len())
	}
	if got := expireAll(tb, 1000); len(got) != 0 {
		t.Fatalf("expired %v at 1000", got)
	}
	if got := expireAll(tb, 1000+19); len(got) != 10 {
		t.Fatalf("expired %d at 1019, want 10", len(got))
	}
	checkInvariants(t, tb)
}

func TestExpireNow(t *testing.T) {
	tb := newTable(t, Options{Capacity: 8})
	r := rand.New(rand.NewPCG(6, 6))
	var ids []uint32
	for range 3 {
		id, _ := tb.Insert(randConn(r, false), 100)
		ids = append(ids, id)
	}
	if !tb.ExpireNow(ids[1]) || !tb.ExpireNow(ids[1]) {
		t.Fatal("ExpireNow = false")
	}
	tb.Touch(ids[1], 100) // does not save it
	tb.Update(ids[1], In, header.TCPFlagACK, 100)
	checkInvariants(t, tb)
	var got []uint32
	tb.Expire(100, 0, func(id uint32, c *Conn) {
		if !sameConn(c, tb.Get(id)) {
			t.Error("fn got another conn")
		}
		got = append(got, id)
	})
	if len(got) != 1 || got[0] != ids[1] || tb.Get(ids[1]) != nil {
		t.Fatalf("expired %v, want [%d]", got, ids[1])
	}
	if tb.ExpireNow(ids[1]) || tb.ExpireNow(NoID) {
		t.Fatal("ExpireNow of a missing conn = true")
	}
	// forced expiries count against max
	tb.ExpireNow(ids[0])
	tb.ExpireNow(ids[2])
	if n := tb.Expire(100, 1, nil); n != 1 || tb.Len() != 1 {
		t.Fatalf("Expire(max 1) = %d, Len %d", n, tb.Len())
	}
	if n := tb.Expire(100, 1, nil); n != 1 || tb.Len() != 0 {
		t.Fatalf("Expire(max 1) = %d, Len %d", n, tb.Len())
	}
	// a reused id is not doomed
	id, _ := tb.Insert(randConn(r, false), 100)
	if n := tb.Expire(101, 0, nil); n != 0 || tb.Get(id) == nil {
		t.Fatal("new conn expired")
	}
}

func TestExpireCallbackMayTouchOthers(t *testing.T) {
	tb := newTable(t, Options{Capacity: 64, WheelSlots: 8, Timeouts: Timeouts{UDP: time.Second}})
	r := rand.New(rand.NewPCG(7, 7))
	var ids []uint32
	for i := range 40 {
		c := randConn(r, false)
		c.Proto = header.ProtoUDP
		id, _ := tb.Insert(c, uint32(i%4))
		ids = append(ids, id)
	}
	calls := 0
	tb.Expire(101, 0, func(id uint32, c *Conn) {
		calls++
		// doom some others, keep some alive, look things up
		tb.ExpireNow(ids[(int(id)+7)%len(ids)])
		tb.Touch(ids[(int(id)+3)%len(ids)], 101)
		tb.Update(id, Out, 0, 101)
		if got, _, ok := tb.Lookup(c.InKey()); !ok || got != id {
			t.Error("conn not found inside fn")
		}
	})
	if calls == 0 {
		t.Fatal("nothing expired")
	}
	checkInvariants(t, tb)
	expireAll(tb, 1000)
	if tb.Len() != 0 {
		t.Fatalf("Len = %d", tb.Len())
	}
	checkInvariants(t, tb)
}

func TestFlush(t *testing.T) {
	for _, n := range []int{10, 1000} { // one by one, and clearing the index
		tb := newTable(t, Options{Capacity: 1024})
		r := rand.New(rand.NewPCG(8, uint64(n)))
		var keys []Key
		for range n {
			c := randConn(r, false)
			tb.Insert(c, 5)
			keys = append(keys, c.InKey(), c.OutKey())
		}
		seen := map[uint32]bool{}
		if got := tb.Flush(func(id uint32, c *Conn) { seen[id] = true }); got != n || len(seen) != n {
			t.Fatalf("Flush = %d, fn saw %d, want %d", got, len(seen), n)
		}
		if tb.Len() != 0 || tb.Stats().Deleted != uint64(n) {
			t.Fatalf("after Flush: Len %d, %+v", tb.Len(), tb.Stats())
		}
		for _, k := range keys {
			if _, _, ok := tb.Lookup(k); ok {
				t.Fatalf("Lookup(%v) after Flush", k)
			}
		}
		for id := range seen {
			if tb.Get(id) != nil {
				t.Fatalf("Get(%d) after Flush", id)
			}
		}
		checkInvariants(t, tb)
		if got := expireAll(tb, 1<<20); len(got) != 0 {
			t.Fatalf("expired %d after Flush", len(got))
		}
		// usable again
		for range n {
			if _, err := tb.Insert(randConn(r, true), 6); err != nil {
				t.Fatal(err)
			}
		}
		checkInvariants(t, tb)
	}
}

// TestWheelDifferential runs random inserts, touches, state changes,
// forced expiries, deletes and clock advances (across the uint32 wrap)
// against a model of when each conn is due.
func TestWheelDifferential(t *testing.T) {
	tb := newTable(t, Options{Capacity: 256, WheelSlots: 16, Timeouts: Timeouts{
		None: 30 * time.Millisecond, Established: 2 * time.Second, SynRecv: 500 * time.Millisecond,
		FinWait: 300 * time.Millisecond, TimeWait: 400 * time.Millisecond, Close: 100 * time.Millisecond,
		CloseWait: 600 * time.Millisecond, UDP: time.Second,
	}})
	r := rand.New(rand.NewPCG(9, 9))
	now := uint32(1<<32 - 3000)
	due := map[uint32]uint32{} // id → expiry tick
	doomed := map[uint32]bool{}
	var live []uint32
	drop := func(id uint32) {
		delete(due, id)
		delete(doomed, id)
		for i, l := range live {
			if l == id {
				live[i] = live[len(live)-1]
				live = live[:len(live)-1]
				return
			}
		}
		t.Fatalf("dropped unknown %d", id)
	}
	fn := func(id uint32, c *Conn) {
		if !doomed[id] && int32(due[id]-now) > 0 {
			t.Fatalf("conn %d expired at %d, due at %d", id, now, due[id])
		}
		if c.Expires() != due[id] && !doomed[id] {
			t.Fatalf("conn %d Expires %d, model %d", id, c.Expires(), due[id])
		}
		drop(id)
	}
	for op := range 60_000 {
		switch x := r.IntN(20); {
		case x < 6:
			c := randConn(r, false)
			if id, err := tb.Insert(c, now); err == nil {
				due[id] = now + tb.to[tb.Get(id).State]
				live = append(live, id)
			}
		case x < 10 && len(live) > 0:
			id := live[r.IntN(len(live))]
			flags := [...]uint8{header.TCPFlagSYN, header.TCPFlagACK, header.TCPFlagFIN | header.TCPFlagACK, header.TCPFlagRST, 0}[r.IntN(5)]
			tb.Update(id, Direction(r.IntN(3)), flags, now)
			due[id] = now + tb.to[tb.Get(id).State]
		case x < 12 && len(live) > 0:
			id := live[r.IntN(len(live))]
			tb.Touch(id, now)
			due[id] = now + tb.to[tb.Get(id).State]
		case x < 13 && len(live) > 0:
			id := live[r.IntN(len(live))]
			tb.ExpireNow(id)
			doomed[id] = true
		case x < 14 && len(live) > 0:
			id := live[r.IntN(len(live))]
			tb.Delete(id)
			drop(id)
		case x < 16:
			if r.IntN(50) == 0 {
				now += uint32(r.IntN(200)) // several revolutions
			} else {
				now += uint32(r.IntN(3))
			}
			if r.IntN(2) == 0 {
				tb.Expire(now, 1+r.IntN(4), fn)
				continue
			}
			tb.Expire(now, 0, fn)
			for id, d := range due {
				if int32(d-now) <= 0 || doomed[id] {
					t.Fatalf("op %d: conn %d due at %d (doomed %v) still there at %d", op, id, d, doomed[id], now)
				}
			}
		}
		if op%2000 == 0 {
			checkInvariants(t, tb)
		}
	}
	if now > 1<<31 {
		t.Fatalf("the clock did not wrap: %d", now)
	}
	checkInvariants(t, tb)
}
