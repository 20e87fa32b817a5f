package dataplane

import (
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/ipvs"
)

var svcKey4 = ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 80}

func synFrom(t *testing.T, client netip.AddrPort, to netip.AddrPort) []byte {
	return tcpFrame(t, tcpSeg{src: client, dst: to, smac: macClient, dmac: macDP0, syn: true, seq: 1000})
}

// sendDropped injects a frame and asserts nothing leaves port out and
// counter c grew by one.
func (td *testDP) sendDropped(t *testing.T, frame []byte, c Counter) {
	t.Helper()
	before := td.sum(c)
	td.inject(0, frame)
	td.stepAll()
	if fs := td.outAll(1); len(fs) != 0 {
		t.Fatalf("%d frames forwarded, want the packet dropped by %s", len(fs), c)
	}
	if got := td.sum(c); got != before+1 {
		ctr, _ := td.w.Stats()
		t.Fatalf("%s = %d, want %d; counters %v", c, got, before+1, nonZero(ctr))
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestDenyListDropsClientSYN(t *testing.T) {
	td := newLBTestDP(t, 1)
	vp := netip.AddrPortFrom(vip, 80)
	if err := td.d.AddACL(svcKey4, ipvs.ACLDeny, mustPrefix("10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	td.sendDropped(t, synFrom(t, netip.AddrPortFrom(clientIP, 41000), vp), CtrDropLBDenied)
	if td.w.sess.Len() != 0 {
		t.Fatal("a denied client's SYN made a connection")
	}
	// another client passes, scheduled onto the real server
	other := netip.AddrPortFrom(netip.MustParseAddr("10.9.0.7"), 41001)
	out := td.one(t, 0, synFrom(t, other, vp), 1)
	if out.dst != netip.AddrPortFrom(rs1IP, 8080) || !out.tcp.SYN || out.src.Addr() != lip {
		t.Fatalf("allowed client's SYN went %v -> %v", out.src, out.dst)
	}
	// removed at run time: the next SYN goes through
	if err := td.d.DelACL(svcKey4, ipvs.ACLDeny, mustPrefix("10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	out = td.one(t, 0, synFrom(t, netip.AddrPortFrom(clientIP, 41002), vp), 1)
	if out.dst != netip.AddrPortFrom(rs1IP, 8080) {
		t.Fatalf("SYN after removal went to %v", out.dst)
	}
	if td.sum(CtrDropLBDenied) != 1 || td.sum(CtrLBNewConns) != 2 {
		t.Fatalf("denied %d new %d, want 1 2", td.sum(CtrDropLBDenied), td.sum(CtrLBNewConns))
	}
}

// As DPVS does, a client denied at run time loses its open connections'
// packets too; replies of the real server still reach the client.
func TestDenyListCutsEstablishedClient(t *testing.T) {
	td := newLBTestDP(t, 1)
	client := netip.AddrPortFrom(clientIP, 41010)
	vp := netip.AddrPortFrom(vip, 80)
	td.one(t, 0, synFrom(t, client, vp), 1)
	ack := tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, seq: 1001, ackn: 1})
	td.one(t, 0, ack, 1)
	if err := td.d.AddACL(svcKey4, ipvs.ACLDeny, mustPrefix("10.1.0.2/32")); err != nil {
		t.Fatal(err)
	}
	td.sendDropped(t, ack, CtrDropLBDenied)
	if td.w.sess.Len() != 1 {
		t.Fatal("the connection itself is left to time out")
	}
}

func TestAllowListAdmitsOnlyListed(t *testing.T) {
	td := newLBTestDP(t, 1)
	vp := netip.AddrPortFrom(vip, 80)
	if err := td.d.AddACL(svcKey4, ipvs.ACLAllow, mustPrefix("10.9.0.0/16")); err != nil {
		t.Fatal(err)
	}
	td.sendDropped(t, synFrom(t, netip.AddrPortFrom(clientIP, 41020), vp), CtrDropLBNotAllowed)
	out := td.one(t, 0, synFrom(t, netip.AddrPortFrom(netip.MustParseAddr("10.9.200.1"), 41021), vp), 1)
	if out.dst != netip.AddrPortFrom(rs1IP, 8080) {
		t.Fatalf("listed client went to %v", out.dst)
	}
	// deny wins over allow (DPVS checks the deny list first)
	if err := td.d.AddACL(svcKey4, ipvs.ACLDeny, mustPrefix("10.9.200.0/24")); err != nil {
		t.Fatal(err)
	}
	td.sendDropped(t, synFrom(t, netip.AddrPortFrom(netip.MustParseAddr("10.9.200.1"), 41022), vp), CtrDropLBDenied)
	// the lists belong to one service: another service is unaffected
	td.service(ipvs.TCP, vip, 81, "rr", lip, netip.AddrPortFrom(rs1IP, 8081))
	out = td.one(t, 0, synFrom(t, netip.AddrPortFrom(clientIP, 41023), netip.AddrPortFrom(vip, 81)), 1)
	if out.dst != netip.AddrPortFrom(rs1IP, 8081) {
		t.Fatalf("other service's SYN went to %v", out.dst)
	}
}

func TestACLIPv6Prefixes(t *testing.T) {
	td := newLBTestDP(t, 1)
	k6 := td.service(ipvs.TCP, vip6, 80, "rr", lip6, netip.AddrPortFrom(rs1IP6, 8080))
	vp := netip.AddrPortFrom(vip6, 80)
	if err := td.d.AddACL(k6, ipvs.ACLDeny, mustPrefix("fd00:1::/64")); err != nil {
		t.Fatal(err)
	}
	if err := td.d.AddACL(k6, ipvs.ACLDeny, mustPrefix("10.0.0.0/8")); err == nil {
		t.Fatal("an IPv4 prefix on an IPv6 service was taken")
	}
	td.sendDropped(t, synFrom(t, netip.AddrPortFrom(clientIP6, 41030), vp), CtrDropLBDenied)
	out := td.one(t, 0, synFrom(t, netip.AddrPortFrom(netip.MustParseAddr("fd00:1:0:1::2"), 41031), vp), 1)
	if out.dst != netip.AddrPortFrom(rs1IP6, 8080) {
		t.Fatalf("client outside the /64 went to %v", out.dst)
	}
	if err := td.d.AddACL(k6, ipvs.ACLAllow, mustPrefix("fd00:1:0:2::/64")); err != nil {
		t.Fatal(err)
	}
	td.sendDropped(t, synFrom(t, netip.AddrPortFrom(netip.MustParseAddr("fd00:1:0:1::2"), 41032), vp), CtrDropLBNotAllowed)
}

func TestConnRateLimit(t *testing.T) {
	td := newLBTestDP(t, 1)
	if err := td.d.EditService(ipvs.ServiceSpec{Key: svcKey4, Sched: "rr", ConnRateLimit: 3}); err != nil {
		t.Fatal(err)
	}
	vp := netip.AddrPortFrom(vip, 80)
	port := uint16(42000)
	syn := func() []byte { port++; return synFrom(t, netip.AddrPortFrom(clientIP, port), vp) }
	for i := 0; i < 3; i++ {
		td.one(t, 0, syn(), 1)
	}
	td.sendDropped(t, syn(), CtrDropLBRateLimited)
	// a third of a second later: one more token
	td.d.start = td.d.start.Add(-334e6)
	td.one(t, 0, syn(), 1)
	td.sendDropped(t, syn(), CtrDropLBRateLimited)
	// a long pause fills the bucket to one second's worth, no more
	td.d.start = td.d.start.Add(-10e9)
	for i := 0; i < 3; i++ {
		td.one(t, 0, syn(), 1)
	}
	td.sendDropped(t, syn(), CtrDropLBRateLimited)
	if got := td.sum(CtrLBNewConns); got != 7 {
		t.Fatalf("new conns %d, want 7", got)
	}
}

func TestPerSourceLimit(t *testing.T) {
	td := newLBTestDP(t, 1)
	if err := td.d.EditService(ipvs.ServiceSpec{Key: svcKey4, Sched: "rr", PerSourceRateLimit: 2}); err != nil {
		t.Fatal(err)
	}
	vp := netip.AddrPortFrom(vip, 80)
	flooder, other := clientIP, netip.MustParseAddr("10.9.0.9")
	td.one(t, 0, synFrom(t, netip.AddrPortFrom(flooder, 43001), vp), 1)
	td.one(t, 0, synFrom(t, netip.AddrPortFrom(flooder, 43002), vp), 1)
	td.sendDropped(t, synFrom(t, netip.AddrPortFrom(flooder, 43003), vp), CtrDropLBSourceLimited)
	td.one(t, 0, synFrom(t, netip.AddrPortFrom(other, 43004), vp), 1)
	// the next second the flooder may again
	td.d.start = td.d.start.Add(-1e9)
	td.one(t, 0, synFrom(t, netip.AddrPortFrom(flooder, 43005), vp), 1)
}

// A flood from 100k random sources leaves the per-source state's size as
// it was, and a source over its limit is still refused during it.
func TestPerSourceLimitFloodFixedMemory(t *testing.T) {
	td := newLBTestDP(t, 1)
	w := td.w
	svc := td.d.IPVS().Table().Services[0]
	now := int64(5e9)
	if !w.lim.sourceAllow(svc.ID, clientIP, 10, 1, now) {
		t.Fatal("first connection refused")
	}
	size := w.lim.sketchBytes()
	if size == 0 {
		t.Fatal("no sketch")
	}
	var b [4]byte
	for i := 0; i < 100000; i++ {
		b[0], b[1], b[2], b[3] = 100+byte(i>>16), byte(i>>8), byte(i), 1
		w.lim.sourceAllow(svc.ID, netip.AddrFrom4(b), 10, 1, now)
	}
	if got := w.lim.sketchBytes(); got != size {
		t.Fatalf("sketch grew from %d to %d bytes", size, got)
	}
	allowed := 1
	for i := 0; i < 20; i++ {
		if w.lim.sourceAllow(svc.ID, clientIP, 10, 1, now) {
			allowed++
		}
	}
	if allowed > 10 {
		t.Fatalf("a source opened %d connections against a limit of 10", allowed)
	}
}

func TestACLAndLimitsAllocs(t *testing.T) {
	l := newLBLoop(t)
	td := l.testDP
	if err := td.d.EditService(ipvs.ServiceSpec{Key: svcKey4, Sched: "rr", ConnRateLimit: 1, PerSourceRateLimit: 1}); err != nil {
		t.Fatal(err)
	}
	if err := td.d.AddACL(svcKey4, ipvs.ACLDeny, mustPrefix("10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	td.w.iterate() // the new table
	denied := synFrom(t, netip.AddrPortFrom(clientIP, 44000), netip.AddrPortFrom(vip, 80))
	limited := synFrom(t, netip.AddrPortFrom(netip.MustParseAddr("10.9.0.1"), 44001), netip.AddrPortFrom(vip, 80))
	l.pass(t, 0, 1, limited)    // takes the one token and makes the sketch
	more := make([][]byte, 501) // new connections, one source port each
	for i := range more {
		more[i] = synFrom(t, netip.AddrPortFrom(netip.MustParseAddr("10.9.0.1"), uint16(44002+i)), netip.AddrPortFrom(vip, 80))
	}
	i := 0
	n := testing.AllocsPerRun(500, func() {
		l.rx(t, 0, denied)
		l.rx(t, 0, more[i])
		i++
	})
	if n != 0 {
		t.Fatalf("%v allocations per pair of packets", n)
	}
	l.w.ctr.publish()
	if td.sum(CtrDropLBDenied) != 501 || td.sum(CtrDropLBRateLimited) != 501 {
		t.Fatalf("denied %d rate-limited %d, want 501 each", td.sum(CtrDropLBDenied), td.sum(CtrDropLBRateLimited))
	}
	l.checkPools(t)
}

// BenchmarkFullNATAdmission: the new-connection and established paths of
// BenchmarkLBPaths with a 10k-entry deny list (none matching the client),
// a rate limit and a per-source limit too high to refuse anything: what
// the checks add per packet.
func BenchmarkFullNATAdmission(b *testing.B) {
	setup := func(l *lbLoop) {
		var ps []netip.Prefix
		for i := 0; i < 10000; i++ {
			// scattered /24s: 10k ranges after merging, none the client's
			ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i * 37), byte(i * 101), byte(i), 0}), 24))
		}
		if err := l.d.ipvs.SetACL(svcKey4, ipvs.ACLDeny, ps); err != nil {
			b.Fatal(err)
		}
		if err := l.d.EditService(ipvs.ServiceSpec{Key: svcKey4, Sched: "rr", ConnRateLimit: 1 << 31, PerSourceRateLimit: 60000}); err != nil {
			b.Fatal(err)
		}
		l.w.iterate()
	}
	for _, name := range []string{"established-in", "new-connection"} {
		b.Run(name+"/plain", func(b *testing.B) { benchLB(b, name) })
		b.Run(name+"/lists+limits", func(b *testing.B) { benchLBSetup(b, name, setup) })
	}
}

// TestAdmissionStatsPerService: each refusal is counted for the service
// whose list or limit refused it, next to the worker's drop counter;
// another service's counters stay 0, and a packet that passes counts
// nowhere.
func TestAdmissionStatsPerService(t *testing.T) {
	td := newLBTestDP(t, 1)
	k81 := td.service(ipvs.TCP, vip, 81, "rr", lip, netip.AddrPortFrom(rs1IP, 8081))
	if err := td.d.EditService(ipvs.ServiceSpec{Key: k81, Sched: "rr", ConnRateLimit: 1, PerSourceRateLimit: 1000}); err != nil {
		t.Fatal(err)
	}
	if err := td.d.AddACL(svcKey4, ipvs.ACLDeny, mustPrefix("10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	if err := td.d.AddACL(svcKey4, ipvs.ACLAllow, mustPrefix("10.9.0.0/16")); err != nil {
		t.Fatal(err)
	}
	vp80, vp81 := netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(vip, 81)
	for i := range 3 {
		td.sendDropped(t, synFrom(t, netip.AddrPortFrom(clientIP, uint16(45000+i)), vp80), CtrDropLBDenied)
	}
	outside := netip.MustParseAddr("10.8.0.1")
	for i := range 2 {
		td.sendDropped(t, synFrom(t, netip.AddrPortFrom(outside, uint16(45010+i)), vp80), CtrDropLBNotAllowed)
	}
	td.one(t, 0, synFrom(t, netip.AddrPortFrom(netip.MustParseAddr("10.9.0.1"), 45020), vp80), 1)
	td.one(t, 0, synFrom(t, netip.AddrPortFrom(clientIP, 45030), vp81), 1)
	for i := range 4 {
		td.sendDropped(t, synFrom(t, netip.AddrPortFrom(clientIP, uint16(45031+i)), vp81), CtrDropLBRateLimited)
	}
	// a per-source limit on port 80 as well: the allowed client's second SYN
	if err := td.d.EditService(ipvs.ServiceSpec{Key: svcKey4, Sched: "rr", PerSourceRateLimit: 1}); err != nil {
		t.Fatal(err)
	}
	td.one(t, 0, synFrom(t, netip.AddrPortFrom(netip.MustParseAddr("10.9.0.2"), 45040), vp80), 1)
	td.sendDropped(t, synFrom(t, netip.AddrPortFrom(netip.MustParseAddr("10.9.0.2"), 45041), vp80), CtrDropLBSourceLimited)

	tbl := td.d.IPVS().Table()
	if got, want := td.d.AdmissionOf(tbl.Service(svcKey4)), (AdmissionStats{Denied: 3, NotAllowed: 2, SourceLimited: 1}); got != want {
		t.Errorf("port 80: %+v, want %+v", got, want)
	}
	if got, want := td.d.AdmissionOf(tbl.Service(k81)), (AdmissionStats{RateLimited: 4}); got != want {
		t.Errorf("port 81: %+v, want %+v", got, want)
	}
	// the service's counters survive the table rebuilds of later changes
	td.service(ipvs.TCP, vip, 82, "rr", lip, netip.AddrPortFrom(rs1IP, 8082))
	td.stepAll()
	if got := td.d.AdmissionOf(td.d.IPVS().Table().Service(k81)); got.RateLimited != 4 {
		t.Errorf("port 81 after another service was added: %+v", got)
	}
	if got := td.d.AdmissionOf(td.d.IPVS().Table().Service(ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 82})); got != (AdmissionStats{}) {
		t.Errorf("a new service starts with %+v", got)
	}
}
