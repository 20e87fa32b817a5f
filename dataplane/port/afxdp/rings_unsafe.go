//go:build linux

// The four AF_XDP rings, seen from user space.
//
// Each ring is a region the kernel lets us mmap from the socket: a producer
// index, a consumer index, a flags word and an array of entries, at the
// offsets XDP_MMAP_OFFSETS reports. Indexes are free-running uint32 values;
// the slot of index i is i & mask. One side only ever writes the producer,
// the other only the consumer; we publish our index with an atomic store
// after writing (or reading) the entries and read the kernel's with an
// atomic load before touching them, which gives the release/acquire pairing
// the kernel expects (it uses smp_load_acquire/smp_store_release).
//
// We keep cached copies of both indexes so that the common case touches the
// shared cache lines only when the cache says we are out of room or out of
// entries.
//
// This file holds all pointer arithmetic over the mmapped regions.
package afxdp

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is the index part common to all four rings.
type ring struct {
	producer *uint32
	consumer *uint32
	flags    *uint32
	size     uint32
	mask     uint32

	cachedProd uint32
	cachedCons uint32

	mem []byte // the mmapped region, for munmap
}

func (r *ring) init(mem []byte, off unix.XDPRingOffset, size uint32) unsafe.Pointer {
	base := unsafe.Pointer(unsafe.SliceData(mem))
	r.producer = (*uint32)(unsafe.Add(base, off.Producer))
	r.consumer = (*uint32)(unsafe.Add(base, off.Consumer))
	r.flags = (*uint32)(unsafe.Add(base, off.Flags))
	r.size = size
	r.mask = size - 1
	r.mem = mem
	r.cachedProd = atomic.LoadUint32(r.producer)
	r.cachedCons = atomic.LoadUint32(r.consumer)
	return unsafe.Add(base, off.Desc)
}

// needWakeup reports whether the kernel asked to be woken up for this ring.
func (r *ring) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// Producer side (fill, tx).

// free returns how many entries, up to n, can be produced now.
func (r *ring) free(n uint32) uint32 {
	room := r.size - (r.cachedProd - r.cachedCons)
	if room < n {
		r.cachedCons = atomic.LoadUint32(r.consumer)
		room = r.size - (r.cachedProd - r.cachedCons)
	}
	return min(room, n)
}

// submit publishes n entries written after the producer index.
func (r *ring) submit(n uint32) {
	r.cachedProd += n
	atomic.StoreUint32(r.producer, r.cachedProd)
}

// outstanding returns how many produced entries the kernel has not consumed
// yet, reading the kernel's consumer index.
func (r *ring) outstanding() uint32 {
	r.cachedCons = atomic.LoadUint32(r.consumer)
	return r.cachedProd - r.cachedCons
}

// Consumer side (rx, completion).

// avail returns how many entries, up to n, can be consumed now.
func (r *ring) avail(n uint32) uint32 {
	have := r.cachedProd - r.cachedCons
	if have < n {
		r.cachedProd = atomic.LoadUint32(r.producer)
		have = r.cachedProd - r.cachedCons
	}
	return min(have, n)
}

// release gives n consumed entries back to the kernel.
func (r *ring) release(n uint32) {
	r.cachedCons += n
	atomic.StoreUint32(r.consumer, r.cachedCons)
}

// addrRing is a fill or completion ring: entries are UMEM addresses.
type addrRing struct {
	ring
	addrs []uint64
}

func (r *addrRing) init(mem []byte, off unix.XDPRingOffset, size uint32) {
	p := r.ring.init(mem, off, size)
	r.addrs = unsafe.Slice((*uint64)(p), size)
}

// descRing is an rx or tx ring: entries are packet descriptors.
type descRing struct {
	ring
	descs []unix.XDPDesc
}

func (r *descRing) init(mem []byte, off unix.XDPRingOffset, size uint32) {
	p := r.ring.init(mem, off, size)
	r.descs = unsafe.Slice((*unix.XDPDesc)(p), size)
}

// ringBytes is the length to mmap for a ring of size entries of entSize
// bytes.
func ringBytes(off unix.XDPRingOffset, size uint32, entSize uintptr) int {
	return int(off.Desc) + int(size)*int(entSize)
}

const (
	addrSize = unsafe.Sizeof(uint64(0))
	descSize = unsafe.Sizeof(unix.XDPDesc{})
)
