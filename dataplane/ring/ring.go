// Package ring provides the single-producer/single-consumer rings workers use
// to talk to each other and to the master without locks: SPSC for values
// (buffer pointers, messages) and FrameRing for frames copied into
// preallocated slots (the KNI punt path, where the receive buffer must go
// back to its driver at once).
package ring

import "sync/atomic"

// SPSC is a bounded lock-free queue for one producer and one consumer
// goroutine. Capacity is rounded up to a power of two.
type SPSC[T any] struct {
	_    [64]byte
	head atomic.Uint64 // next slot to read; written by the consumer
	_    [56]byte
	tail atomic.Uint64 // next slot to write; written by the producer
	_    [56]byte
	mask uint64
	buf  []T
}

// NewSPSC returns a ring with room for at least n items.
func NewSPSC[T any](n int) *SPSC[T] {
	c := uint64(1)
	for c < uint64(n) {
		c <<= 1
	}
	return &SPSC[T]{mask: c - 1, buf: make([]T, c)}
}

// Push appends v; false if the ring is full. Producer only.
func (r *SPSC[T]) Push(v T) bool {
	t := r.tail.Load()
	if t-r.head.Load() > r.mask {
		return false
	}
	r.buf[t&r.mask] = v
	r.tail.Store(t + 1)
	return true
}

// Pop removes the oldest item; ok is false if the ring is empty. Consumer only.
func (r *SPSC[T]) Pop() (v T, ok bool) {
	h := r.head.Load()
	if h == r.tail.Load() {
		return v, false
	}
	v = r.buf[h&r.mask]
	var zero T
	r.buf[h&r.mask] = zero
	r.head.Store(h + 1)
	return v, true
}

// Len returns the number of queued items (approximate under concurrency).
func (r *SPSC[T]) Len() int { return int(r.tail.Load() - r.head.Load()) }

// Cap returns the capacity.
func (r *SPSC[T]) Cap() int { return int(r.mask + 1) }

// FrameRing carries copies of frames between one producer and one consumer.
// Slots are preallocated; Put copies into the slot at the tail, the consumer
// reads the slot at the head with Peek and releases it with Release.
type FrameRing struct {
	_     [64]byte
	head  atomic.Uint64
	_     [56]byte
	tail  atomic.Uint64
	_     [56]byte
	mask  uint64
	slots [][]byte
	lens  []int
	tags  []uint16
}

// NewFrameRing returns a ring of at least n slots of slotSize bytes.
func NewFrameRing(n, slotSize int) *FrameRing {
	c := uint64(1)
	for c < uint64(n) {
		c <<= 1
	}
	r := &FrameRing{mask: c - 1, slots: make([][]byte, c), lens: make([]int, c), tags: make([]uint16, c)}
	mem := make([]byte, int(c)*slotSize)
	for i := range r.slots {
		r.slots[i] = mem[i*slotSize : (i+1)*slotSize : (i+1)*slotSize]
	}
	return r
}

// Put copies frame into the ring with a tag (for example a port index);
// false if the ring is full or the frame is larger than a slot. Producer only.
func (r *FrameRing) Put(frame []byte, tag uint16) bool {
	t := r.tail.Load()
	if t-r.head.Load() > r.mask {
		return false
	}
	i := t & r.mask
	if len(frame) > len(r.slots[i]) {
		return false
	}
	r.lens[i] = copy(r.slots[i], frame)
	r.tags[i] = tag
	r.tail.Store(t + 1)
	return true
}

// Peek returns the oldest frame and its tag without removing it; ok is false
// if the ring is empty. The frame is valid until Release. Consumer only.
func (r *FrameRing) Peek() (frame []byte, tag uint16, ok bool) {
	h := r.head.Load()
	if h == r.tail.Load() {
		return nil, 0, false
	}
	i := h & r.mask
	return r.slots[i][:r.lens[i]], r.tags[i], true
}

// Release drops the oldest frame. Consumer only.
func (r *FrameRing) Release() { r.head.Store(r.head.Load() + 1) }

// Len returns the number of queued frames.
func (r *FrameRing) Len() int { return int(r.tail.Load() - r.head.Load()) }
