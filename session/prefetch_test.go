package session

import (
	"math/rand/v2"
	"testing"

	"github.com/gvs-lb/gvs/header"
)

// TestPrefetchSlot4Hash: for IPv4 TCP and UDP packets in both directions
// of stored connections, PrefetchSlot4 returns the hash their lookup
// computes (the index slot it names is where LookupAt starts), and
// PrefetchConn on it leaves every lookup's answer as it was; IPv6 and
// other protocols are not prefetched.
func TestPrefetchSlot4Hash(t *testing.T) {
	tb := newTable(t, Options{Capacity: 1024})
	r := rand.New(rand.NewPCG(21, 22))
	var pkts [][]byte
	for i := 0; i < 300; i++ {
		c := randConn(r, false)
		if _, err := tb.Insert(c, 0); err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, buildPacket(t, c.Proto, c.CAddrPort(), c.VAddrPort()), buildPacket(t, c.Proto, c.DAddrPort(), c.LAddrPort()))
	}
	for _, p := range pkts {
		k, ok := parseKey(p)
		if !ok {
			t.Fatalf("test packet does not parse: % x", p)
		}
		h, ok := tb.PrefetchSlot4(p)
		if want := tb.hashKey(&k); !ok || h != want {
			t.Fatalf("PrefetchSlot4 = %#x %v, lookup hashes %#x", h, ok, want)
		}
		tb.PrefetchConn(h)
		tr, _ := header.Locate(p)
		id, dir, found, ok := tb.LookupAt(p, tr)
		wid, wdir, wfound := tb.Lookup(k)
		if !ok || !found || id != wid || dir != wdir || found != wfound {
			t.Fatalf("after the prefetch LookupAt = %d %v %v %v, Lookup = %d %v %v", id, dir, found, ok, wid, wdir, wfound)
		}
	}
	for _, p := range [][]byte{
		buildPacket(t, header.ProtoTCP, ap("[2001:db8::7]:1"), ap("[2001:db8::1]:2")),
		buildPacket(t, header.ProtoICMP, ap("192.0.2.7:0"), ap("198.51.100.1:0")),
		buildPacket(t, header.ProtoTCP, ap("192.0.2.7:1"), ap("198.51.100.1:2"))[:22],
	} {
		if _, ok := tb.PrefetchSlot4(p); ok {
			t.Errorf("prefetched % x", p)
		}
	}
}

// FuzzPrefetchSlot4: any bytes as a packet neither panic nor, when a
// hash is returned for a packet the L3 stage accepts, give another hash
// than its lookup's.
func FuzzPrefetchSlot4(f *testing.F) {
	f.Add(buildPacket(f, header.ProtoTCP, ap("192.0.2.7:40001"), ap("198.51.100.1:443")))
	f.Add(buildPacket(f, header.ProtoUDP, ap("192.0.2.7:53"), ap("198.51.100.1:53")))
	f.Add([]byte{0x46, 0, 0, 20})
	tb := newTable(f, Options{Capacity: 64})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		h, ok := tb.PrefetchSlot4(pkt)
		if ok {
			tb.PrefetchConn(h)
		}
		k, kok := parseKey(pkt)
		if ok && kok && pkt[0]>>4 == 4 && h != tb.hashKey(&k) {
			t.Fatalf("PrefetchSlot4 hash %#x, lookup hashes %#x", h, tb.hashKey(&k))
		}
	})
}
