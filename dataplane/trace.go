package dataplane

// Per-packet trace (dpip trace): the workers record, for up to a bounded
// number of packets matching a filter, what each pipeline stage did with
// them — parse, connection lookup, scheduling, rewrite, route, neighbour,
// transmit, or the drop and its counter, the punt to the kernel, the
// hand-over to another worker — each with the time since the packet's rx
// burst.
//
// Cost and bounds. While no trace is armed a worker pays one atomic load
// per rx burst (Dataplane.trace) and, at the hooks, a comparison of the
// buffer with Worker.trBuf (nil). While one is armed the worker evaluates
// the filter on every packet of the selected port and worker; a packet
// that matches claims one of the session's preallocated records (at most
// MaxTraceCount) and the hooks append fixed-size events to it: no
// allocation, no formatting on the worker. The worker that claims the last
// record disarms the session, so a finished trace costs nothing more.
//
// Hand-off. A record belongs to the worker that claimed it until the
// packet leaves the pipeline (transmitted, held for a neighbour, punted,
// redirected, dropped); the worker then sets the record's ready flag and
// Dataplane.Trace, on the API's goroutine, streams records in claim order
// and formats them (trace_format.go). One trace at a time: a second is
// refused with ErrTraceBusy.
//
// The hooks are one-line calls in the stages (ipv4.go, ipv6.go, lb.go,
// lbnew.go, lbconn.go, lbredirect.go, xmit.go, kni.go, worker.go), each
// guarded by `w.trBuf == b`, so a stage never records about a packet other
// than the one being traced (an ICMP error it originates, a held packet
// sent later).

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/nat"
	"github.com/gvs-lb/gvs/session"
)

// Trace bounds.
const (
	// MaxTraceCount bounds the packets one trace records.
	MaxTraceCount = 256
	// DefaultTraceCount is the count of a trace that gives none.
	DefaultTraceCount = 10
	// TraceHeadLen is how much of a traced frame is kept for its decode:
	// Ethernet, a VLAN tag, an IPv6 header and a TCP header with options.
	TraceHeadLen = 128
	// maxTraceEvents bounds the events of one packet; more are counted
	// in TraceRecord.Lost.
	maxTraceEvents = 16
)

// ErrTraceBusy is returned by Trace while another trace is running.
var ErrTraceBusy = errors.New("another trace is running")

// TraceStage names a pipeline stage in a trace.
type TraceStage uint8

// Stages, in pipeline order; the last four end a packet's trace.
const (
	StageParse     TraceStage = iota + 1 // Code: 4 or 6; N, Name: the receiving interface
	StageLookup                          // Code: Lookup*; N: connection id; A: its real server
	StageSchedule                        // N: service id; A: the real server chosen; B: the virtual service; Name: scheduler
	StageRewrite                         // Code: session.Direction; A → B: the new tuple
	StageRoute                           // N, Name: output interface; A: next hop
	StageNeighbour                       // Code: Neigh*; A: next hop; MAC
	StageTransmit                        // N: port; Q: queue
	StageDrop                            // Ctr: the counter
	StageKNI                             // N: port
	StageRedirect                        // N: the owner worker
)

var traceStageNames = [...]string{"?", "parse", "lookup", "schedule", "rewrite", "route", "neighbour", "transmit",
	"drop", "kni", "redirect"}

func (s TraceStage) String() string {
	if int(s) < len(traceStageNames) {
		return traceStageNames[s]
	}
	return "?"
}

// Lookup verdicts (StageLookup's Code).
const (
	LookupMiss uint8 = iota
	LookupHitIn
	LookupHitOut
)

// Neighbour verdicts (StageNeighbour's Code).
const (
	NeighResolved uint8 = iota
	NeighHeld           // queued while the next hop is resolved
)

// TraceEvent is what one stage did with a traced packet. Fixed size; the
// meaning of the fields depends on Stage (see the Stage constants).
type TraceEvent struct {
	At    int64 // ns since the packet's rx burst
	Stage TraceStage
	Code  uint8
	Ctr   Counter
	N, Q  uint32
	A, B  netip.AddrPort
	MAC   header.MAC
	Name  string // an interface's or a scheduler's name (shared, never built here)
}

// TraceRecord is one traced packet.
type TraceRecord struct {
	Seq    int // 1, 2, … in the order packets matched
	Worker int
	Port   int
	From   int // -1, or the worker that handed the packet over (software flow steering)
	Len    int // the frame's length as received
	Head   [TraceHeadLen]byte
	Events [maxTraceEvents]TraceEvent
	NEvent int
	Lost   int // events past the bound
}

// HeadBytes returns the kept start of the frame.
func (r *TraceRecord) HeadBytes() []byte { return r.Head[:min(r.Len, TraceHeadLen)] }

// Stages returns the recorded events in order.
func (r *TraceRecord) Stages() []TraceEvent { return r.Events[:r.NEvent] }

// TraceFilter selects the packets to trace; Match sees the whole frame as
// received and must not allocate or keep it.
type TraceFilter interface {
	Match(frame []byte) bool
}

// TraceOptions select what a trace records.
type TraceOptions struct {
	Count  int         // packets to record, 1..MaxTraceCount; 0: DefaultTraceCount
	Port   int         // a port's index; -1: every port
	Worker int         // a worker's index; -1: every worker
	Filter TraceFilter // nil: every packet
}

// traceSession is an armed trace: the options and the preallocated records.
type traceSession struct {
	opts  TraceOptions
	next  atomic.Int32 // records claimed
	recs  []TraceRecord
	ready []atomic.Bool // recs[i] is complete
}

// workerTrace is a worker's view of the packet it is tracing.
type workerTrace struct {
	trBuf *pktbuf.Buf  // the traced buffer until its last stage; nil: none
	trRec *TraceRecord // its record until the packet leaves the pipeline
	trT0  int64        // the clock at its rx burst
	trRdy *atomic.Bool // the record's ready flag
}

// Trace arms the workers and calls fn with each traced packet's record, in
// the order the packets matched, until o.Count were sent, fn fails or ctx
// ends. fn must not keep the record. The trace is disarmed when Trace
// returns. It returns ErrTraceBusy while another trace runs and wraps
// ErrInvalid for bad options.
func (d *Dataplane) Trace(ctx context.Context, o TraceOptions, fn func(*TraceRecord) error) error {
	s, err := d.StartTrace(o)
	if err != nil {
		return err
	}
	defer s.Stop()
	return s.Stream(ctx, fn)
}

// TraceSession is an armed trace (StartTrace).
type TraceSession struct {
	d *Dataplane
	t *traceSession
}

// StartTrace arms the workers; the trace is armed when it returns. The
// caller reads the records with Stream and must call Stop. Errors as Trace.
func (d *Dataplane) StartTrace(o TraceOptions) (*TraceSession, error) {
	t, err := d.armTrace(o)
	if err != nil {
		return nil, err
	}
	return &TraceSession{d: d, t: t}, nil
}

// Stream calls fn with each record as its packet leaves the pipeline, in
// the order the packets matched, until all were sent, fn fails or ctx
// ends. fn must not keep the record.
func (s *TraceSession) Stream(ctx context.Context, fn func(*TraceRecord) error) error {
	return s.t.stream(ctx, fn)
}

// Stop disarms the trace (if its workers have not already: they do after
// its last packet).
func (s *TraceSession) Stop() { s.d.trace.CompareAndSwap(s.t, nil) }

// armTrace checks o and arms the workers with a new session.
func (d *Dataplane) armTrace(o TraceOptions) (*traceSession, error) {
	if o.Count == 0 {
		o.Count = DefaultTraceCount
	}
	if o.Count < 0 || o.Count > MaxTraceCount {
		return nil, fmt.Errorf("trace %d packets: %w: give 1 to %d", o.Count, ErrInvalid, MaxTraceCount)
	}
	if o.Worker >= len(d.workers) || o.Worker < -1 {
		return nil, fmt.Errorf("trace worker %d: %w: the dataplane has workers 0 to %d", o.Worker, ErrInvalid, len(d.workers)-1)
	}
	if o.Port >= len(d.ports) || o.Port < -1 {
		return nil, fmt.Errorf("trace port %d: %w: the dataplane has %d ports", o.Port, ErrInvalid, len(d.ports))
	}
	t := &traceSession{opts: o, recs: make([]TraceRecord, o.Count), ready: make([]atomic.Bool, o.Count)}
	if !d.trace.CompareAndSwap(nil, t) {
		return nil, ErrTraceBusy
	}
	return t, nil
}

// stream calls fn with each record as it completes, in claim order, until
// all were sent, fn fails or ctx ends.
func (t *traceSession) stream(ctx context.Context, fn func(*TraceRecord) error) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for sent := 0; ; {
		for sent < len(t.recs) && t.ready[sent].Load() {
			if err := fn(&t.recs[sent]); err != nil {
				return err
			}
			sent++
		}
		if sent == len(t.recs) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// PortIndex returns the index of the port named name (for TraceOptions).
func (d *Dataplane) PortIndex(name string) (int, error) {
	for i, ps := range d.ports {
		if ps.Port.Name() == name {
			return i, nil
		}
	}
	return -1, fmt.Errorf("port %s: %w: `dpip link show` lists the ports", name, ErrNotFound)
}

// PortName returns the name of port i.
func (d *Dataplane) PortName(i int) string {
	if i < 0 || i >= len(d.ports) {
		return "?"
	}
	return d.ports[i].Port.Name()
}

// selects reports whether the trace looks at port p of worker id.
func (t *traceSession) selects(p, id int) bool {
	return (t.opts.Port < 0 || t.opts.Port == p) && (t.opts.Worker < 0 || t.opts.Worker == id)
}

// traceBurst is the rx loop of inputBurst while a trace of this port and
// worker is armed: the same per-packet work, with the filter in front.
func (w *Worker) traceBurst(t *traceSession, p, n int) {
	t0 := w.dp.clock()
	for i := 0; i < n; i++ {
		b := w.rx[i]
		w.rx[i] = nil
		b.Port = uint16(p)
		w.cur = b
		w.traceBegin(t, b, t0, -1)
		w.input(b)
		w.traceEnd()
	}
	w.cur = nil
}

// traceRedirected runs a frame another worker handed over (from) through
// the pipeline, traced when it matches.
func (w *Worker) traceRedirected(t *traceSession, b *pktbuf.Buf, from int) {
	if t.selects(int(b.Port), w.id) {
		w.traceBegin(t, b, w.dp.clock(), from)
	}
	w.input(b)
	w.traceEnd()
}

// traceBegin claims a record for b if it matches the filter.
func (w *Worker) traceBegin(t *traceSession, b *pktbuf.Buf, t0 int64, from int) {
	count := int32(len(t.recs))
	if t.next.Load() >= count {
		return
	}
	frame := b.Bytes()
	if t.opts.Filter != nil && !t.opts.Filter.Match(frame) {
		return
	}
	slot := t.next.Add(1) - 1
	if slot >= count {
		return
	}
	if slot == count-1 {
		w.dp.trace.CompareAndSwap(t, nil) // the last one: no more filtering
	}
	r := &t.recs[slot]
	r.Seq, r.Worker, r.Port, r.From, r.Len = int(slot)+1, w.id, int(b.Port), from, len(frame)
	copy(r.Head[:], frame)
	w.trBuf, w.trRec, w.trT0, w.trRdy = b, r, t0, &t.ready[slot]
}

// traceEnd hands the record of the packet that just left the pipeline to
// the reader.
func (w *Worker) traceEnd() {
	if w.trRec == nil {
		return
	}
	w.trRdy.Store(true)
	w.workerTrace = workerTrace{}
}

// traceEvent appends an event; last ends the packet's trace (its later
// stages, if any, are another packet's business).
func (w *Worker) traceEvent(e TraceEvent, last bool) {
	r := w.trRec
	if last {
		w.trBuf = nil
	}
	if r == nil {
		return
	}
	if r.NEvent == maxTraceEvents {
		r.Lost++
		return
	}
	e.At = w.dp.clock() - w.trT0
	r.Events[r.NEvent] = e
	r.NEvent++
}

// The hooks, called when w.trBuf is the stage's buffer.

func (w *Worker) traceParse(ifc *Iface, version uint8) {
	w.traceEvent(TraceEvent{Stage: StageParse, Code: version, N: uint32(ifc.Index), Name: ifc.Name}, false)
}

func (w *Worker) traceLookup(found bool, dir session.Direction, id uint32) {
	e := TraceEvent{Stage: StageLookup, Code: LookupMiss}
	if found {
		c := w.sess.Get(id)
		e.Code, e.N, e.A = LookupHitIn, id, unmapAP(c.DAddrPort())
		if dir == session.Out {
			e.Code = LookupHitOut
		}
	}
	w.traceEvent(e, false)
}

func (w *Worker) traceSchedule(svc *ipvs.Service, dest *ipvs.Dest) {
	w.traceEvent(TraceEvent{Stage: StageSchedule, N: svc.ID, A: dest.Spec.Addr,
		B: netip.AddrPortFrom(svc.Spec.Key.Addr, svc.Spec.Key.Port), Code: uint8(svc.Spec.Key.Proto), Name: svc.Spec.Sched}, false)
}

func (w *Worker) traceRewrite(dir session.Direction, to *nat.Endpoints) {
	w.traceEvent(TraceEvent{Stage: StageRewrite, Code: uint8(dir), A: netip.AddrPortFrom(to.Src, to.SrcPort),
		B: netip.AddrPortFrom(to.Dst, to.DstPort)}, false)
}

// traceXmit records the route (out, nh) and what the neighbour table says
// about nh.
func (w *Worker) traceXmit(out *Iface, nh netip.Addr) {
	w.traceEvent(TraceEvent{Stage: StageRoute, N: uint32(out.Index), Name: out.Name, A: netip.AddrPortFrom(nh, 0)}, false)
	e := TraceEvent{Stage: StageNeighbour, Code: NeighHeld, A: netip.AddrPortFrom(nh, 0)}
	if n, ok := w.neigh.Get(nh); ok && n.iface == out.Index {
		e.Code, e.MAC = NeighResolved, n.mac
	}
	w.traceEvent(e, e.Code == NeighHeld && len(w.pending) < w.maxPending)
}

func (w *Worker) traceTx(p int) {
	w.traceEvent(TraceEvent{Stage: StageTransmit, N: uint32(p), Q: uint32(w.id)}, true)
}

func (w *Worker) traceDrop(c Counter) { w.traceEvent(TraceEvent{Stage: StageDrop, Ctr: c}, true) }

func (w *Worker) traceKNI(p int) { w.traceEvent(TraceEvent{Stage: StageKNI, N: uint32(p)}, true) }

func (w *Worker) traceRedirect(owner int) {
	w.traceEvent(TraceEvent{Stage: StageRedirect, N: uint32(owner)}, true)
}
