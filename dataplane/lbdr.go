package dataplane

// Direct routing (ipvsadm -g, LVS "Route"): the packet for the virtual
// address goes to the real server unchanged but for its Ethernet header.
// The real server holds the virtual address itself (on a loopback or
// dummy interface, without answering ARP/ND for it) and answers the
// client directly, so replies never come back through the balancer: its
// connections use LVS's input-only state table (session.FlagNoOutput).
// The real server must be on a subnet the dataplane is connected to: a
// next hop other than the real server would route the packet by its
// destination, the virtual address, back here.

import (
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/session"
)

// lbDRConn sends a packet of a direct-routing connection on: the
// client's to the real server by its MAC. The real server answers from
// the virtual address, which no connection key holds and which is the
// dataplane's own address: a reply that comes back through the balancer
// is dropped as a martian (drop_martian), so the real servers' return
// path must not lead here (docs/modes.md). The only packet that finds the
// connection's reply key is one from the real server's own address to
// the client (a real server without the virtual address configured); it
// is routed to the client as transit traffic.
func (w *Worker) lbDRConn(b *pktbuf.Buf, l3 []byte, c *session.Conn, dir session.Direction) {
	if dir == session.In {
		w.destIn(c.Dest, uint64(len(l3)))
		w.ctr.inc(CtrLBIn)
		if t := w.tunnelDest(c.Dest); t != nil { // ipvsadm -i (lbtunnel.go)
			w.lbTunnel(b, l3, t, c.DAddrPort().Addr().Unmap(), c.CAddrPort())
			return
		}
		w.lbDR(b, l3, c.DAddrPort().Addr().Unmap())
		return
	}
	w.destOut(c.Dest, uint64(len(l3)))
	w.ctr.inc(CtrLBOut)
	w.lbRouteOrDrop(b, l3, c.CAddrPort().Addr().Unmap())
}

// lbDR sends l3 unchanged to the real server rs on its own segment.
func (w *Worker) lbDR(b *pktbuf.Buf, l3 []byte, rs netip.Addr) {
	out, nh, ne, ok := w.path(rs, l3)
	if !ok {
		w.drop(b, CtrDropNoRoute)
		return
	}
	if nh != rs {
		w.drop(b, CtrDropLBDRNotOnLink)
		return
	}
	if len(l3) > out.MTU {
		w.drop(b, CtrDropMTUExceeded)
		return
	}
	w.xmitTo(b, out, nh, ne)
}
