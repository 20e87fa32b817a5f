//go:build !linux

package session

import "unsafe"

func adviseHugePages(p unsafe.Pointer, size uintptr) {}
