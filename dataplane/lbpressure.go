package dataplane

// Session-table pressure: what a worker does when a flood of connections
// that never complete (a SYN flood from random sources) fills its table.
//
// The table (session/pressure.go) is under pressure at and above its
// high-water mark (ipvs.session_high_water, 90 % by default): embryonic and
// closing connections created or touched then take the short pressure
// timeouts (SYN_RECV 5 s instead of 60 s). When it is full, a new
// connection takes the place of one embryonic or closing connection, the
// one nearest to expiry, found by a bounded look at the front of the timer
// wheel; ESTABLISHED and UDP connections are never evicted for a new one,
// so a table full of them still refuses (drop_lb_table_full).
//
// An evicted connection gives back everything an expired one does, by the
// same function (connRelease: destination counters, persistence template
// reference, local port, sync event); only its counter differs
// (lb_evicted_embryonic, lb_evicted_closing instead of lb_conns_expired).
// lb_pressure_new counts new connections' first packets seen under
// pressure; LBUsage tells whether a table is under pressure now.

import "github.com/gvs-lb/gvs/session"

// makeRoom runs before a new connection is inserted: it counts the
// attempt if the table is under pressure and, if the table is full,
// evicts one embryonic or closing connection.
func (w *Worker) makeRoom() {
	if !w.sess.UnderPressure() {
		return
	}
	w.ctr.inc(CtrLBPressureNew)
	if w.sess.Full() {
		w.sess.Evict(w.tick(), w.connEvicted) // does not escape: no allocation (TestEvictionAllocs)
	}
}

// connEvicted is the table's eviction callback (w.onEvict).
func (w *Worker) connEvicted(id uint32, c *session.Conn) {
	w.connRelease(id, c)
	if c.State.Embryonic() {
		w.ctr.inc(CtrLBEvictedEmbryonic)
	} else {
		w.ctr.inc(CtrLBEvictedClosing)
	}
}
