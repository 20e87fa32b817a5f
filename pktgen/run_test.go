package pktgen

// Whole runs over in-memory ports joined by a test "wire" goroutine: the
// client port's transmissions are delivered to the server port and back,
// optionally altered on the way (a TOA option inserted as a FullNAT
// balancer does, every n-th frame dropped). No kernel, no root: these
// check the generators, the sink and the TCP state machines end to end.

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
	"github.com/gvs-lb/gvs/header"
)

type wire struct {
	client, server *mem.Port
	// alter, if set, may rewrite or drop (return nil) a frame going from
	// the client to the server
	alter func(f []byte) []byte
	// answer, if set, may turn a frame going from the client to the
	// server into an answer sent back to the client instead (a SYN
	// proxy's SYN-ACK)
	answer  func(f []byte) []byte
	dropNth int // drop every n-th frame in both directions (0: none)
	dropped atomic.Uint64
	passes  atomic.Uint64 // the moving goroutine's completed passes
	stop    chan struct{}
	done    sync.WaitGroup
}

// settled reports whether nothing is in flight on the wire: every frame
// either side sent has been moved, and every frame moved has been
// received. It sees the queues empty, waits for the moving goroutine to
// complete a pass begun after that (what it had taken is then queued), and
// sees them empty again.
func (w *wire) settled() bool {
	empty := func() bool {
		for _, p := range []*mem.Port{w.client, w.server} {
			for q := 0; q < p.NumQueues(); q++ {
				if rx, tx := p.MemQueue(q).Pending(); rx+tx > 0 {
					return false
				}
			}
		}
		return true
	}
	if !empty() {
		return false
	}
	for p0 := w.passes.Load(); w.passes.Load() < p0+2; {
		select {
		case <-w.stop:
			return true
		case <-time.After(time.Millisecond):
		}
	}
	return empty()
}

func newWire(t *testing.T, queues int) *wire {
	cfg := port.Config{Queues: queues, FrameCount: 8192, RxRing: 8192}
	w := &wire{
		client: mem.New(cfg, net.HardwareAddr{2, 0, 0, 0, 0, 1}),
		server: mem.New(cfg, net.HardwareAddr{2, 0, 0, 0, 0, 2}),
		stop:   make(chan struct{}),
	}
	return w
}

func (w *wire) start(t *testing.T) {
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		n := 0
		move := func(from, to *mem.Port, alter func([]byte) []byte, answer func([]byte) []byte) int {
			moved := 0
			for q := 0; q < from.NumQueues(); q++ {
				for _, f := range from.MemQueue(q).Drain() {
					n++
					if w.dropNth > 0 && n%w.dropNth == 0 {
						w.dropped.Add(1)
						continue
					}
					if answer != nil {
						if a := answer(f); a != nil {
							from.MemQueue(q).Inject(a)
							moved++
							continue
						}
					}
					if alter != nil {
						if f = alter(f); f == nil {
							continue
						}
					}
					// a frame leaves on the queue it was sent from
					to.MemQueue(q).Inject(f)
					moved++
				}
			}
			return moved
		}
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			moved := move(w.client, w.server, w.alter, w.answer) + move(w.server, w.client, nil, nil)
			w.passes.Add(1)
			if moved == 0 {
				time.Sleep(20 * time.Microsecond)
			}
		}
	}()
	t.Cleanup(func() { close(w.stop); w.done.Wait() })
}

var (
	testClientIP = netip.MustParseAddr("10.11.0.2")
	testServer   = netip.MustParseAddr("10.12.0.11")
)

func baseConfig(w *wire, mode Mode) Config {
	gw := MACOf(w.server)
	return Config{
		Mode:        mode,
		ClientIP:    testClientIP,
		GatewayMAC:  &gw,
		Clients:     netip.MustParsePrefix("172.16.0.0/16"),
		ClientAddrs: 16,
		Dsts:        []netip.AddrPort{netip.AddrPortFrom(testServer, 8080)},
		ServerAddrs: []netip.Prefix{netip.PrefixFrom(testServer, 32)},
		Duration:    5 * time.Second,
		Drain:       100 * time.Millisecond,
		Burst:       32,

		VerifyChecksums: true,
	}
}

func run(t *testing.T, w *wire, cfg Config) *Result {
	t.Helper()
	w.start(t)
	cfg.settled = w.settled
	res, err := RunPorts(context.Background(), cfg, w.client, w.server, nil)
	if err != nil {
		t.Fatalf("RunPorts: %v", err)
	}
	return res
}

func TestRunUDP(t *testing.T) {
	w := newWire(t, 1)
	cfg := baseConfig(w, ModeUDP)
	cfg.Flows = 300
	cfg.Rate = 20000
	cfg.Duration = 400 * time.Millisecond
	res := run(t, w, cfg)
	if res.Sent == 0 || res.Received != res.Sent || res.Lost != 0 {
		t.Fatalf("sent %d received %d lost %d, want all received", res.Sent, res.Received, res.Lost)
	}
	// paced: 20000/s over 0.4 s
	if res.Sent < 6000 || res.Sent > 9000 {
		t.Errorf("sent %d in 0.4 s at 20000/s", res.Sent)
	}
	f := res.FlowSt
	if f == nil || f.Seen != 300 || f.WithLoss != 0 || f.MaxRx-f.MinRx > 1 {
		t.Errorf("flows %+v: want 300 seen, none with loss, an even spread", f)
	}
	if res.OneWay.Samples != res.Received {
		t.Errorf("latency samples %d for %d packets", res.OneWay.Samples, res.Received)
	}
	if len(res.PerDst) != 1 || res.PerDst[0].Addr != testServer.String() || res.PerDst[0].Packets != res.Received {
		t.Errorf("per destination %+v", res.PerDst)
	}
	if res.Server["rx_bad_checksum"] != 0 || res.Server["rx_reordered"] != 0 {
		t.Errorf("server counters %v", res.Server)
	}
}

func TestRunSYN(t *testing.T) {
	w := newWire(t, 1)
	cfg := baseConfig(w, ModeSYN)
	cfg.Rate = 10000
	cfg.Duration = 300 * time.Millisecond
	res := run(t, w, cfg)
	// the sink recognises the SYNs by their timestamp option
	if res.Sent == 0 || res.Received != res.Sent || res.Server["rx_stamped"] != res.Sent {
		t.Fatalf("sent %d SYNs, received %d (server counters %v)", res.Sent, res.Received, res.Server)
	}
	if res.OneWay.Samples != res.Sent {
		t.Errorf("latency samples %d for %d SYNs", res.OneWay.Samples, res.Sent)
	}
	if res.Client["rx_synack"] != 0 || res.SynAckPPS != 0 || res.Stream != nil {
		t.Errorf("SYN-ACKs %d (%v/s), stream %+v: none expected", res.Client["rx_synack"], res.SynAckPPS, res.Stream)
	}
}

// A SYN proxy between the ports answers the flood's SYNs with SYN-ACKs
// (built with gopacket, echoing the SYN's timestamp); the generator
// counts each answer from the destination as received, and one from
// another port as foreign. The established stream goes through to the
// server port at its rate, counted apart from the flood.
func TestRunSYNProxyAnswers(t *testing.T) {
	w := newWire(t, 1)
	var answered, wrong atomic.Uint64
	w.answer = func(f []byte) []byte {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil || !tcp.SYN || tcp.ACK {
			return nil
		}
		eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		var tsval uint32
		for _, o := range tcp.Options {
			if o.OptionType == layers.TCPOptionKindTimestamps {
				tsval = binary.BigEndian.Uint32(o.OptionData[:4])
			}
		}
		sport := tcp.DstPort
		if (answered.Load()+wrong.Load())%5 == 4 {
			sport++ // not the destination: not an answer to our SYN
			wrong.Add(1)
		} else {
			answered.Add(1)
		}
		ts := make([]byte, 8)
		binary.BigEndian.PutUint32(ts, 12345)
		binary.BigEndian.PutUint32(ts[4:], tsval)
		oeth := &layers.Ethernet{SrcMAC: eth.DstMAC, DstMAC: eth.SrcMAC, EthernetType: layers.EthernetTypeIPv4}
		oip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: ip.DstIP, DstIP: ip.SrcIP}
		otcp := &layers.TCP{SrcPort: sport, DstPort: tcp.SrcPort, Seq: 0x5eed, Ack: tcp.Seq + 1, SYN: true, ACK: true,
			Window: 65535, Options: []layers.TCPOption{
				{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
				{OptionType: layers.TCPOptionKindNop},
				{OptionType: layers.TCPOptionKindNop},
				{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: ts},
			}}
		_ = otcp.SetNetworkLayerForChecksum(oip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			oeth, oip, otcp); err != nil {
			t.Errorf("serialize SYN-ACK: %v", err)
			return nil
		}
		return buf.Bytes()
	}
	cfg := baseConfig(w, ModeSYN)
	cfg.Dsts = []netip.AddrPort{netip.MustParseAddrPort("10.11.0.100:80")}
	cfg.Rate = 10000
	cfg.Duration = 400 * time.Millisecond
	cfg.Warmup = 0
	cfg.Stream = StreamConfig{Rate: 2000, Dst: netip.AddrPortFrom(testServer, 9000), Flows: 64}
	res := run(t, w, cfg)
	c, s := res.Client, res.Server
	if res.Sent == 0 || res.Sent != answered.Load()+wrong.Load() {
		t.Fatalf("sent %d SYNs, the proxy saw %d", res.Sent, answered.Load()+wrong.Load())
	}
	if c["rx_synack"] != answered.Load() || res.Received != answered.Load() || c["rx_foreign"] != wrong.Load() {
		t.Errorf("SYN-ACKs counted %d, received %d, foreign %d; want %d answers and %d foreign",
			c["rx_synack"], res.Received, c["rx_foreign"], answered.Load(), wrong.Load())
	}
	if res.Lost != wrong.Load() {
		t.Errorf("lost %d, want the %d SYNs answered from elsewhere", res.Lost, wrong.Load())
	}
	if res.SynAckPPS <= 0 || res.OneWay.Samples != answered.Load() {
		t.Errorf("SYN-ACK rate %v, latency samples %d of %d", res.SynAckPPS, res.OneWay.Samples, answered.Load())
	}
	st := res.Stream
	if st == nil {
		t.Fatal("no stream result")
	}
	// paced: 2000/s over 0.4 s
	if st.Sent < 600 || st.Sent > 1000 || st.Received != st.Sent || st.Lost != 0 || c["stream_tx"] != st.Sent {
		t.Errorf("stream %+v (client stream_tx %d): want ~800 sent, all received", st, c["stream_tx"])
	}
	if s["stream_rx"] != st.Sent || s["rx_stamped"] != 0 || st.Latency.Samples != st.Received {
		t.Errorf("server counters %v, stream latency samples %d: want the stream counted apart from the flood", s, st.Latency.Samples)
	}
	if st.RxPPS <= 0 || res.OfferedPPS <= 0 {
		t.Errorf("stream rx %v pps, flood offered %v pps", st.RxPPS, res.OfferedPPS)
	}
}

func TestRunTCP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		queues  int
		hold    bool
		toa     bool
		dropNth int
	}{
		{name: "plain", queues: 1},
		{name: "two queues", queues: 2},
		{name: "hold", queues: 1, hold: true},
		{name: "TOA inserted", queues: 1, toa: true},
		{name: "loss", queues: 1, dropNth: 37},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWire(t, tc.queues)
			w.dropNth = tc.dropNth
			if tc.toa {
				w.alter = insertTOA
			}
			cfg := baseConfig(w, ModeTCP)
			// spurious retransmissions must not happen on a lossless wire
			// even when the test's goroutines are descheduled for a while
			rto := time.Second
			if tc.dropNth > 0 {
				rto = 30 * time.Millisecond
			}
			cfg.TCP = TCPConfig{Conns: 400, Concurrency: 50, Requests: 2, RequestSize: 100, ResponseSize: 3000,
				Hold: tc.hold, RTO: rto, Retries: 6}
			res := run(t, w, cfg)
			c, s := res.Client, res.Server
			if c["conn_attempts"] != 400 || c["conn_completed"] != 400 || c["conn_timeout"]+c["conn_reset"]+c["conn_refused"] != 0 {
				t.Fatalf("client %v: want 400 attempted and completed", c)
			}
			if c["responses"] != 800 || s["srv_syn"] < 400 {
				t.Errorf("responses %d (want 800), server SYNs %d", c["responses"], s["srv_syn"])
			}
			if tc.hold {
				if res.Held != 400 || s["srv_closed"] != 0 {
					t.Errorf("held %d (want 400), server closed %d (want 0)", res.Held, s["srv_closed"])
				}
			} else if s["srv_closed"] != 400 {
				t.Errorf("server closed %d, want 400", s["srv_closed"])
			}
			if tc.dropNth == 0 && (c["retransmits"] != 0 || s["srv_retransmits"] != 0) {
				t.Errorf("retransmits %d/%d on a lossless wire", c["retransmits"], s["srv_retransmits"])
			}
			if tc.dropNth > 0 && c["retransmits"]+s["srv_retransmits"] == 0 {
				t.Errorf("%d frames dropped but nothing retransmitted", w.dropped.Load())
			}
			if tc.toa && s["srv_toa"] == 0 {
				t.Errorf("server counted no TOA option")
			}
			if c["rx_bad_checksum"]+s["rx_bad_checksum"] != 0 {
				t.Errorf("bad checksums: client %d server %d", c["rx_bad_checksum"], s["rx_bad_checksum"])
			}
			if res.RTT.Samples != 800 || res.ConnLatency.Samples != 400 || res.Handshake.Samples != 400 {
				t.Errorf("latency samples: rtt %d conn %d handshake %d", res.RTT.Samples, res.ConnLatency.Samples, res.Handshake.Samples)
			}
		})
	}
}

// insertTOA adds an IPv4 TOA option (as a FullNAT balancer does) to
// client ACKs without SYN, fixing lengths and checksums.
func insertTOA(f []byte) []byte {
	var p Packet
	if Parse(f, &p) != nil || p.Proto != header.ProtoTCP || p.Flags&header.TCPFlagSYN != 0 || p.Flags&header.TCPFlagACK == 0 {
		return f
	}
	l4 := p.L4Off
	off := int(f[l4+12]>>4) * 4
	if off+8 > 60 {
		return f
	}
	out := make([]byte, 0, len(f)+8)
	out = append(out, f[:l4+off]...)
	out = append(out, OptTOA, 8, 0x30, 0x39, 172, 16, 0, 9)
	out = append(out, f[l4+off:EthLen+p.IPLen]...)
	out[l4+12] = byte((off+8)/4) << 4
	ip := header.IPv4(out[EthLen:])
	binary.BigEndian.PutUint16(ip[2:], uint16(p.IPLen+8))
	ip.SetChecksum(0)
	ip.SetChecksum(^header.Checksum(ip[:IPv4Len], 0))
	seg := out[l4:]
	seg[16], seg[17] = 0, 0
	binary.BigEndian.PutUint16(seg[16:], header.TransportChecksum(header.ProtoTCP, p.Src[:], p.Dst[:], seg, 16))
	return out
}
