package sync

// A Node is one control plane's session sync. Its goroutines:
//
//   - drain: holds the dataplane's StreamSyncEvents open (reopening it
//     after a dataplane restart), records each event in the table as this
//     node's own and multicasts it, packed into datagrams;
//   - receive: checks each datagram (tag, version, replay, skew; refusals
//     counted by reason), ignores its own, records peers' connections in
//     the table and installs them through InstallSyncConns; answers bulk
//     requests (through housekeeping) and notes bulk ends addressed to it;
//   - housekeeping: the start-up bulk request (repeated until answered or
//     BulkWait passes: then the node is Ready), rate-limited bulk answers,
//     the table's expiry, and the re-install after a dataplane restart
//     (once the reconciler has put the services back).
//
// The packet path is the dataplane's; everything here is control plane:
// it may allocate and lock. Memory is bounded by MaxConns (the table) and
// MaxSenders (the replay state).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	stdsync "sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/dpclient"
	"github.com/gvs-lb/gvs/session"
)

// Policy is what the dataplane publishes (see dataplane.SyncPolicy).
type Policy struct {
	Threshold uint8 // client packets before the first publication
	Period    uint8 // re-publish every Period client packets; 0 never
	UDP       bool
}

// Options configure a Node.
type Options struct {
	NodeID     uint32
	Key        []byte
	Policy     Policy
	MaxConns   int           // synced table bound (default 1,048,576)
	MaxSenders int           // replay state bound (default 64)
	MaxSkew    time.Duration // accepted clock difference (default 30s)
	Grace      time.Duration // table entries outlive their timeout by this (default 10s)
	BulkRate   int           // datagrams per second of a bulk answer (default 2000)
	BulkWait   time.Duration // Ready after this without an answer (default 3s)
	API        pb.DataplaneClient
	Transport  Transport
	Log        *zap.Logger
	// Reconciled reports whether the dataplane was reconciled after t; the
	// re-install after a restart waits for it (nil: at once).
	Reconciled  func(t time.Time) bool
	CallTimeout time.Duration // per API call (default 5s)
	Now         func() time.Time
}

// Stats are a node's counters.
type Stats struct {
	TxMessages, TxConns, TxErrors                              uint64
	RxMessages, RxConns, RxOwn                                 uint64
	RxBadTag, RxReplay, RxStale, RxTruncated, RxVersion, RxBad uint64
	Installed, Updated, Deleted, Refused, InstallErrors        uint64
	TableFull, EventsBad, BulkRequests, BulkAnswers, BulkConns uint64
	Reinstalled, ReinstallRuns, StreamErrors                   uint64
	TableConns                                                 int
	Ready                                                      bool
}

type counters struct {
	txMessages, txConns, txErrors                              atomic.Uint64
	rxMessages, rxConns, rxOwn                                 atomic.Uint64
	rxBadTag, rxReplay, rxStale, rxTruncated, rxVersion, rxBad atomic.Uint64
	installed, updated, deleted, refused, installErrors        atomic.Uint64
	tableFull, eventsBad, bulkRequests, bulkAnswers, bulkConns atomic.Uint64
	reinstalled, reinstallRuns, streamErrors                   atomic.Uint64
}

// Node is a running session sync.
type Node struct {
	o     Options
	log   *zap.Logger
	table *Table
	st    counters

	sendMu   stdsync.Mutex
	enc      *Encoder
	seq      atomic.Uint64
	lastSent atomic.Int64 // unix ns of the last datagram sent

	ready     chan struct{}
	readyOnce stdsync.Once
	bulkFor   chan uint32      // requesters waiting for an answer
	restarts  chan time.Time   // dataplane restarts to re-install after
	toInstall chan installItem // received records, installed in batches

	peersMu stdsync.Mutex
	peers   map[uint32]time.Time // sender → last authenticated datagram
}

// Peer is another node as this one hears it.
type Peer struct {
	ID       uint32
	LastSeen time.Time
}

// HeartbeatInterval is how often a node multicasts when it has nothing
// else to send (an empty records datagram): peers tell a silent node from
// a quiet one (Peers).
const HeartbeatInterval = time.Second

// Peers returns the nodes heard from (at most MaxSenders), with the time
// of their last authenticated datagram; nodes send at least every
// HeartbeatInterval, so one silent for a few intervals is gone. For
// decisions such as taking over a dead node's local addresses.
func (n *Node) Peers() []Peer {
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	out := make([]Peer, 0, len(n.peers))
	for id, t := range n.peers {
		out = append(out, Peer{ID: id, LastSeen: t})
	}
	return out
}

func (n *Node) heard(id uint32, now time.Time) {
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	if _, ok := n.peers[id]; !ok && len(n.peers) >= n.o.MaxSenders {
		var oldest uint32
		var at time.Time
		for p, t := range n.peers {
			if at.IsZero() || t.Before(at) {
				oldest, at = p, t
			}
		}
		delete(n.peers, oldest)
	}
	n.peers[id] = now
}

// installItem is a datagram's records, or (ready non-empty) the end of a
// bulk transfer: the node is ready once what came before is installed.
type installItem struct {
	recs  []Record
	ready string
}

// New checks o and returns a node; Run starts it.
func New(o Options) (*Node, error) {
	if len(o.Key) < MinKeyLen {
		return nil, fmt.Errorf("sync key of %d bytes: give at least %d (sync.key_file)", len(o.Key), MinKeyLen)
	}
	if o.NodeID == 0 {
		return nil, errors.New("sync node id 0: give every node its own id from 1 (sync.node_id)")
	}
	if o.API == nil || o.Transport == nil {
		return nil, errors.New("sync: a dataplane API and a transport are needed")
	}
	if o.Policy.Threshold == 0 {
		o.Policy.Threshold = 3
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxConns, 1<<20)
	def(&o.MaxSenders, 64)
	def(&o.BulkRate, 2000)
	defD(&o.MaxSkew, 30*time.Second)
	defD(&o.Grace, 10*time.Second)
	defD(&o.BulkWait, 3*time.Second)
	defD(&o.CallTimeout, 5*time.Second)
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	n := &Node{o: o, log: o.Log, table: NewTable(o.MaxConns, o.Grace), enc: NewEncoder(o.Key),
		ready: make(chan struct{}), bulkFor: make(chan uint32, 16), restarts: make(chan time.Time, 1),
		toInstall: make(chan installItem, installQueue), peers: map[uint32]time.Time{}}
	n.seq.Store(uint64(o.Now().UnixNano())) // above what an earlier run sent
	return n, nil
}

// Ready reports whether the start-up bulk transfer is done (or no peer
// answered within BulkWait): announcing routes may start.
func (n *Node) Ready() bool {
	select {
	case <-n.ready:
		return true
	default:
		return false
	}
}

// ReadyC is closed when the node becomes Ready.
func (n *Node) ReadyC() <-chan struct{} { return n.ready }

func (n *Node) markReady(why string) {
	n.readyOnce.Do(func() {
		n.log.Info("session sync ready", zap.String("reason", why), zap.Int("connections", n.table.Len()))
		close(n.ready)
	})
}

// Table returns the synced table.
func (n *Node) Table() *Table { return n.table }

// Restarted tells the node that the local dataplane restarted: it
// re-installs the table once the dataplane is reconciled.
func (n *Node) Restarted() {
	select {
	case n.restarts <- n.o.Now():
	default:
	}
}

// Stats returns the counters.
func (n *Node) Stats() Stats {
	c := &n.st
	return Stats{
		TxMessages: c.txMessages.Load(), TxConns: c.txConns.Load(), TxErrors: c.txErrors.Load(),
		RxMessages: c.rxMessages.Load(), RxConns: c.rxConns.Load(), RxOwn: c.rxOwn.Load(),
		RxBadTag: c.rxBadTag.Load(), RxReplay: c.rxReplay.Load(), RxStale: c.rxStale.Load(),
		RxTruncated: c.rxTruncated.Load(), RxVersion: c.rxVersion.Load(), RxBad: c.rxBad.Load(),
		Installed: c.installed.Load(), Updated: c.updated.Load(), Deleted: c.deleted.Load(), Refused: c.refused.Load(),
		InstallErrors: c.installErrors.Load(), TableFull: c.tableFull.Load(), EventsBad: c.eventsBad.Load(),
		BulkRequests: c.bulkRequests.Load(), BulkAnswers: c.bulkAnswers.Load(), BulkConns: c.bulkConns.Load(),
		Reinstalled: c.reinstalled.Load(), ReinstallRuns: c.reinstallRuns.Load(), StreamErrors: c.streamErrors.Load(),
		TableConns: n.table.Len(), Ready: n.Ready(),
	}
}

// Run runs the node until ctx ends, then closes the transport.
func (n *Node) Run(ctx context.Context) {
	var wg stdsync.WaitGroup
	for _, f := range []func(context.Context){n.drain, n.receive, n.installer, n.housekeeping} {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	<-ctx.Done()
	n.o.Transport.Close() // unblocks receive
	wg.Wait()
}

// send packs recs (with origins: 0 is this node) into datagrams of type
// conns and multicasts them; gap paces the datagrams (bulk answers).
func (n *Node) send(ctx context.Context, recs []Record, gap time.Duration) int {
	n.sendMu.Lock()
	defer n.sendMu.Unlock()
	sent := 0
	flush := func() {
		if n.enc.Count() == 0 {
			return
		}
		k := n.enc.Count()
		d := n.enc.Finish(Header{Type: TypeConns, Sender: n.o.NodeID, Seq: n.seq.Add(1), Timestamp: n.o.Now()})
		if err := n.o.Transport.Send(d); err != nil {
			n.st.txErrors.Add(1)
		} else {
			n.st.txMessages.Add(1)
			n.st.txConns.Add(uint64(k))
			n.lastSent.Store(n.o.Now().UnixNano())
			sent += k
		}
		n.enc.Reset()
		if gap > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(gap):
			}
		}
	}
	n.enc.Reset()
	for i := range recs {
		if !n.enc.Add(&recs[i]) {
			flush()
			n.enc.Add(&recs[i])
		}
	}
	flush()
	return sent
}

// sendControl multicasts a record-less message.
func (n *Node) sendControl(typ uint8, target uint32) {
	n.sendMu.Lock()
	defer n.sendMu.Unlock()
	n.enc.Reset()
	d := n.enc.Finish(Header{Type: typ, Sender: n.o.NodeID, Seq: n.seq.Add(1), Timestamp: n.o.Now(), Target: target})
	if err := n.o.Transport.Send(d); err != nil {
		n.st.txErrors.Add(1)
	} else {
		n.st.txMessages.Add(1)
		n.lastSent.Store(n.o.Now().UnixNano())
	}
}

func (n *Node) drain(ctx context.Context) {
	req := &pb.SyncStreamRequest{Threshold: uint32(n.o.Policy.Threshold), Period: uint32(n.o.Policy.Period), Udp: n.o.Policy.UDP}
	var recs []Record
	logged := false
	for ctx.Err() == nil {
		stream, err := n.o.API.StreamSyncEvents(ctx, req)
		for err == nil {
			var ev *pb.SyncEvents
			if ev, err = stream.Recv(); err != nil {
				break
			}
			logged = false
			recs = recs[:0]
			now := n.o.Now()
			for _, c := range ev.Conns {
				r, perr := RecordFromPB(c)
				if perr != nil {
					n.st.eventsBad.Add(1)
					continue
				}
				if !n.table.Apply(&r, n.o.NodeID, now) {
					n.st.tableFull.Add(1)
				}
				recs = append(recs, r)
			}
			n.send(ctx, recs, 0)
		}
		if ctx.Err() != nil {
			return
		}
		n.st.streamErrors.Add(1)
		if !logged {
			n.log.Warn("session sync: dataplane events unavailable: retrying", zap.Error(dpclient.Message(err)))
			logged = true
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (n *Node) receive(ctx context.Context) {
	dec := NewDecoder(n.o.Key)
	win := NewWindow(n.o.MaxSenders, n.o.MaxSkew)
	buf := make([]byte, 65536)
	var recs []Record
	for {
		k, err := n.o.Transport.Recv(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			n.st.rxBad.Add(1)
			continue
		}
		h, rs, err := dec.Parse(buf[:k], recs[:0])
		recs = rs
		switch {
		case err == nil:
		case errors.Is(err, ErrBadTag):
			n.st.rxBadTag.Add(1)
			continue
		case errors.Is(err, ErrTruncated):
			n.st.rxTruncated.Add(1)
			continue
		case errors.Is(err, ErrVersion):
			n.st.rxVersion.Add(1)
			continue
		default:
			n.st.rxBad.Add(1)
			continue
		}
		if h.Sender == n.o.NodeID {
			n.st.rxOwn.Add(1)
			continue
		}
		now := n.o.Now()
		if err := win.Check(h.Sender, h.Seq, h.Timestamp, now); err != nil {
			if errors.Is(err, ErrStale) {
				n.st.rxStale.Add(1)
			} else {
				n.st.rxReplay.Add(1)
			}
			continue
		}
		n.st.rxMessages.Add(1)
		n.heard(h.Sender, now)
		switch h.Type {
		case TypeConns:
			n.st.rxConns.Add(uint64(len(recs)))
			for i := range recs {
				if !n.table.Apply(&recs[i], h.Sender, now) {
					n.st.tableFull.Add(1)
				}
			}
			if len(recs) > 0 && !n.queueInstall(ctx, installItem{recs: append([]Record(nil), recs...)}) {
				return
			}
		case TypeBulkRequest:
			select {
			case n.bulkFor <- h.Sender:
			default: // answers already queued cover it
			}
		case TypeBulkEnd:
			if h.Target == n.o.NodeID && !n.queueInstall(ctx, installItem{ready: fmt.Sprintf("bulk transfer from node %d", h.Sender)}) {
				return
			}
		}
	}
}

// installQueue bounds the received datagrams waiting for the installer;
// when it is full the receiver waits and the socket's buffer takes the
// rest (then the kernel drops, and periodic resyncs repair).
const installQueue = 1024

// installer installs received records, as many per API call as have
// arrived (up to 4096): one call per datagram would wait for a worker
// loop each time.
func (n *Node) installer(ctx context.Context) {
	var batch []Record
	for {
		var it installItem
		select {
		case <-ctx.Done():
			return
		case it = <-n.toInstall:
		}
		batch = append(batch[:0], it.recs...)
		for len(batch) < 4096 && it.ready == "" {
			select {
			case it = <-n.toInstall:
				batch = append(batch, it.recs...)
				continue
			default:
			}
			break
		}
		n.install(ctx, batch) // a lost batch is resent by its origin's next event or bulk transfer
		if it.ready != "" {
			n.markReady(it.ready)
		}
	}
}

func (n *Node) queueInstall(ctx context.Context, it installItem) bool {
	select {
	case n.toInstall <- it:
		return true
	case <-ctx.Done():
		return false
	}
}

// install hands records to the dataplane in calls of at most 4096. It
// returns how many the dataplane took and the records of the calls that
// failed (to retry).
func (n *Node) install(ctx context.Context, recs []Record) (int, []Record) {
	installed := 0
	var failed []Record
	for len(recs) > 0 {
		k := min(len(recs), 4096)
		req := &pb.SyncInstallRequest{Conns: make([]*pb.SyncConn, k)}
		for i := range k {
			req.Conns[i] = RecordToPB(&recs[i])
		}
		batch := recs[:k]
		recs = recs[k:]
		cctx, cancel := context.WithTimeout(ctx, n.o.CallTimeout)
		res, err := n.o.API.InstallSyncConns(cctx, req)
		cancel()
		if err != nil {
			n.st.installErrors.Add(1)
			failed = append(failed, batch...)
			continue
		}
		n.st.installed.Add(uint64(res.Installed))
		n.st.updated.Add(uint64(res.Updated))
		n.st.deleted.Add(uint64(res.Deleted))
		n.st.refused.Add(uint64(res.Refused))
		installed += int(res.Installed) + int(res.Updated)
	}
	return installed, failed
}

func (n *Node) housekeeping(ctx context.Context) {
	start := n.o.Now()
	n.st.bulkRequests.Add(1)
	n.sendControl(TypeBulkRequest, 0)
	retry := time.NewTicker(n.o.BulkWait / 3)
	defer retry.Stop()
	expire := time.NewTicker(HeartbeatInterval) // also the heartbeat
	defer expire.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
			if n.Ready() {
				continue
			}
			if n.o.Now().Sub(start) >= n.o.BulkWait {
				n.markReady("no peer answered the bulk request")
				continue
			}
			n.st.bulkRequests.Add(1)
			n.sendControl(TypeBulkRequest, 0)
		case <-expire.C:
			if n.o.Now().Sub(time.Unix(0, n.lastSent.Load())) >= HeartbeatInterval {
				n.sendControl(TypeConns, 0) // heartbeat: a datagram without records
			}
			n.table.Expire(n.o.Now())
		case who := <-n.bulkFor:
			n.answerBulk(ctx, who)
		case since := <-n.restarts:
			n.reinstall(ctx, since)
		}
	}
}

// answerBulk sends the whole table, paced at BulkRate datagrams per
// second, then the end marker for requester who.
func (n *Node) answerBulk(ctx context.Context, who uint32) {
	recs, origins := n.table.Snapshot(n.o.Now())
	for i := range recs {
		if origins[i] != n.o.NodeID {
			recs[i].Flags |= RecSynced
		}
	}
	sent := n.send(ctx, recs, time.Second/time.Duration(n.o.BulkRate))
	n.sendControl(TypeBulkEnd, who)
	n.st.bulkAnswers.Add(1)
	n.st.bulkConns.Add(uint64(sent))
	n.log.Info("session sync: bulk transfer sent", zap.Uint32("to", who), zap.Int("connections", sent))
}

// reinstall puts the table back into a restarted dataplane.
func (n *Node) reinstall(ctx context.Context, since time.Time) {
	if n.o.Reconciled != nil {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		deadline := time.After(30 * time.Second)
	wait:
		for !n.o.Reconciled(since) {
			select {
			case <-ctx.Done():
				return
			case <-deadline:
				n.log.Warn("session sync: the dataplane was not reconciled within 30s after its restart: re-installing anyway")
				break wait
			case <-t.C:
			}
		}
	}
	// A dataplane that just restarted may not answer at once (its socket
	// comes back, the client reconnects): calls that fail are retried for
	// a while rather than losing the connections the table holds.
	recs, _ := n.table.Snapshot(n.o.Now())
	got, failed := n.install(ctx, recs)
	for wait, giveUp := 100*time.Millisecond, n.o.Now().Add(30*time.Second); len(failed) > 0 && n.o.Now().Before(giveUp); {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if wait < 2*time.Second {
			wait *= 2
		}
		var more int
		more, failed = n.install(ctx, failed)
		got += more
	}
	if len(failed) > 0 {
		n.log.Warn("session sync: the restarted dataplane did not take every connection", zap.Int("not_installed", len(failed)))
	}
	n.st.reinstallRuns.Add(1)
	n.st.reinstalled.Add(uint64(got))
	n.log.Info("session sync: connections re-installed after a dataplane restart", zap.Int("connections", got), zap.Int("table", len(recs)))
}

// RecordFromPB converts an API event.
func RecordFromPB(c *pb.SyncConn) (Record, error) {
	var r Record
	switch c.Proto {
	case "TCP":
		r.Proto = 6
	case "UDP":
		r.Proto = 17
	default:
		return r, fmt.Errorf("protocol %q", c.Proto)
	}
	st, ok := session.ParseState(c.State)
	if !ok {
		return r, fmt.Errorf("state %q", c.State)
	}
	r.State = uint8(st)
	if c.Kind == "delete" {
		r.Flags |= RecDelete
	}
	if c.Synced {
		r.Flags |= RecSynced
	}
	if a := c.GetAdjust(); a != nil {
		if r.Proto != 6 || a.InScales > 0xff || a.OutScales > 0xff || a.PpShift > 107 {
			return r, fmt.Errorf("adjust %v on %s", a, c.Proto)
		}
		r.Flags |= RecAdjusted
		r.Adjust = Adjust{SeqDelta: a.SeqDelta, TSDelta: a.TsDelta, InScales: uint8(a.InScales), OutScales: uint8(a.OutScales),
			PPShift: uint8(a.PpShift), SynProxy: a.SynProxy}
	}
	secs := (time.Duration(c.TimeoutNs) + time.Second - 1) / time.Second
	r.Timeout = uint32(max(0, min(secs, 1<<31)))
	for _, f := range []struct {
		v  string
		to *netip.AddrPort
	}{{c.Client, &r.Client}, {c.Virtual, &r.Virtual}, {c.Local, &r.Local}, {c.Dest, &r.Dest}} {
		ap, err := netip.ParseAddrPort(f.v)
		if err != nil {
			return r, err
		}
		*f.to = unmapAP(ap)
	}
	return r, nil
}

// RecordToPB converts a record for InstallSyncConns.
func RecordToPB(r *Record) *pb.SyncConn {
	c := &pb.SyncConn{Kind: "update", Proto: "TCP", State: session.State(r.State).String(),
		Client: unmapAP(r.Client).String(), Virtual: unmapAP(r.Virtual).String(), Local: unmapAP(r.Local).String(),
		Dest: unmapAP(r.Dest).String(), TimeoutNs: int64(r.Timeout) * int64(time.Second), Synced: true}
	if r.Proto == 17 {
		c.Proto = "UDP"
	}
	if r.Flags&RecDelete != 0 {
		c.Kind = "delete"
	}
	if r.Flags&RecAdjusted != 0 {
		c.Adjust = &pb.TCPAdjust{SeqDelta: r.Adjust.SeqDelta, TsDelta: r.Adjust.TSDelta,
			InScales: uint32(r.Adjust.InScales), OutScales: uint32(r.Adjust.OutScales),
			PpShift: uint32(r.Adjust.PPShift), SynProxy: r.Adjust.SynProxy}
	}
	return c
}
