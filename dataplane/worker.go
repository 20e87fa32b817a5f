package dataplane

// A Worker is one poll-mode loop: a goroutine locked to an OS thread pinned
// to one core, owning queue i of every port. Per iteration it receives a
// burst from each of its queues, runs each packet through the pipeline (L2 →
// ARP/ND → L3 → local delivery, forwarding or KNI), buffers transmissions per
// port and drains them when a buffer fills or the drain timer fires. It never
// blocks on a lock and never allocates on the packet path; the only
// syscalls are the drivers' one-per-burst kicks and, in the adaptive idle
// mode, a poll() when there is nothing to do.

import (
	"fmt"
	"math/bits"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/ring"
	"github.com/gvs-lb/gvs/flowdir"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/internal/addrmap"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/ipvs/sched"
	"github.com/gvs-lb/gvs/session"
)

// IdleMode selects what a worker does when its queues are empty.
type IdleMode string

const (
	// IdleBusy spins: lowest latency, one full core per worker (appliances
	// with isolated cores).
	IdleBusy IdleMode = "busy"
	// IdleAdaptive spins briefly, then sleeps in poll() on the queues'
	// descriptors (AF_XDP need_wakeup), for labs, CI and shared cores.
	IdleAdaptive IdleMode = "adaptive"
)

const (
	maxBurst         = 256
	txBufSize        = 64
	idleSpinsToSleep = 32
	minSpins         = 8 // spinPolicy's floor
	maxSleep         = 10 * time.Millisecond
	pendingService   = 100 * time.Millisecond
)

type txBuffer struct {
	bufs [txBufSize]*pktbuf.Buf
	n    int
}

type pendingPkt struct {
	b     *pktbuf.Buf
	nh    netip.Addr
	iface uint16
	at    int64
}

// Worker is one poll-mode worker: what DPDK's l3fwd keeps in its per-lcore
// lcore_conf. The state is grouped by the stage that uses it; all of it is
// owned by the worker's thread except where a field says who else reads it.
type Worker struct {
	id   int
	dp   *Dataplane
	core int // -1: not pinned

	workerIO    // queues, bursts, tx buffers, the loop's clock
	workerL3    // snapshot, neighbours, held packets, ICMP errors
	workerKNI   // the exception path to and from the kernel
	workerLB    // the IPVS stage: connections, local ports, hand-overs
	workerPoll  // sleeping when idle and being woken
	workerCtl   // requests the control side runs on this thread
	workerTrace // the packet being traced, if any (trace.go)

	ctr  workerCounters // read by the API through their published copies
	loop loopCounters   // atomics, read by the API
	xdp  workerXDP      // connections offloaded to the ports' XDP fast path (lbxdp.go)

	stop atomic.Bool
	done chan struct{}
}

// workerIO is the ports' side: queue i of every port, the packets in
// flight and the transmit buffers.
type workerIO struct {
	queues    []port.Queue
	burst     int
	drain     int64 // buffered transmissions leave at least this often (ns)
	lastDrain int64
	now       int64  // the dataplane clock at the start of this iteration (setNow)
	nowTick   uint32 // now in session-table ticks (tick)

	rx [maxBurst]*pktbuf.Buf
	// pfHash holds the session hashes of a burst's packets between the
	// two prefetch passes (prefetchBurst)
	pfHash [maxBurst]uint32
	tx     []txBuffer
	cur    *pktbuf.Buf // the buffer in the pipeline, for crash reports
}

// workerL3 is what L2/L3 processing reads and keeps: the published
// snapshot and neighbour table, packets held while their next hop is
// resolved, and the ICMP error budget.
type workerL3 struct {
	snap     *snapshot
	neigh    addrmap.Map[*neighEntry]
	neighVer uint64
	dsts     dstCache // route and neighbour of recent destinations (dstcache.go)

	pending     []pendingPkt
	maxPending  int
	lastPending int64
	lastProbe   map[netip.Addr]int64
	icmpBucket  tokenBucket
}

// workerKNI is the worker's share of the exception path.
type workerKNI struct {
	kniOut       *ring.FrameRing   // bulk punts to the master (tag: port)
	kniCtlOut    *ring.FrameRing   // control punts (ARP, ND, KNI addresses, link-local multicast)
	kniIn        []*ring.FrameRing // worker 0: frames from the kernel, per port
	kniBucket    []tokenBucket     // per port
	kniCtlBucket []tokenBucket     // per port, control class
	kniSignal    bool
}

// workerLB is the IPVS stage's per-worker state.
type workerLB struct {
	lb        *ipvs.Table
	sess      *session.Table
	sessTick  time.Duration
	pool      *flowdir.Pool
	flow      sched.Flow
	laddrNext uint32
	masq      []uint64          // one bit per conn id: a NAT (-m) connection (lbmasq.go)
	tunID     uint16            // the next outer IPv4 identification of tunnel packets (lbtunnel.go)
	redirOut  []*ring.FrameRing // by owner worker
	redirIn   []*ring.FrameRing // by sending worker
	redirWake uint64
	looked    int         // the frame in the pipeline came from a seek: how many workers had looked (lbredirect.go)
	seekRate  tokenBucket // seek hand-offs: seekBudget per second
	onExpire  func(uint32, *session.Conn)
	lbStats   []lbStat                 // by destination id, published (publishDests)
	lbCounts  []lbCount                // by destination id: the worker's running totals
	lbDirty   []uint32                 // destination ids counted for since the last publishDests
	lbPub     atomic.Pointer[[]lbStat] // the same slice, for readers
	syncPol   *SyncPolicy              // read once per loop; nil: not publishing (sync.go)
	syncOut   *ring.SPSC[syncRec]      // connection events to the sync consumer
	lim       lbLimits                 // new-connection limits (lbacl.go)
	sp        spWorker                 // SYN proxy (lbsynproxy.go)
	frag      lbFrag                   // fragments to VIPs and local addresses (lbfrag.go)
}

// workerPoll is the idle side of the loop.
type workerPoll struct {
	idle    IdleMode
	wakeFD  int
	pollFDs []unix.PollFd
	pollTS  unix.Timespec
}

// workerCtl holds what the control side asks of the worker: closures run
// between bursts and the open connection listings (listing.go).
type workerCtl struct {
	ctl  chan func()
	list listings
}

// tokenBucket limits a packet rate; rate 0 means unlimited.
type tokenBucket struct {
	rate   float64 // tokens per ns
	burst  float64
	tokens float64
	last   int64
}

func newTokenBucket(pps int) tokenBucket {
	if pps <= 0 {
		return tokenBucket{}
	}
	b := float64(pps) / 10 // 100 ms worth of burst
	if b < 16 {
		b = 16
	}
	return tokenBucket{rate: float64(pps) / 1e9, burst: b, tokens: b}
}

func (t *tokenBucket) allow(now int64) bool {
	if t.rate == 0 {
		return true
	}
	t.tokens += float64(now-t.last) * t.rate
	t.last = now
	if t.tokens > t.burst {
		t.tokens = t.burst
	}
	if t.tokens < 1 {
		return false
	}
	t.tokens--
	return true
}

// iterate runs one loop iteration and returns how many packets it handled.
func (w *Worker) iterate() int {
	start := w.dp.clock()
	w.setNow(start)
	w.snap = w.dp.snap.Load()
	w.lb = w.dp.ipvs.Table()
	w.syncPol = w.dp.syncPol.Load()
	if int(w.lb.MaxID) >= len(w.lbStats) {
		w.growLBStats(int(w.lb.MaxID))
	}
	if v := w.dp.neigh.version.Load(); v != w.neighVer {
		w.neighVer = v
		w.neigh = *w.dp.neigh.pub.Load()
		w.servicePending(true)
	}
	got := 0
	for p, q := range w.queues {
		n := q.RxBurst(w.rx[:w.burst])
		if n == 0 {
			continue
		}
		got += n
		w.loop.bursts.Add(1)
		w.ctr.add(CtrRxPackets, uint64(n))
		if c := w.dp.capture.Load(); c != nil {
			w.capture(c, p, CaptureRx, w.rx[:n]) // before any rewrite (capture.go)
		}
		w.inputBurst(p, n)
	}
	if w.kniIn != nil {
		got += w.kniTransmit()
	}
	got += w.redirectIn()
	if len(w.xdp.held) > 0 {
		w.xdpRelease(false) // packets held after a take-back from the XDP fast path (lbxdp.go)
	}
	w.expireConns()
	select {
	case f := <-w.ctl:
		f()
	default:
	}
	w.serveListing()
	if len(w.pending) > 0 && w.now-w.lastPending > int64(pendingService) {
		w.servicePending(false)
	}
	sent := 0 // packets handed to the ports here, for the busy time
	if got == 0 || w.now-w.lastDrain >= w.drain {
		sent = w.flushAll()
		w.lastDrain = w.now
	}
	if w.kniSignal {
		w.kniSignal = false
		w.dp.notifyKNI()
	}
	if w.redirWake != 0 {
		for i, o := range w.dp.workers {
			if w.redirWake&(1<<uint(i)) != 0 {
				o.wake()
			}
		}
		w.redirWake = 0
	}
	w.ctr.publish()
	w.publishDests()
	w.loop.loops.Add(1)
	d := uint64(w.dp.clock() - start)
	if d > w.loop.longest.Load() {
		w.loop.longest.Store(d)
	}
	w.loop.hist[min(bits.Len64(d), LoopHistBuckets-1)].Add(1)
	if got > 0 || sent > 0 {
		w.loop.busy.Add(d)
	}
	w.loop.packets.Add(uint64(got))
	return got
}

// inputBurst runs the burst in w.rx[:n], received on port p, through the
// pipeline.
func (w *Worker) inputBurst(p, n int) {
	if t := w.dp.trace.Load(); t != nil && t.selects(p, w.id) {
		w.traceBurst(t, p, n) // the same loop with the trace filter (trace.go)
		return
	}
	if n > 1 && w.sess.Len() >= session.PrefetchWorth {
		w.prefetchBurst(n)
	}
	for i := 0; i < n; i++ {
		b := w.rx[i]
		w.rx[i] = nil
		b.Port = uint16(p)
		w.cur = b
		w.input(b)
	}
	w.cur = nil
}

// prefetchBurst names the session index slots, then the connections, that
// the IPv4 TCP and UDP packets of the burst in w.rx[:n] will look up, so
// that their cache misses overlap (session/prefetch.go). Frames are read
// as untagged or single-tagged Ethernet; anything else is left to input.
func (w *Worker) prefetchBurst(n int) {
	var oks [maxBurst / 64]uint64 // which packets have a hash in pfHash
	for i := 0; i < n; i++ {
		pkt := w.rx[i].Bytes()
		l2, ok := header.ParseL2(pkt)
		if !ok || l2.Type != header.EtherTypeIPv4 {
			continue
		}
		if h, found := w.sess.PrefetchSlot4(pkt[l2.L3:]); found {
			w.pfHash[i] = h
			oks[i>>6] |= 1 << (i & 63)
		}
	}
	for i := 0; i < n; i++ {
		if oks[i>>6]&(1<<(i&63)) != 0 {
			w.sess.PrefetchConn(w.pfHash[i])
		}
	}
}

func (w *Worker) run() {
	defer close(w.done)
	defer w.dp.recoverCrash(fmt.Sprintf("worker %d", w.id), w.currentFrame)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := w.pin(); err != nil {
		w.dp.log.Warn(err.Error())
	}
	idleLoops := 0
	sleep := 20 * time.Microsecond
	spin := spinPolicy{limit: idleSpinsToSleep}
	for !w.stop.Load() {
		if w.iterate() > 0 || w.list.moved {
			spin.work(idleLoops)
			idleLoops = 0
			sleep = 20 * time.Microsecond
			continue
		}
		w.loop.idle.Add(1)
		idleLoops++
		if w.idle != IdleAdaptive || idleLoops < spin.limit {
			continue
		}
		if idleLoops == spin.limit {
			spin.sleeping()
		}
		w.loop.sleeps.Add(1)
		timeout := maxSleep
		if len(w.pending) > 0 {
			timeout = pendingService
		}
		if d := w.xdpHoldWait(); d > 0 && d < timeout {
			timeout = d
		}
		if w.hasPollFDs() {
			w.pollWait(timeout)
		} else {
			if sleep < timeout {
				timeout = sleep
			}
			time.Sleep(timeout)
			if sleep < time.Millisecond {
				sleep *= 2
			}
		}
	}
	if len(w.xdp.held) > 0 {
		w.xdpRelease(true)
	}
	w.flushAll()
	w.dropHeld()
	w.ctr.publish()
	w.publishDests()
}

// spinPolicy is how many empty loops an adaptive worker spins before it
// sleeps. Spinning pays when packets arrive from elsewhere while the
// worker spins: another CPU's softirq, a NIC's DMA. It cannot pay when
// whatever feeds the worker's queues runs on the worker's own core, which
// a real-time worker keeps while it spins (a shared core: the kernel's
// receive processing of a veth, a generator, KNI): there every spin is
// time taken from the producer. So the limit halves, down to minSpins,
// each time a spin ends in sleep, and is back at idleSpinsToSleep as soon
// as a spin finds work. The floor is the window in which a spin can still
// show that it pays: a few microseconds of loops. Measured
// (docs/benchmarks.md): with a floor of 8 the separate-core placement kept
// its connections per second, which a floor of 2 cost 2-3 %, and one core
// forwarded as much.
type spinPolicy struct{ limit int }

// work is told that a loop found work after idle empty loops.
func (s *spinPolicy) work(idle int) {
	if idle > 0 && idle < s.limit { // found while spinning, before any sleep
		s.limit = idleSpinsToSleep
	}
}

// sleeping is told that the worker spun limit empty loops for nothing and
// now sleeps.
func (s *spinPolicy) sleeping() { s.limit = max(s.limit/2, minSpins) }

// pin locks the worker's thread to its core and applies the real-time
// priority, if configured.
func (w *Worker) pin() error {
	if w.core >= 0 {
		var set unix.CPUSet
		set.Set(w.core)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("worker %d: pin to core %d: %w", w.id, w.core, err)
		}
	}
	if p := w.dp.opts.RTPriority; p > 0 {
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: 1 /* SCHED_FIFO */, Priority: uint32(p)}
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			return fmt.Errorf("worker %d: SCHED_FIFO priority %d: %w", w.id, p, err)
		}
	}
	return nil
}

func (w *Worker) hasPollFDs() bool { return len(w.pollFDs) > 1 }

func (w *Worker) pollWait(timeout time.Duration) {
	for i := range w.pollFDs {
		w.pollFDs[i].Revents = 0
	}
	w.pollTS = unix.NsecToTimespec(int64(timeout))
	n, _ := unix.Ppoll(w.pollFDs, &w.pollTS, nil)
	if n > 0 && w.pollFDs[0].Revents&unix.POLLIN != 0 {
		var v [8]byte
		unix.Read(w.wakeFD, v[:])
	}
}

// flushAll sends what the worker queued for every port and returns how
// many packets it handed over.
func (w *Worker) flushAll() int {
	n := 0
	for p := range w.tx {
		n += w.tx[p].n
		w.flushPort(p)
	}
	for _, q := range w.queues {
		q.Flush()
	}
	w.xdpMarks() // what was waiting has left: armed fast-path entries may go (lbxdp.go)
	return n
}

func (w *Worker) flushPort(p int) {
	t := &w.tx[p]
	if t.n == 0 {
		return
	}
	if c := w.dp.capture.Load(); c != nil {
		w.capture(c, p, CaptureTx, t.bufs[:t.n]) // after every rewrite (capture.go)
	}
	q := w.queues[p]
	sent := q.TxBurst(t.bufs[:t.n])
	w.ctr.add(CtrTxPackets, uint64(sent))
	if sent < t.n {
		for _, b := range t.bufs[sent:t.n] {
			b.Free()
		}
		w.ctr.add(CtrDropTxFull, uint64(t.n-sent))
	}
	clear(t.bufs[:t.n])
	t.n = 0
}

// enqueueTx buffers b for transmission on port p.
func (w *Worker) enqueueTx(p int, b *pktbuf.Buf) {
	if w.trBuf == b {
		w.traceTx(p)
	}
	t := &w.tx[p]
	t.bufs[t.n] = b
	t.n++
	if t.n == txBufSize {
		w.flushPort(p)
	}
}

func (w *Worker) drop(b *pktbuf.Buf, c Counter) {
	if w.trBuf == b {
		w.traceDrop(c)
	}
	w.ctr.inc(c)
	b.Free()
}

// dropHeld frees buffers the worker still holds when it stops.
func (w *Worker) dropHeld() {
	for _, p := range w.pending {
		w.drop(p.b, CtrDropNeighUnresolved)
	}
	w.pending = w.pending[:0]
}

// Stats returns the worker's counters (safe from any goroutine).
func (w *Worker) Stats() (ctr [NumCounters]uint64, loop LoopStats) {
	for i := range ctr {
		ctr[i] = w.ctr.pub[i].Load()
	}
	loop = LoopStats{
		Loops: w.loop.loops.Load(), Bursts: w.loop.bursts.Load(), IdleLoops: w.loop.idle.Load(),
		Sleeps: w.loop.sleeps.Load(), Packets: w.loop.packets.Load(), LongestLoopNs: w.loop.longest.Load(),
		BusyNs: w.loop.busy.Load(),
	}
	for i := range loop.LoopHist {
		loop.LoopHist[i] = w.loop.hist[i].Load()
	}
	return
}
