package dataplane

// Resets at a connection's end. A FullNAT or NAT TCP connection that GVS
// ends itself would otherwise live on at its ends: a real server keeps an
// idle ESTABLISHED socket for hours (and meets the next connection from
// the same local port with a challenge ACK), a client keeps sending into
// nothing, a server that answered a SYN keeps its half-open connection for
// a minute. As DPVS does (tcp_conn_expire), GVS then resets them:
//   - an ESTABLISHED connection that expires: a RST to the real server and
//     one to the client;
//   - an embryonic one (NONE, SYN_SENT, SYN_RECV, SYNACK) that expires or
//     is evicted from a full table (lbpressure.go), if the real server
//     answered it: a RST to the real server only. Its client is more
//     likely a flood's forged source than a host waiting for an answer.
//
// Each RST carries the sequence number its receiver expects next (RFC
// 5961 §3.2: anything else earns a challenge ACK, not a reset), taken from
// the real server's last segment through the worker: its acknowledgment
// number for the server, the end of its data for the client (moved into
// the client's sequence space for a SYN-proxy connection). The session
// table keeps those two numbers beside each conn (session.Ends, noted by
// lbConn). Once the server's direction goes by the XDP fast path, the
// program notes its segments the same way in the direction's entry, and
// the worker adds those numbers when it takes the entry back (xdpRemove;
// at the connection's end, before connReset). Nothing is sent when they
// are not known — no segment from the server since the conn was made or
// installed by session sync — or when they no longer are (a sync update:
// another node carries the flow on). Numbers that went stale anyway fail
// safe: a RST out of the receiver's window is ignored.
//
// Not for direct routing or tunnel connections (the server's segments do
// not pass GVS), nor SNAT. ipvs.expire_reset: false turns it off
// (Options.NoExpireReset) and frees the 8 bytes per connection.

import (
	"net/netip"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/session"
	"github.com/gvs-lb/gvs/synproxy"
)

// noteEnds records a real server's segment of connection id (as it
// arrived, before any translation; flags are its TCP flags) in the session
// table's Ends: one with ACK and without RST (a server sends nothing else
// once it has answered).
func (w *Worker) noteEnds(id uint32, l3 []byte, t header.Transport, flags uint8) {
	if flags&(header.TCPFlagRST|header.TCPFlagACK) != header.TCPFlagACK || t.Fragment() {
		return
	}
	if end, ack, ok := tcpSeqEnd(l3, t); ok { // lbxdp.go
		w.sess.NoteEnds(id, end+uint32(flags>>1&1)+uint32(flags&header.TCPFlagFIN), ack) // SYN and FIN count one
	}
}

// connReset sends the resets for connection id, which GVS is ending
// (connRelease, before anything is given back; after the fast path's
// entries are gone, with the numbers they noted).
func (w *Worker) connReset(id uint32, c *session.Conn) {
	if c.Proto != header.ProtoTCP || !w.sess.KeepsEnds() {
		return
	}
	est := c.State == session.StateEstablished
	if !est && !c.State.Embryonic() {
		return
	}
	e := w.sess.Ends(id)
	if !e.Set() {
		return
	}
	fullNAT, marked := c.HasLocal(), w.isMasq(id)
	if fullNAT == marked {
		return // direct routing or tunnel (neither), SNAT (both)
	}
	src := c.CAddrPort() // NAT: the server sees the client
	if fullNAT {
		src = c.LAddrPort()
	}
	w.sendReset(src, c.DAddrPort(), e.Ack, CtrLBResetServer)
	if !est {
		return
	}
	next := e.Next
	if c.Flags&session.FlagAdjusted != 0 {
		next = w.sp.clientSeq(id, next)
	}
	w.sendReset(c.VAddrPort(), c.CAddrPort(), next, CtrLBResetClient)
}

// forgetEnds forgets connection id's server numbers — the session
// table's and those the XDP fast path noted (lbxdp.go) — when another node
// carries or ended the flow (session sync): no resets from here, unless
// the flow runs through this node again.
func (w *Worker) forgetEnds(id uint32) {
	w.sess.ClearEnds(id)
	w.xdpForgetEnds(id)
}

// sendReset sends a bare RST from src to dst with sequence number seq,
// routed as a translated packet to dst would be, and counts it in ctr.
func (w *Worker) sendReset(src, dst netip.AddrPort, seq uint32, ctr Counter) {
	seg := synproxy.Segment{Src: src.Addr().Unmap(), Dst: dst.Addr().Unmap(), SrcPort: src.Port(), DstPort: dst.Port(),
		Seq: seq, Flags: header.TCPFlagRST, TTL: 64, Opts: synproxy.Options{WScale: -1}}
	if seg.Src.Is4() != seg.Dst.Is4() {
		return
	}
	var scratch [header.IPv6MinSize + header.TCPMinSize]byte
	l3 := scratch[:seg.HeaderLen()]
	seg.Write(l3, 0)
	out, nh, ne, ok := w.path(seg.Dst, l3)
	if !ok {
		w.ctr.inc(CtrDropNoRoute)
		return
	}
	b := w.queues[out.Port].Alloc()
	if b == nil {
		w.ctr.inc(CtrDropNoBuffer)
		return
	}
	b.L3 = 0 // the buffer's headroom takes the L2 header in output
	copy(b.Append(len(l3)), l3)
	w.ctr.inc(ctr)
	w.xmitTo(b, out, nh, ne)
}
