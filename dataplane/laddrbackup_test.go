package dataplane

import (
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

var backupLIP = netip.MustParseAddr("10.2.0.200") // a peer node's local address

// A backup local address takes no new connections, but a connection synced
// from the node that owned it works both ways through it.
func TestBackupLocalAddress(t *testing.T) {
	td := newLBTestDP(t, 1)
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 80}
	if err := td.d.AddAddr(netip.PrefixFrom(backupLIP, 32), "dp1"); err != nil {
		t.Fatal(err)
	}
	if err := td.d.AddLAddr(k, ipvs.LAddr{Addr: backupLIP, Backup: true}); err != nil {
		t.Fatal(err)
	}
	svc := td.d.IPVS().Table().Service(k)
	if len(svc.LAddrs) != 2 || len(svc.AllocLAddrs) != 1 || svc.AllocLAddrs[0].Addr != lip {
		t.Fatalf("laddrs %v, allocating %v", svc.LAddrs, svc.AllocLAddrs)
	}
	vipPort, rs := netip.AddrPortFrom(vip, 80), netip.AddrPortFrom(rs1IP, 8080)
	for i := 0; i < 20; i++ {
		client := netip.AddrPortFrom(clientIP, uint16(30000+i))
		syn := td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vipPort, smac: macClient, dmac: macDP0, syn: true, seq: 1}), 1)
		if syn.src.Addr() != lip {
			t.Fatalf("new connection from %s, want the own local address %s", syn.src, lip)
		}
	}
	// the peer's connection, synced before it failed
	client := netip.AddrPortFrom(clientIP, 50000)
	local := netip.AddrPortFrom(backupLIP, 61000)
	res, err := td.d.InstallSynced([]SyncConn{{Kind: SyncUpdate, Proto: 6, State: session.StateEstablished,
		Client: client, Virtual: vipPort, Local: local, Dest: rs}})
	if err != nil || res.Installed != 1 {
		t.Fatalf("install: %+v %v", res, err)
	}
	out := td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: local, smac: macRS1, dmac: macDP1, ack: true, psh: true, seq: 500, ackn: 900,
		payload: []byte("reply")}), 0)
	if out.src != vipPort || out.dst != client || out.tcp.Seq != 500 || out.tcp.Ack != 900 || string(out.tcp.Payload) != "reply" {
		t.Fatalf("reply to the backup address out %s -> %s seq %d ack %d %q", out.src, out.dst, out.tcp.Seq, out.tcp.Ack, out.tcp.Payload)
	}
	in := td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vipPort, smac: macClient, dmac: macDP0, ack: true, seq: 900, ackn: 505}), 1)
	if in.src != local || in.dst != rs {
		t.Fatalf("client segment out %s -> %s, want %s -> %s", in.src, in.dst, local, rs)
	}
	// a service with only backup addresses takes no new connections
	k2 := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 81}
	if err := td.d.AddService(ipvs.ServiceSpec{Key: k2, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	if err := td.d.AddDest(k2, ipvs.DestSpec{Addr: rs, Weight: 1, Fwd: ipvs.FwdFullNAT}); err != nil {
		t.Fatal(err)
	}
	if err := td.d.AddLAddr(k2, ipvs.LAddr{Addr: backupLIP, Backup: true}); err != nil {
		t.Fatal(err)
	}
	td.inject(0, tcpFrame(t, tcpSeg{src: client, dst: netip.AddrPortFrom(vip, 81), smac: macClient, dmac: macDP0, syn: true, seq: 1}))
	td.stepAll()
	if out := td.outAll(1); len(out) != 0 || td.sum(CtrDropLBNoLAddr) != 1 {
		t.Errorf("SYN to a service with only a backup address: %d frames out, drop_lb_no_laddr %d", len(out), td.sum(CtrDropLBNoLAddr))
	}
}
