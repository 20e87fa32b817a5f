package dataplane

// The output half of the pipeline: next-hop resolution, the L2 header for
// the outgoing interface (with its VLAN tag), the per-port tx buffers, the
// bounded queue of packets waiting for ARP/ND, and the packets the dataplane
// originates (resolution requests, ICMP errors).

import (
	"encoding/binary"
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
)

// xmit sends an IP packet (b.L3 marks its start) out of iface towards the
// on-link next hop nh, resolving nh first if needed.
func (w *Worker) xmit(b *pktbuf.Buf, out *Iface, nh netip.Addr) {
	if w.trBuf == b {
		w.traceXmit(out, nh) // route and neighbour (trace.go)
	}
	e, ok := w.neigh.Get(nh)
	if !ok || e.iface != out.Index {
		w.hold(b, out, nh)
		return
	}
	if !e.static && w.now-e.confirmed.Load() > int64(w.dp.neigh.reachable) {
		w.probe(out, nh, e.mac) // still usable while the probe is out
	}
	w.output(b, out, e.mac)
}

// output writes the L2 header for out and buffers the frame for its port.
func (w *Worker) output(b *pktbuf.Buf, out *Iface, dst header.MAC) {
	need := header.EthernetMinSize
	if out.Kind == KindVLAN {
		need += header.VLANSize
	}
	l3 := int(b.L3)
	var et uint16 = header.EtherTypeIPv4
	if b.Len() > l3 && b.Bytes()[l3]>>4 == 6 {
		et = header.EtherTypeIPv6
	}
	if l3 != need {
		if l3 > need {
			b.Adj(l3 - need)
		} else if b.Prepend(need-l3) == nil {
			w.drop(b, CtrDropNoBuffer)
			return
		}
		b.L3 = uint16(need)
	}
	w.writeL2(b.Bytes(), out, dst, et)
	w.enqueueTx(out.Port, b)
}

func (w *Worker) writeL2(pkt []byte, out *Iface, dst header.MAC, et uint16) {
	eth := header.Ethernet(pkt)
	eth.SetDst(dst)
	eth.SetSrc(out.MAC)
	if out.Kind == KindVLAN {
		header.VLAN(pkt[12:]).SetTCI(out.VID)
		binary.BigEndian.PutUint16(pkt[16:], et)
	} else {
		eth.SetType(et)
	}
}

// hold queues b until nh is resolved and sends a resolution request.
func (w *Worker) hold(b *pktbuf.Buf, out *Iface, nh netip.Addr) {
	if len(w.pending) >= w.maxPending {
		w.drop(b, CtrDropNeighQueueFull)
		return
	}
	w.pending = append(w.pending, pendingPkt{b: b, nh: nh, iface: out.Index, at: w.now})
	w.ctr.inc(CtrNeighQueued)
	w.probe(out, nh, header.BroadcastMAC)
}

func (w *Worker) isPending(a netip.Addr) bool {
	for i := range w.pending {
		if w.pending[i].nh == a {
			return true
		}
	}
	return false
}

// servicePending sends what became resolvable and drops what waited too
// long. resolved says the neighbour table just changed.
func (w *Worker) servicePending(resolved bool) {
	w.lastPending = w.now
	keep := w.pending[:0]
	for _, p := range w.pending {
		out := w.snap.iface(p.iface)
		if out == nil {
			w.drop(p.b, CtrDropNoRoute)
			continue
		}
		if e, ok := w.neigh.Get(p.nh); ok && e.iface == p.iface {
			w.output(p.b, out, e.mac)
			continue
		}
		if w.now-p.at > int64(neighPendingMaxAge) {
			w.drop(p.b, CtrDropNeighUnresolved)
			continue
		}
		if !resolved {
			w.probe(out, p.nh, header.BroadcastMAC)
		}
		keep = append(keep, p)
	}
	clear(w.pending[len(keep):])
	w.pending = keep
}

// probe sends an ARP request or neighbour solicitation for nh, at most once
// per neighProbeInterval per worker. dst is the known MAC for a unicast
// re-confirmation, or broadcast.
func (w *Worker) probe(out *Iface, nh netip.Addr, dst header.MAC) {
	if last, ok := w.lastProbe[nh]; ok && w.now-last < int64(neighProbeInterval) {
		return
	}
	if len(w.lastProbe) > 4096 {
		clear(w.lastProbe) // bounded: a flood of unresolvable next hops
	}
	w.lastProbe[nh] = w.now
	w.dp.neigh.solicit.mark(nh, w.now) // its answer is needed (neigh.go)
	src, ok := w.snap.sourceFor(out.Index, nh)
	if !ok {
		return
	}
	b := w.queues[out.Port].Alloc()
	if b == nil {
		w.ctr.inc(CtrDropNoBuffer)
		return
	}
	l2 := header.EthernetMinSize
	if out.Kind == KindVLAN {
		l2 += header.VLANSize
	}
	if nh.Is4() {
		buf := b.Append(l2 + header.ARPSize)
		w.writeL2(buf, out, dst, header.EtherTypeARP)
		header.ARP(buf[l2:]).Set(header.ARPRequest, out.MAC, src, header.MAC{}, nh)
		w.ctr.inc(CtrARPRequested)
	} else {
		ipDst := nh
		if dst == header.BroadcastMAC {
			ipDst = header.SolicitedNodeMulticast(nh)
			dst = header.MulticastMAC(ipDst)
		}
		buf := b.Append(l2 + header.IPv6MinSize + header.NDPNeighborSolicitSize)
		w.writeL2(buf, out, dst, header.EtherTypeIPv6)
		ip := header.IPv6(buf[l2:])
		ip.Encode(&header.IPv6Fields{PayloadLen: header.NDPNeighborSolicitSize, NextHeader: header.ProtoICMPv6,
			HopLimit: 255, Src: src, Dst: ipDst})
		ns := header.NDP(ip.Payload())
		ns.EncodeNS(nh, out.MAC)
		header.ICMPv6(ns).SetChecksum(header.ICMPv6Checksum(ns, src, ipDst))
		w.ctr.inc(CtrNDSolicited)
	}
	w.enqueueTx(out.Port, b)
}

// icmp4Error sends an ICMP error about the packet ip (still owned by the
// caller) back to its source, rate-limited.
func (w *Worker) icmp4Error(b *pktbuf.Buf, ip header.IPv4, typ, code uint8, mtu uint16) {
	orig := ip.Src()
	if ip.Protocol() == header.ProtoICMP {
		if p := ip.Payload(); len(p) > 0 && p[0] != header.ICMPv4EchoRequest && p[0] != header.ICMPv4EchoReply {
			return // never an error about an error
		}
	}
	if ip.IsFragment() && ip.FlagsFrag()&0x1fff != 0 {
		return // only about first fragments
	}
	out, src, nh, ok := w.icmpErrorRoute(b, orig)
	if !ok {
		return
	}
	quote := len(ip)
	if quote > 576-header.IPv4MinSize-header.ICMPv4MinSize {
		quote = 576 - header.IPv4MinSize - header.ICMPv4MinSize
	}
	nb := w.queues[out.Port].Alloc()
	if nb == nil {
		w.ctr.inc(CtrDropNoBuffer)
		return
	}
	nb.L3 = 0 // the buffer's headroom takes the L2 header in output
	pkt := nb.Append(header.IPv4MinSize + header.ICMPv4MinSize + quote)
	header.IPv4(pkt).Encode(&header.IPv4Fields{TotalLen: uint16(len(pkt)), TTL: 64, Protocol: header.ProtoICMP,
		Src: src, Dst: orig})
	m := header.ICMPv4(pkt[header.IPv4MinSize:])
	m[0], m[1] = typ, code
	binary.BigEndian.PutUint32(m[4:], uint32(mtu))
	copy(m[header.ICMPv4MinSize:], ip[:quote])
	m.SetChecksum(0)
	m.SetChecksum(^header.Checksum(m, 0))
	w.ctr.inc(CtrICMPErrorsSent)
	w.xmit(nb, out, nh)
}

// icmpErrorRoute applies the ICMP error rate limit and finds the way back
// to orig: the outgoing interface, the source address (one of the
// receiving interface's) and the next hop.
func (w *Worker) icmpErrorRoute(b *pktbuf.Buf, orig netip.Addr) (out *Iface, src, nh netip.Addr, ok bool) {
	if !w.icmpBucket.allow(w.now) {
		return nil, src, nh, false
	}
	r := w.snap.routes.Lookup(orig)
	if r == nil {
		return nil, src, nh, false
	}
	out = w.snap.iface(r.Iface)
	src, ok = w.snap.sourceFor(b.Iface, orig)
	if out == nil || !ok {
		return nil, src, nh, false
	}
	return out, src, r.NextHop(orig), true
}

// icmp6Error is icmp4Error for IPv6 (RFC 4443): quote as much as fits in
// the minimum MTU.
func (w *Worker) icmp6Error(b *pktbuf.Buf, ip header.IPv6, typ, code uint8, param uint32) {
	orig := ip.Src()
	if orig.IsUnspecified() || orig.IsMulticast() {
		return
	}
	// no error about an ICMPv6 error (RFC 4443 §2.4 e), behind extension
	// headers too, nor about a later fragment of an ICMPv6 message
	if t := header.LocateIPv6(ip[:min(len(ip), header.IPv6MinSize+int(ip.PayloadLen()))]); t.Proto == header.ProtoICMPv6 {
		if !t.HasL4() || int(t.Off) < int(t.End) && ip[t.Off] < 128 {
			return
		}
	}
	out, src, nh, ok := w.icmpErrorRoute(b, orig)
	if !ok {
		return
	}
	quote := len(ip)
	if max := 1280 - header.IPv6MinSize - header.ICMPv6MinSize; quote > max {
		quote = max
	}
	nb := w.queues[out.Port].Alloc()
	if nb == nil {
		w.ctr.inc(CtrDropNoBuffer)
		return
	}
	plen := header.ICMPv6MinSize + quote
	pkt := nb.Append(header.IPv6MinSize + plen)
	if pkt == nil {
		nb.Free()
		return
	}
	nb.L3 = 0
	h := header.IPv6(pkt)
	h.Encode(&header.IPv6Fields{PayloadLen: uint16(plen), NextHeader: header.ProtoICMPv6, HopLimit: 64, Src: src, Dst: orig})
	m := header.ICMPv6(pkt[header.IPv6MinSize:])
	m[0], m[1] = typ, code
	binary.BigEndian.PutUint32(m[4:], param)
	copy(m[header.ICMPv6MinSize:], ip[:quote])
	m.SetChecksum(header.ICMPv6Checksum(m, src, orig))
	w.ctr.inc(CtrICMPErrorsSent)
	w.xmit(nb, out, nh)
}
