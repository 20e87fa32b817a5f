//go:build linux

package afxdp

import (
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
)

// Queue is one AF_XDP socket with its UMEM and pool. Everything but
// Counters belongs to the worker that owns the queue.
type Queue struct {
	x        xsk
	umem     []byte
	pool     *pktbuf.Pool
	ctr      port.Counters
	id       uint16
	zeroCopy bool

	frameMask uint64
	// fillTarget is how many frames the receive side may hold (fill ring
	// plus packets on their way to the rx ring); rxHeld is how many it
	// holds.
	fillTarget uint32
	rxHeld     uint32
	// txPending counts descriptors put on the tx ring whose frames have not
	// come back through the completion ring.
	txPending uint32
}

var _ port.Queue = (*Queue)(nil)

// RxBurst implements port.Queue. The returned buffers' packets start
// pktbuf.Headroom bytes into their frames.
func (q *Queue) RxBurst(bufs []*pktbuf.Buf) int {
	r := &q.x.rx
	n := r.avail(uint32(len(bufs)))
	got := 0
	var bytes uint64
	for i := uint32(0); i < n; i++ {
		d := &r.descs[(r.cachedCons+i)&r.mask]
		base := d.Addr &^ q.frameMask
		b := q.pool.ByAddr(base)
		if b == nil { // the kernel only hands back our own frames
			q.ctr.RxErrors.Add(1)
			continue
		}
		b.Reset(int(d.Addr-base), int(d.Len))
		b.Queue = q.id
		bufs[got] = b
		got++
		bytes += uint64(d.Len)
	}
	if n > 0 {
		r.release(n)
		q.rxHeld -= n
		q.ctr.RxPackets.Add(uint64(got))
		q.ctr.RxBytes.Add(bytes)
	}
	q.refill()
	if n == 0 && q.x.fill.needWakeup() {
		kickRx(q.x.fd)
	}
	return got
}

// refill lends free frames to the kernel until the receive side holds
// fillTarget frames or the pool runs dry.
func (q *Queue) refill() {
	want := q.fillTarget - q.rxHeld
	if want == 0 {
		return
	}
	if q.pool.Free() < int(want) && q.txPending > 0 {
		q.reapCompletions()
	}
	r := &q.x.fill
	want = r.free(want)
	var i uint32
	for ; i < want; i++ {
		addr, ok := q.pool.TakeFree()
		if !ok {
			break
		}
		r.addrs[(r.cachedProd+i)&r.mask] = addr
	}
	if i > 0 {
		r.submit(i)
		q.rxHeld += i
	}
}

// TxBurst implements port.Queue. Buffers of another pool are copied into
// this queue's frames (and freed); buffers that cannot be sent (no frame
// for the copy, empty packet) are freed, counted as TxDropped and still
// reported as accepted. It stops at a full tx ring and wakes the kernel
// once if it asked for it.
func (q *Queue) TxBurst(bufs []*pktbuf.Buf) int {
	if q.txPending > 0 {
		q.reapCompletions()
	}
	r := &q.x.tx
	room := r.free(uint32(len(bufs)))
	var (
		i       int
		j       uint32
		bytes   uint64
		dropped uint64
	)
	for ; i < len(bufs) && j < room; i++ {
		b := port.Adopt(q.pool, bufs[i])
		if b == nil {
			dropped++
			continue
		}
		if b.Len() == 0 {
			b.Free()
			dropped++
			continue
		}
		d := &r.descs[(r.cachedProd+j)&r.mask]
		d.Addr = b.Addr + uint64(b.Offset())
		d.Len = uint32(b.Len())
		d.Options = 0
		j++
		bytes += uint64(b.Len())
	}
	if j > 0 {
		r.submit(j)
		q.txPending += j
		q.ctr.TxPackets.Add(uint64(j))
		q.ctr.TxBytes.Add(bytes)
	}
	if dropped > 0 {
		q.ctr.TxDropped.Add(dropped)
	}
	q.kick()
	return i
}

// Flush implements port.Queue: it reclaims completed frames and, while
// descriptors still wait on the tx ring, wakes the kernel again.
func (q *Queue) Flush() {
	if q.txPending == 0 {
		return
	}
	q.reapCompletions()
	q.kick()
}

// kick wakes the kernel's transmit path when descriptors wait on the tx
// ring and the kernel asked to be woken, then reclaims what it completed
// (copy mode completes during the call). Errors that mean "busy, try
// later" leave the descriptors for the next kick; others count as TxErrors.
func (q *Queue) kick() {
	if q.txPending == 0 || !q.x.tx.needWakeup() || q.x.tx.outstanding() == 0 {
		return
	}
	switch e := kickTx(q.x.fd); e {
	case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS, unix.EINTR:
	default:
		q.ctr.TxErrors.Add(1)
	}
	q.reapCompletions()
}

// reapCompletions returns the frames of completed transmissions to the pool.
func (q *Queue) reapCompletions() {
	r := &q.x.comp
	n := r.avail(r.size)
	for i := uint32(0); i < n; i++ {
		q.pool.ReleaseAddr(r.addrs[(r.cachedCons+i)&r.mask])
	}
	if n > 0 {
		r.release(n)
		q.txPending -= n
	}
}

// Alloc implements port.Queue.
func (q *Queue) Alloc() *pktbuf.Buf {
	b := q.pool.Get()
	if b == nil && q.txPending > 0 {
		q.reapCompletions()
		b = q.pool.Get()
	}
	return b
}

// PollFD implements port.Queue: the socket, readable when the rx ring has
// packets.
func (q *Queue) PollFD() int { return q.x.fd }

// Counters implements port.Queue.
func (q *Queue) Counters() *port.Counters { return &q.ctr }

// Pool returns the queue's buffer pool (over its UMEM).
func (q *Queue) Pool() *pktbuf.Pool { return q.pool }

// ID returns the queue id the socket is bound to.
func (q *Queue) ID() int { return int(q.id) }

// ZeroCopy reports whether the socket runs in zero-copy mode.
func (q *Queue) ZeroCopy() bool { return q.zeroCopy }

// InFlight returns how many frames the kernel holds for reception and for
// transmission.
func (q *Queue) InFlight() (rx, tx int) { return int(q.rxHeld), int(q.txPending) }

func (q *Queue) close() error {
	err := q.x.close()
	if q.umem != nil {
		if e := unix.Munmap(q.umem); e != nil && err == nil {
			err = e
		}
		q.umem = nil
	}
	return err
}
