package session

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/header"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func newTable(t testing.TB, opts Options) *Table {
	t.Helper()
	tb, err := New(opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	return tb
}

// randAddr returns a random IPv4 or IPv6 address.
func randAddr(r *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		b[0] = 0x20 // keep clear of the v4-mapped range
		return netip.AddrFrom16(b)
	}
	var b [4]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return netip.AddrFrom4(b)
}

// randConn returns a FullNAT conn with random addresses and ports.
func randConn(r *rand.Rand, v6 bool) Conn {
	proto := uint8(header.ProtoTCP)
	if r.IntN(2) == 0 {
		proto = header.ProtoUDP
	}
	c := NewConn(proto,
		netip.AddrPortFrom(randAddr(r, v6), uint16(r.Uint32())),
		netip.AddrPortFrom(randAddr(r, v6), uint16(r.Uint32())),
		netip.AddrPortFrom(randAddr(r, v6), uint16(r.Uint32())),
		netip.AddrPortFrom(randAddr(r, v6), uint16(r.Uint32())))
	c.Dest, c.Service, c.Mark = r.Uint32(), r.Uint32(), uint8(r.Uint32())
	return c
}

// sameConn compares the caller-visible fields of two conns.
func sameConn(a, b *Conn) bool {
	return a.CAddr == b.CAddr && a.VAddr == b.VAddr && a.LAddr == b.LAddr && a.DAddr == b.DAddr &&
		a.CPort == b.CPort && a.VPort == b.VPort && a.LPort == b.LPort && a.DPort == b.DPort &&
		a.Proto == b.Proto && a.State == b.State && a.Flags&^flagsInternal == b.Flags&^flagsInternal &&
		a.Dest == b.Dest && a.Service == b.Service && a.Mark == b.Mark
}

// checkInvariants verifies the index and the wheel against the slab.
func checkInvariants(t testing.TB, tb *Table) {
	t.Helper()
	// index: every entry is reachable from its home without crossing an
	// empty slot, refers to a live conn and hashes as stored.
	entries := 0
	seen := make(map[uint32]bool)
	for i, s := range tb.index {
		if s.ref == 0 {
			continue
		}
		entries++
		if s.ref < 2 {
			t.Fatalf("slot %d: ref %d", i, s.ref)
		}
		if seen[s.ref] {
			t.Fatalf("slot %d: ref %d indexed twice", i, s.ref)
		}
		seen[s.ref] = true
		id := refID(s.ref)
		c := tb.Get(id)
		if c == nil {
			t.Fatalf("slot %d: ref to free conn %d", i, id)
		}
		k := c.InKey()
		if refDir(s.ref) == Out {
			k = c.OutKey()
		}
		if h := tb.hashKey(&k); h != s.tag {
			t.Fatalf("slot %d: tag %#x, key hashes to %#x", i, s.tag, h)
		}
		for j := s.tag & tb.imask; j != uint32(i); j = (j + 1) & tb.imask {
			if tb.index[j].ref == 0 {
				t.Fatalf("slot %d: empty slot %d between home %d and entry", i, j, s.tag&tb.imask)
			}
		}
	}
	if entries != 2*tb.Len() {
		t.Fatalf("index has %d entries for %d conns", entries, tb.Len())
	}
	// wheel: every live conn is on exactly one list, lists are consistent.
	onList := 0
	for i := range tb.wheel.next {
		head := tb.wheel.base + uint32(i)
		prev := head
		for id := tb.nextOf(head); id != head; id = tb.nextOf(id) {
			if id >= tb.cap || tb.conns[id].Proto == 0 {
				t.Fatalf("list %d: free or bad conn %d", i, id)
			}
			if tb.conns[id].tprev != prev {
				t.Fatalf("list %d: conn %d prev %d, want %d", i, id, tb.conns[id].tprev, prev)
			}
			prev = id
			onList++
			if onList > tb.Len() {
				t.Fatalf("wheel lists hold more than %d conns", tb.Len())
			}
		}
		if tb.wheel.prev[i] != prev {
			t.Fatalf("list %d: tail %d, want %d", i, tb.wheel.prev[i], prev)
		}
	}
	if onList != tb.Len() {
		t.Fatalf("wheel holds %d conns, table %d", onList, tb.Len())
	}
}

// ticks converts a duration to ticks at the default tick.
func ticks(d time.Duration) uint32 { return uint32(d / DefaultTick) }
