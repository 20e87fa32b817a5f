// Command xskfwd is the benchmark's userspace limit: a zero-work forwarder
// over the AF_XDP driver GVS uses (dataplane/port/afxdp, same rings, frame
// counts, wakeups and copy-mode path). Per queue pair, one goroutine pinned
// to a CPU receives a burst on one port, rewrites the Ethernet addresses
// and transmits it on the other, both directions; nothing else. Idle
// behaviour is GVS's: "busy" spins, "adaptive" sleeps in poll() after 32
// empty loops, so the ratio GVS/xskfwd isolates what GVS's own work costs.
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
	flag.IntVar(&o.burst, "burst", 32, "packets per burst")
	flag.IntVar(&o.ring, "ring", 2048, "ring size")
	flag.IntVar(&o.frames, "frames", 8192, "frames per queue")
	flag.IntVar(&o.rtprio, "rt-priority", 0, ">0: SCHED_FIFO priority of the forwarding threads")
	flag.Parse()
	if err := o.run(); err != nil {
		fmt.Fprintln(os.Stderr, "xskfwd:", err)
		os.Exit(1)
	}
}

type options struct {
	netns, a, b, aPeer, bPeer, cpus, idle string
	queues, burst, ring, frames, rtprio   int
}

func (o *options) run() error {
	if o.a == "" || o.b == "" {
		return errors.New("give --a and --b")
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
	open := func(dev string) (port.Port, error) {
		var p port.Port
		err := nsutil.Do(o.netns, func() (err error) {
			p, err = afxdp.Open(port.Config{Name: dev, Device: dev, Queues: o.queues, RxRing: o.ring, TxRing: o.ring, FrameCount: o.frames, ZeroCopy: "auto"})
			return err
		})
		return p, err
	}
	if o.netns == "" {
		open = func(dev string) (port.Port, error) {
			return afxdp.Open(port.Config{Name: dev, Device: dev, Queues: o.queues, RxRing: o.ring, TxRing: o.ring, FrameCount: o.frames, ZeroCopy: "auto"})
		}
	}
	pa, err := open(o.a)
	if err != nil {
		return err
	}
	defer pa.Close()
	pb, err := open(o.b)
	if err != nil {
		return err
	}
	defer pb.Close()

	var stop atomic.Bool
	var fwd atomic.Uint64
	var wg sync.WaitGroup
	for q := 0; q < o.queues; q++ {
		cpu := -1
		if len(cpus) > 0 {
			cpu = cpus[q%len(cpus)]
		}
		l := &loop{
			qa: pa.Queue(q), qb: pb.Queue(q), burst: o.burst, busy: o.idle == "busy",
			toB: macs(peerB, pb.MAC()), toA: macs(peerA, pa.MAC()), stop: &stop, fwd: &fwd,
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.run(cpu, o.rtprio)
		}()
	}
	fmt.Printf("xskfwd: %s <-> %s, %d queue(s), idle %s\n", o.a, o.b, o.queues, o.idle)
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
	toA, toB [12]byte
	stop     *atomic.Bool
	fwd      *atomic.Uint64
	bufs     [256]*pktbuf.Buf
}

func (l *loop) run(cpu, rtprio int) {
	runtime.LockOSThread()
	if cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		_ = unix.SchedSetaffinity(0, &set)
	}
	if rtprio > 0 {
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: 1, Priority: uint32(rtprio)}
		_ = unix.SchedSetAttr(0, &attr, 0)
	}
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
	port.TxOwned(out, l.bufs[:n])
	clear(l.bufs[:n])
	return n
}
