package main

// The synproxy cell (bench/run.sh synproxy_rep): per repetition, on one
// running GVS with its TCP service under the SYN proxy (-j enable):
//
//	synp-udp    its UDP forwarding rate, as the udp cell measures it
//	synp-flood  gvs-pktgen syn from random sources at the SYN-proxy
//	            service: SYN-ACKs back at the generator per second (and
//	            the dataplane's counters over the cell, raw/….dp)
//	synp-base   an established UDP stream alone (udp mode, paced)
//	synp-mixed  the same stream during the same flood
//
// Ratios are taken within a repetition (same run, same placement) and
// their medians reported, next to the medians of the rates themselves.

import (
	"fmt"
	"path/filepath"

	"github.com/gvs-lb/gvs/pktgen"
)

// synpRep is one repetition's numbers.
type synpRep struct {
	udp, cookies, offered    float64 // pps
	gvsCookies, genSynAcks   float64 // whole-cell totals
	base, during, duringSyn  float64 // pps
	streamLoss, baseLoss     float64 // percent
	synAckP99, baseP99, p99  float64 // µs
	hasStream, hasCrossCheck bool
}

func (d *data) synpReps(place, sys string) []synpRep {
	find := func(test string, rep int) *cell {
		for _, c := range d.cells {
			if c.place == place && c.sys == sys && c.test == test && c.rep == rep && !c.failed && c.res != nil {
				return c
			}
		}
		return nil
	}
	var out []synpRep
	for rep := 1; rep <= 100; rep++ {
		u, f := find("synp-udp", rep), find("synp-flood", rep)
		if u == nil || f == nil {
			if rep > d.reps {
				break
			}
			continue
		}
		r := synpRep{udp: u.res.ArrivedPPS, cookies: f.res.SynAckPPS, offered: f.res.OfferedPPS,
			genSynAcks: float64(f.res.Client["rx_synack"]), synAckP99: f.res.OneWay.P99Us}
		dp := readKV(filepath.Join(d.dir, "raw", fmt.Sprintf("%s-%s-synp-flood-%d.dp", place, sys, rep)))
		if v, ok := dp["lb_synproxy_cookies"]; ok {
			r.gvsCookies, r.hasCrossCheck = v, true
		}
		b, m := find("synp-base", rep), find("synp-mixed", rep)
		if b != nil && m != nil && m.res.Stream != nil {
			r.hasStream = true
			r.base, r.baseLoss, r.baseP99 = b.res.ArrivedPPS, b.res.LossPct, b.res.OneWay.P99Us
			r.during, r.streamLoss, r.p99 = m.res.Stream.RxPPS, m.res.Stream.LossPct, m.res.Stream.Latency.P99Us
			r.duringSyn = m.res.SynAckPPS
		}
		out = append(out, r)
	}
	return out
}

// synproxySection writes the synproxy cell's table for every system that
// ran it in the separate-core placement.
func (d *data) synproxySection(w func(string, ...any)) {
	first := true
	for _, s := range systems {
		reps := d.synpReps("sep", s.id)
		if len(reps) == 0 {
			continue
		}
		if first {
			w("## SYN flood at a SYN-proxy service (synproxy cell)\n\n")
			w("Per repetition, on one running GVS whose TCP service has `-j enable`: its UDP forwarding rate (the udp cell's method); ")
			w("`gvs-pktgen syn` from random sources (every address of 172.16.0.0/16, random ports) at the SYN-proxy service, ")
			w("counting the SYN-ACKs (SYN cookies) that come back to the generator's port; an established UDP stream (1024 flows, ")
			w("a tenth of that repetition's UDP rate, paced) alone and during the same flood. Ratios are taken within each repetition; ")
			w("the medians of the ratios are shown. The cookie count of the dataplane (`lb_synproxy_cookies`, whole cell) is set against ")
			w("the SYN-ACKs the generator received (whole cell).\n\n")
			first = false
		}
		var udp, ck, off, rat, xc, p99 []float64
		var base, dur, durSyn, sr, loss, bp99, sp99 []float64
		for _, r := range reps {
			udp, ck, off, p99 = append(udp, r.udp), append(ck, r.cookies), append(off, r.offered), append(p99, r.synAckP99)
			if r.udp > 0 {
				rat = append(rat, r.cookies/r.udp)
			}
			if r.hasCrossCheck && r.gvsCookies > 0 {
				xc = append(xc, r.genSynAcks/r.gvsCookies)
			}
			if r.hasStream {
				base, dur, durSyn = append(base, r.base), append(dur, r.during), append(durSyn, r.duringSyn)
				loss, bp99, sp99 = append(loss, r.streamLoss), append(bp99, r.baseP99), append(sp99, r.p99)
				if r.base > 0 {
					sr = append(sr, r.during/r.base)
				}
			}
		}
		ratio := summarize(rat)
		verdict := "**not met**"
		if ratio.ok() && ratio.med >= 0.8 {
			verdict = "met"
		}
		w("**%s** (%d repetitions)\n\n| measure | median [min–max] |\n|---|---|\n", s.label, len(reps))
		w("| (a) UDP forwarded, Mpps | %s |\n", fmtRate(summarize(udp), 1e6, 3))
		w("| (b) SYN cookies answered (SYN-ACKs at the generator), Mpps | %s |\n", fmtRate(summarize(ck), 1e6, 3))
		w("| flood offered (SYNs the generator sent), Mpps | %s |\n", fmtRate(summarize(off), 1e6, 3))
		w("| **(b) ÷ (a)** (issue target ≥ 0.8) | %s — %s |\n", fmtRate(ratio, 1, 2), verdict)
		w("| SYN → SYN-ACK round trip p99, µs (under the flood) | %s |\n", fmtRate(summarize(p99), 1, 0))
		w("| SYN-ACKs received ÷ `lb_synproxy_cookies` (whole cell) | %s |\n", fmtRate(summarize(xc), 1, 3))
		if len(base) > 0 {
			w("| (c) established stream alone, kpps | %s |\n", fmtRate(summarize(base), 1e3, 1))
			w("| (c) the same stream during the flood, kpps | %s |\n", fmtRate(summarize(dur), 1e3, 1))
			w("| **(c) during ÷ alone** | %s |\n", fmtRate(summarize(sr), 1, 2))
			w("| stream loss during the flood, %% | %s |\n", fmtRate(summarize(loss), 1, 2))
			w("| stream one-way p99 alone / during the flood, µs | %s / %s |\n", fmtRate(summarize(bp99), 1, 0), fmtRate(summarize(sp99), 1, 0))
			w("| SYN cookies answered during the mixed cell, Mpps | %s |\n", fmtRate(summarize(durSyn), 1e6, 3))
		}
		w("\n")
	}
}

// synpCellResult is a flood cell's line in the list of cells.
func synpCellResult(r *pktgen.Result) string {
	s := fmt.Sprintf("%.3f Mpps SYN-ACKs of %.3f Mpps SYNs offered", r.SynAckPPS/1e6, r.OfferedPPS/1e6)
	if st := r.Stream; st != nil {
		s += fmt.Sprintf("; stream %.1f of %.1f kpps", st.RxPPS/1e3, st.TxPPS/1e3)
	}
	return s
}
