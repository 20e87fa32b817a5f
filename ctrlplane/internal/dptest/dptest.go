// Package dptest runs a real gvs-dataplane in-process for the control
// plane's tests: the dataplane's own code on mem ports behind its own API
// server on a unix socket, so the reconciler and the metrics collector are
// tested against the real service model, never a fake. Only tests import it.
package dptest

import (
	"net"
	"net/netip"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"

	"github.com/gvs-lb/gvs/ctrlplane/dpclient"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/apiserver"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
)

// Addrs are configured on every test dataplane: the lab's, so configs
// written for the lab work unchanged.
var Addrs = []struct{ Prefix, Dev string }{
	{"10.1.0.1/24", "dp0"}, {"10.1.0.100/32", "dp0"}, {"fd00:1::1/64", "dp0"},
	{"10.2.0.1/24", "dp1"}, {"10.2.0.100/32", "dp1"}, {"10.2.0.101/32", "dp1"}, {"fd00:2::100/128", "dp1"},
}

// DP is a running in-process dataplane.
type DP struct {
	DP     *dataplane.Dataplane
	Socket string
	// Ports are dp0 and dp1, for tests that start the workers (DP.Start)
	// and inject and drain frames.
	Ports []*mem.Port
	grpc  *grpc.Server
}

// Socket returns a fresh socket path in a test's temporary directory.
func Socket(t testing.TB) string { return filepath.Join(t.TempDir(), "dp.sock") }

// Start runs a dataplane with workers workers (not polling: the control
// methods run directly) and its API on socket, stopped when the test ends.
func Start(t testing.TB, socket string, workers int) *DP {
	t.Helper()
	p0 := mem.New(port.Config{Name: "dp0", Queues: workers}, net.HardwareAddr{2, 0, 0, 0, 0, 0x10})
	p1 := mem.New(port.Config{Name: "dp1", Queues: workers}, net.HardwareAddr{2, 0, 0, 0, 0, 0x11})
	d, err := dataplane.New(dataplane.Options{Workers: workers, Forward4: true, Forward6: true},
		[]dataplane.PortSpec{{Port: p0}, {Port: p1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range Addrs {
		if err := d.AddAddr(netip.MustParsePrefix(a.Prefix), a.Dev); err != nil {
			t.Fatal(err)
		}
	}
	g, err := apiserver.New(d).Listen(socket, apiserver.ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dp := &DP{DP: d, Socket: socket, Ports: []*mem.Port{p0, p1}, grpc: g}
	t.Cleanup(dp.Stop)
	return dp
}

// Stop stops the API and the dataplane (a dataplane crash, as far as the
// control plane can tell). Stopping twice is harmless.
func (d *DP) Stop() {
	if d.grpc != nil {
		d.grpc.Stop()
		d.grpc = nil
	}
}

// Client dials the dataplane's API.
func Client(t testing.TB, socket string) *dpclient.Client {
	t.Helper()
	c, err := dpclient.New(socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
