package pktgen

// A worker owns one queue of one port, like a GVS worker: a goroutine
// locked to a thread (pinned when asked) that receives a burst, handles it
// (ARP, counting, the TCP state machines), generates what its mode asks
// for, and transmits in bursts. Queues are single-owner, so everything a
// worker touches per packet is its own; the only shared state is the run's
// stop flags and the handoff rings of the TCP modes.

import (
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/ring"
	"github.com/gvs-lb/gvs/header"
)

const (
	maxBurst = 256
	// idleSpins empty loops before a worker that generates nothing naps
	// (Config.IdleSleep) or, without a nap time, sleeps in poll() on its
	// queue for at most idleSleep.
	idleSpins = 64
	idleSleep = time.Millisecond
)

// Side says which port a worker serves.
type Side int

// Sides.
const (
	SideClient Side = iota
	SideServer
)

func (s Side) String() string {
	if s == SideClient {
		return "client"
	}
	return "server"
}

// worker is one queue's loop.
type worker struct {
	r    *runner
	side Side
	idx  int // queue index
	q    port.Queue
	cpu  int
	mac  header.MAC
	// nextHop is where the client side sends (the gateway); the server
	// side answers to the source MAC of what it receives and keeps the
	// last one seen for retransmissions.
	nextHop header.MAC
	now     int64

	ctr    counters
	oneWay Histogram // udp/syn: send → receive (syn with a SYN proxy: SYN → SYN-ACK)
	// streamLat is syn mode's established stream: send → receive
	streamLat Histogram
	flows     flowStats
	dsts      dstTable
	rxb       [maxBurst]*pktbuf.Buf
	txb       [maxBurst]*pktbuf.Buf
	ntx       int
	pkt       Packet
	lastPub   int64
	gen       *udpGen
	tcpc      *tcpClient
	tcps      *tcpServer
	handoff   []*ring.SPSC[segment] // inbound, one per peer worker of this side
	outbound  []*ring.SPSC[segment] // outbound, indexed by destination worker
}

// run is the worker's loop; it returns when the run stops.
func (w *worker) run() {
	defer w.r.wg.Done()
	prio := 0
	if w.side == SideServer {
		prio = w.r.cfg.ServerRTPriority
	}
	if err := PinThread(w.cpu, prio); err != nil {
		w.r.warn(err)
	}
	r := w.r
	idle := 0
	fds := []unix.PollFd{{Fd: int32(w.q.PollFD()), Events: unix.POLLIN}}
	var histEpoch uint64
	for !r.stop.Load() {
		w.now = r.clock.Now()
		if e := r.histEpoch.Load(); e != histEpoch {
			histEpoch = e
			w.oneWay = Histogram{}
			w.streamLat = Histogram{}
		}
		busy := w.receive()
		busy += w.receiveHandoffs()
		if !r.genStop.Load() && !r.paused.Load() {
			if w.gen != nil {
				busy += w.gen.generate(w)
			}
			if w.tcpc != nil {
				busy += w.tcpc.open(w)
			}
		}
		if w.tcpc != nil {
			w.tcpc.timers(w)
		}
		if w.tcps != nil {
			w.tcps.timers(w)
		}
		w.flush()
		w.q.Flush()
		if w.now-w.lastPub > int64(time.Millisecond) {
			w.publish()
		}
		if busy > 0 {
			idle = 0
			continue
		}
		if idle++; idle < idleSpins || w.generating() || fds[0].Fd < 0 {
			continue
		}
		if d := r.cfg.IdleSleep; d > 0 {
			// a timed nap, not a wait on the socket: a socket wait makes
			// the kernel wake this thread from whichever CPU delivers the
			// packets, and that CPU is the system under test's
			ts := unix.NsecToTimespec(int64(d))
			_ = unix.Nanosleep(&ts, nil)
			continue
		}
		ts := unix.NsecToTimespec(int64(idleSleep))
		fds[0].Revents = 0
		_, _ = unix.Ppoll(fds, &ts, nil)
	}
	w.flush()
	w.finalFlush()
	w.publish()
}

// finalFlush waits (briefly) until the kernel has taken every descriptor
// the worker put on its transmit ring; descriptors still there when the
// socket closes are never sent, so they come off tx_packets.
func (w *worker) finalFlush() {
	q, ok := w.q.(interface{ InFlight() (rx, tx int) })
	if !ok {
		w.q.Flush()
		return
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	for {
		w.q.Flush()
		_, tx := q.InFlight()
		if tx == 0 {
			return
		}
		if time.Now().After(deadline) {
			w.ctr.v[CtrTxPackets] -= min(uint64(tx), w.ctr.v[CtrTxPackets])
			w.ctr.add(CtrTxRefused, uint64(tx))
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// generating reports whether the worker must keep spinning because it
// has packets or connections to start now. A TCP client at its
// concurrency limit waits for replies like a sink does (its timers still
// run at least every idleSleep), leaving the CPU to whatever shares it.
func (w *worker) generating() bool {
	if w.r.genStop.Load() || w.r.paused.Load() {
		return false
	}
	if w.gen != nil {
		return true
	}
	if c := w.tcpc; c != nil {
		return c.budget != 0 && c.active < c.maxActive
	}
	return false
}

func (w *worker) publish() {
	w.lastPub = w.now
	if w.tcpc != nil {
		w.tcpc.publish()
	}
	if w.tcps != nil {
		w.tcps.publish()
	}
	w.ctr.publish()
}

// receive handles one rx burst and returns its size.
func (w *worker) receive() int {
	n := w.q.RxBurst(w.rxb[:w.r.cfg.Burst])
	for i := 0; i < n; i++ {
		b := w.rxb[i]
		w.rxb[i] = nil
		w.input(b)
		b.Free()
	}
	return n
}

func (w *worker) input(b *pktbuf.Buf) {
	frame := b.Bytes()
	p := &w.pkt
	w.ctr.inc(CtrRxPackets)
	w.ctr.add(CtrRxBytes, uint64(len(frame)))
	if err := Parse(frame, p); err != nil {
		w.ctr.inc(CtrRxParseErr)
		return
	}
	if p.EthType == header.EtherTypeARP {
		w.arp(p)
		return
	}
	if w.r.cfg.VerifyChecksums && !ChecksumsValid(frame, p) {
		w.ctr.inc(CtrRxBadCsum)
		return
	}
	switch {
	case p.Proto == header.ProtoTCP && w.tcps != nil:
		w.tcps.input(w, p)
	case p.Proto == header.ProtoTCP && w.tcpc != nil:
		w.tcpc.input(w, p)
	default:
		w.count(p, len(frame))
	}
}

// count is the sink: per destination, per flow, one-way latency.
func (w *worker) count(p *Packet, size int) {
	if w.side == SideClient && p.Proto == header.ProtoTCP && w.synAck(p) {
		// not per destination: the destinations are the flood's random
		// client addresses
		return
	}
	d := w.dsts.get(p.Dst)
	d.packets++
	d.bytes += uint64(size)
	switch p.Proto {
	case header.ProtoUDP:
		st, ok := ParseStamp(p.Payload)
		if !ok || st.Kind != KindUDP {
			w.ctr.inc(CtrRxForeign)
			return
		}
		if w.r.cfg.Mode == ModeSYN {
			// syn mode's established stream
			w.ctr.inc(CtrStreamRx)
			w.streamLat.Record(w.now - st.SentNs)
			return
		}
		w.ctr.inc(CtrRxStamped)
		w.oneWay.Record(w.now - st.SentNs)
		if w.flows.record(st.Flow, st.Seq) {
			w.ctr.inc(CtrRxReorder)
		}
	case header.ProtoTCP:
		if p.Flags&(header.TCPFlagSYN|header.TCPFlagACK) != header.TCPFlagSYN || !p.HasTS || p.TSEcr != 0 {
			w.ctr.inc(CtrRxForeign)
			return
		}
		w.ctr.inc(CtrRxStamped)
		w.oneWay.Record(int64(uint32(w.now/1000)-p.TSVal) * 1000)
	default:
		w.ctr.inc(CtrRxForeign)
	}
}

// synAck counts a SYN-ACK that answers one of syn mode's SYNs: from a
// destination to a client address (a SYN proxy's cookie). It is received
// (rx_stamped) as a forwarded SYN is; its timestamp echo, when it has
// one, is our SYN's send time: the latency is the round trip.
func (w *worker) synAck(p *Packet) bool {
	cfg := &w.r.cfg
	if cfg.Mode != ModeSYN || p.Flags&(header.TCPFlagSYN|header.TCPFlagACK|header.TCPFlagRST) != header.TCPFlagSYN|header.TCPFlagACK {
		return false
	}
	if _, ok := cfg.clientIndex(p.Dst); !ok {
		return false
	}
	for _, d := range cfg.Dsts {
		if d.Port() == p.SrcPort && d.Addr().As4() == p.Src {
			w.ctr.inc(CtrRxSynAck)
			w.ctr.inc(CtrRxStamped)
			if p.HasTS && p.TSEcr != 0 {
				w.oneWay.Record(int64(uint32(w.now/1000)-p.TSEcr) * 1000)
			}
			return true
		}
	}
	return false
}

// arp answers requests for our addresses. (Replies, to the gateway
// resolution before the workers start, need nothing here.)
func (w *worker) arp(p *Packet) {
	switch p.ARPOp {
	case header.ARPRequest:
		w.ctr.inc(CtrARPRequests)
		tpa := netip.AddrFrom4(p.ARPTargetIP)
		if !w.r.ownsAddr(w.side, tpa) {
			return
		}
		b := w.alloc()
		if b == nil {
			return
		}
		n := EncodeARP(b.Frame()[b.Offset():], header.ARPReply, w.mac, tpa, p.SrcMAC, netip.AddrFrom4(p.ARPSenderIP))
		b.SetLen(n)
		w.send(b)
		w.ctr.inc(CtrARPReplies)
	}
}

// emit encodes a TCP segment into b (a fresh buffer if nil) and queues it.
func (w *worker) emit(b *pktbuf.Buf, h *Hdr, seg *TCPSeg) {
	if b == nil {
		if b = w.alloc(); b == nil {
			return
		}
	}
	n := EncodeTCP(frame(b), h, seg)
	if n == 0 || !b.SetLen(n) {
		b.Free()
		return
	}
	w.send(b)
}

func addr4(a [4]byte) netip.Addr { return netip.AddrFrom4(a) }

// alloc takes a frame from the queue's pool, flushing pending
// transmissions first if the pool ran dry (their completions free frames).
func (w *worker) alloc() *pktbuf.Buf {
	b := w.q.Alloc()
	if b == nil && w.ntx > 0 {
		w.flush()
		w.q.Flush()
		b = w.q.Alloc()
	}
	if b == nil {
		w.ctr.inc(CtrTxRefused)
	}
	return b
}

// send queues b for transmission; bursts go out when full and at the end
// of each loop.
func (w *worker) send(b *pktbuf.Buf) {
	w.txb[w.ntx] = b
	w.ntx++
	if w.ntx == w.r.cfg.Burst {
		w.flush()
	}
}

// flush transmits the queued burst. Frames the port refuses are freed and
// counted as refused, never as sent.
func (w *worker) flush() int {
	if w.ntx == 0 {
		return 0
	}
	var bytes uint64
	for _, b := range w.txb[:w.ntx] {
		bytes += uint64(b.Len())
	}
	n := w.q.TxBurst(w.txb[:w.ntx])
	if n < w.ntx {
		for _, b := range w.txb[n:w.ntx] {
			bytes -= uint64(b.Len())
			b.Free()
		}
		w.ctr.add(CtrTxRefused, uint64(w.ntx-n))
	}
	w.ctr.add(CtrTxPackets, uint64(n))
	w.ctr.add(CtrTxBytes, bytes)
	clear(w.txb[:w.ntx])
	w.ntx = 0
	return n
}

// frame returns the writable frame of a fresh buffer.
func frame(b *pktbuf.Buf) []byte { return b.Frame()[b.Offset():] }

// segment is a parsed TCP segment handed to the worker that owns its
// connection (the frame itself stays with the receiving queue).
type segment struct {
	src, dst         [4]byte
	srcPort, dstPort uint16
	seq, ack         uint32
	flags            uint8
	toa              bool
	srcMAC           header.MAC
	payLen           int
	stamp            Stamp
	hasStamp         bool
}

func segmentOf(p *Packet) segment {
	s := segment{src: p.Src, dst: p.Dst, srcPort: p.SrcPort, dstPort: p.DstPort, seq: p.Seq, ack: p.Ack,
		flags: p.Flags, toa: p.HasTOA, srcMAC: p.SrcMAC, payLen: len(p.Payload)}
	s.stamp, s.hasStamp = ParseStamp(p.Payload)
	return s
}

// handOff passes s to worker owner of this side; false if its ring is full.
func (w *worker) handOff(owner int, s *segment) bool {
	if !w.outbound[owner].Push(*s) {
		return false
	}
	w.ctr.inc(CtrHandoff)
	return true
}

func (w *worker) receiveHandoffs() int {
	n := 0
	for _, h := range w.handoff {
		if h == nil {
			continue
		}
		for {
			s, ok := h.Pop()
			if !ok {
				break
			}
			n++
			if w.tcps != nil {
				w.tcps.segment(w, &s)
			} else if w.tcpc != nil {
				w.tcpc.segment(w, &s)
			}
		}
	}
	return n
}
