//go:build linux

package pktgen

// The live-frame generator's threads. Each is a goroutine locked to a
// thread that is pinned to its generator CPU and switched for good into
// the client device's network namespace (BPF_PROG_RUN looks the ingress
// device up there). It loads its own counter map and program, and then
// calls BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES in chunks: the kernel
// runs the program on frames of its page pool initialised from the
// template and sends every XDP_TX frame out of the client device, flushing
// after every batch. Unpaced, a chunk is liveChunk frames; paced, the
// thread sleeps until at least a batch (or 100 µs worth) is due. The
// frames the program counted are the thread's tx_packets; the device's
// tx_dropped (a veth counts frames its peer's ring refused) is taken off
// at the end like for every generator.
//
// BPF_PROG_RUN with repeat > 1 puts the program into the kernel's XDP
// dispatcher for the call and takes it out afterwards, and each change of
// the dispatcher waits for an RCU grace period: ~20 ms per call, measured
// here, which would cap the generator at a few hundred thousand frames per
// second. A program the dispatcher already holds costs nothing more, so
// each thread keeps its program attached (generic mode) to a veth pair of
// its own, down and carrying no traffic, created in the client namespace
// and deleted at the end.
//
// A veth passes XDP frames on only if its peer runs NAPI: the peer has an
// XDP program (AF_XDP sockets, GVS, an XDP forwarder) or GRO enabled.
// Otherwise the kernel drops them without counting them on the device:
// the run warns when the device counted far fewer frames than were run.

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/header"
)

const (
	// liveChunk frames per BPF_PROG_RUN when unpaced (~1 ms at 4 Mpps,
	// so stopping and publishing stay prompt).
	liveChunk = 4096
	// liveBatch is the kernel's batch: frames allocated, run and flushed
	// together.
	liveBatch = 64
)

// xdpMd is struct xdp_md, the context handed to BPF_PROG_RUN.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// startLive starts the live-frame threads sending to nextHop and returns
// once every one has loaded its program and sent its first frame, or with
// the errors once all of them stopped.
func (r *runner) startLive(nextHop header.MAC) error {
	n := r.cfg.liveThreads()
	ready := make(chan error, n)
	gens := make([]*liveGen, n)
	for i := range gens {
		g := &liveGen{r: r, idx: i, cpu: -1}
		if cpus := r.cfg.ClientCPUs; len(cpus) > 0 {
			g.cpu = cpus[i%len(cpus)]
		}
		tpl, err := newLiveTemplate(&r.cfg, MACOf(r.client), nextHop, i, n)
		if err != nil {
			return err
		}
		g.tpl = tpl
		gens[i] = g
	}
	stop := make(chan struct{})
	for _, g := range gens {
		r.wg.Add(1)
		go g.run(ready, stop)
	}
	var errs []error
	for range gens {
		if err := <-ready; err != nil {
			errs = append(errs, err)
		}
	}
	// the first frames of threads that started count even if another
	// thread failed
	r.live = gens
	if len(errs) > 0 {
		close(stop)
		return errors.Join(errs...)
	}
	return nil
}

// run is a live thread: set-up, the first frame (reported on ready), then
// chunks until generation ends or stop is closed.
func (g *liveGen) run(ready chan<- error, stop <-chan struct{}) {
	defer g.r.wg.Done()
	prog, counter, opts, err := g.setup()
	if err == nil {
		defer prog.Close()
		defer counter.Close()
		if release, kerr := keepInDispatcher(prog, g.idx); kerr != nil {
			g.r.warn(fmt.Errorf("%s generator thread %d: %w; every BPF_PROG_RUN call then waits for the XDP dispatcher (~20 ms)", GenXDPLive, g.idx, kerr))
		} else {
			defer release()
		}
		err = g.chunk(prog, counter, opts, 1)
	}
	ready <- err
	if err != nil {
		return
	}
	select {
	case <-stop:
		return
	default:
	}
	g.loop(prog, counter, opts)
	g.ctr.publish()
}

// setup pins and moves the thread, computes the clock offset, and loads
// the counter map and the program.
func (g *liveGen) setup() (*ebpf.Program, *ebpf.Map, *ebpf.RunOptions, error) {
	r := g.r
	where := r.cfg.Client.String()
	// the thread stays locked: it belongs to the namespace from now on and
	// ends with the goroutine
	if err := PinThread(g.cpu, 0); err != nil {
		return nil, nil, nil, fmt.Errorf("%s generator thread %d: %w", GenXDPLive, g.idx, err)
	}
	if ns := r.cfg.Client.Netns; ns != "" {
		h, err := netns.GetFromName(ns)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s generator on %s: netns %s: %w", GenXDPLive, where, ns, err)
		}
		err = netns.Set(h)
		h.Close()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s generator on %s: enter netns %s: %w", GenXDPLive, where, ns, err)
		}
	}
	ifi, err := net.InterfaceByName(r.cfg.Client.Dev)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s generator on %s: %w", GenXDPLive, where, err)
	}
	if g.tpl.clockOffset, _, err = monotonicOffset(r.clock); err != nil {
		return nil, nil, nil, err
	}

	prog, counter, err := loadLive(g.tpl)
	if err != nil {
		return nil, nil, nil, err
	}
	opts := &ebpf.RunOptions{
		Data:      g.tpl.frame,
		Flags:     unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		Context:   xdpMd{DataEnd: uint32(len(g.tpl.frame)), IngressIfindex: uint32(ifi.Index)},
		BatchSize: liveBatch,
	}
	return prog, counter, opts, nil
}

// keepInDispatcher attaches prog in generic mode to a fresh veth pair in
// the current thread's namespace, so the XDP dispatcher holds it between
// BPF_PROG_RUN calls; release detaches it and deletes the pair.
func keepInDispatcher(prog *ebpf.Program, thread int) (release func(), err error) {
	name := fmt.Sprintf("pgk%d.%d", os.Getpid()%1000000, thread)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
	if err := netlink.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("keep the program in the XDP dispatcher: create veth %s: %w", name, err)
	}
	del := func() { _ = netlink.LinkDel(veth) }
	l, err := netlink.LinkByName(name)
	if err != nil {
		del()
		return nil, fmt.Errorf("keep the program in the XDP dispatcher: %s: %w", name, err)
	}
	xl, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: l.Attrs().Index, Flags: link.XDPGenericMode})
	if err != nil {
		del()
		return nil, fmt.Errorf("keep the program in the XDP dispatcher: attach to %s: %w", name, err)
	}
	return func() { _ = xl.Close(); del() }, nil
}

// monotonicOffset returns what to subtract from CLOCK_MONOTONIC (the
// program's bpf_ktime_get_ns) to read c, within ±uncertainty ns.
func monotonicOffset(c Clock) (offset, uncertainty int64, err error) {
	t1 := c.Now()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, 0, fmt.Errorf("%s generator: clock: %w", GenXDPLive, err)
	}
	t2 := c.Now()
	return ts.Nano() - (t1+t2)/2, (t2-t1)/2 + 1, nil
}

// loadLive creates the counter map and loads lt's program over it.
func loadLive(lt *liveTemplate) (*ebpf.Program, *ebpf.Map, error) {
	counter, err := ebpf.NewMap(&ebpf.MapSpec{Name: "gvspg_live_cnt", Type: ebpf.Array, KeySize: 4,
		ValueSize: liveCounterSz, MaxEntries: 1})
	if err != nil {
		return nil, nil, fmt.Errorf("%s generator: create counter map: %w", GenXDPLive, err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "gvspg_live", Type: ebpf.XDP, License: "Dual MIT/GPL",
		Instructions: liveProgram(lt, counter.FD())})
	if err != nil {
		counter.Close()
		return nil, nil, fmt.Errorf("%s generator: load XDP program: %w", GenXDPLive, err)
	}
	return prog, counter, nil
}

// chunk runs n frames and publishes the thread's counts.
func (g *liveGen) chunk(prog *ebpf.Program, counter *ebpf.Map, opts *ebpf.RunOptions, n int) error {
	opts.Repeat = uint32(n)
	if _, err := prog.Run(opts); err != nil {
		return fmt.Errorf("%s generator on %s: BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES (needs Linux >= 5.18): %w",
			GenXDPLive, g.r.cfg.Client, err)
	}
	var sent uint64
	if err := counter.Lookup(uint32(0), &sent); err != nil {
		return fmt.Errorf("%s generator: read counter: %w", GenXDPLive, err)
	}
	g.sent = sent
	g.ctr.v[CtrTxPackets] = sent
	g.ctr.v[CtrTxBytes] = sent * uint64(len(g.tpl.frame))
	g.ctr.publish()
	return nil
}

// loop generates until the run stops generating, paced at the thread's
// share of the run's rate (0: as fast as the kernel takes frames).
func (g *liveGen) loop(prog *ebpf.Program, counter *ebpf.Map, opts *ebpf.RunOptions) {
	r := g.r
	var epoch uint64
	var perNs float64
	var start int64
	var issued uint64
	for !r.stop.Load() && !r.genStop.Load() {
		if r.paused.Load() {
			time.Sleep(time.Millisecond)
			continue
		}
		now := r.clock.Now()
		if e := r.rateEpoch.Load(); e != epoch {
			epoch = e
			perNs = math.Float64frombits(r.rate.Load()) / float64(r.cfg.liveThreads()) / 1e9
			start, issued = now, 0
		}
		n := liveChunk
		if perNs > 0 {
			// at least a batch, or 100 µs worth at low rates, per call
			least := uint64(max(1, min(liveBatch, int(perNs*100e3))))
			due := uint64(float64(now-start) * perNs)
			if due < issued+least {
				wait := int64(float64(issued+least-due) / perNs)
				ts := unix.NsecToTimespec(max(wait, 10_000))
				_ = unix.Nanosleep(&ts, nil)
				continue
			}
			n = int(min(due-issued, liveChunk))
		}
		if err := g.chunk(prog, counter, opts, n); err != nil {
			r.warn(err)
			return
		}
		issued += uint64(n)
	}
}
