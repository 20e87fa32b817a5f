package ipvs

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestLookupIndex: with hundreds of services over IPv4 and IPv6 virtual
// addresses, both protocols and persistent all-ports (port 0) services,
// Lookup answers as the services' keys say — the service of the exact
// key, else the address's port-0 service, else none — for every key
// added, for keys never added, and again after half the services were
// deleted.
func TestLookupIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	m := NewManager(1)
	keys := map[ServiceKey]bool{}
	var addrs []netip.Addr
	for i := 0; i < 40; i++ {
		a := netip.AddrFrom4([4]byte{10, 1, byte(i), byte(1 + r.IntN(250))})
		if i%2 == 1 {
			a = netip.MustParseAddr(fmt.Sprintf("2001:db8::%x:%x", i, 1+r.IntN(0xfff0)))
		}
		addrs = append(addrs, a)
	}
	for len(keys) < 400 {
		k := ServiceKey{Proto: TCP, Addr: addrs[r.IntN(len(addrs))], Port: uint16(1 + r.IntN(2000))}
		if r.IntN(2) == 0 {
			k.Proto = UDP
		}
		spec := ServiceSpec{Key: k, Sched: "rr"}
		if r.IntN(20) == 0 {
			k.Port = 0
			spec = ServiceSpec{Key: k, Sched: "rr", Persistent: true, PersistTimeout: 300}
		}
		if keys[k] {
			continue
		}
		if err := m.AddService(spec); err != nil {
			t.Fatalf("add %v: %v", k, err)
		}
		keys[k] = true
	}
	want := func(k ServiceKey) (ServiceKey, bool) {
		if keys[k] {
			return k, true
		}
		k0 := ServiceKey{Proto: k.Proto, Addr: k.Addr}
		return k0, keys[k0]
	}
	check := func(stage string) {
		t.Helper()
		tbl := m.Table()
		probe := func(k ServiceKey) {
			t.Helper()
			got := tbl.Lookup(k.Proto, k.Addr, k.Port)
			wk, ok := want(k)
			switch {
			case !ok && got != nil:
				t.Fatalf("%s: Lookup(%v) = %v, want none", stage, k, got.Spec.Key)
			case ok && (got == nil || got.Spec.Key != wk):
				t.Fatalf("%s: Lookup(%v) = %v, want %v", stage, k, got, wk)
			}
		}
		for k := range keys {
			probe(k)
		}
		for i := 0; i < 5000; i++ {
			k := ServiceKey{Proto: TCP, Addr: addrs[r.IntN(len(addrs))], Port: uint16(r.IntN(2100))}
			if r.IntN(2) == 0 {
				k.Proto = UDP
			}
			if r.IntN(10) == 0 {
				k.Addr = netip.AddrFrom4([4]byte{10, 2, byte(r.Uint32()), byte(r.Uint32())})
			}
			probe(k)
		}
	}
	check("built")
	n := 0
	for k := range keys {
		if n++; n%2 == 0 {
			if err := m.DelService(k); err != nil {
				t.Fatal(err)
			}
			delete(keys, k)
		}
	}
	check("after deletes")
}
