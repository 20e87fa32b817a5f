package pktgen

// Throughput search (RFC 2544 style) for the stateless modes: the highest
// offered rate a system forwards with at most LossTolerance loss. Under
// overload a userspace forwarder on veth forwards less than its capacity
// (the kernel spends the CPU on packets that are dropped later), and how
// much less swings from run to run; the loss-free rate is the stable
// number. Each trial offers a fixed rate for SearchTrial, stops, waits for
// the packets in flight, and compares exactly what was sent with what
// arrived. The first trial runs unpaced: what arrives then is the
// overload rate, and the generator's own maximum bounds the search.

import (
	"math"
	"time"
)

// trialDrain is how long a trial waits for packets in flight; queues of a
// few thousand packets drain in milliseconds at these rates.
const trialDrain = 100 * time.Millisecond

// SearchResult is the outcome of a throughput search.
type SearchResult struct {
	// ThroughputPPS is the highest rate forwarded within the tolerance.
	ThroughputPPS float64 `json:"throughput_pps"`
	// OverloadPPS is what arrived per second while the generator ran
	// unpaced, and GeneratorPPS what it sent then.
	OverloadPPS   float64 `json:"overload_pps"`
	GeneratorPPS  float64 `json:"generator_pps"`
	LossTolerance float64 `json:"loss_tolerance_pct"`
	Trials        []Trial `json:"trials"`
}

// Trial is one offered rate.
type Trial struct {
	RatePPS    float64 `json:"rate_pps"` // 0: unpaced
	SentPPS    float64 `json:"sent_pps"`
	ArrivedPPS float64 `json:"arrived_pps"`
	Sent       uint64  `json:"sent"`
	Arrived    uint64  `json:"arrived"`
	LossPct    float64 `json:"loss_pct"`
}

// trial offers rate (0: unpaced) for d and returns what happened, with
// the snapshots at its start and at its end.
func (r *runner) trial(rate float64, d time.Duration) (Trial, [2]snapshot) {
	r.rate.Store(math.Float64bits(rate))
	r.rateEpoch.Add(1)
	a := r.snap()
	r.paused.Store(false)
	time.Sleep(d)
	r.paused.Store(true)
	b := r.snap()
	time.Sleep(trialDrain)
	c := r.snap()
	dt := float64(b.at-a.at) / 1e9
	t := Trial{RatePPS: rate, Sent: b.c[CtrTxPackets] - a.c[CtrTxPackets], Arrived: c.arrived - a.arrived}
	t.SentPPS = float64(t.Sent) / dt
	t.ArrivedPPS = float64(t.Arrived) / dt
	if t.Sent > 0 && t.Sent > t.Arrived {
		t.LossPct = 100 * float64(t.Sent-t.Arrived) / float64(t.Sent)
	}
	return t, [2]snapshot{a, b}
}

// search runs the trials and fills res.Search.
func (r *runner) search(res *Result) {
	cfg := &r.cfg
	s := &SearchResult{LossTolerance: cfg.LossTolerance}
	// warm up (ARP, balancer state for every flow), then the unpaced trial
	r.trial(0, cfg.Warmup)
	top, win := r.trial(0, cfg.SearchTrial)
	res.window = win
	s.Trials = append(s.Trials, top)
	try := func(rate float64) Trial {
		t, _ := r.trial(rate, cfg.SearchTrial)
		s.Trials = append(s.Trials, t)
		return t
	}
	s.OverloadPPS, s.GeneratorPPS = top.ArrivedPPS, top.SentPPS
	lo, hi := 0.0, top.SentPPS
	if top.LossPct <= cfg.LossTolerance {
		// the system kept up with the generator: that is the answer
		lo = top.SentPPS
	} else {
		lo = 0.5 * top.ArrivedPPS
		t := try(lo)
		for t.LossPct > cfg.LossTolerance && lo > 1000 {
			hi, lo = lo, lo/2
			t = try(lo)
		}
		if t.LossPct > cfg.LossTolerance {
			lo = 0
		} else {
			lo = t.SentPPS
		}
		for i := 0; i < cfg.SearchSteps && hi-lo > 0.01*hi; i++ {
			mid := searchMid(lo, hi)
			if t := try(mid); t.LossPct <= cfg.LossTolerance {
				lo = max(t.SentPPS, lo)
			} else {
				hi = mid
			}
		}
	}
	s.ThroughputPPS = lo
	// latency at the throughput rate, not under overload
	if lo > 0 {
		r.histEpoch.Add(1)
		time.Sleep(10 * time.Millisecond)
		try(lo)
	}
	res.Search = s
}

// searchMid is the next rate to try between a passing lo and a failing
// hi: the geometric mean while they are more than 4× apart, else the
// middle. A system that collapses under overload forwards far less
// unpaced than it can take paced, so lo starts far below its capacity;
// halving the ratio instead of the distance reaches it in a few steps.
func searchMid(lo, hi float64) float64 {
	if lo > 0 && hi > 4*lo {
		return math.Sqrt(lo * hi)
	}
	return (lo + hi) / 2
}
