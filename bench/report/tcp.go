package main

// The tcp cells: one established Linux TCP stream (iperf3) through each
// system, in the separate-core and one-core placements.

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// iperfResult is what iperf3 -J reported.
type iperfResult struct {
	mbits   float64 // received
	retrans int     // the sender's retransmissions
}

// readIperf parses iperf3's JSON; nil without a received rate.
func readIperf(path string) *iperfResult {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var r struct {
		End struct {
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if json.Unmarshal(b, &r) != nil || r.End.SumReceived.BitsPerSecond <= 0 {
		return nil
	}
	return &iperfResult{mbits: r.End.SumReceived.BitsPerSecond / 1e6, retrans: r.End.SumSent.Retransmits}
}

func tcpMbits(c *cell) (float64, bool)   { return c.iperf.mbits, c.iperf != nil }
func tcpRetrans(c *cell) (float64, bool) { return float64(c.iperf.retrans), c.iperf != nil }

// tcpSection shows the stream's throughput per system and placement,
// against the zero-work XDP redirect and nftables of the same run.
func (d *data) tcpSection(w func(string, ...any)) {
	var rows []string
	for _, s := range systems {
		sep, one := d.metricAt("sep", s.id, "tcp", tcpMbits), d.metricAt("one", s.id, "tcp", tcpMbits)
		if !sep.ok() && !one.ok() {
			continue
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s / %s |", s.label,
			fmtRate(sep, 1, 0), ratio(sep, d.metricAt("sep", "xdp", "tcp", tcpMbits)), ratio(sep, d.metricAt("sep", "nft", "tcp", tcpMbits)),
			fmtRate(one, 1, 0), ratio(one, d.metricAt("one", "xdp", "tcp", tcpMbits)), ratio(one, d.metricAt("one", "nft", "tcp", tcpMbits)),
			fmtRate(d.metricAt("sep", s.id, "tcp", tcpRetrans), 1, 0), fmtRate(d.metricAt("one", s.id, "tcp", tcpRetrans), 1, 0)))
	}
	if len(rows) == 0 {
		return
	}
	w("## TCP throughput of one established stream (iperf3)\n\n")
	w("`iperf3 -c VIP -t 5` in gvsb-gen to `iperf3 -s` in gvsb-rs through the system under test (the kernel's TCP on both ends, client and server on the generator's CPU; ")
	w("through the zero-work XDP redirect the server owns the VIP). Separate: the system on its own CPU; one core: everything on one CPU.\n\n")
	w("| system | separate Mbit/s | × XDP redirect | × nftables | one core Mbit/s | × XDP redirect | × nftables | retransmissions separate / one |\n|---|---|---|---|---|---|---|---|\n")
	w("%s\n\n", strings.Join(rows, "\n"))
}
