//go:build linux

package afpacket

import (
	"bytes"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
)

const waitFor = 5 * time.Second

// TestRx sends untagged and tagged frames from the peer and expects RxBurst
// to deliver exactly those bytes, tags included, whatever the device's VLAN
// offload setting.
func TestRx(t *testing.T) {
	for _, rxvlan := range []string{"on", "off"} {
		t.Run("rxvlan-"+rxvlan, func(t *testing.T) {
			l := newLab(t)
			if _, err := exec.LookPath("ethtool"); err == nil {
				l.ipA("ethtool", "-K", devA, "rxvlan", rxvlan)
				t.Logf("afp0: %s", strings.TrimSpace(l.ipA("sh", "-c", "ethtool -k "+devA+" | grep rx-vlan-offload")))
			} else if rxvlan == "off" {
				t.Skip("ethtool not installed: only the default VLAN offload is tested")
			}
			p := l.open(port.Config{}, Options{})
			peer := l.peer()
			src, dst := peer.mac, p.MAC()
			want := [][]byte{
				udp(t, src, dst, 1000, 2000, nil),              // padded to 60 bytes
				udp(t, src, dst, 1001, 2000, payload(100, 1)),  //
				udp(t, src, dst, 1002, 2000, payload(1472, 2)), // a full 1514-byte frame
				udp(t, src, dst, 1003, 2000, payload(200, 3), vlanTag{layers.EthernetTypeDot1Q, 3, 100}),
				udp(t, src, dst, 1004, 2000, payload(64, 4), vlanTag{layers.EthernetTypeDot1Q, 5, 0}), // priority tag
				udp(t, src, dst, 1005, 2000, payload(300, 5), // QinQ: the kernel strips the outer S-tag only
					vlanTag{layers.EthernetTypeQinQ, 1, 200}, vlanTag{layers.EthernetTypeDot1Q, 2, 300}),
				udp(t, src, dst, 1006, 2000, payload(1468, 6), vlanTag{layers.EthernetTypeDot1Q, 7, 4094}), // 1518 bytes
			}
			peer.send(want...)
			got := flat(collect(t, []port.Queue{p.Queue(0)}, waitFor, func(g [][][]byte) bool {
				return len(g[0]) >= len(want)
			}))
			sameFrames(t, "rx", got, want)

			var bytes uint64
			for _, f := range want {
				bytes += uint64(len(f))
			}
			c := p.Queue(0).Counters()
			if c.RxPackets.Load() != uint64(len(want)) || c.RxBytes.Load() != bytes || c.RxErrors.Load() != 0 {
				t.Errorf("counters rx %d packets %d bytes %d errors, want %d, %d, 0",
					c.RxPackets.Load(), c.RxBytes.Load(), c.RxErrors.Load(), len(want), bytes)
			}
			s := p.Stats()
			if s.RxPackets != uint64(len(want)) || s.RxBytes != bytes || s.RxDropped != 0 {
				t.Errorf("stats %+v, want %d packets, %d bytes, no drops", s, len(want), bytes)
			}
			if p.Queue(0).Alloc() == nil {
				t.Error("Alloc: pool exhausted after freeing every received buffer")
			}
		})
	}
}

// TestTx transmits frames (one from a foreign pool) and expects them on the
// peer byte for byte; neither they nor what the kernel sends out of the
// device come back on the port's queues.
func TestTx(t *testing.T) {
	for _, queues := range []int{1, 2} {
		t.Run(map[int]string{1: "one-queue", 2: "two-queues"}[queues], func(t *testing.T) {
			l := newLab(t)
			p := l.open(port.Config{Queues: queues}, Options{})
			peer := l.peer()
			var want [][]byte
			var wantBytes uint64
			foreign := pktbuf.NewPool(4, pktbuf.DefaultFrameSize)
			var qs []port.Queue
			for i := 0; i < queues; i++ {
				q := p.Queue(i)
				qs = append(qs, q)
				var bufs []*pktbuf.Buf
				for j := 0; j < 40; j++ {
					f := udp(t, p.MAC(), peer.mac, uint16(3000+i), uint16(4000+j), payload(10+j*37, byte(i*40+j)))
					pool := p.PacketQueue(i).Pool()
					if j == 7 {
						pool = foreign
					}
					b := pool.Get()
					if !b.CopyFrom(f) {
						t.Fatal("CopyFrom")
					}
					bufs = append(bufs, b)
					want = append(want, f)
					wantBytes += uint64(len(f))
				}
				if n := q.TxBurst(bufs); n != len(bufs) {
					t.Fatalf("queue %d: TxBurst took %d of %d", i, n, len(bufs))
				}
				q.Flush()
				if free, size := p.PacketQueue(i).Pool().Free(), p.PacketQueue(i).Pool().Size(); free != size {
					t.Errorf("queue %d: %d of %d buffers free after TxBurst", i, free, size)
				}
			}
			if foreign.Free() != foreign.Size() {
				t.Errorf("foreign pool: %d of %d buffers free after TxBurst", foreign.Free(), foreign.Size())
			}

			var got [][]byte
			for len(got) < len(want) {
				f := peer.recv(waitFor)
				if f == nil {
					break
				}
				got = append(got, f)
			}
			sameFrames(t, "peer rx", got, want)

			s := p.Stats()
			if s.TxPackets != uint64(len(want)) || s.TxBytes != wantBytes || s.TxDropped != 0 || s.TxErrors != 0 {
				t.Errorf("stats %+v, want %d tx packets, %d bytes, no drops or errors", s, len(want), wantBytes)
			}

			// The kernel of namespace A sends a datagram out of afp0 too (a
			// static neighbour spares the ARP; B does not own the address,
			// so nothing answers). Once the peer has it, everything sent
			// out of afp0 has passed the device's taps: a marker from the
			// peer must then be the only frame the port has seen.
			l.ipA("ip", "addr", "add", "10.77.0.1/24", "dev", devA)
			l.ipA("ip", "neigh", "add", "10.77.0.2", "lladdr", peer.mac.String(), "dev", devA, "nud", "permanent")
			l.in(l.nsA, func() {
				c, err := net.Dial("udp4", "10.77.0.2:9")
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := c.Write([]byte("from the kernel")); err != nil {
					t.Fatal(err)
				}
			})
			for {
				f := peer.recv(waitFor)
				if f == nil {
					t.Fatal("the peer never got the kernel's datagram")
				}
				if bytes.Contains(f, []byte("from the kernel")) {
					break
				}
			}
			marker := udp(t, peer.mac, p.MAC(), 9, 9, []byte("marker"))
			peer.send(marker)
			rx := flat(collect(t, qs, waitFor, func(g [][][]byte) bool { return contains(flat(g), marker) }))
			sameFrames(t, "port rx after tx", rx, [][]byte{marker})
		})
	}
}

// TestFanout opens two queues and sends many flows: together the queues
// receive every frame once, each flow on one queue only, and both get some.
func TestFanout(t *testing.T) {
	l := newLab(t)
	p := l.open(port.Config{Queues: 2}, Options{})
	if p.NumQueues() != 2 {
		t.Fatalf("NumQueues %d", p.NumQueues())
	}
	peer := l.peer()
	const flows, perFlow = 64, 4
	var want [][]byte
	flowOf := map[string]int{}
	for k := 0; k < perFlow; k++ {
		for f := 0; f < flows; f++ {
			fr := udp(t, peer.mac, p.MAC(), uint16(10000+f), 53, payload(20+k, byte(f)))
			want = append(want, fr)
			flowOf[string(fr)] = f
		}
	}
	peer.send(want...)
	qs := []port.Queue{p.Queue(0), p.Queue(1)}
	got := collect(t, qs, waitFor, func(g [][][]byte) bool { return len(g[0])+len(g[1]) >= len(want) })
	sameFrames(t, "fanout rx", flat(got), want)
	queueOf := map[int]int{}
	for qi, frames := range got {
		if len(frames) == 0 {
			t.Errorf("queue %d received nothing of %d flows", qi, flows)
		}
		for _, fr := range frames {
			f := flowOf[string(fr)]
			if prev, ok := queueOf[f]; ok && prev != qi {
				t.Errorf("flow %d seen on queues %d and %d", f, prev, qi)
			}
			queueOf[f] = qi
		}
	}
	t.Logf("queue 0: %d frames, queue 1: %d frames", len(got[0]), len(got[1]))
	if s := p.Stats(); s.RxPackets != uint64(len(want)) {
		t.Errorf("stats rx %d packets, want %d", s.RxPackets, len(want))
	}
}

// TestRxErrors sends a frame larger than a buffer: it is skipped and
// counted, and the next frame still arrives. Ring blocks too small for the
// MTU are refused at Open.
func TestRxErrors(t *testing.T) {
	l := newLab(t)
	l.ipA("ip", "link", "set", devA, "mtu", "9000")
	l.ipB("ip", "link", "set", devB, "mtu", "9000")
	var err error
	l.in(l.nsA, func() { _, err = OpenWith(port.Config{Name: "dp0", Device: devA}, Options{BlockSize: 8192}) })
	if err == nil || !strings.Contains(err.Error(), "too small for the MTU 9000 of afp0") {
		t.Errorf("open with 8 KiB blocks on a 9000-byte MTU: %v", err)
	}
	p := l.open(port.Config{}, Options{})
	if p.MTU() != 9000 {
		t.Errorf("MTU %d, want 9000", p.MTU())
	}
	peer := l.peer()
	big := udp(t, peer.mac, p.MAC(), 1, 2, payload(4000, 0))
	small := udp(t, peer.mac, p.MAC(), 1, 2, payload(10, 0))
	peer.send(big, small)
	got := flat(collect(t, []port.Queue{p.Queue(0)}, waitFor, func(g [][][]byte) bool { return len(g[0]) >= 1 }))
	sameFrames(t, "rx", got, [][]byte{small})
	if e := p.Stats().RxErrors; e != 1 {
		t.Errorf("RxErrors %d, want 1", e)
	}
}

// TestRingOverflow fills a tiny ring without reading it: the kernel's drops
// show up in Stats().RxDropped, and delivered + dropped = sent.
func TestRingOverflow(t *testing.T) {
	l := newLab(t)
	p := l.open(port.Config{RxRing: 64}, Options{BlockSize: 64 << 10}) // 2 blocks of 64 KiB
	peer := l.peer()
	const sent = 400
	for i := 0; i < sent; i++ {
		peer.send(udp(t, peer.mac, p.MAC(), uint16(i), 7, payload(1000, byte(i))))
	}
	var s port.Stats
	collect(t, []port.Queue{p.Queue(0)}, waitFor, func([][][]byte) bool {
		s = p.Stats()
		return s.RxPackets+s.RxDropped >= sent
	})
	if s.RxPackets+s.RxDropped != sent || s.RxDropped == 0 {
		t.Errorf("delivered %d + dropped %d, want %d with drops", s.RxPackets, s.RxDropped, sent)
	}
	if p.RingFreezes() == 0 && s.RxDropped > 0 {
		t.Log("kernel reported drops but no ring freeze")
	}
	t.Logf("delivered %d, dropped %d, ring freezes %d", s.RxPackets, s.RxDropped, p.RingFreezes())
}

// TestLinkAndClose checks LinkUp follows the carrier, and that Close is
// idempotent and leaves the queues inert.
func TestLinkAndClose(t *testing.T) {
	l := newLab(t)
	p := l.open(port.Config{Name: "dp7"}, Options{})
	if p.Name() != "dp7" || p.Driver() != "afpacket" || p.Device() != devA || len(p.MAC()) != 6 || p.MTU() != 1500 {
		t.Errorf("port %s driver %s device %s mac %s mtu %d", p.Name(), p.Driver(), p.Device(), p.MAC(), p.MTU())
	}
	if !p.LinkUp() {
		t.Error("LinkUp false with both veth ends up")
	}
	l.ipB("ip", "link", "set", devB, "down")
	deadline := time.Now().Add(waitFor)
	for p.LinkUp() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if p.LinkUp() {
		t.Error("LinkUp true with the peer down")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	q := p.Queue(0)
	if n := q.RxBurst(make([]*pktbuf.Buf, 4)); n != 0 {
		t.Errorf("RxBurst after Close: %d", n)
	}
	b := q.Alloc()
	if n := q.TxBurst([]*pktbuf.Buf{b}); n != 0 {
		t.Errorf("TxBurst after Close: %d", n)
	}
	if p.LinkUp() {
		t.Error("LinkUp after Close")
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(port.Config{Name: "dp9", Device: "gvs-nodev9"})
	if err == nil || !strings.Contains(err.Error(), "afpacket: open dp9: device gvs-nodev9") {
		t.Errorf("open of a missing device: %v", err)
	}
	_, err = Open(port.Config{})
	if err == nil {
		t.Error("open without a name succeeded")
	}
	_, err = OpenWith(port.Config{Name: "dp9"}, Options{BlockSize: 1000})
	if err == nil || !strings.Contains(err.Error(), "page size") {
		t.Errorf("open with a bad block size: %v", err)
	}
}

// TestRxCursorAndPoolExhaustion reads a block in bursts of three, runs the
// pool dry (the rest waits in the ring, nothing is dropped), then frees the
// buffers and gets the rest.
func TestRxCursorAndPoolExhaustion(t *testing.T) {
	l := newLab(t)
	p := l.open(port.Config{FrameCount: 8}, Options{})
	peer := l.peer()
	var want [][]byte
	for i := 0; i < 20; i++ {
		want = append(want, udp(t, peer.mac, p.MAC(), uint16(i), 99, payload(30+i, byte(i))))
	}
	peer.send(want...)
	q := p.Queue(0)
	var held []*pktbuf.Buf
	bufs := make([]*pktbuf.Buf, 3)
	deadline := time.Now().Add(waitFor)
	for len(held) < 8 && time.Now().Before(deadline) {
		n := q.RxBurst(bufs)
		held = append(held, bufs[:n]...)
	}
	if len(held) != 8 {
		t.Fatalf("held %d buffers, want the pool's 8", len(held))
	}
	if n := q.RxBurst(bufs); n != 0 {
		t.Fatalf("RxBurst with the pool empty returned %d", n)
	}
	var got [][]byte
	for _, b := range held {
		got = append(got, append([]byte(nil), b.Bytes()...))
		b.Free()
	}
	rest := flat(collect(t, []port.Queue{q}, waitFor, func(g [][][]byte) bool { return len(got)+len(g[0]) >= len(want) }))
	sameFrames(t, "rx", append(got, rest...), want)
	if s := p.Stats(); s.RxPackets != 20 || s.RxDropped != 0 || s.RxErrors != 0 {
		t.Errorf("stats %+v, want 20 packets, no drops or errors", s)
	}
}

// TestLinkFlap takes the port's device down and up: the sockets' ENETDOWN
// is cleared by Flush (no POLLERR left for an idle worker to spin on),
// transmissions while down are refused, and both fanout queues receive
// again afterwards.
func TestLinkFlap(t *testing.T) {
	l := newLab(t)
	p := l.open(port.Config{Queues: 2}, Options{})
	peer := l.peer()
	qs := []port.Queue{p.Queue(0), p.Queue(1)}
	pollErr := func(q port.Queue) bool {
		fds := []unix.PollFd{{Fd: int32(q.PollFD()), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, 0); err != nil {
			t.Fatal(err)
		}
		return fds[0].Revents&unix.POLLERR != 0
	}

	l.ipA("ip", "link", "set", devA, "down")
	bufs := make([]*pktbuf.Buf, 8)
	for i, q := range qs {
		if !pollErr(q) {
			t.Logf("queue %d: no POLLERR after link down", i)
		}
		if n := q.RxBurst(bufs); n != 0 {
			t.Fatalf("queue %d: RxBurst returned %d on a down link", i, n)
		}
		q.Flush()
		if pollErr(q) {
			t.Errorf("queue %d: POLLERR still set after an idle Flush", i)
		}
		b := q.Alloc()
		b.CopyFrom(udp(t, p.MAC(), peer.mac, 1, 1, nil))
		if n := port.TxOwned(q, []*pktbuf.Buf{b}); n != 0 {
			t.Errorf("queue %d: TxBurst on a down link took %d", i, n)
		}
		if d := q.Counters().TxDropped.Load(); d != 1 {
			t.Errorf("queue %d: TxDropped %d, want 1", i, d)
		}
	}

	l.ipA("ip", "link", "set", devA, "up")
	deadline := time.Now().Add(waitFor)
	for !p.LinkUp() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	var want [][]byte
	for f := 0; f < 64; f++ {
		want = append(want, udp(t, peer.mac, p.MAC(), uint16(20000+f), 53, payload(16, byte(f))))
	}
	peer.send(want...)
	got := collect(t, qs, waitFor, func(g [][][]byte) bool { return len(g[0])+len(g[1]) >= len(want) })
	sameFrames(t, "rx after link flap", flat(got), want)
	if len(got[0]) == 0 || len(got[1]) == 0 {
		t.Errorf("after the flap queue 0 got %d frames, queue 1 %d: fanout not restored", len(got[0]), len(got[1]))
	}
}

// TestTxErrors sends a burst with a frame too long for the MTU in the
// middle: the kernel refuses that one (TxErrors, freed), the others go.
func TestTxErrors(t *testing.T) {
	l := newLab(t)
	p := l.open(port.Config{}, Options{})
	peer := l.peer()
	q := p.PacketQueue(0)
	good1 := udp(t, p.MAC(), peer.mac, 1, 2, payload(100, 1))
	big := udp(t, p.MAC(), peer.mac, 1, 2, payload(1600, 2))
	good2 := udp(t, p.MAC(), peer.mac, 1, 2, payload(100, 3))
	var bufs []*pktbuf.Buf
	for _, f := range [][]byte{good1, big, good2} {
		b := q.Alloc()
		b.CopyFrom(f)
		bufs = append(bufs, b)
	}
	if n := q.TxBurst(bufs); n != 3 {
		t.Fatalf("TxBurst took %d of 3", n)
	}
	if q.Pool().Free() != q.Pool().Size() {
		t.Errorf("%d of %d buffers free after TxBurst", q.Pool().Free(), q.Pool().Size())
	}
	var got [][]byte
	for len(got) < 2 {
		f := peer.recv(waitFor)
		if f == nil {
			break
		}
		got = append(got, f)
	}
	sameFrames(t, "peer rx", got, [][]byte{good1, good2})
	s := p.Stats()
	if s.TxPackets != 2 || s.TxBytes != uint64(len(good1)+len(good2)) || s.TxErrors != 1 || s.TxDropped != 0 {
		t.Errorf("stats %+v, want 2 packets of %d bytes, 1 error", s, len(good1)+len(good2))
	}
}
