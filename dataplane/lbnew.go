package dataplane

// New connections: the first packet of a flow to a service is scheduled
// onto a destination, given a local address and a port from this worker's
// own share of the port space, and entered in the worker's session table.

import (
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/ipvs/sched"
	"github.com/gvs-lb/gvs/session"
)

// lbNew schedules a new connection and sends its first packet.
func (w *Worker) lbNew(b *pktbuf.Buf, l3 []byte, svc *ipvs.Service, key session.Key) verdict {
	midFlow := false
	if key.Proto == header.ProtoTCP {
		if f := tcpFlags(l3); f&(header.TCPFlagSYN|header.TCPFlagACK|header.TCPFlagRST|header.TCPFlagFIN) != header.TCPFlagSYN {
			// mid-flow (mh services that ask for it): an ACK without SYN
			// or RST of a flow this node has no connection for
			if !svc.Spec.MidFlow || f&(header.TCPFlagSYN|header.TCPFlagRST|header.TCPFlagACK) != header.TCPFlagACK {
				w.drop(b, CtrDropLBNotSYN)
				return stolen
			}
			midFlow = true
		}
	}
	client, vip := key.SrcAddrPort(), key.DstAddrPort()
	client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	vip = netip.AddrPortFrom(vip.Addr().Unmap(), vip.Port())
	if len(svc.AllocLAddrs) == 0 {
		w.drop(b, CtrDropLBNoLAddr) // none, or only backup ones
		return stolen
	}
	w.flow = sched.Flow{Src: client.Addr(), SrcPort: client.Port(), Dst: vip.Addr(), DstPort: vip.Port(), Proto: key.Proto}
	i := svc.Scheds[w.id].Pick(&w.flow)
	if i < 0 {
		w.drop(b, CtrDropLBNoDest)
		return stolen
	}
	dest := svc.Dests[i]
	if w.trBuf == b {
		w.traceSchedule(svc, dest)
	}
	daddr := dest.Spec.Addr
	// a local address: round robin over the service's, skipping exhausted ones
	var laddr netip.Addr
	var lport uint16
	for n := 0; n < len(svc.AllocLAddrs); n++ {
		la := svc.AllocLAddrs[w.laddrNext%uint32(len(svc.AllocLAddrs))].Addr
		w.laddrNext++
		if p, err := w.pool.Get(la, daddr); err == nil {
			laddr, lport = la, p
			break
		}
	}
	if !laddr.IsValid() {
		w.drop(b, CtrDropLBNoPort)
		return stolen
	}
	c := session.NewConn(key.Proto, client, vip, netip.AddrPortFrom(laddr, lport), daddr)
	c.Dest, c.Service = dest.ID, svc.ID
	if midFlow {
		c.Flags |= session.FlagMidFlow
	}
	id, err := w.sess.Insert(c, w.tick())
	if err != nil {
		w.pool.Put(laddr, daddr, lport)
		if err == session.ErrFull {
			w.drop(b, CtrDropLBTableFull)
		} else {
			w.drop(b, CtrDropLBInsertFailed) // a key clash (ErrExists) or an invalid conn
		}
		return stolen
	}
	dest.C.Inactive.Add(1)
	dest.Stats.Conns.Add(1) // a service's count is the sum of its destinations'
	w.ctr.inc(CtrLBNewConns)
	if midFlow {
		w.ctr.inc(CtrLBMidFlowConns)
	}
	w.lbConn(b, l3, id, session.In)
	return stolen
}
