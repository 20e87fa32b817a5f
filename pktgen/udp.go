package pktgen

// The stateless generators: udp (stamped datagrams over a fixed flow set)
// and syn (SYNs from random sources, Linux-like options with our send
// time in TSval). Each client worker owns every n-th flow and a share of
// the rate; it fills one burst per call, paced by a token count derived
// from the elapsed time, so the long-run rate is exact and bursts stay
// short.

import (
	"math"

	"github.com/gvs-lb/gvs/header"
)

// flow is one 5-tuple of udp mode.
type flow struct {
	id    uint32
	src   [4]byte
	sport uint16
	dst   [4]byte
	dport uint16
}

// makeFlows returns flow i of n for cfg: client addresses vary fastest,
// then source ports, destinations round robin.
func makeFlows(cfg *Config) []flow {
	addrs := cfg.clientAddrCount()
	ports := int(cfg.PortMax) - int(cfg.PortMin) + 1
	fl := make([]flow, cfg.Flows)
	for i := range fl {
		d := cfg.Dsts[i%len(cfg.Dsts)]
		fl[i] = flow{
			id:    uint32(i),
			src:   cfg.clientAddr(i % addrs),
			sport: cfg.PortMin + uint16((i/addrs)%ports),
			dst:   d.Addr().As4(),
			dport: d.Port(),
		}
	}
	return fl
}

// udpGen is one client worker's generator.
type udpGen struct {
	syn      bool
	flows    []flow // this worker's share
	next     int
	seq      []uint32 // per flow of the share: next sequence number
	sent     []uint64 // per flow of the share: accepted by the port
	hdr      Hdr
	frameLen int
	sender   uint8
	// pacing: ratePerNs 0 means unpaced; it is recomputed from the run's
	// rate whenever rateEpoch changes
	ratePerNs float64
	rateEpoch uint64
	nWorkers  int
	start     int64
	issued    uint64
	rng       uint64
	dstIdx    int
	batchFlow [maxBurst]int32
	// syn mode's established stream (Config.Stream): this worker's share
	// of its flows, paced on its own, sent ahead of the SYNs of a burst
	stream       []flow
	streamSeq    []uint32
	streamNext   int
	streamPerNs  float64
	streamStart  int64
	streamIssued uint64
}

func newUDPGen(w *worker, all []flow, nWorkers int) *udpGen {
	cfg := &w.r.cfg
	g := &udpGen{
		syn:      cfg.Mode == ModeSYN,
		frameLen: UDPFrameLen(cfg.FrameSize),
		sender:   uint8(w.idx),
		rng:      uint64(w.idx)*0x9e3779b97f4a7c15 + 0x2545f4914f6cdd1d,
	}
	for i := w.idx; i < len(all); i += nWorkers {
		g.flows = append(g.flows, all[i])
	}
	g.seq = make([]uint32, len(g.flows))
	g.sent = make([]uint64, len(g.flows))
	g.nWorkers = nWorkers
	if g.syn && cfg.Stream.Rate > 0 {
		sf := cfg.streamFlows()
		for i := w.idx; i < len(sf); i += nWorkers {
			g.stream = append(g.stream, sf[i])
		}
		g.streamSeq = make([]uint32, len(g.stream))
		if len(g.stream) > 0 {
			g.streamPerNs = cfg.Stream.Rate / float64(nWorkers) / 1e9
		}
	}
	return g
}

// xorshift64*: cheap randomness for sources, ports and sequence numbers.
func (g *udpGen) rand() uint64 {
	g.rng ^= g.rng >> 12
	g.rng ^= g.rng << 25
	g.rng ^= g.rng >> 27
	return g.rng * 2685821657736338717
}

// streamDue is how many stream datagrams are due now (at most max).
func (g *udpGen) streamDue(now int64, max int) int {
	if g.streamPerNs == 0 {
		return 0
	}
	if g.streamStart == 0 {
		g.streamStart = now
	}
	due := uint64(float64(now-g.streamStart) * g.streamPerNs)
	if due <= g.streamIssued {
		return 0
	}
	return min(max, int(due-g.streamIssued))
}

// generate fills and sends up to one burst; it returns how many packets
// it sent.
func (g *udpGen) generate(w *worker) int {
	want := w.r.cfg.Burst
	if e := w.r.rateEpoch.Load(); e != g.rateEpoch {
		g.rateEpoch = e
		g.ratePerNs = math.Float64frombits(w.r.rate.Load()) / float64(g.nWorkers) / 1e9
		g.start, g.issued = 0, 0
	}
	nStream := g.streamDue(w.now, want)
	want -= nStream
	if g.ratePerNs > 0 {
		if g.start == 0 {
			g.start = w.now
		}
		due := uint64(float64(w.now-g.start) * g.ratePerNs)
		if due <= g.issued {
			want = 0
		} else {
			want = min(want, int(due-g.issued))
		}
	}
	want += nStream
	if want == 0 {
		return 0
	}
	if w.ntx > 0 {
		w.flush()
	}
	h := &g.hdr
	h.SrcMAC, h.DstMAC = w.mac, w.nextHop
	var synOpts [20]byte
	n := 0
	for ; n < want; n++ {
		b := w.q.Alloc()
		if b == nil {
			break
		}
		buf := frame(b)
		var l int
		switch {
		case n < nStream:
			i := g.streamNext
			if g.streamNext++; g.streamNext == len(g.stream) {
				g.streamNext = 0
			}
			f := &g.stream[i]
			h.Src, h.SrcPort, h.Dst, h.DstPort = f.src, f.sport, f.dst, f.dport
			h.ID = uint16(g.streamSeq[i])
			st := Stamp{Kind: KindUDP, Sender: g.sender, Flow: f.id, Seq: g.streamSeq[i], SentNs: w.now}
			g.streamSeq[i]++
			l = EncodeUDP(buf, h, g.frameLen, &st)
			g.batchFlow[n] = -2 - int32(i)
		case g.syn:
			r := g.rand()
			d := w.r.cfg.Dsts[g.dstIdx]
			if g.dstIdx++; g.dstIdx == len(w.r.cfg.Dsts) {
				g.dstIdx = 0
			}
			h.Src = w.r.cfg.clientAddr(int(r>>32) % w.r.cfg.clientAddrCount())
			h.SrcPort = uint16(r>>16)%(w.r.cfg.PortMax-w.r.cfg.PortMin+1) + w.r.cfg.PortMin
			h.Dst, h.DstPort = d.Addr().As4(), d.Port()
			h.ID = uint16(r)
			seg := TCPSeg{Seq: uint32(g.rand()), Flags: header.TCPFlagSYN, Window: 64240,
				Options: SynOptions(&synOpts, 1460, uint32(w.now/1000))}
			l = EncodeTCP(buf, h, &seg)
			g.batchFlow[n] = -1
		default:
			i := g.next
			if g.next++; g.next == len(g.flows) {
				g.next = 0
			}
			f := &g.flows[i]
			h.Src, h.SrcPort, h.Dst, h.DstPort = f.src, f.sport, f.dst, f.dport
			h.ID = uint16(g.seq[i])
			st := Stamp{Kind: KindUDP, Sender: g.sender, Flow: f.id, Seq: g.seq[i], SentNs: w.now}
			g.seq[i]++
			l = EncodeUDP(buf, h, g.frameLen, &st)
			g.batchFlow[n] = int32(i)
		}
		b.SetLen(l)
		w.txb[n] = b
	}
	nStream = min(nStream, n) // out of frames early
	if n == 0 {
		w.ctr.inc(CtrTxRefused)
		return 0
	}
	w.ntx = n
	var bytes uint64
	for _, b := range w.txb[:n] {
		bytes += uint64(b.Len())
	}
	sent := w.q.TxBurst(w.txb[:n])
	for i, b := range w.txb[sent:n] {
		bytes -= uint64(b.Len())
		b.Free()
		switch f := g.batchFlow[sent+i]; {
		case f >= 0:
			g.seq[f]-- // not sent: the sequence stays gap-free
		case f <= -2:
			g.streamSeq[-2-f]--
		}
	}
	streamSent := 0
	for _, f := range g.batchFlow[:sent] {
		switch {
		case f >= 0:
			g.sent[f]++
		case f <= -2:
			streamSent++
		}
	}
	if sent < n {
		w.ctr.add(CtrTxRefused, uint64(n-sent))
		if !g.syn {
			// the refused frames were the last of their flows' round; step
			// back so the next burst resends those flows in order
			g.next = (g.next - (n-sent)%len(g.flows) + len(g.flows)) % len(g.flows)
		}
		if refused := nStream - streamSent; refused > 0 && len(g.stream) > 0 {
			g.streamNext = (g.streamNext - refused%len(g.stream) + len(g.stream)) % len(g.stream)
		}
	}
	clear(w.txb[:n])
	w.ntx = 0
	w.ctr.add(CtrTxPackets, uint64(sent))
	w.ctr.add(CtrTxBytes, bytes)
	w.ctr.add(CtrStreamTx, uint64(streamSent))
	// what the port refused is not owed later: no debt it cannot take
	g.streamIssued += uint64(nStream)
	flood := n - nStream
	g.issued += uint64(sent - streamSent)
	if g.ratePerNs > 0 && sent-streamSent < flood {
		g.issued += uint64(flood - (sent - streamSent))
	}
	return sent
}
