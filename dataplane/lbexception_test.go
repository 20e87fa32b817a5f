package dataplane

import (
	"net/netip"
	"testing"
)

// TestNoServicePortIsDropped: TCP and UDP to a port of a virtual address
// that has no service are dropped and counted, never punted to the kernel
// (a flood there must not use up the exception path), while ICMP echo to
// the virtual address is still answered.
func TestNoServicePortIsDropped(t *testing.T) {
	td := newLBTestDP(t, 1)
	client := netip.AddrPortFrom(clientIP, 40000)
	frames := [][]byte{
		tcpFrame(t, tcpSeg{src: client, dst: netip.AddrPortFrom(vip, 81), smac: macClient, dmac: macDP0, syn: true, seq: 1}),
		tcpFrame(t, tcpSeg{src: client, dst: netip.AddrPortFrom(vip, 22), smac: macClient, dmac: macDP0, ack: true, seq: 1}),
		udp4(t, macClient, macDP0, clientIP, vip, 64, []byte("to a port nobody serves")),
	}
	for i := 0; i < 100; i++ {
		for _, f := range frames {
			td.inject(0, f)
		}
		td.step()
	}
	if got := td.counter(CtrDropLBNoService); got != 300 {
		t.Errorf("drop_lb_no_service = %d, want 300", got)
	}
	if got := td.counter(CtrKNIPunted) + td.counter(CtrDropKNIDisabled) + td.counter(CtrDropKNIRateLimit); got != 0 {
		t.Errorf("%d frames went towards the kernel", got)
	}
	td.inject(0, echo4(t, macClient, macDP0, clientIP, vip, 64, []byte("ping")))
	td.step()
	if td.counter(CtrEchoReplied) != 1 || len(td.out(0)) != 1 {
		t.Errorf("echo to the virtual address: replied %d", td.counter(CtrEchoReplied))
	}
}
