package dataplane

// UOA on FullNAT UDP (ipvs.uoa_max_trail): the first datagrams of each
// IPv4 connection carry the client's address and port in an IPv4 option
// (nat.InsertUOA, DPVS's "ipo" mode), which a UDP server reads with
// IP_RECVOPTS. Several datagrams carry it, not one, because any may be
// lost. The connection counts them in the worker's adjustment table
// (its entry's isn field) and is flagged session.FlagTOAConfirmed when done
// (UDP connections that need none are flagged from the start). A datagram
// that cannot take the option (the egress MTU, IP options) goes without
// it and counts as lb_uoa_failed; the next ones try again.

import (
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/nat"
	"github.com/gvs-lb/gvs/session"
)

// uoaInsert gives the translated datagram in b of connection id (going to
// dst) the UOA and returns the (moved) IP packet.
func (w *Worker) uoaInsert(b *pktbuf.Buf, l3 []byte, c *session.Conn, id uint32, dst netip.Addr) []byte {
	a := &w.sp.conns[id] // isn: datagrams that carried it <<16 | tries
	a.isn++
	trail := uint32(w.dp.opts.UOAMaxTrail)
	if a.isn&0xffff >= 4*trail { // the datagrams keep failing: stop trying
		c.Flags |= session.FlagTOAConfirmed
	}
	if len(l3)+nat.UOALen > w.routeMTU(dst) {
		w.ctr.inc(CtrLBUOAFailed)
		return l3
	}
	if err := nat.InsertUOA(b, int(b.L3), unmapAP(c.CAddrPort())); err != nil {
		w.ctr.inc(CtrLBUOAFailed)
		return l3
	}
	a.isn += 1 << 16
	if a.isn>>16 >= trail {
		c.Flags |= session.FlagTOAConfirmed
	}
	w.ctr.inc(CtrLBUOAAdded)
	return b.Bytes()[b.L3:]
}
