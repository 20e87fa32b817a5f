package nat

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gvs-lb/gvs/header"
)

// TestRewriteAddrs: a later fragment gets its first fragment's addresses:
// the result equals the fragment gopacket builds with them (IPv4 header
// checksum included); the data is untouched.
func TestRewriteAddrs(t *testing.T) {
	for _, c := range []fnatConn{conn4, conn6} {
		p := pkt{ep: c.clientSent(), proto: header.ProtoUDP, payload: seqPayload(64)}
		in, want := p.build(t), p.withEP(c.toServer()).build(t)
		if c.c.Is4() {
			// a later fragment (offset 8 bytes): its UDP header is only data
			in = pkt{ep: c.clientSent(), proto: header.ProtoUDP, flagsFrag: 1, payload: seqPayload(64)}.build(t)
			want = pkt{ep: c.toServer(), proto: header.ProtoUDP, flagsFrag: 1, payload: seqPayload(64)}.build(t)
			// the data keeps the client's UDP header as it was
			copy(want[20:28], in[20:28])
		} else {
			in = withExt6(in, ext6Fragment, ext6LaterFrag)
			want = withExt6(want, ext6Fragment, ext6LaterFrag)
			copy(want[48:56], in[48:56])
		}
		if err := RewriteAddrs(in, c.l, c.d); err != nil || !bytes.Equal(in, want) {
			t.Errorf("%s: %v\n got  % x\n want % x", c.c, err, in, want)
		}
		before := string(in)
		if err := RewriteAddrs(in, conn4.l, conn6.d); !errors.Is(err, ErrFamily) || string(in) != before {
			t.Errorf("mixed families: %v", err)
		}
	}
	for _, l3 := range [][]byte{nil, {0x45, 0}, {0x60, 0, 0}, {0x20}} {
		if err := RewriteAddrs(l3, conn4.l, conn4.d); !errors.Is(err, ErrMalformed) {
			t.Errorf("% x: %v", l3, err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = RewriteAddrs(pktScratch, conn4.l, conn4.d) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

var pktScratch = make([]byte, 60)

func init() { pktScratch[0] = 0x45 }
