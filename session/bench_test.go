package session

import (
	"math/rand/v2"
	"testing"

	"github.com/gvs-lb/gvs/header"
)

const benchConns = 1 << 18 // 32 MiB of slab and index: beyond the caches

// benchTable returns a table of capacity n holding n/2 random IPv4 conns,
// and their in keys.
func benchTable(b *testing.B, n int) (*Table, []Key) {
	b.Helper()
	tb := newTable(b, Options{Capacity: n})
	r := rand.New(rand.NewPCG(1, 1))
	keys := make([]Key, 0, n/2)
	for len(keys) < n/2 {
		c := randConn(r, false)
		if _, err := tb.Insert(c, 0); err == nil {
			keys = append(keys, c.InKey())
		}
	}
	return tb, keys
}

// BenchmarkLookupHitV4 looks up 16k established flows (the lab's traffic
// mix) in a table of 128k conns.
func BenchmarkLookupHitV4(b *testing.B) {
	tb, keys := benchTable(b, benchConns)
	keys = keys[:1<<14]
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, ok := tb.Lookup(keys[i&(len(keys)-1)]); !ok {
			b.Fatal("miss")
		}
		i += 7919
	}
}

// BenchmarkLookupHitV4Cold spreads the lookups over all 128k conns: each
// one misses the CPU caches.
func BenchmarkLookupHitV4Cold(b *testing.B) {
	tb, keys := benchTable(b, benchConns)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, ok := tb.Lookup(keys[i&(len(keys)-1)]); !ok {
			b.Fatal("miss")
		}
		i += 7919
	}
}

func BenchmarkLookupMissV4(b *testing.B) {
	tb, _ := benchTable(b, benchConns)
	r := rand.New(rand.NewPCG(2, 2))
	keys := make([]Key, 1<<12)
	for i := range keys {
		c := randConn(r, false)
		keys[i] = c.InKey()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tb.Lookup(keys[i&(len(keys)-1)])
		i++
	}
}

func BenchmarkInsertDelete(b *testing.B) {
	tb, _ := benchTable(b, benchConns)
	r := rand.New(rand.NewPCG(3, 3))
	spare := make([]Conn, 1<<12)
	for i := range spare {
		spare[i] = randConn(r, false)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id, err := tb.Insert(spare[i&(len(spare)-1)], 0)
		if err != nil {
			b.Fatal(err)
		}
		tb.Delete(id)
		i++
	}
}

func BenchmarkTouch(b *testing.B) {
	tb, _ := benchTable(b, benchConns)
	b.ReportAllocs()
	i := uint32(0)
	for b.Loop() {
		tb.Touch((i*7919)&(benchConns/2-1), i>>10)
		i++
	}
}

func BenchmarkUpdate(b *testing.B) {
	tb, _ := benchTable(b, benchConns)
	b.ReportAllocs()
	i := uint32(0)
	for b.Loop() {
		tb.Update((i*7919)&(benchConns/2-1), In, header.TCPFlagACK, i>>10)
		i++
	}
}

// BenchmarkExpire measures one expiry in a steady state: per iteration one
// conn is inserted and one expires, in a table holding benchConns/2 conns.
func BenchmarkExpire(b *testing.B) {
	tb := newTable(b, Options{Capacity: benchConns})
	r := rand.New(rand.NewPCG(4, 4))
	// more spare conns than live ones, so a conn has expired before its
	// spare is inserted again
	spare := make([]Conn, benchConns)
	for i := range spare {
		spare[i] = randConn(r, false)
		spare[i].Proto, spare[i].State = header.ProtoTCP, StateSynRecv
	}
	// benchConns/2 conns spread over one SYN_RECV timeout
	life := tb.to[StateSynRecv]
	perTick := benchConns / 2 / int(life)
	now := uint32(0)
	for range life {
		for range perTick {
			tb.Insert(randConn(r, false), now)
		}
		now++
	}
	for range tb.Len() {
		if tb.Expire(now, 1, nil) == 0 {
			break
		}
	}
	b.ReportAllocs()
	i, expired := 0, 0
	for b.Loop() {
		if _, err := tb.Insert(spare[i&(len(spare)-1)], now); err != nil {
			b.Fatal(err)
		}
		i++
		if i%perTick == 0 {
			now++
		}
		expired += tb.Expire(now, 0, nil)
	}
	b.ReportMetric(float64(expired)/float64(b.N), "expired/op")
}

func BenchmarkParseKey(b *testing.B) {
	pkt := buildPacket(b, header.ProtoTCP, ap("192.0.2.1:1000"), ap("198.51.100.1:80"))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := parseKey(pkt); !ok {
			b.Fatal("ParseKey failed")
		}
	}
}
