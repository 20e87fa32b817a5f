//go:build dpdk

package dpdk

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/flowdir"
)

// Defaults for zero fields of port.Config.
const (
	DefaultQueues     = 1
	DefaultRing       = 1024
	DefaultFrameCount = 4096
)

var errNotSupported = port.ErrNotSupported

// openSeq makes mempool and memzone names unique within the process (DPDK
// names are global and a port may be opened again after a failed open).
var openSeq atomic.Uint32

// Port is a DPDK ethdev port.
type Port struct {
	name, dev string
	id        uint16
	info      devInfo
	mac       net.HardwareAddr
	rssHF     uint64
	queues    []*Queue

	mu     sync.Mutex // serialises the control calls and Close
	closed bool
	flows  map[netip.Addr][]flowRule // rte_flow rules by local address (Steer)
	// what the PMD refused at open, for Info
	promiscErr, allMultiErr error
}

var _ port.Port = (*Port)(nil)

// XStat is one extended statistic of the device (rte_eth_xstats) or of the
// driver (gvs_ prefix).
type XStat = port.XStat

var _ port.XStatsReader = (*Port)(nil)

// Open opens the DPDK device cfg.Device (default cfg.Name): a PCI address
// the EAL probed (0000:3b:00.0) or a vdev name (net_ring0), with cfg.Queues
// queue pairs. Init must have succeeded first.
func Open(cfg port.Config) (_ *Port, err error) {
	if cfg.Device == "" {
		cfg.Device = cfg.Name
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Device
	}
	if err := ealReady(); err != nil {
		return nil, fmt.Errorf("port %s: %w", cfg.Name, err)
	}
	fail := func(err error) error { return fmt.Errorf("dpdk: port %s (device %s): %w", cfg.Name, cfg.Device, err) }
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
	if cfg.FrameCount < 2*cfg.RxRing || cfg.FrameCount < 2*maxBurst {
		return nil, fail(fmt.Errorf("%d frames per queue are too few for an rx ring of %d: set frames to at least %d",
			cfg.FrameCount, cfg.RxRing, max(2*cfg.RxRing, 2*maxBurst)))
	}
	id, ok := portByName(cfg.Device)
	if !ok {
		return nil, fail(fmt.Errorf("no such DPDK device (the EAL found: %s): bind the NIC to vfio-pci (dpdk-devbind.py -b vfio-pci ADDR) and list it in dpdk.pci_allow, or add it to dpdk.vdevs",
			orNone(availablePorts())))
	}
	p := &Port{name: cfg.Name, dev: cfg.Device, id: id}
	if p.info, err = deviceInfo(id); err != nil {
		return nil, fail(err)
	}
	if cfg.Queues > p.info.maxRxQueues || cfg.Queues > p.info.maxTxQueue {
		return nil, fail(fmt.Errorf("%d queues requested, the %s device has %d rx and %d tx queues: use as many workers as it has queues",
			cfg.Queues, p.info.driver, p.info.maxRxQueues, p.info.maxTxQueue))
	}
	started := false
	defer func() {
		if err != nil {
			if started {
				for _, q := range p.queues {
					q.drain()
				}
				closePort(id)
			}
			for _, q := range p.queues {
				q.free()
			}
		}
	}()
	seq := openSeq.Add(1)
	socket := max(p.info.socket, 0)
	for i := 0; i < cfg.Queues; i++ {
		q, err := newQueue(id, uint16(i), fmt.Sprintf("gvs%d_%d_%d", seq, id, i), cfg.FrameCount,
			cfg.FrameCount/2, cfg.RxRing, socket)
		if err != nil {
			return nil, fail(fmt.Errorf("queue %d: %w", i, err))
		}
		p.queues = append(p.queues, q)
	}
	if p.rssHF, err = setupPort(id, p.queues, cfg.RxRing, cfg.TxRing); err != nil {
		return nil, fail(err)
	}
	started = true
	// GVS answers ARP/ND for many addresses and takes VIPs' traffic: it
	// needs every frame, as the kernel drivers' ports get them
	p.promiscErr = setPromisc(id, true)
	p.allMultiErr = setAllMulti(id, true)
	p.mac = macOf(id)
	return p, nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func (p *Port) Name() string           { return p.name }
func (p *Port) Driver() string         { return "dpdk" }
func (p *Port) MAC() net.HardwareAddr  { return p.mac }
func (p *Port) NumQueues() int         { return len(p.queues) }
func (p *Port) Queue(i int) port.Queue { return p.queues[i] }
func (p *Port) DPDKQueue(i int) *Queue { return p.queues[i] }
func (p *Port) PortID() uint16         { return p.id }
func (p *Port) PMD() string            { return p.info.driver }
func (p *Port) DeviceName() string     { return p.dev }
func (p *Port) MTU() int               { return mtuOf(p.id) }

// MaxMTU is the largest MTU whose frames fit one mbuf of the driver (it
// takes no chained mbufs): the frame less DPDK's headroom, the Ethernet
// header, a VLAN tag and the CRC, or the device's own limit if lower.
func (p *Port) MaxMTU() int {
	m := pktbuf.DefaultFrameSize - mbufHeadroom - 14 - 4 - 4
	if p.info.maxMTU > 0 {
		m = min(m, p.info.maxMTU)
	}
	return m
}

// SetMTU sets the device's MTU (dpip link set dev X mtu N), within
// [the device's minimum, MaxMTU].
func (p *Port) SetMTU(mtu int) error {
	if hi := p.MaxMTU(); mtu > hi || mtu < p.info.minMTU {
		return fmt.Errorf("dpdk: port %s: mtu %d out of range: the %s device and the driver's %d-byte frames take %d-%d",
			p.name, mtu, p.info.driver, pktbuf.DefaultFrameSize, p.info.minMTU, hi)
	}
	return p.ctl("set MTU", func() error { return setMTU(p.id, mtu) })
}
func (p *Port) SetPromisc(on bool) error {
	return p.ctl("set promiscuous mode", func() error { return setPromisc(p.id, on) })
}
func (p *Port) SetAllMulti(on bool) error {
	return p.ctl("set all-multicast mode", func() error { return setAllMulti(p.id, on) })
}

func (p *Port) ctl(what string, f func() error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("dpdk: port %s: %s: port is closed", p.name, what)
	}
	if err := f(); err != nil {
		return fmt.Errorf("dpdk: port %s: %s on the %s device: %w", p.name, what, p.info.driver, err)
	}
	return nil
}

// LinkUp implements port.Port.
func (p *Port) LinkUp() bool {
	up, _ := linkUp(p.id)
	return up
}

// Stats implements port.Port: the queues' counters, plus what the device
// itself missed (imissed, rx_nombuf) and its errors.
func (p *Port) Stats() port.Stats {
	s := port.SumQueues(p)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		if d, ok := statsOf(p.id); ok {
			s.RxDropped += d.imissed + d.nombuf
			s.RxErrors += d.ierrors
			s.TxErrors += d.oerrors
		}
	}
	return s
}

// XStats returns the device's extended statistics followed by the driver's
// own counters summed over the queues (gvs_rx_no_frames, gvs_rx_foreign_copies,
// gvs_rx_chained_dropped).
func (p *Port) XStats() ([]XStat, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("dpdk: port %s is closed", p.name)
	}
	xs, err := xstatsOf(p.id)
	if err != nil && !errors.Is(err, errNotSupported) {
		return nil, fmt.Errorf("dpdk: port %s: xstats: %w", p.name, err)
	}
	var noFrames, foreign, chained uint64
	for _, q := range p.queues {
		noFrames += q.noFrames.Load()
		foreign += q.foreign.Load()
		chained += q.chained.Load()
	}
	return append(xs, XStat{Name: "gvs_rx_no_frames", Value: noFrames}, XStat{Name: "gvs_rx_foreign_copies", Value: foreign},
		XStat{Name: "gvs_rx_chained_dropped", Value: chained}), nil
}

// RSS returns the device's RSS key and redirection table as the filter
// ipvs.port_selection: rss chooses local ports with; an error wrapping
// flowdir.ErrNoRSS when the PMD does not report them.
func (p *Port) RSS() (*flowdir.RSSFilter, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rssHF == 0 {
		return nil, fmt.Errorf("dpdk: port %s: RSS is off (one queue, or the %s device hashes nothing GVS uses): %w", p.name, p.info.driver, flowdir.ErrNoRSS)
	}
	key, reta, err := readRSS(p.id)
	if err != nil {
		return nil, fmt.Errorf("dpdk: port %s: read RSS of the %s device: %v: %w", p.name, p.info.driver, err, flowdir.ErrNoRSS)
	}
	if len(key) < 40 {
		key = append(key, make([]byte, 40-len(key))...)
	}
	return &flowdir.RSSFilter{Hash: flowdir.NewToeplitz(key), Queues: len(p.queues), RETA: reta}, nil
}

// protoNum maps a flowdir rule's protocol to an IP protocol number.
func protoNum(proto string) (uint8, bool) {
	switch proto {
	case "tcp4", "tcp6":
		return 6, true
	case "udp4", "udp6":
		return 17, true
	}
	return 0, false
}

// Steer installs rte_flow rules sending each rule's traffic (replies to a
// local address whose destination port has the worker's owner bits) to the
// worker's queue: the same rules flowdir.RulesFor describes for ethtool.
// All or nothing: on the first refusal the rules installed by this call are
// removed and the error wraps flowdir.ErrNoHardwareSteering. Unsteer
// removes a local address's rules again.
func (p *Port) Steer(rules []flowdir.Rule) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("dpdk: port %s is closed", p.name)
	}
	done := map[netip.Addr][]flowRule{}
	undo := func() {
		for _, fs := range done {
			destroyAll(fs)
		}
	}
	for _, r := range rules {
		proto, ok := protoNum(r.Proto)
		if !ok || r.Worker < 0 || r.Worker >= len(p.queues) {
			undo()
			return fmt.Errorf("dpdk: port %s: rule %s %s worker %d: bad protocol or worker (the port has %d queues)",
				p.name, r.Proto, r.LAddr, r.Worker, len(p.queues))
		}
		f, err := flow(p.id, r.LAddr, proto, uint16(r.Worker), r.Mask, r.Worker, false)
		if err != nil {
			undo()
			return fmt.Errorf("dpdk: port %s: rte_flow rule %s dst %s port bits %d/0x%04x → queue %d refused by the %s device: %v: %w",
				p.name, r.Proto, r.LAddr, r.Worker, r.Mask, r.Worker, p.info.driver, err, flowdir.ErrNoHardwareSteering)
		}
		done[r.LAddr] = append(done[r.LAddr], f)
	}
	if p.flows == nil {
		p.flows = map[netip.Addr][]flowRule{}
	}
	for a, fs := range done {
		p.flows[a] = append(p.flows[a], fs...)
	}
	return nil
}

// Unsteer removes the rte_flow rules Steer installed for local address
// laddr (none: nothing to do).
func (p *Port) Unsteer(laddr netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	fs := p.flows[laddr]
	delete(p.flows, laddr)
	if p.closed || len(fs) == 0 {
		return nil
	}
	if err := destroyAll(fs); err != nil {
		return fmt.Errorf("dpdk: port %s: remove the rte_flow rules of %s: %w", p.name, laddr, err)
	}
	return nil
}

// SteeringSupport asks the PMD whether it would take the owner-bit rule
// (rte_flow_validate, nothing installed): nil when it would, otherwise an
// error naming the device and wrapping flowdir.ErrNoHardwareSteering.
func (p *Port) SteeringSupport() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := min(1, len(p.queues)-1)
	_, err := flow(p.id, netip.MustParseAddr("192.0.2.1"), 6, uint16(q), 1, q, true)
	if err != nil {
		return fmt.Errorf("dpdk: port %s: the %s device does not take rte_flow owner-bit rules (%v): replies are handed between workers in software: %w",
			p.name, p.info.driver, err, flowdir.ErrNoHardwareSteering)
	}
	return nil
}

func destroyAll(fs []flowRule) error {
	var errs []error
	for _, f := range fs {
		if err := f.destroy(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close implements port.Port: queues must no longer be in use.
func (p *Port) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for _, fs := range p.flows {
		if err := destroyAll(fs); err != nil {
			errs = append(errs, fmt.Errorf("remove rte_flow rules: %w", err))
		}
	}
	p.flows = nil
	for _, q := range p.queues {
		q.drain()
	}
	if err := closePort(p.id); err != nil {
		errs = append(errs, err)
	}
	for _, q := range p.queues {
		q.free()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dpdk: close port %s: %w", p.name, err)
	}
	return nil
}
