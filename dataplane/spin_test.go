package dataplane

import "testing"

// TestSpinPolicy walks the adaptive worker's spin limit through the two
// placements it tells apart: spins that end in sleep (the producer shares
// the worker's core) halve it down to minSpins; one spin that finds work
// (the producer runs elsewhere) restores it. Work found after a sleep says
// nothing about spinning and leaves it alone.
func TestSpinPolicy(t *testing.T) {
	s := spinPolicy{limit: idleSpinsToSleep}
	var want []int
	for n := idleSpinsToSleep / 2; n > minSpins; n /= 2 {
		want = append(want, n)
	}
	want = append(want, minSpins, minSpins, minSpins)
	if len(want) < 4 || minSpins < 2 {
		t.Fatalf("idleSpinsToSleep %d, minSpins %d: the walk below needs room to halve, and a floor that can see a spin pay", idleSpinsToSleep, minSpins)
	}
	for i, w := range want {
		s.sleeping()
		s.work(s.limit + 3) // woken from the sleep with work
		if s.limit != w {
			t.Fatalf("after %d fruitless spins: limit %d, want %d", i+1, s.limit, w)
		}
	}
	s.work(0) // busy loops back to back
	if s.limit != minSpins {
		t.Fatalf("work with no empty loop before it: limit %d, want %d", s.limit, minSpins)
	}
	s.work(minSpins - 1) // found on the last spin before the sleep
	if s.limit != idleSpinsToSleep {
		t.Fatalf("work found while spinning: limit %d, want %d", s.limit, idleSpinsToSleep)
	}
	s.sleeping()
	s.work(s.limit) // idle loops at the limit: the worker slept before this work
	if s.limit != idleSpinsToSleep/2 {
		t.Fatalf("work found after the sleep: limit %d, want %d", s.limit, idleSpinsToSleep/2)
	}
}
