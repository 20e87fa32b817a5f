package daemon

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/ctrlplane/config"
)

// setAffinity pins every thread of the process to cpus (none: unchanged).
// Threads the Go runtime creates later inherit the mask of the thread that
// creates them, which is pinned too.
func setAffinity(cpus []int) error {
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
			return fmt.Errorf("sched_setaffinity: %w (are these CPUs online and allowed? see /sys/devices/system/cpu/online)", err)
		}
	}
	return nil
}

// affinity returns the calling thread's CPUs (for /state).
func affinity() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var out []int
	for i := 0; i < 1024; i++ {
		if set.IsSet(i) {
			out = append(out, i)
		}
	}
	return out
}

// checkHost refuses, before anything starts (and in --dry-run), what
// start-up would fail on: CPUs this process may not run on, a control
// socket path naming a file that is not a socket.
func checkHost(c *config.Config) error {
	var errs []error
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err == nil {
		for _, n := range c.CPUs {
			if !allowed.IsSet(n) {
				errs = append(errs, fmt.Errorf("cpus: CPU %d does not exist or is not allowed for this process (allowed: %v)", n, affinity()))
			}
		}
	}
	if s := c.Control.Socket; s != "off" {
		if st, err := os.Lstat(s); err == nil && st.Mode()&os.ModeSocket == 0 {
			errs = append(errs, fmt.Errorf("control.socket %s: exists and is not a socket: choose a free path or remove the file", s))
		}
	}
	return errors.Join(errs...)
}
