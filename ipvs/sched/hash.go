package sched

import (
	"encoding/binary"
	"net/netip"
)

// Hashing for sh and mh. Every function here is deterministic: no per-process
// random seed. All workers must build identical tables, and so must every GVS
// appliance behind the same ECMP routers, so that a flow moved between
// appliances by a routing change still finds the same dest.

// Seeds of the independent hash functions mh uses (arbitrary odd constants).
const (
	seedFlow   = 0x9e3779b97f4a7c15 // a flow's source → table slot
	seedOffset = 0xc2b2ae3d27d4eb4f // a dest's identity → permutation offset
	seedSkip   = 0x165667b19e3779f9 // a dest's identity → permutation skip
	seedProbe  = 0x27d4eb2f165667c5 // a flow's source → fallback probes (sh, mh)
)

// fallbackProbes is how many rehashed probes the sh and mh fallbacks try
// before making sure some dest is available and walking the table.
const fallbackProbes = 16

// probeHash is the k-th (k >= 1) fallback probe of a source: an independent
// hash per k, so that the probes of one source land on unrelated slots and
// the flows of an unavailable dest spread over the others by weight.
func probeHash(k int, a netip.Addr, port uint16) uint64 {
	return hashAddrPort(seedProbe+uint64(k)*0x9e3779b97f4a7c15, a, port)
}

// mix64 is the 64-bit finalizer of MurmurHash3 (fmix64): a bijection after
// which every output bit depends on every input bit.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// hashAddrPort hashes an address and a port with a seed. An IPv4 address and
// its IPv4-mapped IPv6 form hash alike (As16 maps both to the same bytes).
// For IPv4 the (address, port) → input mapping is injective; for IPv6 the
// port shares bits with the top half of the address, which costs nothing but
// a crafted collision.
func hashAddrPort(seed uint64, a netip.Addr, port uint16) uint64 {
	b := a.As16()
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	return mix64(mix64(seed^hi^uint64(port)) ^ lo)
}

// isPrime reports whether n is prime (trial division; n is at most
// MaxTableSize, so at most ~500 divisions).
func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	if n%2 == 0 {
		return n == 2
	}
	for d := 3; d*d <= n; d += 2 {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// nextPrime returns the smallest prime >= n.
func nextPrime(n int) int {
	for !isPrime(n) {
		n++
	}
	return n
}
