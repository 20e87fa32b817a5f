package dataplane

// SNAT (ipvsadm -J with DPVS's match services, -H): hosts behind GVS —
// real servers without public addresses — open connections to the
// outside through it. A match service selects forwarded packets by
// protocol, source and destination ranges and interfaces; the first packet
// of a connection that matches is scheduled onto one of the service's SNAT
// addresses (its destinations, -r WAN_IP:0), and the connection takes a
// port of that address from this worker's share of the port space,
// exactly as a FullNAT connection takes a local port:
//
//	client (the inside host:port) → virtual (the outside peer:port)
//	local  (SNAT address:port)    → dest    (the outside peer:port)
//
// so the FullNAT translation serves it (source → SNAT address:port on the
// way out, destination → the inside host on the way back), the peer's
// answers come to the SNAT address (a local address of the table: the IPVS
// stage takes them) and are handed to the owner worker by the port's owner
// bits or hardware n-tuple rules, as FullNAT replies are. SNAT connections
// get no TOA and no MSS clamp: they are marked like NAT ones (lbmasq.go).
// They are not synced to peers (their service has no virtual address to
// find them by).

import (
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

// lbSNAT takes a forwarded packet while SNAT connections may exist: a
// packet of one of this worker's SNAT connections is translated, the
// first packet of a new one that matches a service opens it; anything
// else is left to the router.
func (w *Worker) lbSNAT(b *pktbuf.Buf, l3 []byte, t header.Transport, ifc *Iface) verdict {
	if t.Fragment() && !t.HasL4() {
		return w.fragFollow(b, l3, t) // lbmasq.go
	}
	if t.Proto != header.ProtoTCP && t.Proto != header.ProtoUDP {
		return pass
	}
	key, ok := session.KeyAt(l3, t)
	if !ok {
		return pass
	}
	if id, dir, found := w.sess.Lookup(key); found {
		if dir != session.In || !w.isMasq(id) || !w.sess.Get(id).HasLocal() {
			return pass // a NAT reply another path handles, or not ours
		}
		w.lbConn(b, l3, t, id, dir)
		return stolen
	}
	// the flow's connection is another worker's (a fragment of it landed
	// there first): hand the packet over
	if w.toOwner(b, l3, t, &key, session.In) { // lbmasq.go
		return stolen
	}
	if len(w.lb.SNAT) == 0 {
		return pass
	}
	src, dst := key.SrcAddrPort(), key.DstAddrPort()
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	oif := ""
	if r := w.snap.routes.Lookup(dst.Addr()); r != nil {
		if out := w.snap.iface(r.Iface); out != nil {
			oif = out.Name
		}
	}
	for _, svc := range w.lb.SNAT {
		if svc.Match.Packet(ipvs.Proto(t.Proto), src, dst, ifc.Name, oif) {
			return w.lbNew(b, l3, t, svc, key)
		}
	}
	return pass
}

// snatPeer is the port pool's key for every SNAT connection of an
// address: one port space per SNAT address (not per peer, as local
// addresses have per real server), so the pool's memory stays bounded by
// the configuration whatever peers the inside hosts reach; an address
// serves its share of 64K ports per worker at once — give a service more
// SNAT addresses for more.
var snatPeer = netip.AddrPort{}

// snatLocal takes a source port of SNAT address a for a new connection.
func (w *Worker) snatLocal(a netip.Addr) (netip.AddrPort, bool) {
	p, err := w.pool.Get(a, snatPeer)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, p), true
}
