package dataplane

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"testing"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

// popSync drains every worker's sync ring into events, as DrainSync does.
func popSync(td *testDP) []SyncConn {
	var out []SyncConn
	to := td.d.Timeouts()
	for _, w := range td.d.workers {
		for {
			r, ok := w.syncOut.Pop()
			if !ok {
				break
			}
			out = append(out, syncConnOf(&r, w.id, to))
		}
	}
	return out
}

func setSync(td *testDP, p SyncPolicy) {
	td.d.syncPol.Store(&p)
	td.stepAll() // workers load the policy
}

func TestSyncPublishesEstablishedConn(t *testing.T) {
	td := newLBTestDP(t, 1)
	setSync(td, SyncPolicy{Threshold: 3, Period: 2})
	client, vp, rs := netip.AddrPortFrom(clientIP, 40000), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
	lport := fullNATHandshake(t, td, client, vp, rs) // SYN, ACK, data: 3 client packets
	ev := popSync(td)
	if len(ev) != 1 {
		t.Fatalf("%d events after the handshake, want 1: %+v", len(ev), ev)
	}
	want := SyncConn{Kind: SyncUpdate, Proto: header.ProtoTCP, State: session.StateEstablished, Client: client, Virtual: vp,
		Local: netip.AddrPortFrom(lip, lport), Dest: rs, Timeout: td.d.Timeouts().Established}
	if ev[0] != want {
		t.Fatalf("event %+v, want %+v", ev[0], want)
	}
	// period 2: every second client packet after the threshold
	data := tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 1019, ackn: 5001, payload: []byte("x")})
	for i := 0; i < 4; i++ {
		td.one(t, 0, data, 1)
	}
	if ev := popSync(td); len(ev) != 2 {
		t.Fatalf("%d events after 4 more packets with period 2, want 2", len(ev))
	}
	// a FIN: a state change of a published conn
	td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: netip.AddrPortFrom(lip, lport), smac: macRS1, dmac: macDP1, fin: true, ack: true, seq: 5001, ackn: 1020}), 0)
	ev = popSync(td)
	if len(ev) != 1 || ev[0].State != session.StateFinWait || ev[0].Timeout != td.d.Timeouts().FinWait {
		t.Fatalf("after the server's FIN: %+v", ev)
	}
	// expiry publishes the deletion
	td.w.sess.ExpireNow(0)
	td.stepAll()
	ev = popSync(td)
	if len(ev) != 1 || ev[0].Kind != SyncDelete || ev[0].Client != client {
		t.Fatalf("after expiry: %+v", ev)
	}
	if got := td.sum(CtrSyncPublished); got != 5 {
		t.Errorf("sync_published = %d, want 5", got)
	}
}

func TestSyncQuietWithoutConsumerAndUDPByPolicy(t *testing.T) {
	td := newLBTestDP(t, 1)
	td.service(ipvs.UDP, vip, 9000, "rr", lip, netip.AddrPortFrom(rs1IP, 9001))
	client, vp := netip.AddrPortFrom(clientIP, 40000), netip.AddrPortFrom(vip, 80)
	fullNATHandshake(t, td, client, vp, netip.AddrPortFrom(rs1IP, 8080))
	if ev := popSync(td); len(ev) != 0 {
		t.Fatalf("events without a consumer: %+v", ev)
	}
	uc := netip.AddrPortFrom(clientIP, 5353)
	q := udpFrame(t, macClient, macDP0, uc, netip.AddrPortFrom(vip, 9000), []byte("q"))
	setSync(td, SyncPolicy{Threshold: 1})
	td.one(t, 0, q, 1)
	if ev := popSync(td); len(ev) != 0 {
		t.Fatalf("UDP published without the UDP policy: %+v", ev)
	}
	setSync(td, SyncPolicy{Threshold: 1, UDP: true})
	td.one(t, 0, udpFrame(t, macClient, macDP0, netip.AddrPortFrom(clientIP, 5354), netip.AddrPortFrom(vip, 9000), []byte("q")), 1)
	ev := popSync(td)
	if len(ev) != 1 || ev[0].State != session.StateUDP || ev[0].Proto != header.ProtoUDP || ev[0].Timeout != td.d.Timeouts().UDP {
		t.Fatalf("UDP events with the policy: %+v", ev)
	}
}

func TestSyncRingFullCounted(t *testing.T) {
	td := newLBTestDP(t, 1)
	td.w.syncOut = newSyncRing(2)
	setSync(td, SyncPolicy{Threshold: 1, UDP: true})
	td.service(ipvs.UDP, vip, 9000, "rr", lip, netip.AddrPortFrom(rs1IP, 9001))
	for i := 0; i < 3; i++ {
		td.one(t, 0, udpFrame(t, macClient, macDP0, netip.AddrPortFrom(clientIP, uint16(5000+i)), netip.AddrPortFrom(vip, 9000), []byte("q")), 1)
	}
	if got := td.sum(CtrSyncDropRingFull); got != 1 {
		t.Errorf("sync_drop_ring_full = %d, want 1", got)
	}
	if got := len(popSync(td)); got != 2 {
		t.Errorf("%d events in the ring, want 2", got)
	}
}

// TestSyncInstallForwardsMidConnection: a connection established on one
// dataplane is installed on another, whose next client segment (ACK with
// data) goes to the same real server from the same local address and
// port, and whose server reply goes back to the client from the VIP.
func TestSyncInstallForwardsMidConnection(t *testing.T) {
	for _, workers := range []int{1, 2} {
		a, b := newLBTestDP(t, workers), newLBTestDP(t, workers)
		setSync(a, SyncPolicy{Threshold: 3})
		client, vp, rs := netip.AddrPortFrom(clientIP, 40000), netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
		lport := fullNATHandshake(t, a, client, vp, rs)
		ev := popSync(a)
		if len(ev) != 1 {
			t.Fatalf("%d events", len(ev))
		}
		res, err := b.d.InstallSynced(ev)
		if err != nil || res != (SyncInstallResult{Installed: 1}) {
			t.Fatalf("InstallSynced = %+v, %v", res, err)
		}
		owner := b.d.steer.Owner(lport)
		for i, w := range b.d.workers {
			if n, want := w.sess.Len(), map[bool]int{true: 1, false: 0}[i == owner]; n != want {
				t.Fatalf("%d workers: worker %d holds %d conns, want %d", workers, i, n, want)
			}
		}
		c := b.d.workers[owner].sess.Get(0)
		if c.Flags&session.FlagSynced == 0 || c.State != session.StateEstablished {
			t.Errorf("installed conn flags %b state %s", c.Flags, c.State)
		}
		if got, want := b.d.workers[owner].pool.Free(lip, rs), b.d.workers[owner].pool.PortsPerServer()-1; got != want {
			t.Errorf("free ports towards rs on the owner %d, want %d (the port reserved)", got, want)
		}
		svc := b.d.IPVS().Table().Services[0]
		if act := svc.Dests[0].C.Active.Load(); act != 1 {
			t.Errorf("ActiveConn on the second dataplane %d, want 1", act)
		}
		// the client side arrives on the owner's queue (same RSS on both nodes)
		b.injectQ(0, owner, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true,
			seq: 1019, ackn: 5001, payload: []byte("more data")}))
		b.stepAll()
		out := b.outAll(1)
		if len(out) != 1 {
			ctr, _ := b.d.workers[owner].Stats()
			t.Fatalf("%d frames towards the servers, counters %v", len(out), nonZero(ctr))
		}
		d := decodeL4(t, out[0])
		if d.src != netip.AddrPortFrom(lip, lport) || d.dst != rs || string(d.tcp.Payload) != "more data" || d.tcp.Seq != 1019 ||
			!d.tcp.ACK || d.tcp.Ack != 5001 || toaOf(d.tcp) != nil {
			t.Fatalf("mid-connection segment out: %s -> %s seq %d ack %d payload %q toa %x", d.src, d.dst, d.tcp.Seq, d.tcp.Ack, d.tcp.Payload, toaOf(d.tcp))
		}
		// the reply, on any queue, reaches the owner and the client
		b.injectQ(1, 0, tcpFrame(t, tcpSeg{src: rs, dst: netip.AddrPortFrom(lip, lport), smac: macRS1, dmac: macDP1, ack: true, psh: true,
			seq: 5001, ackn: 1028, payload: []byte("reply")}))
		b.stepAll()
		out = b.outAll(0)
		if len(out) != 1 {
			t.Fatalf("%d frames towards the client", len(out))
		}
		if d := decodeL4(t, out[0]); d.src != vp || d.dst != client || string(d.tcp.Payload) != "reply" {
			t.Fatalf("reply out: %s -> %s %q", d.src, d.dst, d.tcp.Payload)
		}
		// a second install refreshes; a deletion leaves a conn that has seen a client packet here
		if res, _ := b.d.InstallSynced(ev); res != (SyncInstallResult{Updated: 1}) {
			t.Errorf("re-install = %+v, want one update", res)
		}
		setSync(b, SyncPolicy{Threshold: 3})
		b.injectQ(0, owner, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, seq: 1028, ackn: 5006}))
		b.stepAll()
		b.outAll(1)
		del := ev[0]
		del.Kind = SyncDelete
		if res, _ := b.d.InstallSynced([]SyncConn{del}); res != (SyncInstallResult{}) {
			t.Errorf("deletion of a conn this node serves = %+v, want nothing done", res)
		}
		if b.sum(CtrSyncInstalled) != 1 || b.sum(CtrSyncUpdated) != 1 {
			t.Errorf("sync_installed %d sync_updated %d", b.sum(CtrSyncInstalled), b.sum(CtrSyncUpdated))
		}
	}
}

func TestSyncInstallRefusesAndDeletes(t *testing.T) {
	b := newLBTestDP(t, 1)
	rs := netip.AddrPortFrom(rs1IP, 8080)
	good := SyncConn{Kind: SyncUpdate, Proto: header.ProtoTCP, State: session.StateEstablished, Client: netip.MustParseAddrPort("10.9.0.1:1234"),
		Virtual: netip.AddrPortFrom(vip, 80), Local: netip.AddrPortFrom(lip, 30000), Dest: rs}
	noSvc, noRS, badState, taken := good, good, good, good
	noSvc.Virtual = netip.AddrPortFrom(vip, 81)
	noRS.Dest = netip.AddrPortFrom(rs2IP, 8080)
	badState.State = session.StateUDP
	taken.Client = netip.MustParseAddrPort("10.9.0.2:1234") // same local port towards the same server
	res, err := b.d.InstallSynced([]SyncConn{good, noSvc, noRS, badState, taken})
	if err != nil || res != (SyncInstallResult{Installed: 1, Refused: 4}) {
		t.Fatalf("InstallSynced = %+v, %v", res, err)
	}
	if got := b.sum(CtrSyncInstallRefused); got != 4 {
		t.Errorf("sync_install_refused = %d", got)
	}
	del := good
	del.Kind = SyncDelete
	if res, _ := b.d.InstallSynced([]SyncConn{del}); res != (SyncInstallResult{Deleted: 1}) {
		t.Fatalf("deletion = %+v", res)
	}
	b.stepAll()
	if n := b.w.sess.Len(); n != 0 {
		t.Errorf("%d conns after the deletion", n)
	}
	if got := b.w.pool.Free(lip, rs); got != b.w.pool.PortsPerServer() {
		t.Errorf("port not returned: %d free", got)
	}
	if _, err := b.d.InstallSynced(make([]SyncConn, MaxSyncInstall+1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized install: %v", err)
	}
}

func TestDrainSyncOneConsumer(t *testing.T) {
	td := newLBTestDP(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan []SyncConn, 4)
	done := make(chan error, 1)
	go func() {
		done <- td.d.DrainSync(ctx, SyncPolicy{Threshold: 3}, 16, 0, func(b []SyncConn) error {
			got <- append([]SyncConn(nil), b...)
			return nil
		})
	}()
	for td.d.syncPol.Load() == nil {
		runtime.Gosched() // until the consumer is attached
	}
	if err := td.d.DrainSync(ctx, SyncPolicy{Threshold: 3}, 16, 0, nil); !errors.Is(err, ErrSyncBusy) {
		t.Errorf("second consumer: %v, want ErrSyncBusy", err)
	}
	if err := td.d.DrainSync(ctx, SyncPolicy{Threshold: 0}, 16, 0, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("threshold 0: %v, want ErrInvalid", err)
	}
	td.stepAll()
	client := netip.AddrPortFrom(clientIP, 40000)
	fullNATHandshake(t, td, client, netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080))
	if b := <-got; len(b) != 1 || b[0].Client != client || b[0].State != session.StateEstablished {
		t.Fatalf("drained %+v", b)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("DrainSync ended with %v", err)
	}
	if td.d.syncPol.Load() != nil {
		t.Error("policy left set after the consumer went")
	}
}

// TestSyncReplacesMidFlowConn: a connection made here for a mid-flow
// segment (mh) before its sync arrived is replaced by the synced
// original: the flow continues from the original's local port, the
// mid-flow one's port goes back to the pool.
func TestSyncReplacesMidFlowConn(t *testing.T) {
	td := newLBTestDP(t, 1)
	mhService(t, td, true, []int{0, 1, 2, 3})
	client, vp := netip.AddrPortFrom(clientIP, 41000), netip.AddrPortFrom(vip, 443)
	ack := tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 7, ackn: 9, payload: []byte("a")})
	first := td.one(t, 0, ack, 1)
	c := td.w.sess.Get(0)
	if c == nil || c.Flags&session.FlagMidFlow == 0 {
		t.Fatalf("no mid-flow conn: %+v", c)
	}
	rs := first.dst
	orig := netip.AddrPortFrom(lip, first.src.Port()+2) // another port of this worker
	if orig.Port() < 1024 {
		orig = netip.AddrPortFrom(lip, 2048)
	}
	res, err := td.d.InstallSynced([]SyncConn{{Kind: SyncUpdate, Proto: header.ProtoTCP, State: session.StateEstablished,
		Client: client, Virtual: vp, Local: orig, Dest: rs}})
	if err != nil || res != (SyncInstallResult{Installed: 1}) {
		t.Fatalf("InstallSynced over a mid-flow conn = %+v, %v", res, err)
	}
	if n := td.w.sess.Len(); n != 1 {
		t.Fatalf("%d conns, want the synced one only", n)
	}
	next := td.one(t, 0, ack, 1)
	if next.src != orig || next.dst != rs {
		t.Errorf("after the sync the flow goes %s -> %s, want %s -> %s", next.src, next.dst, orig, rs)
	}
	if got, want := td.w.pool.Free(lip, rs), td.w.pool.PortsPerServer()-1; got != want {
		t.Errorf("%d ports free towards %s, want %d (the mid-flow port returned)", got, rs, want)
	}
}
