package pktgen

import (
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Clock reads the monotonic clock as nanoseconds since the clock was made.
// Senders stamp packets and receivers compute latency with the same Clock,
// so one-way latency needs no clock synchronisation: both run in one
// process on one host.
type Clock struct{ base time.Time }

// NewClock returns a clock starting at zero now.
func NewClock() Clock { return Clock{base: time.Now()} }

// Now returns the nanoseconds elapsed since NewClock.
func (c Clock) Now() int64 { return int64(time.Since(c.base)) }

// PinThread locks the calling goroutine to its OS thread and, if cpu >= 0,
// the thread to that CPU (sched_setaffinity); rtPrio > 0 makes the thread
// SCHED_FIFO at that priority. The goroutine keeps the thread until it
// exits.
func PinThread(cpu, rtPrio int) error {
	runtime.LockOSThread()
	if cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pin thread to CPU %d: %w", cpu, err)
		}
	}
	if rtPrio > 0 {
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: 1 /* SCHED_FIFO */, Priority: uint32(rtPrio)}
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			return fmt.Errorf("SCHED_FIFO priority %d: %w", rtPrio, err)
		}
	}
	return nil
}
