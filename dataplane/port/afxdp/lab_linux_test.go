//go:build linux

// A throw-away lab for the driver's tests: a network namespace holding a
// veth pair, xdp0 (the port under test) and peer0 (the wire, driven with
// AF_PACKET sockets). The test's goroutine is locked to a thread that sits
// in the namespace for the whole test; everything is torn down in
// t.Cleanup, also when the test fails half-way.
package afxdp

import (
	"bytes"
	"encoding/binary"
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
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"

	"github.com/gvs-lb/gvs/internal/testenv"
)

const (
	labDev  = "xdp0"
	labPeer = "peer0"
	waitFor = 5 * time.Second
)

var labSeq atomic.Int32

type lab struct {
	ns string
	nl *netlink.Handle
}

// newLab creates the namespace with a veth pair of the given queue count,
// both ends up and IPv6 off (no neighbour discovery noise), and moves the
// calling goroutine's thread into it.
func newLab(t testing.TB, queues int) *lab {
	t.Helper()
	testenv.RequireRoot(t) // network namespaces, veths and XDP programs
	l := &lab{ns: fmt.Sprintf("gvsxdp-%d-%d", os.Getpid(), labSeq.Add(1))}
	run(t, "ip", "netns", "add", l.ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", l.ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", l.ns, err, out)
		}
	})
	run(t, "ip", "netns", "exec", l.ns, "sysctl", "-q", "-w",
		"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	q := fmt.Sprint(queues)
	run(t, "ip", "-n", l.ns, "link", "add", "name", labDev, "numtxqueues", q, "numrxqueues", q,
		"type", "veth", "peer", "name", labPeer, "numtxqueues", q, "numrxqueues", q)
	run(t, "ip", "-n", l.ns, "link", "set", "dev", labDev, "up")
	run(t, "ip", "-n", l.ns, "link", "set", "dev", labPeer, "up")

	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("current netns: %v", err)
	}
	target, err := netns.GetFromName(l.ns)
	if err != nil {
		t.Fatalf("open netns %s: %v", l.ns, err)
	}
	if err := netns.Set(target); err != nil {
		t.Fatalf("enter netns %s: %v", l.ns, err)
	}
	t.Cleanup(func() {
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it dies with the goroutine.
			t.Errorf("return to the original netns: %v", err)
		} else {
			runtime.UnlockOSThread()
		}
		orig.Close()
		target.Close()
	})
	if l.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
		t.Fatalf("netlink: %v", err)
	}
	t.Cleanup(l.nl.Close)
	return l
}

func run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// open opens the port under test and closes it at cleanup.
func (l *lab) open(t testing.TB, cfg port.Config) *Port {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "dp0"
	}
	if cfg.Device == "" {
		cfg.Device = labDev
	}
	p, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func (l *lab) link(t testing.TB, name string) netlink.Link {
	t.Helper()
	lk, err := l.nl.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return lk
}

// packetSock is an AF_PACKET socket on one interface of the lab.
type packetSock struct {
	fd  int
	mac net.HardwareAddr
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (l *lab) packet(t testing.TB, name string) *packetSock {
	t.Helper()
	lk := l.link(t, name)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		t.Fatalf("AF_PACKET socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: lk.Attrs().Index}); err != nil {
		t.Fatalf("bind AF_PACKET to %s: %v", name, err)
	}
	return &packetSock{fd: fd, mac: lk.Attrs().HardwareAddr}
}

func (s *packetSock) send(t testing.TB, frame []byte) {
	t.Helper()
	if _, err := unix.Write(s.fd, frame); err != nil {
		t.Fatalf("AF_PACKET send: %v", err)
	}
}

// recv collects incoming frames containing marker until want arrived or
// the deadline passed, calling idle (to flush the sender) between polls.
func (s *packetSock) recv(t testing.TB, marker []byte, want int, idle func()) [][]byte {
	t.Helper()
	var got [][]byte
	buf := make([]byte, 4096)
	deadline := time.Now().Add(waitFor)
	for len(got) < want && time.Now().Before(deadline) {
		if idle != nil {
			idle()
		}
		pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, 10); err != nil && err != unix.EINTR {
			t.Fatalf("poll: %v", err)
		}
		for {
			n, from, err := unix.Recvfrom(s.fd, buf, unix.MSG_DONTWAIT)
			if err != nil {
				break
			}
			if sll, ok := from.(*unix.SockaddrLinklayer); ok && sll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			if bytes.Contains(buf[:n], marker) {
				got = append(got, append([]byte(nil), buf[:n]...))
			}
		}
	}
	return got
}

// rxResult is what rxUntil saw.
type rxResult struct {
	frames [][]byte // frames containing the marker, in arrival order per queue
	queue  []int    // the queue each of frames arrived on
	total  int      // all packets received, marked or not
	bytes  int      // their bytes
}

// rxUntil polls the queues until want frames containing marker arrived or
// the deadline passed, checking every buffer's metadata and freeing it.
func rxUntil(t testing.TB, qs []*Queue, marker []byte, want int) rxResult {
	t.Helper()
	var res rxResult
	bufs := make([]*pktbuf.Buf, 32)
	pfds := make([]unix.PollFd, len(qs))
	deadline := time.Now().Add(waitFor)
	for len(res.frames) < want && time.Now().Before(deadline) {
		got := 0
		for qi, q := range qs {
			n := q.RxBurst(bufs)
			got += n
			for _, b := range bufs[:n] {
				if int(b.Queue) != qi {
					t.Errorf("buffer from queue %d says Queue %d", qi, b.Queue)
				}
				if b.Headroom() != pktbuf.Headroom {
					t.Errorf("received packet has %d bytes of headroom, want %d", b.Headroom(), pktbuf.Headroom)
				}
				if b.Pool() != q.Pool() {
					t.Errorf("received buffer not from the queue's pool")
				}
				res.total++
				res.bytes += b.Len()
				if bytes.Contains(b.Bytes(), marker) {
					res.frames = append(res.frames, append([]byte(nil), b.Bytes()...))
					res.queue = append(res.queue, qi)
				}
				b.Free()
			}
		}
		if got == 0 {
			// Sleep on the sockets, not on a timer: this also checks PollFD.
			for i, q := range qs {
				pfds[i] = unix.PollFd{Fd: int32(q.PollFD()), Events: unix.POLLIN}
			}
			if _, err := unix.Poll(pfds, 10); err != nil && err != unix.EINTR {
				t.Fatalf("poll: %v", err)
			}
		}
	}
	return res
}

// udpFrame builds an Ethernet/IPv4/UDP frame whose payload is marker, the
// sequence number and padding up to size bytes of payload.
func udpFrame(t testing.TB, src, dst net.HardwareAddr, sport uint16, marker []byte, seq, size int) []byte {
	t.Helper()
	payload := make([]byte, max(size, len(marker)+4))
	copy(payload, marker)
	binary.BigEndian.PutUint32(payload[len(marker):], uint32(seq))
	for i := len(marker) + 4; i < len(payload); i++ {
		payload[i] = byte(i + seq)
	}
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IPv4(198, 18, 0, 1), DstIP: net.IPv4(198, 18, 0, 2)}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: 9}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	sb := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(sb, opts, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatalf("build frame: %v", err)
	}
	return sb.Bytes()
}

// checkUDP decodes frame with gopacket (which also checks it is well formed)
// and returns its UDP payload.
func checkUDP(t testing.TB, frame []byte) []byte {
	t.Helper()
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("frame does not decode: %v", el.Error())
	}
	udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if !ok {
		t.Fatalf("frame has no UDP layer: %v", pkt)
	}
	return udp.Payload
}

// waitTrue polls cond until it holds or the deadline passes.
func waitTrue(cond func() bool) bool {
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}
