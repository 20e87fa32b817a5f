package dataplane

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
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

func newKNITestDP(t *testing.T, rate int) (*testDP, *chanKNI) { return newKNITestDPRates(t, rate, 0) }

func newKNITestDPRates(t *testing.T, rate, controlRate int) (*testDP, *chanKNI) {
	k := newChanKNI()
	td := fixture{kni: k, kniRate: rate, kniCtlRate: controlRate, addrs: []string{"10.1.0.1/24 dp0", "10.2.0.1/24 dp1"}}.build(t)
	return td, k
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
	f := udp4(t, macClient, net.HardwareAddr{0x01, 0, 0x5e, 1, 1, 1}, clientIP, netip.MustParseAddr("239.1.1.1"), 1, []byte("flood"))
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

// TestKNIControlBudget: a flood of bulk punts (multicast an application
// joined, traffic for dataplane addresses) uses up the bulk budget only:
// ARP for the kernel's addresses, OSPF hellos and the kernel's own
// unicast traffic still reach it, written before any bulk frame; and the
// control class has a budget of its own.
func TestKNIControlBudget(t *testing.T) {
	td, k := newKNITestDPRates(t, 1000, 500) // bursts: 100 bulk, 50 control
	kniAddr := netip.MustParseAddr("10.1.0.3")
	td.d.SetKNIAddrs([]netip.Addr{kniAddr})
	bulk := udp4(t, macClient, net.HardwareAddr{0x01, 0, 0x5e, 1, 1, 1}, clientIP, netip.MustParseAddr("239.1.1.1"), 1, []byte("flood"))
	for i := 0; i < 300; i++ {
		td.inject(0, bulk)
	}
	control := [][]byte{
		arpRequest(t, macClient, clientIP, kniAddr),
		udp4(t, macClient, net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 5}, clientIP, netip.MustParseAddr("224.0.0.5"), 1, []byte("an OSPF hello, unpadded")),
		udp4(t, macClient, macDP0, clientIP, kniAddr, 64, []byte("a BGP keepalive, unpadded")),
	}
	for _, f := range control {
		td.inject(0, f)
	}
	for i := 0; i < 20; i++ {
		td.w.iterate()
	}
	td.d.drainPunts()
	if got := td.counter(CtrDropKNIRateLimit); got < 150 {
		t.Errorf("bulk rate-limited %d of 300, want the flood cut to about its burst of 100", got)
	}
	if got := td.counter(CtrDropKNICtlRateLimit) + td.counter(CtrDropKNICtlRingFull); got != 0 {
		t.Errorf("%d control frames dropped during a bulk flood", got)
	}
	w := k.written()
	if len(w) < len(control) {
		t.Fatalf("kernel got %d frames", len(w))
	}
	// written first, in their order
	for i, f := range control {
		if !bytes.Equal(w[i], f) {
			t.Errorf("kernel frame %d is not control frame %d:\n%x\n%x", i, i, w[i], f)
		}
	}

	// the control budget is its own: a flood of ARP requests for the
	// kernel's address is cut at about its burst of 50
	arp := arpRequest(t, macClient, clientIP, kniAddr)
	for i := 0; i < 200; i++ {
		td.inject(0, arp)
	}
	for i := 0; i < 20; i++ {
		td.w.iterate()
	}
	if got := td.counter(CtrDropKNICtlRateLimit); got < 100 || got > 160 {
		t.Errorf("control rate-limited %d of 200, want about 150 (burst 50)", got)
	}
}

// TestKNIUnwantedWithoutKNI: frames the dataplane has no use for and that
// only a kernel could want are dropped under the counter naming why when
// the port has no KNI device.
func TestKNIUnwantedWithoutKNI(t *testing.T) {
	td := newTestDP(t)
	tagged := udp4(t, macClient, macDP0, clientIP, rs1IP, 64, []byte("x"))
	tagged = append(append(append([]byte(nil), tagged[:12]...), 0x81, 0, 0, 99), tagged[12:]...) // VLAN 99
	td.inject(0, tagged)
	other := append([]byte(nil), tagged[:12]...)
	other = append(other, 0x88, 0xb5) // a local experimental ethertype
	other = append(other, make([]byte, 46)...)
	td.inject(0, other)
	td.step()
	if td.counter(CtrDropUnknownVLAN) != 1 || td.counter(CtrDropUnknownEtherType) != 1 {
		t.Errorf("unknown_vlan=%d unknown_ethertype=%d, want 1 and 1",
			td.counter(CtrDropUnknownVLAN), td.counter(CtrDropUnknownEtherType))
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
