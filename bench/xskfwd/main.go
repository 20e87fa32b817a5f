// Command xskfwd is the benchmark's userspace limit: a zero-work forwarder
// over the AF_XDP driver GVS uses (dataplane/port/afxdp, same rings, frame
// counts, wakeups and copy-mode path). Per queue pair, one goroutine pinned
// to a CPU receives a burst on one port, rewrites the Ethernet addresses
// and transmits it on the other, both directions; nothing else.
//
// Its defaults are the best this machine kind allows, so the limit GVS is
// held against is the real one: need_wakeup with poll() when idle
// ("adaptive": a sleep in poll() after 32 empty loops, never a busy loop
// that starves the kernel's receive processing on a shared CPU), the
// thread SCHED_FIFO above the kernel's receive threads on its CPU, rings
// 2048 (rx) / 4096 (tx), bursts of 64, 16384 frames per queue; the
// driver itself raises each socket's send buffer to 4 MiB (SO_SNDBUFFORCE)
// and its copy-mode transmit budget per wakeup (XDP_MAX_TX_SKB_BUDGET,
// Linux >= 6.17) to 256. Queue i of both ports shares one UMEM
// (port.Config.Share, XDP_SHARED_UMEM): a frame is rewritten in place and
// sent out of the other port from the frame it arrived in, with no copy
// (--shared-umem=false gives each port its own UMEM, and TxBurst copies
// each frame, as GVS did before its ports shared them).
//
// --work-ns N makes it a forwarder with N ns of its own work per packet:
// after the rewrite it spins on the clock for N ns per packet of the burst
// before transmitting it, as a forwarder whose code costs N ns more per
// packet would. The benchmark uses it to tell how much of a slower
// forwarder's rate the kernel's share on the same CPU explains (the
// copy-mode path, the receiver's wake-ups): a balancer's code cannot be
// cheaper than nothing, but its cost can be matched.
//
//	xskfwd --netns gvsb-lb --a l0 --b l1 --a-peer MAC --b-peer MAC --queues 1 --cpus 1
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/afxdp"
	"github.com/gvs-lb/gvs/internal/nsutil"
)

func main() {
	var o options
	flag.StringVar(&o.netns, "netns", "", "network namespace of the interfaces")
	flag.StringVar(&o.a, "a", "", "first interface")
	flag.StringVar(&o.b, "b", "", "second interface")
	flag.StringVar(&o.aPeer, "a-peer", "", "MAC of the station behind a")
	flag.StringVar(&o.bPeer, "b-peer", "", "MAC of the station behind b")
	flag.IntVar(&o.queues, "queues", 1, "queue pairs (one goroutine each)")
	flag.StringVar(&o.cpus, "cpus", "", "CPUs to pin queue goroutines to, e.g. 1 or 0,1")
	flag.StringVar(&o.idle, "idle", "adaptive", "busy or adaptive")
	flag.IntVar(&o.burst, "burst", 64, "packets per burst")
	flag.IntVar(&o.ring, "ring", 2048, "rx (and fill) ring size")
	flag.IntVar(&o.txRing, "tx-ring", 4096, "tx (and completion) ring size")
	flag.IntVar(&o.frames, "frames", 16384, "frames per queue")
	flag.BoolVar(&o.shared, "shared-umem", true, "one UMEM per queue for both ports (no copy between them)")
	flag.IntVar(&o.workNs, "work-ns", 0, "nanoseconds of spinning per packet before the transmit (0: none)")
	flag.IntVar(&o.rtprio, "rt-priority", 50, "SCHED_FIFO priority of the forwarding threads (0: normal scheduling)")
	flag.Parse()
	if err := o.run(); err != nil {
		fmt.Fprintln(os.Stderr, "xskfwd:", err)
		os.Exit(1)
	}
}

type options struct {
	netns, a, b, aPeer, bPeer, cpus, idle string
	queues, burst, ring, txRing, frames   int
	rtprio, workNs                        int
	shared                                bool
}

func (o *options) run() error {
	if o.a == "" || o.b == "" {
		return errors.New("give --a and --b")
	}
	if o.idle != "busy" && o.idle != "adaptive" {
		return fmt.Errorf("--idle %q: use adaptive or busy", o.idle)
	}
	if o.idle == "busy" && o.rtprio > 0 {
		// measured: a SCHED_FIFO spinner on a CPU that also runs the veth
		// receive processing forwards almost nothing
		return errors.New("--idle busy with SCHED_FIFO starves the kernel's receive processing on the forwarding CPU: use --idle adaptive, or --rt-priority 0 on an isolated core")
	}
	if o.workNs < 0 || o.workNs > 1000000 {
		return fmt.Errorf("--work-ns %d: use 0-1000000", o.workNs)
	}
	if o.burst < 1 || o.burst > 256 {
		return fmt.Errorf("--burst %d: use 1-256", o.burst)
	}
	peerA, err := net.ParseMAC(o.aPeer)
	if err != nil {
		return fmt.Errorf("--a-peer: %w", err)
	}
	peerB, err := net.ParseMAC(o.bPeer)
	if err != nil {
		return fmt.Errorf("--b-peer: %w", err)
	}
	var cpus []int
	for _, f := range strings.Split(o.cpus, ",") {
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return fmt.Errorf("--cpus %q: %w", o.cpus, err)
		}
		cpus = append(cpus, n)
	}
	pcfg := func(dev string, share port.Port) port.Config {
		c := port.Config{Name: dev, Device: dev, Queues: o.queues, RxRing: o.ring, TxRing: o.txRing, FrameCount: o.frames, ZeroCopy: "auto"}
		if share != nil {
			c.Share, c.FrameCount = share, 2*o.frames
		}
		return c
	}
	open := func(dev string, share port.Port) (port.Port, error) {
		var p port.Port
		err := nsutil.Do(o.netns, func() (err error) {
			p, err = afxdp.Open(pcfg(dev, share))
			return err
		})
		return p, err
	}
	if o.netns == "" {
		open = func(dev string, share port.Port) (port.Port, error) { return afxdp.Open(pcfg(dev, share)) }
	}
	pa, err := open(o.a, nil)
	if err != nil {
		return err
	}
	defer pa.Close()
	var share port.Port
	if o.shared {
		share = pa
	}
	pb, err := open(o.b, share)
	if err != nil {
		return err
	}
	defer pb.Close()

	var stop atomic.Bool
	var fwd atomic.Uint64
	var wg sync.WaitGroup
	errs := make(chan error, o.queues)
	for q := 0; q < o.queues; q++ {
		cpu := -1
		if len(cpus) > 0 {
			cpu = cpus[q%len(cpus)]
		}
		l := &loop{
			qa: pa.Queue(q), qb: pb.Queue(q), burst: o.burst, busy: o.idle == "busy", work: time.Duration(o.workNs),
			toB: macs(peerB, pb.MAC()), toA: macs(peerA, pa.MAC()), stop: &stop, fwd: &fwd,
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.run(cpu, o.rtprio, errs)
		}()
	}
	for q := 0; q < o.queues; q++ {
		if err := <-errs; err != nil {
			stop.Store(true)
			wg.Wait()
			return err
		}
	}
	umem := "one UMEM per queue shared by both ports (frames rewritten in place)"
	if !o.shared {
		umem = "a UMEM per queue and port (frames copied between the ports)"
	}
	fmt.Printf("xskfwd: %s <-> %s, %d queue(s), idle %s, SCHED_FIFO %d, burst %d, rings %d/%d, %d frames per port, work %d ns per packet; %s\n",
		o.a, o.b, o.queues, o.idle, o.rtprio, o.burst, o.ring, o.txRing, o.frames, o.workNs, umem)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	stop.Store(true)
	wg.Wait()
	fmt.Printf("xskfwd: forwarded %d packets\n", fwd.Load())
	return nil
}

// macs is the 12-byte Ethernet address pair written into forwarded frames.
func macs(dst, src net.HardwareAddr) [12]byte {
	var m [12]byte
	copy(m[:6], dst)
	copy(m[6:], src)
	return m
}

type loop struct {
	qa, qb   port.Queue
	burst    int
	busy     bool
	work     time.Duration // per packet (--work-ns)
	toA, toB [12]byte
	stop     *atomic.Bool
	fwd      *atomic.Uint64
	bufs     [256]*pktbuf.Buf
}

// run is one queue pair's loop; it reports on errs whether its thread got
// its CPU and priority.
func (l *loop) run(cpu, rtprio int, errs chan<- error) {
	runtime.LockOSThread()
	if cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			errs <- fmt.Errorf("pin to CPU %d: %w", cpu, err)
			return
		}
	}
	if rtprio > 0 {
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: uint32(rtprio)}
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			errs <- fmt.Errorf("SCHED_FIFO priority %d: %w (needs CAP_SYS_NICE; --rt-priority 0 runs without)", rtprio, err)
			return
		}
	}
	errs <- nil
	fds := []unix.PollFd{{Fd: int32(l.qa.PollFD()), Events: unix.POLLIN}, {Fd: int32(l.qb.PollFD()), Events: unix.POLLIN}}
	idle := 0
	var n uint64
	for !l.stop.Load() {
		got := l.pass(l.qa, l.qb, &l.toB) + l.pass(l.qb, l.qa, &l.toA)
		if got > 0 {
			n += uint64(got)
			idle = 0
			continue
		}
		l.qa.Flush()
		l.qb.Flush()
		if l.fwd != nil && n > 0 {
			l.fwd.Add(n)
			n = 0
		}
		if idle++; l.busy || idle < 32 {
			continue
		}
		ts := unix.NsecToTimespec(int64(10 * time.Millisecond))
		fds[0].Revents, fds[1].Revents = 0, 0
		_, _ = unix.Ppoll(fds, &ts, nil)
	}
	l.fwd.Add(n)
}

// pass moves one burst from in to out, rewriting the Ethernet addresses.
func (l *loop) pass(in, out port.Queue, m *[12]byte) int {
	n := in.RxBurst(l.bufs[:l.burst])
	if n == 0 {
		return 0
	}
	for _, b := range l.bufs[:n] {
		if p := b.Bytes(); len(p) >= 12 {
			copy(p[:12], m[:])
		}
	}
	if l.work > 0 { // --work-ns
		for start, d := time.Now(), time.Duration(n)*l.work; time.Since(start) < d; {
		}
	}
	port.TxOwned(out, l.bufs[:n])
	clear(l.bufs[:n])
	return n
}
