package dataplane

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
)

// chanKNI is a KNI device in memory: the test plays the kernel.
type chanKNI struct {
	in     chan []byte
	mu     sync.Mutex
	wrote  [][]byte
	closed chan struct{}
	once   sync.Once
}

func newChanKNI() *chanKNI {
	return &chanKNI{in: make(chan []byte, 16), closed: make(chan struct{})}
}

func (k *chanKNI) Name() string { return "dp0.kni" }
func (k *chanKNI) Read(p []byte) (int, error) {
	select {
	case f := <-k.in:
		return copy(p, f), nil
	case <-k.closed:
		return 0, net.ErrClosed
	}
}
func (k *chanKNI) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.wrote = append(k.wrote, append([]byte(nil), p...))
	return len(p), nil
}
func (k *chanKNI) Close() error { k.once.Do(func() { close(k.closed) }); return nil }
func (k *chanKNI) written() [][]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.wrote
}

func newKNITestDP(t *testing.T, rate int) (*testDP, *chanKNI) {
	k := newChanKNI()
	p0 := mem.New(port.Config{Name: "dp0", Queues: 1}, macDP0)
	p1 := mem.New(port.Config{Name: "dp1", Queues: 1}, macDP1)
	d, err := New(Options{Workers: 1, Forward4: true, Forward6: true, ConnCapacity: 4096},
		[]PortSpec{{Port: p0, KNI: k, KNIRate: rate}, {Port: p1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct{ p, dev string }{{"10.1.0.1/24", "dp0"}, {"10.2.0.1/24", "dp1"}} {
		if err := d.AddAddr(netip.MustParsePrefix(a.p), a.dev); err != nil {
			t.Fatal(err)
		}
	}
	return &testDP{t: t, d: d, ports: []*mem.Port{p0, p1}, w: d.workers[0]}, k
}

func TestKNIPuntsWhatIsNotConsumed(t *testing.T) {
	td, k := newKNITestDP(t, 0)
	mgmt := netip.MustParseAddr("10.1.0.3")
	td.d.SetKNIAddrs([]netip.Addr{mgmt})
	frames := [][]byte{
		udp4(t, macClient, macDP0, clientIP, mgmt, 64, []byte("to the kernel's address")),
		udp4(t, macClient, net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 5}, clientIP, netip.MustParseAddr("224.0.0.5"), 1, []byte("ospf hello, no ethernet padding")),
		arpRequest(t, macClient, clientIP, mgmt),
	}
	for _, f := range frames {
		td.inject(0, f)
	}
	td.step()
	td.d.drainPunts()
	got := k.written()
	if len(got) != len(frames) {
		t.Fatalf("kernel got %d frames, want %d", len(got), len(frames))
	}
	for i := range frames {
		if !bytes.Equal(got[i], frames[i]) {
			t.Errorf("frame %d changed on its way to the kernel", i)
		}
	}
	if out := td.out(0); len(out) != 0 {
		t.Errorf("dataplane answered %d frames meant for the kernel", len(out))
	}
	if td.counter(CtrKNIPunted) != 3 || td.counter(CtrForwarded) != 0 {
		t.Errorf("punted=%d forwarded=%d", td.counter(CtrKNIPunted), td.counter(CtrForwarded))
	}
	// without the KNI address the same unicast packet is routed, not punted
	td.d.SetKNIAddrs(nil)
	td.inject(0, frames[0])
	td.step()
	if td.counter(CtrKNIPunted) != 3 || td.counter(CtrNeighQueued) != 1 {
		t.Errorf("after removing the KNI address: punted=%d queued=%d", td.counter(CtrKNIPunted), td.counter(CtrNeighQueued))
	}
}

func TestKNIRateLimit(t *testing.T) {
	td, k := newKNITestDP(t, 1000) // burst: 100 frames
	f := udp4(t, macClient, net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 5}, clientIP, netip.MustParseAddr("224.0.0.5"), 1, []byte("flood"))
	for i := 0; i < 300; i++ {
		td.inject(0, f)
	}
	for i := 0; i < 20; i++ {
		td.w.iterate()
	}
	td.d.drainPunts()
	punted, limited := td.counter(CtrKNIPunted), td.counter(CtrDropKNIRateLimit)
	if punted+limited != 300 {
		t.Fatalf("punted %d + rate-limited %d != 300", punted, limited)
	}
	// a few tokens may refill while the loop runs; the burst is 100
	if punted < 100 || punted > 150 || len(k.written()) != int(punted) {
		t.Errorf("punted %d (kernel got %d), want about the burst of 100", punted, len(k.written()))
	}
	// the worker still answers for itself during the flood
	td.inject(0, echo4(t, macClient, macDP0, clientIP, lbIP, 64, nil))
	td.step()
	if len(td.out(0)) != 1 {
		t.Error("no echo reply during a KNI flood")
	}
}

func TestKNIKernelFramesLeaveByThePort(t *testing.T) {
	td, k := newKNITestDP(t, 0)
	td.d.wg.Add(1)
	go td.d.kniReader(0, k)
	defer func() { k.Close(); td.d.wg.Wait() }()
	frame := arpRequest(t, macDP0, netip.MustParseAddr("10.1.0.3"), clientIP)
	k.in <- frame
	deadline := time.Now().Add(5 * time.Second)
	for td.w.kniIn[0].Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("kernel frame never reached worker 0")
		}
		time.Sleep(time.Millisecond)
	}
	td.step()
	out := td.out(0)
	if len(out) != 1 || !bytes.Equal(out[0], frame) {
		t.Fatalf("port sent %d frames, want the kernel's frame unchanged", len(out))
	}
	if td.counter(CtrKNISent) != 1 {
		t.Errorf("kni_sent = %d", td.counter(CtrKNISent))
	}
}
