package dataplane

// ICMP errors that quote a connection's packet are translated for the
// other side of the connection.

import (
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/nat"
	"github.com/gvs-lb/gvs/session"
)

// lbICMP translates ICMP errors about load-balanced connections.
func (w *Worker) lbICMP(b *pktbuf.Buf, l3 []byte) verdict {
	e, err := nat.ParseICMPError(l3)
	if err != nil {
		return pass // echo and friends: local delivery
	}
	if !icmpChecksumValid(l3) {
		// a corrupt error must not steer a connection (and its
		// incremental translation would stay corrupt)
		w.drop(b, CtrDropICMPInvalid)
		return stolen
	}
	// the quoted packet went the other way: its reverse is a conn key
	key := session.MakeKey(e.InnerProto, netip.AddrPortFrom(e.Inner.Dst, e.Inner.DstPort), netip.AddrPortFrom(e.Inner.Src, e.Inner.SrcPort))
	id, dir, found := w.sess.Lookup(key)
	if !found {
		if w.lb.LAddrs.Has(e.Inner.Src) {
			if owner := w.dp.steer.Owner(e.Inner.SrcPort); owner != w.id && owner < len(w.dp.workers) {
				w.redirect(b, owner)
				return stolen
			}
		}
		w.drop(b, CtrDropLBNoConn)
		return stolen
	}
	c := w.sess.Get(id)
	if isNAT64(c) {
		w.lbICMP64(b, l3, c, id, dir) // the other family (lbnat64.go)
		return stolen
	}
	if !c.HasLocal() && !w.isMasq(id) {
		// direct routing: nothing was translated; the client's error about
		// the real server's reply (which bypassed us) goes to the real
		// server as it is, like the connection's packets
		w.ctr.inc(CtrLBICMPTranslated)
		w.lbDRConn(b, l3, c, dir)
		return stolen
	}
	var outerSrc, outerDst netip.Addr
	var inner nat.Endpoints
	if dir == session.Out {
		// from the real server's side about L→D: tell the client about C→V
		outerSrc, outerDst = c.VAddrPort().Addr().Unmap(), c.CAddrPort().Addr().Unmap()
		inner = nat.Endpoints{Src: outerDst, Dst: outerSrc, SrcPort: c.CPort, DstPort: c.VPort}
	} else {
		// from the client's side about V→C: tell the real server about D→L
		outerSrc, outerDst = c.LAddrPort().Addr().Unmap(), c.DAddrPort().Addr().Unmap()
		inner = nat.Endpoints{Src: outerDst, Dst: outerSrc, SrcPort: c.DPort, DstPort: c.LPort}
	}
	if err := nat.TranslateICMPError(l3, outerSrc, outerDst, &inner); err != nil {
		w.drop(b, CtrDropICMPInvalid)
		return stolen
	}
	if c.Flags&session.FlagAdjusted != 0 && e.InnerProto == header.ProtoTCP {
		w.adjustQuote(l3, id, dir) // the receiver's own sequence numbers (lbsynproxy.go)
	}
	if dir == session.Out {
		// a path MTU for the client: less what GVS still adds to its
		// segments (fragmentation-needed and packet-too-big only)
		if extra := w.growthPending(c, id); extra > 0 {
			nat.AdjustICMPMTU(l3, -extra)
		}
	}
	w.ctr.inc(CtrLBICMPTranslated)
	w.lbRouteOrDrop(b, l3, outerDst)
	return stolen
}

// icmpChecksumValid checks the ICMP or ICMPv6 checksum of a validated IP
// packet whose payload ParseICMPError accepted.
func icmpChecksumValid(l3 []byte) bool {
	if l3[0]>>4 == 4 {
		return header.ICMPv4(header.IPv4(l3).Payload()).ChecksumValid()
	}
	ip := header.IPv6(l3)
	t := header.LocateIPv6(ip) // the message may sit behind extension headers
	if !t.HasL4() || int(t.End) > len(l3) {
		return false
	}
	return header.ICMPv6ChecksumValid(header.ICMPv6(l3[t.Off:t.End]), ip.Src(), ip.Dst())
}
