package sched

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"time"
)

// The locality table of lblc and lblcr: destination address → the dest (lblc)
// or the set of dests (lblcr) that served it last.
//
// LVS keeps these in a hash table that grows with every new destination
// address and is trimmed by a timer: once a minute, if it holds more than
// 16384 entries, the ones idle for 6 minutes are freed, and every half hour
// the ones idle for a day (lblc_expiration / lblcr_expiration). Between
// trims, anyone who can make a service see new destination addresses grows
// it without bound.
//
// Here the table is a fixed array of CacheSize entries allocated in New,
// 4-way set-associative (the set chosen by a keyed hash of the address), so
// its memory is fixed by configuration whatever arrives. The kernel's
// timings carry over as rules applied when an entry is touched:
//
//   - an entry idle for lblcExpiration (a day) is gone: a lookup misses it
//     and an insert reuses it (exact, where LVS frees it within half an hour
//     after the day);
//   - a new address takes a free or expired way of its set, else the least
//     recently used way if that one has been idle for lblcEntryTimeout (6
//     minutes, LVS's ENTRY_TIMEOUT); if every way was used more recently the
//     address is not remembered — the flow still gets its dest, as in LVS
//     when an entry cannot be allocated. Entries in use are never evicted by
//     a flood of new addresses.
//
// The table is per instance, i.e. per worker, and pointer-free. It is lost
// when the scheduler is rebuilt (a dest or weight change), where LVS keeps
// it.

const (
	// DefaultCacheSize is the default number of lblc/lblcr entries per
	// instance: LVS's max_size (1024 buckets × 16).
	DefaultCacheSize = 16384
	// MaxCacheSize bounds CacheSize.
	MaxCacheSize = 1 << 20

	lblcWays         = 4
	lblcEntryTimeout = int64(6 * time.Minute)
	lblcExpiration   = int64(24 * time.Hour)

	// lblcrMaxSet bounds an lblcr entry's dest set (LVS: unbounded, up to
	// every dest of the service).
	lblcrMaxSet = 8
)

// locEntry is one remembered destination address. lastuse 0 marks a free
// entry (clocks start at 1).
type locEntry struct {
	key     [16]byte
	lastuse int64
	lastmod int64               // lblcr: last change of the set
	set     [lblcrMaxSet]uint16 // dest indexes; lblc uses set[0]; lblcr: newest first
	n       uint8               // lblcr: entries used in set
}

type locTable struct {
	ents []locEntry
	mask uint64 // sets - 1
	seed uint64
	now  func() int64
}

// clockBase anchors monoNow; it is set once at start-up and never changed.
var clockBase = time.Now()

// monoNow is the default clock of lblc and lblcr: monotonic nanoseconds,
// never 0.
func monoNow() int64 { return int64(time.Since(clockBase)) + 1 }

func newLocTable(name string, ndests, size int) (*locTable, error) {
	if ndests > 0xffff {
		return nil, fmt.Errorf("scheduler %s: %d dests, at most %d", name, ndests, 0xffff)
	}
	if size == 0 {
		size = DefaultCacheSize
	}
	if size < 0 || size > MaxCacheSize {
		return nil, fmt.Errorf("scheduler %s: cache size %d out of range 1-%d (default %d)", name, size, MaxCacheSize, DefaultCacheSize)
	}
	size = max(size, lblcWays)
	size = 1 << bits.Len(uint(size-1)) // round up to a power of two
	return &locTable{
		ents: make([]locEntry, size),
		mask: uint64(size/lblcWays - 1),
		seed: rand.Uint64(),
		now:  monoNow,
	}, nil
}

// ways returns the set of entries key may occupy.
func (t *locTable) ways(key *[16]byte) []locEntry {
	hi := binary.LittleEndian.Uint64(key[:8])
	lo := binary.LittleEndian.Uint64(key[8:])
	set := mix64(mix64(t.seed^hi)^lo) & t.mask
	return t.ents[set*lblcWays : set*lblcWays+lblcWays]
}

// lookup returns the live entry of key, or nil.
func (t *locTable) lookup(key *[16]byte, now int64) *locEntry {
	ws := t.ways(key)
	for i := range ws {
		e := &ws[i]
		if e.lastuse == 0 || e.key != *key {
			continue
		}
		if now-e.lastuse >= lblcExpiration {
			e.lastuse = 0
			return nil
		}
		return e
	}
	return nil
}

// insert returns a cleared entry for key (not present), or nil when every
// way of its set was used within lblcEntryTimeout.
func (t *locTable) insert(key *[16]byte, now int64) *locEntry {
	ws := t.ways(key)
	var lru *locEntry
	for i := range ws {
		e := &ws[i]
		if e.lastuse == 0 || now-e.lastuse >= lblcExpiration {
			lru = e
			break
		}
		if lru == nil || e.lastuse < lru.lastuse {
			lru = e
		}
	}
	if lru.lastuse != 0 && now-lru.lastuse < lblcEntryTimeout {
		return nil
	}
	*lru = locEntry{key: *key, lastuse: now}
	return lru
}

// lblcOverloaded is LVS's lblc/lblcr test of a remembered dest: it has more
// active connections than its weight while some dest has fewer than half
// its weight, i.e. locality is worth less than the imbalance.
func lblcOverloaded(ds []Dest, i int) bool {
	d := &ds[i]
	if d.C.Active.Load() <= int64(d.Weight) {
		return false
	}
	for j := range ds {
		if ds[j].C.Active.Load()*2 < int64(ds[j].Weight) {
			return true
		}
	}
	return false
}
