package flowdir

import (
	"errors"
	"net/netip"
	"slices"
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
	total := p.Free(la, rs)
	if !p.Put(la, rs, a) || p.Free(la, rs) != total+1 {
		t.Fatal("Put did not return the port")
	}
	if p.Put(la, rs, a) {
		t.Fatal("double Put accepted")
	}
	if p.Put(netip.MustParseAddr("10.9.9.9"), rs, 2000) {
		t.Fatal("Put for an unknown address accepted")
	}
	b, _ := p.Get(la, rs)
	if p.Put(la, netip.MustParseAddrPort("10.2.0.11:81"), b) {
		t.Fatal("Put towards another real server accepted")
	}
	if p.Put(la, rs, 80) {
		t.Fatal("Put of a port below MinPort accepted")
	}
	if !p.Put(la, rs, b) {
		t.Fatal("Put of a taken port refused")
	}
	if n := testing.AllocsPerRun(100, func() {
		port, _ := p.Get(la, rs)
		p.Put(la, rs, port)
	}); n != 0 {
		t.Errorf("Get/Put allocate %v", n)
	}
}

// The port space is per (local address, real server): the same local
// port serves connections to different real servers at once.
func TestPoolPortsPerRealServer(t *testing.T) {
	st := NewSteering(2)
	p := NewPool(1, st, nil)
	la := netip.MustParseAddr("10.2.0.100")
	rss := []netip.AddrPort{
		netip.MustParseAddrPort("10.2.0.11:8080"), netip.MustParseAddrPort("10.2.0.12:8080"),
		netip.MustParseAddrPort("10.2.0.11:8081"), netip.MustParseAddrPort("[fd00:2::11]:8080"),
	}
	want := (65536 - MinPort) / 2
	if p.PortsPerServer() != want {
		t.Fatalf("PortsPerServer = %d, want %d", p.PortsPerServer(), want)
	}
	got := make([]map[uint16]bool, len(rss))
	for i := range got {
		got[i] = map[uint16]bool{}
	}
	// interleave the servers, as a scheduler does
	for n := 0; n < want; n++ {
		for i, rs := range rss {
			port, err := p.Get(la, rs)
			if err != nil {
				t.Fatalf("server %v, port %d of %d: %v", rs, n+1, want, err)
			}
			if port < MinPort || st.Owner(port) != 1 || got[i][port] {
				t.Fatalf("server %v: port %d (owner %d, dup %v)", rs, port, st.Owner(port), got[i][port])
			}
			got[i][port] = true
		}
	}
	for i, rs := range rss {
		if _, err := p.Get(la, rs); !errors.Is(err, ErrExhausted) {
			t.Errorf("server %v after %d ports: err %v, want ErrExhausted", rs, len(got[i]), err)
		}
		if p.Free(la, rs) != 0 {
			t.Errorf("server %v: Free = %d", rs, p.Free(la, rs))
		}
	}
	// another local address is independent
	if _, err := p.Get(netip.MustParseAddr("10.2.0.101"), rss[0]); err != nil {
		t.Fatalf("second local address: %v", err)
	}
	// a freed port comes back to its own server only
	var one uint16
	for port := range got[2] {
		one = port
		break
	}
	if !p.Put(la, rss[2], one) {
		t.Fatal("Put refused")
	}
	if _, err := p.Get(la, rss[1]); !errors.Is(err, ErrExhausted) {
		t.Errorf("server 1 got a port freed by server 2: %v", err)
	}
	if port, err := p.Get(la, rss[2]); err != nil || port != one {
		t.Errorf("server 2: Get = %d, %v; want %d", port, err, one)
	}
	u := p.Usage()
	if len(u) != 2 || u[0].Addr != la || u[0].InUse != 4*want || u[0].Busiest != want || u[0].Servers != 4 ||
		u[0].BusiestFree() != 0 || u[1].InUse != 1 || u[1].Servers != 1 || u[1].BusiestFree() != want-1 ||
		u[0].Conflicts != 5 || u[1].Conflicts != 0 { // 4 exhausted Gets, then server 1's
		t.Errorf("Usage = %+v", u)
	}
}

// Ports are not reused at once: the cursor moves on, so a real server
// sees a different 4-tuple for the next connection.
func TestPoolCursorMovesOn(t *testing.T) {
	p := NewPool(0, NewSteering(1), nil)
	la := netip.MustParseAddr("10.2.0.100")
	rs := netip.MustParseAddrPort("10.2.0.11:80")
	seen := map[uint16]bool{}
	for i := 0; i < 1000; i++ {
		port, err := p.Get(la, rs)
		if err != nil {
			t.Fatal(err)
		}
		if seen[port] {
			t.Fatalf("port %d handed out again after %d Get/Put", port, i)
		}
		seen[port] = true
		p.Put(la, rs, port)
	}
}

// An idle space is given to a new key instead of allocating another: the
// memory follows the pairs in use, not every pair ever seen.
func TestPoolReusesIdleSpaces(t *testing.T) {
	p := NewPool(0, NewSteering(1), nil)
	la := netip.MustParseAddr("10.2.0.100")
	for i := 0; i < 100; i++ {
		rs := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, 1, byte(i)}), 80)
		port, err := p.Get(la, rs)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Put(la, rs, port) {
			t.Fatal("Put refused")
		}
	}
	if n := len(*p.pubSpaces.Load()); n != 1 {
		t.Errorf("%d spaces for one pair in use at a time, want 1", n)
	}
	busy := netip.MustParseAddrPort("10.2.0.11:80")
	held, _ := p.Get(la, busy)
	other := netip.MustParseAddrPort("10.2.0.12:80")
	if _, err := p.Get(la, other); err != nil {
		t.Fatal(err)
	}
	if n := len(*p.pubSpaces.Load()); n != 2 {
		t.Errorf("%d spaces for two pairs in use, want 2", n)
	}
	if !p.Put(la, busy, held) {
		t.Error("a space in use was handed to another key")
	}
}

// The search stays correct in a nearly full space, whichever slot is
// free and wherever the cursor is.
func TestPoolFindsLastFreePort(t *testing.T) {
	for _, workers := range []int{1, 2, 3, 8} {
		st := NewSteering(workers)
		w := workers - 1
		p := NewPool(w, st, nil)
		la := netip.MustParseAddr("10.2.0.100")
		rs := netip.MustParseAddrPort("10.2.0.11:80")
		var ports []uint16
		for {
			port, err := p.Get(la, rs)
			if err != nil {
				break
			}
			ports = append(ports, port)
		}
		if len(ports) != p.PortsPerServer() {
			t.Fatalf("%d workers: %d ports, want %d", workers, len(ports), p.PortsPerServer())
		}
		for _, i := range []int{0, 1, 63, 64, 65, len(ports) / 2, len(ports) - 1} {
			port := ports[i]
			p.Put(la, rs, port)
			got, err := p.Get(la, rs)
			if err != nil || got != port {
				t.Errorf("%d workers: freed %d, got %d, %v", workers, port, got, err)
			}
		}
	}
}

func BenchmarkPoolGetPut(b *testing.B) {
	p := NewPool(0, NewSteering(1), nil)
	la := netip.MustParseAddr("10.2.0.100")
	var rss [4]netip.AddrPort
	for i := range rss {
		rss[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, 0, byte(11 + i)}), 80)
	}
	// half full, so the search is not trivially at the cursor
	for i := 0; i < 30000; i++ {
		for _, rs := range rss {
			p.Get(la, rs)
		}
	}
	b.ReportAllocs()
	var ring [1024]uint16
	for i := 0; i < b.N; i++ {
		rs := rss[i&3]
		j := i & 1023
		if ring[j] != 0 {
			p.Put(la, rss[(i-1024)&3], ring[j])
		}
		ring[j], _ = p.Get(la, rs)
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

// FuzzPool runs Get and Put sequences against a model: ports are unique
// per (local address, real server), owned by the worker, and come back.
func FuzzPool(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 0x80, 0x81, 0, 0})
	f.Add([]byte{0x13, 0x27, 0x93, 0x11, 0x42})
	f.Fuzz(func(t *testing.T, ops []byte) {
		st := NewSteering(3)
		p := NewPool(2, st, nil)
		las := []netip.Addr{netip.MustParseAddr("10.2.0.100"), netip.MustParseAddr("fd00:2::100")}
		rss := []netip.AddrPort{netip.MustParseAddrPort("10.2.0.11:80"), netip.MustParseAddrPort("10.2.0.12:80"),
			netip.MustParseAddrPort("10.2.0.11:81"), netip.MustParseAddrPort("[fd00::1]:80")}
		type key struct {
			la netip.Addr
			rs netip.AddrPort
		}
		held := map[key][]uint16{}
		for _, op := range ops {
			k := key{las[op>>6&1], rss[op>>4&3]}
			if op&0x80 == 0 {
				port, err := p.Get(k.la, k.rs)
				if err != nil {
					t.Fatalf("Get %v: %v with %d held", k, err, len(held[k]))
				}
				if port < MinPort || st.Owner(port) != 2 || slices.Contains(held[k], port) {
					t.Fatalf("Get %v = %d: owner %d, held %v", k, port, st.Owner(port), held[k])
				}
				held[k] = append(held[k], port)
			} else if h := held[k]; len(h) > 0 {
				i := int(op&15) % len(h)
				if !p.Put(k.la, k.rs, h[i]) {
					t.Fatalf("Put %v %d refused", k, h[i])
				}
				if p.Put(k.la, k.rs, h[i]) {
					t.Fatalf("second Put %v %d accepted", k, h[i])
				}
				held[k] = slices.Delete(h, i, i+1)
			}
			if got := p.Free(k.la, k.rs); got != p.PortsPerServer()-len(held[k]) {
				t.Fatalf("Free %v = %d, want %d", k, got, p.PortsPerServer()-len(held[k]))
			}
		}
	})
}

// Usage may be called from another goroutine while the worker takes and
// returns ports (run with -race); it agrees with the pool once quiet.
func TestPoolUsageConcurrent(t *testing.T) {
	p := NewPool(0, NewSteering(1), nil)
	la := netip.MustParseAddr("10.2.0.100")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				for _, u := range p.Usage() {
					if u.Busiest > u.PortsPerServer || u.Busiest > u.InUse {
						t.Errorf("usage %+v", u)
						return
					}
				}
			}
		}
	}()
	for i := 0; i < 20000; i++ {
		rs := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, 0, byte(i % 7)}), 80)
		port, err := p.Get(la, rs)
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			p.Put(la, rs, port)
		}
	}
	close(stop)
	<-done
	u := p.Usage()
	if len(u) != 1 || u[0].Servers != 7 || u[0].InUse != 20000-(20000+2)/3 {
		t.Errorf("usage %+v", u)
	}
}
