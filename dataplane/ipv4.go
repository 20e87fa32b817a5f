package dataplane

import (
	"encoding/binary"
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
)

var v4Drops = [...]Counter{
	header.TooShort:     CtrDropIPv4TooShort,
	header.BadVersion:   CtrDropIPv4BadVersion,
	header.BadHeaderLen: CtrDropIPv4BadHeaderLen,
	header.BadTotalLen:  CtrDropIPv4BadTotalLen,
	header.BadChecksum:  CtrDropIPv4BadChecksum,
}

// ipv4Input validates the header once, then delivers locally, forwards or
// hands the packet to the kernel.
func (w *Worker) ipv4Input(b *pktbuf.Buf, ifc *Iface) {
	l3 := int(b.L3)
	ip := header.IPv4(b.Bytes()[l3:])
	if v := ip.Validate(); v != header.Valid {
		w.drop(b, v4Drops[v])
		return
	}
	tl := int(ip.TotalLen())
	b.SetLen(l3 + tl) // strip Ethernet padding
	ip = ip[:tl]
	if w.trBuf == b {
		w.traceParse(ifc, 4)
	}
	if w.martian4(ifc, ip) {
		w.drop(b, CtrDropMartian)
		return
	}
	dst := ip.Dst()
	t := header.LocateIPv4(ip) // where the transport header is, for every stage
	if w.lbInput(b, ip, dst, t) == stolen {
		return
	}
	if w.snap.local.Has4(ip.DstBytes()) {
		if ip.Protocol() == header.ProtoICMP && !ip.IsFragment() && w.icmp4Local(b, ip, ifc) == stolen {
			return
		}
		w.toKNI(b, kniBulk)
		return
	}
	if d := binary.BigEndian.Uint32(ip.DstBytes()); d>>28 == 0xe || d == 0xffffffff || isBcast4(ifc, ip.DstBytes()) {
		class := kniBulk
		if d>>8 == 224<<16 {
			class = kniControl // link-local multicast (224.0.0.0/24): OSPF, VRRP, …
		}
		w.toKNI(b, class)
		return
	}
	if w.snap.kniAddrs.Has4(ip.DstBytes()) {
		w.toKNI(b, kniControl)
		return
	}
	if w.masqSource(ip) && w.lbMasqReply(b, ip, t) == stolen { // NAT replies (lbmasq.go)
		return
	}
	if w.lb.SNATOn && w.lbSNAT(b, ip, t, ifc) == stolen { // SNAT (lbsnat.go)
		return
	}
	if !w.snap.fwd4 {
		w.toKNIOr(b, CtrDropForwardingDisabled)
		return
	}
	w.forward4(b, ip)
}

// icmp4Local handles ICMP to a dataplane address; pass leaves the packet to
// the caller (to the kernel).
func (w *Worker) icmp4Local(b *pktbuf.Buf, ip header.IPv4, ifc *Iface) verdict {
	m := header.ICMPv4(ip.Payload())
	if len(m) < header.ICMPv4MinSize || !m.ChecksumValid() {
		w.drop(b, CtrDropICMPInvalid)
		return stolen
	}
	if m.Type() != header.ICMPv4EchoRequest {
		return pass
	}
	// Echo reply in place: back to the L2 sender, like the reply direction
	// of a connection; a VLAN tag stays.
	m.SetType(header.ICMPv4EchoReply)
	ip.SwapAddrs()
	ip[8] = 64 // TTL
	ip.SetChecksum(0)
	ip.SetChecksum(^header.Checksum(ip[:ip.HeaderLen()], 0))
	eth := header.Ethernet(b.Bytes())
	eth.SetDst(eth.Src())
	eth.SetSrc(ifc.MAC)
	w.ctr.inc(CtrEchoReplied)
	w.enqueueTx(ifc.Port, b)
	return stolen
}

// forward4 routes a transit packet.
func (w *Worker) forward4(b *pktbuf.Buf, ip header.IPv4) {
	out, nh, ne, ok := w.path(ip.Dst(), ip)
	if !ok {
		w.icmp4Error(b, ip, header.ICMPv4DstUnreachable, 0 /* net unreachable */, 0)
		w.drop(b, CtrDropNoRoute)
		return
	}
	if ip.TTL() <= 1 {
		w.icmp4Error(b, ip, header.ICMPv4TimeExceeded, 0, 0)
		w.drop(b, CtrDropTTLExceeded)
		return
	}
	if len(ip) > out.MTU {
		if ip.DontFragment() {
			w.icmp4Error(b, ip, header.ICMPv4DstUnreachable, 4 /* frag needed */, uint16(out.MTU))
		}
		w.drop(b, CtrDropMTUExceeded)
		return
	}
	ip.DecTTL()
	w.ctr.inc(CtrForwarded)
	w.xmitTo(b, out, nh, ne)
}

// martian4 reports source addresses no host may use (RFC 1812 5.3.7):
// multicast, loopback, broadcast, one of the dataplane's own, or 0.0.0.0
// towards a unicast destination (a DHCP client's broadcast is fine: it goes
// to the kernel).
func (w *Worker) martian4(ifc *Iface, ip header.IPv4) bool {
	// on the header's words: per packet, netip's tests cost more than these
	s, d := binary.BigEndian.Uint32(ip.SrcBytes()), binary.BigEndian.Uint32(ip.DstBytes())
	const bcast = 0xffffffff
	if s == 0 {
		return d>>28 != 0xe && d != bcast // 224.0.0.0/4: multicast
	}
	if s>>28 == 0xe || s>>24 == 127 || s == bcast {
		return true
	}
	if w.snap.local.Has4(ip.SrcBytes()) {
		return true
	}
	return isBcast4(ifc, ip.SrcBytes())
}

// isBcast4 reports whether the IPv4 address a[:4] is the broadcast
// address of one of the interface's subnets.
func isBcast4(ifc *Iface, a []byte) bool {
	for _, b := range ifc.bcast4 {
		if b.As4() == [4]byte(a) {
			return true
		}
	}
	return false
}

func lastAddr4(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= ^uint32(0) >> p.Bits()
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
