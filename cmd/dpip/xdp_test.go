package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/apiserver"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
)

// fastPort is a mem port that reports an XDP fast path state, as the
// afxdp driver's Port.Offload does.
type fastPort struct {
	*mem.Port
	on  bool
	why string
}

func (p fastPort) Offload() (bool, string) { return p.on, p.why }

// TestInfoXDP: dpip info shows, per port whose driver has an XDP fast
// path, whether it is active and, when not, why; ports without one (mem)
// are not listed.
func TestInfoXDP(t *testing.T) {
	p0 := fastPort{Port: mem.New(port.Config{Name: "dp0", Queues: 1}, net.HardwareAddr{2, 0, 0, 0, 0, 0x10}), on: true}
	p1 := fastPort{Port: mem.New(port.Config{Name: "dp1", Queues: 1}, net.HardwareAddr{2, 0, 0, 0, 0, 0x11}),
		why: "the fast path did not load: operation not permitted"}
	p2 := mem.New(port.Config{Name: "dp2", Queues: 1}, net.HardwareAddr{2, 0, 0, 0, 0, 0x12})
	d, err := dataplane.New(dataplane.Options{Workers: 1, Forward4: true}, []dataplane.PortSpec{{Port: p0}, {Port: p1}, {Port: p2}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "dp.sock")
	g, err := apiserver.New(d).Listen(sock, apiserver.ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Stop(); d.Stop() })
	out := mustDpip(t, sock, "info")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := []string{"xdp fast path dp0: active", "xdp fast path dp1: not active: the fast path did not load: operation not permitted"}
	if len(lines) < 2 || strings.Join(lines[len(lines)-2:], "\n") != strings.Join(want, "\n") || strings.Contains(out, "dp2") {
		t.Fatalf("dpip info:\n%s\nwant it to end with\n%s", out, strings.Join(want, "\n"))
	}
	if out := mustDpip(t, startDP(t), "info"); strings.Contains(out, "xdp") {
		t.Fatalf("dpip info without fast-path ports:\n%s", out)
	}
}
