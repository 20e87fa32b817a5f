package sync

// The node's synced table: every connection this node's dataplane
// published and every one a peer sent, keyed by its client side, with the
// node it came from. It answers bulk requests and re-installs connections
// after a restart of the local dataplane. Its size is bounded by
// configuration (new connections beyond it are refused and counted), and
// entries expire at the timeout their last record carried, plus a grace,
// unless refreshed.

import (
	"net/netip"
	stdsync "sync"
	"time"
)

type tableKey struct {
	proto           uint8
	client, virtual netip.AddrPort
}

type tableEntry struct {
	rec     Record
	origin  uint32
	expires time.Time
}

// Table is the synced table. Safe for concurrent use.
type Table struct {
	mu    stdsync.Mutex
	max   int
	grace time.Duration
	m     map[tableKey]*tableEntry
}

// NewTable holds at most max connections; entries live grace past their
// timeout.
func NewTable(max int, grace time.Duration) *Table {
	return &Table{max: max, grace: grace, m: map[tableKey]*tableEntry{}}
}

func keyOf(r *Record) tableKey {
	return tableKey{r.Proto, unmapAP(r.Client), unmapAP(r.Virtual)}
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// Apply records r from origin at now; false if the table is full and r is
// a new connection (refused).
func (t *Table) Apply(r *Record, origin uint32, now time.Time) bool {
	k := keyOf(r)
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.Flags&RecDelete != 0 {
		if e := t.m[k]; e != nil && e.origin == origin {
			delete(t.m, k)
		}
		return true
	}
	e := t.m[k]
	if e == nil {
		if len(t.m) >= t.max {
			return false
		}
		e = &tableEntry{}
		t.m[k] = e
	}
	e.rec, e.origin = *r, origin
	e.rec.Flags &^= RecDelete
	e.expires = now.Add(time.Duration(r.Timeout)*time.Second + t.grace)
	return true
}

// Expire removes the entries due at now and returns how many.
func (t *Table) Expire(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k, e := range t.m {
		if !e.expires.After(now) {
			delete(t.m, k)
			n++
		}
	}
	return n
}

// Len returns the number of connections.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// Snapshot returns copies of all records with their origins, the
// remaining timeout (rounded up to a second) in each record's Timeout.
func (t *Table) Snapshot(now time.Time) (recs []Record, origins []uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	recs = make([]Record, 0, len(t.m))
	origins = make([]uint32, 0, len(t.m))
	for _, e := range t.m {
		r := e.rec
		left := e.expires.Sub(now) - t.grace
		if left < time.Second {
			left = time.Second
		}
		r.Timeout = uint32((left + time.Second - 1) / time.Second)
		recs = append(recs, r)
		origins = append(origins, e.origin)
	}
	return recs, origins
}
