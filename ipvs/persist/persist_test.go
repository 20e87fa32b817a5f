package persist

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

func key(svc uint32, a string, prefix int) Key {
	return MakeKey(svc, netip.MustParseAddr(a), prefix)
}

func TestMakeKeyMasks(t *testing.T) {
	for _, c := range []struct {
		addr   string
		prefix int
		want   string
	}{
		{"10.1.2.3", 32, "10.1.2.3"},
		{"10.1.2.3", 24, "10.1.2.0"},
		{"10.1.2.3", 0, "0.0.0.0"},
		{"10.1.2.3", 128, "10.1.2.3"}, // larger than the family: whole address
		{"::ffff:10.1.2.3", 16, "10.1.0.0"},
		{"2001:db8:1:2::5", 128, "2001:db8:1:2::5"},
		{"2001:db8:1:2::5", 48, "2001:db8:1::"},
	} {
		k := key(7, c.addr, c.prefix)
		if got := k.Addr().String(); got != c.want || k.Service != 7 {
			t.Errorf("MakeKey(%s/%d) = %d %s, want 7 %s", c.addr, c.prefix, k.Service, got, c.want)
		}
	}
	if key(1, "10.1.2.3", 24) != key(1, "10.1.2.200", 24) {
		t.Error("two clients of one /24 have different keys")
	}
	if key(1, "10.1.2.3", 24) == key(2, "10.1.2.3", 24) {
		t.Error("two services share a key")
	}
}

func TestCreateRefUnref(t *testing.T) {
	tb := New(64)
	k := key(1, "192.0.2.1", 32)
	if _, ok := tb.Ref(k, 100); ok {
		t.Fatal("Ref found a template in an empty table")
	}
	d, _, r := tb.Create(k, 5, 0, 0, 100)
	if d != 5 || r != Created || tb.Len() != 1 {
		t.Fatalf("Create = %d %v len %d, want 5 Created 1", d, r, tb.Len())
	}
	// a second connection of the client: the template's dest, re-armed
	if d, ok := tb.Ref(k, 200); !ok || d != 5 {
		t.Fatalf("Ref = %d %v, want 5 true", d, ok)
	}
	// a racing creator loses to the template
	if d, _, r := tb.Create(k, 9, 0, 0, 300); d != 5 || r != Existing {
		t.Fatalf("second Create = %d %v, want 5 Existing", d, r)
	}
	e := entries(tb)
	if len(e) != 1 || e[0].Refs != 3 || e[0].Dest != 5 || e[0].Expires != 300 || e[0].Key != k {
		t.Fatalf("Walk = %+v, want one template to 5 with 3 refs expiring at 300", e)
	}
	for i := 0; i < 3; i++ {
		if !tb.Unref(k) {
			t.Fatal("Unref missed the template")
		}
	}
	if tb.Unref(key(1, "192.0.2.2", 32)) {
		t.Fatal("Unref of an unknown key succeeded")
	}
	if d, ok := tb.Get(k); !ok || d != 5 {
		t.Fatalf("Get = %d %v after the connections ended, want the template kept until its time", d, ok)
	}
}

func entries(tb *Table) []Entry {
	var out []Entry
	c := 0
	for tb.Walk(&c, 3, func(e Entry) { out = append(out, e) }) {
	}
	return out
}

func TestExpireKeepsControllingTemplates(t *testing.T) {
	tb := New(64)
	live := func(uint32) (uint32, uint8, bool) { return 50, 32, true }
	k1, k2 := key(1, "192.0.2.1", 32), key(1, "192.0.2.2", 32)
	tb.Create(k1, 5, 0, 0, 100)
	tb.Create(k2, 6, 0, 0, 100)
	tb.Unref(k2) // k2 controls nothing
	var gone []Entry
	cur := 0
	if n := tb.Expire(99, live, &cur, 1<<20, func(e Entry) { gone = append(gone, e) }); n != 0 {
		t.Fatalf("Expire before the time removed %d", n)
	}
	if n := tb.Expire(100, live, &cur, 1<<20, func(e Entry) { gone = append(gone, e) }); n != 1 || gone[0].Key != k2 || gone[0].Dest != 6 {
		t.Fatalf("Expire at the time removed %d (%+v), want k2 only", n, gone)
	}
	// k1 still controls a connection: re-armed by the service's timeout
	e := entries(tb)
	if len(e) != 1 || e[0].Key != k1 || e[0].Expires != 150 {
		t.Fatalf("after expiry: %+v, want k1 re-armed to 150", e)
	}
	tb.Unref(k1)
	if n := tb.Expire(149, live, &cur, 1<<20, nil); n != 0 {
		t.Fatalf("removed %d before the re-armed time", n)
	}
	if n := tb.Expire(150, live, &cur, 1<<20, nil); n != 1 || tb.Len() != 0 {
		t.Fatalf("removed %d, len %d, want the last one gone", n, tb.Len())
	}
	// a deleted service's template goes as soon as it controls nothing
	tb.Create(k1, 5, 0, 150, 1000)
	dead := func(uint32) (uint32, uint8, bool) { return 0, 0, false }
	if n := tb.Expire(151, dead, &cur, 1<<20, nil); n != 0 {
		t.Fatal("a template that controls a connection was removed with its service")
	}
	tb.Unref(k1)
	if n := tb.Expire(151, dead, &cur, 1<<20, nil); n != 1 {
		t.Fatal("a deleted service's idle template was kept until its time")
	}
}

func TestRepointStale(t *testing.T) {
	tb := New(64)
	k := key(1, "192.0.2.1", 32)
	tb.Create(k, 5, 0, 0, 100)
	// the caller found dest 5 gone: re-point to 7
	d, old, r := tb.Create(k, 7, 5, 0, 100)
	if d != 7 || old != 5 || r != Repointed {
		t.Fatalf("Create over a stale dest = %d %d %v, want 7 5 Repointed", d, old, r)
	}
	// a second worker that also saw 5 stale gets 7, not an 8 of its own
	if d, _, r := tb.Create(k, 8, 5, 0, 100); d != 7 || r != Existing {
		t.Fatalf("racing re-point = %d %v, want 7 Existing", d, r)
	}
	if tb.Len() != 1 {
		t.Fatalf("len %d, want 1", tb.Len())
	}
}

func TestFullBucket(t *testing.T) {
	tb := New(1) // one bucket: every key meets every other
	if tb.Capacity() != bucketSlots {
		t.Fatalf("capacity %d, want %d", tb.Capacity(), bucketSlots)
	}
	for i := 0; i < bucketSlots; i++ {
		k := MakeKey(1, netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 32)
		if _, _, r := tb.Create(k, uint32(i+1), 0, 0, 100); r != Created {
			t.Fatalf("template %d: %v", i, r)
		}
	}
	k := key(1, "10.0.1.1", 32)
	if _, _, r := tb.Create(k, 3, 0, 0, 100); r != NoRoom || tb.Full() != 1 {
		t.Fatalf("Create into a full bucket = %v (full %d), want NoRoom 1", r, tb.Full())
	}
	// live templates are not evicted, even when expired: they control
	// connections
	if _, _, r := tb.Create(k, 3, 0, 200, 300); r != NoRoom {
		t.Fatalf("Create evicted a template that controls connections: %v", r)
	}
	// an expired template that controls nothing gives its slot
	victim := MakeKey(1, netip.AddrFrom4([4]byte{10, 0, 0, 4}), 32)
	tb.Unref(victim)
	d, old, r := tb.Create(k, 3, 0, 200, 300)
	if d != 3 || old != 4 || r != Repointed {
		t.Fatalf("Create over an expired idle template = %d %d %v, want 3 4 Repointed", d, old, r)
	}
	if _, ok := tb.Get(victim); ok {
		t.Fatal("the evicted template is still found")
	}
	if got, ok := tb.Get(k); !ok || got != 3 || tb.Len() != bucketSlots {
		t.Fatalf("Get = %d %v len %d", got, ok, tb.Len())
	}
}

// TestConcurrentReferencesBalance: goroutines standing for workers create,
// reference and release templates of the same clients at once while an
// expiry walk removes every template that controls nothing; once all
// connections ended, the walk leaves nothing behind.
func TestConcurrentReferencesBalance(t *testing.T) {
	tb := New(1024)
	const workers, clients, rounds = 4, 64, 200
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var walkDone sync.WaitGroup
	walkDone.Add(1)
	go func() {
		defer walkDone.Done()
		cur := 0
		live := func(uint32) (uint32, uint8, bool) { return 1000, 32, true }
		for {
			select {
			case <-stop:
				return
			default:
				tb.Expire(1<<30, live, &cur, 16, nil) // every template is due: only refs keep them
			}
		}
	}()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				for c := 0; c < clients; c++ {
					k := MakeKey(1, netip.AddrFrom4([4]byte{10, 1, byte(c), 1}), 32)
					d, ok := tb.Ref(k, 0)
					if !ok {
						var res Result
						d, _, res = tb.Create(k, uint32(w*1000+c+1), 0, 0, 0)
						if res == NoRoom {
							t.Error("no room in a table 16 times the clients")
							return
						}
					}
					if d == 0 {
						t.Error("a template without a dest")
						return
					}
					tb.Unref(k)
				}
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	walkDone.Wait()
	// The walk may remove a template between a client's connections (it
	// controlled none then): its next connection is scheduled anew, as
	// LVS does after expiry. What must never happen is two live templates
	// for one client or references that do not balance.
	cur := 0
	live := func(uint32) (uint32, uint8, bool) { return 1000, 32, true }
	tb.Expire(1<<30+1000, live, &cur, 1<<20, nil) // past any re-armed time
	if tb.Len() != 0 {
		t.Fatalf("%d templates left after every connection ended: references do not balance (%+v)", tb.Len(), entries(tb))
	}
}

// TestConcurrentHeldConnections: while a client holds a connection, every
// worker's new connection of that client gets the template's dest, with
// the expiry walk running all the time.
func TestConcurrentHeldConnections(t *testing.T) {
	tb := New(1024)
	const workers, clients = 4, 32
	for c := 0; c < clients; c++ {
		tb.Create(MakeKey(1, netip.AddrFrom4([4]byte{10, 2, byte(c), 1}), 32), uint32(c+1), 0, 0, 0)
	}
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		cur := 0
		live := func(uint32) (uint32, uint8, bool) { return 1000, 32, true }
		for {
			select {
			case <-stop:
				return
			default:
				tb.Expire(1<<30, live, &cur, 16, nil)
			}
		}
	}()
	var wg sync.WaitGroup
	var bad atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := 0; r < 500; r++ {
				for c := 0; c < clients; c++ {
					k := MakeKey(1, netip.AddrFrom4([4]byte{10, 2, byte(c), 1}), 32)
					d, ok := tb.Ref(k, 0)
					if !ok {
						d, _, _ = tb.Create(k, 999, 0, 0, 0)
					}
					if d != uint32(c+1) {
						bad.Add(1)
					}
					tb.Unref(k)
				}
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d connections went to another dest while their client held a connection", n)
	}
	if tb.Len() != clients {
		t.Fatalf("%d templates, want %d (the held ones)", tb.Len(), clients)
	}
}

func TestNoAllocations(t *testing.T) {
	tb := New(1024)
	k := key(1, "192.0.2.1", 24)
	tb.Create(k, 1, 0, 0, 10)
	if n := testing.AllocsPerRun(1000, func() {
		tb.Ref(k, 10)
		tb.Unref(k)
		tb.Create(k, 1, 0, 0, 10)
		tb.Unref(k)
	}); n != 0 {
		t.Fatalf("%v allocations per Ref/Create/Unref", n)
	}
}

func BenchmarkRef(b *testing.B) {
	tb := New(1 << 16)
	keys := make([]Key, 4096)
	for i := range keys {
		keys[i] = MakeKey(1, netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}), 32)
		tb.Create(keys[i], uint32(i+1), 0, 0, 10)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := keys[i&4095]
		tb.Ref(k, 10)
		tb.Unref(k)
	}
}
