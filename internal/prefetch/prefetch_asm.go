//go:build amd64 || arm64

package prefetch

import "unsafe"

// T0 starts loading the cache line holding p into every cache level
// (x86 PREFETCHT0, arm64 PRFM PLDL1KEEP). It never faults, whatever p is.
//
//go:noescape
func T0(p unsafe.Pointer)
