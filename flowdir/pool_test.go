package flowdir

import (
	"net/netip"
	"testing"
)

func TestSteeringOwner(t *testing.T) {
	st := NewSteering(3) // mask 3: ports with low bits 3 belong to nobody
	if st.Mask() != 3 {
		t.Fatalf("mask = %d", st.Mask())
	}
	for _, c := range []struct {
		port  uint16
		owner int
	}{{1024, 0}, {1025, 1}, {1026, 2}, {1027, 3}, {65535, 3}} {
		if got := st.Owner(c.port); got != c.owner {
			t.Errorf("Owner(%d) = %d, want %d", c.port, got, c.owner)
		}
	}
}

func TestPoolsAreDisjoint(t *testing.T) {
	st := NewSteering(2)
	la := netip.MustParseAddr("10.2.0.100")
	rs := netip.MustParseAddrPort("10.2.0.11:8080")
	seen := map[uint16]int{}
	for w := 0; w < 2; w++ {
		p := NewPool(w, st, nil)
		for {
			port, err := p.Get(la, rs)
			if err != nil {
				break
			}
			if port < MinPort || st.Owner(port) != w {
				t.Fatalf("worker %d got port %d owned by %d", w, port, st.Owner(port))
			}
			if o, dup := seen[port]; dup {
				t.Fatalf("port %d given to workers %d and %d", port, o, w)
			}
			seen[port] = w
		}
	}
	if len(seen) != 65536-MinPort {
		t.Errorf("%d ports handed out, want %d", len(seen), 65536-MinPort)
	}
}

func TestPoolPutGet(t *testing.T) {
	p := NewPool(0, NewSteering(1), nil)
	la := netip.MustParseAddr("10.2.0.100")
	rs := netip.MustParseAddrPort("10.2.0.11:80")
	a, _ := p.Get(la, rs)
	total := p.Free(la)
	if !p.Put(la, a) || p.Free(la) != total+1 {
		t.Fatal("Put did not return the port")
	}
	if p.Put(la, a) {
		t.Fatal("double Put accepted")
	}
	if p.Put(netip.MustParseAddr("10.9.9.9"), 2000) {
		t.Fatal("Put for an unknown address accepted")
	}
	if n := testing.AllocsPerRun(100, func() {
		port, _ := p.Get(la, rs)
		p.Put(la, port)
	}); n != 0 {
		t.Errorf("Get/Put allocate %v", n)
	}
}

func TestPoolRSSFilter(t *testing.T) {
	tp := NewToeplitz(DefaultRSSKey[:])
	const queues = 2
	la := netip.MustParseAddr("10.2.0.100")
	rs := netip.MustParseAddrPort("10.2.0.11:8080")
	for w := 0; w < queues; w++ {
		f := &RSSFilter{Hash: tp, Queues: queues}
		p := NewPool(w, NewSteering(queues), f)
		hits := 0
		for i := 0; i < 500; i++ {
			port, err := p.Get(la, rs)
			if err != nil {
				t.Fatal(err)
			}
			if f.Queue(tp.Hash4Tuple(rs.Addr(), la, rs.Port(), port, true)) == w {
				hits++
			}
		}
		if hits < 495 {
			t.Errorf("worker %d: only %d of 500 ports hash back to its queue", w, hits)
		}
	}
}
