// Package session holds a worker's connection table: the FullNAT/NAT
// connections of GVS, their LVS TCP/UDP state machine and timeouts, and the
// timer wheel that expires them.
//
// # Ownership
//
// One Table per worker, used by that worker only. A Table takes no locks
// and is not safe for concurrent use; the only exception is Published,
// which any goroutine may call to read the counters the owner last
// published with Publish.
//
// # Memory
//
// Bulk state is pointer-free, so the garbage collector never scans it:
//   - a slab []Conn of Capacity entries (96 bytes each), addressed by a
//     uint32 connection id; freed ids are chained through the Conn's timer
//     link, fresh ids come from a high-water mark so untouched slab pages
//     are never made resident;
//   - an open-addressing index of 4×Capacity slots of 8 bytes
//     {tag, ref}: two entries per connection (the "in" and the "out" key)
//     at a load of at most 0.5, linear probing, backward-shift deletion,
//     no tombstones;
//   - the timer wheel's slot heads (two uint32 per slot, independent of
//     Capacity).
//
// Capacity is rounded up to a power of two, so slab plus index cost exactly
// 96 + 4×8 = 128 bytes per connection. On Linux the slab and the index are
// advised to use transparent huge pages (MADV_HUGEPAGE), since random
// lookups over gigabytes of table are otherwise dominated by TLB misses.
//
// # Time
//
// The table never reads the clock. Every call that needs the time takes
// "now" in ticks of Options.Tick (10 ms by default) as a uint32 that the
// caller derives from a monotonic clock, e.g. uint32(time.Since(start) /
// tick). Tick arithmetic is serial (RFC 1982 style): now may wrap around
// 2^32 (after 497 days at 10 ms) as long as it never moves backwards and
// Expire is called at least once every 2^31 ticks.
//
// # Vocabulary
//
// FullNAT as in LVS/DPVS: a client C talks to the virtual address V; the
// balancer talks to the real server D from its local address L. The "in"
// key is the client→VIP packet (proto, C, V); the "out" key is the real
// server's reply (proto, D, L). For plain NAT L is C; for DR/tunnel the out
// key is indexed but never hit.
package session
