//go:build linux

package dataplane

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/dataplane/port/afxdp/xdpfast"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

// TestXDPOffloadServiceChanges: a change of the service table takes the
// offloaded connections it concerns back at the worker's next loop, with
// the real maps: a destination deleted with expire ends its connections
// there and then; deleted without expire or quiesced, its connections go
// on through the worker and are not offloaded again while they drain; an
// edited service's connections come back once and are offloaded again by
// their next packets; an unrelated change leaves them where they are.
func TestXDPOffloadServiceChanges(t *testing.T) {
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 80}
	rs := netip.AddrPortFrom(rs1IP, 8080)
	for _, c := range []struct {
		name    string
		change  func(td *testDP) error
		back    bool // taken back
		expired bool // and ended
		again   bool // offloaded again by its next packet
		vipGone bool // the VIP no longer answers: its packets go to the kernel
	}{
		{"delete with expire", func(td *testDP) error { return td.d.DelDest(k, rs, true) }, true, true, false, false},
		{"delete", func(td *testDP) error { return td.d.DelDest(k, rs, false) }, true, false, false, false},
		{"quiesce", func(td *testDP) error {
			return td.d.EditDest(k, ipvs.DestSpec{Addr: rs, Weight: 0, Fwd: ipvs.FwdFullNAT})
		}, true, false, false, false},
		{"service edited", func(td *testDP) error { return td.d.EditService(ipvs.ServiceSpec{Key: k, Sched: "wrr"}) }, true, false, true, false},
		{"service deleted", func(td *testDP) error { return td.d.DelService(k) }, true, false, false, true},
		{"other service", func(td *testDP) error {
			td.service(ipvs.TCP, vip, 81, "rr", lip, rs)
			return nil
		}, false, false, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			td, fs := xdpTestDP(t)
			client, vp := netip.AddrPortFrom(clientIP, 40004), netip.AddrPortFrom(vip, 80)
			lport, cliData := xdpActiveConn(t, td, fs, client, vp, rs)
			in := xdpfast.Key{Proto: header.ProtoTCP, Src: client.Addr(), Dst: vp.Addr(), SrcPort: client.Port(), DstPort: vp.Port()}
			out := xdpfast.Key{Proto: header.ProtoTCP, Src: rs.Addr(), Dst: lip, SrcPort: rs.Port(), DstPort: lport}
			if len(td.w.xdp.conns) != 1 || td.w.xdp.conns[0].dirs != 3 {
				t.Fatalf("offloaded %+v, want one connection, both directions", td.w.xdp.conns)
			}
			// three segments through the program only: taking the
			// connection back moves them into the destination's traffic
			for i := range 3 {
				if ret, _ := runXDP(t, fs[0], cliData(uint32(1048+9*i))); ret != 4 {
					t.Fatalf("action %d, want XDP_REDIRECT", ret)
				}
			}
			dest := td.d.IPVS().Table().Service(k).Dests[0].ID
			before := td.d.DestTraffic(dest)
			if err := c.change(td); err != nil {
				t.Fatal(err)
			}
			td.w.iterate() // the next loop: no packet of the connection needed
			_, errIn := fs[0].Lookup(in)
			_, errOut := fs[1].Lookup(out)
			gone := errors.Is(errIn, xdpfast.ErrNotExist) && errors.Is(errOut, xdpfast.ErrNotExist)
			if gone != c.back || c.back && (len(td.w.xdp.conns) != 0 || td.sum(CtrLBXDPRemoved) != 2) {
				t.Fatalf("after the change: entries %v / %v, %d offloaded, %d removed; want taken back %v",
					errIn, errOut, len(td.w.xdp.conns), td.sum(CtrLBXDPRemoved), c.back)
			}
			if c.back {
				if after := td.d.DestTraffic(dest); after.InPkts != before.InPkts+3 {
					t.Fatalf("destination traffic %+v, before %+v: the program's 3 packets not counted", after, before)
				}
			}
			td.w.iterate() // a doomed connection ends at the expiry pass
			if got := td.sum(CtrLBConnsExpired); (got == 1) != c.expired {
				t.Fatalf("%d connections expired, want ended %v", got, c.expired)
			}
			if c.expired {
				return
			}
			next := cliData(1075)
			if !c.back {
				if ret, _ := runXDP(t, fs[0], next); ret != 4 {
					t.Fatalf("action %d: still offloaded, want XDP_REDIRECT", ret)
				}
				return
			}
			if c.vipGone {
				if ret, _ := runXDP(t, fs[0], next); ret == 4 {
					t.Fatal("the program still forwards the deleted service's connection")
				}
				return
			}
			// the program's last packets have had their time (xdpDrainHold)
			td.d.start = td.d.start.Add(-time.Duration(xdpDrainHold))
			td.w.iterate()
			if d := td.one(t, 0, next, 1); d.dst != rs {
				t.Fatalf("the next segment went to %s, want %s", d.dst, rs)
			}
			if _, err := fs[0].Lookup(in); (err == nil) != c.again {
				t.Fatalf("after the next segment: entry %v, want offloaded again %v", err, c.again)
			}
		})
	}
}

// TestXDPOffloadListed: the connection listing (ipvsadm -L -c) tells which
// directions of a connection the fast path forwards.
func TestXDPOffloadListed(t *testing.T) {
	td, _ := xdpTestDP(t)
	client, vp, rs := netip.AddrPortFrom(clientIP, 40006), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
	lport := fullNATHandshake(t, td, client, vp, rs)
	listed := func() uint8 {
		t.Helper()
		var got []ConnInfo
		if err := td.d.ListConns(context.Background(), nil, func(p []ConnInfo) error { got = append(got, p...); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Client != client {
			t.Fatalf("listed %+v, want the one connection", got)
		}
		return got[0].XDP
	}
	if x := listed(); x != 0 {
		t.Fatalf("XDP %b before any offload", x)
	}
	td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: netip.AddrPortFrom(lip, lport), smac: macRS1, dmac: macDP1, ack: true, seq: 5001, ackn: 1030}), 0)
	if x := listed(); x != 1<<session.Out {
		t.Fatalf("XDP %b with the server's direction offloaded", x)
	}
	td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 1030, ackn: 5001, payload: []byte("x")}), 1)
	if x := listed(); x != 1<<session.In|1<<session.Out {
		t.Fatalf("XDP %b with both directions offloaded", x)
	}
}

// TestXDPOffloadHold: when a direction the program forwarded is taken back
// (here by an edit of its service), its next packets are held for
// xdpDrainHold, in order, while the program's last ones may still be in
// the kernel, then sent in the order they came; the direction is not
// offloaded again meanwhile. A direction the program never forwarded (the
// server's, still armed) is not held.
func TestXDPOffloadHold(t *testing.T) {
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 80}
	td, fs := xdpTestDP(t)
	client, vp, rs := netip.AddrPortFrom(clientIP, 40010), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
	lport, cliData := xdpActiveConn(t, td, fs, client, vp, rs)
	lp := netip.AddrPortFrom(lip, lport)
	srvData := func(seq uint32) []byte {
		return tcpFrame(t, tcpSeg{src: rs, dst: lp, smac: macRS1, dmac: macDP1, ack: true, seq: seq, ackn: 1030, payload: []byte("answer")})
	}
	if ret, _ := runXDP(t, fs[0], cliData(1048)); ret != 4 {
		t.Fatalf("action %d, want XDP_REDIRECT", ret)
	}
	if err := td.d.EditService(ipvs.ServiceSpec{Key: k, Sched: "wrr"}); err != nil {
		t.Fatal(err)
	}
	td.w.iterate() // takes the connection back
	if len(td.w.xdp.conns) != 0 {
		t.Fatalf("%d connections still offloaded after the edit", len(td.w.xdp.conns))
	}
	// the server's direction was never forwarded by the program: at once
	td.one(t, 1, srvData(5001), 0)
	// the client's: held, in order, and not offloaded again meanwhile
	seqs := []uint32{1057, 1066, 1075}
	for _, s := range seqs {
		td.inject(0, cliData(s))
	}
	td.stepAll()
	if fr := td.outAll(1); len(fr) != 0 || td.sum(CtrLBXDPHeld) != 3 {
		t.Fatalf("%d frames sent at once, %d held; want the 3 held", len(fr), td.sum(CtrLBXDPHeld))
	}
	if _, err := fs[0].Lookup(xdpfast.Key{Proto: header.ProtoTCP, Src: client.Addr(), Dst: vp.Addr(), SrcPort: client.Port(), DstPort: vp.Port()}); !errors.Is(err, xdpfast.ErrNotExist) {
		t.Fatalf("offloaded again while its packets are held: %v", err)
	}
	td.d.start = td.d.start.Add(-time.Duration(xdpDrainHold))
	td.stepAll()
	fr := td.outAll(1)
	if len(fr) != len(seqs) {
		t.Fatalf("%d frames after the hold, want %d", len(fr), len(seqs))
	}
	for i, f := range fr {
		if d := decodeL4(t, f); d.tcp == nil || d.tcp.Seq != seqs[i] || d.dst != rs {
			t.Fatalf("frame %d after the hold: %+v, want seq %d to %v", i, d, seqs[i], rs)
		}
	}
	// the next segment offloads the direction again
	td.one(t, 0, cliData(1084), 1)
	if len(td.w.xdp.conns) != 1 || td.w.xdp.conns[0].dirs&(1<<session.In) == 0 {
		t.Fatalf("not offloaded again after the hold: %+v", td.w.xdp.conns)
	}
}

// TestXDPOffloadHoldAcked: the hold after a take-back ends as soon as the
// other direction acknowledges everything the program forwarded of the
// held direction — the peer has received it, so the held segments cannot
// overtake any — without waiting out xdpDrainHold; an acknowledgment short
// of it does not. What was held goes in order, and the direction's next
// segments are not held.
func TestXDPOffloadHoldAcked(t *testing.T) {
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 80}
	td, fs := xdpTestDP(t)
	client, vp, rs := netip.AddrPortFrom(clientIP, 40014), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
	lport, cliData := xdpActiveConn(t, td, fs, client, vp, rs)
	fr := connFrames{t, client, vp, rs, netip.AddrPortFrom(lip, lport)}
	if ret, _ := runXDP(t, fs[0], cliData(1048)); ret != 4 { // the program forwards 1048 to 1057
		t.Fatalf("action %d, want XDP_REDIRECT", ret)
	}
	if err := td.d.EditService(ipvs.ServiceSpec{Key: k, Sched: "wrr"}); err != nil {
		t.Fatal(err)
	}
	td.w.iterate() // takes the connection back
	seqs := []uint32{1057, 1066}
	for _, s := range seqs {
		td.inject(0, cliData(s))
	}
	td.stepAll()
	if got := td.outAll(1); len(got) != 0 || td.sum(CtrLBXDPHeld) != 2 {
		t.Fatalf("%d frames sent at once, %d held; want the 2 held", len(got), td.sum(CtrLBXDPHeld))
	}
	td.one(t, 1, fr.srvAck(1056), 0) // short of 1057: the hold goes on
	if got := td.outAll(1); len(got) != 0 || td.sum(CtrLBXDPHoldAcked) != 0 {
		t.Fatalf("after an acknowledgment short of the program's last segment: %d frames, %d drains ended", len(got), td.sum(CtrLBXDPHoldAcked))
	}
	if n := len(td.w.xdp.drain); n != 1 {
		t.Fatalf("%d directions drain, want the client's", n)
	}
	td.one(t, 1, fr.srvAck(1057), 0) // everything the program forwarded has arrived
	got := td.outAll(1)
	if len(got) != len(seqs) || td.sum(CtrLBXDPHoldAcked) != 1 {
		t.Fatalf("%d frames, %d drains ended after the acknowledgment of 1057, want the %d held at once", len(got), td.sum(CtrLBXDPHoldAcked), len(seqs))
	}
	for i, f := range got {
		if d := decodeL4(t, f); d.tcp == nil || d.tcp.Seq != seqs[i] || d.dst != rs {
			t.Fatalf("frame %d: %+v, want seq %d to %v", i, d, seqs[i], rs)
		}
	}
	td.inject(0, cliData(1075)) // not held any more
	td.stepAll()
	if got := td.outAll(1); len(got) != 1 || td.sum(CtrLBXDPHeld) != 2 {
		t.Fatalf("the next segment: %d frames, %d held in all; want it sent at once", len(got), td.sum(CtrLBXDPHeld))
	}
}

// TestXDPOffloadAfter: a TCP direction is offloaded only after the worker
// forwarded xdpTCPAfter established segments of it, so a short connection
// never costs the map's system calls; each direction counts its own, and
// a connection that ends leaves its slot counting from nothing.
func TestXDPOffloadAfter(t *testing.T) {
	td, fs := xdpTestDP(t)
	td.w.xdp.after = xdpTCPAfter
	client, vp, rs := netip.AddrPortFrom(clientIP, 40012), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
	lport := fullNATHandshake(t, td, client, vp, rs)
	lp := netip.AddrPortFrom(lip, lport)
	in := xdpfast.Key{Proto: header.ProtoTCP, Src: client.Addr(), Dst: vp.Addr(), SrcPort: client.Port(), DstPort: vp.Port()}
	out := xdpfast.Key{Proto: header.ProtoTCP, Src: rs.Addr(), Dst: lip, SrcPort: rs.Port(), DstPort: lport}
	offloaded := func(f *xdpfast.Fast, k xdpfast.Key) bool {
		_, err := f.Lookup(k)
		return err == nil
	}
	td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: lp, smac: macRS1, dmac: macDP1, ack: true, seq: 5001, ackn: 1030}), 0) // confirms the TOA
	for i := range xdpTCPAfter {
		td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, seq: uint32(1030 + 4*i), ackn: 5001, payload: []byte("data")}), 1)
		if offloaded(fs[0], in) {
			t.Fatalf("client direction offloaded after %d segments", i+1)
		}
	}
	if offloaded(fs[1], out) {
		t.Fatal("server direction offloaded by the client's segments")
	}
	td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, seq: 1030 + 4*xdpTCPAfter, ackn: 5001, payload: []byte("data")}), 1)
	if !offloaded(fs[0], in) || td.sum(CtrLBXDPOffloaded) != 1 {
		t.Fatalf("client direction not offloaded by segment %d (offloaded %d)", xdpTCPAfter+1, td.sum(CtrLBXDPOffloaded))
	}
	// the connection ends: its slot's next connection counts from nothing
	id := td.w.xdp.conns[0].id
	if td.w.xdp.seen[id] == 0 {
		t.Fatal("no segments counted")
	}
	td.w.sess.Flush(td.w.onExpire)
	if n := td.w.xdp.seen[id]; n != 0 || offloaded(fs[0], in) {
		t.Fatalf("after the end: %#x segments counted, offloaded %v", n, offloaded(fs[0], in))
	}
}

// TestXDPOffloadSync: the client packets the program forwards count for
// session sync as if the worker had seen them: the sweep that reads them
// publishes the connection at every period, so a backup's copy of a long
// offloaded connection is refreshed.
func TestXDPOffloadSync(t *testing.T) {
	td, fs := xdpTestDP(t)
	setSync(td, SyncPolicy{Threshold: 3, Period: 4})
	client, vp, rs := netip.AddrPortFrom(clientIP, 40016), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
	_, cliData := xdpActiveConn(t, td, fs, client, vp, rs)
	popSync(td)
	// 8 client packets through the program only: two periods of 4
	for i := range 8 {
		if ret, _ := runXDP(t, fs[0], cliData(uint32(1048+9*i))); ret != 4 {
			t.Fatalf("action %d, want XDP_REDIRECT", ret)
		}
	}
	if ev := popSync(td); len(ev) != 0 {
		t.Fatalf("%d events before the sweep read the program's counts", len(ev))
	}
	td.w.xdp.pass = td.w.now - 2*xdpSweepEvery // a sweep pass is due
	td.w.iterate()
	ev := popSync(td)
	if len(ev) != 2 {
		t.Fatalf("%d events after the sweep read 8 client packets with period 4, want 2: %+v", len(ev), ev)
	}
	for _, e := range ev {
		if e.Kind != SyncUpdate || e.Client != client || e.State != session.StateEstablished {
			t.Fatalf("event %+v, want an update of the established connection", e)
		}
	}
}

// TestXDPOffloadRST: a RST reaches the worker (the program leaves it to
// the workers), which takes both directions of the offloaded connection
// back and forwards the RST, translated, to the other side: at once from
// the server (the program never forwarded that direction), after the
// hold from the client (it did). The connection closes as any other.
func TestXDPOffloadRST(t *testing.T) {
	for _, fromClient := range []bool{false, true} {
		t.Run(map[bool]string{false: "server", true: "client"}[fromClient], func(t *testing.T) {
			td, fs := xdpTestDP(t)
			client, vp, rs := netip.AddrPortFrom(clientIP, 40018), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
			lport, cliData := xdpActiveConn(t, td, fs, client, vp, rs)
			lp := netip.AddrPortFrom(lip, lport)
			if ret, _ := runXDP(t, fs[0], cliData(1048)); ret != 4 {
				t.Fatalf("action %d, want XDP_REDIRECT", ret)
			}
			rst := tcpFrame(t, tcpSeg{src: rs, dst: lp, smac: macRS1, dmac: macDP1, rst: true, ack: true, seq: 5001, ackn: 1057})
			in, out, to := 1, 0, client
			if fromClient {
				rst = tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, rst: true, ack: true, seq: 1057, ackn: 5001})
				in, out, to = 0, 1, rs
			}
			if ret, got := runXDP(t, fs[in], rst); ret == 4 || !bytes.Equal(got[:len(rst)], rst) {
				t.Fatalf("the program forwarded a RST (action %d)", ret)
			}
			td.inject(in, rst)
			td.stepAll()
			if len(td.w.xdp.conns) != 0 || td.sum(CtrLBXDPRemoved) != 2 {
				t.Fatalf("after the RST: %d connections offloaded, %d directions removed; want both taken back", len(td.w.xdp.conns), td.sum(CtrLBXDPRemoved))
			}
			fr := td.outAll(out)
			if fromClient {
				if len(fr) != 0 {
					t.Fatalf("the client's RST sent at once after fast segments of its direction")
				}
				td.d.start = td.d.start.Add(-time.Duration(xdpDrainHold))
				td.stepAll()
				fr = td.outAll(out)
			}
			if len(fr) != 1 {
				t.Fatalf("%d frames for the RST, want 1", len(fr))
			}
			if d := decodeL4(t, fr[0]); d.tcp == nil || !d.tcp.RST || d.dst != to {
				t.Fatalf("forwarded %+v, want the RST to %v", d, to)
			}
			var conns []ConnInfo
			if err := td.d.ListConns(context.Background(), nil, func(p []ConnInfo) error { conns = append(conns, p...); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(conns) != 1 || conns[0].State != session.StateClose || conns[0].XDP != 0 {
				t.Fatalf("connections after the RST: %+v, want it in CLOSE and not offloaded", conns)
			}
		})
	}
}
