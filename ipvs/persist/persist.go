// Package persist is the persistence template table of GVS's IPVS stage:
// LVS's "template connections" (ipvsadm -p, -M). A template remembers,
// for one client network (the client address under the service's
// persistence mask) and one virtual service, the real server its first
// connection was scheduled to; every later connection of that client
// network to that service goes to the same real server while the template
// lives, whichever worker it arrives on.
//
// Design. Templates must be shared by all workers: one client's
// connections use different source ports, which RSS spreads over queues
// and workers, and they must still meet the same real server. The table is
// therefore one fixed-size structure shared by every worker, read without
// locks on the packet path:
//
//   - Buckets of bucketSlots slots, selected by a keyed hash (a random
//     per-process key, so that a client cannot aim its addresses at one
//     bucket of every node). A key lives in its bucket only; there is no
//     probing between buckets and no growth: memory is fixed by
//     configuration, never by traffic.
//   - Readers (every worker's lookup of an existing template, the
//     listing) take no lock: each slot has a sequence word that is odd
//     while its slot is written, and a reader that sees it change retries.
//     Every field is an atomic word, so the race detector agrees.
//   - Writers (a worker creating or re-pointing a template, the expiry
//     walk removing one) take their bucket's spin lock for the few
//     stores they make. Creation is rare (once per client network per
//     timeout) and the critical section is a bucket scan, so contention
//     is negligible; a writer that finds the lock held yields its thread
//     after a few spins rather than burning a shared core.
//   - A template counts the connections it controls (refs). LVS keeps a
//     template while it controls connections and re-arms its timer when
//     it expires with some left; GVS does the same: the expiry walk
//     removes a template only when its time has passed and it controls
//     nothing, and re-arms it otherwise. A reader that takes a reference
//     re-checks the slot's sequence afterwards and gives the reference
//     back if the slot changed under it, so the walk never removes a
//     template a new connection is about to use.
//   - A full bucket (every slot held by a live template) means the new
//     client is scheduled without a template: it is served, its next
//     connection may go elsewhere, and the refusal is counted. Flooding
//     the table from spoofed sources therefore never takes stickiness
//     from clients that already have it.
//
// Expiry times are in the caller's ticks (uint32, wrapping comparisons).
package persist

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"runtime"
	"sync/atomic"
)

// bucketSlots is the number of templates one bucket holds.
const bucketSlots = 8

// DefaultCapacity is the default number of template slots.
const DefaultCapacity = 1 << 16

// Key identifies a template: a virtual service and a client network (the
// client address under the service's mask, in 16-byte form with IPv4
// v4-mapped, and the mask's prefix length). The prefix is part of the key
// so that a connection made before an operator changed the service's
// netmask still finds the template it holds a reference to.
type Key struct {
	Service uint32
	Prefix  uint8
	Client  [16]byte
}

// MakeKey returns the key of client under a mask of prefix bits (of the
// address's own family: 0-32 for IPv4, 0-128 for IPv6; larger values keep
// the whole address).
func MakeKey(service uint32, client netip.Addr, prefix int) Key {
	client = client.Unmap()
	bits := client.BitLen()
	if prefix < 0 || prefix > bits {
		prefix = bits
	}
	if p, err := client.Prefix(prefix); err == nil {
		client = p.Addr()
	}
	return Key{Service: service, Prefix: uint8(prefix), Client: client.As16()}
}

// Addr returns the key's client network address (IPv4 unmapped).
func (k Key) Addr() netip.Addr { return netip.AddrFrom16(k.Client).Unmap() }

type slot struct {
	seq     atomic.Uint32 // odd while written
	svc     atomic.Uint32 // 0: the slot is free
	a0, a1  atomic.Uint64 // the client network
	dest    atomic.Uint32
	expires atomic.Uint32
	refs    atomic.Int32 // connections controlled
	pfx     atomic.Uint32
}

type bucket struct {
	lock  atomic.Uint32
	_     uint32
	slots [bucketSlots]slot
}

// Table is the shared template table. All methods are safe for concurrent
// use.
type Table struct {
	buckets []bucket
	mask    uint64
	k0, k1  uint64
	n       atomic.Int64
	full    atomic.Uint64
}

// New returns a table of at least capacity slots (rounded up to a power
// of two buckets); capacity <= 0 selects DefaultCapacity.
func New(capacity int) *Table {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	nb := 1
	for nb*bucketSlots < capacity {
		nb <<= 1
	}
	var seed [16]byte
	_, _ = rand.Read(seed[:])
	return &Table{
		buckets: make([]bucket, nb),
		mask:    uint64(nb - 1),
		k0:      binary.LittleEndian.Uint64(seed[:8]),
		k1:      binary.LittleEndian.Uint64(seed[8:]) | 1,
	}
}

// Capacity returns the number of template slots.
func (t *Table) Capacity() int { return len(t.buckets) * bucketSlots }

// Len returns the number of templates.
func (t *Table) Len() int { return int(t.n.Load()) }

// Full returns how many new clients found their bucket full and were
// scheduled without a template.
func (t *Table) Full() uint64 { return t.full.Load() }

func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func words(k *Key) (uint64, uint64) {
	return binary.LittleEndian.Uint64(k.Client[:8]), binary.LittleEndian.Uint64(k.Client[8:])
}

func (t *Table) bucket(k *Key) *bucket {
	a0, a1 := words(k)
	h := mix64(a0^t.k0) ^ mix64(a1^t.k1^uint64(k.Service)<<32)
	return &t.buckets[mix64(h)&t.mask]
}

func (b *bucket) acquire() {
	for i := 0; !b.lock.CompareAndSwap(0, 1); i++ {
		if i >= 64 {
			runtime.Gosched() // the holder may be preempted on a shared core
		}
	}
}

func (b *bucket) release() { b.lock.Store(0) }

// read returns the slot's key, dest and the sequence it was read at, or
// ok=false while the slot is written.
func (s *slot) read() (svc, pfx uint32, a0, a1 uint64, dest uint32, seq uint32, ok bool) {
	seq = s.seq.Load()
	if seq&1 != 0 {
		return 0, 0, 0, 0, 0, 0, false
	}
	svc, pfx, a0, a1, dest = s.svc.Load(), s.pfx.Load(), s.a0.Load(), s.a1.Load(), s.dest.Load()
	return svc, pfx, a0, a1, dest, seq, s.seq.Load() == seq
}

// find returns the slot holding k and its dest without taking a reference.
func (b *bucket) find(k *Key, a0, a1 uint64) (s *slot, dest, seq uint32) {
	for i := range b.slots {
		s := &b.slots[i]
		for {
			svc, pfx, x0, x1, d, sq, ok := s.read()
			if !ok {
				continue // being written: a few stores
			}
			if svc == k.Service && x0 == a0 && x1 == a1 && pfx == uint32(k.Prefix) && svc != 0 {
				return s, d, sq
			}
			break
		}
	}
	return nil, 0, 0
}

// Get returns the real server (dest id) of k's template, without taking a
// reference or re-arming it.
func (t *Table) Get(k Key) (dest uint32, ok bool) {
	a0, a1 := words(&k)
	s, d, _ := t.bucket(&k).find(&k, a0, a1)
	return d, s != nil
}

// Ref finds k's template, takes a reference for a new connection it
// controls and re-arms its timer to expires. It returns the template's
// real server, or ok=false when there is none.
func (t *Table) Ref(k Key, expires uint32) (dest uint32, ok bool) {
	a0, a1 := words(&k)
	b := t.bucket(&k)
	for {
		s, d, seq := b.find(&k, a0, a1)
		if s == nil {
			return 0, false
		}
		s.refs.Add(1)
		if s.seq.Load() == seq {
			s.expires.Store(expires)
			return d, true
		}
		s.refs.Add(-1) // changed under us (re-pointed or removed): look again
	}
}

// Result says what Create did.
type Result uint8

const (
	// Created: a new template holds the caller's dest.
	Created Result = iota
	// Existing: another connection created k's template first; the caller
	// uses the dest returned.
	Existing
	// Repointed: k's template held stale, which the caller replaced with
	// its dest.
	Repointed
	// NoRoom: k's bucket is full of live templates; no reference taken.
	NoRoom
)

// Create makes k's template point to dest with one reference, expiring at
// expires. If k already has a template, its dest wins (the caller's
// connection takes a reference to it), unless that dest is stale: then
// the template is re-pointed to dest (LVS replaces a template whose real
// server became unavailable). A slot of an expired template that controls
// nothing is reused when the bucket has no free one. now is the caller's
// current tick. old is the dest the template held before (for Repointed,
// so that the caller can move its per-dest template count).
func (t *Table) Create(k Key, dest, stale uint32, now, expires uint32) (got uint32, old uint32, r Result) {
	a0, a1 := words(&k)
	b := t.bucket(&k)
	b.acquire()
	defer b.release()
	var free, reuse *slot
	for i := range b.slots {
		s := &b.slots[i]
		svc := s.svc.Load() // stable: writers hold the lock
		if svc == 0 {
			if free == nil {
				free = s
			}
			continue
		}
		if svc == k.Service && s.a0.Load() == a0 && s.a1.Load() == a1 && s.pfx.Load() == uint32(k.Prefix) {
			d := s.dest.Load()
			s.expires.Store(expires)
			if d != stale || stale == dest {
				s.refs.Add(1)
				return d, d, Existing
			}
			s.seq.Add(1)
			s.dest.Store(dest)
			s.seq.Add(1)
			s.refs.Add(1)
			return dest, d, Repointed
		}
		if reuse == nil && s.refs.Load() <= 0 && int32(now-s.expires.Load()) >= 0 {
			reuse = s
		}
	}
	s := free
	if s == nil {
		s = reuse
	}
	if s == nil {
		t.full.Add(1)
		return 0, 0, NoRoom
	}
	s.seq.Add(1) // odd: lookups retry, references taken meanwhile are given back
	if s == reuse {
		// a reference taken before the slot was claimed is a connection
		// using the expired template again: leave it in place
		if s.refs.Load() > 0 {
			s.seq.Add(1)
			t.full.Add(1)
			return 0, 0, NoRoom
		}
		old = s.dest.Load()
		t.n.Add(-1)
	}
	s.svc.Store(0)
	s.a0.Store(a0)
	s.a1.Store(a1)
	s.pfx.Store(uint32(k.Prefix))
	s.dest.Store(dest)
	s.expires.Store(expires)
	s.refs.Add(1) // references taken and given back under a stale read net to zero
	s.svc.Store(k.Service)
	s.seq.Add(1)
	t.n.Add(1)
	if s == reuse {
		return dest, old, Repointed
	}
	return dest, 0, Created
}

// Unref gives back a reference taken by Ref or Create, when the
// connection it controlled ends. The template stays until its timer
// passes with no connection left.
func (t *Table) Unref(k Key) bool {
	a0, a1 := words(&k)
	s, _, _ := t.bucket(&k).find(&k, a0, a1)
	if s == nil {
		return false
	}
	s.refs.Add(-1)
	return true
}

// Entry is a template as Walk and Expire report it.
type Entry struct {
	Key     Key
	Dest    uint32
	Expires uint32
	Refs    int32
}

// Expire walks at most n buckets from *cursor (wrapping), removes the
// templates whose time (in ticks) has passed and that control no
// connection, and re-arms those whose time has passed while they still
// control some (as LVS does). policy(svc) returns the service's timeout in
// ticks and its current prefix length, and live=false when the service is
// gone or no longer persistent: its templates, and those of another prefix
// (the netmask was changed), are removed as soon as they control nothing,
// and never re-armed. A template is never removed while it controls a
// connection: that connection's reference must find it when it ends.
// gone, if not nil, is called for each removed template. It returns the
// number removed.
func (t *Table) Expire(tick uint32, policy func(svc uint32) (timeout uint32, prefix uint8, live bool), cursor *int, n int, gone func(Entry)) int {
	removed := 0
	nb := len(t.buckets)
	if n > nb {
		n = nb
	}
	for i := 0; i < n; i++ {
		*cursor = (*cursor + 1) % nb
		b := &t.buckets[*cursor]
		if b.empty() {
			continue
		}
		b.acquire()
		for j := range b.slots {
			s := &b.slots[j]
			svc := s.svc.Load()
			if svc == 0 {
				continue
			}
			timeout, prefix, live := policy(svc)
			due := int32(tick-s.expires.Load()) >= 0
			current := live && s.pfx.Load() == uint32(prefix)
			if current && !due {
				continue
			}
			// claim the slot before judging its references: a lookup that
			// took one before this sees the version change and gives it
			// back, one that took it earlier counts (and keeps the template)
			s.seq.Add(1)
			if s.refs.Load() > 0 {
				// it controls connections: a current template is re-armed,
				// one of a deleted service or an old netmask stays until
				// they end (their references must find it)
				if current {
					s.expires.Store(tick + timeout)
				}
				s.seq.Add(1)
				continue
			}
			e := Entry{Dest: s.dest.Load(), Expires: s.expires.Load()}
			e.Key.Service, e.Key.Prefix = svc, uint8(s.pfx.Load())
			binary.LittleEndian.PutUint64(e.Key.Client[:8], s.a0.Load())
			binary.LittleEndian.PutUint64(e.Key.Client[8:], s.a1.Load())
			s.svc.Store(0)
			s.seq.Add(1)
			t.n.Add(-1)
			removed++
			if gone != nil {
				gone(e)
			}
		}
		b.release()
	}
	return removed
}

// empty reports, without the lock, whether the bucket holds no template.
func (b *bucket) empty() bool {
	for i := range b.slots {
		if b.slots[i].svc.Load() != 0 {
			return false
		}
	}
	return true
}

// Walk calls f for every template, from bucket *cursor on, for at most n
// buckets; it returns false when the walk reached the end of the table.
// It takes no lock: each entry is read consistently, entries that change
// meanwhile may be seen in either state.
func (t *Table) Walk(cursor *int, n int, f func(Entry)) bool {
	for ; n > 0 && *cursor < len(t.buckets); n-- {
		b := &t.buckets[*cursor]
		*cursor++
		for j := range b.slots {
			s := &b.slots[j]
			for {
				svc, pfx, a0, a1, d, seq, ok := s.read()
				if !ok {
					continue
				}
				if svc == 0 {
					break
				}
				e := Entry{Dest: d, Expires: s.expires.Load(), Refs: s.refs.Load()}
				if s.seq.Load() != seq {
					continue
				}
				e.Key.Service, e.Key.Prefix = svc, uint8(pfx)
				binary.LittleEndian.PutUint64(e.Key.Client[:8], a0)
				binary.LittleEndian.PutUint64(e.Key.Client[8:], a1)
				f(e)
				break
			}
		}
	}
	return *cursor < len(t.buckets)
}
