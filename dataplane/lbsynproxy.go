package dataplane

// The SYN proxy (ipvsadm -A … -j enable): a service's clients handshake
// with GVS first, statelessly, and only a client that completes it gets a
// connection and a real server.
//
//   - A SYN with no connection is answered with a SYN-ACK whose ISN is a
//     SYN cookie (package synproxy: the client's MSS, window scale and
//     SACK are kept in it, timestamps in the timestamp echo). Nothing is
//     stored: a SYN flood costs the table nothing.
//   - A client ACK with no connection must acknowledge a valid cookie.
//     Then the connection is scheduled and made as for a SYN (lists,
//     limits, persistence, a local address and port), in state SYN_SENT,
//     and the ACK itself is rewritten into GVS's SYN to the real server,
//     carrying the client's ISN and options (with defer_rs_syn, at the
//     client's first data segment instead).
//   - The client's first data segment, when it arrives before the real
//     server has answered, is held (a fixed per-worker slot array, copied)
//     and later data dropped: the client retransmits it. A retransmission
//     of the first segment re-sends the SYN (max_retries); more client
//     segments than ack_storm_threshold without an answer reset the client.
//   - The real server's SYN-ACK completes its handshake: it is rewritten
//     into the ACK to the server, carrying the held data and the TOA, and
//     the connection becomes ESTABLISHED with its adjustment: sequence
//     delta (server ISN − cookie), timestamp delta (server clock − GVS's)
//     and the two window scales (session.TCPAdjust). A repeated SYN-ACK
//     (the ACK was lost) is answered again; a RST resets the client.
//   - From then on lbConn shifts every segment (synproxy.ShiftIn/Out)
//     before the usual translation.
//
// A proxied connection's translation lives beside the session table, in
// the worker's adjustment table (spConn, indexed by connection id, flagged
// by session.FlagAdjusted), so that the table's 96-byte entries stay as
// they are for every other connection. While the server's handshake is
// pending, its fields hold the proxy's own state (see spConn).
// Established proxied connections are published to session sync with
// their adjustment (SyncAdjust), so a peer forwards them after a failover;
// ICMP errors about them are translated without shifting the quoted
// sequence number.

import (
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/nat"
	"github.com/gvs-lb/gvs/proxyproto"
	"github.com/gvs-lb/gvs/session"
	"github.com/gvs-lb/gvs/synproxy"
)

// spConn is a proxied connection's entry in its worker's adjustment table
// (session.FlagAdjusted): what differs between the client's view of the
// connection and the real server's.
type spConn struct {
	seqDelta uint32 // server ISN − cookie (the cookie while waiting)
	tsDelta  uint32 // server timestamp clock − GVS's (GVS's TSval while waiting)
	isn      uint32 // the client's ISN
	win      uint16 // the client's window while waiting; then the in-direction scales
	wscale   uint8  // out-direction scales (from<<4 | to); while waiting GVS's scale<<4 | segment count
	state    uint8  // sp* bits
	pp       ppConn // the proxy protocol header (lbproxyproto.go)
}

// spConn.state bits.
const (
	spProxied   = 1 << 0
	spWaiting   = 1 << 1 // the real server's SYN-ACK not yet seen
	spSynSent   = 1 << 2 // GVS's SYN went to the server (not deferred)
	spTS        = 1 << 3 // timestamps in use on the client's side
	spHeld      = 1 << 4 // the client's first data segment is held
	spRetryBit  = 5      // bits 5-7: SYNs re-sent
	spRetryMask = 7 << spRetryBit
)

// heldMax is the largest client segment payload a slot holds.
const heldMax = 2048 - 32

// heldSeg is a client's first data segment, held while the real server's
// handshake completes.
type heldSeg struct {
	c    *session.Conn // the connection's table entry; nil when free
	cisn uint32        // its client ISN, to tell a reused entry
	n    uint16
	fin  bool
	data [heldMax]byte
}

// spWorker is a worker's SYN proxy state, made at its first proxied
// connection (a worker that never proxies pays nothing): an entry per
// connection id (16 bytes × the table's capacity) and the held segments.
type spWorker struct {
	conns []spConn
	held  []heldSeg
	inUse int                       // held slots taken
	hdr   [proxyproto.MaxV1Len]byte // a proxy protocol header being written (lbproxyproto.go)
}

// init makes the tables if they are not there yet.
func (s *spWorker) init(capacity, held int) {
	if s.conns != nil {
		return
	}
	s.conns = make([]spConn, capacity)
	s.held = make([]heldSeg, held)
}

// take finds the held segment of connection c, frees its slot and
// returns it (nil: none). The slot's data stays valid until the next put.
func (s *spWorker) take(c *session.Conn, cisn uint32) *heldSeg {
	for i := range s.held {
		if h := &s.held[i]; h.c == c && h.cisn == cisn {
			h.c = nil
			s.inUse--
			return h
		}
	}
	return nil
}

// adopt sets connection id's entry from a peer's sync record: an
// established proxied connection this worker now forwards.
func (s *spWorker) adopt(id uint32, a SyncAdjust) {
	e := spConn{seqDelta: a.SeqDelta, tsDelta: a.TSDelta, win: uint16(a.InScales), wscale: a.OutScales}
	if a.SynProxy {
		e.state = spProxied
	}
	if a.PPShift != 0 {
		// the peer's header is acknowledged by now (the connection was
		// published after its first client packets): only the shift stays
		e.pp = ppConn{ver: 1, flags: ppDecided | ppConfirmed, n: a.PPShift}
	}
	s.conns[id] = e
}

// release frees what a proxied connection holds here when it ends
// (connRelease in lbexpire.go).
func (s *spWorker) release(c *session.Conn) {
	for i := 0; i < len(s.held) && s.inUse > 0; i++ {
		if h := &s.held[i]; h.c == c {
			h.c = nil
			s.inUse--
		}
	}
}

// put stores payload for connection c; false when every slot is taken or
// it is too large.
func (s *spWorker) put(c *session.Conn, cisn uint32, payload []byte, fin bool) bool {
	if len(payload) > heldMax {
		return false
	}
	for i := range s.held {
		if h := &s.held[i]; h.c == nil {
			h.c, h.cisn, h.n, h.fin = c, cisn, uint16(copy(h.data[:], payload)), fin
			s.inUse++
			return true
		}
	}
	return false
}

// spSeg is a TCP segment's fields the proxy reads.
type spSeg struct {
	tcp     header.TCP
	flags   uint8
	payload []byte
	opts    synproxy.Options
}

// readSeg parses the TCP header at t in l3; false: malformed options.
func readSeg(l3 []byte, t header.Transport) (s spSeg, ok bool) {
	s.tcp = header.TCP(l3[t.Off:])
	if !s.tcp.IsValid() {
		return s, false
	}
	s.flags = s.tcp.Flags()
	s.payload = l3[int(t.Off)+s.tcp.DataOffset():]
	var err error
	s.opts, err = synproxy.ParseOptions(s.tcp[header.TCPMinSize:s.tcp.DataOffset()])
	return s, err == nil
}

func tupleOf(l3 []byte, t header.Transport, s *spSeg) synproxy.Tuple {
	tu := synproxy.Tuple{SrcPort: s.tcp.SrcPort(), DstPort: s.tcp.DstPort()}
	tu.Src, tu.Dst = addrBytes(l3, t)
	return tu
}

// addrBytes returns the source and destination address bytes of l3.
func addrBytes(l3 []byte, t header.Transport) (src, dst []byte) {
	if t.V6() {
		return header.IPv6(l3).SrcBytes(), header.IPv6(l3).DstBytes()
	}
	return header.IPv4(l3).SrcBytes(), header.IPv4(l3).DstBytes()
}

// synProxyNew handles a TCP segment to a SYN-proxy service that has no
// connection: a SYN gets a cookie, an ACK is checked for one.
func (w *Worker) synProxyNew(b *pktbuf.Buf, l3 []byte, t header.Transport, svc *ipvs.Service, key session.Key) verdict {
	f := t.TCPFlags(l3)
	switch {
	case f&(header.TCPFlagSYN|header.TCPFlagACK|header.TCPFlagRST|header.TCPFlagFIN) == header.TCPFlagSYN:
		w.synProxySYN(b, l3, t, svc)
	case f&(header.TCPFlagSYN|header.TCPFlagACK|header.TCPFlagRST) == header.TCPFlagACK:
		w.synProxyACK(b, l3, t, svc, key)
	default:
		w.drop(b, CtrDropLBNotSYN)
	}
	return stolen
}

// synProxySYN answers a client's SYN with a cookie SYN-ACK, in place.
func (w *Worker) synProxySYN(b *pktbuf.Buf, l3 []byte, t header.Transport, svc *ipvs.Service) {
	var client, vip netip.Addr
	if t.V6() {
		client, vip = header.IPv6(l3).Src(), header.IPv6(l3).Dst()
	} else {
		client, vip = header.IPv4(l3).Src(), header.IPv4(l3).Dst()
	}
	if (svc.Deny != nil || svc.Allow != nil) && !w.lbACLPass(b, svc, client) {
		return
	}
	if !nat.VerifyTCPChecksum(l3) {
		w.drop(b, CtrDropLBBadChecksum)
		return
	}
	s, ok := readSeg(l3, t)
	if !ok {
		w.drop(b, CtrDropLBBadTCPOptions)
		return
	}
	cfg := &w.dp.spCfg
	tu := tupleOf(l3, t, &s)
	granted := s.opts
	granted.SACK = s.opts.SACK && cfg.SACK // what the server is told is what the client got
	if cfg.WScale < 0 {
		granted.WScale = -1
	}
	cookie := w.dp.cookies.Make(&tu, s.tcp.Seq(), &granted)
	extra := nat.TOALen(client)
	if v := svc.Spec.ProxyProtocol; v != 0 {
		extra = proxyproto.Len(int(v), netip.AddrPortFrom(client, tu.SrcPort), netip.AddrPortFrom(vip, tu.DstPort))
	}
	seg := synproxy.Segment{Src: vip, Dst: client, SrcPort: tu.DstPort, DstPort: tu.SrcPort,
		Seq: cookie, Ack: s.tcp.Seq() + 1, Flags: header.TCPFlagSYN | header.TCPFlagACK,
		Window: cfg.Window, TTL: cfg.TTL}
	seg.Opts = synproxy.Options{MSS: w.synProxyMSS(b, client, extra), WScale: -1, SACK: s.opts.SACK && cfg.SACK}
	if s.opts.WScale >= 0 && cfg.WScale >= 0 {
		seg.Opts.WScale = cfg.WScale
	}
	if s.opts.TS && cfg.Timestamps {
		seg.Opts.TS, seg.Opts.TSVal, seg.Opts.TSEcr = true, w.tsClock(), s.opts.TSVal
	}
	if !w.synProxyWrite(b, &seg, nil, nil) {
		return
	}
	w.ctr.inc(CtrLBSynProxyCookies)
	w.synProxySend(b, client)
}

// synProxyMSS is the MSS GVS offers a client: the configured one, lowered
// so that a full segment with extra bytes (the TOA, the proxy protocol
// header) fits the interface it came in by.
func (w *Worker) synProxyMSS(b *pktbuf.Buf, client netip.Addr, extra int) uint16 {
	mss := int(w.dp.spCfg.MSS)
	if in := w.snap.iface(b.Iface); in != nil {
		hdr := header.IPv4MinSize + header.TCPMinSize
		if client.Is6() {
			hdr = header.IPv6MinSize + header.TCPMinSize
		}
		mss = min(mss, in.MTU-hdr-extra)
	}
	return uint16(max(mss, 536))
}

// tsClock is the timestamp clock of GVS's SYN-ACKs: milliseconds.
func (w *Worker) tsClock() uint32 { return uint32(w.now / 1e6) }

// synProxyWrite makes b hold seg (and p1, p2 after its headers); false:
// b was dropped (no room).
func (w *Worker) synProxyWrite(b *pktbuf.Buf, seg *synproxy.Segment, p1, p2 []byte) bool {
	hl := seg.HeaderLen()
	if !b.SetLen(int(b.L3) + hl + len(p1) + len(p2)) {
		w.drop(b, CtrDropNoBuffer)
		return false
	}
	l3 := b.Bytes()[b.L3:]
	copy(l3[hl+copy(l3[hl:], p1):], p2)
	seg.Write(l3, len(p1)+len(p2))
	return true
}

// synProxySend routes a segment GVS wrote (its TTL already set) to dst.
func (w *Worker) synProxySend(b *pktbuf.Buf, dst netip.Addr) {
	l3 := b.Bytes()[b.L3:]
	out, nh, ne, ok := w.path(dst, l3)
	if !ok {
		w.drop(b, CtrDropNoRoute)
		return
	}
	if len(l3) > out.MTU {
		w.drop(b, CtrDropMTUExceeded)
		return
	}
	w.xmitTo(b, out, nh, ne)
}

// synProxyACK checks a client's ACK for a cookie and, when it holds one,
// makes the connection and starts the real server's handshake.
func (w *Worker) synProxyACK(b *pktbuf.Buf, l3 []byte, t header.Transport, svc *ipvs.Service, key session.Key) {
	if !nat.VerifyTCPChecksum(l3) {
		w.drop(b, CtrDropLBBadChecksum)
		return
	}
	s, ok := readSeg(l3, t)
	if !ok {
		w.drop(b, CtrDropLBBadTCPOptions)
		return
	}
	tu := tupleOf(l3, t, &s)
	cisn := s.tcp.Seq() - 1
	opts, v := w.dp.cookies.Check(&tu, cisn, s.tcp.Ack())
	switch v {
	case synproxy.Bad:
		w.drop(b, CtrDropLBSynProxyBadCookie)
		return
	case synproxy.Stale:
		w.drop(b, CtrDropLBSynProxyStaleCookie)
		return
	}
	cookie := s.tcp.Ack() - 1
	adj := spConn{seqDelta: cookie, isn: cisn, win: s.tcp.Window(), wscale: 0xf0, state: spProxied | spWaiting}
	if s.opts.TS {
		adj.state |= spTS
		adj.tsDelta = s.opts.TSEcr // the value GVS sent
	}
	if opts.WScale >= 0 && w.dp.spCfg.WScale >= 0 {
		adj.wscale = uint8(w.dp.spCfg.WScale) << 4
	}
	w.sp.init(w.sess.Capacity(), w.dp.spCfg.Held)
	id, ok := w.lbMake(b, l3, t, svc, key, false, true)
	if !ok {
		return
	}
	w.ctr.inc(CtrLBSynProxyConns)
	c := w.sess.Get(id)
	a := &w.sp.conns[id]
	adj.pp = a.pp // lbMake's (the proxy protocol)
	*a = adj
	fin := s.flags&header.TCPFlagFIN != 0
	if len(s.payload) > 0 || fin {
		if w.sp.put(c, cisn, s.payload, fin) {
			a.state |= spHeld
			w.ctr.inc(CtrLBSynProxyHeld)
		}
	} else if w.dp.spCfg.DeferServerSYN {
		b.Free() // the server's SYN waits for the client's data
		return
	}
	w.synProxySYNToServer(b, c, a, s.opts.TSVal)
}

// synProxySYNToServer rewrites b into GVS's SYN to c's real server, with
// the client's ISN and the options its cookie kept.
func (w *Worker) synProxySYNToServer(b *pktbuf.Buf, c *session.Conn, a *spConn, tsval uint32) {
	dst := c.DAddrPort()
	seg := synproxy.Segment{Src: c.LAddrPort().Addr(), Dst: dst.Addr(), SrcPort: c.LPort, DstPort: c.DPort,
		Seq: a.isn, Flags: header.TCPFlagSYN, Window: a.win, TTL: 64}
	seg.Opts = synproxy.CookieOptions(a.seqDelta, dst.Addr().Is6())
	if a.wscale>>4 == 0xf {
		seg.Opts.WScale = -1 // the client was not offered scaling
	}
	if a.state&spTS != 0 {
		seg.Opts.TS, seg.Opts.TSVal = true, tsval
	}
	if !w.synProxyWrite(b, &seg, nil, nil) {
		return
	}
	a.state |= spSynSent
	w.destIn(c.Dest, uint64(b.Len()-int(b.L3)))
	w.ctr.inc(CtrLBIn)
	w.synProxySend(b, dst.Addr())
}

// adjustConn handles a segment of connection id, flagged adjusted (SYN
// proxy, proxy protocol); false: b was consumed. Otherwise the segment
// was shifted (and l3, which may have moved and grown, is returned) and
// the caller translates it as usual.
func (w *Worker) adjustConn(b *pktbuf.Buf, l3 []byte, t header.Transport, id uint32, c *session.Conn, dir session.Direction) ([]byte, bool) {
	s, ok := readSeg(l3, t)
	if !ok {
		w.drop(b, CtrDropLBBadTCPOptions)
		return nil, false
	}
	a := &w.sp.conns[id]
	if a.state&spWaiting != 0 {
		if dir == session.Out {
			w.synProxyServerHandshake(b, id, c, a, &s)
		} else {
			w.synProxyWaitingClient(b, id, c, a, &s)
		}
		return nil, false
	}
	if dir != session.Out && s.flags&(header.TCPFlagSYN|header.TCPFlagACK) == header.TCPFlagSYN {
		if a.state&spProxied == 0 && s.tcp.Seq() == a.isn {
			return l3, true // the handshake's SYN again (proxy protocol only): nothing to translate
		}
		// a new SYN from the client's port: the old connection's
		// translation does not apply to it; a closing one goes now, so the
		// client's retransmission opens a new one
		switch c.State {
		case session.StateTimeWait, session.StateClose, session.StateFinWait, session.StateCloseWait, session.StateLastAck:
			w.sess.ExpireNow(id)
		}
		w.drop(b, CtrDropLBAdjustedSYN)
		return nil, false
	}
	var d synproxy.Delta
	insert := false
	if dir == session.Out {
		if a.state&spProxied != 0 {
			if s.flags&(header.TCPFlagSYN|header.TCPFlagACK) == header.TCPFlagSYN|header.TCPFlagACK {
				// the server repeats its SYN-ACK: GVS's ACK was lost
				w.synProxyACKToServer(b, c, a, &s, nil, 1024) // a small window: the client's next segment says its own
				return nil, false
			}
			d = synproxy.Delta{Seq: -a.seqDelta, TSVal: -a.tsDelta, WSFrom: a.wscale >> 4, WSTo: a.wscale & 0xf}
		}
		if a.pp.ver != 0 {
			a.pp.out(a.isn, &s, &d)
		}
	} else {
		if a.state&spProxied != 0 {
			d = synproxy.Delta{Ack: a.seqDelta, SACK: a.seqDelta, TSEcr: a.tsDelta, WSFrom: uint8(a.win >> 4), WSTo: uint8(a.win & 0xf)}
		}
		if a.pp.ver != 0 {
			insert = w.ppIn(a, &s, &d)
		}
	}
	if insert && !nat.VerifyTCPChecksum(l3) {
		// the grown segment's checksum is computed anew: it must not
		// launder a corrupt one
		w.drop(b, CtrDropLBBadChecksum)
		return nil, false
	}
	if err := synproxy.Apply(s.tcp, &d); err != nil {
		w.drop(b, CtrDropLBBadTCPOptions)
		return nil, false
	}
	if insert {
		return w.ppInsert(b, l3, t, c, a)
	}
	return l3, true
}

// clientSeq moves sequence number seq of connection id's real server into
// its client's sequence space (what adjustConn does to the server's
// segments).
func (s *spWorker) clientSeq(id uint32, seq uint32) uint32 {
	if a := &s.conns[id]; a.state&(spProxied|spWaiting) == spProxied {
		return seq - a.seqDelta
	}
	return seq
}

// adjustQuote moves the TCP segment an ICMP error about connection id
// quotes (already translated to its receiver's addresses) into its
// receiver's sequence space: an error from the server's side (dir Out)
// quotes a segment GVS sent the server, shown to the client as the client
// sent it; one from the client's side quotes a segment GVS sent the
// client, shown to the server as the server sent it. Before the server's
// handshake completes nothing was forwarded to quote.
func (w *Worker) adjustQuote(l3 []byte, id uint32, dir session.Direction) {
	a := &w.sp.conns[id]
	if a.state&spWaiting != 0 {
		return
	}
	var pp, sp uint32 // the proxy protocol header's length; server ISN − cookie
	if a.pp.flags&(ppDecided|ppKeep) == ppDecided {
		pp = uint32(a.pp.n)
	}
	if a.state&spProxied != 0 {
		sp = a.seqDelta
	}
	if dir == session.Out {
		nat.ShiftICMPQuote(l3, -pp, -sp)
	} else {
		nat.ShiftICMPQuote(l3, sp, pp)
	}
}

// unadjust moves a segment of connection id that adjustConn translated
// (direction dir) back into its sender's sequence space — sequence,
// acknowledgement, SACK blocks, timestamps; the window stays as scaled —
// so that an ICMP error about it quotes what the sender sent (lbTooBig).
// false: nothing to undo from (the handshake still pending) or the
// options did not parse.
func (w *Worker) unadjust(l3 []byte, t header.Transport, id uint32, dir session.Direction) bool {
	a := &w.sp.conns[id]
	if a.state&spWaiting != 0 || int(t.End) > len(l3) || !t.HasL4() {
		return false
	}
	var pp, sp, ts uint32
	if a.pp.flags&(ppDecided|ppKeep) == ppDecided {
		pp = uint32(a.pp.n)
	}
	if a.state&spProxied != 0 {
		sp, ts = a.seqDelta, a.tsDelta
	}
	var d synproxy.Delta
	if dir == session.Out { // it went Seq −sp, TSVal −ts, Ack/SACK −pp
		d = synproxy.Delta{Seq: sp, TSVal: ts, Ack: pp, SACK: pp}
	} else { // it went Seq +pp, Ack/SACK +sp, TSEcr +ts
		d = synproxy.Delta{Seq: -pp, Ack: -sp, SACK: -sp, TSEcr: -ts}
	}
	return synproxy.Apply(l3[t.Off:t.End], &d) == nil
}

// synProxyWaitingClient handles a client segment while the real server's
// handshake is pending.
func (w *Worker) synProxyWaitingClient(b *pktbuf.Buf, id uint32, c *session.Conn, a *spConn, s *spSeg) {
	if s.flags&header.TCPFlagRST != 0 {
		w.sess.ExpireNow(id)
		w.drop(b, CtrDropLBSynProxyWaiting)
		return
	}
	if n := a.wscale & 0xf; int(n) >= w.dp.spCfg.AckStorm {
		w.synProxyResetClient(b, id, c, a, CtrLBSynProxyAckStorm)
		return
	}
	a.wscale++
	first := s.tcp.Seq() == a.isn+1 && (len(s.payload) > 0 || s.flags&header.TCPFlagFIN != 0)
	if first && a.state&spHeld == 0 && !nat.VerifyTCPChecksum(b.Bytes()[b.L3:]) {
		w.drop(b, CtrDropLBBadChecksum) // held data is written out anew: not if corrupt
		return
	}
	if first && a.state&spHeld == 0 {
		if w.sp.put(c, a.isn, s.payload, s.flags&header.TCPFlagFIN != 0) {
			a.state |= spHeld
			w.ctr.inc(CtrLBSynProxyHeld)
		}
		if a.state&spSynSent == 0 {
			w.synProxySYNToServer(b, c, a, s.opts.TSVal)
			return
		}
		w.drop(b, CtrDropLBSynProxyWaiting)
		return
	}
	if first && a.state&spSynSent != 0 && int(a.state>>spRetryBit) < w.dp.spCfg.MaxRetries {
		// the client retransmits its first segment: the server has not
		// answered in a retransmission timeout, so its SYN goes again
		a.state += 1 << spRetryBit
		w.ctr.inc(CtrLBSynProxyRetries)
		w.synProxySYNToServer(b, c, a, s.opts.TSVal)
		return
	}
	w.drop(b, CtrDropLBSynProxyWaiting)
}

// synProxyServerHandshake handles a real server's segment while its
// handshake is pending: a SYN-ACK for GVS's SYN completes it, a RST
// resets the client, anything else is dropped.
func (w *Worker) synProxyServerHandshake(b *pktbuf.Buf, id uint32, c *session.Conn, a *spConn, s *spSeg) {
	f := s.flags
	if f&header.TCPFlagRST != 0 {
		w.synProxyResetClient(b, id, c, a, CtrLBSynProxyServerReset)
		return
	}
	if f&(header.TCPFlagSYN|header.TCPFlagACK) != header.TCPFlagSYN|header.TCPFlagACK || s.tcp.Ack() != a.isn+1 {
		w.drop(b, CtrDropLBSynProxyWaiting)
		return
	}
	cookie, sent := a.seqDelta, a.tsDelta
	clientWS := synproxy.CookieOptions(cookie, c.DAddrPort().Addr().Is6()).WScale
	gvsWS := a.wscale >> 4
	// window scales: out = server's → the one GVS gave the client; in =
	// the client's → what the server took (the client's when it agreed,
	// none when it did not)
	var outFrom, outTo, inFrom, inTo uint8
	if gvsWS != 0xf {
		outTo, inFrom = gvsWS, uint8(clientWS)
		inTo = inFrom
		if s.opts.WScale >= 0 {
			outFrom = uint8(s.opts.WScale)
		} else {
			inTo = 0
		}
	}
	a.seqDelta = s.tcp.Seq() - cookie
	a.tsDelta = 0
	if a.state&spTS != 0 && s.opts.TS {
		a.tsDelta = s.opts.TSVal - sent
	}
	a.wscale = outFrom<<4 | outTo
	clientWin := synproxy.Rescale(a.win, inFrom, inTo) // the client's window, in the server's view
	a.win = uint16(inFrom)<<4 | uint16(inTo)
	a.state &^= spWaiting | spRetryMask
	if was := c.State; was != session.StateEstablished {
		c.State = session.StateEstablished
		if d := w.lb.Dests[c.Dest]; d != nil {
			d.C.Active.Add(1)
			d.C.Inactive.Add(-1)
		}
	}
	w.sess.Touch(id, w.tick())
	w.ctr.inc(CtrLBSynProxyEstablished)
	w.destOut(c.Dest, uint64(b.Len()-int(b.L3)))
	var h *heldSeg
	if a.state&spHeld != 0 {
		a.state &^= spHeld
		h = w.sp.take(c, a.isn)
	}
	w.synProxyACKToServer(b, c, a, s, h, clientWin)
}

// synProxyACKToServer rewrites the server's SYN-ACK in b into the ACK that
// completes its handshake, with the held data h (if any) and the TOA.
func (w *Worker) synProxyACKToServer(b *pktbuf.Buf, c *session.Conn, a *spConn, s *spSeg, h *heldSeg, win uint16) {
	dst := c.DAddrPort().Addr()
	seg := synproxy.Segment{Src: c.LAddrPort().Addr(), Dst: dst, SrcPort: c.LPort, DstPort: c.DPort,
		Seq: a.isn + 1, Ack: s.tcp.Seq() + 1, Flags: header.TCPFlagACK, Window: win, TTL: 64,
		Opts: synproxy.Options{WScale: -1}}
	if s.opts.TS && a.state&spTS != 0 {
		seg.Opts.TS, seg.Opts.TSVal, seg.Opts.TSEcr = true, s.opts.TSEcr, s.opts.TSVal
	}
	var payload, pre []byte
	if h != nil {
		payload = h.data[:h.n]
		seg.Flags |= header.TCPFlagPSH
		if h.fin {
			seg.Flags |= header.TCPFlagFIN
		}
	}
	if a.pp.ver != 0 && a.pp.first(payload, len(payload) > 0) {
		pre = w.ppHeader(c, a) // GVS's header goes first (lbproxyproto.go)
		seg.Flags |= header.TCPFlagPSH
	}
	if !w.synProxyWrite(b, &seg, pre, payload) {
		return
	}
	l3 := b.Bytes()[b.L3:]
	if c.Flags&session.FlagTOAConfirmed == 0 {
		l3 = w.toaInsert(b, l3, c, dst)
	}
	w.destIn(c.Dest, uint64(len(l3)))
	w.ctr.inc(CtrLBIn)
	w.synProxySend(b, dst)
}

// synProxyResetClient answers the client of a connection whose server
// handshake failed with a RST (in b), ends the connection and counts why.
func (w *Worker) synProxyResetClient(b *pktbuf.Buf, id uint32, c *session.Conn, a *spConn, reason Counter) {
	client := c.CAddrPort()
	seg := synproxy.Segment{Src: c.VAddrPort().Addr(), Dst: client.Addr(), SrcPort: c.VPort, DstPort: c.CPort,
		Seq: a.seqDelta + 1, Flags: header.TCPFlagRST, TTL: w.dp.spCfg.TTL, Opts: synproxy.Options{WScale: -1}}
	w.sess.ExpireNow(id)
	w.ctr.inc(reason)
	if !w.synProxyWrite(b, &seg, nil, nil) {
		return
	}
	w.synProxySend(b, client.Addr())
}
