package dataplane

// Connection listings (ipvsadm -L -c) that never stall a worker.
//
// A listing is a request each worker serves a bounded step of per loop
// iteration: it walks at most listChunkSize ids of its session table
// (session.Table.Walk) and copies the matching conns, as pointer-free
// records, into a chunk the request owns. Full chunks go to the listing's
// consumer (the API goroutine) over a channel and come back for reuse on
// another; there are listChunks of them per worker and listing, and each
// channel holds all of them, so the worker never blocks: when the consumer
// is slow the worker simply has no chunk to fill and does not advance.
// Memory is bounded by listChunks×listChunkSize records per worker and
// listing, whatever the table size.
//
// One listing is served per loop (round robin when several are open), so a
// loop copies at most listChunkSize conns; listStats records the most any
// loop copied. The consumer reads the workers in order (worker 0's conns,
// then worker 1's, …) while the others fill their chunks ahead.
//
// A listing is best-effort, like /proc/net/ip_vs_conn: a conn that lives
// through it is listed exactly once (conns never move in the table); one
// created or removed meanwhile is listed at most once, and the expiry shown
// is the one at the time its chunk was copied.

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

const (
	// listChunkSize is how many ids (and so conns at most) a worker looks
	// at per loop for a listing: ~200 KiB of records, tens of µs.
	listChunkSize = 2048
	// listChunks is the number of chunks per worker and listing.
	listChunks = 2
)

// ConnInfo is a connection for listings (ipvsadm -c).
type ConnInfo struct {
	Worker int // -1 for a persistence template (shared by the workers)
	// Template: a persistence template (ipvsadm -p), not a connection.
	Template bool
	Proto    uint8
	State    session.State
	Expires  time.Duration
	Client   netip.AddrPort
	Virtual  netip.AddrPort
	Local    netip.AddrPort
	Dest     netip.AddrPort
	XDP      uint8 // directions on the XDP fast path: 1 << session.In | 1 << session.Out (lbxdp.go)
}

// listRec is one conn as copied by the worker.
type listRec struct {
	conn session.Conn
	left uint32 // ticks until it expires
	xdp  uint8  // its offloaded directions (lbxdp.go)
}

type listChunk struct {
	recs []listRec // capacity listChunkSize
	end  bool      // the last chunk of this worker's listing
}

// connListing is one listing on one worker. The worker owns cursor and
// cur; the chunks pass between it and the consumer over full and free.
type connListing struct {
	all    bool
	proto  uint8
	vaddr  [16]byte
	vport  uint16
	byID   bool   // a match service (no virtual address): by service id
	svc    uint32 // …this one
	cursor uint32
	cur    *listChunk
	full   chan *listChunk // worker → consumer
	free   chan *listChunk // consumer → worker
	cancel atomic.Bool     // the consumer has gone
	xdp    *workerXDP      // the worker's offloaded connections; nil: none
}

func newConnListing(k *ipvs.ServiceKey) *connListing {
	l := &connListing{all: k == nil, full: make(chan *listChunk, listChunks), free: make(chan *listChunk, listChunks)}
	if k != nil {
		l.proto, l.vaddr, l.vport = uint8(k.Proto), k.Addr.Unmap().As16(), k.Port
	}
	for range listChunks {
		l.free <- &listChunk{recs: make([]listRec, 0, listChunkSize)}
	}
	return l
}

// listings is a worker's share of the open listings.
type listings struct {
	open  []*connListing // owned by the worker
	next  int
	moved bool // the last loop made progress on a listing

	// the most conns one loop copied, the longest step and all steps (ns)
	// that had a chunk to fill, their number, and the chunks handed over
	// (for tests and reports)
	maxPerLoop atomic.Uint64
	maxStepNs  atomic.Uint64
	stepNs     atomic.Uint64
	steps      atomic.Uint64
	chunks     atomic.Uint64
	over1ms    atomic.Uint64 // steps of 1 ms or more
}

// ListingSteps is what connection listings cost one worker: the steps it
// took (one per loop at most), their total and longest time, and the
// steps of 1 ms or more (a preempted step counts its whole wall time).
type ListingSteps struct {
	Steps, StepNs, MaxStepNs, StepsOver1ms uint64
}

// ListingSteps returns every worker's listing costs since start (safe
// from any goroutine).
func (d *Dataplane) ListingSteps() []ListingSteps {
	out := make([]ListingSteps, len(d.workers))
	for i, w := range d.workers {
		ls := &w.list
		out[i] = ListingSteps{Steps: ls.steps.Load(), StepNs: ls.stepNs.Load(), MaxStepNs: ls.maxStepNs.Load(),
			StepsOver1ms: ls.over1ms.Load()}
	}
	return out
}

// serveListing advances one open listing by at most listChunkSize ids.
// Called once per loop by the worker.
func (w *Worker) serveListing() {
	ls := &w.list
	ls.moved = false
	if len(ls.open) == 0 {
		return
	}
	ls.next++
	i := ls.next % len(ls.open)
	l := ls.open[i]
	done := l.cancel.Load()
	if !done {
		start := w.dp.clock()
		var copied int
		var full bool
		copied, ls.moved, full, done = l.fill(w.sess, w.tick())
		if d := uint64(w.dp.clock() - start); ls.moved {
			if d > ls.maxStepNs.Load() {
				ls.maxStepNs.Store(d)
			}
			ls.stepNs.Add(d)
			ls.steps.Add(1)
			if d >= uint64(time.Millisecond) {
				ls.over1ms.Add(1)
			}
		}
		if uint64(copied) > ls.maxPerLoop.Load() {
			ls.maxPerLoop.Store(uint64(copied))
		}
		if full {
			// after the counters: a reader woken by the last chunk
			// finds its step counted
			ls.chunks.Add(1)
			l.handOver()
		}
	}
	if done {
		ls.open = slices.Delete(ls.open, i, i+1)
	}
}

// step walks the next ids into the current chunk, handing it over when it
// is full or the walk is over. It returns the number of conns copied,
// whether it did anything, and whether the listing is over on this table.
// Without a free chunk it does nothing.
func (l *connListing) step(t *session.Table, tick uint32) (copied int, worked, done bool) {
	copied, worked, full, done := l.fill(t, tick)
	if full {
		l.handOver()
	}
	return copied, worked, done
}

// handOver passes the current chunk, full or the last, to the consumer.
func (l *connListing) handOver() {
	l.full <- l.cur // never blocks: full has room for every chunk
	l.cur = nil
}

// fill is step without the hand-over: full says the current chunk is
// ready for handOver.
func (l *connListing) fill(t *session.Table, tick uint32) (copied int, worked, full, done bool) {
	if l.cur == nil {
		select {
		case c := <-l.free:
			c.recs, c.end = c.recs[:0], false
			l.cur = c
		default:
			return 0, false, false, false // the consumer is behind
		}
	}
	c := l.cur
	before := len(c.recs)
	l.cursor = t.Walk(l.cursor, cap(c.recs)-len(c.recs), func(id uint32, sc *session.Conn) {
		if !l.all && (l.byID && sc.Service != l.svc || !l.byID && (sc.Proto != l.proto || sc.VPort != l.vport || sc.VAddr != l.vaddr)) {
			return
		}
		left := uint32(0)
		if e := sc.Expires(); int32(e-tick) > 0 {
			left = e - tick
		}
		c.recs = append(c.recs, listRec{conn: *sc, left: left, xdp: l.xdp.offloaded(id)})
	})
	copied = len(c.recs) - before
	c.end = l.cursor == session.NoID
	return copied, true, c.end || len(c.recs) == cap(c.recs), c.end
}

// ListConns calls fn with the connections of every worker (of service k
// if k is not nil), in pages of at most listChunkSize, worker by worker,
// as the workers copy them; the page is reused once fn returns. Workers
// copy a bounded chunk per loop and never wait for fn: see the top of this
// file. An error from fn or ctx ends the listing.
func (d *Dataplane) ListConns(ctx context.Context, k *ipvs.ServiceKey, fn func([]ConnInfo) error) error {
	ls := make([]*connListing, len(d.workers))
	for i := range ls {
		ls[i] = newConnListing(k)
		ls[i].xdp = &d.workers[i].xdp
	}
	if k != nil && k.Match != "" {
		// a SNAT match service's connections have the peers as their
		// virtual addresses: select them by the service's id
		svc := d.ipvs.Table().Service(*k)
		if svc == nil {
			return nil
		}
		for _, l := range ls {
			l.byID, l.svc = true, svc.ID
		}
	}
	defer func() {
		for _, l := range ls {
			l.cancel.Store(true) // a worker drops it at its next turn
		}
	}()
	d.mu.Lock()
	running := d.running
	d.mu.Unlock()
	if running {
		for i, w := range d.workers {
			l := ls[i]
			select {
			case w.ctl <- func() { w.list.open = append(w.list.open, l) }:
				w.wake()
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Second):
				return fmt.Errorf("dataplane: worker %d did not take the listing request: it may be stuck", w.id)
			}
		}
	}
	page := make([]ConnInfo, 0, listChunkSize)
	for i, w := range d.workers {
		l := ls[i]
		for {
			var c *listChunk
			if running {
				select {
				case c = <-l.full: // chunks already copied go first
				default:
					select {
					case c = <-l.full:
					case <-ctx.Done():
						return ctx.Err()
					case <-w.done:
						return fmt.Errorf("dataplane: worker %d stopped during the listing", w.id)
					}
				}
			} else {
				// no worker thread: nobody else touches the table
				tick := uint32(d.clock() / int64(w.sessTick))
				for c == nil {
					l.step(w.sess, tick)
					select {
					case c = <-l.full:
					default:
					}
				}
			}
			page = page[:0]
			for j := range c.recs {
				r := &c.recs[j]
				sc := &r.conn
				page = append(page, ConnInfo{Worker: w.id, Proto: sc.Proto, State: sc.State,
					Expires: time.Duration(r.left) * w.sessTick, Client: unmapAP(sc.CAddrPort()),
					Virtual: unmapAP(sc.VAddrPort()), Local: localOf(sc), Dest: unmapAP(sc.DAddrPort()), XDP: r.xdp})
			}
			end := c.end
			l.free <- c // never blocks: free has room for every chunk
			if running {
				w.wake()
			}
			if len(page) > 0 {
				if err := fn(page); err != nil {
					return err
				}
			}
			if end {
				break
			}
		}
	}
	return d.Templates(k, fn)
}

// Conns lists the connections of every worker (of service k if not nil)
// into one slice: for tests and small tables; the API streams ListConns.
func (d *Dataplane) Conns(k *ipvs.ServiceKey) ([]ConnInfo, error) {
	var all []ConnInfo
	err := d.ListConns(context.Background(), k, func(p []ConnInfo) error {
		all = append(all, p...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return all, nil
}

// localOf is a conn's local address for listings: none for direct
// routing (ipvsadm prints "-").
func localOf(c *session.Conn) netip.AddrPort {
	if !c.HasLocal() {
		return netip.AddrPort{}
	}
	return unmapAP(c.LAddrPort())
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
