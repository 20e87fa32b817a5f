package dataplane

// Fragments to a virtual or local address: forwarded by a per-worker
// fragment-to-connection cache, without reassembly (so GVS never has to
// fragment again on the way out, and holds no datagram).
//
//   - The first fragment (offset 0) carries the ports: it takes the normal
//     path (connection lookup, new connection, translation). Its transport
//     checksum covers the whole datagram, and nat.RewriteAt's incremental
//     update of it by the address/port delta is exact for the datagram, so
//     the first fragment is rewritten like a whole packet. Whatever would
//     change the datagram's length or payload is not done to a fragment:
//     no TOA is inserted (lbtoa.go, the server sees the local address for
//     such a connection until an unfragmented segment carries it), no UOA
//     (lbuoa.go), and fragments of a connection whose sequence numbers GVS
//     shifts (SYN proxy, proxy protocol: session.FlagAdjusted), of a NAT64
//     connection (each fragment would need a new IP header) or of a
//     one-packet or SYN-proxy service are dropped (drop_lb_frag_unsupported).
//   - NAT (-m) connections are translated as FullNAT ones are (their local
//     address is the client's); direct routing and tunnel connections send
//     every fragment as the first went (MAC rewrite, encapsulation).
//   - The first fragment records in this worker's cache the datagram's
//     key — source, destination, IP identification (32 bits for IPv6),
//     protocol — with the connection and the direction, or with the worker
//     it was handed to (a reply whose local port another worker owns,
//     lbredirect.go). A later fragment finds the entry and gets the same
//     address translation (nat.RewriteAddrs: the IPv4 header checksum is
//     updated; it has no transport header) and the same route, or follows
//     the first to its worker over the redirect ring (which keeps order).
//   - A later fragment that arrives before its first is copied into a small
//     hold queue (fragHoldSlots frames of at most fragHoldSize bytes) and
//     released through the pipeline by fragService once the first has
//     passed, or dropped after fragHoldTimeout (drop_lb_frag_timeout).
//     fragService runs once per loop iteration, after the bursts, on the
//     worker's clock (w.now).
//   - Memory is fixed: the cache is set-associative (fragWays entries per
//     set), entries live fragTimeout; a set with no free or expired entry
//     evicts its oldest (lb_frag_evicted). Nothing here allocates per packet.
//
// RSS: a fragment has no ports where a NIC looks for them, so NICs hash
// every fragment of a datagram — the first too, since it is flagged as a
// fragment — by its addresses only. All fragments of one datagram hence
// reach the same queue and worker, which is what the cache needs; they may
// reach another worker than the unfragmented packets of the same flow
// (hashed with the ports). For replies to a local address that is
// harmless: the first fragment is handed to the owner of the local port
// and the rest follow it. For client traffic to a VIP it means a
// fragmented datagram may be scheduled as a new connection on the worker
// its fragments reach, beside the flow's connection on the worker of its
// unfragmented packets (UDP: each works on its own; TCP: segments are
// rarely fragmented, PMTU discovery sets DF). A later fragment whose first
// went to another queue cannot be known here; it is held and dropped after
// the timeout (drop_lb_frag_timeout) — with address-only hashing for
// fragments that does not happen.

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/nat"
	"github.com/gvs-lb/gvs/session"
)

const (
	fragSets        = 256       // cache sets per worker (fragSets × fragWays entries)
	fragWays        = 4         // entries per set
	fragTimeout     = 3e9       // ns an entry lives: fragments of a datagram come together
	fragHoldSlots   = 32        // later fragments held before their first, per worker
	fragHoldSize    = 2048      // bytes per held frame (a 1500-byte MTU frame with VLAN tags fits)
	fragHoldTimeout = 1e9       // ns a held fragment waits for its first
	fragNoOwner     = int32(-1) // an entry for a connection of this worker
	fragRefused     = int32(-2) // the first fragment was refused: so are the others
)

// fragKey identifies one datagram's fragments (RFC 791, RFC 8200 §4.5).
type fragKey struct {
	src, dst [16]byte // IPv4 addresses v4-mapped, as session keys have them
	id       uint32
	proto    uint8 // IPv4 protocol; IPv6: the fragment header's next header
}

// fragEntry is where the first fragment of a datagram went.
type fragEntry struct {
	key   fragKey
	born  int64 // w.now when recorded
	conn  uint32
	owner int32 // the worker the first was handed to; fragNoOwner: this one
	dir   session.Direction
	used  bool
}

// fragHold is a later fragment waiting for its first: the frame is in
// holdBuf at its slot's offset.
type fragHold struct {
	key  fragKey
	born int64
	n    uint16
	port uint16
	used bool
}

// lbFrag is a worker's fragment state (allocated at its first fragment).
type lbFrag struct {
	cache   []fragEntry // fragSets × fragWays
	sets    uint32      // a power of two
	seed    uint64
	hold    [fragHoldSlots]fragHold
	holdBuf []byte
	held    int // used hold slots
}

func (f *lbFrag) init(sets uint32) {
	f.sets = sets
	f.cache = make([]fragEntry, int(sets)*fragWays)
	f.holdBuf = make([]byte, fragHoldSlots*fragHoldSize)
	f.seed = rand.Uint64()
}

func (f *lbFrag) set(k *fragKey) []fragEntry {
	h := f.seed ^ uint64(k.id)<<8 ^ uint64(k.proto)
	for i := 0; i < 16; i += 8 {
		h = (h ^ binary.LittleEndian.Uint64(k.src[i:])) * 0x9e3779b97f4a7c15
		h = (h ^ binary.LittleEndian.Uint64(k.dst[i:])) * 0xbf58476d1ce4e5b9
	}
	s := uint32(h>>32^h) & (f.sets - 1)
	return f.cache[s*fragWays : (s+1)*fragWays]
}

// lookup returns k's live entry, or nil.
func (f *lbFrag) lookup(k *fragKey, now int64) *fragEntry {
	if f.cache == nil {
		return nil
	}
	set := f.set(k)
	for i := range set {
		if e := &set[i]; e.used && e.key == *k && now-e.born < fragTimeout {
			return e
		}
	}
	return nil
}

// record enters k; evicted reports that a live entry made room.
func (f *lbFrag) record(k *fragKey, now int64, conn uint32, dir session.Direction, owner int32) (evicted bool) {
	if f.cache == nil {
		f.init(fragSets)
	}
	set := f.set(k)
	var e *fragEntry // the key's own entry, else a free or expired one, else the oldest
	for i := range set {
		x := &set[i]
		if x.used && x.key == *k {
			e = x
			break
		}
		eLive := e != nil && e.used && now-e.born < fragTimeout
		if !x.used || now-x.born >= fragTimeout { // free
			if e == nil || eLive {
				e = x
			}
			continue
		}
		if e == nil || eLive && x.born < e.born { // the oldest live one
			e = x
		}
	}
	evicted = e.used && e.key != *k && now-e.born < fragTimeout
	*e = fragEntry{key: *k, born: now, conn: conn, owner: owner, dir: dir, used: true}
	return evicted
}

// fragKeyOf returns the key of fragment l3 (t.Fragment() is true).
func fragKeyOf(l3 []byte, t header.Transport) (k fragKey, ok bool) {
	if t.V6() {
		_, fo := header.LocateIPv6Frag(header.IPv6(l3[:t.End]))
		if fo == 0 {
			return k, false
		}
		copy(k.src[:], l3[8:24])
		copy(k.dst[:], l3[24:40])
		k.id, k.proto = binary.BigEndian.Uint32(l3[fo+4:]), l3[fo]
		return k, true
	}
	ip := header.IPv4(l3)
	k.src[10], k.src[11], k.dst[10], k.dst[11] = 0xff, 0xff, 0xff, 0xff
	copy(k.src[12:], ip.SrcBytes())
	copy(k.dst[12:], ip.DstBytes())
	k.id, k.proto = uint32(ip.ID()), t.Proto
	return k, true
}

// fragFirst records the first fragment of a datagram of connection id
// (lbConn calls it for fragments with their transport header) and returns
// false when the connection cannot carry fragments (b was dropped).
func (w *Worker) fragFirst(b *pktbuf.Buf, l3 []byte, t header.Transport, id uint32, dir session.Direction, c *session.Conn) bool {
	if c.Flags&session.FlagAdjusted != 0 || isNAT64(c) { // shifted sequence numbers; a new IP header per fragment
		w.fragRecord(l3, t, id, dir, fragRefused) // its later fragments go at once, not into the hold queue
		w.drop(b, CtrDropLBFragUnsupported)
		return false
	}
	w.fragRecord(l3, t, id, dir, fragNoOwner)
	w.ctr.inc(CtrLBFragFirst) // once per datagram: where its connection is
	return true
}

// fragRecord enters the datagram of first fragment l3 in the cache.
func (w *Worker) fragRecord(l3 []byte, t header.Transport, id uint32, dir session.Direction, owner int32) {
	k, ok := fragKeyOf(l3, t)
	if !ok {
		return
	}
	if w.frag.record(&k, w.now, id, dir, owner) {
		w.ctr.inc(CtrLBFragEvicted)
	}
}

// lbFragLater forwards a fragment without its transport header as its
// datagram's first fragment went, or holds it until that one comes.
func (w *Worker) lbFragLater(b *pktbuf.Buf, l3 []byte, t header.Transport) verdict {
	k, ok := fragKeyOf(l3, t)
	if !ok {
		w.drop(b, CtrDropLBBadL4)
		return stolen
	}
	e := w.frag.lookup(&k, w.now)
	if e == nil {
		w.fragHold(b, &k)
		return stolen
	}
	if e.owner == fragRefused {
		w.drop(b, CtrDropLBFragUnsupported)
		return stolen
	}
	if e.owner != fragNoOwner && int(e.owner) != w.id {
		w.redirect(b, int(e.owner))
		return stolen
	}
	c := w.sess.Get(e.conn)
	// the connection may have ended and its id been reused: the addresses
	// must still be those of the direction the first fragment had
	if c == nil || e.dir == session.In && (c.CAddr != k.src || c.VAddr != k.dst) ||
		e.dir == session.Out && (c.DAddr != k.src || c.LAddr != k.dst) {
		w.drop(b, CtrDropLBFragNoConn)
		return stolen
	}
	w.ctr.inc(CtrLBFragForwarded)
	w.sess.Touch(e.conn, w.tick())
	if !c.HasLocal() && !w.isMasq(e.conn) { // direct routing, tunnel: as the first went
		w.lbDRConn(b, l3, c, e.dir)
		return stolen
	}
	var src, dst netip.Addr
	if e.dir == session.In {
		w.destIn(c.Dest, uint64(len(l3)))
		w.ctr.inc(CtrLBIn)
		src, dst = c.LAddrPort().Addr().Unmap(), c.DAddrPort().Addr().Unmap()
	} else {
		w.destOut(c.Dest, uint64(len(l3)))
		w.ctr.inc(CtrLBOut)
		src, dst = c.VAddrPort().Addr().Unmap(), c.CAddrPort().Addr().Unmap()
	}
	if nat.RewriteAddrs(l3, src, dst) != nil {
		w.drop(b, CtrDropLBBadL4)
		return stolen
	}
	w.lbRouteOrDrop(b, l3, dst)
	return stolen
}

// fragHold copies later fragment b into a free hold slot (b is freed).
func (w *Worker) fragHold(b *pktbuf.Buf, k *fragKey) {
	f := &w.frag
	if f.holdBuf == nil {
		f.init(fragSets)
	}
	frame := b.Bytes()
	if f.held == fragHoldSlots || len(frame) > fragHoldSize {
		w.drop(b, CtrDropLBFragHoldFull)
		return
	}
	for i := range f.hold {
		h := &f.hold[i]
		if h.used {
			continue
		}
		copy(f.holdBuf[i*fragHoldSize:], frame)
		*h = fragHold{key: *k, born: w.now, n: uint16(len(frame)), port: b.Port, used: true}
		f.held++
		w.ctr.inc(CtrLBFragHeld)
		b.Free()
		return
	}
}

// fragService runs once per loop: held fragments whose first has passed
// go through the pipeline again; those that waited too long are dropped.
func (w *Worker) fragService() {
	f := &w.frag
	if f.held == 0 {
		return
	}
	for i := range f.hold {
		h := &f.hold[i]
		if !h.used {
			continue
		}
		if f.lookup(&h.key, w.now) == nil {
			if w.now-h.born >= fragHoldTimeout {
				h.used = false
				f.held--
				w.ctr.inc(CtrDropLBFragTimeout)
			}
			continue
		}
		h.used = false
		f.held--
		b := w.queues[h.port].Alloc()
		if b == nil {
			w.ctr.inc(CtrDropNoBuffer)
			continue
		}
		if !b.CopyFrom(f.holdBuf[i*fragHoldSize : i*fragHoldSize+int(h.n)]) {
			b.Free()
			w.ctr.inc(CtrDropNoBuffer)
			continue
		}
		b.Port = h.port
		w.ctr.inc(CtrLBFragReleased)
		w.cur = b
		w.input(b)
		w.cur = nil
	}
}
