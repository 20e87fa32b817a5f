package config

import (
	"strings"
	"testing"
	"time"
)

func TestAnnounceSection(t *testing.T) {
	c, err := Parse([]byte(`
announce:
  local_addresses: true
  bird: {socket: /run/bird/gvs.ctl, file: /etc/bird/gvs4.conf}
  bgp:
    local_as: 65001
    router_id: 10.11.0.21
    neighbors: [{address: 10.11.0.1, peer_as: 65000, hold_time: 3}]
`))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Announce
	if !a.Enabled() || a.Require != "all" || a.Interval.D() != time.Second || !a.LocalAddresses {
		t.Errorf("defaults: %+v", a)
	}
	if a.BIRD.Birdc != "birdc" || a.BIRD.Cost != 10 || a.BIRD.BackupCost != 110 || a.BIRD.Socket != "/run/bird/gvs.ctl" {
		t.Errorf("bird: %+v", *a.BIRD)
	}
	if a.BGP.NextHop != "10.11.0.21" || a.BGP.Neighbors[0].HoldTime.D() != 3*time.Second ||
		*a.BGP.BackupPrepend != 3 || *a.BGP.BackupMED != 100 {
		t.Errorf("bgp: %+v", *a.BGP)
	}
	if c, err := Parse(nil); err != nil || c.Announce.Enabled() {
		t.Errorf("no section: enabled %v, err %v", c.Announce.Enabled(), err)
	}
}

func TestAnnounceErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{`announce: {require: some}`, "announce.require: \"some\": use all or any"},
		{`announce: {bird: {}}`, "announce.bird: give file"},
		{`announce: {bird: {file: gvs.conf}}`, "announce.bird.file: \"gvs.conf\": give an absolute path"},
		{`announce: {bird: {file: /a, file6: /a}}`, "announce.bird.file6: \"/a\" is also file"},
		{`announce: {bgp: {router_id: 10.0.0.1, neighbors: [{address: 10.0.0.2, peer_as: 1}]}}`, "announce.bgp.local_as: missing"},
		{`announce: {bgp: {local_as: 1, router_id: fd00::1, neighbors: [{address: 10.0.0.2, peer_as: 1}]}}`, "announce.bgp.router_id: \"fd00::1\": give an IPv4 address"},
		{`announce: {bgp: {local_as: 1, router_id: 10.0.0.1}}`, "announce.bgp.neighbors: none"},
		{`announce: {bgp: {local_as: 1, router_id: 10.0.0.1, neighbors: [{address: 10.0.0.2}]}}`, "announce.bgp.neighbors[0].peer_as: missing"},
		{`announce: {bgp: {local_as: 1, router_id: 10.0.0.1, neighbors: [{address: 10.0.0.2, peer_as: 2, hold_time: 2}]}}`, "announce.bgp.neighbors[0].hold_time: 2s: give whole seconds, 3-65535"},
		{`announce: {bgp: {local_as: 1, router_id: 10.0.0.1, neighbors: [{address: 10.0.0.2, peer_as: 2}, {address: 10.0.0.2, peer_as: 2}]}}`, "announce.bgp.neighbors[1].address: 10.0.0.2 is listed twice"},
		{`announce: {bgp: {local_as: 1, router_id: 10.0.0.1, next_hop6: 10.0.0.1, neighbors: [{address: 10.0.0.2, peer_as: 2}]}}`, "announce.bgp.next_hop6: \"10.0.0.1\": give this node's IPv6 KNI address"},
		{`announce: {bgp: {local_as: 1, router_id: 10.0.0.1, neighbors: [{address: 10.0.0.2, peer_as: 2}], peers: []}}`, "unknown key peers"},
		{`announce: {bird: {file: /a, cost: 50, backup_cost: 50}}`, "announce.bird.backup_cost: 50 is not above cost (50)"},
		{`announce: {bird: {file: /a, backup_cost: 70000}}`, "announce.bird.backup_cost: 70000: give 1-65535"},
		{`announce: {bgp: {local_as: 1, router_id: 10.0.0.1, backup_prepend: 17, neighbors: [{address: 10.0.0.2, peer_as: 2}]}}`, "announce.bgp.backup_prepend: 17: give 0-16"},
		{`announce: {bgp: {local_as: 1, router_id: 10.0.0.1, backup_prepend: 2, neighbors: [{address: 10.0.0.2, peer_as: 1}]}}`, "announce.bgp.backup_prepend: 2 with the iBGP neighbor 0 (10.0.0.2, AS 1)"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// TestAnnounceBackupDefaults: backup_cost follows cost; with an iBGP
// neighbour the AS-path prepend defaults to 0 (the MED still ranks).
func TestAnnounceBackupDefaults(t *testing.T) {
	c, err := Parse([]byte(`
announce:
  bird: {file: /a, cost: 20}
  bgp: {local_as: 65001, router_id: 10.0.0.1, neighbors: [{address: 10.0.0.2, peer_as: 65001}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Announce.BIRD; b.BackupCost != 120 {
		t.Errorf("backup_cost %d, want cost + 100 = 120", b.BackupCost)
	}
	if g := c.Announce.BGP; *g.BackupPrepend != 0 || *g.BackupMED != 100 {
		t.Errorf("iBGP backup_prepend %d backup_med %d, want 0 and 100", *g.BackupPrepend, *g.BackupMED)
	}
}
