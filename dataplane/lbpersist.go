package dataplane

// Persistence (ipvsadm -p, -M): the first connection of a client network
// to a persistent service is scheduled and leaves a template (package
// ipvs/persist) that sends the network's later connections to the same
// real server, on whichever worker they arrive: the template table is
// shared by all workers and read without locks. A connection that used a
// template holds a reference to it (session.FlagTemplate) until it ends;
// the master's expiry walk removes a template once its timeout passed and
// no connection holds it, as LVS expires its template connections.
//
// A template whose real server was removed is re-pointed at the client's
// next connection (LVS's ip_vs_check_template); one whose real server is
// quiesced (weight 0) keeps its clients unless
// ipvs.expire_quiescent_template is set.

import (
	"net/netip"
	"time"

	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/ipvs/persist"
	"github.com/gvs-lb/gvs/session"
)

// persistPrefix is the prefix length a service's templates cover.
func persistPrefix(svc *ipvs.Service) int {
	if p := svc.Spec.PersistPrefix; p > 0 {
		return p
	}
	return svc.Spec.Key.Addr.BitLen()
}

// persistTicks is a service's persistence timeout in session ticks.
func persistTicks(svc *ipvs.Service, tick time.Duration) uint32 {
	return uint32(time.Duration(svc.Spec.PersistTimeout) * time.Second / tick)
}

// liveDest returns the service's destination with id, or nil when it is
// no longer one of the service's (removed, draining).
func liveDest(svc *ipvs.Service, id uint32) *ipvs.Dest {
	for _, d := range svc.Dests {
		if d.ID == id {
			return d
		}
	}
	return nil
}

// templateKey returns the key of client's template in a persistent
// service, the current tick and the expiry a new connection gives it.
func (w *Worker) templateKey(svc *ipvs.Service, client netip.Addr) (k persist.Key, now, exp uint32) {
	now = w.tick()
	return persist.MakeKey(svc.ID, client, persistPrefix(svc)), now, now + persistTicks(svc, w.sessTick)
}

// createTemplate makes k's template point to d (replacing stale, see
// persist.Table.Create) and keeps the per-destination template counts
// (ipvsadm's PersistConn) and the full-bucket counter.
func (w *Worker) createTemplate(k persist.Key, d *ipvs.Dest, stale, now, exp uint32) (got uint32, r persist.Result) {
	got, old, r := w.dp.persist.Create(k, d.ID, stale, now, exp)
	switch r {
	case persist.NoRoom:
		w.ctr.inc(CtrLBPersistFull)
	case persist.Created:
		d.C.Persist.Add(1)
	case persist.Repointed:
		d.C.Persist.Add(1)
		if od := w.lb.Dests[old]; od != nil {
			od.C.Persist.Add(-1)
		}
	}
	return got, r
}

// persistDest returns the destination of a new connection of client to a
// persistent service, and whether the connection took a reference to its
// template (it must give it back with persistUnref). nil: no destination
// is available.
func (w *Worker) persistDest(svc *ipvs.Service, client netip.Addr) (*ipvs.Dest, bool) {
	t := w.dp.persist
	k, now, exp := w.templateKey(svc, client)
	var stale uint32
	if id, ok := t.Ref(k, exp); ok {
		if d := liveDest(svc, id); d != nil && (d.Spec.Weight > 0 || !w.dp.opts.ExpireQuiescentTemplate) {
			w.ctr.inc(CtrLBPersistReused)
			return d, true
		}
		t.Unref(k)
		stale = id
	}
	i := svc.Scheds[w.id].Pick(&w.flow)
	if i < 0 {
		return nil, false
	}
	d := svc.Dests[i]
	switch got, r := w.createTemplate(k, d, stale, now, exp); r {
	case persist.NoRoom:
		return d, false
	case persist.Existing:
		// another worker made the client's template first: its choice wins
		if gd := liveDest(svc, got); gd != nil {
			w.ctr.inc(CtrLBPersistReused)
			return gd, true
		}
		t.Unref(k) // it points to a server gone since: this connection goes without
		return d, false
	}
	return d, true
}

// persistAdopt makes a connection installed by session sync hold its
// client's template, creating one that points to the connection's real
// server if the client has none here yet: after a failover, the client's
// next connections go where its synced ones go. It returns whether a
// reference was taken.
func (w *Worker) persistAdopt(svc *ipvs.Service, client netip.Addr, dest *ipvs.Dest) bool {
	k, now, exp := w.templateKey(svc, client)
	if _, ok := w.dp.persist.Ref(k, exp); ok {
		return true
	}
	_, r := w.createTemplate(k, dest, 0, now, exp)
	return r != persist.NoRoom
}

// persistUnref gives back the template reference of a connection of
// service svcID from client.
func (w *Worker) persistUnref(svcID uint32, client netip.Addr, svc *ipvs.Service) {
	if svc == nil {
		return // the service is gone: its templates go when they are due
	}
	w.dp.persist.Unref(persist.MakeKey(svcID, client, persistPrefix(svc)))
}

// connUnref gives back the template reference a connection holds.
func (w *Worker) connUnref(c *session.Conn) {
	if c.Flags&session.FlagTemplate == 0 {
		return
	}
	w.persistUnref(c.Service, c.CAddrPort().Addr(), w.lb.ServiceByID(c.Service))
}

// expireTemplates runs the template expiry walk (from the master, once a
// second): the whole table, a bucket scan per bucket.
func (d *Dataplane) expireTemplates() {
	if d.persist.Len() == 0 || len(d.workers) == 0 {
		return
	}
	tickLen := d.workers[0].sessTick
	now := uint32(d.clock() / int64(tickLen))
	tbl := d.ipvs.Table()
	d.persist.Expire(now, func(id uint32) (uint32, uint8, bool) {
		svc := tbl.ServiceByID(id)
		if svc == nil || !svc.Spec.Persistent {
			return 0, 0, false
		}
		return persistTicks(svc, tickLen), uint8(persistPrefix(svc)), true
	}, &d.persistCursor, d.persist.Capacity(), func(e persist.Entry) {
		if dst := tbl.Dests[e.Dest]; dst != nil {
			dst.C.Persist.Add(-1)
		}
	})
}

// Templates lists the persistence templates (of service k if not nil) as
// connection entries: LVS's template format, state NONE, client port 0,
// virtual and real server port 0 for a port-0 service; Worker -1.
func (d *Dataplane) Templates(k *ipvs.ServiceKey, fn func([]ConnInfo) error) error {
	tbl := d.ipvs.Table()
	tickLen := d.tickLen()
	now := uint32(d.clock() / int64(tickLen))
	page := make([]ConnInfo, 0, listChunkSize)
	cursor := 0
	for more := true; more; {
		page = page[:0]
		more = d.persist.Walk(&cursor, listChunkSize/8, func(e persist.Entry) {
			svc := tbl.ServiceByID(e.Key.Service)
			if svc == nil || (k != nil && svc.Spec.Key != *k) {
				return
			}
			left := time.Duration(0)
			if r := int32(e.Expires - now); r > 0 {
				left = time.Duration(r) * tickLen
			}
			vip := netip.AddrPortFrom(svc.Spec.Key.Addr, svc.Spec.Key.Port)
			var dst netip.AddrPort
			if dd := tbl.Dests[e.Dest]; dd != nil {
				dst = dd.Spec.Addr
				if svc.Spec.Key.Port == 0 {
					dst = netip.AddrPortFrom(dst.Addr(), 0)
				}
			}
			page = append(page, ConnInfo{Worker: -1, Template: true, Proto: uint8(svc.Spec.Key.Proto), State: session.StateNone,
				Expires: left, Client: netip.AddrPortFrom(e.Key.Addr(), 0), Virtual: vip, Dest: dst})
		})
		if len(page) > 0 {
			if err := fn(page); err != nil {
				return err
			}
		}
	}
	return nil
}

// tickLen is the session tick (the same in every worker).
func (d *Dataplane) tickLen() time.Duration {
	if len(d.workers) == 0 {
		return time.Second
	}
	return d.workers[0].sessTick
}
