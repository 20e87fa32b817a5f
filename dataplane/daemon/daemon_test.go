package daemon

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/dataplane/config"
)

func cfg(t *testing.T, extra string) *config.Config {
	sock := filepath.Join(t.TempDir(), "dp.sock")
	c, err := config.Parse([]byte(`
api: {socket: ` + sock + `}
ports:
  - {name: dp0, driver: mem, kni: {enabled: false}}
  - {name: dp1, driver: mem, kni: {enabled: false}}
addresses:
  - {addr: 10.1.0.1/24, dev: dp0}
  - {addr: 10.2.0.1/24, dev: dp1}
` + extra))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStartServesAPI(t *testing.T) {
	c := cfg(t, "routes: [{dst: 10.9.0.0/16, via: 10.2.0.254}]\nvlans: [{name: dp0.7, port: dp0, id: 7}]\n")
	d, err := Start(c, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	conn, err := grpc.NewClient("unix://"+c.API.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	api := pb.NewDataplaneClient(conn)
	r, err := api.ListRoutes(ctx, &pb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rt := range r.Routes {
		if rt.Dst == "10.9.0.0/16" && rt.Via == "10.2.0.254" && rt.Dev == "dp1" {
			found = true
		}
	}
	if !found {
		t.Errorf("configured route missing: %v", r.Routes)
	}
	l, err := api.ListLinks(ctx, &pb.ListLinksRequest{Name: "dp0.7"})
	if err != nil || l.Links[0].Vid != 7 {
		t.Errorf("vlan: %v %v", l, err)
	}
	// a second daemon on the same socket is refused, the first keeps serving
	c2 := *c
	if _, err := Start(&c2, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "is in use by another process") {
		t.Errorf("second daemon on one socket: %v", err)
	}
	if _, err := api.GetInfo(ctx, &pb.Empty{}); err != nil {
		t.Errorf("first daemon stopped serving: %v", err)
	}
}

func TestStartRefusesBadRouteAndCleansUp(t *testing.T) {
	c := cfg(t, "routes: [{dst: 10.9.0.0/16, via: 10.7.0.1}]\n")
	_, err := Start(c, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "route 10.9.0.0/16 via 10.7.0.1: gateway is not on a connected subnet") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(c.API.Socket); err == nil {
		t.Error("API socket left behind by a failed start")
	}
}

// TestUMEMPlan: with workers.umem shared the afxdp ports share the first
// one's UMEMs, which hold all their frames; other drivers and per-port
// keep their own.
func TestUMEMPlan(t *testing.T) {
	parse := func(umem string) *config.Config {
		c, err := config.Parse([]byte(`
workers: {count: 2, umem: ` + umem + `}
ports:
  - {name: a, driver: afxdp, device: va}
  - {name: m, driver: mem}
  - {name: b, driver: afxdp, device: vb, frames: 4096}
  - {name: c, driver: afpacket, device: vc}
  - {name: d, driver: afxdp, device: vd, frames: 1024}
`))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	got := umemPlan(parse("shared"))
	want := []umemPart{{-1, 8192 + 4096 + 1024}, {-1, 0}, {0, 0}, {-1, 0}, {0, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("shared: %+v, want %+v", got, want)
	}
	got = umemPlan(parse("per-port"))
	for i, u := range got {
		if u != (umemPart{-1, 0}) {
			t.Errorf("per-port: port %d: %+v", i, u)
		}
	}
}
