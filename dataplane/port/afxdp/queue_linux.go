//go:build linux

package afxdp

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
)

// Queue is one AF_XDP socket with its UMEM and pool, its own or shared
// with the same queue of other ports (port.Config.Share). Everything but
// Counters belongs to the worker that owns the queue (and so the queues
// sharing its UMEM).
type Queue struct {
	x        xsk
	sh       *shared
	pool     *pktbuf.Pool // sh.pool
	ctr      port.Counters
	id       uint16
	zeroCopy bool
	dev      string // the device's name, for errors

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

// TxBurst implements port.Queue. Buffers of another pool (a port whose
// UMEM this queue does not share) are copied into this queue's frames
// (and freed); buffers that cannot be sent (no frame
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

// SharedUMEM reports whether the queue's UMEM is shared with another
// port's queue.
func (q *Queue) SharedUMEM() bool {
	q.sh.mu.Lock()
	defer q.sh.mu.Unlock()
	return q.sh.users > 1
}

func (q *Queue) close() error {
	err := q.x.close()
	if q.sh != nil {
		if e := q.sh.release(); e != nil && err == nil {
			err = e
		}
		q.sh = nil
	}
	return err
}

// shared is a UMEM with the buffer pool over it, held by each queue that
// uses it: the queue it was made for and the same queue of every port
// that shares it. The last to close unmaps it (a socket's UMEM stays
// registered in the kernel until its last socket closes).
type shared struct {
	umem []byte
	pool *pktbuf.Pool
	fd   int // the socket the UMEM is registered on, -1 before the bind

	mu    sync.Mutex
	users int
	// queues are the queues receiving into the UMEM, whose fill targets
	// split its frames (rebalanced as ports join, before they run)
	queues []*Queue
}

func newShared(frames int) (*shared, error) {
	umem, err := mmapUMEM(frames * pktbuf.DefaultFrameSize)
	if err != nil {
		return nil, fmt.Errorf("mmap UMEM of %d frames: %w", frames, err)
	}
	return &shared{umem: umem, pool: pktbuf.NewPoolOver(umem, pktbuf.DefaultFrameSize), fd: -1, users: 1}, nil
}

// join adds q to the queues drawing on the UMEM and splits half of its
// frames between their fill rings (at most fill each): the other half is
// for packets in the workers and on the tx rings.
func (s *shared) join(q *Queue, fill uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queues = append(s.queues, q)
	per := uint32(s.pool.Size() / (2 * len(s.queues)))
	for _, o := range s.queues {
		o.fillTarget = max(min(fill, per), 1)
	}
}

func (s *shared) hold() {
	s.mu.Lock()
	s.users++
	s.mu.Unlock()
}

func (s *shared) release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users--; s.users > 0 || s.umem == nil {
		return nil
	}
	err := unix.Munmap(s.umem)
	s.umem = nil
	return err
}
