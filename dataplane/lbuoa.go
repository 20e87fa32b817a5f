package dataplane

// UOA on FullNAT UDP (ipvs.uoa_max_trail, ipvs.uoa_mode): the first
// datagrams of each connection carry the client's address and port, which
// the real server would not see otherwise. Two encodings, DPVS's:
//
//   - ipo (the default): an IPv4 option (nat.InsertUOA), which a UDP
//     server reads with IP_RECVOPTS. IPv4 clients and servers only: as in
//     DPVS, an IPv6 or NAT64 connection gets no UOA in this mode (lbnew.go
//     flags it done from the start).
//   - opp: a header of IP protocol 248 between the IP and UDP headers
//     (nat.InsertOPP), for IPv4, IPv6 and NAT64 (the IPv6 client in the
//     IPv4 datagram); read by DPVS's UOA kernel module or a raw socket.
//
// Several datagrams carry it, not one, because any may be lost. The
// connection counts them in the worker's adjustment table (its entry's
// isn field) and is flagged session.FlagTOAConfirmed when done (UDP
// connections that need none are flagged from the start). A datagram that
// cannot take it (the egress MTU, IPv4 options in ipo mode, an IPv6
// fragment or unknown extension header in opp mode) goes without it and
// counts as lb_uoa_failed; the next ones try again.

import (
	"fmt"
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/nat"
	"github.com/gvs-lb/gvs/session"
)

// UOAMode is how UOA carries the client's address (Options.UOAMode).
type UOAMode uint8

// UOA modes, named as DPVS's uoa_mode.
const (
	UOAIPO UOAMode = iota // an IPv4 option
	UOAOPP                // the "option protocol" header, IP protocol 248
)

// ParseUOAMode parses a uoa_mode setting: "ipo" (or empty) or "opp".
func ParseUOAMode(s string) (UOAMode, error) {
	switch s {
	case "", "ipo":
		return UOAIPO, nil
	case "opp":
		return UOAOPP, nil
	}
	return 0, fmt.Errorf("%q is not a UOA mode: use ipo (an IPv4 option, IPv4 only) or opp (IP protocol 248, IPv4, IPv6 and NAT64)", s)
}

// uoaInsert gives the translated datagram in b of connection id (going to
// dst) the UOA and returns the (moved) IP packet.
func (w *Worker) uoaInsert(b *pktbuf.Buf, l3 []byte, c *session.Conn, id uint32, dst netip.Addr) []byte {
	a := &w.sp.conns[id] // isn: datagrams that carried it <<16 | tries
	a.isn++
	trail := uint32(w.dp.opts.UOAMaxTrail)
	if a.isn&0xffff >= 4*trail { // the datagrams keep failing: stop trying
		c.Flags |= session.FlagTOAConfirmed
	}
	client := unmapAP(c.CAddrPort())
	opp := w.dp.opts.UOAMode == UOAOPP
	grow := nat.UOALen
	if opp {
		grow = nat.OPPLen(client.Addr())
	}
	if len(l3)+grow > w.routeMTU(dst) {
		w.ctr.inc(CtrLBUOAFailed)
		return l3
	}
	var err error
	if opp {
		err = nat.InsertOPP(b, int(b.L3), client)
	} else {
		err = nat.InsertUOA(b, int(b.L3), client)
	}
	if err != nil {
		w.ctr.inc(CtrLBUOAFailed)
		return l3
	}
	a.isn += 1 << 16
	if a.isn>>16 >= trail {
		c.Flags |= session.FlagTOAConfirmed
	}
	w.ctr.inc(CtrLBUOAAdded)
	return b.Bytes()[b.L3:]
}
