package sched

// wrr is LVS weighted round robin, the interleaving algorithm of
// ip_vs_wrr.c, not nginx's "smooth" weighted round robin.
//
// The state is a cursor (the previous pick) and a current weight cw that
// steps down from the largest weight by the gcd of the weights: at each level
// the dests whose weight is >= cw are taken in list order; when the end of
// the list is reached cw drops by one step and the scan restarts at the head;
// below the last level cw goes back to the top. Over one cycle every dest is
// picked weight/gcd times. Weights 4, 3, 2 for A, B, C give
//
//	A A B A B C A B C
//
// (levels 4: A; 3: A B; 2: A B C; 1: A B C).
//
// Why LVS's sequence rather than the smooth one (A B A C A B A B C …):
// operators moving from LVS/DPVS get the same order and the same behaviour
// they have tuned for, and tests can be written against the known LVS
// sequences. The cost is burstiness within a cycle (the heaviest dest gets
// runs of picks at the top levels); with per-connection scheduling on many
// workers that is rarely visible, and wlc — the default — is the choice when
// load, not order, matters.
//
// Deviation, same sequence: LVS walks empty levels one by one (O(dests ×
// levels) when the heavy dests are overloaded). Here, after a full pass that
// found nothing, cw jumps to the highest level that the heaviest available
// dest reaches, which is where LVS's walk would find its next pick.
type wrr struct {
	dests []Dest
	last  int // index of the previous pick; -1 = restart at the head
	cw    int // current weight level
	mw    int // top level: the largest weight - (di - 1)
	di    int // step: gcd of the positive weights
}

func newWRR(ds []Dest) *wrr {
	s := &wrr{dests: ds, last: -1}
	s.di = weightGCD(ds)
	if s.di == 0 {
		return s // no dest with a weight: mw = 0, nothing is ever available
	}
	maxw := 0
	for i := range ds {
		maxw = max(maxw, ds[i].Weight)
	}
	s.mw = maxw - (s.di - 1)
	s.cw = s.mw
	return s
}

func (s *wrr) Name() string { return WRR }

// wrrPasses bounds the passes of one Pick. Without concurrent changes at most
// three are needed: the rest of the current level, one empty pass at the next
// level, the pass at the level the jump lands on. More only happen when other
// workers' connections make dests overloaded in the middle of a pick; giving
// up then (-1, the connection is refused and the client retries) is better
// than spinning on the packet path.
const wrrPasses = 6

func (s *wrr) Pick(*Flow) int {
	if s.mw == 0 {
		return -1
	}
	// A failed pick leaves the sequence where it was.
	last, cw := s.last, s.cw
	fromHead := s.last < 0
	for range wrrPasses {
		for j := s.last + 1; j < len(s.dests); j++ {
			d := &s.dests[j]
			if d.Weight >= s.cw && d.Available() {
				s.last = j
				return j
			}
		}
		s.last = -1
		if fromHead {
			// A whole pass at this level found nothing: no available dest
			// is as heavy as cw. Jump to the highest level the heaviest
			// available dest reaches. Weights are multiples of di and
			// mw ≡ 1 (mod di), so that level is top - di + 1.
			top := s.maxAvailable()
			if top == 0 {
				break
			}
			s.cw = top - s.di + 1
			continue
		}
		s.cw -= s.di
		if s.cw <= 0 {
			s.cw = s.mw
		}
		fromHead = true
	}
	s.last, s.cw = last, cw
	return -1
}

// maxAvailable returns the largest weight of an available dest, 0 if none is.
func (s *wrr) maxAvailable() int {
	top := 0
	for i := range s.dests {
		d := &s.dests[i]
		if d.Weight > top && d.Available() {
			top = d.Weight
		}
	}
	return top
}
