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
// The local address listing is DPVS's (list_laddrs_print_*). CONNS are the
// connections holding a port of the address and CONFLICTS the port
// allocations refused because its ports towards the chosen real server
// were exhausted, summed over the workers. GVS's port pools are per
// address, not per service as DPVS's laddr entries are: a local address
// shared by several services shows the same numbers under each.

import (
	"fmt"
	"io"
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

// Conns is `ipvsadm -L -c` of conns as one page.
func (l Lister) Conns(conns []*pb.Conn) string {
	var b strings.Builder
	cw := l.NewConnWriter(&b)
	cw.Page(conns)
	cw.Close()
	return b.String()
}

// ConnWriter prints `ipvsadm -L -c` page by page as the dataplane streams
// them, holding one page at a time. The local column is shown when the
// first page has a connection with a local address (the dataplane gives
// every connection one), so a table that fits one page prints exactly as
// a whole-table listing would.
type ConnWriter struct {
	l         Lister
	w         io.Writer
	started   bool
	withLocal bool
	buf       []byte
	err       error
}

// NewConnWriter returns a writer of the listing to w.
func (l Lister) NewConnWriter(w io.Writer) *ConnWriter { return &ConnWriter{l: l, w: w} }

func (cw *ConnWriter) header(first []*pb.Conn) {
	cw.started = true
	for _, c := range first {
		if c.GetLocal() != "" {
			cw.withLocal = true
			break
		}
	}
	cw.buf = append(cw.buf, "IPVS connection entries\n"...)
	if cw.withLocal {
		cw.buf = fmt.Appendf(cw.buf, "pro expire %-11s %-18s %-18s %-18s %s\n", "state", "source", "virtual", "local", "destination")
	} else {
		cw.buf = fmt.Appendf(cw.buf, "pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual", "destination")
	}
}

// Page prints one page of connections; the header goes before the first.
// It returns the first write error, and keeps returning it.
func (cw *ConnWriter) Page(conns []*pb.Conn) error {
	if cw.err != nil {
		return cw.err
	}
	if !cw.started {
		cw.header(conns)
	}
	names := cw.l.names()
	for _, c := range conns {
		proto := protoFromName(c.GetProto())
		secs := c.GetExpireNs() / 1e9
		if secs < 0 {
			secs = 0
		}
		cname := connAddr(c.GetClient(), proto, names)
		vname := connAddr(c.GetVirtual(), proto, names)
		dname := connAddr(c.GetDest(), proto, names)
		expire := fmt.Sprintf("%02d:%02d", secs/60, secs%60)
		if cw.withLocal {
			lname := "-"
			if c.GetLocal() != "" {
				lname = connAddr(c.GetLocal(), proto, names)
			}
			cw.buf = fmt.Appendf(cw.buf, "%-3s %-6s %-11s %-18s %-18s %-18s %s\n", c.GetProto(), expire, c.GetState(), cname, vname, lname, dname)
		} else {
			cw.buf = fmt.Appendf(cw.buf, "%-3s %-6s %-11s %-18s %-18s %s\n", c.GetProto(), expire, c.GetState(), cname, vname, dname)
		}
		if x := xdpMark[c.GetXdpOffloaded()&3]; x != "" {
			// a GVS extension after the LVS columns, on offloaded rows only
			cw.buf = append(cw.buf[:len(cw.buf)-1], x...)
			cw.buf = append(cw.buf, '\n')
		}
	}
	return cw.flush()
}

// xdpMark ends the line of a connection the XDP fast path forwards, by
// its directions (bit 0 the client's, bit 1 the real server's): rows of
// other connections, and every row when the fast path is off, are
// LVS's, byte for byte.
var xdpMark = [4]string{"", " xdp:in", " xdp:out", " xdp"}

func (cw *ConnWriter) flush() error {
	if len(cw.buf) > 0 && cw.err == nil {
		_, cw.err = cw.w.Write(cw.buf)
	}
	cw.buf = cw.buf[:0]
	return cw.err
}

// Close prints the header if no page came (an empty table) and returns
// the first write error.
func (cw *ConnWriter) Close() error {
	if !cw.started && cw.err == nil {
		cw.header(nil)
	}
	return cw.flush()
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
			if la.GetBackup() {
				// GVS: another node's address, taken over (no new connections)
				fmt.Fprintf(&b, "%-20s %-8s %-20s %-10d %-10d backup\n", "", "", addr, la.GetConflicts(), la.GetConns())
				continue
			}
			fmt.Fprintf(&b, "%-20s %-8s %-20s %-10d %-10d\n", "", "", addr, la.GetConflicts(), la.GetConns())
		}
	}
	return b.String()
}
