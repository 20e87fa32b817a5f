package session

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"unsafe"

	"github.com/gvs-lb/gvs/header"
)

func TestZeroAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	tb := newTable(t, Options{Capacity: 4096, WheelSlots: 64})
	r := rand.New(rand.NewPCG(1, 2))
	var ids []uint32
	for range 2000 {
		id, err := tb.Insert(randConn(r, r.IntN(2) == 0), 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	hit := tb.Get(ids[7]).OutKey()
	mc := randConn(r, false)
	miss := mc.InKey()
	spare := make([]Conn, 64)
	for i := range spare {
		spare[i] = randConn(r, true)
	}
	pkt := buildPacket(t, header.ProtoTCP, ap("[2001:db8::1]:1"), ap("[2001:db8::2]:2"))
	src, dst := []byte{192, 0, 2, 1}, []byte{198, 51, 100, 1}
	now := uint32(0)
	expired := 0
	fn := func(id uint32, c *Conn) { expired++ }
	i := 0

	tests := []struct {
		name string
		f    func()
	}{
		{"Lookup hit", func() { tb.Lookup(hit) }},
		{"Lookup miss", func() { tb.Lookup(miss) }},
		{"Get", func() { tb.Get(ids[3]) }},
		{"Insert+Delete", func() {
			id, err := tb.Insert(spare[i%len(spare)], now)
			if err != nil {
				panic(err)
			}
			tb.Delete(id)
			i++
		}},
		{"Insert refused", func() { tb.Insert(*tb.Get(ids[1]), now) }},
		{"Touch", func() { now++; tb.Touch(ids[5], now) }},
		{"Update", func() { now++; tb.Update(ids[6], In, header.TCPFlagACK, now) }},
		{"Transition", func() { Transition(tb.Get(ids[6]), Out, header.TCPFlagFIN) }},
		{"Expire", func() {
			// steady state: one conn in, one conn out per tick
			c := spare[i%len(spare)]
			c.Proto, c.State = header.ProtoTCP, StateClose
			if _, err := tb.Insert(c, now); err != nil {
				panic(err)
			}
			now += tb.to[StateClose]
			tb.Expire(now, 0, fn)
			i++
		}},
		{"ExpireNow+Expire", func() {
			id, _ := tb.Insert(spare[i%len(spare)], now)
			tb.ExpireNow(id)
			tb.Expire(now, 0, fn)
			i++
		}},
		{"ParseKey", func() { parseKey(pkt) }},
		{"KeyFromBytes", func() { KeyFromBytes(header.ProtoUDP, src, dst, 1, 2) }},
		{"Publish", func() { tb.Publish() }},
	}
	for _, tc := range tests {
		if a := testing.AllocsPerRun(1000, tc.f); a != 0 {
			t.Errorf("%s: %v allocations per call, want 0", tc.name, a)
		}
	}
	if expired == 0 {
		t.Fatal("Expire case expired nothing")
	}
	checkInvariants(t, tb)
}

// TestMemoryPerConn: slab plus index is at most 128 bytes per conn.
func TestMemoryPerConn(t *testing.T) {
	for _, capacity := range []int{1, 1000, 1 << 16, 300_000} {
		tb := newTable(t, Options{Capacity: capacity})
		bytes := uintptr(len(tb.conns))*unsafe.Sizeof(Conn{}) + uintptr(len(tb.index))*unsafe.Sizeof(slot{})
		per := float64(bytes) / float64(tb.Capacity())
		fixed := uintptr(len(tb.wheel.next)+len(tb.wheel.prev))*4 + unsafe.Sizeof(*tb)
		t.Logf("Capacity %d → %d: slab+index %.1f bytes per conn, plus %d bytes fixed (wheel, Table)",
			capacity, tb.Capacity(), per, fixed)
		if per > 128 {
			t.Errorf("Capacity %d: %.1f bytes per conn, budget 128", capacity, per)
		}
	}

	// what the allocator actually hands out for a table of 2^20 conns
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tb, err := New(Options{Capacity: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	per := float64(after.TotalAlloc-before.TotalAlloc) / float64(tb.Capacity())
	t.Logf("New(1<<20) allocated %.2f bytes per conn in total", per)
	if per > 129 {
		t.Errorf("New(1<<20) allocated %.2f bytes per conn, budget 128 + fixed overhead", per)
	}
	runtime.KeepAlive(tb)
}
