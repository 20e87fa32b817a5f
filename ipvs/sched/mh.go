package sched

import (
	"fmt"
	"slices"
)

// mh is Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016, §3.4), as LVS's mh scheduler
// uses it: a lookup table of prime size M whose slots hold dests, indexed by
// a hash of the flow's source address (and source port with Options.Port,
// LVS mh-port).
//
// Populate (the paper's algorithm): each dest has a permutation of the slots,
// offset = h1(dest) mod M, skip = h2(dest) mod (M-1) + 1, slot j = (offset +
// j·skip) mod M (a permutation because M is prime). Dests take turns claiming
// the next slot of their permutation that is still free until the table is
// full. Removing a dest frees its slots and, since the others' permutations do
// not change, they mostly keep theirs: about 1/N of the flows move, nearly all
// of them the removed dest's.
//
// Weights: LVS gives each dest weight/gcd turns per round (scaled down when
// large), which leaves the shares off by up to a round's worth of slots.
// Here the number of slots of each dest is apportioned first (the floor or
// the ceiling of its quota M·w/W, at least one) and the claims are paced to
// reach those numbers together (see populate): shares are exact to a slot for
// any weights and any M, and with equal weights the fill is the paper's round
// robin but for the order within a round. A quiescent dest (weight 0) owns no
// slot (LVS keeps placing it by its last weight; here the table is a pure
// function of the set of weighted dests, so restoring the weight restores the
// exact previous table).
//
// Dests take their turns in the order of their addresses, not in list order
// (LVS uses list order): the table then depends only on the dests and their
// weights, so every worker and every appliance builds the same one whatever
// order the configuration lists the dests in.
//
// Fallback (LVS mh-fallback): when the slot's dest is unavailable, try other
// slots until one holds an available dest. As LVS, each try rehashes the
// source with another seed (probeHash), so the flows of an unavailable dest
// spread over the others in proportion to their shares (walking to the next
// slot would not: a slot's neighbours' owners are correlated through the
// permutations). After fallbackProbes misses the walk checks that some dest
// is available at all and, if so, goes through the table slot by slot.
//
// The table is built in New and only read afterwards: an mh instance has no
// per-pick state, so one instance may be shared by all workers.
type mh struct {
	dests    []Dest
	table    []uint16 // dest index per slot; nil when no dest has a weight
	m        uint64
	fallback bool
	port     bool
}

// Maglev table sizes.
const (
	// DefaultTableSize is the default M (LVS's mh default is 4093). Shares
	// are whole slots, so M well above N keeps them close to the weights;
	// the Maglev paper advises M > 100·N.
	DefaultTableSize = 65537
	// MinTableSize is the smallest M accepted (LVS's smallest choice).
	MinTableSize = 251
	// MaxTableSize bounds M (2 MiB of table per instance).
	MaxTableSize = 1 << 20
	// maxMHDests bounds the dests of one mh service: slots hold uint16
	// indexes and 0xffff marks a free slot while populating.
	maxMHDests = 0xffff
	mhFree     = 0xffff
)

func newMH(ds []Dest, o Options) (*mh, error) {
	m := o.TableSize
	if m == 0 {
		m = DefaultTableSize
	}
	switch {
	case m < MinTableSize || m > MaxTableSize:
		return nil, fmt.Errorf("scheduler mh: table size %d out of range %d-%d (default %d)", m, MinTableSize, MaxTableSize, DefaultTableSize)
	case !isPrime(m):
		return nil, fmt.Errorf("scheduler mh: table size %d is not a prime: use a prime such as %d", m, nextPrime(m))
	case len(ds) > maxMHDests:
		return nil, fmt.Errorf("scheduler mh: %d dests, at most %d", len(ds), maxMHDests)
	}
	s := &mh{dests: ds, m: uint64(m), fallback: o.Fallback, port: o.Port}

	// The weighted dests, in address order.
	order := make([]int, 0, len(ds))
	for i := range ds {
		if ds[i].Weight > 0 {
			order = append(order, i)
		}
	}
	if len(order) == 0 {
		return s, nil
	}
	if len(order) > m {
		return nil, fmt.Errorf("scheduler mh: table size %d is smaller than the %d weighted dests: use a prime above %d", m, len(order), 100*len(order))
	}
	slices.SortFunc(order, func(a, b int) int { return ds[a].Addr.Compare(ds[b].Addr) })
	s.table = populate(ds, order, m)
	return s, nil
}

// populate fills a table of m slots with the dests of order (indexes into
// ds, all with weight > 0, no more than m): Maglev's permutations, with the
// number of slots of each dest fixed in advance by apportion and the claims
// paced to match.
//
// Each claim goes to the dest whose next claim is due first, the c-th claim
// (from 0) of a dest with a target of t slots being due at (2c+1)/(2t), i.e.
// evenly through the fill; ties go to the earlier dest in order, and a dest
// stops claiming at its target. With equal targets this is the paper's round
// robin (M being prime, targets are equal only up to one slot, and the dests
// with one slot more go first in each round).
func populate(ds []Dest, order []int, m int) []uint16 {
	mm := uint64(m)
	target := apportion(ds, order, m)
	k := len(order)
	next := make([]uint64, k) // per position in order: next slot to try
	skip := make([]uint64, k)
	claims := make([]uint64, k)
	for p, i := range order {
		a := ds[i].Addr
		next[p] = hashAddrPort(seedOffset, a.Addr(), a.Port()) % mm
		skip[p] = hashAddrPort(seedSkip, a.Addr(), a.Port())%(mm-1) + 1
	}
	// A min-heap of positions by due time, compared as
	// (2c_a+1)·t_b < (2c_b+1)·t_a (< 2^21 · 2^20: no overflow).
	before := func(a, b int) bool {
		x, y := (2*claims[a]+1)*target[b], (2*claims[b]+1)*target[a]
		return x < y || x == y && a < b
	}
	heap := make([]int, k)
	for p := range heap {
		heap[p] = p
	}
	down := func(j int) {
		for {
			l, r, least := 2*j+1, 2*j+2, j
			if l < k && before(heap[l], heap[least]) {
				least = l
			}
			if r < k && before(heap[r], heap[least]) {
				least = r
			}
			if least == j {
				return
			}
			heap[j], heap[least] = heap[least], heap[j]
			j = least
		}
	}
	for j := k/2 - 1; j >= 0; j-- {
		down(j)
	}

	table := make([]uint16, m)
	for c := range table {
		table[c] = mhFree
	}
	for range m { // the targets add up to m: the heap empties with the table full
		p := heap[0]
		c := next[p]
		for table[c] != mhFree {
			if c += skip[p]; c >= mm {
				c -= mm
			}
		}
		table[c] = uint16(order[p])
		if c += skip[p]; c >= mm {
			c -= mm
		}
		next[p] = c
		if claims[p]++; claims[p] == target[p] {
			k--
			heap[0] = heap[k]
		}
		down(0)
	}
	return table
}

// apportion divides m slots among the dests of order in proportion to their
// weights by the largest-remainder method: each dest gets the floor or the
// ceiling of its quota m·w/W (W the sum of the weights), except that a dest
// whose quota is below one slot still gets one, which the dests with the
// largest targets then give back. Needs len(order) <= m.
func apportion(ds []Dest, order []int, m int) []uint64 {
	k := len(order)
	target := make([]uint64, k)
	rem := make([]uint64, k)
	var total, sum uint64
	for _, i := range order {
		total += uint64(ds[i].Weight)
	}
	for p, i := range order {
		q := uint64(m) * uint64(ds[i].Weight)
		target[p], rem[p] = q/total, q%total
		if target[p] == 0 {
			target[p], rem[p] = 1, 0 // already above its quota
		}
		sum += target[p]
	}
	byRem := make([]int, k)
	for p := range byRem {
		byRem[p] = p
	}
	if sum < uint64(m) {
		// Fewer than k slots are left (the remainders add up to less than k
		// quotas' worth); they go to the largest remainders.
		slices.SortStableFunc(byRem, func(a, b int) int { return cmpDesc(rem[a], rem[b]) })
		for j := 0; sum < uint64(m); j++ {
			target[byRem[j]]++
			sum++
		}
	}
	if sum > uint64(m) {
		// Dests raised to one slot pushed the sum over m: the largest
		// targets give back one slot each, in turn, as often as needed
		// (sum - m <= sum - k = the slots above one per dest).
		slices.SortStableFunc(byRem, func(a, b int) int { return cmpDesc(target[a], target[b]) })
		for j := 0; sum > uint64(m); j = (j + 1) % k {
			if p := byRem[j]; target[p] > 1 {
				target[p]--
				sum--
			}
		}
	}
	return target
}

func cmpDesc(a, b uint64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

func (s *mh) Name() string { return MH }

func (s *mh) Pick(f *Flow) int {
	if s.table == nil {
		return -1
	}
	var port uint16
	if s.port {
		port = f.SrcPort
	}
	// Map the top 32 bits of the hash onto [0, M) by multiplication
	// (Lemire's reduction), cheaper than a division.
	c := (hashAddrPort(seedFlow, f.Src, port) >> 32) * s.m >> 32
	if i := int(s.table[c]); s.dests[i].Available() {
		return i
	}
	if !s.fallback {
		return -1
	}
	for k := 1; k <= fallbackProbes; k++ {
		c = (probeHash(k, f.Src, port) >> 32) * s.m >> 32
		if i := int(s.table[c]); s.dests[i].Available() {
			return i
		}
	}
	// Walking the whole table to learn that no dest is available would cost
	// M checks on the packet path: check the dests first. Every weighted
	// dest owns a slot, so if one is available the walk finds it.
	if !s.anyAvailable() {
		return -1
	}
	for k := uint64(1); k < s.m; k++ {
		if c++; c == s.m {
			c = 0
		}
		if i := int(s.table[c]); s.dests[i].Available() {
			return i
		}
	}
	return -1
}

func (s *mh) anyAvailable() bool {
	for i := range s.dests {
		if s.dests[i].Available() {
			return true
		}
	}
	return false
}
