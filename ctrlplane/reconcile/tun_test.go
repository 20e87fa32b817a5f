package reconcile

import (
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/ctrlplane/internal/dptest"
	"github.com/gvs-lb/gvs/ipvs"
)

const tunCfg = `
virtual_servers:
  - name: web
    vip: 10.1.0.100
    port: 80
    lb_algo: rr
    lb_kind: TUN
    tun_type: gue
    tun_port: 6080
    tun_csum: csum
    real_servers:
      - {ip: 10.2.0.11, port: 80}
      - {ip: 10.2.0.12, port: 80}
`

// TestReconcileTunnel applies lb_kind TUN to a real dataplane: its
// destinations are Tunnel with the file's encapsulation, an identical
// reload makes no call (the listed tunnel options equal the desired
// ones), and a changed encapsulation edits the destinations in place.
func TestReconcileTunnel(t *testing.T) {
	sock := dptest.Socket(t)
	dp := dptest.Start(t, sock, 1)
	api := dptest.Client(t, sock)
	r, ctx := startReconciler(t, api)
	tbl := func() *ipvs.Service { return dp.DP.IPVS().Table().Service(webKey) }

	if err := r.Load(ctx, parse(t, tunCfg), false); err != nil {
		t.Fatal(err)
	}
	want := `add service TCP 10.1.0.100:80 sched rr
add dest 10.2.0.11:80 weight 1 fwd Tunnel tun gue port 6080 tun-csum to TCP 10.1.0.100:80
add dest 10.2.0.12:80 weight 1 fwd Tunnel tun gue port 6080 tun-csum to TCP 10.1.0.100:80`
	if got := listing(t, api); got != want {
		t.Fatalf("dataplane after load:\n%s\nwant:\n%s", got, want)
	}
	for _, d := range tbl().Dests {
		if d.Spec.Fwd != ipvs.FwdTunnel || d.Spec.TunType != ipvs.TunGUE || d.Spec.TunPort != 6080 || d.Spec.TunFlags != ipvs.TunCsum {
			t.Errorf("dataplane dest %+v", d.Spec)
		}
	}
	ops := r.Stats().Ops
	r.Load(ctx, r.Config(), true)
	if s := r.Stats(); s.Ops != ops {
		t.Errorf("%d calls for an identical reload, want none", s.Ops-ops)
	}

	// gre without checksum: the same destinations edited
	ids := []uint32{tbl().Dests[0].ID, tbl().Dests[1].ID}
	cfg := strings.Replace(strings.Replace(tunCfg, "tun_type: gue", "tun_type: gre", 1), "    tun_port: 6080\n    tun_csum: csum\n", "", 1)
	if err := r.Load(ctx, parse(t, cfg), false); err != nil {
		t.Fatal(err)
	}
	for i, d := range tbl().Dests {
		if d.ID != ids[i] || d.Spec.Fwd != ipvs.FwdTunnel || d.Spec.TunType != ipvs.TunGRE || d.Spec.TunPort != 0 || d.Spec.TunFlags != 0 {
			t.Errorf("after the edit: dest %d %+v (id %d, was %d)", i, d.Spec, d.ID, ids[i])
		}
	}
	if got := listing(t, api); !strings.Contains(got, "fwd Tunnel tun gre tun-nocsum to") {
		t.Errorf("dataplane after the edit:\n%s", got)
	}
}
