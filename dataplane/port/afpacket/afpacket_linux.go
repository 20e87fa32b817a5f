//go:build linux

package afpacket

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
)

// Defaults of a port.
const (
	DefaultFrameCount   = 4096      // buffers per queue
	DefaultRxRing       = 2048      // ring capacity in 2 KiB frames: 4 MiB per queue
	DefaultBlockSize    = 256 << 10 // bytes per ring block
	DefaultBlockTimeout = time.Millisecond
	DefaultSendBuffer   = 4 << 20
	minBlocks           = 2
)

// Options are the driver's own settings; the zero value is the default.
type Options struct {
	// KeepKernelIngress leaves the kernel stack processing the frames the
	// port receives. By default Open installs a tc ingress drop on the
	// device (see the package comment), as a dataplane that owns the NIC
	// needs; set this for a device shared with the kernel, or one whose tc
	// ingress hook is managed by something else.
	KeepKernelIngress bool
	// BlockSize is the size of a receive ring block in bytes, a multiple of
	// the page size (default 256 KiB). A frame must fit a block.
	BlockSize int
	// BlockTimeout is how long the kernel keeps a partly filled block before
	// handing it over (millisecond granularity, default 1 ms): the added
	// latency at low packet rates.
	BlockTimeout time.Duration
	// SendBuffer is the socket send buffer in bytes (default 4 MiB);
	// negative keeps the kernel's default.
	SendBuffer int
	// QdiscBypass sends frames straight to the device driver, skipping the
	// device's qdisc (PACKET_QDISC_BYPASS): faster on real NICs, but frames
	// the driver's ring cannot take are dropped instead of queued.
	QdiscBypass bool
}

// Port is an AF_PACKET port. Its queues are used by their workers; Stats,
// LinkUp and Close may be called from any goroutine.
type Port struct {
	name    string
	dev     string
	ifindex int
	mac     net.HardwareAddr
	mtu     int
	queues  []*Queue

	mu     sync.Mutex // guards the fields below and socket use outside the workers
	nl     *netlink.Handle
	tc     *ingressDrop
	closed bool
}

var _ port.Port = (*Port)(nil)

// Open opens cfg.Device (default cfg.Name) with default Options. It must run
// in the device's network namespace (of the calling OS thread).
//
// cfg.Queues sockets (default 1) share the traffic by flow hash;
// cfg.FrameCount is the number of buffers per queue (default 4096), cfg.RxRing
// the receive ring capacity in 2 KiB frames (default 2048). cfg.TxRing and
// the AF_XDP fields are ignored.
func Open(cfg port.Config) (*Port, error) {
	return OpenWith(cfg, Options{})
}

// OpenWith is Open with driver options.
func OpenWith(cfg port.Config, opt Options) (*Port, error) {
	if cfg.Name == "" {
		return nil, errors.New("afpacket: open: port name missing")
	}
	dev := cfg.Device
	if dev == "" {
		dev = cfg.Name
	}
	g, frames, err := geometry(cfg, opt)
	if err != nil {
		return nil, fmt.Errorf("afpacket: open %s: %w", cfg.Name, err)
	}
	if opt.SendBuffer == 0 {
		opt.SendBuffer = DefaultSendBuffer
	}
	nq := cfg.Queues
	if nq <= 0 {
		nq = 1
	}

	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("afpacket: open %s: netlink: %w", cfg.Name, err)
	}
	link, err := h.LinkByName(dev)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("afpacket: open %s: device %s: %w", cfg.Name, dev, err)
	}
	a := link.Attrs()
	// A frame must fit a block after the block and packet headers (the
	// kernel truncates it otherwise).
	if need := a.MTU + ethHdrLen + 2*vlanTagLen + bdLen + 2*tp3Len + 64; g.blockSize < need {
		h.Close()
		return nil, fmt.Errorf("afpacket: open %s: ring block size %d is too small for the MTU %d of %s; set Options.BlockSize to at least %d",
			cfg.Name, g.blockSize, a.MTU, dev, need)
	}
	p := &Port{
		name:    cfg.Name,
		dev:     dev,
		ifindex: a.Index,
		mac:     append(net.HardwareAddr(nil), a.HardwareAddr...),
		mtu:     a.MTU,
		nl:      h,
	}
	if err := p.open(nq, g, frames, opt, link); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Port) open(nq int, g rxGeometry, frames int, opt Options, link netlink.Link) error {
	for i := 0; i < nq; i++ {
		q, err := openQueue(i, p.ifindex, g, frames, opt)
		if err != nil {
			return fmt.Errorf("afpacket: open %s queue %d: %w", p.name, i, err)
		}
		p.queues = append(p.queues, q)
	}
	if nq > 1 {
		id, err := createFanout(p.queues[0].fd)
		if err != nil {
			return fmt.Errorf("afpacket: open %s queue 0: %w", p.name, err)
		}
		for i, q := range p.queues[1:] {
			if err := joinFanout(q.fd, id); err != nil {
				return fmt.Errorf("afpacket: open %s queue %d: %w", p.name, i+1, err)
			}
		}
	}
	// Every socket now gets its share only: let the frames in.
	for i, q := range p.queues {
		if err := detachFilter(q.fd); err != nil {
			return fmt.Errorf("afpacket: open %s queue %d: %w", p.name, i, err)
		}
	}
	if opt.KeepKernelIngress {
		// a drop left by a GVS process that died would keep the kernel off
		// the device this port must share with it
		if _, err := RemoveStaleIngressDrop(p.dev); err != nil {
			return fmt.Errorf("afpacket: open %s: %w", p.name, err)
		}
	} else {
		d, err := installIngressDrop(p.nl, link)
		if err != nil {
			return fmt.Errorf("afpacket: open %s: drop kernel ingress on %s: %w", p.name, p.dev, err)
		}
		p.tc = d
	}
	return nil
}

// geometry derives the ring shape and pool size from cfg and opt.
func geometry(cfg port.Config, opt Options) (rxGeometry, int, error) {
	frames := cfg.FrameCount
	if frames <= 0 {
		frames = DefaultFrameCount
	}
	ring := cfg.RxRing
	if ring <= 0 {
		ring = DefaultRxRing
	}
	bs := opt.BlockSize
	if bs <= 0 {
		bs = DefaultBlockSize
	}
	if page := os.Getpagesize(); bs%page != 0 {
		return rxGeometry{}, 0, fmt.Errorf("ring block size %d is not a multiple of the page size %d", bs, page)
	}
	tov := opt.BlockTimeout
	if tov <= 0 {
		tov = DefaultBlockTimeout
	}
	ms := int(tov / time.Millisecond)
	if ms < 1 {
		ms = 1
	}
	blocks := max(ring*pktbuf.DefaultFrameSize/bs, minBlocks)
	return rxGeometry{blockSize: bs, blocks: blocks, frameSize: pktbuf.DefaultFrameSize, timeoutMs: ms}, frames, nil
}

// Name implements port.Port.
func (p *Port) Name() string { return p.name }

// Driver implements port.Port.
func (p *Port) Driver() string { return "afpacket" }

// Device returns the kernel interface behind the port.
func (p *Port) Device() string { return p.dev }

// MAC implements port.Port: the interface's address when the port opened.
func (p *Port) MAC() net.HardwareAddr { return p.mac }

// MTU implements port.Port: the interface's MTU when the port opened.
func (p *Port) MTU() int { return p.mtu }

// NumQueues implements port.Port.
func (p *Port) NumQueues() int { return len(p.queues) }

// Queue implements port.Port.
func (p *Port) Queue(i int) port.Queue { return p.queues[i] }

// PacketQueue returns queue i with its concrete type.
func (p *Port) PacketQueue(i int) *Queue { return p.queues[i] }

// LinkUp implements port.Port: the interface is up and has carrier. It asks
// netlink each time.
func (p *Port) LinkUp() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	l, err := p.nl.LinkByIndex(p.ifindex)
	if err != nil {
		return false
	}
	f := l.Attrs().RawFlags
	return f&unix.IFF_UP != 0 && f&unix.IFF_LOWER_UP != 0
}

// Stats implements port.Port. It first folds the kernel's ring-full drops
// into the queues' RxDropped.
func (p *Port) Stats() port.Stats {
	p.pullKernelStats()
	return port.SumQueues(p)
}

// RingFreezes returns how many times the kernel found a queue's ring full
// and froze it (each episode drops packets, counted in RxDropped).
func (p *Port) RingFreezes() uint64 {
	p.pullKernelStats()
	var n uint64
	for _, q := range p.queues {
		n += q.freezes.Load()
	}
	return n
}

func (p *Port) pullKernelStats() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	for _, q := range p.queues {
		q.pullKernelStats()
	}
}

// Close implements port.Port: it removes the tc ingress drop, closes the
// sockets and unmaps the rings. Closing twice is a no-op.
func (p *Port) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	if p.tc != nil {
		if err := p.tc.remove(p.nl); err != nil {
			errs = append(errs, fmt.Errorf("afpacket: close %s: device %s: %w", p.name, p.dev, err))
		}
		p.tc = nil
	}
	for i, q := range p.queues {
		if err := q.close(); err != nil {
			errs = append(errs, fmt.Errorf("afpacket: close %s queue %d: %w", p.name, i, err))
		}
	}
	p.nl.Close()
	return errors.Join(errs...)
}
