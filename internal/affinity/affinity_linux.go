// Package affinity pins a whole process to CPUs: every thread it has now
// (threads the Go runtime starts later inherit the mask of the thread that
// starts them).
package affinity

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// PinProcess sets the affinity of every thread of the process to cpus; a
// thread that exits meanwhile (ESRCH) is skipped.
func PinProcess(cpus []int) error {
	if len(cpus) == 0 {
		return nil
	}
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("sched_setaffinity %v: %w (are these CPUs online and allowed? see /sys/devices/system/cpu/online)", cpus, err)
		}
	}
	return nil
}

// Allowed returns the CPUs this process may run on.
func Allowed() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var out []int
	for i := 0; i < len(set)*64; i++ {
		if set.IsSet(i) {
			out = append(out, i)
		}
	}
	return out
}
