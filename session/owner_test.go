package session

import (
	"net/netip"
	"sync"
	"testing"
)

func ownerKey(i int) Key {
	return MakeKey(6, netip.AddrPortFrom(netip.MustParseAddr("10.2.0.11"), 80),
		netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 16), byte(i >> 8)}), uint16(i)))
}

func TestOwnerIndex(t *testing.T) {
	x := NewOwnerIndex(1000)
	if x.Slots() != 2048 {
		t.Fatalf("slots %d, want 2048", x.Slots())
	}
	for i := 0; i < 1000; i++ {
		if !x.Add(ownerKey(i), uint8(i%3)) {
			t.Fatalf("add %d: window full at load < 0.5", i)
		}
	}
	for i := 0; i < 1000; i++ {
		k := ownerKey(i)
		if o, ok := x.Owner(&k); !ok || o != uint8(i%3) {
			t.Fatalf("key %d: owner %d %v, want %d", i, o, ok, i%3)
		}
	}
	k := ownerKey(5000)
	if _, ok := x.Owner(&k); ok {
		t.Fatal("a key never added has an owner")
	}
	// removing every other key leaves the rest findable across tombstones
	for i := 0; i < 1000; i += 2 {
		x.Remove(ownerKey(i), uint8(i%3))
	}
	for i := 0; i < 1000; i++ {
		k := ownerKey(i)
		o, ok := x.Owner(&k)
		if i%2 == 0 && ok {
			t.Fatalf("removed key %d still has owner %d", i, o)
		}
		if i%2 == 1 && (!ok || o != uint8(i%3)) {
			t.Fatalf("key %d lost after removals: %d %v", i, o, ok)
		}
	}
	// a remove by another owner is not this entry's
	x.Remove(ownerKey(1), 2)
	if k := ownerKey(1); func() bool { _, ok := x.Owner(&k); return !ok }() {
		t.Fatal("remove with the wrong owner removed the entry")
	}
	// tombstones are reused: the table takes its full load again
	for i := 2000; i < 2500; i++ {
		if !x.Add(ownerKey(i), 1) {
			t.Fatalf("add %d after removals failed", i)
		}
	}
}

func TestOwnerIndexWindowFull(t *testing.T) {
	x := NewOwnerIndex(1) // 64 slots
	placed := map[int]bool{}
	for i := 0; i < 200; i++ {
		if x.Add(ownerKey(i), 0) {
			placed[i] = true
		}
	}
	if len(placed) > 64 {
		t.Fatalf("%d entries in 64 slots", len(placed))
	}
	if len(placed) == 200 {
		t.Fatal("no add refused with 200 keys for 64 slots")
	}
	for i := 0; i < 200; i++ {
		k := ownerKey(i)
		if _, ok := x.Owner(&k); ok != placed[i] {
			t.Fatalf("key %d: found %v, placed %v", i, ok, placed[i])
		}
	}
}

// TestOwnerIndexConcurrent: each worker adds and removes its own keys
// while the others read them (run with -race).
func TestOwnerIndexConcurrent(t *testing.T) {
	x := NewOwnerIndex(4096)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for round := 0; round < 20; round++ {
				for i := w * 1000; i < w*1000+500; i++ {
					if !x.Add(ownerKey(i), uint8(w)) {
						t.Errorf("worker %d: add %d failed", w, i)
						return
					}
				}
				for i := 0; i < 4000; i++ { // everyone's keys
					k := ownerKey(i)
					if o, ok := x.Owner(&k); ok && int(o) != i/1000 {
						t.Errorf("key %d: owner %d, want %d", i, o, i/1000)
						return
					}
				}
				for i := w * 1000; i < w*1000+500; i++ {
					x.Remove(ownerKey(i), uint8(w))
				}
			}
		}(w)
	}
	wg.Wait()
	for i := 0; i < 4000; i++ {
		if k := ownerKey(i); func() bool { _, ok := x.Owner(&k); return ok }() {
			t.Fatalf("key %d left after every worker removed its keys", i)
		}
	}
}

func BenchmarkOwnerIndexMiss(b *testing.B) {
	x := NewOwnerIndex(1 << 16)
	for i := 0; i < 1<<16; i++ {
		x.Add(ownerKey(i), 1)
	}
	k := ownerKey(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		x.Owner(&k)
	}
}
