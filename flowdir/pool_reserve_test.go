package flowdir

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPoolReserve(t *testing.T) {
	st := NewSteering(2)
	p := NewPool(1, st, nil)
	la := netip.MustParseAddr("10.2.0.100")
	rs := netip.MustParseAddrPort("10.2.0.11:8080")
	rs2 := netip.MustParseAddrPort("10.2.0.12:8080")
	free := p.Free(la, rs)
	if err := p.Reserve(la, rs, 40001); err != nil {
		t.Fatalf("Reserve(40001) on worker 1: %v", err)
	}
	if got := p.Free(la, rs); got != free-1 {
		t.Errorf("Free after Reserve = %d, want %d", got, free-1)
	}
	if err := p.Reserve(la, rs, 40001); !errors.Is(err, ErrPortTaken) {
		t.Errorf("second Reserve(40001) = %v, want ErrPortTaken", err)
	}
	if err := p.Reserve(la, rs2, 40001); err != nil {
		t.Errorf("Reserve(40001) towards another real server: %v", err)
	}
	for _, port := range []uint16{40000, 1000, 1} {
		if err := p.Reserve(la, rs, port); !errors.Is(err, ErrNotOwned) {
			t.Errorf("Reserve(%d) on worker 1 = %v, want ErrNotOwned", port, err)
		}
	}
	// Get never hands out the reserved port
	for {
		port, err := p.Get(la, rs)
		if err != nil {
			break
		}
		if port == 40001 {
			t.Fatal("Get handed out a reserved port")
		}
	}
	if got := p.Free(la, rs); got != 0 {
		t.Fatalf("Free when exhausted = %d", got)
	}
	// Put returns it like any other, and Get can take it again
	if !p.Put(la, rs, 40001) {
		t.Fatal("Put of the reserved port refused")
	}
	if port, err := p.Get(la, rs); err != nil || port != 40001 {
		t.Errorf("Get after Put = %d, %v, want 40001", port, err)
	}
}
