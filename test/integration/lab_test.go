// Package integration runs GVS in the namespace lab (scripts/lab.sh) with
// Linux's own stacks as peers: ping, TCP, HTTP, raw frames. It needs root;
// CI runs it as root. Every test brings the lab up and tears it down, so
// the tests of this package run one after the other.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"

	"github.com/gvs-lb/gvs/internal/testenv"
)

// Lab is a running lab.
type Lab struct {
	t    *testing.T
	Env  map[string]string
	root string
	api  pb.DataplaneClient
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func requireRoot(t *testing.T) {
	testenv.RequireRoot(t) // network namespaces
}

// StartLab runs scripts/lab.sh up with args and registers the tear-down.
func StartLab(t *testing.T, args ...string) *Lab {
	t.Helper()
	requireRoot(t)
	root := repoRoot(t)
	for _, b := range []string{"gvs-dataplane", "dpip"} {
		if _, err := os.Stat(filepath.Join(root, "bin", b)); err != nil {
			t.Fatalf("bin/%s missing: run make (make test builds first)", b)
		}
	}
	script := filepath.Join(root, "scripts", "lab.sh")
	exec.Command(script, "down").Run() // a lab left over by a killed run
	out, err := exec.Command(script, append([]string{"up"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("lab up: %v\n%s", err, out)
	}
	l := &Lab{t: t, root: root, Env: map[string]string{}}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(l.Env["DP_LOG"]); err == nil {
				t.Logf("dataplane log:\n%s", tail(string(b), 40))
			}
			if o, err := exec.Command(filepath.Join(root, "bin", "dpip"), "-S", l.Env["DP_SOCKET"], "worker", "show").CombinedOutput(); err == nil {
				t.Logf("dpip worker show:\n%s", o)
			}
		}
		if o, err := exec.Command(script, "down").CombinedOutput(); err != nil {
			t.Errorf("lab down: %v\n%s", err, o)
		}
	})
	envOut, err := exec.Command(script, "env").Output()
	if err != nil {
		t.Fatalf("lab env: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(envOut))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			l.Env[k] = v
		}
	}
	conn, err := grpc.NewClient("unix://"+l.Env["DP_SOCKET"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	l.api = pb.NewDataplaneClient(conn)
	return l
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// NS runs a command inside a namespace and returns its combined output.
func (l *Lab) NS(ns string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...).CombinedOutput()
	return string(out), err
}

// MustNS is NS failing the test on error.
func (l *Lab) MustNS(ns string, name string, args ...string) string {
	l.t.Helper()
	out, err := l.NS(ns, name, args...)
	if err != nil {
		l.t.Fatalf("%s %s %v: %v\n%s", ns, name, args, err, out)
	}
	return out
}

// Dpip runs bin/dpip against the lab's dataplane.
func (l *Lab) Dpip(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(filepath.Join(l.root, "bin", "dpip"), append([]string{"-S", l.Env["DP_SOCKET"]}, args...)...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("dpip %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// Counters sums every worker's counters by name.
func (l *Lab) Counters() map[string]uint64 {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := l.api.ListWorkers(ctx, &pb.Empty{})
	if err != nil {
		l.t.Fatal(err)
	}
	m := map[string]uint64{}
	for _, w := range r.Workers {
		for _, c := range w.Counters {
			m[c.Name] += c.Value
		}
	}
	return m
}

// Link returns a dataplane link by name.
func (l *Lab) Link(name string) *pb.Link {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := l.api.ListLinks(ctx, &pb.ListLinksRequest{Name: name})
	if err != nil || len(r.Links) != 1 {
		l.t.Fatalf("link %s: %v", name, err)
	}
	return r.Links[0]
}

func drivers() []string { return []string{"afxdp", "afpacket"} }

var _ = fmt.Sprintf
