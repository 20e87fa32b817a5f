package sync

import "github.com/prometheus/client_golang/prometheus"

// Collector exports a node's counters to Prometheus, with bounded labels.
type Collector struct {
	n                                          *Node
	msgs, conns, rejected, installs, bulk, tbl *prometheus.Desc
	ready, reinstalled, peers                  *prometheus.Desc
}

// NewCollector returns the collector of n.
func NewCollector(n *Node) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("gvs_sync_"+name, help, labels, nil)
	}
	return &Collector{n: n,
		msgs:        d("messages_total", "Sync datagrams sent (tx), accepted (rx) and send errors (tx_error).", "dir"),
		conns:       d("conns_total", "Connection records sent (tx) and received (rx).", "dir"),
		rejected:    d("rejected_total", "Sync datagrams refused, by reason.", "reason"),
		installs:    d("installs_total", "Synced connections handed to the dataplane, by outcome.", "result"),
		bulk:        d("bulk_total", "Bulk transfers: requests sent, answers sent, connections sent in answers.", "what"),
		tbl:         d("table_conns", "Connections in the synced table."),
		ready:       d("ready", "1 once the start-up bulk transfer is done (or no peer answered)."),
		reinstalled: d("reinstalled_total", "Connections re-installed after local dataplane restarts."),
		peers:       d("peers", "Other nodes heard within the last three heartbeat intervals."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.msgs, c.conns, c.rejected, c.installs, c.bulk, c.tbl, c.ready, c.reinstalled, c.peers} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.Stats()
	ctr := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	ctr(c.msgs, s.TxMessages, "tx")
	ctr(c.msgs, s.RxMessages, "rx")
	ctr(c.msgs, s.TxErrors, "tx_error")
	ctr(c.conns, s.TxConns, "tx")
	ctr(c.conns, s.RxConns, "rx")
	for _, r := range []struct {
		v      uint64
		reason string
	}{{s.RxBadTag, "bad_tag"}, {s.RxReplay, "replay"}, {s.RxStale, "stale"}, {s.RxTruncated, "truncated"},
		{s.RxVersion, "unknown_version"}, {s.RxBad, "malformed"}, {s.RxOwn, "own"}} {
		ctr(c.rejected, r.v, r.reason)
	}
	for _, r := range []struct {
		v      uint64
		result string
	}{{s.Installed, "installed"}, {s.Updated, "updated"}, {s.Deleted, "deleted"}, {s.Refused, "refused"},
		{s.InstallErrors, "api_error"}, {s.TableFull, "table_full"}} {
		ctr(c.installs, r.v, r.result)
	}
	ctr(c.bulk, s.BulkRequests, "requests")
	ctr(c.bulk, s.BulkAnswers, "answers")
	ctr(c.bulk, s.BulkConns, "conns")
	ctr(c.reinstalled, s.Reinstalled)
	ch <- prometheus.MustNewConstMetric(c.tbl, prometheus.GaugeValue, float64(s.TableConns))
	r := 0.0
	if s.Ready {
		r = 1
	}
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, r)
	alive := 0
	for _, p := range c.n.Peers() {
		if c.n.o.Now().Sub(p.LastSeen) < 3*HeartbeatInterval {
			alive++
		}
	}
	ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(alive))
}
