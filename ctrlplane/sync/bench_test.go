package sync

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/ctrlplane/internal/dptest"
)

func benchRecord(i int) Record {
	return Record{Proto: 6, State: 1, Timeout: 900,
		Client:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, byte(i >> 16), byte(i >> 8)}), uint16(1024+i&0xff)),
		Virtual: vipAP,
		Local:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 3, byte(i / 60000), 1}), uint16(1024+i%60000)),
		Dest:    rsAP}
}

// BenchmarkWireEncodeParse: one op is one IPv4 record encoded, signed,
// verified and parsed (full datagrams of 41 records).
func BenchmarkWireEncodeParse(b *testing.B) {
	enc, dec := NewEncoder(testKey), NewDecoder(testKey)
	recs := make([]Record, 0, 64)
	r := benchRecord(1)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if !enc.Add(&r) {
			d := enc.Finish(Header{Type: TypeConns, Sender: 1, Seq: uint64(n), Timestamp: time.Now()})
			if _, got, err := dec.Parse(d, recs[:0]); err != nil || len(got) != enc.Count() {
				b.Fatal(err)
			}
			enc.Reset()
			enc.Add(&r)
		}
		n++
	}
}

// BenchmarkSyncInstallRate: one op is one connection received in an
// authenticated datagram (41 per datagram), checked, kept in the table
// and installed into an in-process dataplane through its API: the
// receiving node's rate of synced connections.
func BenchmarkSyncInstallRate(b *testing.B) {
	var h hub
	sock := dptest.Socket(b)
	startDP(b, sock)
	tr := h.join()
	n, err := New(Options{NodeID: 2, Key: testKey, API: dptest.Client(b, sock), Transport: tr, BulkWait: time.Hour, MaxConns: 1 << 22})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	enc := NewEncoder(testKey)
	var dgrams [][]byte
	seq := uint64(1)
	now := time.Now()
	for i := 0; i < b.N; i++ {
		r := benchRecord(i)
		if !enc.Add(&r) {
			dgrams = append(dgrams, append([]byte(nil), enc.Finish(Header{Type: TypeConns, Sender: 9, Seq: seq, Timestamp: now})...))
			seq++
			enc.Reset()
			enc.Add(&r)
		}
	}
	dgrams = append(dgrams, append([]byte(nil), enc.Finish(Header{Type: TypeConns, Sender: 9, Seq: seq, Timestamp: now})...))
	b.ResetTimer()
	for _, d := range dgrams {
		tr.in <- d
	}
	for n.Stats().Installed+n.Stats().Refused < uint64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	if s := n.Stats(); s.Installed != uint64(b.N) {
		b.Fatalf("%d of %d installed: %+v", s.Installed, b.N, s)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
}
