package dataplane

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/header"
)

// setTCPPort sets the source (dst false) or destination port of the IPv4
// TCP segment in frame (untagged, no IP options) with an incremental
// checksum update.
func setTCPPort(frame []byte, dst bool, port uint16) {
	tcp := header.TCP(frame[header.EthernetMinSize+header.IPv4MinSize:])
	off := header.L4SrcPortOffset
	if dst {
		off = header.L4DstPortOffset
	}
	old := binary.BigEndian.Uint16(tcp[off:])
	binary.BigEndian.PutUint16(tcp[off:], port)
	tcp.SetChecksum(header.ChecksumUpdate16(tcp.Checksum(), old, port))
}

// establishMany opens flows connections from l's client (ports 1024
// onwards) through the pipeline, each with its handshake and the real
// server's ACK (which confirms the TOA), and returns their client ports
// and the local ports the worker gave them.
func establishMany(tb testing.TB, l *lbLoop, flows int) (ports, lports []uint16) {
	local := netip.AddrPortFrom(lip, 1)
	cl := netip.AddrPortFrom(clientIP, 1)
	syn := tcpFrame(tb, tcpSeg{src: cl, dst: l.vipPort, smac: macClient, dmac: macDP0, syn: true, seq: 1})
	synAck := tcpFrame(tb, tcpSeg{src: l.rs, dst: local, smac: macRS1, dmac: macDP1, syn: true, ack: true, ackn: 2})
	ack := tcpFrame(tb, tcpSeg{src: cl, dst: l.vipPort, smac: macClient, dmac: macDP0, ack: true, seq: 2, ackn: 1})
	srvAck := tcpFrame(tb, tcpSeg{src: l.rs, dst: local, smac: macRS1, dmac: macDP1, ack: true, seq: 1, ackn: 2})
	ports, lports = make([]uint16, flows), make([]uint16, flows)
	for i := range ports {
		p := uint16(1024 + i)
		ports[i] = p
		setTCPPort(syn, false, p)
		out := l.pass(tb, 0, 1, syn)
		lport := binary.BigEndian.Uint16(out[header.EthernetMinSize+header.IPv4MinSize:])
		lports[i] = lport
		setTCPPort(synAck, true, lport)
		l.pass(tb, 1, 0, synAck)
		setTCPPort(ack, false, p)
		l.pass(tb, 0, 1, ack)
		setTCPPort(srvAck, true, lport)
		l.pass(tb, 1, 0, srvAck)
	}
	if n := l.w.sess.Len(); n < flows {
		tb.Fatalf("%d connections for %d flows", n, flows)
	}
	return ports, lports
}

// BenchmarkFullNATEstablishedMany: client data segments of many
// established connections in a random order, as a balancer under load sees
// them. With one flow (BenchmarkFullNATEstablishedIn) the session index
// slot, the connection and the timer links stay in the nearest cache; here
// each packet's are somewhere else. One op is one packet, the frame copy
// of the harness included.
func BenchmarkFullNATEstablishedMany(b *testing.B) {
	for _, flows := range []int{1000, 50000} {
		b.Run(fmt.Sprintf("flows=%d", flows), func(b *testing.B) {
			l := newLBLoop(b)
			ports, _ := establishMany(b, l, flows)
			r := rand.New(rand.NewPCG(uint64(flows), 1))
			r.Shuffle(len(ports), func(i, j int) { ports[i], ports[j] = ports[j], ports[i] })
			frame := tcpFrame(b, tcpSeg{src: netip.AddrPortFrom(clientIP, ports[0]), dst: l.vipPort, smac: macClient, dmac: macDP0,
				ack: true, psh: true, seq: 2, ackn: 1, payload: make([]byte, 64)})
			i := 0
			next := func() []byte {
				setTCPPort(frame, false, ports[i])
				if i++; i == len(ports) {
					i = 0
				}
				return frame
			}
			benchCounted(b, l.loopDP, 0, next, CtrLBIn)
		})
	}
}
