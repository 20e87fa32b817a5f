package pktgen

import (
	"math"
	"math/bits"
)

// Histogram records latencies in nanoseconds in log-linear buckets: values
// below 2^histSubBits ns are exact, larger ones fall in one of 2^histSubBits
// buckets per power of two (a relative error below 1/2^histSubBits, about
// 3% here). It is a fixed array: recording neither allocates nor locks, and
// the worker that owns a histogram is its only writer; Merge combines
// workers' histograms at the end.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits + 1) * histSub
)

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits // >= 1
	return e*histSub + int(v>>uint(e-1)&(histSub-1))
}

// histLow returns the smallest value of bucket i.
func histLow(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := i / histSub
	m := uint64(i%histSub) | histSub
	return m << uint(e-1)
}

// Record adds one sample; negative values (clock anomalies) count as 0.
func (h *Histogram) Record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	if h.n == 0 || ns < h.min {
		h.min = ns
	}
	if ns > h.max {
		h.max = ns
	}
	h.counts[histIndex(uint64(ns))]++
	h.n++
	h.sum += float64(ns)
}

// Count returns the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
}

// Quantile returns the value below which a fraction q of the samples lie
// (the lower bound of the bucket holding the q-th sample, clamped to the
// observed min and max); 0 without samples.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	if rank >= h.n {
		return h.max
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := int64(histLow(i))
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

// LatencySummary is a histogram's summary in microseconds.
type LatencySummary struct {
	Samples uint64  `json:"samples"`
	MinUs   float64 `json:"min_us"`
	MeanUs  float64 `json:"mean_us"`
	P50Us   float64 `json:"p50_us"`
	P90Us   float64 `json:"p90_us"`
	P99Us   float64 `json:"p99_us"`
	P999Us  float64 `json:"p999_us"`
	MaxUs   float64 `json:"max_us"`
}

// Summary returns the percentiles of h.
func (h *Histogram) Summary() LatencySummary {
	if h.n == 0 {
		return LatencySummary{}
	}
	us := func(ns int64) float64 { return math.Round(float64(ns)/10) / 100 }
	return LatencySummary{
		Samples: h.n,
		MinUs:   us(h.min),
		MeanUs:  math.Round(h.sum/float64(h.n)/10) / 100,
		P50Us:   us(h.Quantile(0.50)),
		P90Us:   us(h.Quantile(0.90)),
		P99Us:   us(h.Quantile(0.99)),
		P999Us:  us(h.Quantile(0.999)),
		MaxUs:   us(h.max),
	}
}
