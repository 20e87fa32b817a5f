// Package metrics exports the load balancer to Prometheus. The Collector
// asks the dataplane at scrape time (ListServices, ListWorkers, ListLinks,
// GetInfo, GetLBUsage) instead of polling in the background, so a scrape always shows
// current counters and costs nothing between scrapes. Labels are bounded by
// the configuration and the hardware: services, destinations, local
// addresses, workers, ports, drop reasons — never clients or connections.
package metrics

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/announce"
	"github.com/gvs-lb/gvs/ctrlplane/health"
	"github.com/gvs-lb/gvs/ctrlplane/reconcile"
)

// Sources are what a scrape reads; nil functions are skipped.
type Sources struct {
	API     pb.DataplaneClient
	Timeout time.Duration // for the whole scrape of the dataplane
	Health  func() []health.RealStatus
	Stats   func() reconcile.Stats
	// Restarts counts dataplane restarts seen; InvalidReloads counts
	// reloads refused because the file was invalid.
	Restarts       func() uint64
	InvalidReloads func() uint64
	// Announce is the route announcement's state (nil: not configured).
	Announce func() announce.Status
}

var (
	svcLabels  = []string{"protocol", "vip", "port"}
	destLabels = []string{"protocol", "vip", "port", "real_server"}
	// refusedLabels: reason is one of four words (services())
	refusedLabels = []string{"protocol", "vip", "port", "reason"}
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("gvs_"+name, help, labels, nil)
}

func withDir(l []string) []string { return append(append([]string{}, l...), "direction") }

var (
	dpUp        = desc("dataplane_up", "1 when the dataplane answered this scrape.")
	dpUptime    = desc("dataplane_uptime_seconds", "Time since the dataplane started.")
	dpInfo      = desc("dataplane_info", "Dataplane version and idle mode (value 1).", "version", "idle_mode")
	dpCapacity  = desc("dataplane_conn_capacity", "Connection table size of all workers.")
	dpRestarts  = desc("dataplane_restarts_total", "Dataplane restarts the control plane noticed (and reconciled).")
	kniDrops    = desc("kni_drops_total", "Frames dropped between the dataplane and KNI.", "direction")
	svcConns    = desc("service_connections_total", "Connections scheduled by the service.", svcLabels...)
	svcPackets  = desc("service_packets_total", "Packets of the service's connections.", withDir(svcLabels)...)
	svcBytes    = desc("service_bytes_total", "Bytes of the service's connections.", withDir(svcLabels)...)
	svcActive   = desc("service_active_connections", "Established connections of the service.", svcLabels...)
	svcInactive = desc("service_inactive_connections", "Connections of the service in other states.", svcLabels...)
	svcDests    = desc("service_destinations", "Destinations the dataplane holds for the service.", svcLabels...)
	svcRefused  = desc("service_refused_total", "What the service's deny/allow lists and limits refused, by reason: denied and not_allowed count packets, rate_limited and source_limited new connections.", refusedLabels...)
	dConns      = desc("dest_connections_total", "Connections scheduled to the destination.", destLabels...)
	dPackets    = desc("dest_packets_total", "Packets of the destination's connections.", withDir(destLabels)...)
	dBytes      = desc("dest_bytes_total", "Bytes of the destination's connections.", withDir(destLabels)...)
	dActive     = desc("dest_active_connections", "Established connections of the destination (ipvsadm ActiveConn).", destLabels...)
	dInactive   = desc("dest_inactive_connections", "Other connections of the destination (ipvsadm InActConn).", destLabels...)
	dPersist    = desc("dest_persistence_templates", "Persistence templates pointing to the destination (ipvsadm PersistConn).", destLabels...)
	dWeight     = desc("dest_weight", "Weight of the destination in the dataplane (0: quiesced).", destLabels...)
	rsUp        = desc("real_server_up", "1 when the configured real server passes all its health checks.", destLabels...)
	rsCheckUp   = desc("real_server_check_up", "1 when this health check of the real server is up.", append(append([]string{}, destLabels...), "check")...)
	wRx         = desc("worker_rx_packets_total", "Packets received by the worker.", "worker")
	wTx         = desc("worker_tx_packets_total", "Packets sent by the worker.", "worker")
	wDrops      = desc("worker_drops_total", "Packets dropped by the worker, by reason.", "worker", "reason")
	wRedirects  = desc("worker_redirects_total", "Packets handed to (out) or taken from (in) another worker.", "worker", "direction")
	wEvents     = desc("worker_events_total", "Other per-worker counters, by name (lb_new_conns, kni_punted …).", "worker", "counter")
	wLoops      = desc("worker_loops_total", "Poll loops run.", "worker")
	wBursts     = desc("worker_bursts_total", "Non-empty receive bursts.", "worker")
	wIdle       = desc("worker_idle_loops_total", "Loops that found nothing to do.", "worker")
	wSleeps     = desc("worker_sleeps_total", "Times the worker slept in poll() (adaptive idle).", "worker")
	wPackets    = desc("worker_loop_packets_total", "Packets handled by the loop.", "worker")
	wBusy       = desc("worker_busy_seconds_total", "Time in loop iterations that had packets to handle or send: its rate is the worker's load (1: saturated), which a polling worker's CPU use does not show.", "worker")
	wLongest    = desc("worker_longest_loop_seconds", "Longest single loop iteration seen.", "worker")
	wCore       = desc("worker_core", "CPU the worker is pinned to (-1: not pinned).", "worker")
	wConns      = desc("worker_connections", "Connections in the worker's table.", "worker")
	wConnCap    = desc("worker_conn_capacity", "Size of the worker's connection table.", "worker")
	wConnHW     = desc("worker_conn_high_water", "Connections at and above which the worker's table is under pressure (0: never).", "worker")
	wPressure   = desc("worker_conn_pressure", "1 while the worker's table is under pressure: embryonic and closing connections take short timeouts, a full table evicts them for new ones.", "worker")
	laConflicts = desc("laddr_port_conflicts_total", "Local port allocations of the local address refused on the worker: its ports towards the real server were exhausted (ipvsadm -G CONFLICTS).", "laddr", "worker")
	laInUse     = desc("laddr_ports_in_use", "Local ports of the local address in use on the worker, all real servers together.", "laddr", "worker")
	laFree      = desc("laddr_busiest_server_ports_free", "Local ports of the local address left on the worker towards its busiest real server (each real server has a port space of its own): new connections fail at 0.", "laddr", "worker")
	portLabels  = []string{"port"}
	pRxPackets  = desc("port_rx_packets_total", "Packets received on the port.", portLabels...)
	pRxBytes    = desc("port_rx_bytes_total", "Bytes received on the port.", portLabels...)
	pRxDropped  = desc("port_rx_dropped_total", "Receive drops reported by the port driver.", portLabels...)
	pRxErrors   = desc("port_rx_errors_total", "Receive errors reported by the port driver.", portLabels...)
	pTxPackets  = desc("port_tx_packets_total", "Packets sent on the port.", portLabels...)
	pTxBytes    = desc("port_tx_bytes_total", "Bytes sent on the port.", portLabels...)
	pTxDropped  = desc("port_tx_dropped_total", "Transmit drops reported by the port driver.", portLabels...)
	pTxErrors   = desc("port_tx_errors_total", "Transmit errors reported by the port driver.", portLabels...)
	cpRuns      = desc("controlplane_reconciles_total", "Reconcile rounds, by result.", "result")
	cpOps       = desc("controlplane_reconcile_ops_total", "Dataplane calls made by the reconciler.")
	cpLast      = desc("controlplane_last_reconcile_success_timestamp_seconds", "When the last reconcile succeeded.")
	cpLoads     = desc("controlplane_config_loads_total", "Configurations loaded (start and reloads).")
	cpRefused   = desc("controlplane_config_refused_total", "Reloads refused, by reason (invalid file, dataplane check).", "reason")
	announced   = desc("announced", "1 while the prefix (a configured VIP or local address) is announced by the protocol.", "prefix", "protocol")
	draining    = desc("announce_draining", "1 while the node is drained (VIPs withdrawn).")
	allDescs    = []*prometheus.Desc{dpUp, dpUptime, dpInfo, dpCapacity, dpRestarts, kniDrops, svcConns, svcPackets,
		svcBytes, svcActive, svcInactive, svcDests, svcRefused, dConns, dPackets, dBytes, dActive, dInactive, dPersist, dWeight, rsUp,
		rsCheckUp, wRx, wTx, wDrops, wRedirects, wEvents, wLoops, wBursts, wIdle, wSleeps, wPackets, wBusy, wLongest, wCore,
		pRxPackets, pRxBytes, pRxDropped, pRxErrors, pTxPackets, pTxBytes, pTxDropped, pTxErrors,
		cpRuns, cpOps, cpLast, cpLoads, cpRefused, announced, draining, wConns, wConnCap, laInUse, laFree,
		wConnHW, wPressure, laConflicts}
)

// Collector is a prometheus.Collector over Sources.
type Collector struct{ s Sources }

// NewCollector returns a collector; register it with a registry.
func NewCollector(s Sources) *Collector {
	if s.Timeout == 0 {
		s.Timeout = 5 * time.Second
	}
	return &Collector{s: s}
}

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, l ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, l ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect reads the sources.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.controlplane(ch)
	c.health(ch)
	if c.s.API == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.s.Timeout)
	defer cancel()
	info, err := c.s.API.GetInfo(ctx, &pb.Empty{})
	gauge(ch, dpUp, b2f(err == nil))
	if err != nil {
		return
	}
	gauge(ch, dpUptime, time.Duration(info.UptimeNs).Seconds())
	gauge(ch, dpInfo, 1, info.Version, info.IdleMode)
	gauge(ch, dpCapacity, float64(info.ConnCapacity))
	counter(ch, kniDrops, info.KniWriteDrops, "to_kernel")
	counter(ch, kniDrops, info.KniReadDrops, "from_kernel")
	if svcs, err := c.s.API.ListServices(ctx, &pb.ListServicesRequest{}); err == nil {
		services(ch, svcs)
	}
	if ws, err := c.s.API.ListWorkers(ctx, &pb.Empty{}); err == nil {
		workers(ch, ws)
	}
	if ls, err := c.s.API.ListLinks(ctx, &pb.ListLinksRequest{}); err == nil {
		links(ch, ls)
	}
	if u, err := c.s.API.GetLBUsage(ctx, &pb.Empty{}); err == nil {
		lbUsage(ch, u)
	}
}

func (c *Collector) controlplane(ch chan<- prometheus.Metric) {
	if c.s.Restarts != nil {
		counter(ch, dpRestarts, c.s.Restarts())
	}
	if c.s.Stats != nil {
		st := c.s.Stats()
		counter(ch, cpRuns, st.Runs-st.Failures, "ok")
		counter(ch, cpRuns, st.Failures, "error")
		counter(ch, cpOps, st.Ops)
		counter(ch, cpLoads, st.Loads)
		counter(ch, cpRefused, st.Refused, "dataplane_check")
		if !st.LastSuccess.IsZero() {
			gauge(ch, cpLast, float64(st.LastSuccess.UnixNano())/1e9)
		}
	}
	if c.s.InvalidReloads != nil {
		counter(ch, cpRefused, c.s.InvalidReloads(), "invalid_file")
	}
	if c.s.Announce != nil {
		st := c.s.Announce()
		gauge(ch, draining, b2f(st.Draining))
		for _, p := range st.Prefixes {
			for _, proto := range st.Protocols {
				gauge(ch, announced, b2f(slices.Contains(p.AnnouncedBy, proto.Protocol)), p.Prefix.String(), proto.Protocol)
			}
		}
	}
}

func (c *Collector) health(ch chan<- prometheus.Metric) {
	if c.s.Health == nil {
		return
	}
	for _, r := range c.s.Health() {
		l := []string{r.Service.Proto, r.Service.Addr.String(), strconv.Itoa(int(r.Service.Port)), r.Addr.String()}
		gauge(ch, rsUp, b2f(r.Up), l...)
		for _, chk := range r.Checks {
			gauge(ch, rsCheckUp, b2f(chk.Up), append(l, chk.Kind)...)
		}
	}
}

func stats(s *pb.ServiceStats) *pb.ServiceStats {
	if s == nil {
		return &pb.ServiceStats{}
	}
	return s
}

func services(ch chan<- prometheus.Metric, r *pb.ListServicesResponse) {
	for _, s := range r.Services {
		k := s.GetKey()
		l := []string{strings.ToUpper(k.GetProto()), k.GetAddr(), strconv.Itoa(int(k.GetPort()))}
		st := stats(s.Stats)
		counter(ch, svcConns, st.Conns, l...)
		counter(ch, svcPackets, st.InPkts, append(l, "in")...)
		counter(ch, svcPackets, st.OutPkts, append(l, "out")...)
		counter(ch, svcBytes, st.InBytes, append(l, "in")...)
		counter(ch, svcBytes, st.OutBytes, append(l, "out")...)
		var active, inactive int64
		for _, d := range s.Dests {
			dl := append(append([]string{}, l...), destAddr(d))
			ds := stats(d.Stats)
			counter(ch, dConns, ds.Conns, dl...)
			counter(ch, dPackets, ds.InPkts, append(dl, "in")...)
			counter(ch, dPackets, ds.OutPkts, append(dl, "out")...)
			counter(ch, dBytes, ds.InBytes, append(dl, "in")...)
			counter(ch, dBytes, ds.OutBytes, append(dl, "out")...)
			gauge(ch, dActive, float64(d.Active), dl...)
			gauge(ch, dInactive, float64(d.Inactive), dl...)
			gauge(ch, dPersist, float64(d.PersistConns), dl...)
			gauge(ch, dWeight, float64(d.Weight), dl...)
			active += d.Active
			inactive += d.Inactive
		}
		gauge(ch, svcActive, float64(active), l...)
		gauge(ch, svcInactive, float64(inactive), l...)
		gauge(ch, svcDests, float64(len(s.Dests)), l...)
		a := s.GetAdmission()
		for _, r := range []struct {
			reason string
			v      uint64
		}{{"denied", a.GetDenied()}, {"not_allowed", a.GetNotAllowed()}, {"rate_limited", a.GetRateLimited()}, {"source_limited", a.GetSourceLimited()}} {
			counter(ch, svcRefused, r.v, append(l, r.reason)...)
		}
	}
}

// destAddr writes a destination as health reports real servers: ip:port,
// IPv6 in brackets.
func destAddr(d *pb.Dest) string {
	if strings.Contains(d.Addr, ":") {
		return "[" + d.Addr + "]:" + strconv.Itoa(int(d.Port))
	}
	return d.Addr + ":" + strconv.Itoa(int(d.Port))
}

func workers(ch chan<- prometheus.Metric, r *pb.ListWorkersResponse) {
	for _, w := range r.Workers {
		id := strconv.Itoa(int(w.Id))
		for _, c := range w.Counters {
			switch {
			case c.Name == "rx_packets":
				counter(ch, wRx, c.Value, id)
			case c.Name == "tx_packets":
				counter(ch, wTx, c.Value, id)
			case c.Name == "lb_redirected_out":
				counter(ch, wRedirects, c.Value, id, "out")
			case c.Name == "lb_redirected_in":
				counter(ch, wRedirects, c.Value, id, "in")
			case strings.HasPrefix(c.Name, "drop_"):
				counter(ch, wDrops, c.Value, id, strings.TrimPrefix(c.Name, "drop_"))
			default:
				counter(ch, wEvents, c.Value, id, c.Name)
			}
		}
		counter(ch, wLoops, w.Loops, id)
		counter(ch, wBursts, w.Bursts, id)
		counter(ch, wIdle, w.IdleLoops, id)
		counter(ch, wSleeps, w.Sleeps, id)
		counter(ch, wPackets, w.Packets, id)
		ch <- prometheus.MustNewConstMetric(wBusy, prometheus.CounterValue, time.Duration(w.BusyNs).Seconds(), id)
		gauge(ch, wLongest, time.Duration(w.LongestLoopNs).Seconds(), id)
		gauge(ch, wCore, float64(w.Core), id)
	}
}

func links(ch chan<- prometheus.Metric, r *pb.ListLinksResponse) {
	for _, l := range r.Links {
		s := l.Stats
		if s == nil || l.Kind != "port" {
			continue
		}
		counter(ch, pRxPackets, s.RxPackets, l.Name)
		counter(ch, pRxBytes, s.RxBytes, l.Name)
		counter(ch, pRxDropped, s.RxDropped, l.Name)
		counter(ch, pRxErrors, s.RxErrors, l.Name)
		counter(ch, pTxPackets, s.TxPackets, l.Name)
		counter(ch, pTxBytes, s.TxBytes, l.Name)
		counter(ch, pTxDropped, s.TxDropped, l.Name)
		counter(ch, pTxErrors, s.TxErrors, l.Name)
	}
}

// lbUsage exports table fill and local port usage: labels are workers and
// configured local addresses.
func lbUsage(ch chan<- prometheus.Metric, r *pb.LBUsage) {
	for _, w := range r.Workers {
		id := strconv.Itoa(int(w.Worker))
		gauge(ch, wConns, float64(w.Conns), id)
		gauge(ch, wConnCap, float64(w.ConnCapacity), id)
		gauge(ch, wConnHW, float64(w.HighWater), id)
		gauge(ch, wPressure, b2f(w.Pressure), id)
		for _, l := range w.Laddrs {
			gauge(ch, laInUse, float64(l.InUse), l.Addr, id)
			gauge(ch, laFree, float64(l.BusiestFree), l.Addr, id)
			counter(ch, laConflicts, l.Conflicts, l.Addr, id)
		}
	}
}
