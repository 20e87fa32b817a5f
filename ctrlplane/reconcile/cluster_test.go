package reconcile

import (
	"fmt"
	"net/netip"
	"testing"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/config"
)

// The mh mid-flow option and backup local addresses are part of the
// desired state: set on creation, corrected when the dataplane differs,
// left alone when it agrees.
func TestDiffMidFlowAndBackupLAddrs(t *testing.T) {
	k := config.ServiceKey{Proto: "TCP", Addr: netip.MustParseAddr("10.1.0.100"), Port: 80}
	own, peer := netip.MustParseAddr("10.2.0.100"), netip.MustParseAddr("10.2.0.101")
	cfg := []config.Service{{Key: k, Sched: "mh", MidFlow: true,
		LAddrs: []config.LAddr{{Addr: own, Dev: "dp1"}, {Addr: peer, Dev: "dp1", Backup: true}}}}
	want := Desired(cfg, nil)
	all := func(config.ServiceKey) bool { return true }

	if got := fmt.Sprint(Diff(want, State{}, all)); got != "[add service TCP 10.1.0.100:80 sched mh mid-flow add laddr 10.2.0.100 dev dp1 to TCP 10.1.0.100:80 add laddr 10.2.0.101 dev dp1 backup to TCP 10.1.0.100:80]" {
		t.Errorf("from nothing: %s", got)
	}
	// what the dataplane lists after that plan: nothing to do
	listed := &pb.ListServicesResponse{Services: []*pb.Service{{Key: &pb.ServiceKey{Proto: "TCP", Addr: "10.1.0.100", Port: 80}, Sched: "mh", MidFlow: true,
		Laddrs: []*pb.LAddr{{Addr: "10.2.0.100", Dev: "dp1"}, {Addr: "10.2.0.101", Dev: "dp1", Backup: true}}}}}
	have, err := Actual(listed)
	if err != nil {
		t.Fatal(err)
	}
	if ops := Diff(want, have, all); len(ops) != 0 {
		t.Errorf("in sync, yet %v", ops)
	}
	// the dataplane lost the option and the backup mark (e.g. edited by hand)
	listed.Services[0].MidFlow = false
	listed.Services[0].Laddrs[1].Backup = false
	have, _ = Actual(listed)
	if got := fmt.Sprint(Diff(want, have, all)); got != "[edit service TCP 10.1.0.100:80 sched mh mid-flow del laddr 10.2.0.101 from TCP 10.1.0.100:80 add laddr 10.2.0.101 dev dp1 backup to TCP 10.1.0.100:80]" {
		t.Errorf("drifted: %s", got)
	}
	// and the other way: the configuration drops both
	cfg[0].MidFlow, cfg[0].LAddrs[1].Backup = false, false
	listed.Services[0].MidFlow = true
	listed.Services[0].Laddrs[1].Backup = true
	have, _ = Actual(listed)
	if got := fmt.Sprint(Diff(Desired(cfg, nil), have, all)); got != "[edit service TCP 10.1.0.100:80 sched mh del laddr 10.2.0.101 from TCP 10.1.0.100:80 add laddr 10.2.0.101 dev dp1 to TCP 10.1.0.100:80]" {
		t.Errorf("option dropped: %s", got)
	}
}
