package dataplane

// The IPVS stage of the worker pipeline: FullNAT load balancing. It sees
// every valid IPv4/IPv6 packet whose destination is a virtual or local
// address of a service, before local delivery.
//
//   - A packet of a known connection (either direction, looked up in this
//     worker's session table) is translated by nat.Rewrite — client→VIP
//     becomes LIP→real server, and back — and routed on.
//   - The first packet of a new connection (TCP SYN, any UDP) to a service
//     is scheduled onto a destination; the connection takes a local address
//     and a local port from this worker's own share of the port space.
//   - A reply to a local address whose port belongs to another worker is
//     handed to that worker over a per-pair frame ring (software flow
//     steering); hardware n-tuple rules make that rare where NICs have them.
//   - ICMP errors about a connection are translated for the other side.
//
// The stage is split by concept, as DPVS splits ip_vs_core/conn/xmit:
// this file dispatches; lbnew.go creates connections, lbconn.go forwards
// packets of known ones (lbtoa.go: the TOA), lbicmp.go translates ICMP
// errors, lbredirect.go hands packets between workers, lbexpire.go releases
// expired connections, lbfrag.go forwards fragments. IPv6 extension headers
// were walked by the L3 stage (header.LocateIPv6): t.Off is the transport
// header wherever it is.
//
// Everything here runs on the worker's thread without locks; the only
// shared writes are the destinations' atomic connection counters.

import (
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

// lbInput returns stolen when the IPVS stage took b. l3 is the validated
// IP packet, trimmed to its length; t is where the L3 stage found its
// transport header (the one parse of the packet every stage uses).
func (w *Worker) lbInput(b *pktbuf.Buf, l3 []byte, dst netip.Addr, t header.Transport) verdict {
	tbl := w.lb
	if t.V6() && !tbl.Addrs.Has16(header.IPv6(l3).DstBytes()) || !t.V6() && !tbl.Addrs.Has4(header.IPv4(l3).DstBytes()) {
		return pass
	}
	switch t.Proto {
	case header.ProtoTCP, header.ProtoUDP:
	case header.ProtoICMP, header.ProtoICMPv6:
		return w.lbICMP(b, l3)
	default:
		if t.Fragment() && !t.HasL4() && t.V6() && header.IPv6OptionsNext(t.Proto) {
			break // an IPv6 fragment whose fragmentable part starts with options
		}
		if t.Fragment() {
			return pass // a fragment of another protocol (GRE, ESP…): the kernel's
		}
		if t.V6() && !t.HasL4() {
			w.drop(b, CtrDropLBExtHeader) // a routing header with segments left, a chain too long or cut
			return stolen
		}
		return pass
	}
	if !t.HasL4() { // a later fragment: as its first went (lbfrag.go)
		return w.lbFragLater(b, l3, t)
	}
	id, dir, found, ok := w.sess.LookupAt(l3, t)
	if !ok {
		w.drop(b, CtrDropLBBadL4)
		return stolen
	}
	if w.trBuf == b {
		w.traceLookup(found, dir, id)
	}
	if found {
		if tbl.ACL && dir == session.In && !w.lbACLConn(b, id) { // lbacl.go
			return stolen
		}
		w.lbConn(b, l3, t, id, dir)
		return stolen
	}
	key, _ := session.KeyAt(l3, t) // LookupAt's ok is KeyAt's
	if tbl.LAddrs.Has(dst) {
		if owner := w.dp.steer.Owner(key.DstPort); owner != w.id && owner < len(w.dp.workers) {
			if t.Fragment() {
				w.fragRecord(l3, t, session.NoID, session.Out, int32(owner)) // the rest follow it
			}
			w.redirect(b, owner)
			return stolen
		}
		w.drop(b, CtrDropLBNoConn)
		return stolen
	}
	svc := tbl.Lookup(ipvs.Proto(t.Proto), dst, key.DstPort)
	if svc == nil {
		// a port of a virtual address without a service: nobody behind it
		// (punting it would let a flood use up the kernel's share)
		w.drop(b, CtrDropLBNoService)
		return stolen
	}
	if t.Fragment() && (svc.Spec.OnePacket || svc.Spec.SynProxy && t.Proto == header.ProtoTCP) {
		// no connection to follow, or a datagram GVS would change; its
		// later fragments go at once
		w.fragRecord(l3, t, session.NoID, session.In, fragRefused)
		w.drop(b, CtrDropLBFragUnsupported)
		return stolen
	}
	// a connection another worker holds for this flow: one session sync
	// installed there, or NAT/SNAT made where a fragment of the flow landed
	if w.toOwner(b, l3, t, &key, session.In) { // lbmasq.go
		return stolen
	}
	if svc.Spec.SynProxy && t.Proto == header.ProtoTCP {
		return w.synProxyNew(b, l3, t, svc, key) // lbsynproxy.go
	}
	return w.lbNew(b, l3, t, svc, key)
}

// tick is the iteration's time in session-table ticks, divided once per
// iteration (setNow), not per packet.
func (w *Worker) tick() uint32 { return w.nowTick }

// setNow sets the worker's clock and its session-table tick.
func (w *Worker) setNow(now int64) {
	w.now = now
	w.nowTick = uint32(now / int64(w.sessTick))
}
