//go:build linux

package dataplane

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/gvs-lb/gvs/dataplane/port/afxdp/xdpfast"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

// xdpTestDP is the FullNAT test dataplane with a real XDP fast path (its
// maps and program, loaded but attached to nothing) standing behind each
// of its two mem ports: the worker writes entries, BPF_PROG_RUN shows
// what the program does with them.
func xdpTestDP(t *testing.T) (*testDP, [2]*xdpfast.Fast) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the XDP fast path's maps need root")
	}
	td := newLBTestDP(t, 1)
	var fs [2]*xdpfast.Fast
	x := &td.w.xdp
	x.init, x.on = true, true
	x.slot = make([]int32, td.w.sess.Capacity())
	x.seen = make([]uint8, td.w.sess.Capacity()) // x.after 0: offloaded by its first established segment (TestXDPOffloadAfter: by its ninth)
	for i := range fs {
		f, err := xdpfast.Load(xdpfast.Options{MaxConns: 64})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		if err := f.AddEgress(1); err != nil { // lo: BPF_PROG_RUN only records the redirect
			t.Fatal(err)
		}
		fs[i] = f
		x.ports = append(x.ports, xdpPort{t: f, ifindex: 1})
	}
	return td, fs
}

// runXDP runs frame through f's program and returns the action and frame.
func runXDP(t *testing.T, f *xdpfast.Fast, frame []byte) (uint32, []byte) {
	t.Helper()
	o := ebpf.RunOptions{Data: bytes.Clone(frame), DataOut: make([]byte, len(frame)+64)}
	ret, err := f.Program().Run(&o)
	if err != nil {
		t.Fatal(err)
	}
	return ret, o.DataOut
}

// TestXDPOffload: a FullNAT TCP connection is offloaded direction by
// direction once its TOA is confirmed, each entry in the map of the port
// its packets arrive on; the program then turns the next segments into
// exactly the frames the worker sends for them. The sweep moves the
// program's counts into the destination's traffic; a FIN takes both
// directions back, with their last counts.
func TestXDPOffload(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		name := map[bool]string{false: "ipv4", true: "ipv6"}[v6]
		t.Run(name, func(t *testing.T) {
			td, fs := xdpTestDP(t)
			client, vp, rs, local := netip.AddrPortFrom(clientIP, 40000), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080), lip
			if v6 {
				td.service(ipvs.TCP, vip6, 80, "rr", lip6, netip.AddrPortFrom(rs1IP6, 8080))
				client, vp, rs, local = netip.AddrPortFrom(clientIP6, 40000), netip.AddrPortFrom(vip6, 80), netip.AddrPortFrom(rs1IP6, 8080), lip6
			}
			lport := fullNATHandshake(t, td, client, vp, rs)
			lp := netip.AddrPortFrom(local, lport)
			in := xdpfast.Key{Proto: header.ProtoTCP, Src: client.Addr(), Dst: vp.Addr(), SrcPort: client.Port(), DstPort: vp.Port()}
			out := xdpfast.Key{Proto: header.ProtoTCP, Src: rs.Addr(), Dst: local, SrcPort: rs.Port(), DstPort: lport}
			if _, err := fs[0].Lookup(in); !errors.Is(err, xdpfast.ErrNotExist) {
				t.Fatalf("client direction offloaded before the TOA is confirmed: %v", err)
			}
			// the server's ACK confirms the TOA: its direction is offloaded,
			// into the map of dp1 where server packets arrive
			cliData := func(seq uint32) []byte {
				return tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: seq, ackn: 5101, payload: []byte("hello world")})
			}
			srvData := func(seq uint32) []byte {
				return tcpFrame(t, tcpSeg{src: rs, dst: lp, smac: macRS1, dmac: macDP1, ack: true, psh: true, seq: seq, ackn: 1030, payload: []byte("HTTP/1.0 200")})
			}
			td.one(t, 1, srvData(5001), 0)
			if _, err := fs[1].Lookup(out); err != nil {
				t.Fatalf("server direction not offloaded after the TOA was confirmed: %v", err)
			}
			td.one(t, 0, cliData(1030), 1)
			if _, err := fs[0].Lookup(in); err != nil {
				t.Fatalf("client direction not offloaded: %v", err)
			}
			if td.sum(CtrLBXDPOffloaded) != 2 || td.sum(CtrLBXDPOffloadFailed) != 0 {
				t.Fatalf("counters %v", nonZero(func() [NumCounters]uint64 { c, _ := td.w.Stats(); return c }()))
			}
			// the program does what the worker does, both ways, once each
			// entry is active: it passed a segment to the worker and the
			// worker sent it
			xdpPrime(t, td, fs[0], 0, cliData(1041), 1)
			xdpPrime(t, td, fs[1], 1, srvData(5013), 0)
			for _, c := range []struct {
				f          *xdpfast.Fast
				frame      []byte
				in, outIdx int
			}{{fs[0], cliData(1052), 0, 1}, {fs[1], srvData(5025), 1, 0}} {
				ret, got := runXDP(t, c.f, c.frame)
				if ret != 4 {
					t.Fatalf("program action %d, want XDP_REDIRECT", ret)
				}
				td.inject(c.in, c.frame)
				td.stepAll()
				fr := td.outAll(c.outIdx)
				if len(fr) != 1 || !bytes.Equal(fr[0], got) {
					t.Fatalf("program and worker differ:\n program %x\n worker  %v", got, fr)
				}
				decodeL4(t, got) // checksums verified
			}
			svc := td.d.IPVS().Table().Services[len(td.d.IPVS().Table().Services)-1]
			before := td.d.DestTraffic(svc.Dests[0].ID)
			// three more client segments through the program only: the sweep
			// moves them into the destination's traffic
			var n uint64
			for i := range 3 {
				f := cliData(uint32(1063 + 11*i))
				if ret, _ := runXDP(t, fs[0], f); ret != 4 {
					t.Fatalf("action %d", ret)
				}
				n += uint64(len(f) - 14)
			}
			td.w.xdp.pass = td.w.now - 2*xdpSweepEvery // a pass is due
			td.w.iterate()
			after := td.d.DestTraffic(svc.Dests[0].ID)
			// +1 each: the segment the program ran in the comparison above
			wantIn := before.InPkts + 4
			if after.InPkts != wantIn || after.InBytes != before.InBytes+n+uint64(len(cliData(0))-14) || after.OutPkts != before.OutPkts+1 {
				t.Fatalf("traffic %+v after the sweep, before %+v; want %d in packets", after, before, wantIn)
			}
			// FIN: both directions back to the slow path. The program
			// forwarded segments of the client's direction, which the kernel
			// may not have delivered yet: the FIN waits xdpDrainHold, then
			// goes, translated as ever
			fin := tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, fin: true, seq: 1096, ackn: 5101})
			td.inject(0, fin)
			td.stepAll()
			if fr := td.outAll(1); len(fr) != 0 || td.sum(CtrLBXDPHeld) != 1 {
				t.Fatalf("the FIN after fast segments: %d frames sent at once, %d held; want it held", len(fr), td.sum(CtrLBXDPHeld))
			}
			td.d.start = td.d.start.Add(-time.Duration(xdpDrainHold))
			td.stepAll()
			if fr := td.outAll(1); len(fr) != 1 {
				t.Fatalf("%d frames once the hold is over, want the FIN", len(fr))
			} else if d := decodeL4(t, fr[0]); d.tcp == nil || !d.tcp.FIN || d.tcp.Seq != 1096 || d.dst != rs {
				t.Fatalf("released %+v, want the FIN to %v", d, rs)
			}
			for i, k := range []xdpfast.Key{in, out} {
				if _, err := fs[i].Lookup(k); !errors.Is(err, xdpfast.ErrNotExist) {
					t.Fatalf("entry %v after FIN: %v", k, err)
				}
			}
			if td.sum(CtrLBXDPRemoved) != 2 || len(td.w.xdp.conns) != 0 {
				t.Fatalf("removed %d, %d still offloaded", td.sum(CtrLBXDPRemoved), len(td.w.xdp.conns))
			}
			if ret, got := runXDP(t, fs[0], cliData(1096)); ret == 4 || !bytes.Equal(got, cliData(1096)) {
				t.Fatalf("after FIN the program still forwards: action %d", ret)
			}
		})
	}
}

// TestXDPOffloadEnds: a neighbour whose MAC changes takes back the
// connections whose entries send to it, until their next packets offload
// them again; a connection that ends (here: flushed, as expiry and
// eviction do through connRelease) leaves the fast path.
func TestXDPOffloadEnds(t *testing.T) {
	td, fs := xdpTestDP(t)
	client, vp, rs := netip.AddrPortFrom(clientIP, 40002), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
	lport := fullNATHandshake(t, td, client, vp, rs)
	td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: netip.AddrPortFrom(lip, lport), smac: macRS1, dmac: macDP1, ack: true, seq: 5001, ackn: 1030}), 0)
	td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 1030, ackn: 5001, payload: []byte("more data")}), 1)
	if len(td.w.xdp.conns) != 1 || td.w.xdp.conns[0].dirs != 3 {
		t.Fatalf("offloaded %+v, want one connection, both directions", td.w.xdp.conns)
	}
	in := xdpfast.Key{Proto: header.ProtoTCP, Src: client.Addr(), Dst: vp.Addr(), SrcPort: client.Port(), DstPort: vp.Port()}
	// the real server's MAC changes: its connection is taken back, and
	// offloaded again with the new MAC by its next packets
	moved := header.MAC{0x02, 0, 0, 0, 0, 0x99}
	if err := td.d.AddNeigh(rs1IP, moved, "dp1"); err != nil {
		t.Fatal(err)
	}
	td.d.publishNeigh()
	td.w.iterate()
	if _, err := fs[0].Lookup(in); !errors.Is(err, xdpfast.ErrNotExist) || len(td.w.xdp.conns) != 0 || td.sum(CtrLBXDPRemoved) != 2 {
		t.Fatalf("after the neighbour moved: entry %v, %d offloaded, %d removed", err, len(td.w.xdp.conns), td.sum(CtrLBXDPRemoved))
	}
	td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 1039, ackn: 5001, payload: []byte("again")}), 1)
	if e, err := fs[0].Lookup(in); err != nil || e.DstMAC != moved {
		t.Fatalf("offloaded again: %+v %v, want the next hop's new MAC", e, err)
	}
	td.w.sess.Flush(td.w.onExpire)
	if _, err := fs[0].Lookup(in); !errors.Is(err, xdpfast.ErrNotExist) || len(td.w.xdp.conns) != 0 {
		t.Fatalf("after the connection ended: entry %v, %d offloaded", err, len(td.w.xdp.conns))
	}
}

// xdpPrime takes an armed TCP entry (in f, of port in) to where it
// forwards: the program passes frame, a segment at the worker's mark, to
// the worker (nothing had passed since the entry was written, so earlier
// segments could still be queued), and the worker sends it (out of port
// out), which moves the mark past it.
func xdpPrime(t *testing.T, td *testDP, f *xdpfast.Fast, in int, frame []byte, out int) {
	t.Helper()
	if ret, got := runXDP(t, f, frame); ret == 4 || !bytes.Equal(got[:len(frame)], frame) {
		t.Fatalf("a segment at the mark of a fresh armed entry: action %d, want the worker's path, unchanged", ret)
	}
	td.one(t, in, frame, out)
	xdpSettle(t, td)
}

// xdpSettle lets the worker's last segments settle (xdpArmSettle) and runs
// it once, so that it writes the marks they moved: until then a mark
// stays with the worker, unless the other direction acknowledged it
// (xdpAcked: then it is written at once).
func xdpSettle(t *testing.T, td *testDP) {
	t.Helper()
	td.stepAll()
	td.d.start = td.d.start.Add(-time.Duration(xdpArmSettle))
	td.stepAll()
	if len(td.w.xdp.marks) != 0 {
		t.Fatalf("marks of %v still not written after xdpArmSettle", td.w.xdp.marks)
	}
}

// xdpActiveConn makes a FullNAT connection from client through vp to rs
// with both directions offloaded (the server's ACK confirms the TOA and
// offloads its direction, the client's segment 1030 its own) and the
// client's entry active (xdpPrime with segment 1039: the program forwards
// the next client segment, 1048). It returns the local port and the
// client's 9-byte data segments by sequence number.
func xdpActiveConn(t *testing.T, td *testDP, fs [2]*xdpfast.Fast, client, vp, rs netip.AddrPort) (uint16, func(seq uint32) []byte) {
	t.Helper()
	lport := fullNATHandshake(t, td, client, vp, rs)
	td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: netip.AddrPortFrom(lip, lport), smac: macRS1, dmac: macDP1, ack: true, seq: 5001, ackn: 1030}), 0)
	cliData := func(seq uint32) []byte {
		return tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: seq, ackn: 5001, payload: []byte("more data")})
	}
	td.one(t, 0, cliData(1030), 1)
	xdpPrime(t, td, fs[0], 0, cliData(1039), 1)
	return lport, cliData
}

// connFrames builds frames of a FullNAT connection from client through vp
// to rs, by local address and port lp: the client's 9-byte data segments
// (acknowledging 5001), the server's pure ACKs (at 5001) and its 100-byte
// data segments.
type connFrames struct {
	t                  *testing.T
	client, vp, rs, lp netip.AddrPort
}

func (f connFrames) cli(seq uint32) []byte {
	return tcpFrame(f.t, tcpSeg{src: f.client, dst: f.vp, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: seq, ackn: 5001, payload: []byte("more data")})
}

func (f connFrames) srvAck(ack uint32) []byte {
	return tcpFrame(f.t, tcpSeg{src: f.rs, dst: f.lp, smac: macRS1, dmac: macDP1, ack: true, seq: 5001, ackn: ack})
}

func (f connFrames) srvData(seq, ack uint32) []byte {
	return tcpFrame(f.t, tcpSeg{src: f.rs, dst: f.lp, smac: macRS1, dmac: macDP1, ack: true, psh: true, seq: seq, ackn: ack, payload: make([]byte, 100)})
}

// xdpServerActive is xdpActiveConn from clientIP:cport with the server's
// entry active too: the program passes the server's segment 5001 to 5101
// (nothing had passed since its entry was written) and the worker sends
// it, so the program forwards the server's next segment. It returns the
// connection's frames.
func xdpServerActive(t *testing.T, td *testDP, fs [2]*xdpfast.Fast, cport uint16) connFrames {
	t.Helper()
	client, vp, rs := netip.AddrPortFrom(clientIP, cport), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
	lport, _ := xdpActiveConn(t, td, fs, client, vp, rs)
	fr := connFrames{t, client, vp, rs, netip.AddrPortFrom(lip, lport)}
	xdpPrime(t, td, fs[1], 1, fr.srvData(5001, 1039), 0)
	return fr
}

// TestXDPOffloadExpireReset: a connection whose real server's direction
// goes by the fast path still gets its resets when it expires (as
// TestExpireResetsBothEnds without the fast path): the program noted the
// server's segments it forwarded, and the worker resets the server at the
// last acknowledgment number the program saw and the client at the end of
// the server's data the program forwarded, not at the older numbers of the
// segments the worker itself forwarded. An old retransmission through the
// program does not move them back.
func TestXDPOffloadExpireReset(t *testing.T) {
	td, fs := xdpTestDP(t)
	// the server's entry, armed since its ACK (5001, acknowledging 1030),
	// becomes active with a segment through the worker (5001 to 5101)
	fr := xdpServerActive(t, td, fs, 40004)
	client, vp, rs, lp, cliData, srvData := fr.client, fr.vp, fr.rs, fr.lp, fr.cli, fr.srvData
	// then the client's request and the server's answer go fast only
	for _, f := range []struct {
		fast  *xdpfast.Fast
		frame []byte
	}{
		{fs[0], cliData(1048)},
		{fs[1], srvData(5101, 1057)},
		{fs[1], srvData(5201, 1057)},
		{fs[1], srvData(5101, 1048)}, // an old retransmission
	} {
		if ret, _ := runXDP(t, f.fast, f.frame); ret != 4 {
			t.Fatalf("action %d, want XDP_REDIRECT", ret)
		}
	}
	if e := td.w.sess.Ends(td.w.xdp.conns[0].id); e.Next != 5101 || e.Ack != 1039 {
		t.Fatalf("the worker noted %+v, want its own last server segment (5101, 1039)", e)
	}
	// a sweep takes the program's counts (they re-arm the connection's
	// timer), then the connection expires
	td.w.xdp.pass = td.w.now - 2*xdpSweepEvery
	td.w.iterate()
	srv, cli := td.expireResets(t)
	wantReset(t, "to the server", srv, lp, rs, 1057)
	wantReset(t, "to the client", cli, vp, client, 5301)
	if td.sum(CtrLBResetServer) != 1 || td.sum(CtrLBResetClient) != 1 || td.sum(CtrLBXDPRemoved) != 2 {
		t.Fatalf("counters %v", nonZero(func() [NumCounters]uint64 { c, _ := td.w.Stats(); return c }()))
	}
}

// TestXDPOffloadSyncForgetsEnds: a session sync update for a connection
// (another node carries the flow) makes this node forget its server
// numbers, those the program noted included: when the connection expires
// here, no reset goes out. Unless the program forwards server segments
// after the update (the flow runs through this node again): then their
// numbers reset both ends.
func TestXDPOffloadSyncForgetsEnds(t *testing.T) {
	for _, again := range []bool{false, true} {
		t.Run(map[bool]string{false: "moved", true: "back"}[again], func(t *testing.T) {
			td, fs := xdpTestDP(t)
			fr := xdpServerActive(t, td, fs, 40005)
			client, vp, rs, lp, srvData := fr.client, fr.vp, fr.rs, fr.lp, fr.srvData
			if ret, _ := runXDP(t, fs[1], srvData(5101, 1048)); ret != 4 {
				t.Fatalf("action %d, want XDP_REDIRECT", ret)
			}
			res, err := td.d.InstallSynced([]SyncConn{{Kind: SyncUpdate, Proto: header.ProtoTCP, State: session.StateEstablished,
				Client: client, Virtual: vp, Local: lp, Dest: rs}})
			if err != nil || res.Updated != 1 {
				t.Fatalf("sync update: %+v %v", res, err)
			}
			if again {
				if ret, _ := runXDP(t, fs[1], srvData(5201, 1057)); ret != 4 {
					t.Fatalf("action %d, want XDP_REDIRECT", ret)
				}
			}
			td.w.xdp.pass = td.w.now - 2*xdpSweepEvery
			td.w.iterate()
			if !again {
				td.expireAll(t, 20*time.Minute)
				if n, srv, cli := td.w.sess.Len(), td.outAll(1), td.outAll(0); n != 0 || len(srv) != 0 || len(cli) != 0 {
					t.Fatalf("after the expiry: %d conns, %d frames to the server, %d to the client; want none", n, len(srv), len(cli))
				}
				return
			}
			srv, cli := td.expireResets(t)
			wantReset(t, "to the server", srv, lp, rs, 1057)
			wantReset(t, "to the client", cli, vp, client, 5301)
		})
	}
}
