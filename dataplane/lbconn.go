package dataplane

// Packets of known connections: the session state is updated, the
// addresses and ports are rewritten (nat.Rewrite, with TOA handling on the
// way in), and the packet is routed on.

import (
	"encoding/binary"
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/nat"
	"github.com/gvs-lb/gvs/session"
)

// lbConn translates a packet of connection id and routes it on.
func (w *Worker) lbConn(b *pktbuf.Buf, l3 []byte, t header.Transport, id uint32, dir session.Direction) {
	c := w.sess.Get(id)
	if len(w.lb.ExpireDests) > 0 {
		if _, gone := w.lb.ExpireDests[c.Dest]; gone {
			w.sess.ExpireNow(id)
			w.drop(b, CtrDropLBExpiredDest)
			return
		}
	}
	if t.Fragment() && !w.fragFirst(b, l3, t, id, dir, c) { // the first fragment of a datagram (lbfrag.go)
		return
	}
	flags := t.TCPFlags(l3)
	if dir == session.Out && c.Proto == header.ProtoTCP && w.sess.KeepsEnds() {
		w.noteEnds(id, l3, t, flags) // for the resets at its end (lbreset.go)
	}
	if c.Flags&session.FlagAdjusted != 0 { // SYN proxy, proxy protocol (lbsynproxy.go, lbproxyproto.go)
		var ok bool
		if l3, ok = w.adjustConn(b, l3, t, id, c, dir); !ok {
			return
		}
		flags = t.TCPFlags(l3) // a cut segment loses its FIN
	}
	// the method is the connection's own, fixed when it was made (a local
	// address: FullNAT; none: direct routing, or NAT when marked), so
	// editing a real server's method leaves its open connections as they
	// began, as in LVS
	fullNAT := c.HasLocal()
	marked := w.isMasq(id) // NAT or SNAT: nothing is added (lbmasq.go, lbsnat.go)
	masq := !fullNAT && marked
	var toa bool // insert the TOA (see lbtoa.go)
	if c.Proto == header.ProtoTCP && dir == session.In && fullNAT && !marked && !toaSettled(l3, t, c) {
		var ok bool
		if toa, ok = w.toaIn(b, l3, t, c, flags); !ok {
			return
		}
	}
	old := c.State
	if c.Proto == header.ProtoTCP {
		if _, ch := w.sess.Update(id, dir, flags, w.tick()); ch != session.Unchanged {
			if d := w.lb.Dests[c.Dest]; d != nil {
				da, di := ch.Deltas()
				d.C.Active.Add(int64(da))
				d.C.Inactive.Add(int64(di))
			}
		}
	} else {
		w.sess.Touch(id, w.tick())
	}
	if w.syncPol != nil {
		w.syncIn(c, id, dir, old) // session sync (sync.go)
	}
	if !fullNAT && !masq {
		w.lbDRConn(b, l3, c, dir)
		return
	}
	if dir == session.In {
		w.destIn(c.Dest, uint64(len(l3)))
		w.ctr.inc(CtrLBIn)
	} else {
		w.destOut(c.Dest, uint64(len(l3)))
		if c.Proto == header.ProtoTCP {
			toaOut(c, flags)
		}
		w.ctr.inc(CtrLBOut)
	}
	if w.plain(b, t, c, dir, fullNAT && !marked, flags, toa) && w.lbPlain4(b, l3, t, c, dir) {
		return
	}
	var to nat.Endpoints
	if dir == session.In {
		// field by field: a composite literal is built in a temporary and
		// copied with wide loads that stall on its narrow stores
		to.Src, to.Dst, to.SrcPort, to.DstPort = c.LAddrPort().Addr().Unmap(), c.DAddrPort().Addr().Unmap(), c.LPort, c.DPort
	} else {
		to.Src, to.Dst, to.SrcPort, to.DstPort = c.VAddrPort().Addr().Unmap(), c.CAddrPort().Addr().Unmap(), c.VPort, c.CPort
	}
	if isNAT64(c) {
		w.lbNAT64(b, l3, t, c, id, dir, &to, flags, toa) // a new IP header (lbnat64.go)
		return
	}
	if err := nat.RewriteAt(l3, t, &to); err != nil {
		w.drop(b, CtrDropLBBadL4)
		return
	}
	if w.trBuf == b {
		w.traceRewrite(dir, &to)
	}
	if dir == session.Out && fullNAT && !marked && flags&(header.TCPFlagSYN|header.TCPFlagACK) == header.TCPFlagSYN|header.TCPFlagACK {
		// leave room for the TOA (or proxy protocol header) the client's
		// first segment will carry
		w.clampMSS(l3, c.DAddrPort().Addr().Unmap(), w.firstSegmentExtra(c, id))
	}
	if fullNAT && !marked && !toa && (w.xdp.on || !w.xdp.init) {
		w.xdpOffer(b, l3, t, c, id, dir, flags, &to) // lbxdp.go
	}
	n := len(l3)
	if toa {
		l3 = w.toaInsert(b, l3, c, to.Dst)
	} else if c.Proto == header.ProtoUDP && dir == session.In && c.Flags&session.FlagTOAConfirmed == 0 && !t.Fragment() {
		l3 = w.uoaInsert(b, l3, c, id, to.Dst) // lbuoa.go
	}
	if (len(w.xdp.held) > 0 || len(w.xdp.drain) > 0) && w.xdpHold(b, l3, t, to.Dst, id, dir) {
		return // its direction just left the XDP fast path (lbxdp.go)
	}
	if mtu := w.lbRoute(b, l3, to.Dst); mtu > 0 {
		w.lbTooBig(b, l3, t, c, id, dir, mtu, len(l3) != n)
	}
}

// plain reports that nothing but the translation and the route happens to
// a packet of connection c from here on (the steps of lbConn after
// nat.RewriteAt that lbPlain4 leaves out): it is IPv4 and not traced, gets
// no TOA or UOA, no MSS clamp, is not offered to or held for the XDP fast
// path. fnat is a FullNAT connection (a local address, not NAT or SNAT).
func (w *Worker) plain(b *pktbuf.Buf, t header.Transport, c *session.Conn, dir session.Direction, fnat bool, flags uint8, toa bool) bool {
	const synAck = header.TCPFlagSYN | header.TCPFlagACK
	switch {
	case t.V6() || toa || w.trBuf == b || len(w.xdp.held) > 0 || len(w.xdp.drain) > 0:
		return false
	case fnat && (w.xdp.on || !w.xdp.init): // xdpOffer
		return false
	case fnat && dir == session.Out && flags&synAck == synAck: // clampMSS
		return false
	case c.Proto == header.ProtoUDP && dir == session.In && c.Flags&session.FlagTOAConfirmed == 0 && !t.Fragment(): // uoaInsert
		return false
	}
	return true
}

// lbPlain4 translates a plain (see plain) IPv4 packet of connection c in
// direction dir, decrements its TTL and sends it on, in one pass
// (nat.Forward4): the outcome of nat.RewriteAt and lbRoute without their
// separate checksum updates and without netip.Addr values on the way. It
// returns false, with the packet unchanged, when lbRoute has more to do: a
// path not in the destination cache (a first packet; a multipath route,
// where lbRoute routes the translated packet's flow), an unresolved next
// hop, a packet too big for the egress MTU, a TTL that expires, a packet
// RewriteAt refuses; and for an IPv6 connection (NAT64 included).
func (w *Worker) lbPlain4(b *pktbuf.Buf, l3 []byte, t header.Transport, c *session.Conn, dir session.Direction) bool {
	var s, d *[16]byte
	var sp, dp uint16
	if dir == session.In {
		s, d, sp, dp = &c.LAddr, &c.DAddr, c.LPort, c.DPort
	} else {
		s, d, sp, dp = &c.VAddr, &c.CAddr, c.VPort, c.CPort
	}
	if !session.IsMapped4(s) || !session.IsMapped4(d) {
		return false
	}
	dst := binary.BigEndian.Uint32(d[12:])
	// before the packet changes: a cached path is the same for any flow
	out, nh, ne, ok := w.cachedPath(0, 0xffff<<32|uint64(dst))
	if !ok || ne == nil || len(l3) > out.MTU || header.IPv4(l3).TTL() <= 1 {
		return false
	}
	if nat.Forward4(l3, t, binary.BigEndian.Uint32(s[12:]), dst, sp, dp) != nil {
		return false
	}
	w.xmitTo(b, out, nh, ne)
	return true
}

// lbTooBig answers a translated packet of connection c that the egress
// MTU (mtu) cannot take, as a router would (GVS does not fragment): the
// translation is undone and the sender gets fragmentation-needed (IPv4
// with DF) or packet-too-big (IPv6) about the packet it sent; an IPv4
// packet without DF is only dropped. A packet whose sequence numbers GVS
// shifts (SYN proxy, proxy protocol) is moved back into its sender's
// sequence space first; a packet GVS grew (TOA) is dropped without an
// error: its sender could not match the quote.
func (w *Worker) lbTooBig(b *pktbuf.Buf, l3 []byte, t header.Transport, c *session.Conn, id uint32, dir session.Direction, mtu int, grown bool) {
	if grown {
		w.drop(b, CtrDropMTUExceeded)
		return
	}
	if c.Flags&session.FlagAdjusted != 0 && !w.unadjust(l3, t, id, dir) { // lbsynproxy.go
		w.drop(b, CtrDropMTUExceeded)
		return
	}
	orig := nat.Endpoints{Src: c.CAddrPort().Addr().Unmap(), Dst: c.VAddrPort().Addr().Unmap(), SrcPort: c.CPort, DstPort: c.VPort}
	if dir == session.Out {
		orig = nat.Endpoints{Src: c.DAddrPort().Addr().Unmap(), Dst: c.LAddrPort().Addr().Unmap(), SrcPort: c.DPort, DstPort: c.LPort}
	}
	if nat.RewriteAt(l3, t, &orig) == nil {
		if l3[0]>>4 == 4 {
			if ip := header.IPv4(l3); ip.DontFragment() {
				w.icmp4Error(b, ip, header.ICMPv4DstUnreachable, 4, uint16(mtu)) // fragmentation needed
			}
		} else {
			w.icmp6Error(b, header.IPv6(l3), header.ICMPv6PacketTooBig, 0, uint32(mtu))
		}
	}
	w.drop(b, CtrDropMTUExceeded)
}

// clampMSS lowers the MSS a real server advertises so that a full-size
// client segment plus extra bytes GVS inserts (the TOA, a proxy protocol
// header) fits the interface the route towards the server leaves by: the
// grown segments go that way.
func (w *Worker) clampMSS(l3 []byte, server netip.Addr, extra int) {
	r := w.snap.routes.Lookup(server)
	mtu := 1500
	if r != nil {
		if out := w.snap.iface(r.Iface); out != nil {
			mtu = out.MTU
		}
	}
	hdr := header.IPv4MinSize + header.TCPMinSize
	if l3[0]>>4 == 6 {
		hdr = header.IPv6MinSize + header.TCPMinSize
	}
	if m := mtu - hdr - extra; m > 0 {
		nat.ClampMSS(l3, uint16(m))
	}
}

// lbRoute decrements the TTL and sends a translated packet towards dst.
// A packet the egress MTU cannot take is left to the caller: lbRoute
// returns that MTU (0 when b was sent or dropped).
func (w *Worker) lbRoute(b *pktbuf.Buf, l3 []byte, dst netip.Addr) int {
	out, nh, ne, ok := w.path(dst, l3) // the translated packet's flow
	if !ok {
		w.drop(b, CtrDropNoRoute)
		return 0
	}
	if len(l3) > out.MTU {
		return out.MTU // before the TTL changes: the error quotes the packet as it came
	}
	if l3[0]>>4 == 4 {
		ip := header.IPv4(l3)
		if ip.TTL() <= 1 {
			w.drop(b, CtrDropTTLExceeded)
			return 0
		}
		ip.DecTTL()
	} else {
		ip := header.IPv6(l3)
		if ip.HopLimit() <= 1 {
			w.drop(b, CtrDropTTLExceeded)
			return 0
		}
		ip.SetHopLimit(ip.HopLimit() - 1)
	}
	w.xmitTo(b, out, nh, ne)
	return 0
}

// lbRouteOrDrop is lbRoute for packets that get no ICMP error when too
// big: they are dropped (drop_mtu_exceeded).
func (w *Worker) lbRouteOrDrop(b *pktbuf.Buf, l3 []byte, dst netip.Addr) {
	if w.lbRoute(b, l3, dst) > 0 {
		w.drop(b, CtrDropMTUExceeded)
	}
}
