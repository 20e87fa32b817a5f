package daemon

// Check refuses, before anything is opened, what start-up would refuse:
// the file's own validation, CPUs that this process cannot run on, memory
// the connection tables would not fit in, and the interface model
// (duplicate addresses or VLAN ids, off-link gateways, routes equal to a
// connected prefix, multicast neighbours…) built by the same control
// methods start-up uses, on in-memory ports.

import (
	"bufio"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"os"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/config"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
)

// connBytes is what one connection costs in a worker's table (the slab
// entry and its share of the index), as the session package asserts.
const connBytes = 128

// Check validates c as gvs-dataplane --check does; Start runs the same
// checks (the model by building it for real).
func Check(c *config.Config) error {
	if err := checkHost(c); err != nil {
		return err
	}
	return checkModel(c)
}

// checkHost checks the CPUs and the memory the configuration asks for.
func checkHost(c *config.Config) error {
	var errs []error
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err == nil {
		for i, core := range c.Workers.Cores {
			if core >= 0 && !allowed.IsSet(core) {
				errs = append(errs, fmt.Errorf("workers.cores[%d]: CPU %d does not exist or is not allowed for this process (allowed: %s)",
					i, core, cpuList(&allowed)))
			}
		}
		for i, core := range c.Workers.MasterCores {
			if core < 0 || !allowed.IsSet(core) {
				errs = append(errs, fmt.Errorf("workers.master_cores[%d]: CPU %d does not exist or is not allowed for this process (allowed: %s)",
					i, core, cpuList(&allowed)))
			}
		}
	}
	if need, avail, ok := memoryNeed(c); ok && need > avail {
		errs = append(errs, fmt.Errorf("ipvs.conn_capacity: %d workers × %d connections need %d MiB of connection tables, but only %d MiB of memory is available: lower ipvs.conn_capacity or workers.count",
			c.Workers.Count, c.IPVS.ConnCapacity, need>>20, avail>>20))
	}
	return errors.Join(errs...)
}

func cpuList(s *unix.CPUSet) string {
	var out []string
	for i := 0; i < len(s)*64; i++ {
		if s.IsSet(i) {
			out = append(out, strconv.Itoa(i))
		}
	}
	return strings.Join(out, ",")
}

// memoryNeed returns the bytes of the connection tables (capacity rounded
// up to a power of two, as the tables are) and the memory available.
func memoryNeed(c *config.Config) (need, avail uint64, ok bool) {
	avail, ok = memAvailable()
	if !ok || c.IPVS.ConnCapacity <= 0 {
		return 0, 0, false
	}
	capacity := uint64(1) << bits.Len64(uint64(c.IPVS.ConnCapacity-1))
	return uint64(c.Workers.Count) * capacity * connBytes, avail, true
}

// memAvailable reads MemAvailable from /proc/meminfo.
func memAvailable() (uint64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// checkModel applies the interfaces, addresses, routes and neighbours to
// a dataplane over in-memory ports of the same names and queue counts.
func checkModel(c *config.Config) error {
	var specs []dataplane.PortSpec
	for i, pc := range c.Ports {
		p := mem.New(port.Config{Name: pc.Name, Queues: c.Workers.Count, FrameCount: 16, RxRing: 16},
			net.HardwareAddr{0x02, 0x47, 0x56, 0x53, byte(i >> 8), byte(i)})
		specs = append(specs, dataplane.PortSpec{Port: p})
	}
	dp, err := dataplane.New(dataplane.Options{Workers: c.Workers.Count, ConnCapacity: 16, Logger: zap.NewNop()}, specs)
	if err != nil {
		return err
	}
	return Apply(dp, c)
}
