package sync

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef-gvs-test-key")

func testRecords() []Record {
	return []Record{
		{Proto: 6, State: 1, Timeout: 900, Client: netip.MustParseAddrPort("192.0.2.1:40000"), Virtual: netip.MustParseAddrPort("10.1.0.100:80"),
			Local: netip.MustParseAddrPort("10.2.0.100:30001"), Dest: netip.MustParseAddrPort("10.2.0.11:8080")},
		{Flags: RecClientIPv6 | RecServerIPv6 | RecSynced, Proto: 6, State: 4, Timeout: 120, Client: netip.MustParseAddrPort("[2001:db8::1]:40000"),
			Virtual: netip.MustParseAddrPort("[fd00:1::100]:443"), Local: netip.MustParseAddrPort("[fd00:2::100]:30002"), Dest: netip.MustParseAddrPort("[fd00:2::11]:8443")},
		{Flags: RecClientIPv6 | RecDelete, Proto: 17, State: 11, Timeout: 300, Client: netip.MustParseAddrPort("[2001:db8::2]:5353"),
			Virtual: netip.MustParseAddrPort("[fd00:1::100]:53"), Local: netip.MustParseAddrPort("10.2.0.100:30003"), Dest: netip.MustParseAddrPort("10.2.0.12:53")},
		{Flags: RecAdjusted, Proto: 6, State: 1, Timeout: 900, Client: netip.MustParseAddrPort("192.0.2.9:40001"), Virtual: netip.MustParseAddrPort("10.1.0.100:80"),
			Local: netip.MustParseAddrPort("10.2.0.100:30004"), Dest: netip.MustParseAddrPort("10.2.0.11:8080"),
			Adjust: Adjust{SeqDelta: 0xdeadbeef, TSDelta: 7, InScales: 6<<4 | 6, OutScales: 9<<4 | 7, PPShift: 28, SynProxy: true}},
	}
}

func encode(t testing.TB, key []byte, h Header, recs []Record) []byte {
	e := NewEncoder(key)
	for i := range recs {
		if !e.Add(&recs[i]) {
			t.Fatalf("record %d does not fit", i)
		}
	}
	return append([]byte(nil), e.Finish(h)...)
}

func TestWireRoundTrip(t *testing.T) {
	recs := testRecords()
	ts := time.UnixMilli(1_800_000_000_123)
	d := encode(t, testKey, Header{Type: TypeConns, Sender: 7, Seq: 99, Timestamp: ts}, recs)
	if want := HeaderLen + 32 + 80 + (16 + 32 + 8) + (32 + 12) + TagLen; len(d) != want {
		t.Errorf("datagram %d bytes, want %d", len(d), want)
	}
	h, got, err := NewDecoder(testKey).Parse(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.Type != TypeConns || h.Count != 4 || h.Sender != 7 || h.Seq != 99 || !h.Timestamp.Equal(ts) {
		t.Errorf("header %+v", h)
	}
	if len(got) != len(recs) {
		t.Fatalf("%d records", len(got))
	}
	for i := range recs {
		w := recs[i]
		g := got[i]
		if g.Flags != w.Flags || g.Proto != w.Proto || g.State != w.State || g.Timeout != w.Timeout ||
			unmapAP(g.Client) != w.Client || unmapAP(g.Virtual) != w.Virtual || unmapAP(g.Local) != w.Local || unmapAP(g.Dest) != w.Dest ||
			g.Adjust != w.Adjust {
			t.Errorf("record %d: got %+v, want %+v", i, g, w)
		}
	}
	// control messages
	for _, h := range []Header{{Type: TypeBulkRequest, Sender: 3, Seq: 1, Timestamp: ts}, {Type: TypeBulkEnd, Sender: 3, Seq: 2, Timestamp: ts, Target: 9}} {
		d := encode(t, testKey, h, nil)
		g, recs, err := NewDecoder(testKey).Parse(d, nil)
		if err != nil || g.Type != h.Type || g.Target != h.Target || len(recs) != 0 || g.Sender != 3 {
			t.Errorf("type %d: %+v %v", h.Type, g, err)
		}
	}
}

func TestWireFillsDatagram(t *testing.T) {
	e := NewEncoder(testKey)
	r := testRecords()[0]
	n := 0
	for e.Add(&r) {
		n++
	}
	if want := (MaxDatagram - HeaderLen - TagLen) / 32; n != want {
		t.Errorf("%d IPv4 records per datagram, want %d", n, want)
	}
	d := e.Finish(Header{Type: TypeConns, Timestamp: time.Now()})
	if len(d) > MaxDatagram {
		t.Errorf("datagram of %d bytes", len(d))
	}
	if _, recs, err := NewDecoder(testKey).Parse(d, nil); err != nil || len(recs) != n {
		t.Errorf("parse: %d records, %v", len(recs), err)
	}
}

func TestWireRejects(t *testing.T) {
	good := encode(t, testKey, Header{Type: TypeConns, Sender: 1, Seq: 5, Timestamp: time.Now()}, testRecords())
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	// re-sign a tampered body, so the check after the tag is what refuses it
	resign := func(b []byte) []byte {
		msg := b[:len(b)-TagLen]
		e := NewEncoder(testKey)
		e.mac.Reset()
		e.mac.Write(msg)
		return e.mac.Sum(append([]byte(nil), msg...))
	}
	cases := []struct {
		name string
		d    []byte
		key  []byte
		want error
	}{
		{"wrong key", good, []byte("another-key-0123456789"), ErrBadTag},
		{"flipped bit", mut(func(b []byte) []byte { b[40] ^= 1; return b }), testKey, ErrBadTag},
		{"truncated by one", good[:len(good)-1], testKey, ErrBadTag},
		{"truncated to the header", good[:HeaderLen], testKey, ErrTruncated},
		{"empty", nil, testKey, ErrTruncated},
		{"one byte", []byte{'G'}, testKey, ErrTruncated},
		{"not ours", mut(func(b []byte) []byte { b[0] = 'X'; return b }), testKey, ErrBadMagic},
		{"version 2", mut(func(b []byte) []byte { b[2] = 2; return b }), testKey, ErrVersion},
		{"unknown type", mut(func(b []byte) []byte { b[3] = 9; return resign(b) }), testKey, ErrUnknownTyp},
		{"count too high", mut(func(b []byte) []byte { b[5]++; return resign(b) }), testKey, ErrMalformed},
		{"body length wrong", mut(func(b []byte) []byte { b[31]++; return resign(b) }), testKey, ErrMalformed},
		{"unknown record flag", mut(func(b []byte) []byte { b[HeaderLen] |= 0x80; return resign(b) }), testKey, ErrMalformed},
		{"bad protocol", mut(func(b []byte) []byte { b[HeaderLen+1] = 1; return resign(b) }), testKey, ErrMalformed},
		// the adjusted record is the last: its 12 bytes end the body
		{"adjusted UDP", mut(func(b []byte) []byte { b[len(b)-TagLen-44+1] = 17; return resign(b) }), testKey, ErrMalformed},
		{"scale 15", mut(func(b []byte) []byte { b[len(b)-TagLen-3] = 0xf7; return resign(b) }), testKey, ErrMalformed},
		{"adjust flags", mut(func(b []byte) []byte { b[len(b)-TagLen-1] = 2; return resign(b) }), testKey, ErrMalformed},
		{"proxy protocol shift 108", mut(func(b []byte) []byte { b[len(b)-TagLen-2] = 108; return resign(b) }), testKey, ErrMalformed},
	}
	for _, c := range cases {
		_, recs, err := NewDecoder(c.key).Parse(c.d, nil)
		if !errors.Is(err, c.want) || len(recs) != 0 {
			t.Errorf("%s: %v (%d records), want %v", c.name, err, len(recs), c.want)
		}
	}
}

func TestReplayWindow(t *testing.T) {
	now := time.Now()
	w := NewWindow(2, 10*time.Second)
	ok := func(sender uint32, seq uint64) {
		t.Helper()
		if err := w.Check(sender, seq, now, now); err != nil {
			t.Fatalf("sender %d seq %d: %v", sender, seq, err)
		}
	}
	replay := func(sender uint32, seq uint64) {
		t.Helper()
		if err := w.Check(sender, seq, now, now); !errors.Is(err, ErrReplay) {
			t.Fatalf("sender %d seq %d: %v, want ErrReplay", sender, seq, err)
		}
	}
	ok(1, 100)
	replay(1, 100)
	ok(1, 102)
	ok(1, 101) // reordered a little
	replay(1, 101)
	ok(1, 200)
	replay(1, 102) // fell out of the window
	ok(1, 150)
	if err := w.Check(1, 300, now.Add(-11*time.Second), now); !errors.Is(err, ErrStale) {
		t.Errorf("old timestamp: %v", err)
	}
	if err := w.Check(1, 301, now.Add(11*time.Second), now); !errors.Is(err, ErrStale) {
		t.Errorf("future timestamp: %v", err)
	}
	// bounded: a third sender forgets the least recently heard
	w.Check(2, 1, now, now.Add(time.Millisecond))
	w.Check(3, 1, now, now.Add(2*time.Millisecond))
	if w.Len() != 2 {
		t.Errorf("%d senders kept, bound 2", w.Len())
	}
	if _, kept := w.senders[1]; kept {
		t.Error("the least recently heard sender was kept")
	}
}

func FuzzParse(f *testing.F) {
	ts := time.UnixMilli(1_800_000_000_000)
	f.Add(encode(f, testKey, Header{Type: TypeConns, Sender: 1, Seq: 1, Timestamp: ts}, testRecords()))
	f.Add(encode(f, testKey, Header{Type: TypeBulkEnd, Sender: 1, Seq: 2, Timestamp: ts, Target: 4}, nil))
	f.Add([]byte("GS\x01"))
	dec := NewDecoder(testKey)
	f.Fuzz(func(t *testing.T, d []byte) {
		h, recs, err := dec.Parse(d, nil)
		if err != nil {
			if len(recs) != 0 {
				t.Fatalf("%v with %d records", err, len(recs))
			}
			return
		}
		// whatever parses re-encodes to the same bytes
		if h.Type != TypeConns {
			return
		}
		again := encode(t, testKey, h, recs)
		if !bytes.Equal(again, d) {
			t.Fatalf("re-encoded differently:\n%x\n%x", d, again)
		}
	})
}

// FuzzParseSigned fuzzes what lies behind the tag: the body is signed
// with the test key, so the record checks are reached.
func FuzzParseSigned(f *testing.F) {
	ts := time.UnixMilli(1_800_000_000_000)
	good := encode(f, testKey, Header{Type: TypeConns, Sender: 1, Seq: 1, Timestamp: ts}, testRecords())
	f.Add(good[:len(good)-TagLen])
	dec := NewDecoder(testKey)
	f.Fuzz(func(t *testing.T, msg []byte) {
		e := NewEncoder(testKey)
		e.mac.Reset()
		e.mac.Write(msg)
		d := e.mac.Sum(append([]byte(nil), msg...))
		h, recs, err := dec.Parse(d, nil)
		if err == nil && h.Type == TypeConns && int(h.Count) != len(recs) {
			t.Fatalf("count %d, %d records", h.Count, len(recs))
		}
	})
}

// TestRecordPBAdjust: a SYN-proxied connection's adjustment survives the
// API conversions both ways; an adjustment on UDP is refused.
func TestRecordPBAdjust(t *testing.T) {
	r := testRecords()[3]
	got, err := RecordFromPB(RecordToPB(&r))
	if err != nil || got.Flags&RecAdjusted == 0 || got.Adjust != r.Adjust {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, r.Adjust)
	}
	c := RecordToPB(&r)
	c.Proto = "UDP"
	if _, err := RecordFromPB(c); err == nil {
		t.Fatal("an adjusted UDP event was accepted")
	}
}
