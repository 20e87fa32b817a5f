// Package port defines the interface every GVS port driver implements: a
// network port with N queues, each queue owned by exactly one worker, moving
// packets in bursts of pktbuf.Buf.
//
// The contract that lets workers stay lock-free and allocation-free:
//   - a Queue is used by one goroutine only (its worker); its Pool too;
//   - RxBurst and TxBurst never block and never allocate;
//   - TxBurst takes ownership of the buffers it accepts, including buffers
//     that belong to another queue's pool of the same worker (it copies them
//     into its own frames and frees the originals when it has to);
//   - a driver makes at most one system call per burst in steady state.
//
// A DPDK driver fits the same shape: its Buf frames are mbuf data rooms in C
// memory, RxBurst/TxBurst are one cgo call each.
package port

import (
	"errors"
	"net"
	"sync/atomic"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
)

// ErrNotSupported is returned for options a driver does not implement.
var ErrNotSupported = errors.New("not supported")

// Port is one network port.
type Port interface {
	// Name is the port's name in GVS (dp0).
	Name() string
	// Driver is the driver's name (mem, afpacket, afxdp).
	Driver() string
	MAC() net.HardwareAddr
	MTU() int
	NumQueues() int
	// Queue returns queue i; it panics if i is out of range.
	Queue(i int) Queue
	// LinkUp reports the carrier state.
	LinkUp() bool
	// Stats sums the counters of all queues; safe from any goroutine.
	Stats() Stats
	// Close releases the port; queues must no longer be in use.
	Close() error
}

// Queue is one rx/tx queue pair of a port, owned by one worker.
type Queue interface {
	// RxBurst fills bufs with received packets and returns how many; the
	// caller owns them. Never blocks.
	RxBurst(bufs []*pktbuf.Buf) int
	// TxBurst queues bufs for transmission and returns how many were
	// accepted; the queue owns bufs[:n], the caller keeps bufs[n:].
	TxBurst(bufs []*pktbuf.Buf) int
	// Flush pushes queued transmissions to the device and reclaims completed
	// ones. Workers call it when their tx drain timer fires or before idling.
	Flush()
	// Alloc takes a free buffer from this queue's pool (nil if exhausted),
	// for packets the worker originates (ARP requests, KNI frames).
	Alloc() *pktbuf.Buf
	// PollFD returns a descriptor that becomes readable when packets arrive,
	// or -1 if the driver has none; the adaptive idle mode sleeps on it.
	PollFD() int
	// Counters returns the queue's counters.
	Counters() *Counters
}

// Counters are written by the queue's worker (once per burst) and read by
// anyone.
type Counters struct {
	RxPackets atomic.Uint64
	RxBytes   atomic.Uint64
	RxDropped atomic.Uint64 // dropped by the driver or device (ring full, no buffers)
	TxPackets atomic.Uint64
	TxBytes   atomic.Uint64
	TxDropped atomic.Uint64 // refused by the device or the driver
	RxErrors  atomic.Uint64
	TxErrors  atomic.Uint64
}

// Stats is a snapshot of counters.
type Stats struct {
	RxPackets, RxBytes, RxDropped, RxErrors uint64
	TxPackets, TxBytes, TxDropped, TxErrors uint64
}

// Add adds c's current values to s.
func (s *Stats) Add(c *Counters) {
	s.RxPackets += c.RxPackets.Load()
	s.RxBytes += c.RxBytes.Load()
	s.RxDropped += c.RxDropped.Load()
	s.RxErrors += c.RxErrors.Load()
	s.TxPackets += c.TxPackets.Load()
	s.TxBytes += c.TxBytes.Load()
	s.TxDropped += c.TxDropped.Load()
	s.TxErrors += c.TxErrors.Load()
}

// SumQueues adds up the counters of every queue of p.
func SumQueues(p Port) Stats {
	var s Stats
	for i := 0; i < p.NumQueues(); i++ {
		s.Add(p.Queue(i).Counters())
	}
	return s
}

// Config is what a driver needs to open a port.
type Config struct {
	// Name is the GVS name of the port; Device the kernel interface behind
	// it (afpacket, afxdp). Device defaults to Name.
	Name   string
	Device string
	Queues int
	// RxRing and TxRing are ring sizes in descriptors (powers of two);
	// FrameCount is the number of buffers per queue. Zero picks defaults.
	RxRing, TxRing, FrameCount int
	// XDPMode selects how the AF_XDP redirect program attaches: "native",
	// "generic" or "" (native, falling back to generic).
	XDPMode string
	// ZeroCopy requests AF_XDP zero-copy: "auto" (try, fall back to copy),
	// "on" or "off".
	ZeroCopy string
	// BusyPoll drivers may skip wakeups they would need when sleeping.
	BusyPoll bool
	// XDPOffload (afxdp) attaches the XDP fast path for established
	// FullNAT connections instead of the plain redirect program: "off" or
	// "" (plain), "on" (the port fails to open without it) or "auto" (the
	// plain program when the fast path cannot load, with the reason kept).
	// XDPOffloadEntries sizes its connection map (0: the default).
	XDPOffload        string
	XDPOffloadEntries int
	// Share (afxdp) is an open port of the same driver whose buffers this
	// port's queues share: queue i of both draws on queue i's UMEM and
	// buffer pool (XDP_SHARED_UMEM), so a packet received on one port and
	// sent on the other is rewritten in place, not copied (see Adopt). The
	// queue counts must match; the UMEM is sized by Share's FrameCount,
	// and this port's FrameCount is not used. nil: UMEMs of its own.
	Share Port
}

// TxOwned transmits bufs on q and frees whatever q refused, counting it as
// dropped. It is the usual way workers send a prepared burst.
func TxOwned(q Queue, bufs []*pktbuf.Buf) int {
	n := q.TxBurst(bufs)
	if n < len(bufs) {
		for _, b := range bufs[n:] {
			b.Free()
		}
		q.Counters().TxDropped.Add(uint64(len(bufs) - n))
	}
	return n
}

// Adopt returns a buffer of pool holding b's packet: b itself when it is
// already pool's, otherwise a copy (b is freed). It returns nil, having freed
// b, when pool is exhausted or the packet does not fit its frames.
func Adopt(pool *pktbuf.Pool, b *pktbuf.Buf) *pktbuf.Buf {
	if b.Pool() == pool {
		return b
	}
	nb := pool.Get()
	if nb != nil && !nb.CopyFrom(b.Bytes()) {
		pool.Put(nb)
		nb = nil
	}
	b.Free()
	return nb
}
