package session

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/header"
)

func TestInsertLookup(t *testing.T) {
	tests := []struct {
		name                    string
		proto                   uint8
		client, vip, local, dst string
	}{
		{"v4 FullNAT TCP", header.ProtoTCP, "192.0.2.1:40000", "198.51.100.1:80", "10.0.0.1:1025", "10.0.1.2:8080"},
		{"v4 FullNAT UDP", header.ProtoUDP, "192.0.2.1:40000", "198.51.100.1:53", "10.0.0.1:1025", "10.0.1.2:53"},
		{"v4 NAT", header.ProtoTCP, "192.0.2.1:40001", "198.51.100.1:80", "192.0.2.1:40001", "10.0.1.2:80"},
		{"v6 FullNAT", header.ProtoTCP, "[2001:db8::1]:40000", "[2001:db8::80]:443", "[fd00::1]:2000", "[fd00::2]:443"},
		{"NAT64", header.ProtoTCP, "[2001:db8::1]:40001", "[2001:db8::80]:443", "10.0.0.1:1025", "10.0.1.2:443"},
	}
	tb := newTable(t, Options{Capacity: 64})
	ids := map[uint32]bool{}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConn(tc.proto, ap(tc.client), ap(tc.vip), ap(tc.local), ap(tc.dst))
			c.Dest, c.Service, c.Mark = uint32(i+100), uint32(i+200), uint8(i)
			id, err := tb.Insert(c, 1000)
			if err != nil {
				t.Fatalf("Insert: %v", err)
			}
			if ids[id] {
				t.Fatalf("id %d handed out twice", id)
			}
			ids[id] = true
			for _, look := range []struct {
				k   Key
				dir Direction
			}{
				{MakeKey(tc.proto, ap(tc.client), ap(tc.vip)), In},
				{MakeKey(tc.proto, ap(tc.dst), ap(tc.local)), Out},
			} {
				gid, dir, ok := tb.Lookup(look.k)
				if !ok || gid != id || dir != look.dir {
					t.Fatalf("Lookup(%v) = %d %v %v, want %d %v", look.k, gid, dir, ok, id, look.dir)
				}
				// the reverse of either key and the other protocol miss
				if _, _, ok := tb.Lookup(look.k.Reverse()); ok {
					t.Fatalf("Lookup(%v) hit", look.k.Reverse())
				}
				other := look.k
				other.Proto ^= header.ProtoTCP ^ header.ProtoUDP
				if _, _, ok := tb.Lookup(other); ok {
					t.Fatalf("Lookup(%v) hit", other)
				}
			}
			got := tb.Get(id)
			if got == nil || !sameConn(got, &c) {
				t.Fatalf("Get(%d) = %+v, want %+v", id, got, c)
			}
			if tc.proto == header.ProtoUDP && got.State != StateUDP {
				t.Fatalf("UDP conn in state %v", got.State)
			}
			if want := 1000 + tb.to[got.State]; got.Expires() != want {
				t.Fatalf("Expires = %d, want %d", got.Expires(), want)
			}
		})
	}
	if tb.Len() != len(tests) {
		t.Fatalf("Len = %d", tb.Len())
	}
	checkInvariants(t, tb)
}

func TestDelete(t *testing.T) {
	tb := newTable(t, Options{Capacity: 16})
	r := rand.New(rand.NewPCG(1, 2))
	a, b := randConn(r, false), randConn(r, true)
	ida, _ := tb.Insert(a, 0)
	idb, _ := tb.Insert(b, 0)
	if !tb.Delete(ida) {
		t.Fatal("Delete returned false")
	}
	if tb.Get(ida) != nil {
		t.Fatal("Get after Delete")
	}
	for _, k := range []Key{a.InKey(), a.OutKey()} {
		if _, _, ok := tb.Lookup(k); ok {
			t.Fatalf("Lookup(%v) after Delete", k)
		}
	}
	if tb.Delete(ida) || tb.Delete(NoID) || tb.Delete(12345) {
		t.Fatal("Delete of a missing id returned true")
	}
	if id, dir, ok := tb.Lookup(b.OutKey()); !ok || id != idb || dir != Out {
		t.Fatal("other conn lost")
	}
	// the id and both keys are reusable
	id, err := tb.Insert(a, 0)
	if err != nil || id != ida {
		t.Fatalf("re-Insert = %d %v, want id %d reused", id, err, ida)
	}
	var all []uint32
	for id, c := range tb.All() {
		if c != tb.Get(id) {
			t.Fatalf("All: conn %d is not Get(%d)", id, id)
		}
		all = append(all, id)
	}
	if len(all) != 2 || all[0] != min(ida, idb) || all[1] != max(ida, idb) {
		t.Fatalf("All visited %v, want %d and %d", all, ida, idb)
	}
	for range tb.All() {
		break // stopping early is fine
	}
	if st := tb.Stats(); st.Inserted != 3 || st.Deleted != 1 || st.Conns != 2 {
		t.Fatalf("Stats = %+v", st)
	}
	checkInvariants(t, tb)
}

func TestInsertRefusals(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	base := randConn(r, false)
	sameIn, sameOut := randConn(r, false), randConn(r, false)
	sameIn.Proto, sameOut.Proto = base.Proto, base.Proto
	sameIn.CAddr, sameIn.CPort, sameIn.VAddr, sameIn.VPort = base.CAddr, base.CPort, base.VAddr, base.VPort
	sameOut.DAddr, sameOut.DPort, sameOut.LAddr, sameOut.LPort = base.DAddr, base.DPort, base.LAddr, base.LPort
	// a conn whose in key is base's out key collides too
	crossed := randConn(r, false)
	crossed.Proto = base.Proto
	crossed.CAddr, crossed.CPort, crossed.VAddr, crossed.VPort = base.DAddr, base.DPort, base.LAddr, base.LPort

	loop := NewConn(header.ProtoTCP, ap("10.0.0.1:1"), ap("10.0.0.2:2"), ap("10.0.0.2:2"), ap("10.0.0.1:1"))
	icmp := randConn(r, false)
	icmp.Proto = header.ProtoICMP
	badState := randConn(r, false)
	badState.Proto, badState.State = header.ProtoTCP, StateUDP

	tests := []struct {
		name string
		c    Conn
		err  error
	}{
		{"same in key", sameIn, ErrExists},
		{"same out key", sameOut, ErrExists},
		{"in key is another conn's out key", crossed, ErrExists},
		{"in key equals out key", loop, ErrInvalid},
		{"ICMP", icmp, ErrInvalid},
		{"TCP in state UDP", badState, ErrInvalid},
	}
	tb := newTable(t, Options{Capacity: 16})
	id, err := tb.Insert(base, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tb.Insert(tc.c, 5); !errors.Is(err, tc.err) {
				t.Fatalf("Insert = %v, want %v", err, tc.err)
			}
			if tb.Len() != 1 {
				t.Fatalf("Len = %d", tb.Len())
			}
			for _, k := range []Key{base.InKey(), base.OutKey()} {
				if got, _, ok := tb.Lookup(k); !ok || got != id {
					t.Fatalf("base conn lost: %v", k)
				}
			}
			checkInvariants(t, tb)
		})
	}
	if st := tb.Stats(); st.RefusedExists != 3 {
		t.Fatalf("RefusedExists = %d, want 3", st.RefusedExists)
	}
}

func TestFull(t *testing.T) {
	for _, hashMask := range []uint32{^uint32(0), 0xff} {
		tb := newTable(t, Options{Capacity: 1000})
		tb.hashMask = hashMask
		if tb.Capacity() != 1024 {
			t.Fatalf("Capacity = %d, want 1000 rounded up to 1024", tb.Capacity())
		}
		r := rand.New(rand.NewPCG(5, uint64(hashMask)))
		conns := map[uint32]Conn{}
		for len(conns) < tb.Capacity() {
			c := randConn(r, r.IntN(2) == 0)
			id, err := tb.Insert(c, 7)
			if err != nil {
				t.Fatalf("Insert #%d: %v", len(conns), err)
			}
			conns[id] = c
		}
		for i := range 100 {
			if _, err := tb.Insert(randConn(r, i%2 == 0), 7); err != ErrFull {
				t.Fatalf("Insert into a full table = %v, want ErrFull", err)
			}
		}
		if st := tb.Stats(); st.RefusedFull != 100 || st.Conns != 1024 {
			t.Fatalf("Stats = %+v", st)
		}
		for id, c := range conns {
			for _, look := range []struct {
				k   Key
				dir Direction
			}{{c.InKey(), In}, {c.OutKey(), Out}} {
				if got, dir, ok := tb.Lookup(look.k); !ok || got != id || dir != look.dir {
					t.Fatalf("Lookup(%v) = %d %v %v, want %d %v", look.k, got, dir, ok, id, look.dir)
				}
			}
			if !sameConn(tb.Get(id), &c) {
				t.Fatalf("conn %d changed", id)
			}
		}
		checkInvariants(t, tb)
		// one slot freed, one insert fits again
		for id := range conns {
			tb.Delete(id)
			break
		}
		if _, err := tb.Insert(randConn(r, false), 7); err != nil {
			t.Fatalf("Insert after Delete: %v", err)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no capacity", Options{}, "Capacity 0"},
		{"too big", Options{Capacity: MaxCapacity + 1}, "Capacity"},
		{"negative tick", Options{Capacity: 1, Tick: -1}, "Tick"},
		{"wheel not a power of two", Options{Capacity: 1, WheelSlots: 100}, "WheelSlots 100"},
		{"negative timeout", Options{Capacity: 1, Timeouts: Timeouts{FinWait: -time.Second}}, "Timeouts.FinWait"},
		{"timeout too long", Options{Capacity: 1, Tick: time.Microsecond, Timeouts: Timeouts{UDP: time.Hour}}, "Timeouts.UDP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error naming %q", err, tc.want)
			}
		})
	}
	if err := (Timeouts{Close: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "Timeouts.Close") {
		t.Fatalf("Validate = %v", err)
	}
	if err := DefaultTimeouts().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestTimeouts(t *testing.T) {
	tb := newTable(t, Options{Capacity: 1, Timeouts: Timeouts{Established: 90 * time.Second}})
	want := map[State]time.Duration{
		StateNone: 2 * time.Second, StateEstablished: 90 * time.Second, StateSynSent: 2 * time.Minute,
		StateSynRecv: time.Minute, StateFinWait: 2 * time.Minute, StateTimeWait: 2 * time.Minute,
		StateClose: 10 * time.Second, StateCloseWait: time.Minute, StateLastAck: 30 * time.Second,
		StateListen: 2 * time.Minute, StateSynAck: 2 * time.Minute, StateUDP: 5 * time.Minute,
	}
	for s, d := range want {
		if got := tb.Timeouts().For(s); got != d {
			t.Errorf("%v: %v, want %v", s, got, d)
		}
		if got := tb.to[s]; got != ticks(d) {
			t.Errorf("%v: %d ticks, want %d", s, got, ticks(d))
		}
	}
	set := DefaultTimeouts().WithIPVSAdm(time.Hour, 0, 20*time.Second)
	if set.Established != time.Hour || set.FinWait != 2*time.Minute || set.UDP != 20*time.Second {
		t.Errorf("WithIPVSAdm = %+v", set)
	}
	// rounding up to whole ticks
	tb = newTable(t, Options{Capacity: 1, Tick: time.Second, Timeouts: Timeouts{Close: 1500 * time.Millisecond}})
	if tb.to[StateClose] != 2 || tb.to[StateEstablished] != 900 {
		t.Errorf("ticks at 1s: close %d established %d", tb.to[StateClose], tb.to[StateEstablished])
	}
	if tb.Ticks(90*time.Second) != 90 || tb.Tick() != time.Second {
		t.Error("Ticks")
	}
}

// TestDifferential runs random inserts, deletes and lookups against a map,
// with the real hash and with weak hashes that force long probe chains.
func TestDifferential(t *testing.T) {
	tests := []struct {
		name     string
		capacity int
		hashMask uint32
		ops      int
	}{
		{"real hash", 4096, ^uint32(0), 100_000},
		{"16 hash values", 512, 0xf, 100_000},
		{"one hash value", 64, 0, 30_000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			differential(t, tc.capacity, tc.hashMask, tc.ops)
		})
	}
}

func differential(t *testing.T, capacity int, hashMask uint32, ops int) {
	tb := newTable(t, Options{Capacity: capacity})
	tb.hashMask = hashMask
	r := rand.New(rand.NewPCG(7, uint64(capacity)))
	// small address and port pools make keys collide across conns
	pool := make([]netip.Addr, 8)
	for i := range pool {
		pool[i] = randAddr(r, i%2 == 0)
	}
	pick := func() netip.AddrPort {
		return netip.AddrPortFrom(pool[r.IntN(len(pool))], uint16(r.IntN(16)))
	}
	type ref struct {
		id  uint32
		dir Direction
	}
	keys := map[Key]ref{}
	live := map[uint32]Conn{}
	var liveIDs []uint32
	for op := range ops {
		switch x := r.IntN(10); {
		case x < 5: // insert
			proto := uint8(header.ProtoTCP)
			if r.IntN(4) == 0 {
				proto = header.ProtoUDP
			}
			c := NewConn(proto, pick(), pick(), pick(), pick())
			c.Dest = uint32(op)
			in, out := c.InKey(), c.OutKey()
			_, inTaken := keys[in]
			_, outTaken := keys[out]
			var want error
			switch {
			case in == out:
				want = ErrInvalid
			case len(live) == tb.Capacity():
				want = ErrFull
			case inTaken || outTaken:
				want = ErrExists
			}
			id, err := tb.Insert(c, uint32(op))
			if err != want {
				t.Fatalf("op %d: Insert = %v, want %v", op, err, want)
			}
			if err == nil {
				if _, dup := live[id]; dup {
					t.Fatalf("op %d: id %d is live", op, id)
				}
				keys[in], keys[out] = ref{id, In}, ref{id, Out}
				live[id] = c
				liveIDs = append(liveIDs, id)
			}
		case x < 7: // delete
			if len(liveIDs) == 0 || r.IntN(10) == 0 {
				id := uint32(r.IntN(tb.Capacity() + 2))
				if _, ok := live[id]; !ok && tb.Delete(id) {
					t.Fatalf("op %d: Delete(%d) of a free id", op, id)
				}
				continue
			}
			i := r.IntN(len(liveIDs))
			id := liveIDs[i]
			liveIDs[i] = liveIDs[len(liveIDs)-1]
			liveIDs = liveIDs[:len(liveIDs)-1]
			if !tb.Delete(id) {
				t.Fatalf("op %d: Delete(%d) = false", op, id)
			}
			c := live[id]
			delete(keys, c.InKey())
			delete(keys, c.OutKey())
			delete(live, id)
		default: // lookup
			var k Key
			if len(liveIDs) > 0 && r.IntN(2) == 0 {
				c := live[liveIDs[r.IntN(len(liveIDs))]]
				k = c.InKey()
				if r.IntN(2) == 0 {
					k = c.OutKey()
				}
			} else {
				k = MakeKey(header.ProtoTCP, pick(), pick())
			}
			want, wok := keys[k]
			id, dir, ok := tb.Lookup(k)
			if ok != wok || (ok && (id != want.id || dir != want.dir)) {
				t.Fatalf("op %d: Lookup(%v) = %d %v %v, want %+v %v", op, k, id, dir, ok, want, wok)
			}
		}
		if op%5000 == 0 {
			checkInvariants(t, tb)
		}
	}
	checkInvariants(t, tb)
	for id, c := range live {
		if !sameConn(tb.Get(id), &c) {
			t.Fatalf("conn %d differs", id)
		}
	}
	if tb.Len() != len(live) {
		t.Fatalf("Len = %d, want %d", tb.Len(), len(live))
	}
}

func TestPublished(t *testing.T) {
	tb := newTable(t, Options{Capacity: 1024})
	r := rand.New(rand.NewPCG(9, 9))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		var last uint64
		for {
			select {
			case <-stop:
				return
			default:
			}
			s := tb.Published()
			if s.Inserted < last {
				t.Errorf("Inserted went back from %d to %d", last, s.Inserted)
			}
			last = s.Inserted
		}
	})
	for i := range 2000 {
		id, err := tb.Insert(randConn(r, false), uint32(i))
		if err == nil && i%3 == 0 {
			tb.Delete(id)
		}
		tb.Publish()
	}
	close(stop)
	wg.Wait()
	got, want := tb.Published(), tb.Stats()
	if got != want {
		t.Fatalf("Published = %+v, Stats = %+v", got, want)
	}
}
