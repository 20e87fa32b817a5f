package pktgen

// The TCP client side of tcp mode: many client connections, each a few
// fields in a slab, driven by the segments that come back. One exchange is
//
//	SYN →, ← SYN-ACK, ACK →, request →, ← response (one or more segments),
//	FIN-ACK →, ← FIN-ACK, ACK →
//
// (the order of the last three adapts to a peer that closes first). With
// Hold the connection stays open after its last response. Lost segments
// are retransmitted after RTO, doubling, Retries times; then the
// connection counts as timed out. Connections are owned by the worker
// whose index is the client port modulo the number of client workers, so a
// reply that arrives on another queue is handed over.

import (
	"sync/atomic"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
)

const (
	cSynSent uint8 = iota + 1
	cEstablished
	cFinWait // our FIN sent, peer's not seen
	cLastAck // both FINs sent/seen, waiting for the ACK of ours
	cHeld
)

type cconn struct {
	src, dst       [4]byte
	sport, dport   uint16
	state          uint8
	peerFin        bool
	tries          uint8
	gen            uint32
	iss            uint32
	sndNxt, sndUna uint32
	rcvNxt         uint32
	reqSeq         uint32 // first sequence number of the current request
	reqs           uint16
	respGot        int
	started        int64
	reqSent        int64
}

// tcpClient is one client worker's connections.
type tcpClient struct {
	conns   []cconn
	free    []int32
	byTuple map[uint64]int32 // client addr<<16 | port → slot
	tq      timerSet

	// tuple cursor over this worker's (address, port) pairs
	nAddrs, nPorts int
	firstPort      uint16
	stride         uint16
	cursor         uint64

	ratePerNs float64
	start     int64
	issued    uint64
	maxActive int
	budget    int // attempts left (Conns), -1 unlimited
	active    int // connections in flight (not yet closed or held)
	held      int
	activePub atomic.Int64
	heldPub   atomic.Int64
	rng       uint64
	dstIdx    int

	handshake, rtt, connLat Histogram
}

func newTCPClient(w *worker, nWorkers int) *tcpClient {
	cfg := &w.r.cfg
	c := &tcpClient{
		byTuple: make(map[uint64]int32, 1<<16),
		tq:      newTimerSet(int64(cfg.TCP.RTO), cfg.TCP.Retries),
		nAddrs:  cfg.clientAddrCount(),
		stride:  uint16(nWorkers),
		rng:     uint64(w.idx+1)*0x9e3779b97f4a7c15 ^ uint64(w.r.clock.Now()),
	}
	// ports p with p % nWorkers == idx
	first := cfg.PortMin + uint16((w.idx-int(cfg.PortMin)%nWorkers+nWorkers)%nWorkers)
	c.firstPort = first
	if first <= cfg.PortMax {
		c.nPorts = int(cfg.PortMax-first)/nWorkers + 1
	}
	if cfg.Rate > 0 {
		c.ratePerNs = cfg.Rate / float64(nWorkers) / 1e9
	}
	c.budget = -1
	if cfg.TCP.Conns > 0 {
		c.budget = cfg.TCP.Conns / nWorkers
		if w.idx < cfg.TCP.Conns%nWorkers {
			c.budget++
		}
	}
	c.maxActive = 1 << 30
	if cfg.TCP.Concurrency > 0 {
		c.maxActive = max(1, cfg.TCP.Concurrency/nWorkers)
	}
	return c
}

func (c *tcpClient) rand() uint32 {
	c.rng ^= c.rng >> 12
	c.rng ^= c.rng << 25
	c.rng ^= c.rng >> 27
	return uint32((c.rng * 2685821657736338717) >> 32)
}

func (c *tcpClient) publish() {
	c.activePub.Store(int64(c.active))
	c.heldPub.Store(int64(c.held))
}

// open starts up to one burst of new connections, paced by the rate.
func (c *tcpClient) open(w *worker) int {
	cfg := &w.r.cfg
	want := cfg.Burst
	if c.ratePerNs > 0 {
		if c.start == 0 {
			c.start = w.now
		}
		due := uint64(float64(w.now-c.start) * c.ratePerNs)
		if due <= c.issued {
			return 0
		}
		want = min(want, int(due-c.issued))
	}
	if c.nPorts == 0 || c.nAddrs == 0 {
		return 0
	}
	total := uint64(c.nAddrs) * uint64(c.nPorts)
	n := 0
	for ; n < want; n++ {
		if c.active >= c.maxActive || c.budget == 0 {
			break
		}
		// the next free tuple; in-use tuples (held or still closing) are
		// skipped, at most one full lap per call
		var key uint64
		var src [4]byte
		var sport uint16
		found := false
		for tries := 0; tries < 64; tries++ {
			t := c.cursor % total
			c.cursor++
			src = cfg.clientAddr(int(t % uint64(c.nAddrs)))
			sport = c.firstPort + uint16(t/uint64(c.nAddrs))*c.stride
			key = tupleKey(src, sport)
			if _, busy := c.byTuple[key]; !busy {
				found = true
				break
			}
		}
		if !found {
			w.ctr.inc(CtrConnSkipped)
			break
		}
		b := w.alloc()
		if b == nil {
			break
		}
		slot := c.newConn()
		cn := &c.conns[slot]
		d := cfg.Dsts[c.dstIdx]
		if c.dstIdx++; c.dstIdx == len(cfg.Dsts) {
			c.dstIdx = 0
		}
		*cn = cconn{src: src, sport: sport, dst: d.Addr().As4(), dport: d.Port(), state: cSynSent,
			gen: cn.gen + 1, iss: c.rand(), started: w.now}
		cn.sndNxt, cn.sndUna = cn.iss+1, cn.iss
		c.byTuple[key] = slot
		c.active++
		if c.budget > 0 {
			c.budget--
		}
		w.ctr.inc(CtrConnAttempts)
		c.sendSyn(w, cn, b)
		c.tq.arm(slot, cn.gen, 0, w.now)
	}
	c.issued += uint64(n)
	if c.ratePerNs > 0 && n < want {
		c.issued += uint64(want - n) // no debt when limited by concurrency
	}
	return n
}

func tupleKey(a [4]byte, port uint16) uint64 {
	return uint64(a[0])<<40 | uint64(a[1])<<32 | uint64(a[2])<<24 | uint64(a[3])<<16 | uint64(port)
}

func (c *tcpClient) newConn() int32 {
	if n := len(c.free); n > 0 {
		s := c.free[n-1]
		c.free = c.free[:n-1]
		return s
	}
	c.conns = append(c.conns, cconn{})
	return int32(len(c.conns) - 1)
}

func (c *tcpClient) release(slot int32) {
	cn := &c.conns[slot]
	delete(c.byTuple, tupleKey(cn.src, cn.sport))
	cn.state = 0
	cn.gen++
	c.free = append(c.free, slot)
}

func (c *tcpClient) hdr(w *worker, cn *cconn) Hdr {
	return Hdr{SrcMAC: w.mac, DstMAC: w.nextHop, Src: cn.src, Dst: cn.dst, SrcPort: cn.sport, DstPort: cn.dport}
}

func (c *tcpClient) sendSyn(w *worker, cn *cconn, b *pktbuf.Buf) {
	var opt [4]byte
	h := c.hdr(w, cn)
	seg := TCPSeg{Seq: cn.iss, Flags: header.TCPFlagSYN, Window: 64240, Options: MSSOption(&opt, 1460)}
	w.emit(b, &h, &seg)
}

// sendCtl sends a segment without payload (ACK, FIN-ACK).
func (c *tcpClient) sendCtl(w *worker, cn *cconn, seq uint32, flags uint8) {
	h := c.hdr(w, cn)
	seg := TCPSeg{Seq: seq, Ack: cn.rcvNxt, Flags: flags, Window: 64240}
	w.emit(nil, &h, &seg)
}

func (c *tcpClient) sendRequest(w *worker, cn *cconn, slot int32) {
	cfg := &w.r.cfg
	h := c.hdr(w, cn)
	st := Stamp{Kind: KindRequest, Sender: uint8(w.idx), Flow: uint32(slot), Seq: uint32(cn.reqs), SentNs: w.now}
	seg := TCPSeg{Seq: cn.reqSeq, Ack: cn.rcvNxt, Flags: header.TCPFlagACK | header.TCPFlagPSH, Window: 64240,
		PayloadLen: cfg.TCP.RequestSize, Stamp: &st}
	if cn.reqSent == 0 || cn.tries == 0 {
		cn.reqSent = w.now
	}
	w.emit(nil, &h, &seg)
	w.ctr.inc(CtrRequests)
}

// input handles a segment for the client side received by w.
func (c *tcpClient) input(w *worker, p *Packet) {
	s := segmentOf(p)
	if owner := int(p.DstPort % uint16(w.r.txQueues())); owner != w.idx {
		if w.handOff(owner, &s) {
			return
		}
	}
	c.segment(w, &s)
}

func (c *tcpClient) segment(w *worker, s *segment) {
	cfg := &w.r.cfg
	slot, ok := c.byTuple[tupleKey(s.dst, s.dstPort)]
	if !ok {
		// a late retransmission of a connection we finished: acknowledge
		// FINs as a TIME_WAIT socket would
		if s.flags&header.TCPFlagFIN != 0 && s.flags&header.TCPFlagRST == 0 {
			h := Hdr{SrcMAC: w.mac, DstMAC: w.nextHop, Src: s.dst, Dst: s.src, SrcPort: s.dstPort, DstPort: s.srcPort}
			seg := TCPSeg{Seq: s.ack, Ack: s.seq + uint32(s.payLen) + 1, Flags: header.TCPFlagACK, Window: 64240}
			w.emit(nil, &h, &seg)
		}
		w.ctr.inc(CtrRxForeign)
		return
	}
	cn := &c.conns[slot]
	if s.flags&header.TCPFlagRST != 0 {
		if cn.state == cSynSent {
			w.ctr.inc(CtrConnRefused)
		} else {
			w.ctr.inc(CtrConnReset)
		}
		c.finish(slot)
		return
	}
	if s.flags&header.TCPFlagACK != 0 && seqLT(cn.sndUna, s.ack) && !seqLT(cn.sndNxt, s.ack) {
		cn.sndUna = s.ack
	}
	switch cn.state {
	case cSynSent:
		if s.flags&(header.TCPFlagSYN|header.TCPFlagACK) != header.TCPFlagSYN|header.TCPFlagACK || s.ack != cn.iss+1 {
			return
		}
		cn.rcvNxt = s.seq + 1
		cn.state = cEstablished
		cn.sndUna = cn.iss + 1
		cn.reqSeq = cn.sndUna
		cn.sndNxt = cn.reqSeq + uint32(cfg.TCP.RequestSize)
		c.handshake.Record(w.now - cn.started)
		w.ctr.inc(CtrConnEstablished)
		c.sendCtl(w, cn, cn.sndUna, header.TCPFlagACK)
		cn.tries = 0
		c.sendRequest(w, cn, slot)
		c.rearm(w, slot, cn)
		return
	case cHeld:
		if s.payLen > 0 || s.flags&header.TCPFlagFIN != 0 {
			c.sendCtl(w, cn, cn.sndNxt, header.TCPFlagACK)
		}
		return
	}
	if s.flags&header.TCPFlagSYN != 0 {
		// our ACK of the SYN-ACK was lost: acknowledge again
		c.sendCtl(w, cn, cn.sndNxt, header.TCPFlagACK)
		return
	}
	progress := false
	if s.payLen > 0 || s.flags&header.TCPFlagFIN != 0 {
		if s.seq != cn.rcvNxt {
			// duplicate or out of order: repeat our acknowledgement
			c.sendCtl(w, cn, cn.sndNxt, header.TCPFlagACK)
			return
		}
		if s.payLen > 0 {
			if cn.respGot == 0 {
				c.rtt.Record(w.now - cn.reqSent)
			}
			cn.rcvNxt += uint32(s.payLen)
			cn.respGot += s.payLen
			progress = true
		}
		if s.flags&header.TCPFlagFIN != 0 {
			cn.rcvNxt++
			cn.peerFin = true
			progress = true
		}
	}
	switch cn.state {
	case cEstablished:
		if cn.respGot >= cfg.TCP.ResponseSize {
			cn.respGot = 0
			cn.reqs++
			w.ctr.inc(CtrResponses)
			if int(cn.reqs) < cfg.TCP.Requests && !cn.peerFin {
				cn.reqSeq = cn.sndNxt
				cn.sndNxt += uint32(cfg.TCP.RequestSize)
				cn.tries = 0
				c.sendRequest(w, cn, slot)
				c.rearm(w, slot, cn)
				return
			}
			if cfg.TCP.Hold && !cn.peerFin {
				c.sendCtl(w, cn, cn.sndNxt, header.TCPFlagACK)
				cn.state = cHeld
				cn.gen++
				c.active--
				c.held++
				w.ctr.inc(CtrConnCompleted)
				c.connLat.Record(w.now - cn.started)
				return
			}
			c.close(w, slot, cn)
			return
		}
		if cn.peerFin {
			// the peer closed before a full response: close too
			c.close(w, slot, cn)
			return
		}
		if progress {
			c.sendCtl(w, cn, cn.sndNxt, header.TCPFlagACK)
		}
	case cFinWait:
		if cn.peerFin {
			c.sendCtl(w, cn, cn.sndNxt, header.TCPFlagACK)
			c.finish(slot)
			c.connLat.Record(w.now - cn.started)
			w.ctr.inc(CtrConnCompleted)
			return
		}
		if progress {
			c.sendCtl(w, cn, cn.sndNxt, header.TCPFlagACK)
		}
	case cLastAck:
		if s.ack == cn.sndNxt {
			c.finish(slot)
			c.connLat.Record(w.now - cn.started)
			w.ctr.inc(CtrConnCompleted)
		}
	}
}

// close sends our FIN (acknowledging everything received).
func (c *tcpClient) close(w *worker, slot int32, cn *cconn) {
	c.sendCtl(w, cn, cn.sndNxt, header.TCPFlagFIN|header.TCPFlagACK)
	cn.sndNxt++
	if cn.peerFin {
		cn.state = cLastAck
	} else {
		cn.state = cFinWait
	}
	cn.tries = 0
	c.rearm(w, slot, cn)
}

func (c *tcpClient) rearm(w *worker, slot int32, cn *cconn) {
	cn.gen++
	c.tq.arm(slot, cn.gen, int(cn.tries), w.now)
}

// finish releases a connection in flight.
func (c *tcpClient) finish(slot int32) {
	cn := &c.conns[slot]
	if cn.state == cHeld {
		c.held--
	} else {
		c.active--
	}
	c.release(slot)
}

// timers retransmits what is overdue.
func (c *tcpClient) timers(w *worker) {
	c.tq.expire(w.now, func(e timerEntry, try int) {
		cn := &c.conns[e.slot]
		if cn.gen != e.gen || cn.state == 0 || cn.state == cHeld {
			return
		}
		if try >= len(c.tq.levels)-1 {
			w.ctr.inc(CtrConnTimeout)
			c.finish(e.slot)
			return
		}
		cn.tries = uint8(try + 1)
		w.ctr.inc(CtrRetransmits)
		switch cn.state {
		case cSynSent:
			if b := w.alloc(); b != nil {
				c.sendSyn(w, cn, b)
			}
		case cEstablished:
			if cn.sndUna != cn.sndNxt {
				c.sendRequest(w, cn, e.slot)
			} else {
				// request acknowledged, response overdue: probe
				c.sendCtl(w, cn, cn.sndNxt, header.TCPFlagACK)
			}
		case cFinWait, cLastAck:
			if cn.sndUna != cn.sndNxt {
				c.sendCtl(w, cn, cn.sndNxt-1, header.TCPFlagFIN|header.TCPFlagACK)
			}
		}
		cn.gen++
		c.tq.arm(e.slot, cn.gen, try+1, w.now)
	})
}
