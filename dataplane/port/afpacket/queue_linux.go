//go:build linux

package afpacket

// A queue: one socket, its receive ring, its sendmmsg arrays and its pool.
// Everything here runs on the queue's worker, except Counters reads and the
// kernel statistics Port.Stats folds in (atomics).

import (
	"encoding/binary"
	"errors"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
)

const (
	ethHdrLen  = 14
	ethAddrs   = 12 // destination and source MAC
	vlanTagLen = 4
	tpidDot1Q  = 0x8100
)

// Queue is one rx/tx queue of an AF_PACKET port, owned by one worker.
type Queue struct {
	idx  uint16
	fd   int
	ring *rxRing
	tx   sender
	pool *pktbuf.Pool
	ctr  port.Counters

	idle bool // the last RxBurst found nothing

	freezes atomic.Uint64 // times the kernel froze the ring (from Stats)
}

var _ port.Queue = (*Queue)(nil)

// openQueue creates queue idx's socket bound to ifindex, with its ring,
// sender and pool. The socket still drops everything (see openSocket).
func openQueue(idx, ifindex int, g rxGeometry, frames int, opt Options) (*Queue, error) {
	fd, err := openSocket()
	if err != nil {
		return nil, err
	}
	q := &Queue{idx: uint16(idx), fd: fd}
	if err := q.setup(ifindex, g, opt); err != nil {
		q.close()
		return nil, err
	}
	q.tx = newSender(fd, maxTxBatch)
	q.pool = pktbuf.NewPool(frames, pktbuf.DefaultFrameSize)
	return q, nil
}

func (q *Queue) setup(ifindex int, g rxGeometry, opt Options) error {
	if err := configureSocket(q.fd, opt); err != nil {
		return err
	}
	r, err := mapRxRing(q.fd, g)
	if err != nil {
		return err
	}
	q.ring = r
	return bindDevice(q.fd, ifindex)
}

// close closes the socket and unmaps the ring; the queue is dead afterwards
// (bursts return 0).
func (q *Queue) close() error {
	var errs []error
	if q.fd >= 0 {
		if err := unix.Close(q.fd); err != nil {
			errs = append(errs, err)
		}
		q.fd = -1
	}
	if err := q.ring.unmap(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RxBurst implements port.Queue: it copies up to len(bufs) packets out of
// the ring. Frames the kernel truncated, runts, and frames larger than a
// buffer are skipped and counted as RxErrors. When the pool runs dry the
// remaining packets stay in the ring for the next burst.
func (q *Queue) RxBurst(bufs []*pktbuf.Buf) int {
	r := q.ring
	if r == nil || r.mem == nil {
		return 0
	}
	fs := q.pool.FrameSize()
	n := 0
	var bytes, errs uint64
	for n < len(bufs) {
		p, ok := r.peek()
		if !ok {
			break
		}
		tagged := p.status&unix.TP_STATUS_VLAN_VALID != 0
		size := len(p.data)
		if tagged {
			size += vlanTagLen
		}
		if len(p.data) < ethHdrLen || uint32(len(p.data)) < p.wireLen ||
			p.status&unix.TP_STATUS_COPY != 0 || size > fs {
			errs++
			r.consume(p.next)
			continue
		}
		b := q.pool.Get()
		if b == nil {
			break
		}
		off := pktbuf.Headroom
		if off+size > fs {
			off = fs - size
		}
		f := b.Frame()[off : off+size]
		if tagged {
			// Put back the tag the kernel moved into the descriptor.
			tpid := uint16(tpidDot1Q)
			if p.status&unix.TP_STATUS_VLAN_TPID_VALID != 0 && p.tpid != 0 {
				tpid = p.tpid
			}
			copy(f, p.data[:ethAddrs])
			binary.BigEndian.PutUint16(f[ethAddrs:], tpid)
			binary.BigEndian.PutUint16(f[ethAddrs+2:], p.tci)
			copy(f[ethAddrs+vlanTagLen:], p.data[ethAddrs:])
		} else {
			copy(f, p.data)
		}
		r.consume(p.next)
		b.Reset(off, size)
		b.Queue = q.idx
		bufs[n] = b
		n++
		bytes += uint64(size)
	}
	q.idle = n == 0
	if n > 0 {
		q.ctr.RxPackets.Add(uint64(n))
		q.ctr.RxBytes.Add(bytes)
	}
	if errs > 0 {
		q.ctr.RxErrors.Add(errs)
	}
	return n
}

// TxBurst implements port.Queue: one sendmmsg for the burst (more only when
// the kernel stops part-way). Sent buffers are freed at once, the kernel
// having copied them. A frame the kernel rejects by itself (EMSGSIZE,
// EINVAL: too long for the MTU, too short for a header) is freed, counted as
// TxErrors and accepted. When the socket or device takes no more (EAGAIN,
// ENOBUFS, link down) TxBurst returns what was accepted; the caller keeps
// the rest (port.TxOwned frees it and counts TxDropped).
func (q *Queue) TxBurst(bufs []*pktbuf.Buf) int {
	if q.fd < 0 {
		return 0
	}
	done := 0
	var bytes, errs uint64
	for done < len(bufs) {
		k, e := q.tx.send(bufs[done:])
		for _, b := range bufs[done : done+k] {
			bytes += uint64(b.Len())
			b.Free()
		}
		done += k
		if e == 0 {
			if k == 0 {
				break
			}
			continue
		}
		if e == unix.EMSGSIZE || e == unix.EINVAL {
			errs++
			bufs[done].Free()
			done++
			continue
		}
		break
	}
	if sent := done - int(errs); sent > 0 {
		q.ctr.TxPackets.Add(uint64(sent))
		q.ctr.TxBytes.Add(bytes)
	}
	if errs > 0 {
		q.ctr.TxErrors.Add(errs)
	}
	return done
}

// Flush implements port.Queue. TxBurst already handed everything to the
// kernel; what is left is the socket's pending error. When the device goes
// down the kernel sets one (ENETDOWN), and until something reads it poll
// reports the socket as ready (POLLERR): a worker sleeping on PollFD would
// spin. Workers call Flush before idling, so after an empty RxBurst Flush
// reads and clears the error (one getsockopt, on the idle path only).
func (q *Queue) Flush() {
	if q.idle && q.fd >= 0 {
		unix.GetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	}
}

// Alloc implements port.Queue.
func (q *Queue) Alloc() *pktbuf.Buf { return q.pool.Get() }

// PollFD implements port.Queue: the socket, readable when the kernel has
// handed a block of the ring over.
func (q *Queue) PollFD() int { return q.fd }

// Counters implements port.Queue. RxDropped holds the kernel's ring-full
// drops as of the last Port.Stats call.
func (q *Queue) Counters() *port.Counters { return &q.ctr }

// Pool returns the queue's buffer pool.
func (q *Queue) Pool() *pktbuf.Pool { return q.pool }

// pullKernelStats folds the kernel's (self-resetting) ring counters into the
// queue's. It only issues a getsockopt, never touches the ring, and is safe
// from any goroutine while the socket is open.
func (q *Queue) pullKernelStats() {
	drops, freezes, err := ringStats(q.fd)
	if err != nil {
		return
	}
	if drops > 0 {
		q.ctr.RxDropped.Add(uint64(drops))
	}
	if freezes > 0 {
		q.freezes.Add(uint64(freezes))
	}
}
