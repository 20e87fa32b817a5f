package sched

import "math/rand/v2"

// kstate is the state the kernel's schedulers read, kept apart from the
// implementation: weights, active and inactive connections and connection
// thresholds per dest. The models in *_test.go decide from it alone; the
// tests copy it into Dests (apply) and compare.
//
// Thresholds are set with lower == upper, so that a dest is overloaded
// exactly when it holds upper connections or more (no hysteresis state to
// model).
type kstate struct {
	w      []int
	act    []int64
	inact  []int64
	upper  []uint32
	hasThr bool
}

// avail is the kernel's "weight > 0 and not IP_VS_DEST_F_OVERLOAD".
func (k *kstate) avail(i int) bool {
	if k.w[i] <= 0 {
		return false
	}
	return k.upper[i] == 0 || k.act[i]+k.inact[i] < int64(k.upper[i])
}

// notOver is "not IP_VS_DEST_F_OVERLOAD" alone.
func (k *kstate) notOver(i int) bool {
	return k.upper[i] == 0 || k.act[i]+k.inact[i] < int64(k.upper[i])
}

// overhead is ip_vs_dest_conn_overhead.
func (k *kstate) overhead(i int) int64 { return k.act[i]<<8 + k.inact[i] }

// randKState draws 1-8 dests with weights 0-6 (a third share factors),
// 0-12 active and 0-30 inactive connections and, for some, thresholds.
func randKState(r *rand.Rand) *kstate {
	n := 1 + r.IntN(8)
	k := &kstate{w: make([]int, n), act: make([]int64, n), inact: make([]int64, n), upper: make([]uint32, n)}
	for i := range n {
		k.w[i] = r.IntN(7)
		if r.IntN(3) == 0 {
			k.w[i] *= 10
		}
		k.act[i] = int64(r.IntN(13))
		k.inact[i] = int64(r.IntN(31))
		if r.IntN(4) == 0 {
			k.upper[i] = uint32(1 + r.IntN(40))
		}
	}
	return k
}

// dests builds Dests for k: thresholds set, counters applied.
func (k *kstate) dests() []Dest {
	ds := mkDests(k.w...)
	for i := range ds {
		ds[i].Upper, ds[i].Lower = k.upper[i], k.upper[i]
	}
	k.apply(ds)
	return ds
}

// apply copies k's counters into ds.
func (k *kstate) apply(ds []Dest) {
	for i := range ds {
		ds[i].C.Active.Store(k.act[i])
		ds[i].C.Inactive.Store(k.inact[i])
	}
}

// churn moves k like traffic would: the picked dest gets a new connection
// (active or not), and now and then connections end or go inactive.
func (k *kstate) churn(r *rand.Rand, picked int) {
	if picked >= 0 {
		if r.IntN(3) == 0 {
			k.inact[picked]++
		} else {
			k.act[picked]++
		}
	}
	if r.IntN(2) == 0 {
		i := r.IntN(len(k.w))
		switch {
		case k.act[i] > 0 && r.IntN(2) == 0:
			k.act[i]--
			k.inact[i]++
		case k.inact[i] > 0:
			k.inact[i]--
		}
	}
}
