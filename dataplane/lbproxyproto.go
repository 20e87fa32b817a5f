package dataplane

// The PROXY protocol (ipvsadm --proxy-protocol v1|v2[-insecure]) on
// FullNAT TCP services: the real server reads the client's address from a
// header (package proxyproto) in front of the connection's data instead of
// the TOA.
//
// The header occupies sequence space only the server sees, n bytes from
// the client's ISN+1 on:
//
//   - every client segment that starts at ISN+1 gets the header in front
//     of its payload (the handshake-completing ACK too, so a server that
//     speaks first — SMTP, SSH — gets it without waiting for client data),
//     until the server has acknowledged the header: a lost segment's
//     retransmission carries it again, and every copy is the same bytes;
//   - every later client segment moves up by n (sequence number), every
//     server segment's acknowledgement and SACK blocks down by n (an
//     acknowledgement inside the header becomes ISN+1);
//   - the MSS the server advertises is lowered by n (as for the TOA), and a
//     segment that would still not fit is cut: the client resends the rest.
//
// "-insecure" trusts a proxy in front of GVS: the header is decided at the
// client's first data segment; one of the same version already there is
// kept as it is, otherwise GVS's goes in front. The secure variants always
// put GVS's first, so whatever the client sent reaches the server as data.
// The state lives in the connection's adjustment entry (lbsynproxy.go: the
// SYN proxy shares it, its deltas and these are independent).

import (
	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/nat"
	"github.com/gvs-lb/gvs/proxyproto"
	"github.com/gvs-lb/gvs/session"
	"github.com/gvs-lb/gvs/synproxy"
)

// ppConn is a connection's proxy protocol state.
type ppConn struct {
	ver   uint8 // 1 or 2; 0: none
	flags uint8 // pp* bits
	n     uint8 // the header's length: the server's sequence space is ahead by n once decided
}

const (
	ppInsecure  = 1 << 0 // keep a client's own header of the same version
	ppDecided   = 1 << 1 // n is fixed
	ppKeep      = 1 << 2 // the client's header is kept: no shift at all
	ppConfirmed = 1 << 3 // the server acknowledged the header: no more insertion
)

// first decides, for the segment at ISN+1 with payload, whether GVS's
// header goes in front of it (and fixes n); data says whether the segment
// carries data. The insecure variants wait for data to decide.
func (p *ppConn) first(payload []byte, data bool) bool {
	if p.flags&ppDecided == 0 {
		if p.flags&ppInsecure != 0 {
			if !data {
				return false
			}
			if v, _ := proxyproto.Parse(payload); v == int(p.ver) {
				p.flags |= ppDecided | ppKeep | ppConfirmed
				return false
			}
		}
		p.flags |= ppDecided
	}
	return p.flags&(ppKeep|ppConfirmed) == 0
}

// out moves a server segment's acknowledgement and SACK blocks out of the
// header's sequence space, and notes when the header is acknowledged.
func (p *ppConn) out(isn uint32, s *spSeg, d *synproxy.Delta) {
	if p.flags&(ppDecided|ppKeep) != ppDecided {
		return
	}
	n := uint32(p.n)
	if s.flags&header.TCPFlagACK != 0 {
		switch off := s.tcp.Ack() - (isn + 1); {
		case p.flags&ppConfirmed != 0:
			d.Ack = -n // whatever the stream's length (no half-space test)
		case off >= 1<<31:
			// before ISN+1 (the SYN-ACK): nothing to move
		case off >= n:
			d.Ack = -n
			p.flags |= ppConfirmed
		default:
			d.Ack = -off // inside the header: the client's ISN+1
		}
	}
	d.SACK = -n
}

// ppIn prepares a client segment of a proxy-protocol connection: true when
// GVS's header goes in front of it (ppInsert), else the segment's sequence
// number is shifted past the header (in d).
func (w *Worker) ppIn(a *spConn, s *spSeg, d *synproxy.Delta) bool {
	p := &a.pp
	if s.flags&header.TCPFlagSYN != 0 {
		return false // the SYN takes the client's ISN: before the header
	}
	off := s.tcp.Seq() - (a.isn + 1)
	data := len(s.payload) > 0 || s.flags&header.TCPFlagFIN != 0
	if off == 0 && s.flags&(header.TCPFlagSYN|header.TCPFlagRST) == 0 && p.first(s.payload, len(s.payload) > 0) {
		return true
	}
	if p.flags&ppDecided == 0 && off > 0 && off < 1<<31 && data {
		p.flags |= ppDecided // later data before the first segment: GVS's header will go first
	}
	if p.flags&(ppDecided|ppKeep) == ppDecided {
		d.Seq = uint32(p.n)
	}
	return false
}

// ppHeader writes connection c's header into the worker's buffer and
// returns it.
func (w *Worker) ppHeader(c *session.Conn, a *spConn) []byte {
	n := proxyproto.Write(w.sp.hdr[:], int(a.pp.ver), header.ProtoTCP, unmapAP(c.CAddrPort()), unmapAP(c.VAddrPort()))
	return w.sp.hdr[:n]
}

// adjustEntry starts the adjustment entry of connection id, just made for
// service svc with the client's ISN isn: the proxy protocol's part (the
// SYN proxy sets its own on top).
func (w *Worker) adjustEntry(id uint32, svc *ipvs.Service, c *session.Conn, isn uint32) {
	a := &w.sp.conns[id]
	*a = spConn{isn: isn}
	if v := svc.Spec.ProxyProtocol; v != 0 {
		a.pp = ppConn{ver: v, n: uint8(proxyproto.Len(int(v), unmapAP(c.CAddrPort()), unmapAP(c.VAddrPort())))}
		if svc.Spec.ProxyProtocolInsecure {
			a.pp.flags = ppInsecure
		}
	}
}

// ppInsert puts connection c's header in front of the payload of the
// client segment in b (l3 at b.L3, already shifted for the SYN proxy) and
// returns the grown packet. A segment that would not fit the egress MTU
// with it keeps only what fits (the client resends the rest).
func (w *Worker) ppInsert(b *pktbuf.Buf, l3 []byte, t header.Transport, c *session.Conn, a *spConn) ([]byte, bool) {
	hdr := w.ppHeader(c, a)
	n := len(hdr)
	tcp := header.TCP(l3[t.Off:])
	pstart := int(t.Off) + tcp.DataOffset()
	plen := len(l3) - pstart
	size := len(l3) + n
	if isNAT64(c) {
		size -= nat.NAT64Growth // an IPv4 header replaces the IPv6 one after this
	}
	if room := w.routeMTU(c.DAddrPort().Addr().Unmap()) - size; room < 0 {
		cut := min(plen, -room)
		plen -= cut
		w.ctr.inc(CtrLBPPCut)
		if tcp.Flags()&header.TCPFlagFIN != 0 && cut > 0 {
			l3[int(t.Off)+13] &^= header.TCPFlagFIN // the FIN comes after the part not sent
		}
	}
	total := pstart + plen + n
	if !b.SetLen(int(b.L3) + total) {
		w.drop(b, CtrDropNoBuffer)
		return nil, false
	}
	l3 = b.Bytes()[b.L3:]
	copy(l3[pstart+n:], l3[pstart:pstart+plen])
	copy(l3[pstart:], hdr)
	if t.V6() {
		header.IPv6(l3).SetPayloadLen(uint16(total - header.IPv6MinSize))
	} else {
		ip := header.IPv4(l3)
		ip.SetTotalLen(uint16(total))
		ip.SetChecksum(0)
		ip.SetChecksum(^header.Checksum(l3[:ip.HeaderLen()], 0))
	}
	seg := l3[t.Off:total]
	src, dst := addrBytes(l3, t)
	header.TCP(seg).SetChecksum(header.TransportChecksum(header.ProtoTCP, src, dst, seg, 16))
	w.ctr.inc(CtrLBPPAdded)
	return l3, true
}

// growthPending is what GVS may still add to connection c's client
// segments: the TOA until confirmed, the proxy protocol header until
// acknowledged; 0 for the others.
func (w *Worker) growthPending(c *session.Conn, id uint32) int {
	if c.Proto != header.ProtoTCP || !c.HasLocal() {
		return 0
	}
	if c.Flags&session.FlagAdjusted != 0 {
		if p := &w.sp.conns[id].pp; p.ver != 0 && p.flags&(ppKeep|ppConfirmed) == 0 {
			return int(p.n)
		}
	}
	if c.Flags&session.FlagTOAConfirmed == 0 {
		return nat.TOALen(c.CAddrPort().Addr().Unmap())
	}
	return 0
}

// firstSegmentExtra is what GVS adds to connection c's first client
// segment: its proxy protocol header, or the TOA.
func (w *Worker) firstSegmentExtra(c *session.Conn, id uint32) int {
	if c.Flags&session.FlagAdjusted != 0 {
		if a := &w.sp.conns[id]; a.pp.ver != 0 {
			return proxyproto.Len(int(a.pp.ver), c.CAddrPort(), c.VAddrPort())
		}
	}
	return nat.TOALen(c.CAddrPort().Addr().Unmap())
}
