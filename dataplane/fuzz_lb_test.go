package dataplane

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
)

// The FullNAT path under fuzzing: two workers, TCP and UDP services over
// IPv4 and IPv6, replies that arrive on the other worker's queue (handed
// over), ICMP errors about connections. An input is a sequence of frames,
// each with the port and queue it arrives on, run through a fresh
// dataplane, so a seed can hold a whole connection (its SYN-ACK addressed
// to the local port the dataplane picked) and every input replays alike.

// lbFuzzFrame is one frame of an input.
type lbFuzzFrame struct {
	port, queue int
	frame       []byte
}

// encodeLBFuzz packs frames as [port<<1|queue][length u16][frame]…
func encodeLBFuzz(frames []lbFuzzFrame) []byte {
	var out []byte
	for _, f := range frames {
		out = append(out, byte(f.port<<1|f.queue))
		out = binary.BigEndian.AppendUint16(out, uint16(len(f.frame)))
		out = append(out, f.frame...)
	}
	return out
}

// decodeLBFuzz unpacks at most 8 frames; a short tail is one last frame.
func decodeLBFuzz(b []byte) []lbFuzzFrame {
	var out []lbFuzzFrame
	for len(b) >= 3 && len(out) < 8 {
		pq, n := b[0], int(binary.BigEndian.Uint16(b[1:]))
		b = b[3:]
		if n > len(b) {
			n = len(b)
		}
		out = append(out, lbFuzzFrame{port: int(pq>>1) & 1, queue: int(pq & 1), frame: b[:n]})
		b = b[n:]
	}
	return out
}

const lbFuzzUDPPort = 9000

// newLBFuzzDP is newLBTestDP with small pools and tables (one is built per
// input), two workers, and the fuzzed services: TCP v4 and v6, UDP v4.
func newLBFuzzDP(t testing.TB) *testDP {
	td := fixture{Options: Options{Workers: 2, ConnCapacity: 64}, frames: 64, addrs: lbAddrs, lbNeighbors: true}.build(t)
	td.service(ipvs.TCP, vip, 80, "rr", lip, netip.AddrPortFrom(rs1IP, 8080))
	td.service(ipvs.TCP, vip6, 80, "rr", lip6, netip.AddrPortFrom(rs1IP6, 8080))
	td.service(ipvs.UDP, vip, lbFuzzUDPPort, "rr", lip, netip.AddrPortFrom(rs1IP, 9001))
	return td
}

func udpFrame(t testing.TB, smac, dmac net.HardwareAddr, src, dst netip.AddrPort, payload []byte) []byte {
	u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	eth := &layers.Ethernet{SrcMAC: smac, DstMAC: dmac, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: ipOf(src.Addr()), DstIP: ipOf(dst.Addr())}
	u.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, u, gopacket.Payload(payload))
}

// settle runs the workers until a whole round finds nothing to do, so
// frames handed between workers are processed and every tx buffer drained.
func settle(td *testDP) {
	for round := 0; round < 16; round++ {
		got := 0
		for _, w := range td.d.workers {
			got += w.iterate()
		}
		if got == 0 {
			return
		}
	}
	td.t.Fatal("the workers never went idle")
}

// lbFuzzSeeds plays connections on a fresh dataplane to learn the local
// ports it picks, and returns inputs that carry whole exchanges.
func lbFuzzSeeds(t testing.TB) [][]lbFuzzFrame {
	var seeds [][]lbFuzzFrame
	toa := layers.TCPOption{OptionType: 254, OptionLength: 8, OptionData: []byte{0x1f, 0x90, 6, 6, 6, 6}}
	for _, v6 := range []bool{false, true} {
		client, v, rs := netip.AddrPortFrom(clientIP, 40001), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
		if v6 {
			client, v, rs = netip.AddrPortFrom(clientIP6, 40001), netip.AddrPortFrom(vip6, 80), netip.AddrPortFrom(rs1IP6, 8080)
		}
		syn := tcpFrame(t, tcpSeg{src: client, dst: v, smac: macClient, dmac: macDP0, syn: true, seq: 100, mss: 1460})
		td := newLBFuzzDP(t)
		td.injectQ(0, 0, syn)
		td.stepAll()
		out := td.outAll(1)
		if len(out) != 1 {
			t.Fatalf("seed SYN: %d frames out", len(out))
		}
		l := decodeL4(t, out[0]).src
		synack := tcpFrame(t, tcpSeg{src: rs, dst: l, smac: macRS1, dmac: macDP1, syn: true, ack: true, seq: 5000, ackn: 101, mss: 1460})
		ack := tcpFrame(t, tcpSeg{src: client, dst: v, smac: macClient, dmac: macDP0, ack: true, seq: 101, ackn: 5001, opts: []layers.TCPOption{toa}})
		data := tcpFrame(t, tcpSeg{src: client, dst: v, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 101, ackn: 5001, payload: []byte("GET / HTTP/1.0\r\n\r\n")})
		reply := tcpFrame(t, tcpSeg{src: rs, dst: l, smac: macRS1, dmac: macDP1, ack: true, seq: 5001, ackn: 119, payload: []byte("HTTP/1.0 200 OK\r\n\r\n")})
		fin := tcpFrame(t, tcpSeg{src: client, dst: v, smac: macClient, dmac: macDP0, ack: true, fin: true, seq: 119, ackn: 5020})
		rst := tcpFrame(t, tcpSeg{src: rs, dst: l, smac: macRS1, dmac: macDP1, rst: true, seq: 5020})
		// replies on both queues: one of them belongs to the other worker
		for q := 0; q < 2; q++ {
			seeds = append(seeds, []lbFuzzFrame{{0, 0, syn}, {1, q, synack}, {0, 0, ack}, {0, 0, data}, {1, q, reply}, {0, 0, fin}, {1, q, rst}})
		}
		if !v6 {
			// an ICMP error from the real server's side about L→D
			quoted := tcpFrame(t, tcpSeg{src: l, dst: rs, smac: macDP1, dmac: macRS1, ack: true, seq: 101})[header.EthernetMinSize:]
			ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: ipOf(rs1IP), DstIP: ipOf(lip)}
			icmp := serialize(t, &layers.Ethernet{SrcMAC: macRS1, DstMAC: macDP1, EthernetType: layers.EthernetTypeIPv4}, ip,
				&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, 4), Seq: 1400},
				gopacket.Payload(quoted[:28]))
			seeds = append(seeds, []lbFuzzFrame{{0, 0, syn}, {1, 1, icmp}, {1, 0, icmp}})
		}
	}
	udpc := netip.AddrPortFrom(clientIP, 40002)
	udpIn := udpFrame(t, macClient, macDP0, udpc, netip.AddrPortFrom(vip, lbFuzzUDPPort), []byte("query"))
	td := newLBFuzzDP(t)
	td.injectQ(0, 1, udpIn)
	td.stepAll()
	out := td.outAll(1)
	if len(out) != 1 {
		t.Fatalf("seed UDP: %d frames out", len(out))
	}
	l := decodeL4(t, out[0]).src
	udpOut := udpFrame(t, macRS1, macDP1, netip.AddrPortFrom(rs1IP, 9001), l, []byte("answer"))
	seeds = append(seeds, []lbFuzzFrame{{0, 1, udpIn}, {1, 0, udpOut}, {1, 1, udpOut}, {0, 1, udpIn}})
	return seeds
}

// FuzzInputFullNAT runs sequences of frames through the FullNAT path of
// two workers. Beyond not panicking: every buffer goes back to its pool,
// tx_packets matches what left, no frame yields more than two, and every
// frame sent is well formed (checksums verified by gopacket whenever the
// input frame was clean).
func FuzzInputFullNAT(f *testing.F) {
	for _, s := range lbFuzzSeeds(f) {
		f.Add(encodeLBFuzz(s))
		// the same exchanges with each frame cut short
		for i := range s {
			cut := append([]lbFuzzFrame(nil), s...)
			cut[i].frame = cut[i].frame[:len(cut[i].frame)*2/3]
			f.Add(encodeLBFuzz(cut))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) { runLBFuzz(t, newLBFuzzDP(t), in) })
}

// runLBFuzz runs one fuzz input through td and checks what FuzzInputFullNAT
// promises.
func runLBFuzz(t *testing.T, td *testDP, in []byte) {
	{
		for _, fr := range decodeLBFuzz(in) {
			clean := len(fr.frame) >= header.EthernetMinSize && frameProblem(fr.frame) == ""
			before := td.sum(CtrTxPackets)
			if !td.ports[fr.port].MemQueue(fr.queue).Inject(fr.frame) {
				t.Fatal("inject: ring full")
			}
			settle(td)
			outs := [][][]byte{td.outAll(0), td.outAll(1)}
			n := len(outs[0]) + len(outs[1])
			if tx := td.sum(CtrTxPackets) - before; tx != uint64(n) {
				t.Fatalf("tx_packets += %d, %d frames sent", tx, n)
			}
			if n > 2 {
				t.Fatalf("%d frames sent for one input frame", n)
			}
			for p, frames := range outs {
				for _, o := range frames {
					checkTransmitted(t, p, fr.frame, o, clean)
				}
			}
		}
		for _, w := range td.d.workers {
			w.dropHeld()
		}
		for i, p := range td.ports {
			for q := 0; q < p.NumQueues(); q++ {
				if pool := p.MemQueue(q).Pool(); pool.Free() != pool.Size() {
					t.Fatalf("port %d queue %d: %d of %d buffers free", i, q, pool.Free(), pool.Size())
				}
			}
		}
	}
}

// FuzzInputSynProxy is FuzzInputFullNAT against SYN-proxy services (the
// IPv6 one with a proxy protocol header too): seeds
// with whole proxied connections (the ACK carries the cookie the fuzz
// dataplane's SYN-ACK had), malformed options and flag combinations.
func FuzzInputSynProxy(f *testing.F) {
	newDP := func(t testing.TB) *testDP {
		td := newLBFuzzDP(t)
		for i, v := range []netip.Addr{vip, vip6} {
			// the IPv6 service adds a proxy protocol header as well
			if err := td.d.EditService(ipvs.ServiceSpec{Key: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: v, Port: 80}, Sched: "rr", SynProxy: true,
				ProxyProtocol: uint8(i * 2)}); err != nil {
				t.Fatal(err)
			}
		}
		return td
	}
	td := newDP(f)
	client, v, rs := netip.AddrPortFrom(clientIP, 40001), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
	ts := layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)}
	syn := tcpFrame(f, tcpSeg{src: client, dst: v, smac: macClient, dmac: macDP0, syn: true, seq: 100, mss: 1460, opts: []layers.TCPOption{ts}})
	td.injectQ(0, 0, syn)
	settle(td)
	out := td.outAll(0)
	if len(out) != 1 {
		f.Fatalf("seed SYN: %d frames out", len(out))
	}
	cookie := decodeL4(f, out[0]).tcp.Seq
	ack := tcpFrame(f, tcpSeg{src: client, dst: v, smac: macClient, dmac: macDP0, ack: true, seq: 101, ackn: cookie + 1, opts: []layers.TCPOption{ts}})
	data := tcpFrame(f, tcpSeg{src: client, dst: v, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 101, ackn: cookie + 1, payload: []byte("GET /")})
	td.injectQ(0, 0, ack)
	settle(td)
	out = td.outAll(1)
	if len(out) != 1 {
		f.Fatalf("seed ACK: %d frames out", len(out))
	}
	l := decodeL4(f, out[0]).src
	synack := tcpFrame(f, tcpSeg{src: rs, dst: l, smac: macRS1, dmac: macDP1, syn: true, ack: true, seq: 5000, ackn: 101, mss: 1460, opts: []layers.TCPOption{ts}})
	reply := tcpFrame(f, tcpSeg{src: rs, dst: l, smac: macRS1, dmac: macDP1, ack: true, seq: 5001, ackn: 106, payload: []byte("200")})
	sack := layers.TCPOption{OptionType: layers.TCPOptionKindSACK, OptionLength: 10, OptionData: make([]byte, 8)}
	cack := tcpFrame(f, tcpSeg{src: client, dst: v, smac: macClient, dmac: macDP0, ack: true, seq: 106, ackn: cookie + 4, opts: []layers.TCPOption{ts, sack}})
	bad := []layers.TCPOption{{OptionType: layers.TCPOptionKindSACK, OptionLength: 9, OptionData: make([]byte, 7)}}
	badack := tcpFrame(f, tcpSeg{src: client, dst: v, smac: macClient, dmac: macDP0, ack: true, seq: 101, ackn: cookie + 1, opts: bad})
	for q := 0; q < 2; q++ {
		f.Add(encodeLBFuzz([]lbFuzzFrame{{0, 0, syn}, {0, 0, ack}, {0, 0, data}, {1, q, synack}, {1, q, reply}, {0, 0, cack}, {1, q, synack}}))
		f.Add(encodeLBFuzz([]lbFuzzFrame{{0, 0, syn}, {0, 0, badack}, {0, 0, data}, {1, q, synack}}))
	}
	f.Fuzz(func(t *testing.T, in []byte) { runLBFuzz(t, newDP(t), in) })
}
