package dataplane

// Session sync, the dataplane's side: publishing connection events and
// installing connections other nodes (or this node's control plane after a
// restart) synced.
//
// Publishing. While a consumer is attached (DrainSync, the API's
// StreamSyncEvents), every worker reads the sync policy once per loop and,
// on the packet path, copies the events of its connections into its own
// single-producer ring: no lock, no allocation, a few compares per packet.
// A connection is published when its count of client packets reaches the
// policy's threshold while it is ESTABLISHED (LVS sync_threshold), again
// every Period client packets after that (so peers' copies do not expire
// under a long-lived flow), on every state change after its first
// publication (closing states matter to the peers' timeouts), and when it
// expires. UDP connections are published only if the policy says so. The
// client-packet count lives in session.Conn.Mark. A full ring loses the
// event and counts it (sync_drop_ring_full); the next periodic or state
// event repairs the peers' view.
//
// Installing. InstallSynced hands each connection to the worker that owns
// its local port (flowdir.Steering.Owner, the rule replies are steered
// by), which reserves the port in its pool for the (local address, real
// server) pair and inserts the connection flagged session.FlagSynced. An
// existing connection with the same client-side key is updated (state and
// expiry) instead: installs are idempotent, periodic resyncs refresh; one
// made here for a mid-flow segment (session.FlagMidFlow, mh services) on
// another path is replaced by the synced original. The
// worker then treats a synced connection like its own. A deletion expires
// the connection only if it is still flagged synced and has seen no
// client packet here (a connection this node serves stays).
//
// Only one consumer drains the rings at a time; the policy is nil (nothing
// published) while none is attached.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/gvs-lb/gvs/dataplane/ring"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

// DefaultSyncRing is each worker's sync event ring size.
const DefaultSyncRing = 4096

// SyncPolicy says which connection events workers publish.
type SyncPolicy struct {
	// Threshold is the client packets a connection has seen when it is
	// first published (LVS sync_threshold[0], default 3); 1 to 200.
	Threshold uint8
	// Period re-publishes a connection every Period client packets after
	// the threshold (LVS sync_threshold[1], default 50); 0 never; at most
	// 255 - Threshold.
	Period uint8
	// UDP publishes UDP connections too.
	UDP bool
}

// Validate checks p, naming the fix.
func (p SyncPolicy) Validate() error {
	if p.Threshold < 1 || p.Threshold > 200 {
		return fmt.Errorf("sync threshold %d: give 1 to 200 client packets", p.Threshold)
	}
	if int(p.Threshold)+int(p.Period) > 255 {
		return fmt.Errorf("sync period %d with threshold %d: threshold + period must stay below 256", p.Period, p.Threshold)
	}
	return nil
}

// SyncKind is what happened to a connection.
type SyncKind uint8

const (
	SyncUpdate SyncKind = 1 // established, refreshed or changed state
	SyncDelete SyncKind = 2 // expired or removed
)

func (k SyncKind) String() string {
	switch k {
	case SyncUpdate:
		return "update"
	case SyncDelete:
		return "delete"
	}
	return "invalid"
}

// syncRec is one event as a worker copies it: pointer-free.
type syncRec struct {
	conn session.Conn
	kind SyncKind
	adj  SyncAdjust
}

// SyncAttached reports whether a sync consumer is attached (workers
// publish).
func (d *Dataplane) SyncAttached() bool { return d.syncPol.Load() != nil }

// SyncConn is one connection event, or one connection to install.
type SyncConn struct {
	Kind    SyncKind
	Proto   uint8
	State   session.State
	Client  netip.AddrPort
	Virtual netip.AddrPort
	Local   netip.AddrPort
	Dest    netip.AddrPort
	// Timeout is the idle timeout of State on the publishing node (events);
	// installs use the local timeouts.
	Timeout time.Duration
	// Synced: the connection was itself installed by sync (events).
	Synced bool
	Worker int // the publishing worker (events)
	// Adjust is a SYN-proxied connection's translation (lbsynproxy.go):
	// a peer needs it to forward the connection after a failover.
	Adjust SyncAdjust
}

// SyncAdjust is how a SYN-proxied connection's client view differs from
// its real server's: sequence and timestamp deltas and the window scales
// of each direction (from<<4 | to).
type SyncAdjust struct {
	Present             bool
	SeqDelta, TSDelta   uint32
	InScales, OutScales uint8
	// PPShift is the proxy protocol header's length (lbproxyproto.go): the
	// server's view of client data is ahead by it; 0: no header, or the
	// client's own kept.
	PPShift uint8
	// SynProxy: the SYN proxy made the connection's handshakes.
	SynProxy bool
}

// Validate checks the scales (each 0-14).
func (a SyncAdjust) Validate() error {
	for _, s := range []uint8{a.InScales, a.OutScales} {
		if s>>4 > 14 || s&15 > 14 {
			return fmt.Errorf("window scales %#x: each of from<<4|to is 0-14", s)
		}
	}
	return nil
}

// ErrSyncBusy is returned by DrainSync when another consumer is attached.
var ErrSyncBusy = errors.New("another consumer drains the sync events")

// syncIn counts a packet of conn c (just updated from state old, in
// direction dir) and publishes its event when the policy says so. Called
// on the packet path only while a policy is set.
func (w *Worker) syncIn(c *session.Conn, id uint32, dir session.Direction, old session.State) {
	p := w.syncPol
	if c.Proto == header.ProtoUDP && !p.UDP || c.HasLocal() && w.isMasq(id) {
		return // (SNAT connections are not synced: no peer could find their service)
	}
	pub := false
	if dir != session.Out {
		m := c.Mark
		if m < 255 {
			m++
		}
		switch {
		case p.Period > 0 && m >= p.Threshold+p.Period:
			m = p.Threshold
		case p.Period == 0 && m > p.Threshold:
			m = p.Threshold + 1 // saturated: published once
		}
		c.Mark = m
		if m == p.Threshold && (c.State == session.StateEstablished || c.State == session.StateUDP) {
			pub = true
		}
	}
	if c.State != old && c.Mark >= p.Threshold && syncedState(c.State) {
		pub = true
	}
	if pub {
		var adj SyncAdjust
		if c.Flags&session.FlagAdjusted != 0 {
			a := &w.sp.conns[id]
			if a.state&spWaiting != 0 || a.pp.ver != 0 && a.pp.flags&ppDecided == 0 {
				return // not yet a connection a peer could forward: published later
			}
			adj = SyncAdjust{Present: true, SeqDelta: a.seqDelta, TSDelta: a.tsDelta, InScales: uint8(a.win), OutScales: a.wscale,
				SynProxy: a.state&spProxied != 0}
			if a.pp.flags&(ppDecided|ppKeep) == ppDecided {
				adj.PPShift = a.pp.n
			}
		}
		w.publishSync(c, SyncUpdate, adj)
	}
}

// syncedState: the states peers are told about (not the handshake ones).
func syncedState(s session.State) bool {
	switch s {
	case session.StateEstablished, session.StateFinWait, session.StateTimeWait, session.StateClose,
		session.StateCloseWait, session.StateLastAck, session.StateUDP:
		return true
	}
	return false
}

// syncGone publishes the deletion of a connection that was published.
func (w *Worker) syncGone(c *session.Conn) {
	p := w.syncPol
	if p == nil || c.Mark < p.Threshold || (c.Proto == header.ProtoUDP && !p.UDP) {
		return
	}
	w.publishSync(c, SyncDelete, SyncAdjust{})
}

func (w *Worker) publishSync(c *session.Conn, k SyncKind, adj SyncAdjust) {
	if w.syncOut.Push(syncRec{conn: *c, kind: k, adj: adj}) {
		w.ctr.inc(CtrSyncPublished)
	} else {
		w.ctr.inc(CtrSyncDropRingFull)
	}
}

// DrainSync attaches the one sync consumer: workers publish by policy p
// until ctx ends, and fn is called with the events drained from all
// workers' rings, in batches of at most max, from this goroutine (every
// poll interval when there are none). An error from fn ends the drain.
// It returns ErrSyncBusy when another consumer is attached.
func (d *Dataplane) DrainSync(ctx context.Context, p SyncPolicy, max int, poll time.Duration, fn func([]SyncConn) error) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if !d.syncBusy.CompareAndSwap(false, true) {
		return ErrSyncBusy
	}
	defer d.syncBusy.Store(false)
	if max <= 0 {
		max = 1024
	}
	if poll <= 0 {
		poll = 10 * time.Millisecond
	}
	// events left from an earlier consumer are stale: drop them
	for _, w := range d.workers {
		for {
			if _, ok := w.syncOut.Pop(); !ok {
				break
			}
		}
	}
	d.syncPol.Store(&p)
	defer d.syncPol.Store(nil)
	touts := d.Timeouts()
	batch := make([]SyncConn, 0, max)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		batch = batch[:0]
		for _, w := range d.workers {
			for len(batch) < max {
				r, ok := w.syncOut.Pop()
				if !ok {
					break
				}
				batch = append(batch, syncConnOf(&r, w.id, touts))
			}
		}
		if len(batch) > 0 {
			if err := fn(batch); err != nil {
				return err
			}
			if len(batch) == max {
				continue // more may be waiting
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if len(batch) == 0 {
				touts = d.Timeouts()
			}
		}
	}
}

func syncConnOf(r *syncRec, worker int, to session.Timeouts) SyncConn {
	c := &r.conn
	return SyncConn{Kind: r.kind, Proto: c.Proto, State: c.State, Client: c.CAddrPort(), Virtual: c.VAddrPort(),
		Local: c.LAddrPort(), Dest: c.DAddrPort(), Timeout: to.For(c.State), Synced: c.Flags&session.FlagSynced != 0,
		Worker: worker, Adjust: r.adj}
}

// SyncInstallResult counts what InstallSynced did.
type SyncInstallResult struct {
	Installed int // new synced connections
	Updated   int // existing connections refreshed
	Deleted   int // synced connections expired by a deletion
	Refused   int // no such service or real server here, no port, table full, bad record
}

// Add sums r and o.
func (r *SyncInstallResult) Add(o SyncInstallResult) {
	r.Installed += o.Installed
	r.Updated += o.Updated
	r.Deleted += o.Deleted
	r.Refused += o.Refused
}

// MaxSyncInstall bounds one InstallSynced call: the workers apply a call's
// share in one loop step.
const MaxSyncInstall = 4096

// InstallSynced installs conns (or applies their deletions) in the workers
// owning their local ports. Records naming no service of this dataplane
// or a real server it does not have are refused and counted, not errors.
func (d *Dataplane) InstallSynced(conns []SyncConn) (SyncInstallResult, error) {
	var res SyncInstallResult
	if len(conns) > MaxSyncInstall {
		return res, fmt.Errorf("%w: %d connections in one install: send at most %d per call", ErrInvalid, len(conns), MaxSyncInstall)
	}
	share := make([][]SyncConn, len(d.workers))
	for _, c := range conns {
		o := d.steer.Owner(c.Local.Port())
		if o >= len(d.workers) || !c.Local.IsValid() {
			res.Refused++
			continue
		}
		share[o] = append(share[o], c)
	}
	out := make([]SyncInstallResult, len(d.workers))
	err := d.runOnWorkers(func(w *Worker) {
		for i := range share[w.id] {
			w.installSynced(&share[w.id][i], &out[w.id])
		}
		w.ctr.publish()
		w.publishDests()
	})
	for i := range out {
		res.Add(out[i])
	}
	return res, err
}

// installSynced applies one record on the worker's own thread.
func (w *Worker) installSynced(s *SyncConn, res *SyncInstallResult) {
	w.lb = w.dp.ipvs.Table()
	refuse := func() { res.Refused++; w.ctr.inc(CtrSyncInstallRefused) }
	if (s.Proto != header.ProtoTCP && s.Proto != header.ProtoUDP) || !s.Client.IsValid() || !s.Virtual.IsValid() || !s.Dest.IsValid() {
		refuse()
		return
	}
	c := session.NewConn(s.Proto, s.Client, s.Virtual, s.Local, s.Dest)
	key := c.InKey()
	id, _, found := w.sess.Lookup(key)
	now := w.dp.clock()
	if w.now < now {
		w.setNow(now)
	}
	if s.Kind == SyncDelete {
		if found {
			if e := w.sess.Get(id); e.Flags&session.FlagSynced != 0 && e.Mark == 0 {
				w.forgetEnds(id) // the peer ended it: no resets from here
				w.sess.ExpireNow(id)
				res.Deleted++
			}
		}
		return
	}
	if s.Proto == header.ProtoTCP && (int(s.State) >= int(session.StateUDP)) ||
		s.Adjust.Present && (s.Proto != header.ProtoTCP || !c.HasLocal() || s.Adjust.Validate() != nil) {
		refuse()
		return
	}
	if found {
		if e := w.sess.Get(id); e.Flags&session.FlagMidFlow != 0 && e.OutKey() != c.OutKey() {
			// made here for a segment that arrived before its sync: the
			// flow's original connection replaces it
			w.forgetEnds(id) // the flow lives on: no resets
			w.onExpire(id, e)
			w.sess.Delete(id)
			found = false
		}
	}
	if found {
		e := w.sess.Get(id)
		if e.OutKey() != c.OutKey() {
			refuse() // the same client flow on another path here
			return
		}
		if e.Flags&session.FlagSynced != 0 && e.Mark == 0 && s.Proto == header.ProtoTCP && e.State != s.State {
			if d := w.lb.Dests[e.Dest]; d != nil && e.State.Active() != s.State.Active() {
				if s.State.Active() {
					d.C.Active.Add(1)
					d.C.Inactive.Add(-1)
				} else {
					d.C.Active.Add(-1)
					d.C.Inactive.Add(1)
				}
			}
			e.State = s.State
		}
		if s.Adjust.Present && e.Flags&session.FlagAdjusted != 0 && e.Flags&session.FlagSynced != 0 && e.Mark == 0 &&
			w.sp.conns[id].state&spWaiting == 0 {
			w.sp.adopt(id, s.Adjust)
		}
		w.forgetEnds(id) // the peer carries the flow: what this node saw is not its end
		w.sess.Touch(id, w.tick())
		res.Updated++
		w.ctr.inc(CtrSyncUpdated)
		return
	}
	svc := w.lb.Lookup(ipvs.Proto(s.Proto), s.Virtual.Addr().Unmap(), s.Virtual.Port())
	if svc == nil {
		refuse()
		return
	}
	var dest *ipvs.Dest
	da := unmapAP(s.Dest)
	for _, d := range svc.Dests {
		if d.Spec.Addr == da || d.Spec.Addr.Port() == 0 && d.Spec.Addr.Addr() == da.Addr() { // port 0: the client's port
			dest = d
			break
		}
	}
	if dest == nil {
		refuse()
		return
	}
	held := svc.Spec.Persistent && w.persistAdopt(svc, c.CAddrPort().Addr(), dest)
	if held {
		c.Flags |= session.FlagTemplate
	}
	la := s.Local.Addr().Unmap()
	masq := !c.HasLocal() && dest.Spec.Fwd == ipvs.FwdMasq // NAT: replies come back here (lbmasq.go)
	if !c.HasLocal() {
		if !masq {
			c.Flags |= session.FlagNoOutput // direct routing: no local address, replies bypass
		}
	} else if err := w.pool.Reserve(la, da, s.Local.Port()); err != nil {
		if held {
			w.persistUnref(svc.ID, c.CAddrPort().Addr(), svc)
		}
		refuse()
		return
	}
	c.Dest, c.Service = dest.ID, svc.ID
	c.State = s.State
	c.Flags |= session.FlagSynced | session.FlagTOAConfirmed // the origin already told the server
	if s.Adjust.Present {
		c.Flags |= session.FlagAdjusted
		w.sp.init(w.sess.Capacity(), w.dp.spCfg.Held)
	}
	id, err := w.sess.Insert(c, w.tick())
	if err != nil {
		if c.HasLocal() {
			w.pool.Put(la, da, s.Local.Port())
		}
		if held {
			w.persistUnref(svc.ID, c.CAddrPort().Addr(), svc)
		}
		refuse()
		return
	}
	if s.Adjust.Present {
		w.sp.adopt(id, s.Adjust)
	}
	w.masqMade(id, &c, masq)
	if c.State.Active() {
		dest.C.Active.Add(1)
	} else {
		dest.C.Inactive.Add(1)
	}
	res.Installed++
	w.ctr.inc(CtrSyncInstalled)
}

// newSyncRing is a worker's event ring.
func newSyncRing(n int) *ring.SPSC[syncRec] {
	if n <= 0 {
		n = DefaultSyncRing
	}
	return ring.NewSPSC[syncRec](n)
}
