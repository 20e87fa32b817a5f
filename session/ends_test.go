package session

import (
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/header"
)

// TestEnds: a server's numbers move forward only (an older acknowledgment
// changes nothing, a segment that ends earlier keeps the later end, across
// the sequence-number wrap), a conn inserted into a used slot starts with
// none, and a table without Ends keeps none.
func TestEnds(t *testing.T) {
	tb, err := New(Options{Capacity: 4, Ends: true})
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(header.ProtoTCP, netip.MustParseAddrPort("10.0.0.1:1000"), netip.MustParseAddrPort("10.0.0.2:80"),
		netip.MustParseAddrPort("10.0.1.1:2000"), netip.MustParseAddrPort("10.0.2.1:8080"))
	id, err := tb.Insert(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	if e := tb.Ends(id); e.Set() {
		t.Fatalf("new conn: %+v", e)
	}
	steps := []struct {
		next, ack uint32
		want      Ends
	}{
		{0xfffffff0, 100, Ends{0xfffffff0, 100}},
		{0x10, 150, Ends{0x10, 150}},       // past the wrap
		{0xfffffff8, 150, Ends{0x10, 150}}, // ends before: the end stays
		{0x20, 120, Ends{0x10, 150}},       // acknowledges less: ignored
		{0x30, 150, Ends{0x30, 150}},
	}
	for i, s := range steps {
		tb.NoteEnds(id, s.next, s.ack)
		if got := tb.Ends(id); got != s.want {
			t.Errorf("step %d: %+v, want %+v", i, got, s.want)
		}
	}
	tb.ClearEnds(id)
	if e := tb.Ends(id); e.Set() {
		t.Errorf("after ClearEnds: %+v", e)
	}
	tb.NoteEnds(id, 5, 6)
	tb.Delete(id)
	id2, err := tb.Insert(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	if id2 != id {
		t.Fatalf("slot %d reused as %d", id, id2)
	}
	if e := tb.Ends(id2); e.Set() {
		t.Errorf("a conn in a reused slot starts with %+v", e)
	}

	plain, err := New(Options{Capacity: 4})
	if err != nil {
		t.Fatal(err)
	}
	id, _ = plain.Insert(c, 0)
	plain.NoteEnds(id, 5, 6)
	if plain.KeepsEnds() || plain.Ends(id).Set() {
		t.Errorf("a table without Ends: keeps %v, %+v", plain.KeepsEnds(), plain.Ends(id))
	}
}
