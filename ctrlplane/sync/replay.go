package sync

// Replay protection. Every authenticated message carries its sender's id,
// a sequence number and a timestamp. A sender starts its sequence at its
// start time in nanoseconds and counts up by one per message, so a
// restarted sender continues above what it sent before. A receiver keeps,
// per sender, the highest sequence accepted and a 64-message window below
// it (messages may be reordered a little, never accepted twice), and
// refuses messages whose timestamp is further than MaxSkew from its clock
// (what a window forgets, the timestamp bounds). The sender table holds at
// most a configured number of senders; entries are only made for
// authenticated messages, so only key holders can fill it, and the least
// recently heard sender is forgotten first.

import (
	"errors"
	"time"
)

// Errors of Window.Check.
var (
	ErrReplay = errors.New("sync message replayed")
	ErrStale  = errors.New("sync message timestamp out of the accepted skew")
)

const windowBits = 64

type senderState struct {
	top  uint64 // highest sequence accepted
	mask uint64 // bit i: top-i accepted
	seen time.Time
}

// Window is the replay state of all senders. Not safe for concurrent use.
type Window struct {
	max     int
	skew    time.Duration
	senders map[uint32]*senderState
}

// NewWindow keeps at most maxSenders senders and accepts timestamps within
// skew of the local clock.
func NewWindow(maxSenders int, skew time.Duration) *Window {
	if maxSenders < 1 {
		maxSenders = 1
	}
	return &Window{max: maxSenders, skew: skew, senders: map[uint32]*senderState{}}
}

// Len returns the number of senders known.
func (w *Window) Len() int { return len(w.senders) }

// Check accepts (and records) message seq of sender at timestamp ts, seen
// at now; it returns ErrReplay or ErrStale otherwise.
func (w *Window) Check(sender uint32, seq uint64, ts, now time.Time) error {
	if d := now.Sub(ts); d > w.skew || d < -w.skew {
		return ErrStale
	}
	s := w.senders[sender]
	if s == nil {
		if len(w.senders) >= w.max {
			var oldest uint32
			var at time.Time
			first := true
			for id, o := range w.senders {
				if first || o.seen.Before(at) {
					oldest, at, first = id, o.seen, false
				}
			}
			delete(w.senders, oldest)
		}
		w.senders[sender] = &senderState{top: seq, mask: 1, seen: now}
		return nil
	}
	switch {
	case seq > s.top:
		if d := seq - s.top; d >= windowBits {
			s.mask = 1
		} else {
			s.mask = s.mask<<d | 1
		}
		s.top = seq
	case s.top-seq >= windowBits:
		return ErrReplay // too old to tell: refused
	default:
		bit := uint64(1) << (s.top - seq)
		if s.mask&bit != 0 {
			return ErrReplay
		}
		s.mask |= bit
	}
	s.seen = now
	return nil
}
