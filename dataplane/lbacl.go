package dataplane

// Admission of new connections and of client packets: a service's deny and
// allow lists (DPVS blklst/whtlst) and its new-connection limits.
//
//   - Lists: checked for the first packet of a connection before it is
//     scheduled, and — as DPVS checks them on every packet it looks a
//     connection up for — on every client packet of an existing one, so a
//     client denied at run time loses its open connections too (their
//     packets are dropped until the connection times out). Existing
//     connections pay for it only while some service has a list
//     (ipvs.Table.ACL): one service lookup by id and one binary search.
//   - conn_rate_limit: a token bucket per worker per service, each worker
//     refilled with rate/workers per second and holding at most one
//     second of its share (at least one connection). Per worker, because a
//     shared atomic budget would put a contended write on every new
//     connection of every worker; the price is that a worker RSS gives
//     more than its share of new flows runs dry before the others.
//   - per_source_rate_limit: new connections per client address per
//     second, counted per worker in a fixed-size count-min sketch (2 rows
//     of 16384 16-bit counters, cleared at each one-second window) keyed
//     by a per-worker random seed, the service and the client: memory does
//     not grow with the number of sources, an estimate never undercounts,
//     and colliding sources only ever make a limit stricter. Each worker
//     allows ceil(limit/workers) per source, as RSS spreads a source's
//     flows over the workers; a share of 65535 or more is no limit.
//
// The limits count SYNs (and UDP first packets) that passed the lists,
// before scheduling; a refused one is dropped and counted, never answered.
// Every refusal is counted twice: the worker's drop counter (drop_lb_*,
// dpip worker show) and the service's own (lbAdmitStat, per worker by
// service id, summed by AdmissionOf for ListServices, ipvsadm -L --drops
// and the metrics).
// Everything here runs on the worker's thread; the per-service buckets grow
// when a service with a higher id first sends a packet, never afterwards.

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/ipvs"
	"go.uber.org/zap"
)

const (
	srcSketchRows  = 2
	srcSketchWidth = 1 << 14
	srcWindowNs    = int64(1e9)
	nsPerConn      = int64(1e9) // token units per connection: rate × elapsed ns
)

// connBucket is one worker's token bucket for one service's new connections.
type connBucket struct {
	tokens int64 // in 1e-9 connections
	last   int64 // worker clock of the last refill; 0: never used
}

// srcSketch counts new connections per (service, client) in the current
// one-second window.
type srcSketch struct {
	seed   uint64
	window int64
	c      [srcSketchRows][srcSketchWidth]uint16
}

// lbLimits is a worker's limiter state.
type lbLimits struct {
	buckets []connBucket // by service id
	sketch  *srcSketch   // made at the first per-source limited packet
	// stats count refusals by service id: written by the worker only,
	// published (pub) for the API's readers.
	stats []lbAdmitStat
	pub   atomic.Pointer[[]lbAdmitStat]
}

// lbAdmitStat counts what one service's lists and limits refused on one
// worker: one uncontended atomic add per refusal.
type lbAdmitStat struct {
	denied, notAllowed, rateLimited, sourceLimited atomic.Uint64
}

// AdmissionStats are what a service's lists and limits refused, summed
// over the workers: packets (Denied, NotAllowed) and new connections
// (RateLimited, SourceLimited). Cumulative: ipvsadm -Z leaves them.
type AdmissionStats struct {
	Denied, NotAllowed, RateLimited, SourceLimited uint64
}

// stat returns service id's refusal counters, growing the slice when a
// service with a higher id first refuses something (never afterwards).
func (l *lbLimits) stat(id uint32) *lbAdmitStat {
	if int(id) >= len(l.stats) {
		n := make([]lbAdmitStat, id+64)
		for i := range l.stats {
			o := &l.stats[i]
			n[i].denied.Store(o.denied.Load())
			n[i].notAllowed.Store(o.notAllowed.Load())
			n[i].rateLimited.Store(o.rateLimited.Load())
			n[i].sourceLimited.Store(o.sourceLimited.Load())
		}
		l.stats = n
		l.pub.Store(&n)
	}
	return &l.stats[id]
}

// AdmissionOf sums service svc's refusal counters over the workers.
func (d *Dataplane) AdmissionOf(svc *ipvs.Service) AdmissionStats {
	var a AdmissionStats
	for _, w := range d.workers {
		p := w.lim.pub.Load()
		if p == nil || int(svc.ID) >= len(*p) {
			continue
		}
		s := &(*p)[svc.ID]
		a.Denied += s.denied.Load()
		a.NotAllowed += s.notAllowed.Load()
		a.RateLimited += s.rateLimited.Load()
		a.SourceLimited += s.sourceLimited.Load()
	}
	return a
}

// lbAdmitNew applies svc's lists and limits to the first packet of a new
// connection from client; false: b was dropped and counted.
func (w *Worker) lbAdmitNew(b *pktbuf.Buf, svc *ipvs.Service, client netip.Addr) bool {
	if svc.Deny != nil || svc.Allow != nil {
		if !w.lbACLPass(b, svc, client) {
			return false
		}
	}
	if r := svc.Spec.ConnRateLimit; r != 0 && !w.lim.take(svc.ID, r, len(w.dp.workers), w.now) {
		w.drop(b, CtrDropLBRateLimited)
		w.lim.stat(svc.ID).rateLimited.Add(1)
		return false
	}
	if l := svc.Spec.PerSourceRateLimit; l != 0 && !w.lim.sourceAllow(svc.ID, client, l, len(w.dp.workers), w.now) {
		w.drop(b, CtrDropLBSourceLimited)
		w.lim.stat(svc.ID).sourceLimited.Add(1)
		return false
	}
	return true
}

func (w *Worker) lbACLPass(b *pktbuf.Buf, svc *ipvs.Service, client netip.Addr) bool {
	switch svc.Check(client) {
	case ipvs.ACLDenied:
		w.drop(b, CtrDropLBDenied)
		w.lim.stat(svc.ID).denied.Add(1)
		return false
	case ipvs.ACLNotAllowed:
		w.drop(b, CtrDropLBNotAllowed)
		w.lim.stat(svc.ID).notAllowed.Add(1)
		return false
	}
	return true
}

// lbACLConn checks a client packet of an existing connection against its
// service's lists (only called while some service has one); false: b was
// dropped and counted.
func (w *Worker) lbACLConn(b *pktbuf.Buf, id uint32) bool {
	c := w.sess.Get(id)
	svc := w.lb.ACLService(c.Service)
	if svc == nil {
		return true
	}
	return w.lbACLPass(b, svc, netip.AddrFrom16(c.CAddr))
}

// take takes one connection from service id's bucket, refilled at
// rate/workers per second.
func (l *lbLimits) take(id, rate uint32, workers int, now int64) bool {
	if int(id) >= len(l.buckets) {
		n := make([]connBucket, id+64)
		copy(n, l.buckets)
		l.buckets = n
	}
	if workers < 1 {
		workers = 1
	}
	b := &l.buckets[id]
	share := int64(rate) * nsPerConn / int64(workers) // per second, in token units
	limit := max(share, nsPerConn)
	if b.last == 0 {
		b.tokens, b.last = limit, now
	} else if el := now - b.last; el > 0 {
		if el > srcWindowNs {
			el = srcWindowNs // a full bucket is one second's share: no overflow
		}
		b.tokens = min(b.tokens+el*int64(rate)/int64(workers), limit)
		b.last = now
	}
	if b.tokens < nsPerConn {
		return false
	}
	b.tokens -= nsPerConn
	return true
}

func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// sourceAllow counts a new connection of client to service id and reports
// whether the client stays within ceil(limit/workers) this second.
func (l *lbLimits) sourceAllow(id uint32, client netip.Addr, limit uint32, workers int, now int64) bool {
	s := l.sketch
	if s == nil {
		s = &srcSketch{seed: rand.Uint64()}
		l.sketch = s
	}
	if win := now / srcWindowNs; win != s.window {
		s.window = win
		s.c = [srcSketchRows][srcSketchWidth]uint16{}
	}
	if workers < 1 {
		workers = 1
	}
	per := (uint64(limit) + uint64(workers) - 1) / uint64(workers)
	if per >= 0xffff {
		return true // beyond what a 16-bit counter tells apart: no limit
	}
	a := client.As16()
	hi := uint64(a[0])<<56 | uint64(a[1])<<48 | uint64(a[2])<<40 | uint64(a[3])<<32 | uint64(a[4])<<24 | uint64(a[5])<<16 | uint64(a[6])<<8 | uint64(a[7])
	lo := uint64(a[8])<<56 | uint64(a[9])<<48 | uint64(a[10])<<40 | uint64(a[11])<<32 | uint64(a[12])<<24 | uint64(a[13])<<16 | uint64(a[14])<<8 | uint64(a[15])
	h := mix64(hi ^ mix64(lo^s.seed^uint64(id)<<32))
	i0, i1 := h&(srcSketchWidth-1), (h>>32)&(srcSketchWidth-1)
	est := min(s.c[0][i0], s.c[1][i1])
	if uint64(est) >= per {
		return false
	}
	// conservative update: only the counters at the minimum grow
	if s.c[0][i0] == est {
		s.c[0][i0]++
	}
	if s.c[1][i1] == est {
		s.c[1][i1]++
	}
	return true
}

// sketchBytes is the per-source sketch's fixed size (tests).
func (l *lbLimits) sketchBytes() int {
	if l.sketch == nil {
		return 0
	}
	return len(l.sketch.c) * len(l.sketch.c[0]) * 2
}

// AddACL adds a client address or prefix to a service's deny or allow
// list (ipvsadm --add-blklst/--add-whtlst); workers apply it from their
// next loop iteration.
func (d *Dataplane) AddACL(k ipvs.ServiceKey, kind ipvs.ACLKind, p netip.Prefix) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	if err := d.ipvs.AddACL(k, kind, p); err != nil {
		return err
	}
	d.applied(fmt.Sprintf("%s entry added", kind), zap.Stringer("service", k), zap.Stringer("prefix", p.Masked()))
	return nil
}

// DelACL removes an entry from a service's deny or allow list.
func (d *Dataplane) DelACL(k ipvs.ServiceKey, kind ipvs.ACLKind, p netip.Prefix) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	if err := d.ipvs.DelACL(k, kind, p); err != nil {
		return err
	}
	d.applied(fmt.Sprintf("%s entry deleted", kind), zap.Stringer("service", k), zap.Stringer("prefix", p.Masked()))
	return nil
}
