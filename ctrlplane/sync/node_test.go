package sync

import (
	"context"
	"net"
	"net/netip"
	stdsync "sync"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/ctrlplane/internal/dptest"
)

// runNode starts a node and stops it when the test ends.
func runNode(t *testing.T, o Options) *Node {
	t.Helper()
	if o.Key == nil {
		o.Key = testKey
	}
	if o.BulkWait == 0 {
		o.BulkWait = 300 * time.Millisecond
	}
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return n
}

// TestSyncTwoNodesOverMulticast: a connection established through node
// A's dataplane is published, multicast to node B over a veth pair
// between two namespaces, installed in B's dataplane, and B forwards the
// connection's next segment to the same real server from the same local
// address and port. Forged, replayed, truncated, stale and unknown-version
// datagrams are refused and counted. Then A's dataplane restarts and A's
// control plane re-installs the connection from its table.
func TestSyncTwoNodesOverMulticast(t *testing.T) {
	var trA, trB, forger *Multicast
	vethPair(t, func(i int, ifname string) error {
		m, err := ListenMulticast(ifname, DefaultGroup)
		if err != nil {
			return err
		}
		t.Cleanup(func() { m.Close() })
		if i == 1 {
			trB = m
			return nil
		}
		trA = m
		forger, err = ListenMulticast(ifname, DefaultGroup)
		if err == nil {
			t.Cleanup(func() { forger.Close() })
		}
		return err
	})
	sockA, sockB := dptest.Socket(t), dptest.Socket(t)
	dpA, dpB := startDP(t, sockA), startDP(t, sockB)
	a := runNode(t, Options{NodeID: 1, Policy: Policy{Threshold: 3}, API: dptest.Client(t, sockA), Transport: trA})
	b := runNode(t, Options{NodeID: 2, Policy: Policy{Threshold: 3}, API: dptest.Client(t, sockB), Transport: trB})
	waitFor(t, "both nodes ready", func() bool { return a.Ready() && b.Ready() })
	waitFor(t, "A's sync stream", dpA.DP.SyncAttached)

	// the handshake and a request through A
	syn := pass(t, dpA, 0, frame(t, seg{src: clientAP, dst: vipAP, smac: macClient, dmac: macDP0, syn: true, seq: 1000}), 1)
	if syn.src.Addr() != lipAddr || syn.dst != rsAP || !syn.tcp.SYN {
		t.Fatalf("SYN out of A: %s -> %s", syn.src, syn.dst)
	}
	local := syn.src
	pass(t, dpA, 1, frame(t, seg{src: rsAP, dst: local, smac: macRS, dmac: macDP1, syn: true, ack: true, seq: 5000, ackn: 1001}), 0)
	pass(t, dpA, 0, frame(t, seg{src: clientAP, dst: vipAP, smac: macClient, dmac: macDP0, ack: true, seq: 1001, ackn: 5001}), 1)
	pass(t, dpA, 0, frame(t, seg{src: clientAP, dst: vipAP, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 1001, ackn: 5001, payload: "GET"}), 1)
	pass(t, dpA, 1, frame(t, seg{src: rsAP, dst: local, smac: macRS, dmac: macDP1, ack: true, seq: 5001, ackn: 1004}), 0)

	waitFor(t, "B to install the connection", func() bool { return b.Stats().Installed >= 1 })
	if st := a.Stats(); st.TxConns < 1 || st.TxMessages < 2 || a.Table().Len() != 1 {
		t.Errorf("A: %+v, table %d", st, a.Table().Len())
	}
	if n := b.Table().Len(); n != 1 {
		t.Errorf("B's table holds %d connections", n)
	}

	// the flow moves to B mid-connection: same real server, same local address and port
	midSeg := seg{src: clientAP, dst: vipAP, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 1004, ackn: 5001, payload: "more data"}
	mid := pass(t, dpB, 0, frame(t, midSeg), 1)
	if mid.src != local || mid.dst != rsAP || string(mid.tcp.Payload) != "more data" || mid.tcp.Seq != 1004 || !mid.tcp.ACK || mid.tcp.Ack != 5001 || mid.tcp.SYN || mid.tcp.RST {
		t.Fatalf("mid-connection segment out of B: %s -> %s seq %d ack %d %q", mid.src, mid.dst, mid.tcp.Seq, mid.tcp.Ack, mid.tcp.Payload)
	}
	reply := pass(t, dpB, 1, frame(t, seg{src: rsAP, dst: local, smac: macRS, dmac: macDP1, ack: true, psh: true, seq: 5001, ackn: 1013, payload: "ok"}), 0)
	if reply.src != vipAP || reply.dst != clientAP || string(reply.tcp.Payload) != "ok" {
		t.Fatalf("reply out of B: %s -> %s %q", reply.src, reply.dst, reply.tcp.Payload)
	}

	// hostile datagrams to B, each refused and counted
	now := time.Now()
	valid := encode(t, testKey, Header{Type: TypeConns, Sender: 9, Seq: 1, Timestamp: now}, nil)
	badVersion := append([]byte(nil), valid...)
	badVersion[2] = 2
	before := b.Stats()
	for _, d := range [][]byte{
		encode(t, []byte("not-the-cluster-key!"), Header{Type: TypeConns, Sender: 9, Seq: 7, Timestamp: now}, testRecords()),
		valid, valid, // the second is a replay
		valid[:20],
		badVersion,
		encode(t, testKey, Header{Type: TypeConns, Sender: 9, Seq: 2, Timestamp: now.Add(-time.Hour)}, nil),
	} {
		if err := forger.Send(d); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "B to count the hostile datagrams", func() bool {
		s := b.Stats()
		return s.RxBadTag > before.RxBadTag && s.RxReplay > before.RxReplay && s.RxTruncated > before.RxTruncated &&
			s.RxVersion > before.RxVersion && s.RxStale > before.RxStale && s.RxMessages > before.RxMessages
	})
	if s := b.Stats(); s.RxBadTag-before.RxBadTag != 1 || s.RxReplay-before.RxReplay != 1 ||
		s.Installed != before.Installed || b.Table().Len() != 1 {
		t.Errorf("B after hostile datagrams: %+v (before %+v)", s, before)
	}
	heard9 := false
	for _, p := range b.Peers() {
		heard9 = heard9 || p.ID == 9
	}
	if !heard9 {
		t.Error("the valid datagram of sender 9 was not accepted")
	}

	// A's dataplane restarts: its control plane re-installs the connection
	dpA.Stop()
	dpA.DP.Stop()
	dpA2 := startDP(t, sockA)
	a.Restarted()
	waitFor(t, "A to re-install", func() bool { return a.Stats().Reinstalled >= 1 })
	again := pass(t, dpA2, 0, frame(t, seg{src: clientAP, dst: vipAP, smac: macClient, dmac: macDP0, ack: true, psh: true, seq: 1013, ackn: 5003, payload: "after restart"}), 1)
	if again.src != local || again.dst != rsAP || string(again.tcp.Payload) != "after restart" {
		t.Fatalf("segment after A's dataplane restart: %s -> %s %q", again.src, again.dst, again.tcp.Payload)
	}
	waitFor(t, "A's sync stream on the new dataplane", dpA2.DP.SyncAttached)
}

// hub is an in-memory multicast link: every datagram reaches every other
// member (dropped when its queue is full, like UDP).
type hub struct {
	mu      stdsync.Mutex
	members []*memTransport
}

type memTransport struct {
	h      *hub
	in     chan []byte
	closed chan struct{}
	once   stdsync.Once
}

func (h *hub) join() *memTransport {
	m := &memTransport{h: h, in: make(chan []byte, 1024), closed: make(chan struct{})}
	h.mu.Lock()
	h.members = append(h.members, m)
	h.mu.Unlock()
	return m
}

func (m *memTransport) Send(b []byte) error {
	m.h.mu.Lock()
	defer m.h.mu.Unlock()
	for _, o := range m.h.members {
		if o != m {
			select {
			case o.in <- append([]byte(nil), b...):
			default:
			}
		}
	}
	return nil
}

func (m *memTransport) Recv(b []byte) (int, error) {
	select {
	case d := <-m.in:
		return copy(b, d), nil
	case <-m.closed:
		return 0, net.ErrClosed
	}
}

func (m *memTransport) Close() error { m.once.Do(func() { close(m.closed) }); return nil }

// TestSyncBulkTransferOnJoin: a node that joins asks for the peers'
// tables, installs them and only then is ready; its own table is bounded.
func TestSyncBulkTransferOnJoin(t *testing.T) {
	var h hub
	sockA, sockC := dptest.Socket(t), dptest.Socket(t)
	startDP(t, sockA)
	dpC := startDP(t, sockC)
	a := runNode(t, Options{NodeID: 1, API: dptest.Client(t, sockA), Transport: h.join()})
	waitFor(t, "A alone to be ready", a.Ready)
	now := time.Now()
	for i := range 100 {
		r := Record{Proto: 6, State: 1, Timeout: 900, Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}), 1234),
			Virtual: vipAP, Local: netip.AddrPortFrom(lipAddr, uint16(20000+i)), Dest: rsAP}
		a.Table().Apply(&r, 1, now)
	}
	c := runNode(t, Options{NodeID: 3, API: dptest.Client(t, sockC), Transport: h.join(), BulkWait: time.Minute, MaxConns: 60})
	select {
	case <-c.ReadyC():
	case <-time.After(10 * time.Second):
		t.Fatal("the joining node never became ready")
	}
	st := c.Stats()
	// the table bound limits what is kept for re-installs; the dataplane
	// (bounded by its own capacity) takes every record
	if st.RxConns != 100 || st.Installed != 100 || st.TableFull != 40 || c.Table().Len() != 60 {
		t.Errorf("joining node: %+v, table %d (want 100 received and installed, 60 kept, 40 over the bound)", st, c.Table().Len())
	}
	conns, err := dpC.DP.Conns(nil)
	if err != nil || len(conns) != 100 {
		t.Errorf("joining dataplane holds %d connections (%v), want 100", len(conns), err)
	}
	if s := a.Stats(); s.BulkAnswers != 1 || s.BulkConns != 100 {
		t.Errorf("answering node: %+v", s)
	}
}

func TestTableExpiryAndOrigins(t *testing.T) {
	tb := NewTable(10, time.Second)
	now := time.Now()
	r := testRecords()[0]
	if !tb.Apply(&r, 1, now) {
		t.Fatal("refused")
	}
	del := r
	del.Flags |= RecDelete
	tb.Apply(&del, 2, now) // another node's deletion does not remove node 1's connection
	if tb.Len() != 1 {
		t.Fatal("deleted by another origin")
	}
	if n := tb.Expire(now.Add(900 * time.Second)); n != 0 {
		t.Errorf("expired %d within the grace", n)
	}
	if n := tb.Expire(now.Add(902 * time.Second)); n != 1 || tb.Len() != 0 {
		t.Errorf("expired %d after timeout and grace", n)
	}
	tb.Apply(&r, 1, now)
	tb.Apply(&del, 1, now)
	if tb.Len() != 0 {
		t.Error("the origin's deletion did not remove it")
	}
}

// TestSyncPeersHeartbeat: idle nodes still multicast every
// HeartbeatInterval, so each hears the other; a stopped node is heard no
// more.
func TestSyncPeersHeartbeat(t *testing.T) {
	var h hub
	sockA, sockB := dptest.Socket(t), dptest.Socket(t)
	startDP(t, sockA)
	startDP(t, sockB)
	a, err := New(Options{NodeID: 1, Key: testKey, API: dptest.Client(t, sockA), Transport: h.join(), BulkWait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stopA := context.WithCancel(context.Background())
	doneA := make(chan struct{})
	go func() { a.Run(ctx); close(doneA) }()
	defer func() { stopA(); <-doneA }()
	b := runNode(t, Options{NodeID: 2, API: dptest.Client(t, sockB), Transport: h.join()})
	seen := func(n *Node, id uint32) time.Time {
		for _, p := range n.Peers() {
			if p.ID == id {
				return p.LastSeen
			}
		}
		return time.Time{}
	}
	waitFor(t, "B to hear A", func() bool { return !seen(b, 1).IsZero() })
	first := seen(b, 1)
	waitFor(t, "A's next heartbeat", func() bool { return seen(b, 1).After(first) })
	waitFor(t, "A to hear B", func() bool { return !seen(a, 2).IsZero() })
	stopA()
	<-doneA
	last := seen(b, 1)
	tx := b.Stats().TxMessages
	waitFor(t, "two more heartbeats of B", func() bool { return b.Stats().TxMessages >= tx+2 })
	if got := seen(b, 1); !got.Equal(last) {
		t.Errorf("A heard at %v after it stopped (last %v)", got, last)
	}
}
