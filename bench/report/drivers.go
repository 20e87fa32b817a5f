package main

// The port drivers section: GVS with one worker and the same settings
// (rt_priority 0, adaptive idle) on each of its drivers, set against the
// afxdp driver (gvs1) measured in the same run: the dpdk build over DPDK's
// net_af_packet and net_af_xdp vdevs, and the afpacket driver, whose
// kernel path (packet sockets) is net_af_packet's.

import (
	"fmt"
	"strings"
)

// driverSystems are the systems of the section, afxdp first.
var driverSystems = []struct{ id, driver string }{
	{"gvs1", "afxdp"},
	{"gvsdpdk1", "dpdk, net_af_packet vdevs"},
	{"gvsdpdkxdp1", "dpdk, net_af_xdp vdevs"},
	{"gvsafp1", "afpacket"},
}

func (d *data) drivers(w func(string, ...any)) {
	peak := func(place, sys string) stat {
		c, ok := d.curve(place, sys)
		if !ok || c.peak == 0 {
			return stat{}
		}
		return stat{med: c.peak, min: c.peak, max: c.peak, n: 1}
	}
	base, baseOne := d.metric("gvs1", "udp", pps), peak("one", "gvs1")
	var rows []string
	for _, s := range driverSystems {
		u, one := d.metric(s.id, "udp", pps), peak("one", s.id)
		if s.id != "gvs1" && !u.ok() && !one.ok() {
			continue
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s | %s |", s.driver, fmtRate(u, 1e6, 3), ratio(u, base),
			fmtRate(one, 1e6, 3), ratio(one, baseOne), fmtRate(d.metric(s.id, "udp", loss), 1, 2)))
	}
	if len(rows) < 2 {
		return
	}
	w("## Port drivers\n\n")
	w("GVS FullNAT, 1 worker, rt_priority 0 and adaptive idle on each driver over the same veths (l0/l1), the same UDP flood. ")
	w("The dpdk rows run the dpdk build (`make dpdk`) on DPDK's virtual devices without hugepages: what the DPDK layer costs or saves ")
	w("on a kernel-driven path, not what it does on a NIC bound to vfio-pci (docs/appliance.md). \"× afxdp\" is the ratio of medians to the afxdp row of this run.\n\n")
	w("| driver | separate cores: Mpps | × afxdp | one core: peak Mpps | × afxdp | lost %% of offered (separate) |\n|---|---|---|---|---|---|\n")
	w("%s\n\n", strings.Join(rows, "\n"))
}
