package dataplane

// Gauges of the IPVS stage's per-worker state: how full each connection
// table is and how many local ports each local address has left. Both are
// read from atomics the workers store (the table publishes its counters
// once per loop, the pool after every Get and Put), never by stopping or
// messaging a worker, so a scrape costs the workers nothing.

import (
	"net/netip"
	"slices"

	"github.com/gvs-lb/gvs/flowdir"
)

// WorkerLBUsage is one worker's connection table fill and local ports.
type WorkerLBUsage struct {
	Worker       int
	Conns        int // as of the worker's last loop
	ConnCapacity int
	// HighWater is the fill at and above which the table is under
	// pressure (lbpressure.go); Pressure tells whether it is (as of the
	// worker's last loop).
	HighWater int
	Pressure  bool
	// LAddrs has every local address of a service and every one still
	// holding ports on this worker, sorted.
	LAddrs []flowdir.AddrUsage
}

// LBUsage returns every worker's usage.
func (d *Dataplane) LBUsage() []WorkerLBUsage {
	var configured []netip.Addr
	d.ipvs.Table().LAddrs.All(func(a netip.Addr, _ struct{}) bool {
		configured = append(configured, a)
		return true
	})
	out := make([]WorkerLBUsage, len(d.workers))
	for i, w := range d.workers {
		u := WorkerLBUsage{Worker: i, Conns: int(w.sess.Published().Conns), ConnCapacity: w.sess.Capacity(),
			HighWater: w.sess.HighWater(), LAddrs: w.pool.Usage()}
		u.Pressure = u.HighWater > 0 && u.Conns >= u.HighWater
		for _, a := range configured {
			if !slices.ContainsFunc(u.LAddrs, func(x flowdir.AddrUsage) bool { return x.Addr == a }) {
				u.LAddrs = append(u.LAddrs, flowdir.AddrUsage{Addr: a, PortsPerServer: w.pool.PortsPerServer()})
			}
		}
		slices.SortFunc(u.LAddrs, func(a, b flowdir.AddrUsage) int { return a.Addr.Compare(b.Addr) })
		out[i] = u
	}
	return out
}
