package pktgen

// A run: open the ports, resolve the next hop, start one worker per queue,
// report every second, stop generating after Duration, keep receiving for
// Drain, then merge the workers' counters, histograms and tables into a
// Result. The rates of the result cover the window from Warmup to the end
// of generation.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/ring"
	"github.com/gvs-lb/gvs/header"
)

type runner struct {
	cfg     Config
	clock   Clock
	stop    atomic.Bool
	genStop atomic.Bool
	// paused stops generation between the trials of a search; rate (bits
	// of a float64, packets/s over all workers, 0 unpaced) changes with
	// rateEpoch; workers reset their latency histogram when histEpoch
	// changes.
	paused    atomic.Bool
	rate      atomic.Uint64
	rateEpoch atomic.Uint64
	histEpoch atomic.Uint64
	wg        sync.WaitGroup

	client, server   port.Port
	clientW, serverW []*worker
	// live are the live-frame generator threads (--gen xdp-live); gen is
	// the generator the run used
	live     []*liveGen
	gen      string
	warnings []string
	warnMu   sync.Mutex
}

func (r *runner) warn(err error) {
	r.warnMu.Lock()
	r.warnings = append(r.warnings, err.Error())
	r.warnMu.Unlock()
}

// ownsAddr reports whether side answers ARP (and, server side, TCP) for a.
func (r *runner) ownsAddr(side Side, a netip.Addr) bool {
	if side == SideClient {
		return a == r.cfg.ClientIP || r.cfg.Clients.Contains(a)
	}
	for _, p := range r.cfg.ServerAddrs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Run executes cfg. Progress lines (one per second) go to progress if it
// is not nil. Cancelling ctx ends generation early.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Client.Dev == "" {
		return nil, errors.New("no client port: give --client-dev (and --client-netns)")
	}
	if cfg.Mode == ModeTCP && cfg.Server.Dev == "" {
		return nil, errors.New("tcp mode plays the real servers too: give --server-dev (and --server-netns)")
	}
	client, err := OpenPort(cfg.Client)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	var server port.Port
	if cfg.Server.Dev != "" {
		if server, err = OpenPort(cfg.Server); err != nil {
			return nil, err
		}
		defer server.Close()
	}
	return RunPorts(ctx, cfg, client, server, progress)
}

// RunPorts executes cfg over ports the caller opened (server may be nil
// in udp and syn modes); cfg.Client and cfg.Server only name them, and
// their kernel counters are read only if they name a device. The caller
// closes the ports.
func RunPorts(ctx context.Context, cfg Config, client, server port.Port, progress io.Writer) (*Result, error) {
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Mode == ModeTCP && server == nil {
		return nil, errors.New("tcp mode plays the real servers too: give a server port")
	}
	r := &runner{cfg: cfg, clock: NewClock(), client: client, server: server}
	r.rate.Store(math.Float64bits(cfg.Rate))
	r.rateEpoch.Store(1)
	r.paused.Store(cfg.Search)
	r.build()
	before, _ := r.devCounters()
	// the server side runs first: the next hop may be our own server port
	for _, w := range r.serverW {
		r.wg.Add(1)
		go w.run()
	}
	gw := cfg.GatewayMAC
	if gw == nil {
		m, err := r.resolve(cfg.Gateway, 3*time.Second)
		if err != nil {
			r.stop.Store(true)
			r.wg.Wait()
			return nil, err
		}
		gw = &m
	}
	r.gen = string(GenPort) + " (" + client.Driver() + ")"
	if cfg.Gen == GenXDPLive {
		if err := r.startLive(*gw); err != nil {
			// keep measuring, with the generator that works here
			r.warn(fmt.Errorf("%v; generating with the %s port driver instead", err, client.Driver()))
			r.gen = fmt.Sprintf("%s (%s; fallback: %s refused)", GenPort, client.Driver(), GenXDPLive)
			r.portGens()
		} else {
			r.gen = string(GenXDPLive)
		}
	}
	for _, w := range r.clientW {
		w.nextHop = *gw
		r.wg.Add(1)
		go w.run()
	}
	res := r.supervise(ctx, progress)
	r.wg.Wait()
	after, derr := r.devCounters()
	r.finish(res, before, after, derr)
	return res, nil
}

// resolve asks for target's MAC with ARP on the client port's queue 0
// before any worker runs.
func (r *runner) resolve(target netip.Addr, timeout time.Duration) (header.MAC, error) {
	q := r.client.Queue(0)
	me := MACOf(r.client)
	var rx [64]*pktbuf.Buf
	var p Packet
	deadline := time.Now().Add(timeout)
	for next := time.Now(); time.Now().Before(deadline); {
		if !time.Now().Before(next) {
			if b := q.Alloc(); b != nil {
				b.SetLen(EncodeARP(frame(b), header.ARPRequest, me, r.cfg.ClientIP, header.MAC{}, target))
				port.TxOwned(q, []*pktbuf.Buf{b})
				q.Flush()
			}
			next = time.Now().Add(200 * time.Millisecond)
		}
		n := q.RxBurst(rx[:])
		for _, b := range rx[:n] {
			err := Parse(b.Bytes(), &p)
			b.Free()
			if err == nil && p.EthType == header.EtherTypeARP && p.ARPOp == header.ARPReply &&
				netip.AddrFrom4(p.ARPSenderIP) == target {
				return p.SrcMAC, nil
			}
		}
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	return header.MAC{}, fmt.Errorf("resolve next hop %v on %s: no ARP reply within %v (is the system under test up? give --gw-mac to skip resolution)",
		target, r.cfg.Client, timeout)
}

// build creates the workers.
func (r *runner) build() {
	cfg := &r.cfg
	mk := func(side Side, p port.Port, cpus []int) []*worker {
		ws := make([]*worker, p.NumQueues())
		for i := range ws {
			w := &worker{r: r, side: side, idx: i, q: p.Queue(i), cpu: -1, mac: MACOf(p)}
			if len(cpus) > 0 {
				w.cpu = cpus[i%len(cpus)]
			}
			if cfg.Mode == ModeUDP {
				w.flows = newFlowStats(cfg.Flows)
			}
			ws[i] = w
		}
		if cfg.Mode == ModeTCP && side == SideClient && len(ws) > 1 {
			for _, w := range ws {
				w.handoff = make([]*ring.SPSC[segment], len(ws))
				w.outbound = make([]*ring.SPSC[segment], len(ws))
			}
			for to := range ws {
				for from := range ws {
					if from != to {
						rg := ring.NewSPSC[segment](4096)
						ws[to].handoff[from] = rg
						ws[from].outbound[to] = rg
					}
				}
			}
		}
		return ws
	}
	r.clientW = mk(SideClient, r.client, cfg.ClientCPUs)
	if r.server != nil {
		r.serverW = mk(SideServer, r.server, cfg.ServerCPUs)
	}
	switch cfg.Mode {
	case ModeUDP, ModeSYN:
		if cfg.Gen != GenXDPLive {
			r.portGens()
		}
	case ModeTCP:
		for i, w := range r.clientW {
			w.tcpc = newTCPClient(w, r.txQueues())
			if i >= r.txQueues() {
				w.tcpc.budget = 0 // receives and hands over, opens nothing
			}
		}
		for _, w := range r.serverW {
			w.tcps = newTCPServer(w)
		}
	}
}

// portGens gives the generating client workers their udp/syn generator.
func (r *runner) portGens() {
	var flows []flow
	if r.cfg.Mode == ModeUDP {
		flows = makeFlows(&r.cfg)
	}
	for _, w := range r.clientW[:r.txQueues()] {
		w.gen = newUDPGen(w, flows, r.txQueues())
	}
}

// connsDone reports whether a tcp run with a connection budget has
// opened all its connections and none is in flight any more.
func (r *runner) connsDone() bool {
	if r.cfg.Mode != ModeTCP || r.cfg.TCP.Conns == 0 {
		return false
	}
	s := r.snap()
	failed := s.c[CtrConnTimeout] + s.c[CtrConnRefused] + s.c[CtrConnReset]
	return s.c[CtrConnAttempts] >= uint64(r.cfg.TCP.Conns) && s.active == 0 &&
		s.c[CtrConnCompleted]+failed >= uint64(r.cfg.TCP.Conns)
}

// txQueues is how many client queues generate traffic.
func (r *runner) txQueues() int {
	if n := r.cfg.ClientTxQueues; n > 0 && n < len(r.clientW) {
		return n
	}
	return len(r.clientW)
}

// snapshot sums the published counters of a side's workers.
type snapshot struct {
	at       int64
	c        [NumCounters]uint64
	s        [NumCounters]uint64
	active   int64
	held     int64
	srvOpen  int64
	received uint64
	// arrived adds what reached the receiving ports but was lost in their
	// rings (the system under test did forward it)
	arrived uint64
	cpu     []cpuTimes
}

func (r *runner) snap() snapshot {
	s := snapshot{at: r.clock.Now(), cpu: readCPUTimes()}
	for _, w := range r.clientW {
		for i := range s.c {
			s.c[i] += w.ctr.load(Counter(i))
		}
		if w.tcpc != nil {
			s.active += w.tcpc.activePub.Load()
			s.held += w.tcpc.heldPub.Load()
		}
	}
	for _, g := range r.live {
		for i := range s.c {
			s.c[i] += g.ctr.load(Counter(i))
		}
	}
	for _, w := range r.serverW {
		for i := range s.s {
			s.s[i] += w.ctr.load(Counter(i))
		}
		if w.tcps != nil {
			s.srvOpen += w.tcps.pub.Load()
		}
	}
	s.received = s.c[CtrRxStamped] + s.s[CtrRxStamped]
	s.arrived = s.received
	if r.server != nil {
		s.arrived += r.server.Stats().RxDropped
	}
	if r.cfg.Mode == ModeSYN {
		// a SYN proxy's SYN-ACKs arrive on the client port
		s.arrived += r.client.Stats().RxDropped
	}
	return s
}

// supervise runs the clock of the run: progress lines, the warm-up
// snapshot, the end of generation and of draining.
func (r *runner) supervise(ctx context.Context, progress io.Writer) *Result {
	cfg := &r.cfg
	res := &Result{}
	if cfg.Search {
		r.search(res)
		r.genStop.Store(true)
		r.drain()
		r.stop.Store(true)
		return res
	}
	start := r.clock.Now()
	warm, end := start+int64(cfg.Warmup), start+int64(cfg.Duration)
	prev := r.snap()
	first := prev
	var w0 *snapshot
	if cfg.Warmup == 0 {
		w0 = &first
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	nextLine := start + int64(time.Second)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			end = r.clock.Now()
			done = true
		case <-tick.C:
		}
		now := r.clock.Now()
		if w0 == nil && now >= warm {
			s := r.snap()
			w0 = &s
		}
		if now >= nextLine || now >= end || done {
			s := r.snap()
			sample := rates(prev, s)
			sample.T = float64(s.at-start) / 1e9
			res.Series = append(res.Series, sample)
			if progress != nil {
				fmt.Fprintln(progress, sample.line(cfg.Mode))
			}
			prev = s
			nextLine += int64(time.Second)
		}
		if now >= end || r.connsDone() {
			done = true
		}
	}
	r.genStop.Store(true)
	w1 := r.snap()
	if w0 == nil {
		// ended (connection budget done, interrupted) before the warm-up
		// did: the window is the whole run
		w0 = &first
	}
	res.window = [2]snapshot{*w0, w1}
	r.drain()
	r.stop.Store(true)
	return res
}

// settleMax bounds the wait for Config.settled.
const settleMax = 10 * time.Second

// drain lets receiving go on for Drain after generation stopped, and then
// until Config.settled, if set, reports nothing in flight.
func (r *runner) drain() {
	time.Sleep(r.cfg.Drain)
	if r.cfg.settled == nil {
		return
	}
	for end := time.Now().Add(settleMax); !r.cfg.settled() && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
}
