//go:build linux

package afpacket

// Test lab: two throw-away network namespaces joined by a veth pair. The
// driver runs on afp0 in namespace A; namespace B holds afp1 and a raw
// AF_PACKET socket (the peer) that plays the wire. IPv6 is off in both so
// the kernels stay silent unless asked.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"

	"github.com/gvs-lb/gvs/internal/testenv"
)

const (
	devA = "afp0"
	devB = "afp1"
)

var labSeq atomic.Int32

type lab struct {
	t            testing.TB
	nameA, nameB string
	nsA, nsB     netns.NsHandle
}

func needRoot(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t) // network namespaces, veth pairs, tc filters and AF_PACKET sockets
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newLab creates the namespaces and the veth pair, both ends up.
func newLab(t testing.TB) *lab {
	t.Helper()
	needRoot(t)
	n := labSeq.Add(1)
	l := &lab{
		t:     t,
		nameA: fmt.Sprintf("gvsafp-%d-%d-a", os.Getpid(), n),
		nameB: fmt.Sprintf("gvsafp-%d-%d-b", os.Getpid(), n),
	}
	for _, name := range []string{l.nameA, l.nameB} {
		run(t, "ip", "netns", "add", name)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", name, err, out)
			}
		})
		run(t, "ip", "netns", "exec", name, "sysctl", "-qw",
			"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	run(t, "ip", "-n", l.nameA, "link", "add", devA, "type", "veth", "peer", "name", devB, "netns", l.nameB)
	run(t, "ip", "-n", l.nameA, "link", "set", devA, "up")
	run(t, "ip", "-n", l.nameB, "link", "set", devB, "up")
	var err error
	if l.nsA, err = netns.GetFromName(l.nameA); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.nsA.Close() })
	if l.nsB, err = netns.GetFromName(l.nameB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.nsB.Close() })
	return l
}

// ipA and ipB run a command in namespace A or B.
func (l *lab) ipA(args ...string) string {
	return run(l.t, append([]string{"ip", "netns", "exec", l.nameA}, args...)...)
}

func (l *lab) ipB(args ...string) string {
	return run(l.t, append([]string{"ip", "netns", "exec", l.nameB}, args...)...)
}

// in runs f on an OS thread switched into ns.
func (l *lab) in(ns netns.NsHandle, f func()) {
	l.t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		l.t.Fatalf("get current netns: %v", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		l.t.Fatalf("enter netns: %v", err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// Keep the thread locked: it dies with this goroutine rather
			// than serving others from the wrong namespace.
			l.t.Errorf("leave netns: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}()
	f()
}

// open opens the driver on afp0 in namespace A; the test closes it.
func (l *lab) open(cfg port.Config, opt Options) *Port {
	l.t.Helper()
	return l.openIn(l.nsA, devA, cfg, opt)
}

// openIn opens the driver on dev in ns; the test closes it.
func (l *lab) openIn(ns netns.NsHandle, dev string, cfg port.Config, opt Options) *Port {
	l.t.Helper()
	if cfg.Name == "" {
		cfg.Name = "dp0"
	}
	if cfg.Device == "" {
		cfg.Device = dev
	}
	var p *Port
	var err error
	l.in(ns, func() { p, err = OpenWith(cfg, opt) })
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() {
		if err := p.Close(); err != nil {
			l.t.Errorf("close: %v", err)
		}
	})
	return p
}

// peer is a raw socket on afp1 in namespace B.
type peer struct {
	t   testing.TB
	fd  int
	mac net.HardwareAddr
	buf []byte
}

func (l *lab) peer() *peer {
	l.t.Helper()
	p := &peer{t: l.t, fd: -1, buf: make([]byte, 65536)}
	l.in(l.nsB, func() {
		ifi, err := net.InterfaceByName(devB)
		if err != nil {
			l.t.Fatal(err)
		}
		p.mac = ifi.HardwareAddr
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			l.t.Fatal(err)
		}
		p.fd = fd
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			l.t.Fatal(err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			l.t.Fatal(err)
		}
	})
	l.t.Cleanup(func() { unix.Close(p.fd) })
	return p
}

func (p *peer) send(frames ...[]byte) {
	p.t.Helper()
	for _, f := range frames {
		if _, err := unix.Write(p.fd, f); err != nil {
			p.t.Fatalf("peer send %d bytes: %v", len(f), err)
		}
	}
}

// recv returns the next frame that arrives within timeout, or nil.
func (p *peer) recv(timeout time.Duration) []byte {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left < 0 {
			return nil
		}
		fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
			p.t.Fatalf("peer poll: %v", err)
		}
		n, _, err := unix.Recvfrom(p.fd, p.buf, unix.MSG_DONTWAIT)
		if err == unix.EAGAIN {
			continue
		}
		if err != nil {
			p.t.Fatalf("peer recv: %v", err)
		}
		return append([]byte(nil), p.buf[:n]...)
	}
}

// collect receives from qs until done says so or timeout passes, copying
// every frame and freeing its buffer; it returns the frames per queue.
func collect(t testing.TB, qs []port.Queue, timeout time.Duration, done func(got [][][]byte) bool) [][][]byte {
	t.Helper()
	got := make([][][]byte, len(qs))
	bufs := make([]*pktbuf.Buf, 32)
	fds := make([]unix.PollFd, len(qs))
	for i, q := range qs {
		fds[i] = unix.PollFd{Fd: int32(q.PollFD()), Events: unix.POLLIN}
	}
	deadline := time.Now().Add(timeout)
	for !done(got) && time.Now().Before(deadline) {
		total := 0
		for i, q := range qs {
			n := q.RxBurst(bufs)
			for _, b := range bufs[:n] {
				if b.Len() <= b.Pool().FrameSize()-pktbuf.Headroom && b.Headroom() != pktbuf.Headroom {
					t.Errorf("frame of %d bytes at offset %d, want headroom %d", b.Len(), b.Headroom(), pktbuf.Headroom)
				}
				if int(b.Queue) != i {
					t.Errorf("buffer of queue %d says queue %d", i, b.Queue)
				}
				got[i] = append(got[i], append([]byte(nil), b.Bytes()...))
				b.Free()
			}
			total += n
		}
		if total == 0 {
			for i := range fds {
				fds[i].Revents = 0
			}
			if _, err := unix.Poll(fds, 5); err != nil && err != unix.EINTR {
				t.Fatalf("poll: %v", err)
			}
		}
	}
	return got
}

// flat joins the frames of all queues.
func flat(perQueue [][][]byte) [][]byte {
	var all [][]byte
	for _, fs := range perQueue {
		all = append(all, fs...)
	}
	return all
}

func contains(frames [][]byte, f []byte) bool {
	for _, g := range frames {
		if bytes.Equal(g, f) {
			return true
		}
	}
	return false
}

// sameFrames fails t unless got and want hold the same frames (as
// multisets: frames sent from one thread may be reordered across CPUs).
func sameFrames(t testing.TB, what string, got, want [][]byte) {
	t.Helper()
	count := map[string]int{}
	for _, f := range want {
		count[string(f)]++
	}
	for _, f := range got {
		count[string(f)]--
	}
	for f, c := range count {
		switch {
		case c > 0:
			t.Errorf("%s: missing %d× frame (%d bytes):\n%s", what, c, len(f), describe([]byte(f)))
		case c < 0:
			t.Errorf("%s: unexpected %d× frame (%d bytes):\n%s", what, -c, len(f), describe([]byte(f)))
		}
	}
}

func describe(f []byte) string {
	return gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default).String()
}

// frame serialises ls with lengths and checksums fixed.
func frame(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// udp builds an Ethernet/[802.1Q tags]/IPv4/UDP frame. Each tag is given
// as the EtherType announcing it and the tag itself.
func udp(t testing.TB, src, dst net.HardwareAddr, sport, dport uint16, payload []byte, tags ...vlanTag) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	ls := []gopacket.SerializableLayer{eth}
	for i, tag := range tags {
		if i == 0 {
			eth.EthernetType = tag.tpid
		}
		q := &layers.Dot1Q{Priority: tag.pcp, VLANIdentifier: tag.vid, Type: layers.EthernetTypeIPv4}
		if i+1 < len(tags) {
			q.Type = tags[i+1].tpid
		}
		ls = append(ls, q)
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IPv4(192, 0, 2, 1), DstIP: net.IPv4(198, 51, 100, 1)}
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := u.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	ls = append(ls, ip, u, gopacket.Payload(payload))
	return frame(t, ls...)
}

type vlanTag struct {
	tpid layers.EthernetType
	pcp  uint8
	vid  uint16
}

func payload(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i)
	}
	return p
}
