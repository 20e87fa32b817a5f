//go:build linux

package session

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHugePages asks the kernel to back the size bytes at p with
// transparent huge pages (MADV_HUGEPAGE; effective when THP is "always" or
// "madvise"). Random lookups in a table of millions of conns otherwise
// spend much of their time in TLB misses. Best effort: errors are ignored.
func adviseHugePages(p unsafe.Pointer, size uintptr) {
	const page = 4096
	skip := -uintptr(p) & (page - 1) // madvise wants a page-aligned start
	if size <= skip {
		return
	}
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, skip)), size-skip), unix.MADV_HUGEPAGE)
}
