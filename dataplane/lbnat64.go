package dataplane

// NAT64 connections: an IPv6 service's FullNAT real server is IPv4
// (ipvsadm -A -t [2001:db8::1]:80; -a … -r 10.0.1.2:80 -b; -P … -z
// 10.0.1.254). The connection holds both families (session.Conn stores
// 16-byte addresses: client and VIP IPv6, local address and server IPv4
// v4-mapped), so both of its keys are ordinary table keys. lbConn hands
// its packets here instead of nat.RewriteAt:
//
//   - in (client → VIP): nat.To4 writes an IPv4 header over the last 20
//     bytes of the IPv6 header (extension headers dropped) and the buffer's
//     start moves 20 bytes on; the TOA (the client's IPv6 address: kind 254,
//     length 20, as DPVS sends it for NAT64) or the proxy protocol header
//     (TCP6, added before the translation) follow as for FullNAT;
//   - out (server → local address): nat.To6 writes the IPv6 header into the
//     20 bytes of headroom in front of the IPv4 header; a UDP datagram
//     without checksum gets one;
//   - MSS: a client segment is 20 bytes larger as IPv6 than as IPv4 (plus
//     the TOA or proxy protocol header on the IPv4 side), so the server's
//     SYN-ACK and the client's SYN are clamped for both routes: the
//     client's (IPv6 header) and the server's (IPv4 header and what GVS
//     adds);
//   - too big after translation: the packet is translated back and its
//     sender gets the router's answer about what it sent, with the MTU
//     converted by the 20 bytes (RFC 7915 §4.2, §5.2): packet-too-big with
//     the IPv4 MTU + 20 for the client, fragmentation-needed with the IPv6
//     MTU − 20 for the server (when DF is set; without DF dropped: GVS does
//     not fragment);
//   - ICMP errors about a NAT64 connection are translated between ICMPv4
//     and ICMPv6 (lbICMP64 below, nat.TranslateICMP64).
//
// IPv4 identification: the worker's own counter (shared with the tunnel
// encapsulation, which has the same need).

import (
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/nat"
	"github.com/gvs-lb/gvs/session"
)

// isNAT64 reports a NAT64 connection: an IPv6 client side, an IPv4
// (v4-mapped) real server.
func isNAT64(c *session.Conn) bool {
	return c.Flags&session.FlagIPv6 != 0 && session.IsMapped4(&c.DAddr)
}

// lbNAT64 translates a packet of NAT64 connection c in direction dir to
// the endpoints to and routes it on: lbConn's tail for such connections.
// toa: insert the client's TOA (lbtoa.go) into the IPv4 segment.
func (w *Worker) lbNAT64(b *pktbuf.Buf, l3 []byte, t header.Transport, c *session.Conn, id uint32, dir session.Direction,
	to *nat.Endpoints, flags uint8, toa bool) {
	t.End = uint16(len(l3)) // the proxy protocol header may have grown the segment (lbproxyproto.go)
	if dir == session.In {
		w.nat64In(b, l3, t, c, id, to, flags, toa)
		return
	}
	w.nat64Out(b, l3, t, c, id, to, flags)
}

func (w *Worker) nat64In(b *pktbuf.Buf, l3 []byte, t header.Transport, c *session.Conn, id uint32, to *nat.Endpoints,
	flags uint8, toa bool) {
	start, err := nat.To4(l3, t, to, w.tunID)
	if err != nil {
		w.drop(b, CtrDropLBNAT64)
		return
	}
	w.tunID++
	seg := int(t.End) - int(t.Off)
	b.Adj(start)
	b.SetLen(int(b.L3) + header.IPv4MinSize + seg)
	l3 = b.Bytes()[b.L3:]
	t4 := header.Transport{Off: header.IPv4MinSize, End: uint16(len(l3)), Proto: t.Proto}
	w.ctr.inc(CtrLBNAT64In)
	if w.trBuf == b {
		w.traceRewrite(session.In, to)
	}
	if t.Proto == header.ProtoTCP && flags&(header.TCPFlagSYN|header.TCPFlagACK) == header.TCPFlagSYN {
		// the server's segments, grown by 20 bytes as IPv6, must fit the
		// route towards the client
		w.nat64ClampMSS(l3, c, id, false)
	}
	n := len(l3)
	if toa {
		l3 = w.toaInsert(b, l3, c, to.Dst)
	} else if t.Proto == header.ProtoUDP && c.Flags&session.FlagTOAConfirmed == 0 {
		l3 = w.uoaInsert(b, l3, c, id, to.Dst) // the opp mode (lbuoa.go)
	}
	mtu := w.lbRoute(b, l3, to.Dst)
	if mtu == 0 {
		return
	}
	if len(l3) != n || c.Flags&session.FlagAdjusted != 0 {
		w.drop(b, CtrDropMTUExceeded) // grown or shifted by GVS: the client could not match a quote
		return
	}
	// translate back and tell the client, with the MTU its IPv6 packets
	// meet (RFC 7915 §4.2: + 20)
	if b.Prepend(nat.NAT64Growth) == nil {
		w.drop(b, CtrDropMTUExceeded)
		return
	}
	p := b.Bytes()[b.L3:]
	orig := nat.Endpoints{Src: c.CAddrPort().Addr(), Dst: c.VAddrPort().Addr(), SrcPort: c.CPort, DstPort: c.VPort}
	if s, err := nat.To6(p, nat.NAT64Growth, t4, &orig); err == nil && s == 0 {
		w.icmp6Error(b, header.IPv6(p[:header.IPv6MinSize+seg]), header.ICMPv6PacketTooBig, 0, uint32(max(mtu+nat.NAT64Growth, 1280)))
	}
	w.drop(b, CtrDropMTUExceeded)
}

func (w *Worker) nat64Out(b *pktbuf.Buf, l3 []byte, t header.Transport, c *session.Conn, id uint32, to *nat.Endpoints, flags uint8) {
	ip4 := header.IPv4(l3)
	df, ipID := ip4.DontFragment(), ip4.ID()
	room := header.IPv6MinSize - int(t.Off) // 20 without IPv4 options
	v4 := 0
	if room > 0 {
		if b.Prepend(room) == nil {
			w.drop(b, CtrDropLBNAT64)
			return
		}
		v4 = room
	}
	p := b.Bytes()[b.L3:]
	start, err := nat.To6(p, v4, t, to)
	if err != nil {
		b.Adj(v4)
		w.drop(b, CtrDropLBNAT64)
		return
	}
	seg := int(t.End) - int(t.Off)
	b.Adj(start)
	b.SetLen(int(b.L3) + header.IPv6MinSize + seg)
	l3 = b.Bytes()[b.L3:]
	w.ctr.inc(CtrLBNAT64Out)
	if w.trBuf == b {
		w.traceRewrite(session.Out, to)
	}
	if t.Proto == header.ProtoTCP && flags&(header.TCPFlagSYN|header.TCPFlagACK) == header.TCPFlagSYN|header.TCPFlagACK {
		w.nat64ClampMSS(l3, c, id, true)
	}
	mtu := w.lbRoute(b, l3, to.Dst)
	if mtu == 0 {
		return
	}
	if !df || c.Flags&session.FlagAdjusted != 0 {
		w.drop(b, CtrDropMTUExceeded) // GVS does not fragment; a shifted segment could not be matched
		return
	}
	// translate back and tell the server, with the MTU its IPv4 packets
	// meet (RFC 7915 §5.2: − 20)
	t6 := header.Transport{Off: header.IPv6MinSize, End: uint16(len(l3)), Proto: t.Proto, Flags: header.TransportV6}
	orig := nat.Endpoints{Src: c.DAddrPort().Addr(), Dst: c.LAddrPort().Addr(), SrcPort: c.DPort, DstPort: c.LPort}
	if s, err := nat.To4(l3, t6, &orig, ipID); err == nil {
		b.Adj(s)
		w.icmp4Error(b, header.IPv4(l3[s:]), header.ICMPv4DstUnreachable, 4, uint16(max(mtu-nat.NAT64Growth, 68)))
	}
	w.drop(b, CtrDropMTUExceeded)
}

// nat64ClampMSS lowers the MSS of a SYN (the client's, translated to IPv4:
// server false) or SYN-ACK (the server's, translated to IPv6: server true)
// of NAT64 connection c so that a full-size segment fits both routes: the
// route towards the client with an IPv6 header, the route towards the real
// server with an IPv4 header and, for the client's segments, what GVS adds
// to the first one (TOA or proxy protocol header).
func (w *Worker) nat64ClampMSS(l3 []byte, c *session.Conn, id uint32, server bool) {
	m := w.routeMTU(c.CAddrPort().Addr()) - header.IPv6MinSize - header.TCPMinSize
	extra := 0
	if server {
		extra = w.firstSegmentExtra(c, id)
	}
	if m4 := w.routeMTU(c.DAddrPort().Addr()) - header.IPv4MinSize - header.TCPMinSize - extra; m4 < m {
		m = m4
	}
	if m > 0 {
		nat.ClampMSS(l3, uint16(m))
	}
}

// lbICMP64 translates an ICMP error about NAT64 connection c (dir: the
// direction of the connection's key the quoted packet answers) into the
// other family and routes it on: from the servers' side (ICMPv4 about
// L→D) to the client as ICMPv6 V→C about C→V, with a reported MTU less
// what GVS still adds to the client's segments; from the clients' side
// (ICMPv6 about V→C) to the server as ICMPv4 L→D about D→L.
func (w *Worker) lbICMP64(b *pktbuf.Buf, l3 []byte, c *session.Conn, id uint32, dir session.Direction) {
	var msg [1280]byte // an ICMPv6 error is at most 1280 bytes; an ICMPv4 one shrinks
	var outerSrc, outerDst netip.Addr
	var inner nat.Endpoints
	delta := 0
	if dir == session.Out {
		outerSrc, outerDst = c.VAddrPort().Addr(), c.CAddrPort().Addr()
		inner = nat.Endpoints{Src: outerDst, Dst: outerSrc, SrcPort: c.CPort, DstPort: c.VPort}
		delta = -w.growthPending(c, id)
	} else {
		outerSrc, outerDst = c.LAddrPort().Addr(), c.DAddrPort().Addr()
		inner = nat.Endpoints{Src: outerDst, Dst: outerSrc, SrcPort: c.DPort, DstPort: c.LPort}
	}
	n, err := nat.TranslateICMP64(msg[:], l3, outerSrc, outerDst, &inner, delta)
	if err != nil {
		w.drop(b, CtrDropICMPInvalid) // malformed, or no translation (RFC 7915 drops it too)
		return
	}
	if grow := n - len(l3); grow > 0 {
		if b.Prepend(grow) == nil {
			w.drop(b, CtrDropLBNAT64)
			return
		}
	} else {
		b.Adj(-grow)
	}
	b.SetLen(int(b.L3) + n)
	l3 = b.Bytes()[b.L3:]
	copy(l3, msg[:n])
	if c.Flags&session.FlagAdjusted != 0 {
		w.adjustQuote(l3, id, dir) // the receiver's own sequence numbers (lbsynproxy.go)
	}
	w.ctr.inc(CtrLBICMPTranslated)
	w.lbRouteOrDrop(b, l3, outerDst)
}

// nat64OnePacket forwards a datagram of a one-packet (-o) UDP service to
// an IPv4 real server: translated as a connection's would be, with no
// connection (a datagram too big once translated is dropped).
func (w *Worker) nat64OnePacket(b *pktbuf.Buf, l3 []byte, t header.Transport, to *nat.Endpoints) {
	t.End = uint16(len(l3))
	start, err := nat.To4(l3, t, to, w.tunID)
	if err != nil {
		w.drop(b, CtrDropLBNAT64)
		return
	}
	w.tunID++
	b.Adj(start)
	b.SetLen(int(b.L3) + header.IPv4MinSize + int(t.End-t.Off))
	w.ctr.inc(CtrLBNAT64In)
	w.lbRouteOrDrop(b, b.Bytes()[b.L3:], to.Dst)
}
