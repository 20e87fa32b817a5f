package dataplane

// The XDP fast path's worker side (docs/xdp.md). A worker offloads one
// direction of a FullNAT connection when a packet of that direction passes
// through it and nothing is left for userspace to do on that direction:
// the connection is FullNAT (not NAT/SNAT, NAT64, SYN proxy or proxy
// protocol), its TOA or UOA work is done (FlagTOAConfirmed), a TCP
// connection is ESTABLISHED and the segment has no SYN, FIN or RST; the
// packet arrived untagged on a port with a fast path and leaves untagged
// by an afxdp port towards a resolved neighbour. The entry goes into the
// map of the port the packet arrived on, keyed by the packet as it
// arrived, with the rewrite, MACs, egress port and MTU this very packet
// got: the fast path then does to the next packets what the worker just
// did. The other direction is offloaded by its own packets, the same way.
// A TCP direction is offloaded only after xdpTCPAfter established
// segments went through the worker: a short connection costs the slow
// path less than its entries' system calls.
//
// Taken back (both directions): on a FIN or RST (the fast path leaves
// those to the workers), at the connection's end (connRelease: expiry,
// eviction, flush), when the interfaces or routes change, when the
// neighbour an entry sends to changed its MAC, and when the service table
// changes under it (xdpTableChanged: its destination deleted — with
// expire the connection ends there and then —, quiesced, or its service
// edited or deleted; a connection to a draining or quiesced destination is
// not offloaded again, so its packets see the worker's rules while it
// drains). The connection's packets no
// longer reach the worker, so a sweep (xdpSweep: one pass a second, a few
// entries per loop) reads each offloaded connection's entries: the traffic
// counted there since the last read moves into the destination's counters
// and, when there was some, re-arms the connection's timer.
//
// No reordering on the way in: packets of a direction may still wait for
// the worker (in the AF_XDP ring, in its transmit batch) when the entry is
// written, and the program must not overtake them. A TCP entry is
// therefore written armed, with the sequence number just past the packet
// that offloads it as the worker's mark; packets of that direction that
// still reach the worker move the mark on. The marks are written to the
// program (Table.Arm) only once what the worker buffered has left
// (xdpMarks, at the end of flushAll, when the egress queue holds no
// transmission: the completion ring gave back every frame) and, in copy
// mode, once the kernel has delivered them: after a pause in the
// direction's traffic (xdpArmSettle), or as soon as the other direction
// acknowledged the mark (xdpAcked; a zero-copy queue's completion already
// means the device sent the frame), with the end and acknowledgment
// number of the segment the worker sent last (a retransmission moves
// those, not the mark). The program forwards the
// first segment that starts at the mark, provided the segment it passed
// to the worker last is the worker's last (it continues what the worker
// sent, and nothing of that direction is queued in between; one ahead
// may have others queued before it, one behind is a retransmission that
// says nothing) and from then on every segment.
// UDP entries are written active (no sequence numbers: a
// datagram flow may be reordered once, when it moves).
//
// No reordering on the way back either: when a direction that the program
// forwarded is taken back, its last fast packets may still be in the
// kernel (the egress device's queue, a softirq not yet run) while the
// next ones already reach the worker. For xdpDrainHold after the take-back
// the worker therefore holds that direction's translated packets, in
// order, and transmits them when the time is up (xdpHold, xdpRelease), or
// as soon as the other direction acknowledged the end of the program's
// last segment (xdpAckDrain); nothing of the direction is offloaded again
// meanwhile. A direction the
// program never forwarded (still armed) is not held.
//
// Owned by the worker, like its session table; no locks. Map updates are
// system calls, made once per connection direction, never per packet.
//
// This file offloads and sweeps; lbxdparm.go writes the armed entries'
// marks, lbxdphold.go takes directions back and holds their packets.

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"time"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port/afxdp/xdpfast"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/nat"
	"github.com/gvs-lb/gvs/session"
)

// xdpFastPort is a port driver with an XDP fast path (afxdp.Port).
type xdpFastPort interface {
	FastTable() xdpfast.Table // nil when not active
	Ifindex() int
}

// xdpPort is one port's fast path as the worker sees it.
type xdpPort struct {
	t       xdpfast.Table // nil: the port has none
	ifindex int           // 0: not an afxdp port (not an egress)
}

// xdpDir is one offloaded direction of a connection.
type xdpDir struct {
	port        uint16     // whose map holds the entry
	oif         uint16     // the interface it leaves by, with its MAC and MTU then
	nh          netip.Addr // the next hop it sends to, with its MAC then
	smac, mac   header.MAC
	mtu         int
	pkts, bytes uint64 // the entry's counters already moved into lbStats
	oport       uint16 // the egress port's index
	armed       bool   // written armed; false once the program disarmed it
	dirty       bool   // mark not yet written to the program
	mark        uint32 // just past the newest segment the worker sent
	lastEnd     uint32 // just past the segment the worker sent last (a retransmission, say)
	lastAck     uint32 // that segment's acknowledgment number
	sent        int64  // when the worker handed that segment to the kernel (the dataplane clock)
	queued      bool   // that segment is not handed over yet: sent is stamped at the flush
}

// xdpConn is an offloaded connection.
type xdpConn struct {
	id   uint32
	dirs uint8 // 1 << session.In, 1 << session.Out
	dir  [2]xdpDir
	// acked (TCP): the newest acknowledgment number among the segments of
	// each direction the worker forwarded since the connection was
	// offloaded (ackSet: since it saw one); a direction's mark may be
	// written once the other direction acknowledged it (xdpMarks)
	acked  [2]uint32
	ackSet [2]bool
	// endsAfter: the server direction's entry had forwarded this many
	// packets when session sync made this node forget the connection's
	// server numbers (xdpForgetEnds); its notes count again only once
	// the program forwarded more
	endsAfter uint64
}

// workerXDP is a worker's share of the fast path.
type workerXDP struct {
	init  bool
	on    bool      // some port has a fast path
	ports []xdpPort // by port index
	slot  []int32   // connection id → index in conns + 1; 0: not offloaded
	seen  []uint8   // connection id → established TCP segments forwarded, a nibble a direction (up to after)
	after uint8     // xdpTCPAfter
	conns []xdpConn
	snap  *snapshot   // the interfaces and routes the entries were made with
	nver  uint64      // the neighbour table version they were checked against
	lb    *ipvs.Table // the service table they were checked against
	sweep int         // next index of conns the sweep reads; 0: between passes
	marks []uint32    // connections with marks to write after the next flush
	pass  int64       // when the current sweep pass began
	// drain: directions taken back while the program's last packets of
	// them may still be in the kernel (key id<<1|dir → until, ns);
	// held: their packets, translated, in arrival order
	drain    map[uint64]xdpDrain
	held     []xdpHeld
	heldNext int64 // the earliest until of held
	// pollMarks: a mark waits for what does not wake the worker — a
	// zero-copy queue's completions, an acknowledgment the program
	// forwards (xdpMarks)
	pollMarks bool
}

const (
	xdpSweepEvery  = int64(time.Second)
	xdpSweepBudget = 32 // connections read per loop iteration
	// xdpDrainHold is how long a direction taken back from the fast path
	// holds its packets: the time the kernel may still take to deliver
	// what the program redirected before the take-back (a softirq run put
	// off to ksoftirqd on a busy core takes a few scheduler ticks at most)
	xdpDrainHold = int64(4 * time.Millisecond)
	// xdpArmSettle is how long after the worker sent a direction's last
	// segment its mark waits before it is written. A completed
	// transmission in copy mode has only been handed to the kernel: the
	// kernel may still be delivering it — in a softirq that runs later on
	// the worker's CPU (in ksoftirqd when the CPU is busy) — while the
	// program, on another CPU, would already redirect the next segment
	// past it. A pause in the direction's traffic of this length lets
	// that delivery finish first (docs/xdp.md: 0.5 ms was not enough).
	// Not for a zero-copy egress queue: its completion says the device
	// has sent the frame, and what the program redirects to the device
	// afterwards leaves after it.
	xdpArmSettle = int64(4 * time.Millisecond)
	xdpHoldMax   = 512 // packets held per worker; when full, they go at once (lb_xdp_hold_full)
	// xdpTCPAfter is how many established segments of a TCP direction the
	// worker forwards before it offloads the direction: writing, arming
	// and removing the entries costs about eight map system calls a
	// connection, more than the slow path spends on a short one (one
	// request, one answer), so only connections that carry more go fast
	xdpTCPAfter = 8
)

// xdpSetup finds the ports' fast paths, once.
func (w *Worker) xdpSetup() {
	x := &w.xdp
	x.init = true
	x.ports = make([]xdpPort, len(w.dp.ports))
	for i, ps := range w.dp.ports {
		f, ok := ps.Port.(xdpFastPort)
		if !ok {
			continue
		}
		x.ports[i].ifindex = f.Ifindex()
		if t := f.FastTable(); t != nil {
			x.ports[i].t = t
			x.on = true
		}
	}
	if x.on {
		x.slot = make([]int32, w.sess.Capacity())
		x.seen = make([]uint8, w.sess.Capacity())
		x.after = xdpTCPAfter
	}
}

// xdpKey is the key of direction dir of connection c: its packets as they
// arrive.
func xdpKey(c *session.Conn, dir session.Direction) xdpfast.Key {
	if dir == session.In {
		return xdpfast.Key{Proto: c.Proto, Src: c.CAddrPort().Addr().Unmap(), Dst: c.VAddrPort().Addr().Unmap(), SrcPort: c.CPort, DstPort: c.VPort}
	}
	return xdpfast.Key{Proto: c.Proto, Src: c.DAddrPort().Addr().Unmap(), Dst: c.LAddrPort().Addr().Unmap(), SrcPort: c.DPort, DstPort: c.LPort}
}

// xdpOffer is called by lbConn for a translated packet of a FullNAT
// connection (not NAT or SNAT) before it is routed: it offloads the
// packet's direction when it may, and takes the connection back on FIN or
// RST.
func (w *Worker) xdpOffer(b *pktbuf.Buf, l3 []byte, t header.Transport, c *session.Conn, id uint32, dir session.Direction, flags uint8, to *nat.Endpoints) {
	x := &w.xdp
	if !x.init {
		w.xdpSetup()
	}
	if !x.on {
		return
	}
	if c.Proto == header.ProtoTCP && flags&(header.TCPFlagSYN|header.TCPFlagFIN|header.TCPFlagRST) != 0 {
		if flags&(header.TCPFlagFIN|header.TCPFlagRST) != 0 && x.slot[id] != 0 {
			w.xdpRemove(id, c)
		}
		return
	}
	if c.Flags&session.FlagTOAConfirmed == 0 || c.Flags&session.FlagAdjusted != 0 || isNAT64(c) ||
		c.Proto == header.ProtoTCP && c.State != session.StateEstablished {
		return
	}
	bit := uint8(1) << dir
	s := x.slot[id]
	if s != 0 {
		xc := &x.conns[s-1]
		if c.Proto == header.ProtoTCP {
			end, ack, ok := tcpSeqEnd(l3, t)
			if ok {
				xc.noteAck(dir, ack) // the other direction's mark may wait for it (xdpMarks)
			}
			if d := &xc.dir[dir]; ok && xc.dirs&bit != 0 && d.armed {
				// still reaching the worker: the program waits for this one
				// too, a retransmission as much as a new segment
				if int32(end-d.mark) > 0 {
					d.mark = end
				}
				d.lastEnd, d.lastAck, d.queued = end, ack, true
				w.xdpMarkDirty(id, d)
			}
		}
		if xc.dirs&bit != 0 {
			return
		}
	}
	if c.Proto == header.ProtoTCP {
		sh := 4 * uint8(dir)
		n := x.seen[id] >> sh & 0xf
		if n < x.after {
			x.seen[id] += 1 << sh
			return // a short connection stays with the worker
		}
	}
	if !w.xdpDestLive(c) {
		return // draining or quiesced: its packets stay with the worker
	}
	if _, draining := w.xdpDraining(id, dir); draining {
		return // taken back a moment ago: the program's last packets may still be on their way
	}
	in := x.ports[b.Port]
	if in.t == nil || b.Iface != w.snap.portIface[b.Port] {
		return // no fast path where it arrived, or it arrived tagged
	}
	out, nh, ne, ok := w.path(to.Dst, l3)
	if !ok || ne == nil || out.Kind == KindVLAN || x.ports[out.Port].ifindex == 0 {
		return
	}
	if x.snap != w.snap || x.nver != w.neighVer {
		w.xdpRevalidate()
	}
	if x.lb != w.lb {
		w.xdpTableChanged()
	}
	s = x.slot[id] // either may have taken connections back and moved others
	var end, ack uint32
	armed := c.Proto == header.ProtoTCP
	if armed {
		var ok bool
		if end, ack, ok = tcpSeqEnd(l3, t); !ok {
			return
		}
	}
	r := xdpfast.Rewrite{Src: to.Src, Dst: to.Dst, SrcPort: to.SrcPort, DstPort: to.DstPort,
		SrcMAC: [6]byte(out.MAC), DstMAC: [6]byte(ne.mac), Ifindex: x.ports[out.Port].ifindex, MTU: out.MTU, Armed: armed}
	if err := in.t.Add(xdpKey(c, dir), r); err != nil {
		w.ctr.inc(CtrLBXDPOffloadFailed)
		return
	}
	w.ctr.inc(CtrLBXDPOffloaded)
	if s == 0 {
		x.conns = append(x.conns, xdpConn{id: id})
		s = int32(len(x.conns))
		x.slot[id] = s
	}
	xc := &x.conns[s-1]
	if armed {
		xc.noteAck(dir, ack)
	}
	if dir == session.Out {
		xc.endsAfter = 0 // a new entry: what the program notes there is this node's
	}
	xc.dirs |= bit
	xc.dir[dir] = xdpDir{port: b.Port, oif: out.Index, nh: nh, smac: out.MAC, mac: ne.mac, mtu: out.MTU,
		oport: uint16(out.Port), armed: armed, mark: end, lastEnd: end, lastAck: ack, queued: true}
	if armed {
		w.xdpMarkDirty(id, &xc.dir[dir])
	}
}

// tcpSeqEnd returns the sequence number just past the TCP segment in l3
// (t its transport, as parsed), SYN and FIN not counted, and its
// acknowledgment number; ok is false when the header's data offset does
// not fit the segment.
func tcpSeqEnd(l3 []byte, t header.Transport) (end, ack uint32, ok bool) {
	if int(t.End) > len(l3) || int(t.Off)+header.TCPMinSize > int(t.End) {
		return 0, 0, false
	}
	l4 := l3[t.Off:t.End]
	doff := int(l4[12]>>4) * 4
	if doff < header.TCPMinSize || doff > len(l4) {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(l4[4:]) + uint32(len(l4)-doff), binary.BigEndian.Uint32(l4[8:]), true
}

// xdpCount moves what entry e counted since the last read into the
// destination's counters; it returns how many packets that was.
func (w *Worker) xdpCount(c *session.Conn, dir session.Direction, d *xdpDir, e xdpfast.Entry) uint64 {
	if e.Packets <= d.pkts {
		return 0
	}
	p, n := e.Packets-d.pkts, e.Bytes-d.bytes
	d.pkts, d.bytes = e.Packets, e.Bytes
	if int(c.Dest) < len(w.lbCounts) {
		if dir == session.In {
			w.destAdd(c.Dest, p, n, 0, 0)
		} else {
			w.destAdd(c.Dest, 0, 0, p, n)
		}
	}
	return p
}

// xdpRevalidate runs when the interfaces, routes or neighbours changed:
// it takes back the connections whose entries no longer send their packets
// where the worker would (another interface, next hop, MAC or MTU; a
// multipath route, which it cannot judge without a packet). Their next
// packets offload them again as they are routed now.
func (w *Worker) xdpRevalidate() {
	x := &w.xdp
	x.snap, x.nver = w.snap, w.neighVer
	for i := len(x.conns) - 1; i >= 0; i-- {
		xc := &x.conns[i]
		c := w.sess.Get(xc.id)
		stale := false
		for dir := session.In; dir <= session.Out && !stale; dir++ {
			if xc.dirs&(1<<dir) == 0 {
				continue
			}
			dst := c.DAddrPort().Addr().Unmap()
			if dir == session.Out {
				dst = c.CAddrPort().Addr().Unmap()
			}
			stale = !w.xdpStillRouted(&xc.dir[dir], dst)
		}
		if stale {
			w.xdpRemove(xc.id, c)
		}
	}
}

// xdpStillRouted reports whether packets to dst would still leave as the
// entry of d sends them.
func (w *Worker) xdpStillRouted(d *xdpDir, dst netip.Addr) bool {
	r := w.snap.routes.Lookup(dst)
	if r == nil || r.Multipath() {
		return false
	}
	nh, oif := routePath(r, dst, nil)
	out := w.snap.iface(oif)
	if out == nil || oif != d.oif || nh != d.nh || out.MAC != d.smac || out.MTU != d.mtu || out.Kind == KindVLAN {
		return false
	}
	n, found := w.neigh.Get(nh)
	return found && n.iface == oif && n.mac == d.mac
}

// xdpDestLive reports whether c's destination is in service: in its
// service, with a weight. Connections to others are not offloaded.
func (w *Worker) xdpDestLive(c *session.Conn) bool {
	d := w.lb.Dests[c.Dest]
	if d == nil || d.Spec.Weight <= 0 {
		return false
	}
	svc := w.lb.ServiceByID(d.Service)
	return svc != nil && liveDest(svc, d.ID) != nil
}

// xdpTableChanged runs when a new service table is published (not per
// packet): offloaded connections whose destination was deleted with
// expire are taken back and end now (LVS's expire_nodest_conn, which the
// worker applies to a connection's next packet: these send it none);
// those whose destination was deleted or quiesced, or whose service was
// edited or deleted, are taken back, so their packets meet the worker's
// rules again (the service's new flags and lists, the drain).
func (w *Worker) xdpTableChanged() {
	x := &w.xdp
	old := x.lb
	x.lb = w.lb
	if len(x.conns) == 0 || old == nil {
		return
	}
	var edited map[uint32]bool // service id → its spec or lists changed; made on demand
	for i := len(x.conns) - 1; i >= 0; i-- {
		id := x.conns[i].id
		c := w.sess.Get(id)
		if _, gone := w.lb.ExpireDests[c.Dest]; gone {
			w.xdpRemove(id, c)
			w.sess.ExpireNow(id)
			continue
		}
		if !w.xdpDestLive(c) {
			w.xdpRemove(id, c)
			continue
		}
		sid := w.lb.Dests[c.Dest].Service
		ch, known := edited[sid]
		if !known {
			if edited == nil {
				edited = map[uint32]bool{}
			}
			n, o := w.lb.ServiceByID(sid), old.ServiceByID(sid)
			ch = o == nil || !reflect.DeepEqual(n.Spec, o.Spec) ||
				!reflect.DeepEqual(n.DenyList, o.DenyList) || !reflect.DeepEqual(n.AllowList, o.AllowList)
			edited[sid] = ch
		}
		if ch {
			w.xdpRemove(id, c)
		}
	}
}

// xdpSweep reads a few offloaded connections' entries per call, a pass a
// second: their traffic goes to the destination counters and keeps them
// from expiring. Called from expireConns.
func (w *Worker) xdpSweep() {
	x := &w.xdp
	if !x.on || len(x.conns) == 0 {
		return
	}
	if x.snap != w.snap || x.nver != w.neighVer {
		w.xdpRevalidate()
	}
	if x.lb != w.lb {
		w.xdpTableChanged()
	}
	if x.sweep == 0 {
		if w.now-x.pass < xdpSweepEvery {
			return
		}
		x.pass = w.now
	}
	for n := 0; n < xdpSweepBudget && x.sweep < len(x.conns); n++ {
		xc := &x.conns[x.sweep]
		x.sweep++
		c := w.sess.Get(xc.id)
		seen := false
		for dir := session.In; dir <= session.Out; dir++ {
			if xc.dirs&(1<<dir) == 0 {
				continue
			}
			e, err := x.ports[xc.dir[dir].port].t.Lookup(xdpKey(c, dir))
			if err != nil {
				continue
			}
			if !e.Armed {
				// the program forwards it now: a mark still waiting
				// (xdpArmSettle) has nothing left to do
				xc.dir[dir].armed, xc.dir[dir].dirty = false, false
			}
			n := w.xdpCount(c, dir, &xc.dir[dir], e)
			if n > 0 {
				seen = true
			}
			if dir == session.In && w.syncPol != nil {
				// session sync counts the client's packets, as if the worker
				// had seen them (sync.go): a backup's copy of a long
				// connection is refreshed although its packets go fast
				for range min(n, 256) {
					w.syncIn(c, xc.id, session.In, c.State)
				}
			}
		}
		if seen {
			w.sess.Touch(xc.id, w.tick())
		}
	}
	if x.sweep >= len(x.conns) {
		x.sweep = 0
	}
}

// offloaded returns the directions of connection id on the fast path (0:
// none); x may be nil.
func (x *workerXDP) offloaded(id uint32) uint8 {
	if x == nil || !x.on || int(id) >= len(x.slot) || x.slot[id] == 0 {
		return 0
	}
	return x.conns[x.slot[id]-1].dirs
}

// XDPFastPath is one port's XDP fast path as dpip info shows it.
type XDPFastPath struct {
	Port   string
	Active bool
	WhyNot string // empty when active
}

// xdpOffloader is a port driver that may attach the XDP fast path
// (afxdp.Port).
type xdpOffloader interface {
	Offload() (active bool, why string)
}

// XDPFastPaths reports, for each port whose driver has an XDP fast path,
// whether it is attached and, when not, why (ipvs.xdp_offload off, or
// the kernel's reason it did not load).
func (d *Dataplane) XDPFastPaths() []XDPFastPath {
	var out []XDPFastPath
	for _, ps := range d.ports {
		o, ok := ps.Port.(xdpOffloader)
		if !ok {
			continue
		}
		on, why := o.Offload()
		out = append(out, XDPFastPath{Port: ps.Port.Name(), Active: on, WhyNot: why})
	}
	return out
}
