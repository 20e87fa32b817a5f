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
// Everything here runs on the worker's thread without locks; the only
// shared writes are the destinations' atomic connection counters.

import (
	"net/netip"
	"sync/atomic"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/ipvs/sched"
	"github.com/gvs-lb/gvs/nat"
	"github.com/gvs-lb/gvs/session"
)

// lbInput returns true when the IPVS stage consumed b. l3 is the validated
// IP packet, trimmed to its length.
func (w *Worker) lbInput(b *pktbuf.Buf, l3 []byte, dst netip.Addr, proto uint8, fragment bool) bool {
	tbl := w.lb
	if _, ours := tbl.Addrs[dst]; !ours {
		return false
	}
	switch proto {
	case header.ProtoTCP, header.ProtoUDP:
	case header.ProtoICMP, header.ProtoICMPv6:
		return w.lbICMP(b, l3)
	default:
		return false
	}
	if fragment {
		w.drop(b, CtrDropLBFragment)
		return true
	}
	key, ok := session.ParseKey(l3)
	if !ok {
		w.drop(b, CtrDropLBBadL4)
		return true
	}
	if id, dir, found := w.sess.Lookup(key); found {
		w.lbConn(b, l3, id, dir)
		return true
	}
	if _, isLocal := tbl.LAddrs[dst]; isLocal {
		if owner := w.dp.steer.Owner(key.DstPort); owner != w.id && owner < len(w.dp.workers) {
			w.redirect(b, owner)
			return true
		}
		w.drop(b, CtrDropLBNoConn)
		return true
	}
	svc := tbl.Lookup(ipvs.Proto(proto), dst, key.DstPort)
	if svc == nil {
		// a port of a virtual address without a service: nobody behind it
		// (punting it would let a flood use up the kernel's share)
		w.drop(b, CtrDropLBNoService)
		return true
	}
	return w.lbNew(b, l3, svc, key)
}

// tcpFlags returns the flags byte of a TCP packet (0 if not TCP).
func tcpFlags(l3 []byte) uint8 {
	off := header.IPv6MinSize
	if l3[0]>>4 == 4 {
		off = header.IPv4(l3).HeaderLen()
	} else if header.IPv6(l3).NextHeader() != header.ProtoTCP {
		return 0
	}
	if len(l3) < off+header.TCPMinSize {
		return 0
	}
	return l3[off+13]
}

// lbNew schedules a new connection and sends its first packet.
func (w *Worker) lbNew(b *pktbuf.Buf, l3 []byte, svc *ipvs.Service, key session.Key) bool {
	midFlow := false
	if key.Proto == header.ProtoTCP {
		if f := tcpFlags(l3); f&(header.TCPFlagSYN|header.TCPFlagACK|header.TCPFlagRST|header.TCPFlagFIN) != header.TCPFlagSYN {
			// mid-flow (mh services that ask for it): an ACK without SYN
			// or RST of a flow this node has no connection for
			if !svc.Spec.MidFlow || f&(header.TCPFlagSYN|header.TCPFlagRST|header.TCPFlagACK) != header.TCPFlagACK {
				w.drop(b, CtrDropLBNotSYN)
				return true
			}
			midFlow = true
		}
	}
	client, vip := key.SrcAddrPort(), key.DstAddrPort()
	client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	vip = netip.AddrPortFrom(vip.Addr().Unmap(), vip.Port())
	if len(svc.AllocLAddrs) == 0 {
		w.drop(b, CtrDropLBNoLAddr) // none, or only backup ones
		return true
	}
	w.flow = sched.Flow{Src: client.Addr(), SrcPort: client.Port(), Dst: vip.Addr(), DstPort: vip.Port(), Proto: key.Proto}
	i := svc.Scheds[w.id].Pick(&w.flow)
	if i < 0 {
		w.drop(b, CtrDropLBNoDest)
		return true
	}
	dest := svc.Dests[i]
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
		return true
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
		return true
	}
	dest.C.Inactive.Add(1)
	dest.Stats.Conns.Add(1) // a service's count is the sum of its destinations'
	w.ctr.inc(CtrLBNewConns)
	if midFlow {
		w.ctr.inc(CtrLBMidFlowConns)
	}
	w.lbConn(b, l3, id, session.In)
	return true
}

func (w *Worker) tick() uint32 { return uint32(w.now / int64(w.sessTick)) }

// lbConn translates a packet of connection id and routes it on.
func (w *Worker) lbConn(b *pktbuf.Buf, l3 []byte, id uint32, dir session.Direction) {
	c := w.sess.Get(id)
	if len(w.lb.ExpireDests) > 0 {
		if _, gone := w.lb.ExpireDests[c.Dest]; gone {
			w.sess.ExpireNow(id)
			w.drop(b, CtrDropLBExpiredDest)
			return
		}
	}
	flags := tcpFlags(l3)
	var toa bool // insert the TOA (see lbtoa.go)
	if c.Proto == header.ProtoTCP && dir == session.In {
		var ok bool
		if toa, ok = w.toaIn(b, l3, c, flags); !ok {
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
		w.syncIn(c, dir, old) // session sync (sync.go)
	}
	var to nat.Endpoints
	if st := &w.lbStats[c.Dest]; dir == session.In {
		st.inPkts.Add(1)
		st.inBytes.Add(uint64(len(l3)))
		to = nat.Endpoints{Src: c.LAddrPort().Addr().Unmap(), Dst: c.DAddrPort().Addr().Unmap(), SrcPort: c.LPort, DstPort: c.DPort}
		w.ctr.inc(CtrLBIn)
	} else {
		st.outPkts.Add(1)
		st.outBytes.Add(uint64(len(l3)))
		to = nat.Endpoints{Src: c.VAddrPort().Addr().Unmap(), Dst: c.CAddrPort().Addr().Unmap(), SrcPort: c.VPort, DstPort: c.CPort}
		if c.Proto == header.ProtoTCP {
			toaOut(c, flags)
		}
		w.ctr.inc(CtrLBOut)
	}
	if err := nat.Rewrite(l3, &to); err != nil {
		w.drop(b, CtrDropLBBadL4)
		return
	}
	if dir == session.Out && flags&(header.TCPFlagSYN|header.TCPFlagACK) == header.TCPFlagSYN|header.TCPFlagACK {
		// leave room for the TOA the client's first ACK will carry
		w.clampMSS(l3, to.Dst)
	}
	if toa {
		l3 = w.toaInsert(b, l3, c, to.Dst)
	}
	w.lbRoute(b, l3, to.Dst)
}

// clampMSS lowers the MSS a real server advertises so that a full-size
// client segment plus the TOA option fits the interface towards the
// servers.
func (w *Worker) clampMSS(l3 []byte, client netip.Addr) {
	r := w.snap.routes.Lookup(client)
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
	if m := mtu - hdr - nat.TOALen(client); m > 0 {
		nat.ClampMSS(l3, uint16(m))
	}
}

// lbRoute decrements the TTL and sends a translated packet towards dst.
func (w *Worker) lbRoute(b *pktbuf.Buf, l3 []byte, dst netip.Addr) {
	r := w.snap.routes.Lookup(dst)
	if r == nil {
		w.drop(b, CtrDropNoRoute)
		return
	}
	nh, oif := routePath(r, dst, l3) // the translated packet's flow
	out := w.snap.iface(oif)
	if out == nil {
		w.drop(b, CtrDropNoRoute)
		return
	}
	if l3[0]>>4 == 4 {
		ip := header.IPv4(l3)
		if ip.TTL() <= 1 {
			w.drop(b, CtrDropTTLExceeded)
			return
		}
		ip.DecTTL()
	} else {
		ip := header.IPv6(l3)
		if ip.HopLimit() <= 1 {
			w.drop(b, CtrDropTTLExceeded)
			return
		}
		ip.SetHopLimit(ip.HopLimit() - 1)
	}
	if len(l3) > out.MTU {
		w.drop(b, CtrDropMTUExceeded)
		return
	}
	w.xmit(b, out, nh)
}

// lbICMP translates ICMP errors about load-balanced connections.
func (w *Worker) lbICMP(b *pktbuf.Buf, l3 []byte) bool {
	e, err := nat.ParseICMPError(l3)
	if err != nil {
		return false // echo and friends: local delivery
	}
	if !icmpChecksumValid(l3) {
		// a corrupt error must not steer a connection (and its
		// incremental translation would stay corrupt)
		w.drop(b, CtrDropICMPInvalid)
		return true
	}
	// the quoted packet went the other way: its reverse is a conn key
	key := session.MakeKey(e.InnerProto, netip.AddrPortFrom(e.Inner.Dst, e.Inner.DstPort), netip.AddrPortFrom(e.Inner.Src, e.Inner.SrcPort))
	id, dir, found := w.sess.Lookup(key)
	if !found {
		if _, isLocal := w.lb.LAddrs[e.Inner.Src]; isLocal {
			if owner := w.dp.steer.Owner(e.Inner.SrcPort); owner != w.id && owner < len(w.dp.workers) {
				w.redirect(b, owner)
				return true
			}
		}
		w.drop(b, CtrDropLBNoConn)
		return true
	}
	c := w.sess.Get(id)
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
		return true
	}
	w.ctr.inc(CtrLBICMPTranslated)
	w.lbRoute(b, l3, outerDst)
	return true
}

// icmpChecksumValid checks the ICMP or ICMPv6 checksum of a validated IP
// packet whose payload ParseICMPError accepted.
func icmpChecksumValid(l3 []byte) bool {
	if l3[0]>>4 == 4 {
		return header.ICMPv4(header.IPv4(l3).Payload()).ChecksumValid()
	}
	ip := header.IPv6(l3)
	return header.ICMPv6ChecksumValid(header.ICMPv6(ip.Payload()), ip.Src(), ip.Dst())
}

// redirect hands b to the worker owning its connection.
func (w *Worker) redirect(b *pktbuf.Buf, owner int) {
	if !w.redirOut[owner].Put(b.Bytes(), b.Port) {
		w.drop(b, CtrDropLBRedirectFull)
		return
	}
	w.ctr.inc(CtrLBRedirectedOut)
	w.redirWake |= 1 << uint(owner)
	b.Free()
}

// redirectIn runs the frames other workers handed over through the
// pipeline; the owner's session table has their connections.
func (w *Worker) redirectIn() int {
	n := 0
	for _, r := range w.redirIn {
		if r == nil {
			continue
		}
		for i := 0; i < w.burst; i++ {
			f, p, ok := r.Peek()
			if !ok {
				break
			}
			b := w.queues[p].Alloc()
			if b == nil {
				w.ctr.inc(CtrDropNoBuffer)
				break
			}
			if !b.CopyFrom(f) {
				b.Free()
				w.ctr.inc(CtrDropNoBuffer)
			} else {
				b.Port = p
				w.ctr.inc(CtrLBRedirectedIn)
				w.cur = b
				w.input(b)
				w.cur = nil
			}
			r.Release()
			n++
		}
	}
	return n
}

// expireConns releases what expired connections held.
func (w *Worker) expireConns() {
	w.sess.Expire(w.tick(), w.dp.opts.ConnExpirePerLoop, w.onExpire)
	w.sess.Publish() // the table's fill for LBUsage: a few stores per loop
}

func (w *Worker) connGone(id uint32, c *session.Conn) {
	if d := w.lb.Dests[c.Dest]; d != nil {
		if c.State.Active() {
			d.C.Active.Add(-1)
		} else {
			d.C.Inactive.Add(-1)
		}
	}
	l := c.LAddrPort()
	w.pool.Put(l.Addr().Unmap(), unmapAP(c.DAddrPort()), l.Port())
	w.syncGone(c)
	w.ctr.inc(CtrLBConnsExpired)
}

// lbStat counts one destination's traffic on one worker: written by the
// worker (one uncontended atomic add per field), summed by the API.
type lbStat struct {
	inPkts, outPkts, inBytes, outBytes atomic.Uint64
}

// growLBStats makes room for destination ids up to max; it runs when the
// service table changes, never per packet.
func (w *Worker) growLBStats(max int) {
	n := make([]lbStat, max+64)
	for i := range w.lbStats {
		o := &w.lbStats[i]
		n[i].inPkts.Store(o.inPkts.Load())
		n[i].outPkts.Store(o.outPkts.Load())
		n[i].inBytes.Store(o.inBytes.Load())
		n[i].outBytes.Store(o.outBytes.Load())
	}
	w.lbStats = n
	w.lbPub.Store(&n)
}
