//go:build linux

package dataplane

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/port/afxdp/xdpfast"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/session"
)

// TestXDPOffloadArmed: a TCP direction is offloaded armed, with the
// sequence number past the segment that offloaded it as the worker's
// mark. A segment at the mark goes to the worker while nothing passed to
// it since the entry was written (what reached it before may be queued);
// a segment ahead of the mark (one before it still with the worker) goes
// to the worker unchanged; so does a retransmission behind it, and the
// next segment at the mark while that retransmission is still with the
// worker (the program passed it last, the worker sent another last); once
// the worker has sent those, the mark has moved past what the program
// passed it, the worker's last segment is the program's, and the program
// forwards the next segment, exactly as the worker would, and disarms the
// entry, which the sweep notices.
func TestXDPOffloadArmed(t *testing.T) {
	td, fs := xdpTestDP(t)
	client, vp, rs := netip.AddrPortFrom(clientIP, 40008), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
	lport := fullNATHandshake(t, td, client, vp, rs)
	td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: netip.AddrPortFrom(lip, lport), smac: macRS1, dmac: macDP1, ack: true, seq: 5001, ackn: 1030}), 0)
	seg := func(seq uint32) []byte {
		return tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: seq, ackn: 5001, payload: []byte("more data")})
	}
	td.one(t, 0, seg(1030), 1) // offloads the client's direction: mark 1039
	in := xdpfast.Key{Proto: header.ProtoTCP, Src: client.Addr(), Dst: vp.Addr(), SrcPort: client.Port(), DstPort: vp.Port()}
	if e, err := fs[0].Lookup(in); err != nil || !e.Armed {
		t.Fatalf("client direction %+v %v, want offloaded armed", e, err)
	}
	toWorker := func(seq uint32, why string) {
		t.Helper()
		if ret, got := runXDP(t, fs[0], seg(seq)); ret == 4 || !bytes.Equal(got[:len(seg(seq))], seg(seq)) {
			t.Fatalf("%s: action %d, want the worker's path, unchanged", why, ret)
		}
	}
	toWorker(1039, "a segment at the mark before anything passed to the worker")
	toWorker(1048, "a segment ahead of the mark") // 1039 is still with the worker: 1048 must not overtake it
	td.one(t, 0, seg(1039), 1)                    // the worker sends them: mark 1057
	td.one(t, 0, seg(1048), 1)
	toWorker(1030, "a retransmission behind the mark")
	xdpSettle(t, td) // the mark is written once they have had xdpArmSettle to arrive
	toWorker(1057, "a segment at the mark while the retransmission is still with the worker")
	td.one(t, 0, seg(1030), 1) // the worker sends the retransmission, then 1057: mark 1066
	td.one(t, 0, seg(1057), 1)
	toWorker(1039, "another retransmission")
	td.one(t, 0, seg(1039), 1) // sent last: the mark is written with it
	xdpSettle(t, td)
	ret, got := runXDP(t, fs[0], seg(1066))
	if ret != 4 {
		t.Fatalf("a segment at the mark: action %d, want XDP_REDIRECT", ret)
	}
	td.inject(0, seg(1066))
	td.stepAll()
	if fr := td.outAll(1); len(fr) != 1 || !bytes.Equal(fr[0], got) {
		t.Fatalf("program and worker differ:\n program %x\n worker  %v", got, fr)
	}
	if e, err := fs[0].Lookup(in); err != nil || e.Armed {
		t.Fatalf("after the first fast segment: %+v %v, want disarmed", e, err)
	}
	v, err := fs[0].Verdicts()
	if err != nil || v[xdpfast.VerdictArmed] != 5 {
		t.Fatalf("verdicts %v %v, want five armed", v, err)
	}
	td.w.xdp.pass = td.w.now - 2*xdpSweepEvery // a sweep pass is due
	td.w.iterate()
	if d := td.w.xdp.conns[0].dir[session.In]; d.armed || d.dirty {
		t.Fatalf("after the sweep the worker still sees the direction armed: %+v", d)
	}
}
