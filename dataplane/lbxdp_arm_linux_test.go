//go:build linux

package dataplane

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
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

// slowRx is a receive queue whose bursts take delay on the dataplane's
// clock, as a loop iteration preempted on a busy core does.
type slowRx struct {
	port.Queue
	d     *Dataplane
	delay time.Duration
}

func (q *slowRx) RxBurst(bufs []*pktbuf.Buf) int {
	n := q.Queue.RxBurst(bufs)
	if n > 0 {
		q.d.start = q.d.start.Add(-q.delay)
	}
	return n
}

// TestXDPArmSettleLongLoop: the settle before an armed direction's mark is
// written runs from the flush that handed the worker's last segment of it
// to the kernel, not from the start of the loop iteration that forwarded
// it: an iteration that lasted 3 ms does not shorten it by 3 ms. (Measured
// from the iteration's start, TestXDPOffloadLab saw a segment overtaken.)
func TestXDPArmSettleLongLoop(t *testing.T) {
	td, fs := xdpTestDP(t)
	client, vp, rs := netip.AddrPortFrom(clientIP, 40009), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
	_, seg := xdpActiveConn(t, td, fs, client, vp, rs) // armed, the worker's mark 1048 written
	const slow = 3 * time.Millisecond
	q := td.w.queues[0]
	td.w.queues[0] = &slowRx{Queue: q, d: td.d, delay: slow}
	td.one(t, 0, seg(1048), 1) // forwarded by the worker in an iteration that lasts 3 ms
	td.w.queues[0] = q
	if len(td.w.xdp.marks) == 0 {
		t.Fatal("no mark waits for the segment the worker sent")
	}
	// xdpArmSettle after the iteration began, less than that after the
	// flush that handed the segment over: still waiting
	wait := time.Duration(xdpArmSettle) - slow + time.Millisecond/2
	td.d.start = td.d.start.Add(-wait)
	td.stepAll()
	if len(td.w.xdp.marks) == 0 {
		t.Fatalf("the mark was written %v after the segment was handed to the kernel (%v after its iteration began), want %v",
			wait, slow+wait, time.Duration(xdpArmSettle))
	}
	td.d.start = td.d.start.Add(-slow)
	td.stepAll()
	if len(td.w.xdp.marks) != 0 {
		t.Fatalf("marks of %v still not written xdpArmSettle after the flush", td.w.xdp.marks)
	}
}

// TestXDPDrainHoldLongLoop: the hold after a take-back runs from the
// moment the entries were deleted, not from the start of the loop
// iteration that took the direction back: the FIN that ends a connection
// whose segments the program forwarded, taken in an iteration that lasted
// 3 ms, waits the full xdpDrainHold after that.
func TestXDPDrainHoldLongLoop(t *testing.T) {
	td, fs := xdpTestDP(t)
	client, vp, rs := netip.AddrPortFrom(clientIP, 40010), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
	_, cliData := xdpActiveConn(t, td, fs, client, vp, rs)
	if ret, _ := runXDP(t, fs[0], cliData(1048)); ret != 4 { // the program forwards one
		t.Fatalf("a segment at the mark: action %d, want XDP_REDIRECT", ret)
	}
	const slow = 3 * time.Millisecond
	q := td.w.queues[0]
	td.w.queues[0] = &slowRx{Queue: q, d: td.d, delay: slow}
	td.inject(0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, fin: true, seq: 1057, ackn: 5001}))
	td.stepAll() // the FIN takes the connection back in an iteration that lasts 3 ms
	td.w.queues[0] = q
	if fr := td.outAll(1); len(fr) != 0 || td.sum(CtrLBXDPHeld) != 1 {
		t.Fatalf("the FIN after fast segments: %d frames sent at once, %d held; want it held", len(fr), td.sum(CtrLBXDPHeld))
	}
	// xdpDrainHold after the iteration began, less than that after the
	// entries were deleted: still held
	wait := time.Duration(xdpDrainHold) - slow + time.Millisecond/2
	td.d.start = td.d.start.Add(-wait)
	td.stepAll()
	if fr := td.outAll(1); len(fr) != 0 {
		t.Fatalf("the FIN went %v after the take-back (%v after its iteration began), want %v", wait, slow+wait, time.Duration(xdpDrainHold))
	}
	td.d.start = td.d.start.Add(-slow)
	td.stepAll()
	if fr := td.outAll(1); len(fr) != 1 {
		t.Fatalf("%d frames xdpDrainHold after the take-back, want the FIN", len(fr))
	} else if d := decodeL4(t, fr[0]); d.tcp == nil || !d.tcp.FIN || d.dst != rs {
		t.Fatalf("released %+v, want the FIN to %v", d, rs)
	}
}

// waiting fails unless direction dir of td's first offloaded connection
// still has its mark to write. The test's clock is the real one: when the
// test itself took xdpArmSettle since the worker handed the direction's
// last segment over (a busy machine), the pause may have written the
// mark, and nothing is asserted.
func waiting(t *testing.T, td *testDP, dir session.Direction, why string) {
	t.Helper()
	d := &td.w.xdp.conns[0].dir[dir]
	if !d.dirty && td.d.clock()-d.sent < xdpArmSettle {
		t.Fatal(why)
	}
}

// xdpArmedConn makes a FullNAT connection from clientIP:cport to the VIP
// with both directions offloaded armed, their marks not written yet: the
// server's ACK (5001, acknowledging 1030) offloads the server's, the
// client's segment 1030 to 1039 its own. It returns the connection's
// frames.
func xdpArmedConn(t *testing.T, td *testDP, cport uint16) connFrames {
	t.Helper()
	client, vp, rs := netip.AddrPortFrom(clientIP, cport), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
	lport := fullNATHandshake(t, td, client, vp, rs)
	fr := connFrames{t, client, vp, rs, netip.AddrPortFrom(lip, lport)}
	td.one(t, 1, fr.srvAck(1030), 0)
	td.one(t, 0, fr.cli(1030), 1)
	return fr
}

// zcQueue is an egress queue that reports its socket's mode and its
// transmissions not yet completed, as afxdp.Queue does.
type zcQueue struct {
	port.Queue
	zc bool
	tx int
}

func (q *zcQueue) InFlight() (rx, tx int) { return 0, q.tx }
func (q *zcQueue) ZeroCopy() bool         { return q.zc }

// TestXDPArmZeroCopy: when the direction leaves by a zero-copy queue, an
// armed direction's mark is written as soon as the queue's completion
// ring gave back what the worker sent — the device has sent it, so what
// the program redirects afterwards leaves after it — without the
// xdpArmSettle pause that copy mode needs and that an unlimited stream
// never makes; until then the worker sleeps at most xdpMarkPoll. In copy
// mode the completion alone does not write it.
func TestXDPArmZeroCopy(t *testing.T) {
	for _, zc := range []bool{true, false} {
		t.Run(map[bool]string{true: "zerocopy", false: "copy"}[zc], func(t *testing.T) {
			td, fs := xdpTestDP(t)
			q := &zcQueue{Queue: td.w.queues[1], zc: zc, tx: 1}
			td.w.queues[1] = q                    // the client's direction leaves by port 1
			seg := xdpArmedConn(t, td, 40011).cli // the client's mark 1039, not written
			if ret, _ := runXDP(t, fs[0], seg(1039)); ret == 4 {
				t.Fatal("a segment went fast before the worker's mark was written")
			}
			td.one(t, 0, seg(1039), 1) // the worker sends what the program passed it: mark 1048
			td.stepAll()
			in := &td.w.xdp.conns[0].dir[session.In]
			if !in.dirty {
				t.Fatal("the mark was written while the transmission was not completed")
			}
			if d, want := td.w.xdpHoldWait(), map[bool]time.Duration{true: xdpMarkPoll, false: time.Duration(xdpArmSettle)}[zc]; d != want {
				t.Fatalf("the worker may sleep %v while the mark waits, want %v", d, want)
			}
			q.tx = 0 // completed; no time has passed
			td.stepAll()
			if !zc {
				waiting(t, td, session.In, "copy mode: the mark was written at the completion, before xdpArmSettle")
				return
			}
			if in.dirty {
				t.Fatal("the mark not written once the zero-copy queue completed")
			}
			if ret, _ := runXDP(t, fs[0], seg(1048)); ret != 4 {
				t.Fatalf("the segment at the mark: action %d, want XDP_REDIRECT", ret)
			}
		})
	}
}

// TestXDPArmAcked: in copy mode an armed direction's mark is also written
// without the xdpArmSettle pause once the other direction acknowledged
// everything the worker sent of it: the peer has received it, so nothing
// the program forwards next can overtake it. The acknowledgment counts
// whether the worker forwarded it or, once that direction went fast, the
// program (its entry's sequence notes); one short of the mark does not.
func TestXDPArmAcked(t *testing.T) {
	td, fs := xdpTestDP(t)
	fr := xdpArmedConn(t, td, 40012) // the server's mark 5001; the client's 1039, which the server has not acknowledged
	srvAck, seg := fr.srvAck, fr.cli
	dirty := func(dir session.Direction) bool { return td.w.xdp.conns[0].dir[dir].dirty }
	td.stepAll()
	waiting(t, td, session.In, "the client's mark written before any pause or acknowledgment")
	if dirty(session.Out) {
		// the server's direction has sent no data yet: its mark, 5001, is
		// what the client's segments acknowledge
		t.Fatal("the server's mark not written although the client acknowledged it")
	}
	// the server acknowledges 1039 through the worker: the client's mark
	// goes at once, and the server's (5001 again)
	td.one(t, 1, srvAck(1039), 0)
	td.stepAll()
	if dirty(session.In) || dirty(session.Out) {
		t.Fatalf("marks not written once acknowledged: in %v, out %v", dirty(session.In), dirty(session.Out))
	}
	// the server's direction goes fast: the program passes its next ACK
	// (nothing had passed since the entry was written), the worker sends it,
	// the next one at the mark is forwarded
	xdpPrimeNoSettle := func(f *xdpfast.Fast, in int, frame []byte, out int) {
		t.Helper()
		if ret, _ := runXDP(t, f, frame); ret == 4 {
			t.Fatal("forwarded before anything passed to the worker")
		}
		td.one(t, in, frame, out)
		td.stepAll()
	}
	xdpPrimeNoSettle(fs[1], 1, srvAck(1039), 0)
	if ret, _ := runXDP(t, fs[1], srvAck(1039)); ret != 4 {
		t.Fatalf("the server's ACK at its mark: action %d, want XDP_REDIRECT", ret)
	}
	// the client sends 1039 to 1048 by the worker (the program passed it:
	// nothing had passed since its entry was written): mark 1048, not
	// acknowledged yet; the server's ACKs now go by the program only, and
	// do not wake the worker
	xdpPrimeNoSettle(fs[0], 0, seg(1039), 1)
	waiting(t, td, session.In, "the client's mark written before 1048 was acknowledged")
	if d := td.w.xdpHoldWait(); dirty(session.In) && d != xdpMarkPoll {
		t.Fatalf("the worker may sleep %v while the mark waits for the program's acknowledgment, want %v", d, xdpMarkPoll)
	}
	if ret, _ := runXDP(t, fs[1], srvAck(1047)); ret != 4 {
		t.Fatalf("action %d", ret)
	}
	td.stepAll()
	waiting(t, td, session.In, "the client's mark written on an acknowledgment short of it")
	if ret, _ := runXDP(t, fs[1], srvAck(1048)); ret != 4 {
		t.Fatalf("action %d", ret)
	}
	td.stepAll()
	if dirty(session.In) {
		t.Fatal("the client's mark not written once the program forwarded the acknowledgment of 1048")
	}
	if ret, _ := runXDP(t, fs[0], seg(1048)); ret != 4 {
		t.Fatalf("the client's segment at the mark: action %d, want XDP_REDIRECT", ret)
	}
}

// TestXDPArmAckedRetransmission: the acknowledgment of a direction's mark
// does not write the mark when the worker sent a retransmission last: the
// peer may have acknowledged those bytes from an earlier copy while the
// worker's is still on its way. The pause still writes it.
func TestXDPArmAckedRetransmission(t *testing.T) {
	td, _ := xdpTestDP(t)
	fr := xdpArmedConn(t, td, 40013) // the client's direction armed: mark 1039
	srvAck, seg := fr.srvAck, fr.cli
	td.one(t, 0, seg(1039), 1) // mark 1048
	td.one(t, 0, seg(1030), 1) // a retransmission, sent last
	td.one(t, 1, srvAck(1048), 0)
	td.stepAll()
	waiting(t, td, session.In, "the mark was written on the acknowledgment while the worker's last segment was a retransmission")
	td.d.start = td.d.start.Add(-time.Duration(xdpArmSettle))
	td.stepAll()
	if td.w.xdp.conns[0].dir[session.In].dirty {
		t.Fatal("the mark not written after the pause")
	}
}
