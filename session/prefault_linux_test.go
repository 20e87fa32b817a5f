package session

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

func rssBytes(t *testing.T) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb * 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestPrefaultMakesTableResident: with Prefault the table's memory is
// resident right after New (no page faults later on the packet path).
func TestPrefaultMakesTableResident(t *testing.T) {
	const capacity = 1 << 18 // 32 MiB of slab and index
	before := rssBytes(t)
	tb, err := New(Options{Capacity: capacity, Prefault: true})
	if err != nil {
		t.Fatal(err)
	}
	grown := rssBytes(t) - before
	if want := int64(capacity * 128 * 3 / 4); grown < want {
		t.Errorf("resident memory grew by %d bytes, want at least %d", grown, want)
	}
	if tb.Capacity() != capacity {
		t.Errorf("capacity %d", tb.Capacity())
	}
}
