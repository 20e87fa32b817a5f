package dataplane

import (
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
)

var v6Drops = [...]Counter{
	header.TooShort:    CtrDropIPv6TooShort,
	header.BadVersion:  CtrDropIPv6BadVersion,
	header.BadTotalLen: CtrDropIPv6BadPayloadLen,
}

// ipv6Input: neighbour discovery and echo for the dataplane's addresses,
// forwarding, and the kernel for the rest (router discovery, multicast
// listeners, the KNI addresses).
func (w *Worker) ipv6Input(b *pktbuf.Buf, ifc *Iface) {
	l3 := int(b.L3)
	ip := header.IPv6(b.Bytes()[l3:])
	if v := ip.Validate(); v != header.Valid {
		w.drop(b, v6Drops[v])
		return
	}
	tl := header.IPv6MinSize + int(ip.PayloadLen())
	b.SetLen(l3 + tl)
	ip = ip[:tl]
	if w.trBuf == b {
		w.traceParse(ifc, 6)
	}
	dst := ip.Dst()
	t := header.LocateIPv6(ip) // the one walk of the extension headers
	// neighbour discovery and echo to the dataplane's addresses come
	// without extension headers (ND must: RFC 4861 hop limit 255, one hop)
	if t.Proto == header.ProtoICMPv6 && t.HasL4() && t.Off == header.IPv6MinSize && w.icmp6Input(b, ip, ifc) == stolen {
		return
	}
	// (neighbour discovery above may come from ::; nothing else may)
	if w.martian6(ip.Src(), dst) {
		w.drop(b, CtrDropMartian)
		return
	}
	if w.lbInput(b, ip, dst, t) == stolen {
		return
	}
	if w.snap.local.Has16(ip.DstBytes()) {
		w.toKNI(b, kniBulk)
		return
	}
	if dst.IsMulticast() || dst.IsLinkLocalUnicast() {
		w.toKNI(b, kniClass6(ip, dst))
		return
	}
	if w.snap.kniAddrs.Has16(ip.DstBytes()) {
		w.toKNI(b, kniControl)
		return
	}
	if w.masqSource(ip) && w.lbMasqReply(b, ip, t) == stolen { // NAT replies (lbmasq.go)
		return
	}
	if w.lb.SNATOn && w.lbSNAT(b, ip, t, ifc) == stolen { // SNAT (lbsnat.go)
		return
	}
	if !w.snap.fwd6 {
		w.toKNIOr(b, CtrDropForwardingDisabled)
		return
	}
	w.forward6(b, ip)
}

// icmp6Input handles NS/NA and echo requests; pass leaves the packet to
// the caller.
func (w *Worker) icmp6Input(b *pktbuf.Buf, ip header.IPv6, ifc *Iface) verdict {
	m := header.ICMPv6(ip.Payload())
	if len(m) < header.ICMPv6MinSize {
		w.drop(b, CtrDropICMPInvalid)
		return stolen
	}
	src, dst := ip.Src(), ip.Dst()
	typ := m.Type()
	switch typ {
	case header.ICMPv6NeighborSolicit, header.ICMPv6NeighborAdvert:
		nd := header.NDP(m)
		if !nd.IsValid() || ip.HopLimit() != 255 || m.Code() != 0 || !header.ICMPv6ChecksumValid(m, src, dst) {
			w.drop(b, CtrDropNDInvalid)
			return stolen
		}
		if typ == header.ICMPv6NeighborSolicit {
			return w.ndSolicit(b, ip, nd, ifc)
		}
		if w.ndAdvert(b, ip, nd, ifc) {
			b.Free() // an answer to the dataplane's own solicitation
			return stolen
		}
		return pass // the kernel may be waiting for it
	case header.ICMPv6EchoRequest:
		if owner, ok := w.snap.local.Get(dst); !ok || owner == 0 {
			return pass
		}
		if w.martian6(src, dst) {
			w.drop(b, CtrDropMartian)
			return stolen
		}
		if !header.ICMPv6ChecksumValid(m, src, dst) {
			w.drop(b, CtrDropICMPInvalid)
			return stolen
		}
		// the pseudo-header sum is symmetric in the addresses: only the
		// type changes the checksum.
		m.SetType(header.ICMPv6EchoReply)
		s, d := src.As16(), dst.As16()
		copy(ip.SrcBytes(), d[:])
		copy(ip.DstBytes(), s[:])
		ip.SetHopLimit(64)
		eth := header.Ethernet(b.Bytes())
		eth.SetDst(eth.Src())
		eth.SetSrc(ifc.MAC)
		w.ctr.inc(CtrEchoReplied)
		w.enqueueTx(ifc.Port, b)
		return stolen
	}
	return pass
}

// ndSolicit answers a solicitation for one of the interface's addresses.
func (w *Worker) ndSolicit(b *pktbuf.Buf, ip header.IPv6, nd header.NDP, ifc *Iface) verdict {
	target := nd.Target()
	owner, ok := w.snap.local.Get(target)
	if !ok || owner != ifc.Index {
		return pass
	}
	src := ip.Src()
	eth := header.Ethernet(b.Bytes())
	reqMAC := eth.Src()
	flags := uint32(header.NAFlagSolicited | header.NAFlagOverride)
	if w.snap.fwd6 {
		flags |= header.NAFlagRouter
	}
	dst := src
	dstMAC := reqMAC
	if src.IsUnspecified() {
		// duplicate address detection: answer all nodes, unsolicited
		dst = netip.AddrFrom16([16]byte{0xff, 0x02, 15: 1})
		dstMAC = header.MulticastMAC(dst)
		flags &^= header.NAFlagSolicited
	} else if mac, ok := nd.LinkAddrOption(header.NDPOptSourceLinkAddr); ok {
		dstMAC = mac
		if w.snap.connectedOn(ifc.Index, src) || src.IsLinkLocalUnicast() {
			// RFC 4861 7.2.3: an NS with a source link-layer address may
			// create a (stale) entry
			w.learn(src, mac, ifc.Index, true)
		}
	}
	// Rewrite the solicitation into the advertisement in place.
	l3 := int(b.L3)
	if !b.SetLen(l3 + header.IPv6MinSize + header.NDPNeighborAdvertSize) {
		w.drop(b, CtrDropNoBuffer)
		return stolen
	}
	ip = header.IPv6(b.Bytes()[l3:])
	ip.Encode(&header.IPv6Fields{PayloadLen: header.NDPNeighborAdvertSize, NextHeader: header.ProtoICMPv6,
		HopLimit: 255, Src: target, Dst: dst})
	na := header.NDP(ip.Payload())
	na.EncodeNA(target, flags, ifc.MAC)
	header.ICMPv6(na).SetChecksum(header.ICMPv6Checksum(na, target, dst))
	eth = header.Ethernet(b.Bytes())
	eth.SetDst(dstMAC)
	eth.SetSrc(ifc.MAC)
	w.ctr.inc(CtrNDReplied)
	w.enqueueTx(ifc.Port, b)
	return stolen
}

// ndAdvert learns from advertisements for neighbours the dataplane asked
// about or already knows (RFC 4861 7.2.5: an NA never creates an entry by
// itself); it reports whether the advertisement was addressed to a dataplane
// address (and so is consumed).
func (w *Worker) ndAdvert(b *pktbuf.Buf, ip header.IPv6, nd header.NDP, ifc *Iface) bool {
	target := nd.Target()
	mac, ok := nd.LinkAddrOption(header.NDPOptTargetLinkAddr)
	if !ok {
		mac = header.Ethernet(b.Bytes()).Src()
	}
	local := w.snap.local.Has(ip.Dst())
	if !mac.IsMulticast() && (w.snap.connectedOn(ifc.Index, target) || target.IsLinkLocalUnicast()) {
		w.learn(target, mac, ifc.Index, false)
	}
	return local
}

// kniClass6 puts neighbour and router discovery, link-scope multicast
// (OSPFv3, MLD, …) and link-local unicast (BGP and ND between link-local
// addresses) in the control class of the exception path.
func kniClass6(ip header.IPv6, dst netip.Addr) kniClass {
	if dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() || dst.IsInterfaceLocalMulticast() {
		return kniControl
	}
	if t := header.LocateIPv6(ip); t.Proto == header.ProtoICMPv6 && t.HasL4() {
		if m := header.ICMPv6(ip[t.Off:t.End]); len(m) >= header.ICMPv6MinSize && m.Type() >= 133 && m.Type() <= 137 {
			return kniControl
		}
	}
	return kniBulk
}

// forward6 routes a transit packet.
func (w *Worker) forward6(b *pktbuf.Buf, ip header.IPv6) {
	out, nh, ne, ok := w.path(ip.Dst(), ip)
	if !ok {
		w.icmp6Error(b, ip, header.ICMPv6DstUnreachable, 0, 0)
		w.drop(b, CtrDropNoRoute)
		return
	}
	if ip.HopLimit() <= 1 {
		w.icmp6Error(b, ip, header.ICMPv6TimeExceeded, 0, 0)
		w.drop(b, CtrDropTTLExceeded)
		return
	}
	if len(ip) > out.MTU {
		w.icmp6Error(b, ip, header.ICMPv6PacketTooBig, 0, uint32(out.MTU))
		w.drop(b, CtrDropMTUExceeded)
		return
	}
	ip.SetHopLimit(ip.HopLimit() - 1)
	w.ctr.inc(CtrForwarded)
	w.xmitTo(b, out, nh, ne)
}

// martian6 reports source addresses no host may use: multicast, loopback,
// one of the dataplane's own, or the unspecified address towards a unicast
// destination (duplicate address detection and MLD use :: towards
// multicast groups: those go to the kernel).
func (w *Worker) martian6(src, dst netip.Addr) bool {
	if src.IsUnspecified() {
		return !dst.IsMulticast()
	}
	if src.IsMulticast() || src.IsLoopback() {
		return true
	}
	own := w.snap.local.Has(src)
	return own
}
