package config

// The dpdk: section: how gvs-dataplane starts DPDK's EAL for ports with
// driver: dpdk. It is plain data here; the dpdk port driver (build tag
// dpdk) takes EALArgs. A build without the tag refuses dpdk ports and says
// how to get a build that has them.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// DPDK is the EAL's configuration.
type DPDK struct {
	// Lcores is the EAL's lcore list (-l): its main lcore, on a
	// housekeeping CPU. GVS's workers are Go threads pinned by
	// workers.cores and registered with DPDK; they need no EAL lcore.
	// Default "0".
	Lcores string `yaml:"lcores"`
	// MemoryChannels is -n (0: let the EAL detect it).
	MemoryChannels int `yaml:"memory_channels"`
	// MemoryMB is -m: megabytes of memory the EAL reserves (0: the EAL's
	// default, all hugepages; 64 MiB with no_huge).
	MemoryMB int `yaml:"memory_mb"`
	// NoHuge runs without hugepages (--no-huge): tests and virtual devices
	// only, physical NICs need hugepages for DMA.
	NoHuge bool `yaml:"no_huge"`
	// InMemory (--in-memory, needs hugepages) and NoShconf (--no-shconf)
	// keep the EAL's state out of /var/run/dpdk: no secondary processes,
	// several instances on one host.
	InMemory bool `yaml:"in_memory"`
	NoShconf bool `yaml:"no_shconf"`
	// PCIAllow lists the NICs the EAL may take (-a 0000:3b:00.0); empty:
	// every NIC bound to vfio-pci/uio. NoPCI skips the PCI bus (--no-pci).
	PCIAllow []string `yaml:"pci_allow"`
	NoPCI    bool     `yaml:"no_pci"`
	// VDevs are virtual devices (--vdev), e.g. net_af_packet0,iface=eth1.
	VDevs []string `yaml:"vdevs"`
	// LogLevel is the EAL's log level: emerg, alert, crit, err, warning,
	// notice, info, debug or 1-8 (default notice).
	LogLevel string `yaml:"log_level"`
	// FilePrefix is --file-prefix: runtime files of this instance.
	FilePrefix string `yaml:"file_prefix"`
	// ExtraArgs are passed to the EAL as they are, after the others.
	ExtraArgs []string `yaml:"extra_args"`
}

var (
	lcoreList = regexp.MustCompile(`^[0-9@(),\-]+$`)
	pciAddr   = regexp.MustCompile(`^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7](,.*)?$`)
	vdevName  = regexp.MustCompile(`^(net|crypto|event|baseband|dma|raw)_[a-z0-9_]+[0-9]*(,.*)?$`)
	logLevels = []string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}
)

// validate reports the section's problems through bad (field, message).
func (d DPDK) validate(bad func(field, format string, a ...any)) {
	if d.Lcores != "" && !lcoreList.MatchString(d.Lcores) {
		bad("dpdk.lcores", "%q is not an lcore list: use CPU numbers and ranges such as 0 or 0-1", d.Lcores)
	}
	if d.MemoryChannels < 0 || d.MemoryChannels > 32 {
		bad("dpdk.memory_channels", "%d: use 1-32, or 0 to let the EAL detect it", d.MemoryChannels)
	}
	if d.MemoryMB < 0 || d.MemoryMB > 1<<20 {
		bad("dpdk.memory_mb", "%d: give megabytes (0: the EAL's default)", d.MemoryMB)
	}
	for i, a := range d.PCIAllow {
		if !pciAddr.MatchString(a) {
			bad(fmt.Sprintf("dpdk.pci_allow[%d]", i), "%q is not a PCI address: use DOMAIN:BUS:DEV.FN as dpdk-devbind.py --status shows it (0000:3b:00.0)", a)
		}
	}
	if d.InMemory && d.NoHuge {
		bad("dpdk.in_memory", "the EAL refuses --in-memory with --no-huge: keep no_huge with no_shconf (tests), or in_memory with hugepages")
	}
	if d.NoPCI && len(d.PCIAllow) > 0 {
		bad("dpdk.no_pci", "no_pci skips the PCI bus that pci_allow lists NICs of: drop one of them")
	}
	for i, v := range d.VDevs {
		if !vdevName.MatchString(v) {
			bad(fmt.Sprintf("dpdk.vdevs[%d]", i), "%q is not a vdev: use DRIVERn[,key=value…] such as net_af_packet0,iface=eth1 or net_ring0", v)
		}
	}
	if d.LogLevel != "" && !validLogLevel(d.LogLevel) {
		bad("dpdk.log_level", "%q: use %s or 1-8", d.LogLevel, strings.Join(logLevels, ", "))
	}
	if strings.ContainsAny(d.FilePrefix, "/ ") {
		bad("dpdk.file_prefix", "%q: a prefix is a plain name without / or spaces", d.FilePrefix)
	}
	for i, a := range d.ExtraArgs {
		if a == "" {
			bad(fmt.Sprintf("dpdk.extra_args[%d]", i), "empty argument: remove it")
		}
	}
}

func validLogLevel(s string) bool {
	if n, err := strconv.Atoi(s); err == nil {
		return n >= 1 && n <= 8
	}
	for _, l := range logLevels {
		if s == l {
			return true
		}
	}
	return false
}

// EALArgs returns the EAL's command line for the section, the program
// name first.
func (d DPDK) EALArgs() []string {
	args := []string{"gvs-dataplane"}
	lc := d.Lcores
	if lc == "" {
		lc = "0"
	}
	args = append(args, "-l", lc)
	if d.MemoryChannels > 0 {
		args = append(args, "-n", strconv.Itoa(d.MemoryChannels))
	}
	if d.MemoryMB > 0 {
		args = append(args, "-m", strconv.Itoa(d.MemoryMB))
	}
	for _, f := range []struct {
		on   bool
		flag string
	}{{d.NoHuge, "--no-huge"}, {d.InMemory, "--in-memory"}, {d.NoShconf, "--no-shconf"}, {d.NoPCI, "--no-pci"}} {
		if f.on {
			args = append(args, f.flag)
		}
	}
	for _, a := range d.PCIAllow {
		args = append(args, "-a", a)
	}
	for _, v := range d.VDevs {
		args = append(args, "--vdev="+v)
	}
	lvl := d.LogLevel
	if lvl == "" {
		lvl = "notice"
	}
	args = append(args, "--log-level="+lvl)
	if d.FilePrefix != "" {
		args = append(args, "--file-prefix="+d.FilePrefix)
	}
	return append(args, d.ExtraArgs...)
}
