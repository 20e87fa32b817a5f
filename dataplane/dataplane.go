// Package dataplane is GVS's packet engine: ports, poll-mode workers, L2/L3
// (Ethernet, 802.1Q, ARP, ND, ICMP, routing, forwarding) and the KNI
// exception path, plus the control methods the API server calls.
//
// Ownership: each Worker owns queue i of every port, its buffers, tx
// buffers, pending-resolution queue and counters. Everything workers read
// that the control side changes (interfaces, addresses, routes, neighbours)
// is an immutable snapshot published with an atomic pointer swap. Control
// methods serialise on Dataplane.mu; they never touch worker state directly.
package dataplane

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/kni"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/ring"
	"github.com/gvs-lb/gvs/dataplane/route"
	"github.com/gvs-lb/gvs/flowdir"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/ipvs/persist"
	"github.com/gvs-lb/gvs/session"
	"github.com/gvs-lb/gvs/synproxy"
)

// MaxWorkers is the most workers a dataplane runs: Worker.redirWake has
// one bit per worker.
const MaxWorkers = 64

// Options configure a Dataplane.
type Options struct {
	Workers       int
	Cores         []int // per worker; empty: not pinned
	Idle          IdleMode
	Burst         int
	DrainInterval time.Duration
	RTPriority    int
	Forward4      bool
	Forward6      bool
	// NeighReachable is how long a neighbour entry is used without being
	// re-probed; MaxPending bounds the packets a worker holds while
	// resolving.
	NeighReachable time.Duration
	MaxPending     int
	// NeighMaxEntries bounds the dynamic neighbour entries per interface
	// (static entries do not count); 0 is DefaultNeighMaxEntries.
	NeighMaxEntries int
	// ICMPErrorRate limits ICMP errors per worker per second.
	ICMPErrorRate int
	// ConnCapacity is each worker's connection table size; ConnExpirePerLoop
	// bounds the expirations a worker handles per loop.
	ConnCapacity      int
	ConnExpirePerLoop int
	// SessionHighWater is the fill of a connection table, in percent of
	// its capacity, at and above which it is under pressure (0:
	// session.DefaultHighWater); PressureTimeouts are the shorter timeouts
	// of embryonic and closing connections then (zero fields:
	// session.DefaultPressureTimeouts). See lbpressure.go.
	SessionHighWater int
	PressureTimeouts session.Timeouts
	// NoExpireReset: GVS ends connections silently. By default (as DPVS)
	// a FullNAT or NAT TCP connection that GVS ends itself — an
	// ESTABLISHED one at expiry, an embryonic one the real server answered
	// at expiry or eviction — is reset at the real server and, if it was
	// ESTABLISHED, at the client (lbreset.go).
	NoExpireReset bool
	// PersistCapacity is the size of the persistence template table shared
	// by all workers (0: persist.DefaultCapacity); ExpireQuiescentTemplate
	// drops a template whose real server is quiesced at its client's next
	// connection (LVS's sysctl of that name).
	PersistCapacity         int
	ExpireQuiescentTemplate bool
	// UOAMaxTrail: the first this many datagrams of each FullNAT UDP
	// connection carry the client's address (lbuoa.go); 0: none.
	// UOAMode: how — UOAIPO, an IPv4 option (IPv4 clients and servers
	// only), or UOAOPP, a header of IP protocol 248 (any family, NAT64).
	UOAMaxTrail int
	UOAMode     UOAMode
	// SynProxy is how the SYN proxy answers (nil: synproxy.DefaultConfig).
	SynProxy *synproxy.Config
	// PrefaultConns makes the connection tables resident at start-up, so
	// the first connections of a flood take no page faults.
	PrefaultConns bool
	// RSSPorts picks local ports whose replies the NIC's RSS hash puts on
	// the owner worker's queue (read with ethtool -x), for NICs without
	// n-tuple filters.
	RSSPorts bool
	// Timeouts are the connections' idle timeouts per state (zero fields:
	// the Linux IPVS defaults).
	Timeouts session.Timeouts
	// CaptureRate is a capture's packet rate limit per worker and
	// CaptureRing its ring slots per worker (0: DefaultCaptureRate,
	// DefaultCaptureRing); a request may ask for less.
	CaptureRate int
	CaptureRing int
	// SyncRing is each worker's session sync event ring size (0:
	// DefaultSyncRing).
	SyncRing int
	Logger   *zap.Logger
	// OnCrash is called with the report of a panic in a worker, the master
	// or a KNI reader (after it was logged); it is expected to clean up and
	// exit. Nil: the panic continues after logging.
	OnCrash func(CrashReport)
}

// PortSpec is a port with its KNI settings.
type PortSpec struct {
	Port port.Port
	// KNI is the TAP device of the port (nil: no KNI, unconsumed packets
	// are dropped and counted).
	KNI KNIDevice
	// KNIRate limits packets to the kernel per second (all workers
	// together); 0 is unlimited. KNIControlRate is the separate budget of
	// control frames (ARP, ND, the kernel's KNI addresses, link-local
	// multicast); 0 is unlimited.
	KNIRate        int
	KNIControlRate int
}

// KNIDevice is the kernel side of a port's exception path: a *kni.Device
// (a TAP) in production.
type KNIDevice interface {
	Name() string
	// Read blocks until the kernel sends a frame; it fails once closed.
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	Close() error
}

var _ KNIDevice = (*kni.Device)(nil)

// Errors of the control methods.
var (
	ErrExists   = errors.New("already exists")
	ErrNotFound = errors.New("not found")
	ErrInvalid  = ipvs.ErrInvalid // one sentinel for every refused argument, interfaces and services alike
)

// Dataplane is the packet engine.
type Dataplane struct {
	opts   Options
	log    *zap.Logger
	ports  []PortSpec
	start  time.Time
	bootID string // random, per start: clients tell restarts by it

	ctl      sync.Mutex // the one mutation path: held for a whole control change (change.go)
	mu       sync.Mutex // guards the model fields below and the status strings
	ifaces   []*Iface   // index → iface; [0] nil
	routes   []route.Route
	kniAddrs []netip.Addr
	snap     atomic.Pointer[snapshot]
	neigh    *neighbours

	workers     []*Worker
	ipvs        *ipvs.Manager
	steer       flowdir.Steering
	steerRules  map[netip.Addr][]flowdir.Rule
	portSteered map[netip.Addr]portSteerer // local addresses the port driver steers (portsteer.go)
	steerStatus string
	rssStatus   string
	timeouts    session.Timeouts // guarded by mu
	destStats   lbStatsState     // rate estimator and -Z offsets
	learnCh     chan neighLearn  // unsolicited and update learn events
	needCh      chan neighLearn  // answers to the dataplane's own solicitations
	kniNotify   chan struct{}
	stopCh      chan struct{}
	wg          sync.WaitGroup
	running     bool

	kniWriteDrops atomic.Uint64
	kniReadDrops  atomic.Uint64

	syncPol  atomic.Pointer[SyncPolicy] // nil while no sync consumer is attached
	syncBusy atomic.Bool                // a consumer is attached (sync.go)

	trace atomic.Pointer[traceSession] // nil while no trace is armed (trace.go)

	capture atomic.Pointer[Capture] // nil while no capture runs (capture.go)

	masqOnce sync.Once
	masqIdx  atomic.Pointer[session.OwnerIndex] // NAT connections' owners, made at the first (lbmasq.go)

	persist       *persist.Table // persistence templates, shared by the workers (lbpersist.go)
	persistCursor int            // the master's expiry walk

	cookies *synproxy.Cookies // the SYN proxy's secrets, rotated by the master (lbsynproxy.go)
	spCfg   synproxy.Config
}

// New builds a dataplane over ports; every port must have exactly
// opts.Workers queues.
func New(opts Options, ports []PortSpec) (*Dataplane, error) {
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.Burst <= 0 {
		opts.Burst = 64 // config.DefaultBurst
	}
	if opts.Burst > maxBurst {
		return nil, fmt.Errorf("dataplane: burst %d above the maximum %d: lower workers.burst", opts.Burst, maxBurst)
	}
	if opts.Idle == "" {
		opts.Idle = IdleAdaptive
	}
	if opts.DrainInterval <= 0 {
		opts.DrainInterval = 100 * time.Microsecond
	}
	if opts.NeighReachable <= 0 {
		opts.NeighReachable = 60 * time.Second
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 256
	}
	if opts.CaptureRate == 0 {
		opts.CaptureRate = DefaultCaptureRate
	}
	if opts.CaptureRing == 0 {
		opts.CaptureRing = DefaultCaptureRing
	}
	if opts.ICMPErrorRate == 0 {
		opts.ICMPErrorRate = 1000
	}
	if opts.ConnCapacity <= 0 {
		opts.ConnCapacity = 1 << 18
	}
	if opts.ConnExpirePerLoop <= 0 {
		opts.ConnExpirePerLoop = 256
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Workers > MaxWorkers {
		return nil, fmt.Errorf("dataplane: %d workers: at most %d (a worker wakes the others through one %d-bit mask): lower workers.count",
			opts.Workers, MaxWorkers, MaxWorkers)
	}
	if len(ports) > maxPorts {
		return nil, fmt.Errorf("dataplane: %d ports: at most %d (a frame handed between workers names its port in %d bits): use fewer ports",
			len(ports), maxPorts, tagPortBits)
	}
	if len(opts.Cores) != 0 && len(opts.Cores) != opts.Workers {
		return nil, fmt.Errorf("dataplane: %d cores for %d workers: list one core per worker", len(opts.Cores), opts.Workers)
	}
	d := &Dataplane{
		opts: opts, log: opts.Logger, ports: ports, start: time.Now(), bootID: newBootID(),
		ifaces:     []*Iface{nil},
		steerRules: map[netip.Addr][]flowdir.Rule{},
		learnCh:    make(chan neighLearn, learnChSize),
		needCh:     make(chan neighLearn, needChSize),
		kniNotify:  make(chan struct{}, 1),
		stopCh:     make(chan struct{}),
	}
	d.neigh = newNeighbours(opts.NeighReachable, opts.NeighMaxEntries, d.clock)
	for i, ps := range ports {
		if ps.Port.NumQueues() != opts.Workers {
			return nil, fmt.Errorf("dataplane: port %s has %d queues for %d workers: give every port one queue per worker",
				ps.Port.Name(), ps.Port.NumQueues(), opts.Workers)
		}
		var mac header.MAC
		copy(mac[:], ps.Port.MAC())
		d.ifaces = append(d.ifaces, &Iface{Index: uint16(len(d.ifaces)), Name: ps.Port.Name(), Kind: KindPort,
			Port: i, MAC: mac, MTU: ps.Port.MTU()})
	}
	d.ipvs = ipvs.NewManager(opts.Workers)
	d.persist = persist.New(opts.PersistCapacity)
	d.spCfg = synproxy.DefaultConfig()
	if opts.SynProxy != nil {
		d.spCfg = *opts.SynProxy
	}
	if err := d.spCfg.Validate(); err != nil {
		return nil, fmt.Errorf("dataplane: %w: fix ipvs.synproxy", err)
	}
	d.cookies = synproxy.NewCookies()
	d.steer = flowdir.NewSteering(opts.Workers)
	for i := 0; i < opts.Workers; i++ {
		w, err := d.newWorker(i)
		if err != nil {
			return nil, err
		}
		d.workers = append(d.workers, w)
	}
	for i, a := range d.workers {
		a.redirOut = make([]*ring.FrameRing, opts.Workers)
		for j, b := range d.workers {
			if i != j {
				r := ring.NewFrameRing(1024, 2048)
				a.redirOut[j] = r
				b.redirIn[i] = r
			}
		}
	}
	d.timeouts = d.workers[0].sess.Timeouts()
	if err := d.publishLocked(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Dataplane) newWorker(id int) (*Worker, error) {
	w := &Worker{
		id: id, dp: d, core: -1,
		workerIO: workerIO{burst: d.opts.Burst, drain: int64(d.opts.DrainInterval), tx: make([]txBuffer, len(d.ports))},
		workerL3: workerL3{maxPending: d.opts.MaxPending, pending: make([]pendingPkt, 0, d.opts.MaxPending),
			lastProbe: map[netip.Addr]int64{}, icmpBucket: newTokenBucket(d.opts.ICMPErrorRate)},
		workerKNI: workerKNI{kniOut: ring.NewFrameRing(1024, 2048), kniCtlOut: ring.NewFrameRing(512, 2048)},
		workerLB: workerLB{pool: flowdir.NewPool(id, flowdir.NewSteering(d.opts.Workers), nil),
			redirIn: make([]*ring.FrameRing, d.opts.Workers), syncOut: newSyncRing(d.opts.SyncRing), seekRate: newTokenBucket(seekBudget)},
		workerPoll: workerPoll{idle: d.opts.Idle, wakeFD: -1},
		workerCtl:  workerCtl{ctl: make(chan func(), 16)},
		done:       make(chan struct{}),
	}
	hw := d.opts.SessionHighWater
	if hw == 0 {
		hw = session.DefaultHighWater
	}
	sess, err := session.New(session.Options{Capacity: d.opts.ConnCapacity, Prefault: d.opts.PrefaultConns, Timeouts: d.opts.Timeouts,
		HighWater: hw, PressureTimeouts: d.opts.PressureTimeouts, Ends: !d.opts.NoExpireReset})
	if err != nil {
		return nil, fmt.Errorf("dataplane: worker %d connection table: %w", id, err)
	}
	w.sess, w.sessTick = sess, sess.Tick()
	w.onExpire = w.connGone
	if len(d.opts.Cores) > 0 {
		w.core = d.opts.Cores[id]
	}
	for _, ps := range d.ports {
		w.queues = append(w.queues, ps.Port.Queue(id))
		w.kniBucket = append(w.kniBucket, newTokenBucket(ps.KNIRate/d.opts.Workers))
		w.kniCtlBucket = append(w.kniCtlBucket, newTokenBucket(ps.KNIControlRate/d.opts.Workers))
	}
	if id == 0 {
		for range d.ports {
			w.kniIn = append(w.kniIn, ring.NewFrameRing(1024, 2048))
		}
	}
	return w, nil
}

// newBootID returns 128 random bits in hex.
func newBootID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than returning short)
	return hex.EncodeToString(b[:])
}

// BootID identifies this start of the dataplane.
func (d *Dataplane) BootID() string { return d.bootID }

// clock is the dataplane's monotonic clock in ns.
func (d *Dataplane) clock() int64 { return int64(time.Since(d.start)) }

// Start launches the workers and the master.
func (d *Dataplane) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running {
		return errors.New("dataplane: already running")
	}
	for _, w := range d.workers {
		fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			return fmt.Errorf("dataplane: worker %d eventfd: %w", w.id, err)
		}
		w.wakeFD = fd
		w.pollFDs = []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for _, q := range w.queues {
			if qfd := q.PollFD(); qfd >= 0 {
				w.pollFDs = append(w.pollFDs, unix.PollFd{Fd: int32(qfd), Events: unix.POLLIN})
			}
		}
	}
	d.running = true
	for _, w := range d.workers {
		go w.run()
	}
	d.wg.Add(1)
	go d.master()
	for i, ps := range d.ports {
		if ps.KNI != nil {
			d.wg.Add(1)
			go d.kniReader(i, ps.KNI)
		}
	}
	d.log.Info("dataplane started", zap.Int("workers", len(d.workers)), zap.Int("ports", len(d.ports)),
		zap.String("idle", string(d.opts.Idle)))
	return nil
}

// Stop stops the workers and the master and closes the KNI devices (which
// ends their readers); the ports stay open for their owner to close.
func (d *Dataplane) Stop() {
	d.mu.Lock()
	if !d.running {
		d.mu.Unlock()
		return
	}
	d.running = false
	d.mu.Unlock()
	for _, w := range d.workers {
		w.stop.Store(true)
		w.wake()
	}
	for _, w := range d.workers {
		<-w.done
		unix.Close(w.wakeFD)
	}
	close(d.stopCh)
	for _, ps := range d.ports {
		if ps.KNI != nil {
			ps.KNI.Close() // unblocks the readers
		}
	}
	d.wg.Wait()
	d.log.Info("dataplane stopped")
}

func (w *Worker) wake() {
	if w.wakeFD >= 0 {
		var one = [8]byte{1}
		unix.Write(w.wakeFD, one[:])
	}
}

func (d *Dataplane) notifyKNI() {
	select {
	case d.kniNotify <- struct{}{}:
	default:
	}
}

// master runs on a housekeeping core: neighbour learning and ageing, and
// writing punted frames to the KNI devices.
func (d *Dataplane) master() {
	defer d.wg.Done()
	defer d.recoverCrash("master", nil)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	pubTimer := time.NewTimer(time.Hour)
	pubTimer.Stop()
	defer pubTimer.Stop()
	for {
		select {
		case <-d.stopCh:
			return
		case l := <-d.needCh:
			d.neighEvents(l)
		case l := <-d.learnCh:
			d.neighEvents(l)
		case <-pubTimer.C:
		case <-d.kniNotify:
			d.drainPunts()
		case <-tick.C:
			d.neigh.expire(d.clock())
			d.ipvs.Reap()
			d.expireTemplates()
			d.cookies.Rotate(uint32(time.Since(d.start) / d.spCfg.SecretPeriod))
			d.estimate()
			d.drainPunts()
		}
		// learn events are published in batches (neigh.go)
		if wait := d.publishNeigh(); wait > 0 {
			pubTimer.Reset(wait)
		}
	}
}

// drainPunts writes the punted frames to the KNI devices, every worker's
// control frames before any bulk frame.
func (d *Dataplane) drainPunts() {
	for _, w := range d.workers {
		d.drainPuntRing(w.kniCtlOut)
	}
	for _, w := range d.workers {
		d.drainPuntRing(w.kniOut)
	}
}

func (d *Dataplane) drainPuntRing(r *ring.FrameRing) {
	for {
		f, p, ok := r.Peek()
		if !ok {
			return
		}
		if k := d.ports[p].KNI; k != nil {
			if _, err := k.Write(f); err != nil {
				d.kniWriteDrops.Add(1)
			}
		}
		r.Release()
	}
}

// kniReader moves frames the kernel sends on a KNI device to worker 0.
func (d *Dataplane) kniReader(p int, dev KNIDevice) {
	defer d.wg.Done()
	defer d.recoverCrash("kni reader "+dev.Name(), nil)
	buf := make([]byte, 65536)
	w0 := d.workers[0]
	for {
		n, err := dev.Read(buf)
		if err != nil {
			select {
			case <-d.stopCh:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) || errors.Is(err, unix.EBADF) {
				return
			}
			continue
		}
		if !w0.kniIn[p].Put(buf[:n], uint16(p)) {
			d.kniReadDrops.Add(1)
			continue
		}
		w0.wake()
	}
}
