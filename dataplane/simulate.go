package dataplane

// Flow simulation: "where does this client's flow go now?", answered from
// the live state without creating a connection (Katran's getRealForFlow).
// A flow with a connection is reported as the connection stands (worker,
// local address and port, real server, state). Without one, the service's
// scheduler is asked when its pick is a pure function of the flow (the
// hashing schedulers: sh, mh, dh, conhash); the others (rr, wlc, …) pick by
// state a question must not change, so their answer lists the candidates.

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/ipvs/persist"
	"github.com/gvs-lb/gvs/ipvs/sched"
	"github.com/gvs-lb/gvs/session"
)

// FlowAnswer is where a flow goes.
type FlowAnswer struct {
	Service string // "TCP 10.1.0.100:80"
	Sched   string
	// Existing: the flow has a connection, on Worker, through Local to
	// Dest, in State; ReplyOwner is the worker its replies belong to.
	Existing   bool
	Worker     int
	Local      netip.AddrPort
	Dest       netip.AddrPort
	State      string
	Expires    time.Duration
	ReplyOwner int
	// Without a connection: Dest is the scheduler's pick when Predicted,
	// otherwise Candidates are the destinations it may pick; LAddrs are
	// the local addresses a new connection takes a port from.
	Predicted  bool
	Candidates []netip.AddrPort
	LAddrs     []netip.Addr
	Note       string
}

// SimulateFlow answers for the flow client → vip of protocol proto.
func (d *Dataplane) SimulateFlow(proto ipvs.Proto, client, vip netip.AddrPort) (FlowAnswer, error) {
	client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	vip = netip.AddrPortFrom(vip.Addr().Unmap(), vip.Port())
	svc := d.ipvs.Table().Lookup(proto, vip.Addr(), vip.Port())
	if svc == nil {
		return FlowAnswer{}, fmt.Errorf("flow %s %s → %s: %w", proto, client, vip, ipvs.ErrNoService)
	}
	a := FlowAnswer{Service: svc.Spec.Key.String(), Sched: svc.Spec.Sched}
	key := session.MakeKey(uint8(proto), client, vip)
	found := make([]*FlowAnswer, len(d.workers))
	err := d.runOnWorkers(func(w *Worker) {
		id, dir, ok := w.sess.Lookup(key)
		if !ok || dir != session.In {
			return
		}
		c := w.sess.Get(id)
		f := FlowAnswer{Existing: true, Worker: w.id, Local: unmapAP(c.LAddrPort()), Dest: unmapAP(c.DAddrPort()),
			State: c.State.String()}
		tick := uint32(w.dp.clock() / int64(w.sessTick))
		if e := c.Expires(); int32(e-tick) > 0 {
			f.Expires = time.Duration(e-tick) * w.sessTick
		}
		found[w.id] = &f
	})
	if err != nil {
		return a, err
	}
	for _, f := range found {
		if f != nil {
			f.Service, f.Sched = a.Service, a.Sched
			f.ReplyOwner = d.steer.Owner(f.Local.Port())
			return *f, nil
		}
	}
	for _, la := range svc.AllocLAddrs {
		a.LAddrs = append(a.LAddrs, la.Addr)
	}
	if svc.Spec.Persistent {
		if id, ok := d.persist.Get(persist.MakeKey(svc.ID, client.Addr(), persistPrefix(svc))); ok {
			if dst := liveDest(svc, id); dst != nil && (dst.Spec.Weight > 0 || !d.opts.ExpireQuiescentTemplate) {
				a.Predicted, a.Dest = true, dst.Spec.Addr
				a.Note = "persistence template of the client's network"
				return a, nil
			}
		}
	}
	if sched.Shared(svc.Spec.Sched) && len(svc.Scheds) > 0 {
		// a pure function of the flow: asking does not change it
		flow := sched.Flow{Src: client.Addr(), SrcPort: client.Port(), Dst: vip.Addr(), DstPort: vip.Port(), Proto: uint8(proto)}
		if i := svc.Scheds[0].Pick(&flow); i >= 0 {
			a.Predicted, a.Dest = true, svc.Dests[i].Spec.Addr
			return a, nil
		}
		a.Note = "no destination available"
		return a, nil
	}
	for _, dst := range svc.Dests {
		if dst.Spec.Weight > 0 {
			a.Candidates = append(a.Candidates, dst.Spec.Addr)
		}
	}
	a.Note = fmt.Sprintf("scheduler %s picks by its state (the next pick of the worker that receives the first packet): candidates listed", svc.Spec.Sched)
	return a, nil
}
