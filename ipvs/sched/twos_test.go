package sched

import (
	"math/rand/v2"
	"testing"
)

// modelTWOS is ip_vs_twos_schedule step by step, drawing its two random
// numbers from r: total = the weights of dests not overloaded with a weight
// > 0; none → no dest; two draws in [0, total] (total+1 values); walk those
// dests in list order subtracting each weight from both draws, the first
// dest at which a draw reaches <= 0 is that draw's choice; the second
// choice wins if weight2·overhead1 > weight1·overhead2.
func modelTWOS(k *kstate, r *rand.PCG) int {
	total, choice1 := 0, -1
	for i := range k.w {
		if k.notOver(i) && k.w[i] > 0 {
			total += k.w[i]
			choice1 = i
		}
	}
	if choice1 < 0 {
		return -1
	}
	total++
	rw1 := int64(below(r, uint64(total)))
	rw2 := int64(below(r, uint64(total)))
	w1, w2, choice2 := -1, -1, -1
	var oh1, oh2 int64
	for i := range k.w {
		if !k.notOver(i) || k.w[i] <= 0 {
			continue
		}
		rw1 -= int64(k.w[i])
		rw2 -= int64(k.w[i])
		if rw1 <= 0 && w1 == -1 {
			choice1, w1, oh1 = i, k.w[i], k.overhead(i)
		}
		if rw2 <= 0 && w2 == -1 {
			choice2, w2, oh2 = i, k.w[i], k.overhead(i)
		}
		if w1 != -1 && w2 != -1 {
			break
		}
	}
	if choice2 >= 0 && int64(w2)*oh1 > int64(w1)*oh2 {
		choice1 = choice2
	}
	return choice1
}

func TestTWOSMatchesKernelModel(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for round := range 300 {
		k := randKState(r)
		ds := k.dests()
		s := mustNew(t, "twos", ds, Options{}).(*twos)
		seed1, seed2 := r.Uint64(), r.Uint64()
		s.rng.Seed(seed1, seed2)
		var mr rand.PCG
		mr.Seed(seed1, seed2)
		for pick := range 300 {
			want := modelTWOS(k, &mr)
			if got := s.Pick(&Flow{}); got != want {
				t.Fatalf("round %d pick %d: weights %v active %v inactive %v upper %v: got %d, want %d",
					round, pick, k.w, k.act, k.inact, k.upper, got, want)
			}
			k.churn(r, want)
			k.apply(ds)
		}
	}
}

// With equal loads the picks follow the weights (the first dest has one
// draw value more than its weight: 2/11 here instead of 1/10); with loads,
// the less loaded of two draws wins.
func TestTWOSDistribution(t *testing.T) {
	w := []int{1, 2, 3, 4}
	ds := mkDests(w...)
	s := mustNew(t, "twos", ds, Options{})
	counts := make([]int, 4)
	const n = 100_000
	for range n {
		counts[s.Pick(nil)]++
	}
	// each pick is the first draw when both draws tie on overhead (all 0):
	// dest 0 has 2 of 11 values, the others w of 11
	want := []float64{2.0 / 11, 2.0 / 11, 3.0 / 11, 4.0 / 11}
	for i := range w {
		if got := float64(counts[i]) / n; got < want[i]-0.01 || got > want[i]+0.01 {
			t.Errorf("idle: dest %d share %.4f, want %.4f ± 0.01 (counts %v)", i, got, want[i], counts)
		}
	}
	// steady load of 1000 connections: shares follow the weights
	checkLoadSharesTol(t, "twos", w, 0.02)
}

func BenchmarkTWOSPick(b *testing.B) { benchPick(b, "twos", Options{}) }
