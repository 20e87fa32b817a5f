package pktgen

// Retransmission timers without a heap: one FIFO per retry level. Every
// entry of level k was pushed with the same timeout (RTO·2^k), so each
// FIFO is ordered by deadline and only its head is ever examined. An entry
// names a connection slot and the connection's generation when it was
// armed; a connection that made progress since has a newer generation and
// the entry is dropped when it reaches the head.

type timerEntry struct {
	slot     int32
	gen      uint32
	deadline int64
}

// fifo is a growable ring of timer entries.
type fifo struct {
	buf        []timerEntry
	head, size int
}

func (f *fifo) push(e timerEntry) {
	if f.size == len(f.buf) {
		n := max(2*len(f.buf), 1024)
		nb := make([]timerEntry, n)
		for i := 0; i < f.size; i++ {
			nb[i] = f.buf[(f.head+i)%len(f.buf)]
		}
		f.buf, f.head = nb, 0
	}
	f.buf[(f.head+f.size)%len(f.buf)] = e
	f.size++
}

func (f *fifo) peek() (timerEntry, bool) {
	if f.size == 0 {
		return timerEntry{}, false
	}
	return f.buf[f.head], true
}

func (f *fifo) pop() {
	f.head = (f.head + 1) % len(f.buf)
	f.size--
}

// timerSet is the FIFOs of all retry levels.
type timerSet struct {
	levels []fifo
	rto    int64
}

func newTimerSet(rtoNs int64, retries int) timerSet {
	return timerSet{levels: make([]fifo, retries+1), rto: rtoNs}
}

// arm schedules slot (at generation gen) for its try-th retransmission.
func (t *timerSet) arm(slot int32, gen uint32, try int, now int64) {
	t.levels[try].push(timerEntry{slot: slot, gen: gen, deadline: now + t.rto<<uint(try)})
}

// expire calls fire for every entry whose deadline passed, with the entry
// and its level; fire re-arms what it retransmits.
func (t *timerSet) expire(now int64, fire func(e timerEntry, try int)) {
	for lvl := range t.levels {
		f := &t.levels[lvl]
		for {
			e, ok := f.peek()
			if !ok || e.deadline > now {
				break
			}
			f.pop()
			fire(e, lvl)
		}
	}
}

// seqLT compares TCP sequence numbers modulo 2^32.
func seqLT(a, b uint32) bool { return int32(a-b) < 0 }
