package main

import (
	"bytes"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/apiserver"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/internal/cbpf"
)

var (
	traceMAC0   = net.HardwareAddr{2, 0, 0, 0, 0, 0x10}
	traceMAC1   = net.HardwareAddr{2, 0, 0, 0, 0, 0x11}
	traceMACCl  = net.HardwareAddr{2, 0, 0, 0, 0, 0x02}
	traceMACSrv = net.HardwareAddr{2, 0, 0, 0, 0, 0x21}
)

// startTraceDP runs a forwarding dataplane (10.1.0.1/24 on dp0, 10.2.0.1/24
// on dp1, 10.2.0.11 resolved) with its API on a temporary socket.
func startTraceDP(t *testing.T) (string, *mem.Port, *mem.Port) {
	p0 := mem.New(port.Config{Name: "dp0", Queues: 1}, traceMAC0)
	p1 := mem.New(port.Config{Name: "dp1", Queues: 1}, traceMAC1)
	d, err := dataplane.New(dataplane.Options{Workers: 1, Forward4: true}, []dataplane.PortSpec{{Port: p0}, {Port: p1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct{ p, dev string }{{"10.1.0.1/24", "dp0"}, {"10.2.0.1/24", "dp1"}} {
		if err := d.AddAddr(netip.MustParsePrefix(a.p), a.dev); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.AddNeigh(netip.MustParseAddr("10.2.0.11"), header.MAC(traceMACSrv), "dp1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "dp.sock")
	g, err := apiserver.New(d).Listen(sock, apiserver.ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Stop(); d.Stop() })
	return sock, p0, p1
}

func traceUDP(t *testing.T, src string, sport uint16) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP(src).To4(), DstIP: net.IP{10, 2, 0, 11}}
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: 53}
	u.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: traceMACCl, DstMAC: traceMAC0, EthernetType: layers.EthernetTypeIPv4}, ip, u, gopacket.Payload("query"))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// armedWriter is dpip's stderr: it closes armed on the "tracing" line.
type armedWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	once  sync.Once
	armed chan struct{}
}

func (w *armedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), "tracing ") {
		w.once.Do(func() { close(w.armed) })
	}
	return len(p), nil
}

type runningTrace struct {
	out  bytes.Buffer
	errw *armedWriter
	done chan error
}

// startDpipTrace runs `dpip trace ARGS` and returns once it is armed (or
// has failed).
func startDpipTrace(t *testing.T, sock string, args ...string) *runningTrace {
	t.Helper()
	rt := &runningTrace{errw: &armedWriter{armed: make(chan struct{})}, done: make(chan error, 1)}
	a := &app{out: &rt.out}
	root := newRoot(a)
	root.SetArgs(append([]string{"-S", sock, "trace"}, args...))
	root.SetOut(&rt.out)
	root.SetErr(rt.errw)
	go func() {
		err := root.Execute()
		if a.client != nil {
			a.client.Close()
		}
		rt.done <- err
	}()
	select {
	case <-rt.errw.armed:
	case err := <-rt.done:
		rt.done <- err
	}
	return rt
}

func TestTraceCommand(t *testing.T) {
	if _, err := cbpf.Compile("udp"); err != nil {
		t.Skipf("no tcpdump to compile filters: %v", err)
	}
	sock, p0, p1 := startTraceDP(t)
	rt := startDpipTrace(t, sock, "dev", "dp0", "-c", "1", "udp", "and", "src", "host", "10.1.0.7")
	// a second trace is refused while the first runs
	if out, err := dpip(t, sock, "trace -c 1"); err == nil || !strings.Contains(err.Error(), "another trace is running") {
		t.Errorf("second trace: %v\n%s", err, out)
	}
	// another source: forwarded, not traced; then the traced one
	if !p0.MemQueue(0).Inject(traceUDP(t, "10.1.0.8", 4000)) || !p0.MemQueue(0).Inject(traceUDP(t, "10.1.0.7", 4001)) {
		t.Fatal("inject: ring full")
	}
	if err := <-rt.done; err != nil {
		t.Fatalf("dpip trace: %v\n%s", err, rt.errw.buf.String())
	}
	got := rt.out.String()
	for _, want := range []string{
		"Packet 1: worker 0, port dp0, 60 bytes\n",
		"  IP 10.1.0.7:4001 > 10.2.0.11:53: UDP length 13, 60 bytes\n",
		" ns  parse      IPv4 on dp0\n",
		" ns  route      dev dp1 via 10.2.0.11\n",
		" ns  neighbour  10.2.0.11 at 02:00:00:00:00:21\n",
		" ns  transmit   port dp1 queue 0\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("dpip trace output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "10.1.0.8") || strings.Count(got, "Packet ") != 1 {
		t.Errorf("untraced packet in the output:\n%s", got)
	}
	// both packets really left on dp1, as the trace says the traced one did
	var srcs []string
	for len(srcs) < 2 {
		for _, f := range p1.MemQueue(0).Drain() {
			p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
			ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			if !ok || ip.TTL != 63 || eth.DstMAC.String() != traceMACSrv.String() {
				t.Fatalf("sent on dp1: %v", p)
			}
			srcs = append(srcs, ip.SrcIP.String())
		}
	}
	if strings.Join(srcs, " ") != "10.1.0.8 10.1.0.7" {
		t.Errorf("sent on dp1 from %v", srcs)
	}
	// the trace ended: a new one may start
	rt2 := startDpipTrace(t, sock, "-c", "1", "--json", "udp")
	if !p0.MemQueue(0).Inject(traceUDP(t, "10.1.0.9", 4002)) {
		t.Fatal("inject: ring full")
	}
	if err := <-rt2.done; err != nil {
		t.Fatalf("second dpip trace: %v", err)
	}
	if !strings.Contains(rt2.out.String(), `"stage": "transmit"`) {
		t.Errorf("--json output:\n%s", rt2.out.String())
	}
}

func TestParseTraceArgs(t *testing.T) {
	req, sock, js, err := parseTraceArgs([]string{"dev", "dp1", "worker", "1", "-c", "5", "tcp", "port", "80", "-S", "/x.sock"})
	if err != nil || req.Port != "dp1" || req.Worker == nil || *req.Worker != 1 || req.Count != 5 || req.FilterExpr != "tcp port 80" || sock != "/x.sock" || js {
		t.Errorf("parsed %+v %q %v %v", req, sock, js, err)
	}
	// after the filter began, dev is part of it
	if req, _, _, _ := parseTraceArgs([]string{"host", "10.0.0.1", "and", "dev"}); req.Port != "" || req.FilterExpr != "host 10.0.0.1 and dev" {
		t.Errorf("parsed %+v", req)
	}
	for _, bad := range [][]string{{"-c", "0"}, {"-c", "257"}, {"-c"}, {"worker", "x"}, {"-q"}} {
		if _, _, _, err := parseTraceArgs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
