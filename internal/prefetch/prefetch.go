// Package prefetch asks the CPU to start loading a cache line without
// waiting for it, as DPDK's rte_prefetch0 does: the packet path names the
// session index slots and connections a burst's packets will read, so that
// their cache misses overlap instead of stalling one packet after another.
// A hint only: where the architecture has no such instruction here, T0
// does nothing.
package prefetch
