//go:build linux

package afxdp

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/afxdp/xdpfast"
)

// Bind retries on EBUSY: the kernel releases a closed socket's hold on a
// queue asynchronously, so a quick re-open can find the queue still taken.
const (
	bindRetries    = 20
	bindRetryPause = 50 * time.Millisecond
)

// Port is an AF_XDP port: one socket per queue and the XDP program that
// feeds them.
type Port struct {
	name     string
	dev      device
	zeroCopy bool
	queues   []*Queue

	mu     sync.Mutex // serialises Stats, LinkUp, Close and the netlink handle
	closed bool
	nl     *netlink.Handle
	prog   *xdpProg
}

var _ port.Port = (*Port)(nil)

// Open opens cfg.Device (default cfg.Name) with cfg.Queues AF_XDP sockets
// and attaches the redirect program. The calling thread's network namespace
// is the one the device is looked up in.
func Open(cfg port.Config) (_ *Port, err error) {
	if cfg.Device == "" {
		cfg.Device = cfg.Name
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Device
	}
	fail := func(op string, err error) error {
		return fmt.Errorf("afxdp: %s %s: %w", op, cfg.Device, err)
	}
	if cfg.Device == "" {
		return nil, errors.New("afxdp: open: no device name (set the port's Name or Device)")
	}
	sz, frames, err := sizes(&cfg)
	if err != nil {
		return nil, fail("open", err)
	}
	var bindFlags []uint16 // tried in order
	switch cfg.ZeroCopy {
	case "", "auto":
		bindFlags = []uint16{unix.XDP_ZEROCOPY, unix.XDP_COPY}
	case "on":
		bindFlags = []uint16{unix.XDP_ZEROCOPY}
	case "off":
		bindFlags = []uint16{unix.XDP_COPY}
	default:
		return nil, fail("open", fmt.Errorf("zero-copy setting %q: want auto, on or off", cfg.ZeroCopy))
	}
	switch cfg.XDPMode {
	case "", "native", "generic":
	default:
		return nil, fail("open", fmt.Errorf("XDP mode %q: want native, generic or empty (native, falling back to generic)", cfg.XDPMode))
	}

	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fail("open", fmt.Errorf("netlink: %w", err))
	}
	p := &Port{name: cfg.Name, nl: h}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.dev, err = lookupDevice(h, cfg.Device); err != nil {
		return nil, fail("open", err)
	}
	if p.dev.rxQueues < cfg.Queues {
		return nil, fail("open", fmt.Errorf("%d queues requested but the device has %d rx queues: %s",
			cfg.Queues, p.dev.rxQueues, p.dev.queueFix(cfg.Queues)))
	}
	if maxMTU := maxMTU(); p.dev.mtu > maxMTU {
		return nil, fail("open", fmt.Errorf("MTU %d does not fit a %d-byte UMEM frame after %d bytes of headroom (largest MTU %d): ip link set dev %s mtu 1500",
			p.dev.mtu, pktbuf.DefaultFrameSize, pktbuf.Headroom, maxMTU, cfg.Device))
	}

	if p.prog, err = loadProg(cfg.Queues, cfg); err != nil {
		return nil, fail("open", err)
	}
	var share *Port
	if cfg.Share != nil {
		s, ok := cfg.Share.(*Port)
		if !ok || s.NumQueues() != cfg.Queues {
			return nil, fail("open", fmt.Errorf("share the UMEM of port %s: it must be an afxdp port with %d queues", cfg.Share.Name(), cfg.Queues))
		}
		share = s
	}
	for i := 0; i < cfg.Queues; i++ {
		var sq *Queue
		if share != nil {
			sq = share.queues[i]
		}
		q, err := openQueue(p.dev, i, frames, sz, bindFlags, sq)
		if err != nil {
			return nil, fmt.Errorf("afxdp: bind %s queue %d: %w", cfg.Device, i, err)
		}
		p.queues = append(p.queues, q)
		if err := p.prog.insert(i, q.x.fd); err != nil {
			return nil, fmt.Errorf("afxdp: insert %s queue %d into XSKMAP: %w", cfg.Device, i, err)
		}
	}
	p.zeroCopy = p.queues[0].zeroCopy
	if err := p.prog.attach(p.dev.ifindex, cfg.XDPMode); err != nil {
		return nil, fail("attach XDP to", err)
	}
	if f := p.prog.fast; f != nil {
		// the port itself is an egress (one-armed FullNAT); the dataplane
		// adds the other ports
		if err := f.AddEgress(p.dev.ifindex); err != nil {
			return nil, fail("open", err)
		}
	}
	return p, nil
}

// sizes applies defaults to cfg and checks ring sizes.
func sizes(cfg *port.Config) (ringSizes, int, error) {
	if cfg.Queues <= 0 {
		cfg.Queues = DefaultQueues
	}
	if cfg.RxRing <= 0 {
		cfg.RxRing = DefaultRing
	}
	if cfg.TxRing <= 0 {
		cfg.TxRing = DefaultRing
	}
	if cfg.FrameCount <= 0 {
		cfg.FrameCount = DefaultFrameCount
	}
	for _, r := range []struct {
		n    int
		name string
	}{{cfg.RxRing, "rx ring"}, {cfg.TxRing, "tx ring"}} {
		if r.n&(r.n-1) != 0 || r.n > 1<<20 {
			return ringSizes{}, 0, fmt.Errorf("%s size %d: must be a power of two up to 1048576", r.name, r.n)
		}
	}
	if cfg.FrameCount < 64 {
		return ringSizes{}, 0, fmt.Errorf("frame count %d: need at least 64", cfg.FrameCount)
	}
	sz := ringSizes{
		fill: uint32(2 * cfg.RxRing),
		comp: uint32(2 * cfg.TxRing),
		rx:   uint32(cfg.RxRing),
		tx:   uint32(cfg.TxRing),
	}
	return sz, cfg.FrameCount, nil
}

// maxMTU is the largest MTU whose frames (with a VLAN tag) fit a UMEM frame
// after the receive headroom.
func maxMTU() int {
	return pktbuf.DefaultFrameSize - umemHeadroom - unix.XDP_PACKET_HEADROOM - 14 - 4
}

// openQueue builds queue qid: UMEM and pool (or share's), socket (trying
// bindFlags in order, retrying each on EBUSY; with share, bound to share's
// UMEM in its mode) and the first fill of the fill ring.
func openQueue(dev device, qid, frames int, sz ringSizes, bindFlags []uint16, share *Queue) (q *Queue, err error) {
	q = &Queue{id: uint16(qid), frameMask: pktbuf.DefaultFrameSize - 1}
	q.x.fd = -1
	if share != nil {
		q.sh = share.sh
		q.sh.hold()
	} else if q.sh, err = newShared(frames); err != nil {
		return nil, err
	}
	q.pool = q.sh.pool
	defer func() {
		if err != nil {
			q.close()
		}
	}()
	if share != nil {
		x, err := bindWithRetry(q.sh.umem, sz, dev.ifindex, qid, 0, q.sh.fd)
		if err != nil {
			return q, fmt.Errorf("share the UMEM of %s queue %d: %w", share.dev, qid, err)
		}
		q.x = *x
	} else {
		var errs []error
		for _, flags := range bindFlags {
			x, err := bindWithRetry(q.sh.umem, sz, dev.ifindex, qid, flags|unix.XDP_USE_NEED_WAKEUP, -1)
			if err == nil {
				q.x = *x
				break
			}
			errs = append(errs, explainBind(dev, flags, err))
			if errors.Is(err, unix.EBUSY) {
				break // the queue is taken whatever the mode
			}
		}
		if q.x.fd < 0 {
			return q, errors.Join(errs...)
		}
		q.sh.fd = q.x.fd
	}
	q.dev = dev.name
	if q.zeroCopy, err = zeroCopy(q.x.fd); err != nil {
		return q, fmt.Errorf("get socket options: %w", err)
	}
	q.sh.join(q, sz.fill)
	q.refill()
	return q, nil
}

func bindWithRetry(umem []byte, sz ringSizes, ifindex, qid int, flags uint16, sharedFD int) (*xsk, error) {
	for try := 0; ; try++ {
		x, err := newXSK(umem, pktbuf.DefaultFrameSize, sz, ifindex, qid, flags, sharedFD)
		if err == nil || !errors.Is(err, unix.EBUSY) || try == bindRetries {
			return x, err
		}
		time.Sleep(bindRetryPause)
	}
}

func explainBind(dev device, flags uint16, err error) error {
	mode := "copy mode"
	if flags&unix.XDP_ZEROCOPY != 0 {
		mode = "zero-copy mode"
	}
	switch {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%s: %w (another AF_XDP socket holds the queue; stop the other user or wait for it to close)", mode, err)
	case flags&unix.XDP_ZEROCOPY != 0 && (errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)):
		return fmt.Errorf("%s: %w (the %s driver of %s has no AF_XDP zero-copy support; set ZeroCopy to auto or off)", mode, err, dev.driver, dev.name)
	}
	return fmt.Errorf("%s: %w", mode, err)
}

// Name implements port.Port.
func (p *Port) Name() string { return p.name }

// Driver implements port.Port.
func (p *Port) Driver() string { return "afxdp" }

// Device returns the kernel interface behind the port.
func (p *Port) Device() string { return p.dev.name }

// MAC implements port.Port; the address is read at Open.
func (p *Port) MAC() net.HardwareAddr { return p.dev.mac }

// MTU implements port.Port; read at Open.
func (p *Port) MTU() int { return p.dev.mtu }

// NumQueues implements port.Port.
func (p *Port) NumQueues() int { return len(p.queues) }

// Queue implements port.Port.
func (p *Port) Queue(i int) port.Queue { return p.queues[i] }

// XSKQueue returns queue i with its concrete type.
func (p *Port) XSKQueue(i int) *Queue { return p.queues[i] }

// SharedUMEM reports whether the port's queues share their UMEMs with
// another port's (port.Config.Share, or a port that shares this one's).
func (p *Port) SharedUMEM() bool { return len(p.queues) > 0 && p.queues[0].SharedUMEM() }

// Mode returns the socket mode obtained at bind: "zerocopy" or "copy".
func (p *Port) Mode() string {
	if p.zeroCopy {
		return "zerocopy"
	}
	return "copy"
}

// AttachMode returns how the XDP program is attached: "native" (driver
// mode) or "generic" (skb mode).
func (p *Port) AttachMode() string { return p.prog.mode }

// Fast returns the port's XDP fast path, nil when it is not active (see
// Offload). Its maps take the port's offloaded connections.
func (p *Port) Fast() *xdpfast.Fast { return p.prog.fast }

// FastTable is Fast as the workers use it: nil when the fast path is not
// active.
func (p *Port) FastTable() xdpfast.Table {
	if p.prog.fast == nil {
		return nil
	}
	return p.prog.fast
}

// Offload reports whether the XDP fast path is attached to the port and,
// when it is not, why.
func (p *Port) Offload() (active bool, why string) {
	if p.prog.fast != nil {
		return true, ""
	}
	return false, p.prog.whyNot
}

// Ifindex is the kernel interface index of the port's device.
func (p *Port) Ifindex() int { return p.dev.ifindex }

// LinkUp implements port.Port: the interface is up and has carrier. It asks
// the kernel over netlink (in the port's namespace) on every call.
func (p *Port) LinkUp() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	return linkUp(p.nl, p.dev.ifindex)
}

// Stats implements port.Port: the queues' counters plus the kernel's
// per-socket drops (XDP_STATISTICS): rx_dropped and rx_ring_full count as
// RxDropped, rx_invalid_descs as RxErrors, tx_invalid_descs as TxErrors.
// It reads only kernel statistics, never the rings, so any goroutine may
// call it.
func (p *Port) Stats() port.Stats {
	s := port.SumQueues(p)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return s
	}
	for _, q := range p.queues {
		st, err := xdpStatistics(q.x.fd)
		if err != nil {
			continue
		}
		s.RxDropped += st.Rx_dropped + st.Rx_ring_full
		s.RxErrors += st.Rx_invalid_descs
		s.TxErrors += st.Tx_invalid_descs
	}
	return s
}

// XDPStats are a socket's XDP_STATISTICS. RxFillRingEmpty and TxRingEmpty
// count events (the kernel found the fill ring empty, or was woken with
// nothing to send), not packets: in copy mode a packet lost to an empty fill
// ring is also in RxDropped.
type XDPStats struct {
	RxDropped       uint64
	RxInvalidDescs  uint64
	TxInvalidDescs  uint64
	RxRingFull      uint64
	RxFillRingEmpty uint64
	TxRingEmpty     uint64
}

// XDPStats returns the kernel statistics of each queue's socket. Safe from
// any goroutine.
func (p *Port) XDPStats() ([]XDPStats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("afxdp: statistics of %s: port closed", p.dev.name)
	}
	out := make([]XDPStats, len(p.queues))
	for i, q := range p.queues {
		st, err := xdpStatistics(q.x.fd)
		if err != nil {
			return nil, fmt.Errorf("afxdp: statistics of %s queue %d: %w", p.dev.name, i, err)
		}
		out[i] = XDPStats{
			RxDropped:       st.Rx_dropped,
			RxInvalidDescs:  st.Rx_invalid_descs,
			TxInvalidDescs:  st.Tx_invalid_descs,
			RxRingFull:      st.Rx_ring_full,
			RxFillRingEmpty: st.Rx_fill_ring_empty_descs,
			TxRingEmpty:     st.Tx_ring_empty_descs,
		}
	}
	return out, nil
}

// XStats implements port.XStatsReader (`dpip -s link show`): the
// kernel's XDP_STATISTICS summed over the port's sockets, then, when the
// XDP fast path is attached, where its program sent each frame (the
// verdict counters, summed over CPUs). Safe from any goroutine.
func (p *Port) XStats() ([]port.XStat, error) {
	sum, err := p.XDPStatsTotal()
	if err != nil {
		return nil, err
	}
	xs := []port.XStat{
		{Name: "gvs_xsk_rx_dropped", Value: sum.RxDropped},
		{Name: "gvs_xsk_rx_ring_full", Value: sum.RxRingFull},
		{Name: "gvs_xsk_rx_fill_ring_empty", Value: sum.RxFillRingEmpty},
		{Name: "gvs_xsk_rx_invalid_descs", Value: sum.RxInvalidDescs},
		{Name: "gvs_xsk_tx_invalid_descs", Value: sum.TxInvalidDescs},
		{Name: "gvs_xsk_tx_ring_empty", Value: sum.TxRingEmpty},
	}
	p.mu.Lock()
	var f *xdpfast.Fast
	if !p.closed && p.prog != nil {
		f = p.prog.fast
	}
	p.mu.Unlock()
	if f != nil {
		v, err := f.Verdicts()
		if err != nil {
			return nil, fmt.Errorf("afxdp: %s: %w", p.dev.name, err)
		}
		for i, n := range v {
			xs = append(xs, port.XStat{Name: "gvs_" + xdpfast.Verdict(i).String(), Value: n})
		}
	}
	return xs, nil
}

// XDPStatsTotal is XDPStats summed over the port's sockets.
func (p *Port) XDPStatsTotal() (XDPStats, error) {
	qs, err := p.XDPStats()
	if err != nil {
		return XDPStats{}, err
	}
	var sum XDPStats
	for _, q := range qs {
		sum.RxDropped += q.RxDropped
		sum.RxInvalidDescs += q.RxInvalidDescs
		sum.TxInvalidDescs += q.TxInvalidDescs
		sum.RxRingFull += q.RxRingFull
		sum.RxFillRingEmpty += q.RxFillRingEmpty
		sum.TxRingEmpty += q.TxRingEmpty
	}
	return sum, nil
}

// Close implements port.Port: it detaches the XDP program, closes the
// sockets and unmaps rings and UMEMs. Buffers of the port's pools must no
// longer be in use. Calling it again does nothing.
func (p *Port) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	if p.prog != nil {
		if err := p.prog.close(); err != nil {
			errs = append(errs, fmt.Errorf("afxdp: detach XDP from %s: %w", p.dev.name, err))
		}
	}
	for i, q := range p.queues {
		if err := q.close(); err != nil {
			errs = append(errs, fmt.Errorf("afxdp: close %s queue %d: %w", p.dev.name, i, err))
		}
	}
	if p.nl != nil {
		p.nl.Close()
	}
	return errors.Join(errs...)
}
