package pktgen

// The real-server side of tcp mode: it answers for every address in
// ServerAddrs, whoever the peer is (the client itself behind a DNAT
// balancer, the balancer's local address behind FullNAT, a proxy's own
// address). A connection is keyed by its 4-tuple and owned by the worker
// of the queue its SYN arrived on, which also sends the answers: a
// balancer with fewer queues than this port listens only on those, and
// every system measured here keeps a connection's packets on one queue
// (GVS by its worker ownership, the kernel by flow hash). For each
// in-order request segment it sends a response of ResponseSize bytes
// (split at the MSS) that echoes the request's stamp; a FIN is answered
// with FIN-ACK. TCP options are read and otherwise ignored, TOA included
// (counted).

import (
	"sync/atomic"

	"github.com/gvs-lb/gvs/header"
)

const (
	sSynRcvd uint8 = iota + 1
	sEstablished
	sLastAck
)

type srvKey struct {
	peer, local         [4]byte
	peerPort, localPort uint16
}

type sconn struct {
	key            srvKey
	mac            header.MAC
	state          uint8
	gen            uint32
	iss            uint32
	sndNxt, sndUna uint32
	rcvNxt         uint32
	respSeq        uint32 // first sequence number of the last response
	responded      bool
	respStamp      Stamp
}

// tcpServer is one server worker's connections.
type tcpServer struct {
	conns []sconn
	free  []int32
	byKey map[srvKey]int32
	tq    timerSet
	open  int
	pub   atomic.Int64
	rng   uint64
}

func newTCPServer(w *worker) *tcpServer {
	cfg := &w.r.cfg
	return &tcpServer{
		byKey: make(map[srvKey]int32, 1<<16),
		tq:    newTimerSet(int64(cfg.TCP.RTO), cfg.TCP.Retries),
		rng:   uint64(w.idx+7)*0x9e3779b97f4a7c15 ^ uint64(w.r.clock.Now()),
	}
}

func (t *tcpServer) rand() uint32 {
	t.rng ^= t.rng >> 12
	t.rng ^= t.rng << 25
	t.rng ^= t.rng >> 27
	return uint32((t.rng * 2685821657736338717) >> 32)
}

func (t *tcpServer) publish() { t.pub.Store(int64(t.open)) }

func (t *tcpServer) input(w *worker, p *Packet) {
	if !w.r.ownsAddr(SideServer, addr4(p.Dst)) {
		w.ctr.inc(CtrRxForeign)
		return
	}
	s := segmentOf(p)
	d := w.dsts.get(p.Dst)
	d.packets++
	if p.Flags&(header.TCPFlagSYN|header.TCPFlagACK) == header.TCPFlagSYN {
		d.conns++
	}
	t.segment(w, &s)
}

func (t *tcpServer) hdr(w *worker, c *sconn) Hdr {
	return Hdr{SrcMAC: w.mac, DstMAC: c.mac, Src: c.key.local, Dst: c.key.peer, SrcPort: c.key.localPort, DstPort: c.key.peerPort}
}

func (t *tcpServer) sendCtl(w *worker, c *sconn, seq uint32, flags uint8) {
	h := t.hdr(w, c)
	seg := TCPSeg{Seq: seq, Ack: c.rcvNxt, Flags: flags, Window: 64240}
	w.emit(nil, &h, &seg)
}

func (t *tcpServer) sendSynAck(w *worker, c *sconn) {
	var opt [4]byte
	h := t.hdr(w, c)
	seg := TCPSeg{Seq: c.iss, Ack: c.rcvNxt, Flags: header.TCPFlagSYN | header.TCPFlagACK, Window: 64240,
		Options: MSSOption(&opt, uint16(w.r.cfg.TCP.MSS))}
	w.emit(nil, &h, &seg)
}

// sendResponse sends the response starting at c.respSeq in MSS-sized
// segments; the first carries the stamp.
func (t *tcpServer) sendResponse(w *worker, c *sconn) {
	cfg := &w.r.cfg
	h := t.hdr(w, c)
	seq := c.respSeq
	for left := cfg.TCP.ResponseSize; left > 0; {
		n := min(left, cfg.TCP.MSS)
		seg := TCPSeg{Seq: seq, Ack: c.rcvNxt, Flags: header.TCPFlagACK, Window: 64240, PayloadLen: n}
		if seq == c.respSeq {
			seg.Stamp = &c.respStamp
		}
		if left == n {
			seg.Flags |= header.TCPFlagPSH
		}
		w.emit(nil, &h, &seg)
		seq += uint32(n)
		left -= n
	}
	w.ctr.inc(CtrSrvResponses)
}

func (t *tcpServer) segment(w *worker, s *segment) {
	key := srvKey{peer: s.src, local: s.dst, peerPort: s.srcPort, localPort: s.dstPort}
	slot, ok := t.byKey[key]
	if !ok {
		t.fresh(w, s, key)
		return
	}
	c := &t.conns[slot]
	c.mac = s.srcMAC
	if s.flags&header.TCPFlagRST != 0 {
		t.release(slot)
		return
	}
	if s.flags&header.TCPFlagSYN != 0 {
		if c.state == sSynRcvd && s.seq+1 == c.rcvNxt {
			t.sendSynAck(w, c) // the SYN-ACK was lost
			return
		}
		// a new connection reusing the tuple
		t.release(slot)
		t.fresh(w, s, key)
		return
	}
	if s.flags&header.TCPFlagACK != 0 && seqLT(c.sndUna, s.ack) && !seqLT(c.sndNxt, s.ack) {
		c.sndUna = s.ack
	}
	if c.state == sSynRcvd {
		if s.flags&header.TCPFlagACK == 0 || s.ack != c.iss+1 {
			return
		}
		c.state = sEstablished
		w.ctr.inc(CtrSrvEstablished)
		c.gen++ // the SYN-ACK's timer is void
	}
	if s.toa {
		w.ctr.inc(CtrSrvTOA)
	}
	if s.payLen == 0 && s.flags&header.TCPFlagFIN == 0 {
		if c.state == sLastAck && s.ack == c.sndNxt {
			w.ctr.inc(CtrSrvClosed)
			t.release(slot)
		}
		return
	}
	if s.seq != c.rcvNxt {
		t.sendCtl(w, c, c.sndNxt, header.TCPFlagACK) // duplicate: acknowledge again
		return
	}
	c.rcvNxt += uint32(s.payLen)
	if s.payLen > 0 && c.state == sEstablished {
		if s.hasStamp && s.stamp.Kind == KindRequest {
			c.respStamp = s.stamp
			c.respStamp.Kind = KindResponse
		} else {
			c.respStamp = Stamp{Kind: KindResponse}
		}
		c.respSeq = c.sndNxt
		c.responded = true
		c.sndNxt += uint32(w.r.cfg.TCP.ResponseSize)
		t.sendResponse(w, c)
		c.gen++
		t.tq.arm(slot, c.gen, 0, w.now)
	}
	if s.flags&header.TCPFlagFIN != 0 {
		c.rcvNxt++
		if c.state == sEstablished {
			t.sendCtl(w, c, c.sndNxt, header.TCPFlagFIN|header.TCPFlagACK)
			c.sndNxt++
			c.state = sLastAck
			c.gen++
			t.tq.arm(slot, c.gen, 0, w.now)
		} else {
			t.sendCtl(w, c, c.sndNxt, header.TCPFlagACK)
		}
	} else if s.payLen > 0 && c.state != sEstablished {
		t.sendCtl(w, c, c.sndNxt, header.TCPFlagACK)
	}
}

// fresh handles a segment without a connection: a SYN opens one, a FIN
// of a connection already closed is acknowledged, the rest is stray.
func (t *tcpServer) fresh(w *worker, s *segment, key srvKey) {
	switch {
	case s.flags&(header.TCPFlagSYN|header.TCPFlagACK|header.TCPFlagRST) == header.TCPFlagSYN:
		slot := t.newConn()
		c := &t.conns[slot]
		*c = sconn{key: key, mac: s.srcMAC, state: sSynRcvd, gen: c.gen + 1, iss: t.rand(), rcvNxt: s.seq + 1}
		c.sndUna, c.sndNxt = c.iss, c.iss+1
		t.byKey[key] = slot
		t.open++
		w.ctr.inc(CtrSrvSyn)
		t.sendSynAck(w, c)
		t.tq.arm(slot, c.gen, 0, w.now)
	case s.flags&header.TCPFlagFIN != 0 && s.flags&header.TCPFlagRST == 0:
		h := Hdr{SrcMAC: w.mac, DstMAC: s.srcMAC, Src: s.dst, Dst: s.src, SrcPort: s.dstPort, DstPort: s.srcPort}
		seg := TCPSeg{Seq: s.ack, Ack: s.seq + uint32(s.payLen) + 1, Flags: header.TCPFlagACK, Window: 64240}
		w.emit(nil, &h, &seg)
		w.ctr.inc(CtrSrvStray)
	default:
		w.ctr.inc(CtrSrvStray)
	}
}

func (t *tcpServer) newConn() int32 {
	if n := len(t.free); n > 0 {
		s := t.free[n-1]
		t.free = t.free[:n-1]
		return s
	}
	t.conns = append(t.conns, sconn{})
	return int32(len(t.conns) - 1)
}

func (t *tcpServer) release(slot int32) {
	c := &t.conns[slot]
	delete(t.byKey, c.key)
	c.state = 0
	c.gen++
	t.open--
	t.free = append(t.free, slot)
}

func (t *tcpServer) timers(w *worker) {
	t.tq.expire(w.now, func(e timerEntry, try int) {
		c := &t.conns[e.slot]
		if c.gen != e.gen || c.state == 0 {
			return
		}
		if c.sndUna == c.sndNxt && c.state != sSynRcvd {
			return // everything acknowledged: nothing to resend
		}
		if try >= len(t.tq.levels)-1 {
			w.ctr.inc(CtrSrvTimeout)
			t.release(e.slot)
			return
		}
		w.ctr.inc(CtrSrvRetransmits)
		switch c.state {
		case sSynRcvd:
			t.sendSynAck(w, c)
		case sEstablished:
			t.sendResponse(w, c)
		case sLastAck:
			if c.responded && seqLT(c.sndUna, c.respSeq+uint32(w.r.cfg.TCP.ResponseSize)) {
				t.sendResponse(w, c)
			}
			t.sendCtl(w, c, c.sndNxt-1, header.TCPFlagFIN|header.TCPFlagACK)
		}
		c.gen++
		t.tq.arm(e.slot, c.gen, try+1, w.now)
	})
}
