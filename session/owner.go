package session

import (
	"encoding/binary"
	"math/rand/v2"
	"sync/atomic"
)

// OwnerIndex tells any worker which worker's table holds a connection,
// by one of the connection's keys. It is shared by all workers and
// lock-free: a NAT (masquerading) real server answers the client itself
// (source the server, destination the client), so nothing in the reply
// says which worker made the connection, and the reply may arrive on any
// queue. The owner registers the reply key when it makes the connection
// and removes it when the connection ends; a worker whose own table
// misses asks the index and hands the packet over.
//
// Layout: a power-of-two array of 64-bit slots in buckets of eight (one
// cache line), each slot written with one atomic compare-and-swap and read
// with one atomic load. A slot is fingerprint<<8 | owner: the fingerprint
// is 56 bits of a seeded hash of the key with the top bit forced on, so no
// live slot is 0 (empty) or a tombstone (1). A key has two candidate
// buckets chosen by two halves of its hash and goes to the emptier one
// (two choices keep the fullest bucket near the average: with the index at
// most half full a full pair is practically never met); a lookup reads the
// two buckets, at most 16 loads however full the index is. Within a
// bucket entries take the first free slot, so an empty slot ends the
// bucket's scan. Removal leaves a tombstone that inserts reuse.
//
// Two keys with the same fingerprint sharing a bucket would make the
// second's lookup return the first's owner: the packet is handed to a
// worker whose table misses it, which forwards it as any other packet (it
// does not hand it on again: every worker reads the same first match).
// With 56-bit fingerprints and 16 candidates that is about one lookup in
// 2^52; the seed is random per index.
type OwnerIndex struct {
	slots []atomic.Uint64
	mask  uint32
	seed  [6]uint64
}

const (
	ownerBucket    = 8
	ownerTombstone = 1
)

// NewOwnerIndex returns an index sized for up to conns connections
// (twice that many slots rounded up to a power of two: load ≤ 0.5).
func NewOwnerIndex(conns int) *OwnerIndex {
	n := 64
	for n < 2*conns {
		n <<= 1
	}
	x := &OwnerIndex{slots: make([]atomic.Uint64, n), mask: uint32(n/ownerBucket - 1)}
	for i := range x.seed {
		x.seed[i] = rand.Uint64()
	}
	return x
}

// Slots returns the index's size in slots (8 bytes each).
func (x *OwnerIndex) Slots() int { return len(x.slots) }

func (x *OwnerIndex) hash(k *Key) uint64 {
	s := &x.seed
	a := mum(binary.LittleEndian.Uint64(k.Src[:8])^s[0], binary.LittleEndian.Uint64(k.Src[8:])^s[1])
	b := mum(binary.LittleEndian.Uint64(k.Dst[:8])^s[2], binary.LittleEndian.Uint64(k.Dst[8:])^s[3])
	c := uint64(k.SrcPort) | uint64(k.DstPort)<<16 | uint64(k.Proto)<<32
	return mum(a^c^s[4], b^s[5])
}

// entry returns the slot value for k owned by worker owner, and the
// first slots of k's two buckets.
func (x *OwnerIndex) entry(k *Key, owner uint8) (e uint64, b1, b2 uint32) {
	h := x.hash(k)
	// the fingerprint's low bits pick the buckets: take them before the
	// owner byte replaces them
	b1 = (uint32(h>>8) & x.mask) * ownerBucket
	b2 = (uint32(h>>32) & x.mask) * ownerBucket
	return (h|1<<63)&^0xff | uint64(owner), b1, b2
}

// free counts a bucket's free slots.
func (x *OwnerIndex) free(b uint32) int {
	n := 0
	for i := b; i < b+ownerBucket; i++ {
		if v := x.slots[i].Load(); v == 0 || v == ownerTombstone {
			n++
		}
	}
	return n
}

// Add records that worker owner holds the connection with key k. false:
// both of the key's buckets are full (the caller counts it; that
// connection's packets arriving on other workers are not handed over).
func (x *OwnerIndex) Add(k Key, owner uint8) bool {
	e, b1, b2 := x.entry(&k, owner)
	if x.free(b2) > x.free(b1) {
		b1, b2 = b2, b1
	}
	return x.put(b1, e) || x.put(b2, e)
}

func (x *OwnerIndex) put(b uint32, e uint64) bool {
	for i := b; i < b+ownerBucket; i++ {
		s := &x.slots[i]
		for {
			v := s.Load()
			if v != 0 && v != ownerTombstone {
				break
			}
			if s.CompareAndSwap(v, e) {
				return true
			}
		}
	}
	return false
}

// Remove forgets worker owner's entry for k (one entry per Add).
func (x *OwnerIndex) Remove(k Key, owner uint8) {
	e, b1, b2 := x.entry(&k, owner)
	if !x.del(b1, e) {
		x.del(b2, e)
	}
}

func (x *OwnerIndex) del(b uint32, e uint64) bool {
	for i := b; i < b+ownerBucket; i++ {
		s := &x.slots[i]
		v := s.Load()
		if v == 0 {
			return false
		}
		if v == e && s.CompareAndSwap(e, ownerTombstone) {
			return true
		}
	}
	return false
}

// Owner returns the worker recorded for k.
func (x *OwnerIndex) Owner(k *Key) (uint8, bool) {
	e, b1, b2 := x.entry(k, 0)
	if o, ok := x.find(b1, e); ok {
		return o, true
	}
	return x.find(b2, e)
}

func (x *OwnerIndex) find(b uint32, e uint64) (uint8, bool) {
	for i := b; i < b+ownerBucket; i++ {
		v := x.slots[i].Load()
		if v == 0 {
			return 0, false
		}
		if v&^0xff == e {
			return uint8(v), true
		}
	}
	return 0, false
}
