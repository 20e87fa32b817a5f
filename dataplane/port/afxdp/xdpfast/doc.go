// Package xdpfast is GVS's XDP fast path for established FullNAT
// connections: the XDP program an AF_XDP port attaches when offload is on,
// its maps, and the control side that writes them.
//
// The program (bpf/xdpfast.c, compiled by clang into fast_bpfel.o with
// bpf2go; `make bpf` regenerates it) does what the plain AF_XDP program does
// — every frame to the AF_XDP socket of its queue — except for IPv4/IPv6
// TCP/UDP packets whose 5-tuple is an entry of the connection map: those it
// rewrites as the worker would (nat.RewriteAt, then TTL or hop limit minus
// one and the next hop's MACs) and redirects out of the entry's egress port
// without a trip through userspace. A connection is two entries, one per
// direction, keyed by the packet as it arrives.
//
// What stays with the workers, although its connection is offloaded: TCP
// segments with SYN, FIN or RST (state changes, and the worker removes the
// entries), TTL or hop limit ≤ 1 (time exceeded), packets longer than the
// egress MTU (too big), fragments, IPv4 options, IPv6 extension headers,
// VLAN-tagged frames, group-addressed frames, and entries marked Slow.
// Where each frame went is counted per CPU (Verdicts).
//
// Concurrency: the maps are the kernel's; Add, Delete, Lookup and Verdicts
// may be called from any goroutine. An entry's counters are bumped by the
// program with atomic adds; Add replaces an entry whole, counters included,
// so a caller that keeps totals reads the entry before replacing it (the
// packets forwarded between the two calls are then missed).
package xdpfast
