package port

// XStat is one extended counter of a port: one of the device's own (DPDK
// xstats, named by the PMD: rx_good_packets, rx_q0_bytes, …) or one of
// the driver's (gvs_ prefix). `dpip -s link show` lists them after the
// basic counters.
type XStat struct {
	Name  string
	Value uint64
}

// XStatsReader is a port with extended counters (the dpdk driver: the
// device's; afxdp: its sockets' XDP_STATISTICS and the XDP fast path's
// verdicts). Ports without them (mem, afpacket) do not implement it and
// show none.
type XStatsReader interface {
	// XStats returns the counters in the device's order; it may call
	// into the driver and is for the control path only.
	XStats() ([]XStat, error)
}
