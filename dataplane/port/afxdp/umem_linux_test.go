//go:build linux

package afxdp

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestUMEMAdvisedAndPrefaulted checks the UMEM mapping as the kernel lists
// it in /proc/self/smaps: advised for transparent huge pages (VmFlags
// "hg") and resident in full before the first packet arrives.
func TestUMEMAdvisedAndPrefaulted(t *testing.T) {
	const size = 8 << 20
	b, err := mmapUMEM(size)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	start := uintptr(unsafe.Pointer(&b[0]))
	flags, rss := smapsOf(t, start)
	if !strings.Contains(" "+flags+" ", " hg ") {
		t.Errorf("UMEM at %#x: VmFlags %q, want hg (MADV_HUGEPAGE)", start, flags)
	}
	if rss != size/1024 {
		t.Errorf("UMEM at %#x: Rss %d kB, want %d kB (prefaulted)", start, rss, size/1024)
	}
}

// smapsOf returns the VmFlags and Rss (kB) of the mapping that starts at addr.
func smapsOf(t *testing.T, addr uintptr) (flags string, rss int) {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := fmt.Sprintf("%x-", addr)
	in, found := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = strings.HasPrefix(fields[0], want)
			found = found || in
			continue
		}
		if !in {
			continue
		}
		switch fields[0] {
		case "Rss:":
			rss, _ = strconv.Atoi(fields[1])
		case "VmFlags:":
			flags = strings.Join(fields[1:], " ")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("no mapping starts at %#x in /proc/self/smaps", addr)
	}
	return flags, rss
}
