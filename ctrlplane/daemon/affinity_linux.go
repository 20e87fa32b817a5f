package daemon

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/ctrlplane/config"
	"github.com/gvs-lb/gvs/internal/affinity"
)

// setAffinity pins every thread of the process to cpus (none: unchanged).
func setAffinity(cpus []int) error { return affinity.PinProcess(cpus) }

// cpusAllowed returns the CPUs the process may run on (for /state).
func cpusAllowed() []int { return affinity.Allowed() }

// checkHost refuses, before anything starts (and in --dry-run), what
// start-up would fail on: CPUs this process may not run on, a control
// socket path naming a file that is not a socket.
func checkHost(c *config.Config) error {
	var errs []error
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err == nil {
		for _, n := range c.CPUs {
			if !allowed.IsSet(n) {
				errs = append(errs, fmt.Errorf("cpus: CPU %d does not exist or is not allowed for this process (allowed: %v)", n, affinity.Allowed()))
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
