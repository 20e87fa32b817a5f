package pktgen

import (
	"fmt"

	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/afxdp"
	"io"
	"math"
	"net/netip"
	"sort"
	"strings"
	"text/tabwriter"
)

// Result is what a run measured. Rates are over the measurement window
// (Warmup to the end of generation); totals cover the whole run including
// the drain.
type Result struct {
	Mode      Mode    `json:"mode"`
	Driver    string  `json:"driver"`
	Generator string  `json:"generator,omitempty"` // port driver or XDP live frames (and a fallback)
	ClientDev string  `json:"client_dev"`
	ServerDev string  `json:"server_dev,omitempty"`
	Queues    [2]int  `json:"queues"` // client, server
	FrameSize int     `json:"frame_size,omitempty"`
	Flows     int     `json:"flows,omitempty"`
	Rate      float64 `json:"target_rate"`
	WindowS   float64 `json:"window_s"`

	// udp and syn. OfferedPPS is what the generator handed to the client
	// device; TxPPS what the device passed on (a veth drops frames its
	// peer cannot take: the input queue of the system under test is full).
	OfferedPPS float64 `json:"offered_pps"`
	TxPPS      float64 `json:"tx_pps"`
	RxPPS      float64 `json:"rx_pps"` // stamped packets received (both ports)
	// ArrivedPPS adds the packets that reached the server port but were
	// lost in its receive ring: what the system under test forwarded.
	ArrivedPPS float64        `json:"arrived_pps"`
	Sent       uint64         `json:"sent"`
	Received   uint64         `json:"received"`
	Lost       uint64         `json:"lost"`
	LossPct    float64        `json:"loss_pct"`
	OneWay     LatencySummary `json:"latency"`

	// syn: SynAckPPS are the SYN-ACKs that came back to the client port
	// (a SYN proxy's cookie answers; in RxPPS and Received as well, and
	// their latency, SYN → SYN-ACK, in OneWay). The rates and counts above
	// are the flood's alone: Stream has the established stream's.
	SynAckPPS float64       `json:"synack_pps,omitempty"`
	Stream    *StreamResult `json:"stream,omitempty"`

	// tcp
	CPS         float64        `json:"cps,omitempty"`
	Established float64        `json:"established_per_s,omitempty"`
	Concurrent  int64          `json:"concurrent,omitempty"` // open at the end of generation (held + in flight)
	Held        int64          `json:"held,omitempty"`
	Handshake   LatencySummary `json:"handshake_latency"`
	RTT         LatencySummary `json:"request_latency"`
	ConnLatency LatencySummary `json:"conn_latency"`

	// Search is set by a throughput search.
	Search *SearchResult `json:"search,omitempty"`

	PerDst []DstResult       `json:"per_destination"`
	FlowSt *FlowSummary      `json:"flows_rx,omitempty"`
	Client map[string]uint64 `json:"client_counters"`
	Server map[string]uint64 `json:"server_counters,omitempty"`
	// TxDeviceDropped are frames the transmit ring accepted but the kernel
	// dropped on the client device (its tx_dropped); tx counts exclude them.
	TxDeviceDropped uint64 `json:"tx_device_dropped"`
	// RxPortDropped are frames the receiving ports lost before pktgen saw
	// them (AF_XDP rx ring full, no fill frames): a sink-limited run shows
	// up here.
	RxPortDropped uint64 `json:"rx_port_dropped"`
	// XSK are the AF_XDP sockets' kernel statistics per port (summed over
	// queues): where a receive side lost packets and why.
	XSK map[string]afxdp.XDPStats `json:"xsk_stats,omitempty"`
	// CPU is every CPU's utilisation over the window: whether the system
	// under test or the generator ran out of CPU.
	CPU      []CPUUse `json:"cpu"`
	Series   []Sample `json:"series"`
	Warnings []string `json:"warnings,omitempty"`

	window [2]snapshot
}

// StreamResult is syn mode's established UDP stream (Config.Stream):
// what was sent at its fixed rate and what reached the server port
// during the flood, over the same window.
type StreamResult struct {
	Rate     float64        `json:"target_rate"`
	Dst      string         `json:"dst"`
	Flows    int            `json:"flows"`
	TxPPS    float64        `json:"tx_pps"`
	RxPPS    float64        `json:"rx_pps"`
	Sent     uint64         `json:"sent"`
	Received uint64         `json:"received"`
	Lost     uint64         `json:"lost"`
	LossPct  float64        `json:"loss_pct"`
	Latency  LatencySummary `json:"latency"`
}

// DstResult is what arrived for one destination address.
type DstResult struct {
	Addr    string  `json:"addr"`
	Packets uint64  `json:"packets"`
	Bytes   uint64  `json:"bytes"`
	Conns   uint64  `json:"conns,omitempty"`
	Share   float64 `json:"share_pct"`
}

// FlowSummary summarises per-flow reception in udp mode.
type FlowSummary struct {
	Flows    int      `json:"flows"`
	Seen     int      `json:"seen"`
	WithLoss int      `json:"with_loss"`
	MinRx    uint64   `json:"min_rx"`
	MaxRx    uint64   `json:"max_rx"`
	PerFlow  []uint64 `json:"per_flow_rx,omitempty"`
	PerFlowT []uint64 `json:"per_flow_tx,omitempty"`
}

// Sample is one progress interval.
type Sample struct {
	T          float64 `json:"t"`
	TxPPS      float64 `json:"tx_pps"`
	RxPPS      float64 `json:"rx_pps"`
	CPS        float64 `json:"cps,omitempty"`
	EstPS      float64 `json:"established_per_s,omitempty"`
	Open       int64   `json:"open,omitempty"`
	Held       int64   `json:"held,omitempty"`
	Failed     uint64  `json:"failed,omitempty"`
	Retransmit uint64  `json:"retransmits,omitempty"`
}

func rates(a, b snapshot) Sample {
	dt := float64(b.at-a.at) / 1e9
	if dt <= 0 {
		dt = 1e-9
	}
	d := func(x, y uint64) float64 { return float64(y-x) / dt }
	fail := func(s snapshot) uint64 {
		return s.c[CtrConnTimeout] + s.c[CtrConnRefused] + s.c[CtrConnReset]
	}
	return Sample{
		TxPPS:      d(a.c[CtrTxPackets]+a.s[CtrTxPackets], b.c[CtrTxPackets]+b.s[CtrTxPackets]),
		RxPPS:      d(a.c[CtrRxPackets]+a.s[CtrRxPackets], b.c[CtrRxPackets]+b.s[CtrRxPackets]),
		CPS:        d(a.c[CtrConnCompleted], b.c[CtrConnCompleted]),
		EstPS:      d(a.c[CtrConnEstablished], b.c[CtrConnEstablished]),
		Open:       b.active + b.held,
		Held:       b.held,
		Failed:     fail(b) - fail(a),
		Retransmit: b.c[CtrRetransmits] - a.c[CtrRetransmits] + b.s[CtrSrvRetransmits] - a.s[CtrSrvRetransmits],
	}
}

func (s Sample) line(m Mode) string {
	if m == ModeTCP {
		return fmt.Sprintf("%5.1fs  cps %9s  established/s %9s  open %8d  held %8d  failed %6d  retransmits %6d  pkts tx %9s/s rx %9s/s",
			s.T, si(s.CPS), si(s.EstPS), s.Open, s.Held, s.Failed, s.Retransmit, si(s.TxPPS), si(s.RxPPS))
	}
	return fmt.Sprintf("%5.1fs  tx %9s pps  rx %9s pps", s.T, si(s.TxPPS), si(s.RxPPS))
}

// si formats v with a k/M suffix.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// devCounters reads the kernel counters of both devices.
func (r *runner) devCounters() ([2]DevCounters, error) {
	var out [2]DevCounters
	if r.cfg.Client.Dev == "" {
		return out, nil // ports opened by the caller, not kernel devices
	}
	var err error
	out[0], err = ReadDevCounters(r.cfg.Client.Netns, r.cfg.Client.Dev)
	if err != nil {
		return out, err
	}
	if r.server != nil && r.cfg.Server.Dev != "" {
		out[1], err = ReadDevCounters(r.cfg.Server.Netns, r.cfg.Server.Dev)
	}
	return out, err
}

// finish merges the workers' state into res.
func (r *runner) finish(res *Result, before, after [2]DevCounters, derr error) {
	cfg := &r.cfg
	res.Mode, res.Driver, res.ClientDev = cfg.Mode, r.client.Driver(), orName(cfg.Client.String(), r.client.Name())
	res.Generator = r.gen
	res.Queues[0] = r.client.NumQueues()
	if r.server != nil {
		res.ServerDev = orName(cfg.Server.String(), r.server.Name())
		res.Queues[1] = r.server.NumQueues()
	}
	if cfg.Mode == ModeUDP {
		res.FrameSize, res.Flows = cfg.FrameSize, cfg.Flows
	}
	res.Rate = cfg.Rate
	if derr == nil {
		res.TxDeviceDropped = after[0].TxDropped - before[0].TxDropped
	} else {
		r.warn(fmt.Errorf("device counters unavailable, tx not corrected for device drops: %w", derr))
	}

	var oneWay, hs, rtt, cl, streamLat Histogram
	var dsts dstTable
	var fs FlowSummary
	var flowRx []uint64
	var flowTx []uint64
	if cfg.Mode == ModeUDP {
		flowRx = make([]uint64, cfg.Flows)
		flowTx = make([]uint64, cfg.Flows)
	}
	sum := func(ws []*worker) map[string]uint64 {
		m := map[string]uint64{}
		for _, w := range ws {
			for i, v := range w.ctr.v {
				m[Counter(i).String()] += v
			}
			oneWay.Merge(&w.oneWay)
			streamLat.Merge(&w.streamLat)
			for _, d := range w.dsts.rows {
				row := dsts.get(d.addr)
				row.packets += d.packets
				row.bytes += d.bytes
				row.conns += d.conns
			}
			for i, v := range w.flows.rx {
				flowRx[i] += v
			}
			if w.gen != nil {
				for i, f := range w.gen.flows {
					flowTx[f.id] += w.gen.sent[i]
				}
			}
			if w.tcpc != nil {
				hs.Merge(&w.tcpc.handshake)
				rtt.Merge(&w.tcpc.rtt)
				cl.Merge(&w.tcpc.connLat)
			}
		}
		return m
	}
	res.Client = sum(r.clientW)
	if len(r.live) > 0 {
		sent := make([]uint64, len(r.live))
		for i, g := range r.live {
			for c, v := range g.ctr.v {
				res.Client[Counter(c).String()] += v
			}
			sent[i] = g.sent
		}
		for i, v := range liveFlowsSent(cfg.Flows, len(r.live), sent) {
			flowTx[i] += v
		}
		if dev := after[0].TxPackets - before[0].TxPackets; r.liveDev() && derr == nil && res.Client["tx_packets"] > 1000 &&
			dev+res.TxDeviceDropped < res.Client["tx_packets"]/2 {
			r.warn(fmt.Errorf("%s: the client device counted %d frames sent or dropped of %d the program ran: "+
				"a veth passes XDP frames on only when its peer has an XDP program or GRO on (ethtool -K PEER gro on)",
				GenXDPLive, dev+res.TxDeviceDropped, res.Client["tx_packets"]))
		}
	}
	if r.serverW != nil {
		res.Server = sum(r.serverW)
	}
	// frames the ring accepted that the device then dropped were not sent
	tx := res.Client["tx_packets"]
	res.Client["tx_packets"] = tx - min(tx, res.TxDeviceDropped)
	res.Client["tx_ring_accepted"] = tx
	if r.liveDev() && derr == nil {
		// the kernel may lose a redirected frame without counting it on
		// the device (a few hundred per million under a flood, here):
		// never claim more than the device counted
		if dev := after[0].TxPackets - before[0].TxPackets; res.Client["tx_packets"] > dev {
			res.Client["tx_uncounted_loss"] = res.Client["tx_packets"] - dev
			res.Client["tx_packets"] = dev
		}
	}

	rxDrop := r.client.Stats().RxDropped
	if r.server != nil {
		rxDrop += r.server.Stats().RxDropped
	}
	res.RxPortDropped = rxDrop
	for _, p := range []port.Port{r.client, r.server} {
		if xp, ok := p.(*afxdp.Port); ok {
			sum, err := xp.XDPStatsTotal()
			if err != nil {
				continue
			}
			if res.XSK == nil {
				res.XSK = map[string]afxdp.XDPStats{}
			}
			res.XSK[xp.Device()] = sum
		}
	}

	a, b := res.window[0], res.window[1]
	res.CPU = cpuUse(a.cpu, b.cpu)
	res.WindowS = float64(b.at-a.at) / 1e9
	if res.WindowS > 0 {
		res.OfferedPPS = float64(b.c[CtrTxPackets]-a.c[CtrTxPackets]) / res.WindowS
		res.TxPPS = res.OfferedPPS
		res.RxPPS = float64(b.received-a.received) / res.WindowS
		res.ArrivedPPS = float64(b.arrived-a.arrived) / res.WindowS
		res.CPS = float64(b.c[CtrConnCompleted]-a.c[CtrConnCompleted]) / res.WindowS
		res.Established = float64(b.c[CtrConnEstablished]-a.c[CtrConnEstablished]) / res.WindowS
		if cfg.Mode == ModeSYN {
			res.SynAckPPS = float64(b.c[CtrRxSynAck]-a.c[CtrRxSynAck]) / res.WindowS
			// the flood's own offered rate: without the stream
			res.OfferedPPS -= float64(b.c[CtrStreamTx]-a.c[CtrStreamTx]) / res.WindowS
			res.TxPPS = res.OfferedPPS
		}
	}
	if cfg.Mode != ModeTCP && res.WindowS > 0 && res.Client["tx_packets"] < tx && tx > 0 {
		// spread the device's drops over the window in proportion
		res.TxPPS *= float64(res.Client["tx_packets"]) / float64(tx)
	}
	res.Concurrent, res.Held = b.active+b.held, b.held

	res.Sent = res.Client["tx_packets"]
	if cfg.Mode == ModeSYN {
		res.Sent -= min(res.Sent, res.Client["stream_tx"])
	}
	if cfg.Mode == ModeSYN && cfg.Stream.Rate > 0 {
		st := &StreamResult{Rate: cfg.Stream.Rate, Dst: cfg.Stream.Dst.String(), Flows: cfg.Stream.Flows,
			Sent: res.Client["stream_tx"], Received: res.Server["stream_rx"], Latency: streamLat.Summary()}
		if res.WindowS > 0 {
			st.TxPPS = float64(b.c[CtrStreamTx]-a.c[CtrStreamTx]) / res.WindowS
			st.RxPPS = float64(b.s[CtrStreamRx]-a.s[CtrStreamRx]) / res.WindowS
		}
		if st.Sent > st.Received {
			st.Lost = st.Sent - st.Received
			st.LossPct = math.Round(1e4*float64(st.Lost)/float64(st.Sent)) / 100
		}
		res.Stream = st
	}
	res.Received = res.Client["rx_stamped"] + res.Server["rx_stamped"]
	if cfg.Mode != ModeTCP && res.Sent > res.Received {
		res.Lost = res.Sent - res.Received
		res.LossPct = math.Round(1e4*float64(res.Lost)/float64(res.Sent)) / 100
	}
	res.OneWay = oneWay.Summary()
	res.Handshake, res.RTT, res.ConnLatency = hs.Summary(), rtt.Summary(), cl.Summary()

	var total uint64
	for _, d := range dsts.rows {
		total += d.packets
	}
	for _, d := range dsts.rows {
		share := 0.0
		if total > 0 {
			share = math.Round(1e4*float64(d.packets)/float64(total)) / 100
		}
		res.PerDst = append(res.PerDst, DstResult{Addr: netip.AddrFrom4(d.addr).String(), Packets: d.packets,
			Bytes: d.bytes, Conns: d.conns, Share: share})
	}
	sort.Slice(res.PerDst, func(i, j int) bool { return res.PerDst[i].Addr < res.PerDst[j].Addr })

	if cfg.Mode == ModeUDP {
		fs.Flows = cfg.Flows
		fs.MinRx = math.MaxUint64
		for i, v := range flowRx {
			if v > 0 {
				fs.Seen++
			}
			if v < flowTx[i] {
				fs.WithLoss++
			}
			fs.MinRx = min(fs.MinRx, v)
			fs.MaxRx = max(fs.MaxRx, v)
		}
		if cfg.PerFlow {
			fs.PerFlow, fs.PerFlowT = flowRx, flowTx
		}
		res.FlowSt = &fs
	}
	r.warnMu.Lock()
	res.Warnings = append(res.Warnings, r.warnings...)
	r.warnMu.Unlock()
}

// WriteText prints the result as a table.
func (res *Result) WriteText(out io.Writer) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	p := func(k, f string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(f, a...)) }
	p("mode", "%s (%s; client %s, server %s; queues %d/%d)", res.Mode, res.Driver, res.ClientDev, orDash(res.ServerDev), res.Queues[0], res.Queues[1])
	if res.Generator != "" {
		p("generator", "%s", res.Generator)
	}
	p("window", "%.2f s", res.WindowS)
	lat := func(name string, l LatencySummary) {
		if l.Samples > 0 {
			p(name, "p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f µs (%d samples)", l.P50Us, l.P90Us, l.P99Us, l.P999Us, l.MaxUs, l.Samples)
		}
	}
	switch res.Mode {
	case ModeTCP:
		p("connections/s", "%s completed, %s established", si(res.CPS), si(res.Established))
		p("open at end", "%d (held %d)", res.Concurrent, res.Held)
		c := res.Client
		p("connections", "%d attempted, %d established, %d completed, %d refused, %d reset, %d timed out, %d retransmits",
			c["conn_attempts"], c["conn_established"], c["conn_completed"], c["conn_refused"], c["conn_reset"], c["conn_timeout"], c["retransmits"])
		lat("handshake", res.Handshake)
		lat("request→response", res.RTT)
		lat("connection", res.ConnLatency)
		if s := res.Server; s != nil {
			p("server side", "%d SYNs, %d established, %d closed, %d responses, %d with TOA, %d retransmits",
				s["srv_syn"], s["srv_established"], s["srv_closed"], s["srv_responses"], s["srv_toa"], s["srv_retransmits"])
		}
	default:
		p("offered", "%s pps (handed to the client device)", si(res.OfferedPPS))
		p("tx", "%s pps (%d sent; %d dropped by the device)", si(res.TxPPS), res.Sent, res.TxDeviceDropped)
		p("rx", "%s pps (%d received)", si(res.RxPPS), res.Received)
		p("arrived", "%s pps (received + lost in the receive port's ring)", si(res.ArrivedPPS))
		p("loss", "%d (%.2f%%)", res.Lost, res.LossPct)
		if res.Mode == ModeSYN && res.Client["rx_synack"] > 0 {
			p("SYN-ACKs", "%s pps (%d received on the client port: SYNs a SYN proxy answered; in rx)", si(res.SynAckPPS), res.Client["rx_synack"])
			lat("SYN → SYN-ACK", res.OneWay)
		} else {
			lat("one-way latency", res.OneWay)
		}
		if st := res.Stream; st != nil {
			p("stream", "%s pps sent, %s pps received of %s pps to %s over %d flows; %d lost (%.2f%%)",
				si(st.TxPPS), si(st.RxPPS), si(st.Rate), st.Dst, st.Flows, st.Lost, st.LossPct)
			lat("stream latency", st.Latency)
		}
		if s := res.Search; s != nil {
			p("throughput", "%s pps with at most %.2f%% loss (overload: %s pps arrived of %s pps sent; %d trials)",
				si(s.ThroughputPPS), s.LossTolerance, si(s.OverloadPPS), si(s.GeneratorPPS), len(s.Trials))
		}
		if f := res.FlowSt; f != nil {
			p("flows", "%d of %d seen, %d with loss, per-flow rx %d..%d", f.Seen, f.Flows, f.WithLoss, f.MinRx, f.MaxRx)
		}
	}
	if len(res.CPU) > 0 {
		var parts []string
		for _, c := range res.CPU {
			parts = append(parts, fmt.Sprintf("cpu%d %.0f%% (softirq %.0f%%)", c.CPU, c.BusyPct, c.SoftIRQPct))
		}
		p("CPU busy", "%s", strings.Join(parts, ", "))
	}
	if res.RxPortDropped > 0 {
		p("receive ports dropped", "%d (the receive side could not keep up)", res.RxPortDropped)
	}
	tw.Flush()
	if len(res.PerDst) > 0 {
		fmt.Fprintln(out, "per destination:")
		tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  address\tpackets\tshare\tconnections")
		for _, d := range res.PerDst {
			fmt.Fprintf(tw, "  %s\t%d\t%.2f%%\t%d\n", d.Addr, d.Packets, d.Share, d.Conns)
		}
		tw.Flush()
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(out, "warning:", strings.TrimSpace(w))
	}
}

func orName(s, name string) string {
	if s == "" {
		return name
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
