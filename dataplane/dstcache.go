package dataplane

// The destination cache: what the route lookup and the neighbour lookup
// answered for a recent destination, per worker. A translated FullNAT
// packet and a forwarded one both need the output interface, the next hop
// and its MAC; the longest-prefix match (a map per prefix length) and the
// neighbour table cost as much as the rest of an established connection's
// packet, and they give the same answer for every packet to a real server
// until a route, an address or a neighbour changes.
//
// An entry records the snapshot (routes, interfaces) and the neighbour
// publication it was computed from; it is used only while the worker
// still reads that same snapshot and publication, so any change to
// routes, interfaces or neighbours invalidates every entry at once, with
// nothing to flush. Multipath routes are not cached: their next hop
// depends on the flow. Entries are direct-mapped by a hash of the
// destination: a collision just recomputes. The neighbour entry is kept
// by pointer, so its confirmation time (for probing a stale neighbour) is
// read as in the uncached path.

import (
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/internal/addrmap"
)

// dstCacheSize is the number of cached destinations per worker (a power
// of two; 72 bytes each).
const dstCacheSize = 512

type dstEntry struct {
	hi, lo uint64
	snap   *snapshot
	nver   uint64
	out    *Iface
	nh     netip.Addr
	ne     *neighEntry // nil: the next hop was not resolved then
}

type dstCache struct {
	e [dstCacheSize]dstEntry
}

func (c *dstCache) slot(hi, lo uint64) *dstEntry {
	h := (lo ^ hi*0x9e3779b97f4a7c15) * 0xbf58476d1ce4e5b9
	return &c.e[h>>(64-9)&(dstCacheSize-1)]
}

// path returns the output interface and next hop towards dst and, when
// known, the next hop's neighbour entry: from the cache, or from the
// route and neighbour tables (then cached unless the route is multipath).
// ok is false when no route leads to dst.
func (w *Worker) path(dst netip.Addr, l3 []byte) (out *Iface, nh netip.Addr, ne *neighEntry, ok bool) {
	hi, lo := addrmap.Words(dst)
	if out, nh, ne, ok = w.cachedPath(hi, lo); ok {
		return out, nh, ne, true
	}
	return w.pathMiss(hi, lo, dst, l3)
}

// cachedPath is path's answer when the cache holds one for the
// destination of words hi and lo (addrmap.Words): the same answer for every
// packet to it, whatever its flow (a multipath route, whose next hop
// depends on the flow, is never cached). ok is false otherwise.
func (w *Worker) cachedPath(hi, lo uint64) (out *Iface, nh netip.Addr, ne *neighEntry, ok bool) {
	e := w.dsts.slot(hi, lo)
	if e.snap == w.snap && e.nver == w.neighVer && e.hi == hi && e.lo == lo {
		return e.out, e.nh, e.ne, true
	}
	return nil, nh, nil, false
}

// pathMiss is path on a cache miss (dst's words hi and lo): the route and
// neighbour lookups, whose answer it caches.
func (w *Worker) pathMiss(hi, lo uint64, dst netip.Addr, l3 []byte) (out *Iface, nh netip.Addr, ne *neighEntry, ok bool) {
	r := w.snap.routes.Lookup(dst)
	if r == nil {
		return nil, nh, nil, false
	}
	nh, oif := routePath(r, dst, l3)
	out = w.snap.iface(oif)
	if out == nil {
		return nil, nh, nil, false
	}
	if n, found := w.neigh.Get(nh); found && n.iface == out.Index {
		ne = n
	}
	if !r.Multipath() {
		*w.dsts.slot(hi, lo) = dstEntry{hi: hi, lo: lo, snap: w.snap, nver: w.neighVer, out: out, nh: nh, ne: ne}
	}
	return out, nh, ne, true
}

// xmitTo sends b out of out towards nh: at once to a neighbour entry path
// found, else through xmit (which resolves nh and holds b meanwhile).
func (w *Worker) xmitTo(b *pktbuf.Buf, out *Iface, nh netip.Addr, ne *neighEntry) {
	if ne == nil || w.trBuf == b {
		w.xmit(b, out, nh)
		return
	}
	if !ne.static && w.now-ne.confirmed.Load() > int64(w.dp.neigh.reachable) {
		w.probe(out, nh, ne.mac) // still usable while the probe is out
	}
	w.output(b, out, ne.mac)
}
