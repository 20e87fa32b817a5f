package dataplane

// Packet capture: what `dpip capture` sees. At most one capture runs at a
// time; while none does, a worker pays one atomic pointer load per rx burst
// and per tx flush and nothing else.
//
// A running Capture owns one captureRing per selected worker: a
// single-producer (the worker) single-consumer (the API server's drain)
// ring of fixed-size slots allocated when the capture starts, so the worker
// copies at most snaplen bytes of a packet into preallocated memory, never
// allocates, never takes a lock and never waits. A full ring is a counted
// drop; so is a packet beyond the capture's per-worker packet rate (a token
// bucket the worker owns). Received packets are seen right after the
// port's rx burst, before any rewrite; transmitted ones right before the
// port's tx burst, after every rewrite, so a FullNAT exchange shows both
// sides of the translation. The filter (classic BPF compiled from a tcpdump
// expression, internal/cbpf) runs before the rate limit: rate-limited
// packets are matching ones.
//
// Timestamps are the worker's loop clock (taken at the start of the loop
// iteration that saw the packet) on the wall-clock base of the dataplane's
// start. Stop unpublishes the capture; a worker that loaded it just before
// may still write into its ring, which nobody reads any more.

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/internal/cbpf"
)

// CaptureDir is a set of directions.
type CaptureDir uint8

// Directions.
const (
	CaptureRx   CaptureDir = 1 << iota // packets received from the port
	CaptureTx                          // packets handed to the port for transmission
	CaptureBoth = CaptureRx | CaptureTx
)

func (d CaptureDir) String() string {
	switch d {
	case CaptureRx:
		return "rx"
	case CaptureTx:
		return "tx"
	case CaptureBoth:
		return "both"
	}
	return fmt.Sprintf("dir(%d)", uint8(d))
}

// Capture limits and defaults.
const (
	DefaultCaptureRate    = 100000 // packets per second per worker
	DefaultCaptureRing    = 1024   // slots per worker
	DefaultCaptureSnaplen = pktbuf.DefaultFrameSize
	MaxCaptureSnaplen     = 9216
	MaxCaptureRing        = 1 << 16
)

// ErrCaptureBusy is wrapped by StartCapture when a capture is already running.
var ErrCaptureBusy = errors.New("a capture is already running")

// CaptureSpec selects what a capture sees.
type CaptureSpec struct {
	Port    string     // port name; "": every port
	Dir     CaptureDir // 0: both
	Worker  int        // -1: every worker
	Snaplen int        // bytes kept per packet; 0: DefaultCaptureSnaplen
	Filter  *cbpf.Filter
	Rate    int // packets per second per worker; 0: Options.CaptureRate
	Ring    int // slots per worker; 0: Options.CaptureRing
}

// CaptureRecord is one captured packet. Data points into the capture's
// ring and is valid only during the Drain callback.
type CaptureRecord struct {
	UnixNano int64
	Port     int
	Dir      CaptureDir
	Worker   int
	OrigLen  int
	Data     []byte
}

// CaptureStats are one worker's capture counters.
type CaptureStats struct {
	Worker      int
	Captured    uint64 // put into the ring
	RingDrops   uint64 // matched, but the ring was full
	RateLimited uint64 // matched, but beyond the capture's rate
}

// Capture is a running capture. Drain, Stats and Stop are for one
// consumer goroutine (the API stream that started it).
type Capture struct {
	dp       *Dataplane
	port     int // -1: every port
	dir      CaptureDir
	snaplen  int
	filter   *cbpf.Filter
	rings    []*captureRing // by worker; nil: worker not captured
	startNs  int64          // wall clock of the dataplane clock's zero
	Spec     CaptureSpec    // as started, with defaults filled in
	PortName []string       // by port index
	rec      CaptureRecord  // Drain's, reused
}

type captureMeta struct {
	ts   int64
	orig uint32
	n    uint32
	port uint16
	dir  CaptureDir
}

// captureRing is one worker's SPSC ring of snaplen-sized slots.
type captureRing struct {
	_    [64]byte
	head atomic.Uint64 // next slot to read; written by the consumer
	_    [56]byte
	tail atomic.Uint64 // next slot to write; written by the producer
	_    [56]byte
	mask uint64
	slot int
	data []byte
	meta []captureMeta

	bucket tokenBucket // the worker's
	// written by the worker only (load+store, no locked add), read by Stats
	captured, full, limited atomic.Uint64
}

func newCaptureRing(slots, slotSize, rate int) *captureRing {
	c := uint64(1)
	for c < uint64(slots) {
		c <<= 1
	}
	return &captureRing{mask: c - 1, slot: slotSize, data: make([]byte, int(c)*slotSize),
		meta: make([]captureMeta, c), bucket: newTokenBucket(rate)}
}

func bump(c *atomic.Uint64) { c.Store(c.Load() + 1) }

// put copies at most one slot of frame; false if the ring is full.
// Producer only.
func (r *captureRing) put(ts int64, frame []byte, port int, dir CaptureDir) bool {
	t := r.tail.Load()
	if t-r.head.Load() > r.mask {
		return false
	}
	i := t & r.mask
	n := copy(r.data[int(i)*r.slot:int(i+1)*r.slot], frame)
	r.meta[i] = captureMeta{ts: ts, orig: uint32(len(frame)), n: uint32(n), port: uint16(port), dir: dir}
	r.tail.Store(t + 1)
	return true
}

// StartCapture publishes a capture to the workers. It refuses a second
// one (ErrCaptureBusy) and a spec naming an unknown port or worker.
func (d *Dataplane) StartCapture(s CaptureSpec) (*Capture, error) {
	c := &Capture{dp: d, port: -1, filter: s.Filter, startNs: d.start.UnixNano()}
	for i, p := range d.ports {
		c.PortName = append(c.PortName, p.Port.Name())
		if p.Port.Name() == s.Port {
			c.port = i
		}
	}
	if s.Port != "" && c.port < 0 {
		return nil, fmt.Errorf("capture on port %q: %w: no such port (dpip link show lists them)", s.Port, ErrInvalid)
	}
	if s.Dir == 0 {
		s.Dir = CaptureBoth
	}
	if s.Dir&^CaptureBoth != 0 {
		return nil, fmt.Errorf("capture direction %d: %w: use rx, tx or both", s.Dir, ErrInvalid)
	}
	if s.Worker < -1 || s.Worker >= len(d.workers) {
		return nil, fmt.Errorf("capture on worker %d: %w: the dataplane runs workers 0-%d", s.Worker, ErrInvalid, len(d.workers)-1)
	}
	if s.Snaplen == 0 {
		s.Snaplen = DefaultCaptureSnaplen
	}
	if s.Snaplen < 0 || s.Snaplen > MaxCaptureSnaplen {
		return nil, fmt.Errorf("capture snaplen %d: %w: use 1-%d bytes (0: %d)", s.Snaplen, ErrInvalid, MaxCaptureSnaplen, DefaultCaptureSnaplen)
	}
	if s.Rate == 0 {
		s.Rate = d.opts.CaptureRate
	}
	if s.Ring == 0 {
		s.Ring = d.opts.CaptureRing
	}
	if s.Rate < 0 || s.Ring < 1 || s.Ring > MaxCaptureRing {
		return nil, fmt.Errorf("capture rate %d pps, ring %d slots: %w: use a positive rate and 1-%d slots", s.Rate, s.Ring, ErrInvalid, MaxCaptureRing)
	}
	c.dir, c.snaplen, c.Spec = s.Dir, s.Snaplen, s
	c.rings = make([]*captureRing, len(d.workers))
	for i := range c.rings {
		if s.Worker < 0 || s.Worker == i {
			c.rings[i] = newCaptureRing(s.Ring, s.Snaplen, s.Rate)
		}
	}
	if !d.capture.CompareAndSwap(nil, c) {
		cur := d.capture.Load()
		what := "every port"
		if cur != nil && cur.port >= 0 {
			what = "port " + cur.PortName[cur.port]
		}
		return nil, fmt.Errorf("capture: %w (on %s): wait for it to end or stop its dpip capture (Ctrl-C)", ErrCaptureBusy, what)
	}
	return c, nil
}

// Stop ends the capture; the workers stop filling its rings at their next
// burst. Records still in the rings can be drained after Stop.
func (c *Capture) Stop() { c.dp.capture.CompareAndSwap(c, nil) }

// Drain hands every record in the rings to fn, oldest first per worker,
// and returns how many it handed.
func (c *Capture) Drain(fn func(*CaptureRecord)) int {
	n := 0
	rec := &c.rec // reused: Drain allocates nothing
	for w, r := range c.rings {
		if r == nil {
			continue
		}
		for h := r.head.Load(); h != r.tail.Load(); h++ {
			i := h & r.mask
			m := r.meta[i]
			off := int(i) * r.slot
			*rec = CaptureRecord{UnixNano: c.startNs + m.ts, Port: int(m.port), Dir: m.dir, Worker: w,
				OrigLen: int(m.orig), Data: r.data[off : off+int(m.n)]}
			fn(rec)
			r.head.Store(h + 1)
			n++
		}
	}
	return n
}

// Stats returns the counters of the captured workers.
func (c *Capture) Stats() []CaptureStats {
	var s []CaptureStats
	for w, r := range c.rings {
		if r != nil {
			s = append(s, CaptureStats{Worker: w, Captured: r.captured.Load(), RingDrops: r.full.Load(), RateLimited: r.limited.Load()})
		}
	}
	return s
}

// capture offers a burst seen on port p in direction dir to the running
// capture c (the worker loaded it once for the burst).
func (w *Worker) capture(c *Capture, p int, dir CaptureDir, bufs []*pktbuf.Buf) {
	r := c.rings[w.id]
	if r == nil || c.dir&dir == 0 || (c.port >= 0 && c.port != p) {
		return
	}
	for _, b := range bufs {
		frame := b.Bytes()
		if !c.filter.Match(frame) {
			continue
		}
		if !r.bucket.allow(w.now) {
			bump(&r.limited)
			continue
		}
		if !r.put(w.now, frame, p, dir) {
			bump(&r.full)
			continue
		}
		bump(&r.captured)
	}
}
