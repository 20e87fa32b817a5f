package ipvsadm

// The listings, byte for byte as ipvsadm 1.31 prints them
// (list_all, list_service, print_title, print_service_entry,
// print_largenum), with DPVS's additions where GVS has the data: the
// FullNat and SNAT forwarding names and switches, and "synproxy" and
// "conn-timeout N" on service lines. Everything here is pure: API messages
// in, text out.
//
// -L --drops is GVS's own listing (neither ipvsadm nor DPVS counts what a
// service's lists and limits refuse): one line per service in --stats's
// columns and number format — packets refused by the deny list (Denied)
// and for want of the allow list (NotAllow), new connections refused by
// --conn-rate-limit (RateLim) and --per-source-limit (SrcLim) — and no
// real-server lines, as the counters are the service's.

import (
	"fmt"
	"github.com/gvs-lb/gvs/ipvs"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// IPVSVersion is the IPVS version the header and -v show.
const IPVSVersion = "1.2.1"

// DefaultConnTabSize is the "size=" of the header when the dataplane
// reports no connection table size: IPVS's default
// (CONFIG_IP_VS_TAB_BITS=12).
const DefaultConnTabSize = 4096

// Lister prints listings in one format.
type Lister struct {
	Format Format
	// Names names hosts and ports when Format has no FmtNumeric; nil
	// prints numbers.
	Names Names
}

func (l Lister) names() Names {
	if l.Format&FmtNumeric != 0 {
		return nil
	}
	return l.Names
}

// ListAll is `ipvsadm -L` (and, with FmtRule, `ipvsadm -S`): the header,
// the title and every service with its real servers, sorted unless
// FmtNoSort.
func (l Lister) ListAll(size uint64, svcs []*pb.Service) string {
	var b strings.Builder
	if l.Format&FmtRule == 0 {
		fmt.Fprintf(&b, "IP Virtual Server version %s (size=%d)\n", IPVSVersion, size)
	}
	if l.Format&FmtNoSort == 0 {
		svcs = SortServices(svcs)
	}
	l.title(&b)
	for _, s := range svcs {
		l.service(&b, s)
	}
	return b.String()
}

// ListService is `ipvsadm -L -t …`: the title and one service.
func (l Lister) ListService(svc *pb.Service) string {
	var b strings.Builder
	l.title(&b)
	l.service(&b, svc)
	return b.String()
}

func (l Lister) title(b *strings.Builder) {
	f := l.Format
	switch {
	case f&FmtDrops != 0 && f&FmtRule == 0:
		fmt.Fprintf(b, "%-33s %8s %8s %8s %8s\n", "Prot LocalAddress:Port", "Denied", "NotAllow", "RateLim", "SrcLim")
	case f&FmtStats != 0:
		fmt.Fprintf(b, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
	case f&FmtRate != 0:
		fmt.Fprintf(b, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
	case f&FmtThresholds != 0:
		fmt.Fprintf(b, "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
	case f&FmtPersistentConn != 0:
		fmt.Fprintf(b, "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn")
	case f&FmtTunInfo != 0:
		b.WriteString("Prot LocalAddress:Port Scheduler Flags\n" +
			"  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n")
	case f&FmtRule == 0:
		b.WriteString("Prot LocalAddress:Port Scheduler Flags\n" +
			"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	}
}

// svcAddr is the service's address and protocol; ok is false when the
// API sent something that is not an address.
func svcAddr(s *pb.Service) (addr netip.Addr, port uint16, proto int, ok bool) {
	k := s.GetKey()
	a, err := netip.ParseAddr(k.GetAddr())
	return a.Unmap(), uint16(k.GetPort()), protoFromName(k.GetProto()), err == nil
}

func addrOrRaw(addr string, port uint32, proto int, names Names) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return fmt.Sprintf("%s:%d", addr, port)
	}
	return addrPortName(a.Unmap(), uint16(port), proto, names)
}

// serviceName is print_service_entry's svc_name.
func (l Lister) serviceName(s *pb.Service) string {
	addr, _, proto, ok := svcAddr(s)
	k := s.GetKey()
	if k.GetMatch() != "" {
		// a SNAT match service, as DPVS's ipvsadm names it
		m, err := ipvs.ParseMatch(k.GetMatch())
		if err != nil {
			return "MATCH " + k.GetMatch()
		}
		if l.Format&FmtRule != 0 {
			return "-H " + m.String()
		}
		return m.Listing()
	}
	vname := addrOrRaw(k.GetAddr(), k.GetPort(), proto, l.names())
	if l.Format&FmtRule != 0 {
		opt := map[int]string{protoTCP: "-t", protoUDP: "-u", protoSCTP: "--sctp-service"}[proto]
		if opt == "" {
			opt = "--xxx-service"
		}
		return opt + " " + vname
	}
	name := map[int]string{protoTCP: "TCP", protoUDP: "UDP", protoSCTP: "SCTP"}[proto]
	if name == "" {
		name = "?"
	}
	svc := fmt.Sprintf("%-4s %s", name, vname)
	if (!ok || addr.Is4()) && len(svc) > 33 {
		svc = svc[:33]
	}
	return svc
}

// schedFlags is print_sched_flags: the flag bits named after the scheduler.
func schedFlags(sched string, flags []string) string {
	var bits [4]bool
	for _, f := range flags {
		if b, ok := schedFlagBit[f]; ok {
			bits[b] = true
		}
	}
	var names []string
	switch sched {
	case "sh", "mh":
		if bits[1] {
			names = append(names, sched+"-fallback")
		}
		if bits[2] {
			names = append(names, sched+"-port")
		}
	default:
		for i := 1; i <= 3; i++ {
			if bits[i] {
				names = append(names, fmt.Sprintf("flag-%d", i))
			}
		}
	}
	return strings.Join(names, ",")
}

func hasSchedFlags(flags []string) bool {
	for _, f := range flags {
		if _, ok := schedFlagBit[f]; ok {
			return true
		}
	}
	return false
}

func stats(s *pb.ServiceStats) [5]uint64 {
	return [5]uint64{s.GetConns(), s.GetInPkts(), s.GetOutPkts(), s.GetInBytes(), s.GetOutBytes()}
}

func rates(s *pb.ServiceStats) [5]uint64 {
	return [5]uint64{s.GetCps(), s.GetInPps(), s.GetOutPps(), s.GetInBps(), s.GetOutBps()}
}

func (l Lister) service(b *strings.Builder, s *pb.Service) {
	f := l.Format
	name := l.serviceName(s)
	switch {
	case f&FmtRule != 0:
		fmt.Fprintf(b, "-A %s -s %s", name, s.GetSched())
		if s.GetPersistent() {
			fmt.Fprintf(b, " -p %d", s.GetPersistentTimeout())
			if m := maskText(s); m != "" {
				fmt.Fprintf(b, " -M %s", m)
			}
		}
		if s.GetOnePacket() {
			b.WriteString(" -o")
		}
		if hasSchedFlags(s.GetSchedFlags()) {
			// LVS writes -b flags; -b is --fullnat here, as in DPVS
			fmt.Fprintf(b, " --sched-flags %s", schedFlags(s.GetSched(), s.GetSchedFlags()))
		}
		if s.GetSched() == "conhash" && slices.Contains(s.GetSchedFlags(), "qid") {
			b.WriteString(" --hash-target qid") // DPVS saves none; sip is the default
		}
		if s.GetSynproxy() {
			b.WriteString(" -j enable")
		}
		if s.GetConnTimeout() != 0 {
			fmt.Fprintf(b, " --conn-timeout %d", s.GetConnTimeout())
		}
		if s.GetMidFlow() {
			b.WriteString(" --mid-flow")
		}
		if s.GetConnRateLimit() != 0 {
			fmt.Fprintf(b, " --conn-rate-limit %d", s.GetConnRateLimit())
		}
		if s.GetPerSourceRateLimit() != 0 {
			fmt.Fprintf(b, " --per-source-limit %d", s.GetPerSourceRateLimit())
		}
		if pp := s.GetProxyProtocol(); pp != "" && pp != "disable" {
			fmt.Fprintf(b, " --proxy-protocol %s", pp)
		}
	case f&FmtDrops != 0:
		fmt.Fprintf(b, "%-33s", name)
		a := s.GetAdmission()
		for _, v := range [4]uint64{a.GetDenied(), a.GetNotAllowed(), a.GetRateLimited(), a.GetSourceLimited()} {
			largeNum(b, v, f)
		}
		b.WriteByte('\n')
		return
	case f&FmtStats != 0:
		fmt.Fprintf(b, "%-33s", name)
		for _, v := range stats(s.GetStats()) {
			largeNum(b, v, f)
		}
	case f&FmtRate != 0:
		fmt.Fprintf(b, "%-33s", name)
		for _, v := range rates(s.GetStats()) {
			largeNum(b, v, f)
		}
	default:
		fmt.Fprintf(b, "%s %s", name, s.GetSched())
		if hasSchedFlags(s.GetSchedFlags()) {
			fmt.Fprintf(b, " (%s)", schedFlags(s.GetSched(), s.GetSchedFlags()))
		}
		if s.GetSched() == "conhash" { // DPVS lists the hash target
			if slices.Contains(s.GetSchedFlags(), "qid") {
				b.WriteString(" qid")
			} else {
				b.WriteString(" sip")
			}
		}
		if s.GetPersistent() {
			fmt.Fprintf(b, " persistent %d", s.GetPersistentTimeout())
			if m := maskText(s); m != "" {
				fmt.Fprintf(b, " mask %s", m)
			}
		}
		if s.GetOnePacket() {
			b.WriteString(" ops")
		}
		if s.GetSynproxy() {
			b.WriteString(" synproxy")
		}
		if s.GetConnTimeout() != 0 {
			fmt.Fprintf(b, " conn-timeout %d", s.GetConnTimeout())
		}
		if pp := s.GetProxyProtocol(); pp != "" && pp != "disable" {
			b.WriteString(" pp" + pp) // DPVS: " pp%s"
		}
		if s.GetMidFlow() {
			b.WriteString(" mid-flow")
		}
		if s.GetConnRateLimit() != 0 {
			fmt.Fprintf(b, " conn-rate-limit %d", s.GetConnRateLimit())
		}
		if s.GetPerSourceRateLimit() != 0 {
			fmt.Fprintf(b, " per-source-limit %d", s.GetPerSourceRateLimit())
		}
	}
	b.WriteByte('\n')

	dests := s.GetDests()
	if f&FmtNoSort == 0 {
		dests = SortDests(dests)
	}
	_, _, proto, _ := svcAddr(s)
	for _, d := range dests {
		dname := addrOrRaw(d.GetAddr(), d.GetPort(), proto, l.names())
		if f&FmtRule == 0 {
			if a, err := netip.ParseAddr(d.GetAddr()); err != nil || a.Unmap().Is4() {
				dname = truncate(dname, 28)
			}
		}
		switch {
		case f&FmtRule != 0:
			fmt.Fprintf(b, "-a %s -r %s %s -w %d", name, dname, fwdSwitch(d.GetFwd()), d.GetWeight())
			if Fwd(d.GetFwd()) == FwdTunnel {
				b.WriteString(tunnelRule(d))
			}
			if d.GetUpper() != 0 {
				fmt.Fprintf(b, " -x %d", d.GetUpper())
			}
			if d.GetLower() != 0 {
				fmt.Fprintf(b, " -y %d", d.GetLower())
			}
			b.WriteByte('\n')
		case f&FmtStats != 0:
			fmt.Fprintf(b, "  -> %-28s", dname)
			for _, v := range stats(d.GetStats()) {
				largeNum(b, v, f)
			}
			b.WriteByte('\n')
		case f&FmtRate != 0:
			fmt.Fprintf(b, "  -> %-28s", dname)
			for _, v := range rates(d.GetStats()) {
				largeNum(b, v, f)
			}
			b.WriteByte('\n')
		case f&FmtThresholds != 0:
			fmt.Fprintf(b, "  -> %-28s %-10d %-10d %-10d %-10d\n", dname,
				d.GetUpper(), d.GetLower(), d.GetActive(), d.GetInactive())
		case f&FmtPersistentConn != 0:
			fmt.Fprintf(b, "  -> %-28s %-9d %-11d %-10d %-10d\n", dname,
				d.GetWeight(), d.GetPersistConns(), d.GetActive(), d.GetInactive())
		case f&FmtTunInfo != 0:
			ti := tunnelInfo(d)
			fmt.Fprintf(b, "  -> %-28s %-7s %-13s %-6d %-10d %-10d\n", dname, d.GetFwd(), ti,
				d.GetWeight(), d.GetActive(), d.GetInactive())
		default:
			fmt.Fprintf(b, "  -> %-28s %-7s %-6d %-10d %-10d\n", dname, d.GetFwd(),
				d.GetWeight(), d.GetActive(), d.GetInactive())
		}
	}
	if f&FmtRule != 0 {
		// DPVS's -S has no local addresses; GVS writes them so that -S | -R
		// gives the same table back
		for _, la := range s.GetLaddrs() {
			fmt.Fprintf(b, "-P %s -z %s", name, la.GetAddr())
			if la.GetDev() != "" {
				fmt.Fprintf(b, " -F %s", la.GetDev())
			}
			b.WriteByte('\n')
		}
	}
}

// tunnelType is a tunnel real server's --tun-type (ipip when the API
// names none).
func tunnelType(d *pb.Dest) string {
	if t := d.GetTunType(); t != "" {
		return t
	}
	return "ipip"
}

// tunnelCsum is the checksum option of a gue or gre real server, as
// ipvsadm's tun_flags_opts: --tun-nocsum unless the API names another.
func tunnelCsum(d *pb.Dest) string {
	switch d.GetTunCsum() {
	case "tun-csum", "tun-remcsum":
		return "--" + d.GetTunCsum()
	}
	return "--tun-nocsum"
}

// tunnelRule is what print_tunnel_rule adds after -w for a tunnel real
// server in -S: the type, gue's port, the checksum option.
func tunnelRule(d *pb.Dest) string {
	switch t := tunnelType(d); t {
	case "gue":
		return fmt.Sprintf(" --tun-type gue --tun-port %d %s", d.GetTunPort(), tunnelCsum(d))
	case "gre":
		return " --tun-type gre " + tunnelCsum(d)
	default:
		return " --tun-type " + t
	}
}

// tunnelInfo is fwd_tun_info, the TunnelInfo column of --tun-info: ipip,
// gue:PORT:FLAGS or gre:FLAGS (flags -c, +c, r+c), n/a for other methods.
func tunnelInfo(d *pb.Dest) string {
	if Fwd(d.GetFwd()) != FwdTunnel {
		return "n/a"
	}
	flags := map[string]string{"--tun-nocsum": "-c", "--tun-csum": "+c", "--tun-remcsum": "r+c"}[tunnelCsum(d)]
	switch t := tunnelType(d); t {
	case "gue":
		return fmt.Sprintf("gue:%d:%s", d.GetTunPort(), flags)
	case "gre":
		return "gre:" + flags
	default:
		return t
	}
}

// fwdSwitch is fwd_switch: the option that selects the method.
func fwdSwitch(fwd string) string {
	switch Fwd(fwd) {
	case FwdMasq:
		return "-m"
	case FwdTunnel:
		return "-i"
	case FwdRoute, "Local":
		return "-g"
	case FwdFullNAT:
		return "-b"
	case FwdSNAT:
		return "-J"
	}
	return "(null)"
}

// largeNum is print_largenum: nine columns, shortened to K, M, G or T
// (powers of 1000) unless FmtExact.
func largeNum(b *strings.Builder, i uint64, f Format) {
	if f&FmtExact != 0 {
		n := len(fmt.Sprint(i))
		w := 9
		if n > 8 {
			w = n + 1
		}
		fmt.Fprintf(b, "%*d", w, i)
		return
	}
	switch {
	case i < 100000000:
		fmt.Fprintf(b, "%9d", i)
	case i < 1000000000:
		fmt.Fprintf(b, "%8dK", i/1000)
	case i < 100000000000:
		fmt.Fprintf(b, "%8dM", i/1000000)
	case i < 100000000000000:
		fmt.Fprintf(b, "%8dG", i/1000000000)
	default:
		fmt.Fprintf(b, "%8dT", i/1000000000000)
	}
}

// TimeoutLine is `ipvsadm -L --timeout`.
func TimeoutLine(t *pb.Timeouts) string {
	return fmt.Sprintf("Timeout (tcp tcpfin udp): %d %d %d\n", t.GetTcp(), t.GetTcpFin(), t.GetUdp())
}

// Version is `ipvsadm -v`.
func Version() string {
	return "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v" + IPVSVersion + ")\n"
}

// The sort order of libipvs (ipvs_cmp_services, ipvs_cmp_dests): fwmark,
// family, protocol, address, port. Addresses are compared 32 bits at a
// time by the signed difference of the host-order words, as libipvs does,
// so that 192.168.0.1 sorts before 10.0.0.1 exactly as in ipvsadm.

func addrWords(a netip.Addr) (words [4]uint32, is6 bool) {
	if a.Is4() {
		b := a.As4()
		words[0] = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		return words, false
	}
	b := a.As16()
	for i := range words {
		words[i] = uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
	}
	return words, true
}

func cmpAddr(a, b netip.Addr, as6 bool) int {
	wa, _ := addrWords(a)
	wb, _ := addrWords(b)
	n := 1
	if as6 {
		n = 4
	}
	for i := 0; i < n; i++ {
		if r := int32(wa[i] - wb[i]); r != 0 {
			return int(r)
		}
	}
	return 0
}

func parsedAddr(s string) netip.Addr {
	a, _ := netip.ParseAddr(s)
	return a.Unmap()
}

// SortServices returns the services in ipvsadm's order.
func SortServices(svcs []*pb.Service) []*pb.Service {
	out := slices.Clone(svcs)
	slices.SortStableFunc(out, func(x, y *pb.Service) int {
		// SNAT match services (no address) after the virtual services
		if mx, my := x.GetKey().GetMatch(), y.GetKey().GetMatch(); mx != "" || my != "" {
			switch {
			case mx == "":
				return -1
			case my == "":
				return 1
			}
			return strings.Compare(mx, my)
		}
		ax, ay := parsedAddr(x.GetKey().GetAddr()), parsedAddr(y.GetKey().GetAddr())
		fx, fy := 2, 2 // AF_INET, AF_INET6 = 10
		if ax.Is6() {
			fx = 10
		}
		if ay.Is6() {
			fy = 10
		}
		if r := fx - fy; r != 0 {
			return r
		}
		if r := protoFromName(x.GetKey().GetProto()) - protoFromName(y.GetKey().GetProto()); r != 0 {
			return r
		}
		if r := cmpAddr(ax, ay, ax.Is6()); r != 0 {
			return r
		}
		return int(x.GetKey().GetPort()) - int(y.GetKey().GetPort())
	})
	return out
}

// SortDests returns the real servers in ipvsadm's order.
func SortDests(dests []*pb.Dest) []*pb.Dest {
	out := slices.Clone(dests)
	slices.SortStableFunc(out, func(x, y *pb.Dest) int {
		ax, ay := parsedAddr(x.GetAddr()), parsedAddr(y.GetAddr())
		if r := cmpAddr(ax, ay, ax.Is6()); r != 0 {
			return r
		}
		return int(x.GetPort()) - int(y.GetPort())
	})
	return out
}

// maskText is a persistent service's netmask as ipvsadm prints it: IPv4
// dotted, IPv6 a prefix length; "" for a host (ipvsadm prints nothing
// for 255.255.255.255 or 128).
func maskText(s *pb.Service) string {
	p := s.GetPersistentPrefix()
	a, err := netip.ParseAddr(s.GetKey().GetAddr())
	if p == 0 || err != nil || int(p) >= a.BitLen() {
		return ""
	}
	if a.Is6() {
		return strconv.Itoa(int(p))
	}
	m := ^uint32(0) << (32 - p)
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
}
