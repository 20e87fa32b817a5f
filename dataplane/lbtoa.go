package dataplane

// TOA on FullNAT TCP connections: the real server's toa module takes the
// client's address from the TOA option (kind 254, or 253 for IPv6 in some
// modules) of the segment that completes the server's handshake, and later
// segments do not change it. Nobody but GVS may choose that address:
//
//   - every client→server segment (SYN and RST included) is scrubbed: each
//     client-supplied kind-254/253 option becomes NOPs (nat.ScrubTOA); a
//     segment whose option list cannot be walked is dropped
//     (drop_lb_bad_tcp_options), since a parser could find a TOA in it;
//   - until the TOA is confirmed, every client segment with ACK and without
//     SYN/RST may be the one that completes the handshake, so each gets
//     GVS's TOA — not only the first ACK: a lost or refused first ACK must not
//     use up the insertion. Such a segment's TCP checksum is verified first;
//     a bad one is dropped (drop_lb_bad_checksum) before it changes any state;
//   - the TOA is confirmed (session.FlagTOAConfirmed) when the real server
//     sends a segment with ACK and without SYN/RST: its handshake has then
//     completed, on a client segment that carried GVS's TOA. From then on
//     nothing is inserted or verified; scrubbing goes on (it costs a
//     data-offset test on segments without options);
//   - when the TOA does not fit (options area full, or the egress MTU), the
//     segment goes on without one — the client's own already scrubbed — and
//     lb_toa_failed counts it; later segments try again.
//
// A segment forged to look like the server's (or a server's bare ACK to an
// out-of-window segment during its handshake) can confirm early: the
// connection then may reach the server without any TOA, never with one the
// client chose.

import (
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/nat"
	"github.com/gvs-lb/gvs/session"
)

// toaIn prepares a client→server TCP segment of conn c before it changes
// any state: it scrubs client TOAs and, when GVS's TOA is due, verifies the
// checksum. It returns whether the TOA is to be inserted, and false in ok
// when it dropped b.
func (w *Worker) toaIn(b *pktbuf.Buf, l3 []byte, t header.Transport, c *session.Conn, flags uint8) (insert, ok bool) {
	// a fragment's datagram must keep its length: no TOA (lbfrag.go)
	insert = c.Flags&session.FlagTOAConfirmed == 0 && !t.Fragment() &&
		flags&(header.TCPFlagACK|header.TCPFlagSYN|header.TCPFlagRST) == header.TCPFlagACK
	if insert && !nat.VerifyTCPChecksum(l3) {
		w.drop(b, CtrDropLBBadChecksum)
		return false, false
	}
	// no options (data offset 5), nothing to scrub: the common case, tested
	// here without a call (a segment too short for this test is refused by
	// the rewrite)
	off := int(t.Off)
	if len(l3) <= off+12 || l3[off+12]>>4 <= 5 {
		return insert, true
	}
	n, err := nat.ScrubTOA(l3)
	if err != nil {
		if err == nat.ErrTCPOptions {
			w.drop(b, CtrDropLBBadTCPOptions)
		} else {
			w.drop(b, CtrDropLBBadL4)
		}
		return false, false
	}
	if n > 0 {
		w.ctr.add(CtrLBTOAScrubbed, uint64(n))
	}
	return insert, true
}

// toaOut confirms c's TOA on a server→client segment that shows the real
// server's handshake completed.
// toaSettled reports the common client segment toaIn has nothing to do
// for, tested without the call: its connection's TOA confirmed, and no
// TCP options to scrub.
func toaSettled(l3 []byte, t header.Transport, c *session.Conn) bool {
	off := int(t.Off)
	return c.Flags&session.FlagTOAConfirmed != 0 && len(l3) > off+12 && l3[off+12]>>4 <= 5
}

func toaOut(c *session.Conn, flags uint8) {
	if flags&(header.TCPFlagACK|header.TCPFlagSYN|header.TCPFlagRST) == header.TCPFlagACK {
		c.Flags |= session.FlagTOAConfirmed
	}
}

// toaInsert inserts c's TOA into the translated segment in b, going towards
// dst, if it fits the option space and the egress MTU, and returns the
// (possibly moved) IP packet.
func (w *Worker) toaInsert(b *pktbuf.Buf, l3 []byte, c *session.Conn, dst netip.Addr) []byte {
	client := c.CAddrPort()
	client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	if len(l3)+nat.TOALen(client.Addr()) > w.routeMTU(dst) {
		w.ctr.inc(CtrLBTOAFailed)
		return l3
	}
	if err := nat.InsertTOA(b, int(b.L3), client); err != nil {
		w.ctr.inc(CtrLBTOAFailed)
		return l3
	}
	w.ctr.inc(CtrLBTOAAdded)
	return b.Bytes()[b.L3:]
}

// routeMTU returns the MTU of the interface the route to dst leaves by,
// 1500 without one (lbRoute then drops the packet anyway).
func (w *Worker) routeMTU(dst netip.Addr) int {
	if r := w.snap.routes.Lookup(dst); r != nil {
		if out := w.snap.iface(r.Iface); out != nil {
			return out.MTU
		}
	}
	return 1500
}
