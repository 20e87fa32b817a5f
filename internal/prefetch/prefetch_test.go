package prefetch

import (
	"testing"
	"unsafe"
)

// TestT0: a prefetch, of data or of nil, returns and changes nothing.
func TestT0(t *testing.T) {
	b := []byte{1, 2, 3}
	T0(unsafe.Pointer(&b[0]))
	T0(nil)
	if b[0] != 1 || b[1] != 2 || b[2] != 3 {
		t.Fatalf("prefetch changed the data: %v", b)
	}
}
