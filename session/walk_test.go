package session

import (
	"math/rand/v2"
	"testing"
)

// TestWalk: a walk in steps of every size visits exactly the live conns,
// once each, in id order, never more than span ids per call, and agrees
// with All.
func TestWalk(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	tb := newTable(t, Options{Capacity: 1024})
	var ids []uint32
	for len(ids) < 700 {
		id, err := tb.Insert(randConn(r, r.IntN(2) == 0), 0)
		if err == nil {
			ids = append(ids, id)
		}
	}
	// holes: delete every third conn
	live := map[uint32]bool{}
	for i, id := range ids {
		if i%3 == 0 {
			tb.Delete(id)
		} else {
			live[id] = true
		}
	}
	var want []uint32
	for id := range tb.All() {
		want = append(want, id)
	}
	if len(want) != len(live) {
		t.Fatalf("All visited %d conns, want %d", len(want), len(live))
	}
	for _, span := range []int{1, 2, 3, 64, 699, 700, 701, 5000} {
		var got []uint32
		calls := 0
		for cur := uint32(0); cur != NoID; calls++ {
			n := 0
			next := tb.Walk(cur, span, func(id uint32, c *Conn) {
				n++
				if c != tb.Get(id) || !live[id] {
					t.Fatalf("span %d: visited %d, not a live conn", span, id)
				}
				got = append(got, id)
			})
			if n > span {
				t.Fatalf("span %d: one call visited %d conns", span, n)
			}
			if next != NoID && next != cur+uint32(span) {
				t.Fatalf("span %d: Walk(%d) = %d, want %d", span, cur, next, cur+uint32(span))
			}
			cur = next
		}
		if len(got) != len(want) {
			t.Fatalf("span %d: visited %d conns, want %d", span, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("span %d: visit %d is id %d, want %d", span, i, got[i], want[i])
			}
		}
		if wantCalls := (700 + span - 1) / span; calls != wantCalls {
			t.Errorf("span %d: %d calls, want %d", span, calls, wantCalls)
		}
	}
	if next := tb.Walk(5000, 10, func(uint32, *Conn) { t.Fatal("visited past the end") }); next != NoID {
		t.Errorf("Walk past the end = %d, want NoID", next)
	}
	if next := tb.Walk(3, 0, func(uint32, *Conn) { t.Fatal("visited with span 0") }); next != 3 {
		t.Errorf("Walk with span 0 = %d, want 3", next)
	}
}

// TestWalkConcurrentChanges: a conn that lives through a walk interleaved
// with inserts and deletes is visited exactly once; others at most once.
func TestWalkConcurrentChanges(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	tb := newTable(t, Options{Capacity: 4096})
	stable := map[uint32]bool{}
	var churn []uint32
	for i := 0; i < 2000; i++ {
		id, err := tb.Insert(randConn(r, false), 0)
		if err != nil {
			continue
		}
		if i%2 == 0 {
			stable[id] = true
		} else {
			churn = append(churn, id)
		}
	}
	seen := map[uint32]int{}
	for cur := uint32(0); cur != NoID; {
		cur = tb.Walk(cur, 50, func(id uint32, _ *Conn) { seen[id]++ })
		// between steps: remove some churn conns and insert new ones
		for k := 0; k < 5 && len(churn) > 0; k++ {
			j := r.IntN(len(churn))
			tb.Delete(churn[j])
			churn = append(churn[:j], churn[j+1:]...)
			if id, err := tb.Insert(randConn(r, false), 0); err == nil {
				churn = append(churn, id) // may reuse a freed id behind or ahead of the cursor
			}
		}
	}
	for id := range stable {
		if seen[id] != 1 {
			t.Errorf("stable conn %d visited %d times", id, seen[id])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("conn %d visited %d times", id, n)
		}
	}
}

func TestWalkAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	tb := newTable(t, Options{Capacity: 256})
	for i := 0; i < 200; i++ {
		tb.Insert(randConn(r, false), 0)
	}
	n := 0
	if a := testing.AllocsPerRun(100, func() {
		for cur := uint32(0); cur != NoID; {
			cur = tb.Walk(cur, 32, func(uint32, *Conn) { n++ })
		}
	}); a != 0 {
		t.Errorf("Walk allocates %.1f times per walk", a)
	}
}
