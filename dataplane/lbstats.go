package dataplane

// Service and destination statistics for ipvsadm --stats, --rate and -Z.
// Workers count packets and bytes per destination (lbStat); connections
// are counted in the service model. Here the master turns the sums into
// rates every two seconds with LVS's estimator (an exponentially weighted
// average, weight 1/4), and -Z is an offset subtracted on reading, so
// zeroing never touches the workers' counters.

import (
	"fmt"
	"slices"
	"sync"

	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/ipvs"
)

// estimateEvery is the master ticks (seconds) between two rate samples.
const estimateEvery = 2

// DestStats are a destination's (or a service's) counters and rates.
type DestStats struct {
	Conns uint64
	Traffic
	CPS, InPPS, OutPPS, InBPS, OutBPS uint64
}

func (s *DestStats) add(o DestStats) {
	s.Conns += o.Conns
	s.Traffic.Add(o.Traffic)
	s.CPS += o.CPS
	s.InPPS += o.InPPS
	s.OutPPS += o.OutPPS
	s.InBPS += o.InBPS
	s.OutBPS += o.OutBPS
}

type rateEst struct {
	last                              DestStats
	cps, inpps, outpps, inbps, outbps float64
}

type lbStatsState struct {
	mu   sync.Mutex
	zero map[uint32]DestStats // offsets set by ZeroStats
	est  map[uint32]*rateEst
	tick int
}

// rawDest returns a destination's cumulative counters.
func (d *Dataplane) rawDest(dst *ipvs.Dest) DestStats {
	return DestStats{Conns: dst.Stats.Conns.Load(), Traffic: d.DestTraffic(dst.ID)}
}

// estimate samples every destination's counters (called by the master
// once a second; it samples every estimateEvery calls).
func (d *Dataplane) estimate() {
	st := &d.destStats
	st.mu.Lock()
	defer st.mu.Unlock()
	st.tick++
	if st.tick%estimateEvery != 0 {
		return
	}
	if st.est == nil {
		st.est = map[uint32]*rateEst{}
	}
	seen := map[uint32]bool{}
	for id, dst := range d.ipvs.Table().Dests {
		seen[id] = true
		now := d.rawDest(dst)
		e := st.est[id]
		if e == nil {
			st.est[id] = &rateEst{last: now}
			continue
		}
		step := func(avg *float64, cur, last uint64) {
			r := float64(cur-last) / estimateEvery
			*avg += (r - *avg) / 4
		}
		step(&e.cps, now.Conns, e.last.Conns)
		step(&e.inpps, now.InPkts, e.last.InPkts)
		step(&e.outpps, now.OutPkts, e.last.OutPkts)
		step(&e.inbps, now.InBytes, e.last.InBytes)
		step(&e.outbps, now.OutBytes, e.last.OutBytes)
		e.last = now
	}
	for id := range st.est {
		if !seen[id] {
			delete(st.est, id)
			delete(st.zero, id)
		}
	}
}

// DestStatsOf returns a destination's counters since the last -Z and its
// current rates.
func (d *Dataplane) DestStatsOf(dst *ipvs.Dest) DestStats {
	s := d.rawDest(dst)
	st := &d.destStats
	st.mu.Lock()
	defer st.mu.Unlock()
	if z, ok := st.zero[dst.ID]; ok {
		s.Conns -= z.Conns
		s.InPkts -= z.InPkts
		s.OutPkts -= z.OutPkts
		s.InBytes -= z.InBytes
		s.OutBytes -= z.OutBytes
	}
	if e := st.est[dst.ID]; e != nil {
		s.CPS, s.InPPS, s.OutPPS = uint64(e.cps+0.5), uint64(e.inpps+0.5), uint64(e.outpps+0.5)
		s.InBPS, s.OutBPS = uint64(e.inbps+0.5), uint64(e.outbps+0.5)
	}
	return s
}

// ServiceStatsOf sums the statistics of a service's destinations,
// including removed ones still draining.
func (d *Dataplane) ServiceStatsOf(svc *ipvs.Service) DestStats {
	var total DestStats
	for _, dst := range svc.Dests {
		total.add(d.DestStatsOf(dst))
	}
	for _, dst := range d.ipvs.Table().Dests {
		if dst.Service == svc.ID && !slices.Contains(svc.Dests, dst) {
			total.add(d.DestStatsOf(dst))
		}
	}
	return total
}

// ZeroStats zeroes the counters of service k, or of every service when k
// is nil (ipvsadm -Z).
func (d *Dataplane) ZeroStats(k *ipvs.ServiceKey) error {
	d.ctl.Lock() // the one mutation path (change.go)
	defer d.ctl.Unlock()
	tbl := d.ipvs.Table()
	var svcID uint32
	if k != nil {
		svc := tbl.Service(*k)
		if svc == nil {
			return fmt.Errorf("service %s: %w", k, ipvs.ErrNoService)
		}
		svcID = svc.ID
	}
	st := &d.destStats
	for id, dst := range tbl.Dests {
		if k != nil && dst.Service != svcID {
			continue
		}
		raw := d.rawDest(dst)
		st.mu.Lock()
		if st.zero == nil {
			st.zero = map[uint32]DestStats{}
		}
		st.zero[id] = raw
		st.mu.Unlock()
	}
	if k != nil {
		d.applied("counters zeroed", zap.Stringer("service", k))
	} else {
		d.applied("counters zeroed", zap.String("service", "all"))
	}
	return nil
}
