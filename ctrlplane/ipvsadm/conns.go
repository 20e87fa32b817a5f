package ipvsadm

// `ipvsadm -L -c` and `ipvsadm -G`.
//
// The connection listing is ipvsadm 1.31's (list_conn, print_conn): a
// header, then one row per connection with the expiry as mm:ss. DPVS
// prints FullNAT connections with their local address as well (between
// the virtual and the destination address, in a headerless format of its
// own); GVS keeps ipvsadm's layout and inserts that column, titled
// "local", when any connection has a local address. DPVS's worker prefix
// ("[N]") is not printed.
//
// The local address listing is DPVS's (list_laddrs_print_*). The API does
// not count port conflicts or connections per local address, so those
// columns are 0.

import (
	"fmt"
	"net/netip"
	"strings"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

func connAddr(s string, proto int, names Names) string {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return s
	}
	return addrPortName(ap.Addr().Unmap(), ap.Port(), proto, names)
}

// Conns is `ipvsadm -L -c`.
func (l Lister) Conns(conns []*pb.Conn) string {
	var b strings.Builder
	withLocal := false
	for _, c := range conns {
		if c.GetLocal() != "" {
			withLocal = true
		}
	}
	b.WriteString("IPVS connection entries\n")
	if withLocal {
		fmt.Fprintf(&b, "pro expire %-11s %-18s %-18s %-18s %s\n", "state", "source", "virtual", "local", "destination")
	} else {
		fmt.Fprintf(&b, "pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual", "destination")
	}
	for _, c := range conns {
		proto := protoFromName(c.GetProto())
		secs := c.GetExpireNs() / 1e9
		if secs < 0 {
			secs = 0
		}
		expire := fmt.Sprintf("%02d:%02d", secs/60, secs%60)
		cname := connAddr(c.GetClient(), proto, l.names())
		vname := connAddr(c.GetVirtual(), proto, l.names())
		dname := connAddr(c.GetDest(), proto, l.names())
		if withLocal {
			lname := "-"
			if c.GetLocal() != "" {
				lname = connAddr(c.GetLocal(), proto, l.names())
			}
			fmt.Fprintf(&b, "%-3s %-6s %-11s %-18s %-18s %-18s %s\n", c.GetProto(), expire, c.GetState(), cname, vname, lname, dname)
		} else {
			fmt.Fprintf(&b, "%-3s %-6s %-11s %-18s %-18s %s\n", c.GetProto(), expire, c.GetState(), cname, vname, dname)
		}
	}
	return b.String()
}

// LAddrs is `ipvsadm -G`: with title only before the first service, as
// DPVS prints all services; with title always for one service (-G -t …).
func LAddrs(svcs []*pb.Service, titleAlways bool) string {
	var b strings.Builder
	for i, s := range svcs {
		if i == 0 || titleAlways {
			fmt.Fprintf(&b, "%-20s %-8s %-20s %-10s %-10s\n", "VIP:VPORT", "TOTAL", "SNAT_IP", "CONFLICTS", "CONNS")
		}
		_, _, proto, _ := svcAddr(s)
		vname := addrOrRaw(s.GetKey().GetAddr(), s.GetKey().GetPort(), proto, nil)
		fmt.Fprintf(&b, "%-20s %-8d \n", vname, len(s.GetLaddrs()))
		for _, la := range s.GetLaddrs() {
			addr := la.GetAddr()
			if a, err := netip.ParseAddr(addr); err == nil {
				addr = a.Unmap().String()
			}
			fmt.Fprintf(&b, "%-20s %-8s %-20s %-10d %-10d\n", "", "", addr, 0, 0)
		}
	}
	return b.String()
}
