package dataplane

// Control methods of the IPVS stage: services, destinations, local
// addresses (validated against the interfaces) and timeouts; connection
// listings are in listing.go. Service changes go through the ipvs.Manager,
// which publishes a new table the workers load at their next burst; per-worker state
// (connection tables) is changed by closures run on the worker's own thread.

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/flowdir"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

// ServiceTable is the read side of the service model: the table the
// workers use. Changes go through the Dataplane's methods only.
type ServiceTable struct{ m *ipvs.Manager }

// Table returns the current (immutable) table.
func (t ServiceTable) Table() *ipvs.Table { return t.m.Table() }

// IPVS returns the read side of the service model.
func (d *Dataplane) IPVS() ServiceTable { return ServiceTable{d.ipvs} }

// AddService creates a service (ipvsadm -A).
func (d *Dataplane) AddService(spec ipvs.ServiceSpec) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	if err := d.ipvs.AddService(spec); err != nil {
		return err
	}
	d.applied("service added", zap.Stringer("service", spec.Key), zap.String("sched", d.ipvs.Table().Service(spec.Key).Spec.Sched),
		zap.Strings("flags", spec.SchedFlags))
	return nil
}

// EditService changes a service's scheduler and flags (ipvsadm -E).
func (d *Dataplane) EditService(spec ipvs.ServiceSpec) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	if err := d.ipvs.EditService(spec); err != nil {
		return err
	}
	d.applied("service changed", zap.Stringer("service", spec.Key), zap.String("sched", d.ipvs.Table().Service(spec.Key).Spec.Sched),
		zap.Strings("flags", spec.SchedFlags))
	return nil
}

// DelService removes a service (ipvsadm -D); its destinations drain, and
// its local addresses' steering rules go once no service uses them.
func (d *Dataplane) DelService(k ipvs.ServiceKey) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	var las []ipvs.LAddr
	if svc := d.ipvs.Table().Service(k); svc != nil {
		las = svc.LAddrs
		for _, dst := range svc.Dests {
			if dst.Spec.Fwd == ipvs.FwdSNAT { // steered as local addresses are
				las = append(las, ipvs.LAddr{Addr: dst.Spec.Addr.Addr()})
			}
		}
	}
	if err := d.ipvs.DelService(k); err != nil {
		return err
	}
	for _, la := range las {
		d.unsteerLAddr(la.Addr)
	}
	d.applied("service deleted", zap.Stringer("service", k))
	return nil
}

// FlushServices removes every service (ipvsadm -C).
func (d *Dataplane) FlushServices() error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	old := d.ipvs.Table()
	if err := d.ipvs.Flush(); err != nil {
		return err
	}
	old.LAddrs.All(func(a netip.Addr, _ struct{}) bool {
		d.unsteerLAddr(a)
		return true
	})
	d.applied("services flushed", zap.Int("services", len(old.Services)))
	return nil
}

// AddDest adds a destination to service k (ipvsadm -a).
func (d *Dataplane) AddDest(k ipvs.ServiceKey, ds ipvs.DestSpec) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	var snatPort int
	if ds.Fwd == ipvs.FwdSNAT {
		// a SNAT address is a source the dataplane answers for, as a
		// local address (lbsnat.go)
		if err := ds.Validate(k); err != nil {
			return err
		}
		s := d.snap.Load()
		owner, ok := s.local.Get(ds.Addr.Addr())
		ifc := s.iface(owner)
		if !ok || ifc == nil {
			return fmt.Errorf("SNAT address %s of %s: not an address of the dataplane: add it first (dpip addr add %s/%d dev IFNAME): %w",
				ds.Addr.Addr(), k, ds.Addr.Addr(), ds.Addr.Addr().BitLen(), ipvs.ErrInvalid)
		}
		snatPort = ifc.Port
	}
	if err := d.ipvs.AddDest(k, ds); err != nil {
		return err
	}
	if ds.Fwd == ipvs.FwdSNAT {
		d.steerLAddr(ds.Addr.Addr(), snatPort) // replies to its ports reach their owner
	}
	if ds.Fwd == ipvs.FwdSNAT || ds.Fwd == ipvs.FwdMasq {
		d.makeMasqIndex() // here, not on a worker at its first connection (lbmasq.go)
	}
	d.applied("destination added", zap.Stringer("service", k), zap.Stringer("dest", ds.Addr), zap.Int("weight", ds.Weight))
	return nil
}

// EditDest changes a destination (ipvsadm -e); weight 0 quiesces it.
func (d *Dataplane) EditDest(k ipvs.ServiceKey, ds ipvs.DestSpec) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	if err := d.ipvs.EditDest(k, ds); err != nil {
		return err
	}
	if ds.Fwd == ipvs.FwdMasq {
		d.makeMasqIndex()
	}
	d.applied("destination changed", zap.Stringer("service", k), zap.Stringer("dest", ds.Addr), zap.Int("weight", ds.Weight))
	return nil
}

// DelDest removes a destination (ipvsadm -d); its connections continue,
// or with expire end at their next packet.
func (d *Dataplane) DelDest(k ipvs.ServiceKey, a netip.AddrPort, expire bool) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	if err := d.ipvs.DelDest(k, a, expire); err != nil {
		return err
	}
	if k.Match != "" {
		d.unsteerLAddr(a.Addr()) // an SNAT address no service uses any more
	}
	d.applied("destination deleted", zap.Stringer("service", k), zap.Stringer("dest", a), zap.Bool("expire", expire))
	return nil
}

// AddLAddr adds a local address to a service; the address must be
// configured on the interface the operator names. Steering rules follow
// the commit; failing to install them is reported (dpip info), not an
// error: replies are then handed between workers in software.
func (d *Dataplane) AddLAddr(k ipvs.ServiceKey, la ipvs.LAddr) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	if la.Addr.Zone() != "" {
		return fmt.Errorf("local address %s of %s: a local address has no zone: drop it: %w", la.Addr, k, ipvs.ErrInvalid)
	}
	s := d.snap.Load()
	owner, ok := s.local.Get(la.Addr)
	ifc := s.iface(owner)
	if !ok || ifc == nil {
		return fmt.Errorf("local address %s of %s: not an address of the dataplane: add it first (dpip addr add %s/%d dev %s): %w",
			la.Addr, k, la.Addr, la.Addr.BitLen(), orDev(la.Iface), ipvs.ErrInvalid)
	}
	if la.Iface == "" {
		la.Iface = ifc.Name
	} else if ifc.Name != la.Iface {
		return fmt.Errorf("local address %s of %s: the address is on %s, not %s: %w", la.Addr, k, ifc.Name, la.Iface, ipvs.ErrInvalid)
	}
	if err := d.ipvs.AddLAddr(k, la); err != nil {
		return err
	}
	d.steerLAddr(la.Addr, ifc.Port)
	d.applied("local address added", zap.Stringer("service", k), zap.Stringer("laddr", la.Addr), zap.String("dev", la.Iface))
	return nil
}

// DelLAddr removes a local address from a service, and its steering rules
// once no service uses it.
func (d *Dataplane) DelLAddr(k ipvs.ServiceKey, a netip.Addr) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	if err := d.ipvs.DelLAddr(k, a); err != nil {
		return err
	}
	d.unsteerLAddr(a)
	d.applied("local address deleted", zap.Stringer("service", k), zap.Stringer("laddr", a))
	return nil
}

// steerLAddr installs rules sending replies to a's ports to their owner
// workers' queues: the port driver's own (rte_flow, portsteer.go) when it
// has them, else n-tuple rules on its kernel device. Without them (veth,
// NICs without n-tuple filters or rte_flow)
// the workers hand replies over in software: reported, not fatal.
func (d *Dataplane) steerLAddr(a netip.Addr, portIdx int) {
	if len(d.workers) < 2 {
		return
	}
	if d.opts.RSSPorts {
		d.rssPorts(a, portIdx)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, done := d.steerRules[a]; done {
		return
	}
	if ps, ok := d.ports[portIdx].Port.(portSteerer); ok && d.steerByPort(a, d.ports[portIdx].Port, ps) {
		return
	}
	dev, ok := d.ports[portIdx].Port.(interface{ Device() string })
	if !ok {
		d.steerStatus = "software redirect (" + d.ports[portIdx].Port.Name() + " has no kernel device)"
		return
	}
	rules, err := flowdir.Install(flowdir.RulesFor(dev.Device(), a, d.steer))
	if err != nil {
		d.steerStatus = "software redirect (" + err.Error() + ")"
		d.log.Warn("no hardware flow steering: replies are handed between workers in software",
			zap.String("laddr", a.String()), zap.Error(err))
		d.steerRules[a] = nil
		return
	}
	d.steerRules[a] = rules
	if d.steerStatus == "" {
		d.steerStatus = "hardware (n-tuple rules)"
	}
}

// rssPorts reads the RSS key and table of the device a's replies arrive
// on and has every worker choose a's ports so that replies hash onto the
// worker's own queue.
func (d *Dataplane) rssPorts(a netip.Addr, portIdx int) {
	f, ok, err := d.readRSS(d.ports[portIdx].Port)
	if !ok {
		return
	}
	if err != nil {
		d.log.Warn("RSS-aware port selection unavailable: ports by owner bits only", zap.String("laddr", a.String()), zap.Error(err))
		d.mu.Lock()
		d.rssStatus = "unavailable (" + err.Error() + ")"
		d.mu.Unlock()
		return
	}
	if err := d.runOnWorkers(func(w *Worker) { w.pool.SetRSS(a, f) }); err != nil {
		d.log.Warn("RSS-aware port selection", zap.Error(err))
		return
	}
	d.mu.Lock()
	d.rssStatus = "on"
	d.mu.Unlock()
}

func (d *Dataplane) unsteerLAddr(a netip.Addr) {
	if d.ipvs.Table().LAddrs.Has(a) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unsteerByPort(a)
	if rules := d.steerRules[a]; len(rules) > 0 {
		if err := flowdir.Remove(rules); err != nil {
			d.log.Warn("removing steering rules", zap.Error(err))
		}
	}
	delete(d.steerRules, a)
}

// Steering describes how replies reach their owner worker.
func (d *Dataplane) Steering() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case len(d.workers) < 2:
		return "single worker"
	case d.steerStatus == "":
		return "none needed yet (no local address)"
	}
	if d.opts.RSSPorts {
		return d.steerStatus + "; RSS-aware ports " + d.rssStatus
	}
	return d.steerStatus
}

func orDev(s string) string {
	if s == "" {
		return "DEV"
	}
	return s
}

// runOnWorkers runs f on every worker's own thread (directly when the
// workers are not running) and waits for all of them.
func (d *Dataplane) runOnWorkers(f func(w *Worker)) error {
	d.mu.Lock()
	running := d.running
	d.mu.Unlock()
	if !running {
		for _, w := range d.workers {
			f(w)
		}
		return nil
	}
	done := make(chan struct{}, len(d.workers))
	for _, w := range d.workers {
		select {
		case w.ctl <- func() { f(w); done <- struct{}{} }:
			w.wake()
		case <-time.After(2 * time.Second):
			return errors.New("dataplane: worker did not take the request: it may be stuck")
		}
	}
	for range d.workers {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			return errors.New("dataplane: worker did not answer")
		}
	}
	return nil
}

// Timeouts returns the connection timeouts in force.
func (d *Dataplane) Timeouts() session.Timeouts {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.timeouts
}

// SetTimeouts changes timeouts (ipvsadm --set); zero keeps a value.
func (d *Dataplane) SetTimeouts(tcp, tcpfin, udp time.Duration) error {
	return d.UpdateTimeouts(session.Timeouts{}.WithIPVSAdm(tcp, tcpfin, udp))
}

// UpdateTimeouts changes the timeouts of every state whose field in ch is
// not zero, on every worker, or none of them if one is invalid.
func (d *Dataplane) UpdateTimeouts(ch session.Timeouts) error {
	d.ctl.Lock() // the one mutation path (change.go)
	defer d.ctl.Unlock()
	to := d.Timeouts().Merge(ch)
	if err := to.Validate(); err != nil {
		return fmt.Errorf("timeouts: %w: %w", err, ipvs.ErrInvalid)
	}
	errs := make([]error, len(d.workers))
	if err := d.runOnWorkers(func(w *Worker) { errs[w.id] = w.sess.SetTimeouts(to) }); err != nil {
		return err
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("timeouts: %w: %w", err, ipvs.ErrInvalid)
	}
	d.mu.Lock()
	d.timeouts = to
	d.mu.Unlock()
	d.applied("timeouts set", zap.Duration("tcp", to.Established), zap.Duration("tcpfin", to.FinWait), zap.Duration("udp", to.UDP))
	return nil
}

// ConnCapacity returns the total connection capacity of all workers.
func (d *Dataplane) ConnCapacity() int {
	n := 0
	for _, w := range d.workers {
		n += w.sess.Capacity()
	}
	return n
}

// Traffic is a destination's (or service's) packet and byte counters.
type Traffic struct {
	InPkts, OutPkts, InBytes, OutBytes uint64
}

// Add adds o to t.
func (t *Traffic) Add(o Traffic) {
	t.InPkts += o.InPkts
	t.OutPkts += o.OutPkts
	t.InBytes += o.InBytes
	t.OutBytes += o.OutBytes
}

// DestTraffic sums destination id's counters over the workers, without
// stopping them.
func (d *Dataplane) DestTraffic(id uint32) Traffic {
	var t Traffic
	for _, w := range d.workers {
		p := w.lbPub.Load()
		if p == nil || int(id) >= len(*p) {
			continue
		}
		s := &(*p)[id]
		t.Add(Traffic{InPkts: s.inPkts.Load(), OutPkts: s.outPkts.Load(), InBytes: s.inBytes.Load(), OutBytes: s.outBytes.Load()})
	}
	return t
}
