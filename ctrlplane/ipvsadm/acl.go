package ipvsadm

// DPVS's black and white lists (--add-blklst -t VIP:PORT -k CLIENT and
// friends), carried by the API as a service's deny and allow lists, and
// their listing (--get-blklst/--get-whtlst) in DPVS's format: a title
// line "PROTO VIP:VPORT BLACKLIST" (or WHITELIST), then one line per entry,
// columns of 8, 30 and 30 characters. DPVS takes one address per entry
// (or ipset:NAME, which GVS refuses); GVS also takes a prefix
// (10.0.0.0/8, 2001:db8::/32), printed as ADDR/LEN — a host entry prints
// as the bare address, as DPVS prints it.

import (
	"fmt"
	"net/netip"
	"strings"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// parseListEntry parses -k/-2's argument: an address (DPVS's ipvsadm reads
// it like a service address, so "1.2.3.4:80" and "[2001:db8::1]:80" name
// the address), a prefix (GVS), or "ipset:NAME" (DPVS; ipset is true).
func parseListEntry(arg string) (p netip.Prefix, ipset, ok bool) {
	if strings.HasPrefix(arg, "ipset:") {
		return netip.Prefix{}, true, true
	}
	if i := strings.IndexByte(arg, '/'); i >= 0 {
		a, ok := parseListAddr(arg[:i])
		if !ok || !strDigits(arg[i+1:]) || len(arg[i+1:]) > 3 {
			return netip.Prefix{}, false, false
		}
		n := int(atoi(arg[i+1:]))
		if n > a.BitLen() {
			return netip.Prefix{}, false, false
		}
		return netip.PrefixFrom(a, n).Masked(), false, true
	}
	if strings.HasPrefix(arg, "[") && strings.HasSuffix(arg, "]") {
		a, ok := parseListAddr(arg[1 : len(arg)-1])
		return netip.PrefixFrom(a, a.BitLen()), false, ok
	}
	a, _, res := parseService(arg, protoTCP, nil)
	if res&serviceAddr == 0 {
		return netip.Prefix{}, false, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), false, true
}

func parseListAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// ACLPB is the request of --add/--del-blklst and --add/--del-whtlst.
func (c *Command) ACLPB() *pb.ACLRequest {
	list := "deny"
	if c.Cmd == CmdAddWhtlst || c.Cmd == CmdDelWhtlst {
		list = "allow"
	}
	return &pb.ACLRequest{Service: c.ServiceKey(), List: list, Prefix: c.ListEntry.String()}
}

// ACLs is the listing of --get-blklst (allow false) or --get-whtlst
// (allow true) for svcs, in DPVS's format; the title is printed even when
// no service has an entry, as DPVS does.
func ACLs(svcs []*pb.Service, allow bool) string {
	var b strings.Builder
	title := "BLACKLIST"
	if allow {
		title = "WHITELIST"
	}
	fmt.Fprintf(&b, "%-8s %-30s %-30s\n", "PROTO", "VIP:VPORT", title)
	for _, s := range svcs {
		list := s.GetDeny()
		if allow {
			list = s.GetAllow()
		}
		if len(list) == 0 {
			continue
		}
		k := s.GetKey()
		vip := k.GetAddr()
		if a, err := netip.ParseAddr(vip); err == nil {
			vip = a.Unmap().String()
			if a.Unmap().Is6() {
				vip = "[" + vip + "]"
			}
		}
		vipPort := fmt.Sprintf("%s:%d", vip, k.GetPort())
		for _, e := range list {
			if p, err := netip.ParsePrefix(e); err == nil && p.IsSingleIP() {
				e = p.Addr().String()
			}
			fmt.Fprintf(&b, "%-8s %-30s %-30s\n", strings.ToUpper(k.GetProto()), vipPort, e)
		}
	}
	return b.String()
}
