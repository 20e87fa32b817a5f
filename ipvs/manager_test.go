package ipvs

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

var (
	k80  = ServiceKey{Proto: TCP, Addr: netip.MustParseAddr("10.1.0.100"), Port: 80}
	rs1  = netip.MustParseAddrPort("10.2.0.11:8080")
	rs2  = netip.MustParseAddrPort("10.2.0.12:8080")
	lip1 = netip.MustParseAddr("10.2.0.100")
)

func fnat(a netip.AddrPort, w int) DestSpec { return DestSpec{Addr: a, Weight: w, Fwd: FwdFullNAT} }

func TestErrorVocabulary(t *testing.T) {
	m := NewManager(2)
	if err := m.AddService(ServiceSpec{Key: k80}); err != nil {
		t.Fatal(err)
	}
	if got := m.Table().Service(k80).Spec.Sched; got != "wlc" {
		t.Errorf("default scheduler %q, want wlc", got)
	}
	other := ServiceKey{Proto: UDP, Addr: k80.Addr, Port: 53}
	cases := []struct {
		err  error
		want error
		text string
	}{
		{m.AddService(ServiceSpec{Key: k80}), ErrServiceExists, "Service already exists"},
		{m.AddService(ServiceSpec{Key: other, Sched: "fancy"}), ErrSchedNotFoundLike, "Scheduler or persistence engine not found"},
		{m.EditService(ServiceSpec{Key: other}), ErrNoService, "No such service"},
		{m.DelService(other), ErrNoService, "No such service"},
		{m.AddDest(other, fnat(rs1, 1)), ErrServiceNotDef, "Service not defined"},
		{m.AddDest(k80, fnat(rs1, 1)), nil, ""},
		{m.AddDest(k80, fnat(rs1, 1)), ErrDestExists, "Destination already exists"},
		{m.EditDest(k80, fnat(rs2, 1)), ErrNoDest, "No such destination"},
		{m.DelDest(k80, rs2, false), ErrNoDest, "No such destination"},
		{m.AddDest(k80, DestSpec{Addr: rs2, Weight: 1, Fwd: FwdSNAT}), ErrInvalid, "SNAT (-J) is for match services (-H)"},
		{m.AddDest(k80, DestSpec{Addr: netip.AddrPortFrom(rs2.Addr(), 0), Weight: 1, Fwd: FwdMasq}), ErrInvalid, "port 0: give the real server's port"},
		{m.AddDest(k80, fnat(netip.MustParseAddrPort("[fd00::1]:80"), 1)), ErrNotSupported, "(NAT46) is not supported"},
		{m.AddDest(k80, fnat(rs2, 70000)), ErrInvalid, "weight 70000"},
		{m.AddService(ServiceSpec{Key: other, Persistent: true}), ErrInvalid, "persistence timeout 0"},
		{m.AddService(ServiceSpec{Key: other, Persistent: true, PersistTimeout: 300, PersistPrefix: 33}), ErrInvalid, "netmask /33: use a prefix length 0-32"},
		{m.AddService(ServiceSpec{Key: other, PersistPrefix: 24}), ErrInvalid, "without persistence: add -p"},
		{m.AddService(ServiceSpec{Key: ServiceKey{Proto: UDP, Addr: k80.Addr}}), ErrInvalid, "port 0 (all ports) needs persistence"},
		{m.AddService(ServiceSpec{Key: ServiceKey{Proto: TCP, Addr: k80.Addr, Port: 81}, OnePacket: true}), ErrInvalid, "(-o) is for UDP services"},
		{m.AddService(ServiceSpec{Key: ServiceKey{Proto: UDP, Addr: k80.Addr, Port: 53}, SynProxy: true}), ErrInvalid, "SYN proxy (-j) is for TCP services"},
		{m.AddDest(k80, DestSpec{Addr: netip.AddrPortFrom(rs2.Addr(), 80), Weight: 1, Fwd: FwdRoute}), nil, ""},
		{m.EditService(ServiceSpec{Key: k80, SynProxy: true}), ErrInvalid, "SYN proxy (-j) needs FullNAT real servers"},
		{m.DelDest(k80, netip.AddrPortFrom(rs2.Addr(), 80), false), nil, ""},
		{m.EditService(ServiceSpec{Key: k80, SynProxy: true}), nil, ""},
		{m.AddDest(k80, DestSpec{Addr: netip.AddrPortFrom(rs2.Addr(), 80), Weight: 1, Fwd: FwdRoute}), ErrInvalid, "use -b or disable -j"},
		{m.EditService(ServiceSpec{Key: k80}), nil, ""},
		{m.AddService(ServiceSpec{Key: other, SchedFlags: []string{"sh-wild"}}), ErrInvalid, "invalid scheduler flag `sh-wild'"},
		{m.AddLAddr(other, LAddr{Addr: lip1}), ErrNoService, "No such service"},
		{m.AddLAddr(k80, LAddr{Addr: lip1}), nil, ""},
		{m.AddLAddr(k80, LAddr{Addr: lip1}), ErrLAddrExists, "Local address already exists"},
		{m.AddLAddr(k80, LAddr{Addr: netip.MustParseAddr("fd00::100")}), ErrInvalid, "an IPv6 local address for an IPv4 service"},
		{m.DelLAddr(k80, netip.MustParseAddr("10.2.0.200")), ErrNoLAddr, "No such local address"},
	}
	for i, c := range cases {
		if c.want == nil {
			if c.err != nil {
				t.Errorf("case %d: %v", i, c.err)
			}
			continue
		}
		if c.err == nil || !strings.Contains(c.err.Error(), c.text) {
			t.Errorf("case %d: err %v, want it to say %q", i, c.err, c.text)
		}
		if c.want != ErrSchedNotFoundLike && !errors.Is(c.err, c.want) {
			t.Errorf("case %d: %v is not %v", i, c.err, c.want)
		}
	}
	// nothing refused changed the table
	tbl := m.Table()
	if len(tbl.Services) != 1 || len(tbl.Services[0].Dests) != 1 || len(tbl.Services[0].LAddrs) != 1 {
		t.Errorf("table changed by refused calls: %+v", tbl.Services)
	}
}

// ErrSchedNotFoundLike marks cases checked by text only (the scheduler
// package wraps its own sentinel).
var ErrSchedNotFoundLike = errors.New("text only")

func TestTablesAndDraining(t *testing.T) {
	m := NewManager(3)
	m.AddService(ServiceSpec{Key: k80, Sched: "rr"})
	m.AddDest(k80, fnat(rs1, 1))
	m.AddDest(k80, fnat(rs2, 2))
	m.AddLAddr(k80, LAddr{Addr: lip1, Iface: "dp1"})
	tbl := m.Table()
	svc := tbl.Lookup(TCP, k80.Addr, 80)
	if svc == nil || len(svc.Scheds) != 3 || svc.Scheds[0] == svc.Scheds[1] {
		t.Fatalf("rr needs one scheduler per worker: %+v", svc)
	}
	if tbl.Lookup(UDP, k80.Addr, 80) != nil || tbl.Lookup(TCP, k80.Addr, 81) != nil {
		t.Error("lookup matched the wrong protocol or port")
	}
	for _, a := range []netip.Addr{k80.Addr, lip1} {
		if !tbl.Addrs.Has(a) {
			t.Errorf("%s missing from the address set", a)
		}
	}
	// quiescing keeps the destination (and its counters) in place
	d1 := svc.Dests[0]
	d1.C.Active.Add(1)
	if err := m.EditDest(k80, fnat(rs1, 0)); err != nil {
		t.Fatal(err)
	}
	if got := m.Table().Service(k80).Dests[0]; got.Spec.Weight != 0 || got.C != d1.C || got.ID != d1.ID {
		t.Errorf("quiesced dest lost its identity or counters: %+v", got)
	}
	// a deleted destination with connections drains, then goes
	m.DelDest(k80, rs1, true)
	tbl = m.Table()
	if _, ok := tbl.Dests[d1.ID]; !ok {
		t.Fatal("draining destination dropped while it has connections")
	}
	if _, ok := tbl.ExpireDests[d1.ID]; !ok {
		t.Error("delete with expire not marked")
	}
	m.Reap()
	if _, ok := m.Table().Dests[d1.ID]; !ok {
		t.Error("reaped a destination with a connection")
	}
	d1.C.Active.Add(-1)
	m.Reap()
	if _, ok := m.Table().Dests[d1.ID]; ok {
		t.Error("destination without connections still draining")
	}
	// sh and mh share one instance across workers
	k2 := ServiceKey{Proto: TCP, Addr: k80.Addr, Port: 443}
	m.AddService(ServiceSpec{Key: k2, Sched: "mh"})
	m.AddDest(k2, fnat(rs1, 1))
	if s := m.Table().Service(k2); s.Scheds[0] != s.Scheds[2] {
		t.Error("mh rebuilt per worker")
	}
	if err := m.Flush(); err != nil || len(m.Table().Services) != 0 {
		t.Errorf("flush: %v", err)
	}
}
