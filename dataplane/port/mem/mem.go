// Package mem is GVS's in-process port driver: each queue is a pair of rings
// in memory, so tests and micro-benchmarks can run the whole worker pipeline
// without a kernel. A test (the "wire") injects frames with Inject and reads
// what the dataplane transmitted with Drain; both are safe to call from a
// goroutine other than the worker's.
package mem

import (
	"net"
	"sync"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
)

// Port is an in-memory port.
type Port struct {
	name   string
	mac    net.HardwareAddr
	mtu    int
	queues []*Queue
}

// Queue is one in-memory queue. The worker side (RxBurst, TxBurst, Alloc)
// owns the pool; the wire side exchanges copies through mutex-protected
// rings, so buffers never cross goroutines.
type Queue struct {
	pool *pktbuf.Pool
	ctr  port.Counters

	mu   sync.Mutex
	rx   [][]byte // frames waiting for the worker
	tx   [][]byte // frames the worker sent
	max  int
	free [][]byte // recycled frame storage

	// Loop, when set, makes the queue receive what it transmits, without
	// copies: micro-benchmarks use it to run the pipeline at full speed.
	loop    []*pktbuf.Buf
	Loop    bool
	txCount uint64
}

// New creates a port with the given number of queues.
func New(cfg port.Config, mac net.HardwareAddr) *Port {
	q := cfg.Queues
	if q <= 0 {
		q = 1
	}
	frames := cfg.FrameCount
	if frames <= 0 {
		frames = 4096
	}
	ring := cfg.RxRing
	if ring <= 0 {
		ring = 4096
	}
	p := &Port{name: cfg.Name, mac: mac, mtu: 1500}
	for i := 0; i < q; i++ {
		p.queues = append(p.queues, &Queue{pool: pktbuf.NewPool(frames, pktbuf.DefaultFrameSize), max: ring})
	}
	return p
}

func (p *Port) Name() string           { return p.name }
func (p *Port) Driver() string         { return "mem" }
func (p *Port) MAC() net.HardwareAddr  { return p.mac }
func (p *Port) MTU() int               { return p.mtu }
func (p *Port) NumQueues() int         { return len(p.queues) }
func (p *Port) Queue(i int) port.Queue { return p.queues[i] }
func (p *Port) MemQueue(i int) *Queue  { return p.queues[i] }
func (p *Port) LinkUp() bool           { return true }
func (p *Port) Stats() port.Stats      { return port.SumQueues(p) }
func (p *Port) Close() error           { return nil }

// Inject queues a copy of frame for reception; false if the ring is full.
func (q *Queue) Inject(frame []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.rx) >= q.max {
		return false
	}
	var c []byte
	if n := len(q.free); n > 0 {
		c = q.free[n-1][:0]
		q.free = q.free[:n-1]
	}
	q.rx = append(q.rx, append(c, frame...))
	return true
}

// Pending returns the frames queued for reception and not yet received,
// and those transmitted and not yet drained.
func (q *Queue) Pending() (rx, tx int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.rx), len(q.tx)
}

// Drain returns the frames transmitted since the last call.
func (q *Queue) Drain() [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.tx
	q.tx = nil
	return out
}

// RxBurst implements port.Queue.
func (q *Queue) RxBurst(bufs []*pktbuf.Buf) int {
	n := 0
	if q.Loop {
		// take from the front and move the rest down, keeping the slice's
		// capacity so TxBurst's appends do not allocate
		n = copy(bufs, q.loop)
		q.loop = q.loop[:copy(q.loop, q.loop[n:])]
		return n
	}
	q.mu.Lock()
	var bytes uint64
	for n < len(bufs) && len(q.rx) > 0 {
		b := q.pool.Get()
		if b == nil {
			q.ctr.RxDropped.Add(1)
			break
		}
		f := q.rx[0]
		q.rx = q.rx[1:]
		b.CopyFrom(f)
		q.free = append(q.free, f)
		bytes += uint64(len(f))
		bufs[n] = b
		n++
	}
	q.mu.Unlock()
	if n > 0 {
		q.ctr.RxPackets.Add(uint64(n))
		q.ctr.RxBytes.Add(bytes)
	}
	return n
}

// TxBurst implements port.Queue.
func (q *Queue) TxBurst(bufs []*pktbuf.Buf) int {
	if q.Loop {
		for i, b := range bufs {
			b = port.Adopt(q.pool, b)
			if b != nil {
				q.loop = append(q.loop, b)
			}
			bufs[i] = nil
		}
		q.txCount += uint64(len(bufs))
		return len(bufs)
	}
	var bytes uint64
	q.mu.Lock()
	for _, b := range bufs {
		q.tx = append(q.tx, append([]byte(nil), b.Bytes()...))
		bytes += uint64(b.Len())
		b.Free()
	}
	q.mu.Unlock()
	q.ctr.TxPackets.Add(uint64(len(bufs)))
	q.ctr.TxBytes.Add(bytes)
	return len(bufs)
}

// Flush implements port.Queue; transmissions are immediate.
func (q *Queue) Flush() {}

// Alloc implements port.Queue.
func (q *Queue) Alloc() *pktbuf.Buf { return q.pool.Get() }

// PollFD implements port.Queue: mem queues have no descriptor.
func (q *Queue) PollFD() int { return -1 }

// Counters implements port.Queue.
func (q *Queue) Counters() *port.Counters { return &q.ctr }

// Pool returns the queue's buffer pool.
func (q *Queue) Pool() *pktbuf.Pool { return q.pool }

// LoopSent returns how many packets a Loop queue transmitted.
func (q *Queue) LoopSent() uint64 { return q.txCount }
