//go:build dpdk

package dpdk

// One rx/tx queue: the burst functions. Each makes one cgo call; the mbuf
// fields are read by the C wrapper into a fixed array that Go reads back
// (gvs_rxd), packet data is reached through the frame memory Go already
// maps, and nothing here allocates.

/*
#cgo pkg-config: libdpdk
#cgo CFLAGS: -DALLOW_EXPERIMENTAL_API -Wno-deprecated-declarations
#include "gvs_dpdk.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
)

const (
	maxBurst = C.GVS_MAX_BURST
	maxLend  = C.GVS_MAX_LEND
)

// Queue is one queue pair of a DPDK port, used by one worker.
type Queue struct {
	c      *C.struct_gvs_q
	id     uint16
	pool   *pktbuf.Pool
	fs     uint64
	lent   int // frames DPDK holds: in the mempool, device rings or in flight
	target int // frames RxBurst keeps lent
	low    int // below this many lent frames reception may starve
	txbufs [maxBurst]*pktbuf.Buf
	ctr    port.Counters
	// driver counters (xstats gvs_*)
	noFrames atomic.Uint64 // bursts that could not lend a frame while DPDK was short
	foreign  atomic.Uint64 // packets copied out of another queue's mbufs
	chained  atomic.Uint64 // multi-segment packets dropped
}

var _ port.Queue = (*Queue)(nil)

// newQueue creates queue qid's memory for device id: frames frames, of
// which target are lent to DPDK up front.
func newQueue(id, qid uint16, name string, frames, target, low, socket int) (*Queue, error) {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var eb [256]C.char
	fs := pktbuf.DefaultFrameSize
	c := C.gvs_q_new(C.uint16_t(id), C.uint16_t(qid), cn, C.uint32_t(frames), C.uint32_t(fs), C.int(socket), &eb[0], C.size_t(len(eb)))
	if c == nil {
		return nil, errors.New(errStr(eb[:]))
	}
	mem := unsafe.Slice((*byte)(c.mem), frames*fs)
	q := &Queue{c: c, id: qid, pool: pktbuf.NewPoolOver(mem, fs), fs: uint64(fs), target: target, low: low}
	for q.lent < target {
		n := q.takeFrames(target - q.lent)
		if n == 0 {
			break
		}
		C.gvs_lend(c, C.uint32_t(n), 1)
		q.lent += n
	}
	return q, nil
}

// takeFrames moves up to k (≤ maxLend) free frames of the pool into c.lend.
func (q *Queue) takeFrames(k int) int {
	if k > maxLend {
		k = maxLend
	}
	n := 0
	for n < k {
		addr, ok := q.pool.TakeFree()
		if !ok {
			break
		}
		q.c.lend[n] = C.uint32_t(addr / q.fs)
		n++
	}
	return n
}

// reclaim takes up to k frames back from the mempool into the pool.
func (q *Queue) reclaim(k int) int {
	n := int(C.gvs_reclaim(q.c, C.uint32_t(k)))
	for i := 0; i < n; i++ {
		q.pool.ReleaseAddr(uint64(q.c.lend[i]) * q.fs)
	}
	q.lent -= n
	return n
}

// RxBurst implements port.Queue.
func (q *Queue) RxBurst(bufs []*pktbuf.Buf) int {
	want := len(bufs)
	if want > maxBurst {
		want = maxBurst
	}
	nlend := 0
	if q.lent < q.target {
		nlend = q.takeFrames(q.target - q.lent)
		if nlend == 0 && q.lent < q.low {
			q.noFrames.Add(1)
		}
		q.lent += nlend
	}
	got := int(C.gvs_rx(q.c, C.uint16_t(want), C.uint32_t(nlend)))
	n := 0
	var bytes uint64
	for i := 0; i < got; i++ {
		d := &q.c.rxd[i]
		var b *pktbuf.Buf
		switch d.idx {
		case C.GVS_DROPPED:
			q.chained.Add(1)
			q.ctr.RxErrors.Add(1)
			continue
		case C.GVS_FOREIGN:
			b = q.get()
			if b == nil || !b.CopyFrom(unsafe.Slice((*byte)(d.data), int(d.len))) {
				if b != nil {
					b.Free()
				}
				q.ctr.RxDropped.Add(1)
				continue
			}
			q.foreign.Add(1)
		default:
			b = q.pool.ByAddr(uint64(d.idx) * q.fs)
			b.Reset(int(d.off), int(d.len))
			q.lent--
		}
		b.Queue = q.id
		bufs[n] = b
		n++
		bytes += uint64(d.len)
	}
	if n > 0 {
		q.ctr.RxPackets.Add(uint64(n))
		q.ctr.RxBytes.Add(bytes)
	}
	return n
}

// get takes a free frame, reclaiming from the mempool when the pool is dry.
func (q *Queue) get() *pktbuf.Buf {
	if b := q.pool.Get(); b != nil {
		return b
	}
	if q.reclaim(64) == 0 {
		return nil
	}
	return q.pool.Get()
}

// TxBurst implements port.Queue. It accepts every buffer it is given (up to
// GVS_MAX_BURST): what the device refuses, or what cannot be copied into
// this queue's frames, is freed and counted as tx_dropped.
func (q *Queue) TxBurst(bufs []*pktbuf.Buf) int {
	n := len(bufs)
	if n > maxBurst {
		n = maxBurst
	}
	k := 0
	var bytes uint64
	for _, b := range bufs[:n] {
		if b.Pool() != q.pool {
			nb := q.get()
			if nb != nil && !nb.CopyFrom(b.Bytes()) {
				nb.Free()
				nb = nil
			}
			b.Free()
			if nb == nil {
				q.ctr.TxDropped.Add(1)
				continue
			}
			b = nb
		}
		q.txbufs[k] = b
		q.c.txidx[k] = C.uint32_t(b.Addr / q.fs)
		q.c.txoff[k] = C.uint16_t(b.Offset())
		q.c.txlen[k] = C.uint16_t(b.Len())
		bytes += uint64(b.Len())
		k++
	}
	sent := 0
	if k > 0 {
		sent = int(C.gvs_tx(q.c, C.uint16_t(k)))
	}
	q.lent += sent
	if sent < k {
		for i := sent; i < k; i++ {
			bytes -= uint64(q.txbufs[i].Len())
			q.txbufs[i].Free()
		}
		q.ctr.TxDropped.Add(uint64(k - sent))
	}
	clear(q.txbufs[:k])
	if sent > 0 {
		q.ctr.TxPackets.Add(uint64(sent))
		q.ctr.TxBytes.Add(bytes)
	}
	return n
}

// Flush implements port.Queue: DPDK transmits in TxBurst; Flush brings
// frames the device has finished with back to the pool when more than the
// reception target are lent (packets the worker originated).
func (q *Queue) Flush() {
	if excess := q.lent - q.target; excess > maxBurst {
		q.reclaim(excess)
	}
}

// Alloc implements port.Queue.
func (q *Queue) Alloc() *pktbuf.Buf { return q.get() }

// PollFD implements port.Queue: DPDK queues are polled (no descriptor).
func (q *Queue) PollFD() int { return -1 }

// Counters implements port.Queue.
func (q *Queue) Counters() *port.Counters { return &q.ctr }

// Pool returns the queue's buffer pool.
func (q *Queue) Pool() *pktbuf.Pool { return q.pool }

// Lent returns how many frames DPDK holds (mempool, rings, in flight).
func (q *Queue) Lent() int { return q.lent }

// drain receives and frees whatever the device still holds for this queue
// (a net_ring keeps transmitted mbufs until someone receives them), so no
// mbuf of a freed mempool is left behind.
func (q *Queue) drain() {
	var bufs [maxBurst]*pktbuf.Buf
	for i := 0; i < 64; i++ {
		n := q.RxBurst(bufs[:])
		for _, b := range bufs[:n] {
			b.Free()
		}
		if n == 0 {
			break
		}
	}
	if q.c.nforeign > 0 {
		C.rte_pktmbuf_free_bulk(&q.c.foreign[0], C.uint(q.c.nforeign))
		q.c.nforeign = 0
	}
}

// free releases the queue's memory; the device must be closed.
func (q *Queue) free() {
	C.gvs_q_free(q.c)
	q.c = nil
}

// cgoNoop crosses into C and back doing nothing (benchmarks).
func cgoNoop() { C.gvs_noop() }

func (q *Queue) String() string { return fmt.Sprintf("queue %d", q.id) }
