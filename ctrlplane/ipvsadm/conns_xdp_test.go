package ipvsadm

import (
	"strings"
	"testing"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// TestConnsXDP: a connection on the XDP fast path is marked after the
// LVS columns (xdp: both directions, xdp:in / xdp:out: one); every other
// byte of the listing, and all of it when nothing is offloaded, is what
// it is without the fast path.
func TestConnsXDP(t *testing.T) {
	rows := func(off ...uint32) []*pb.Conn {
		var cs []*pb.Conn
		for i, o := range off {
			cs = append(cs, &pb.Conn{Proto: "TCP", State: "ESTABLISHED", ExpireNs: 90e9, Client: "203.0.113.9:4000" + string(rune('0'+i)),
				Virtual: "10.0.0.1:80", Local: "10.0.0.200:1025", Dest: "192.168.0.2:80", XdpOffloaded: o})
		}
		return cs
	}
	l := Lister{Format: FmtNumeric}
	plain := l.Conns(rows(0, 0, 0, 0))
	if got := l.Conns(rows(0, 0, 0, 0)); got != plain || strings.Contains(got, "xdp") {
		t.Fatalf("listing without offload:\n%s", got)
	}
	got := strings.Split(l.Conns(rows(0, 1, 2, 3)), "\n")
	want := strings.Split(plain, "\n")
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d", len(got), len(want))
	}
	for i, suffix := range []string{"", "", "", " xdp:in", " xdp:out", " xdp", ""} {
		if got[i] != want[i]+suffix {
			t.Errorf("line %d: %q, want %q", i, got[i], want[i]+suffix)
		}
	}
}
