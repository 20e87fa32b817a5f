package announce

// BIRD announces prefixes as OSPF stub networks of a BIRD 2 daemon running
// beside the control plane: the OSPF areas of BIRD's config include File
// (OSPFv2, IPv4) and File6 (OSPFv3, IPv6); Set rewrites them (atomically,
// only when they change) and runs `birdc -s SOCKET configure`. A stub
// network in each node's router LSA is what gives the routers one route with
// a next hop per node (ECMP); the same prefix exported as an AS-external
// route from several nodes gives one next hop only. Backup routes (a peer's
// local addresses) get BackupCost instead of Cost, so that the routers
// prefer the owner's stub network and fall back to this one when the
// owner's router LSA is gone. docs/bird-gvs.conf is a sample config.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/gvs-lb/gvs/ctrlplane/config"
)

// BIRD is the OSPF speaker.
type BIRD struct {
	c config.BIRDConf

	mu      sync.Mutex
	written map[string][]byte // file → content BIRD was last reconfigured with
}

// NewBIRD returns a speaker for c. Nothing is written until Set.
func NewBIRD(c config.BIRDConf) *BIRD {
	return &BIRD{c: c, written: map[string][]byte{}}
}

// Protocol is "ospf".
func (b *BIRD) Protocol() string { return "ospf" }

// Render returns the include files' contents for rs: IPv4 stubnets for
// File, IPv6 for File6, backup routes with BackupCost.
func (b *BIRD) Render(rs []Route) (v4, v6 []byte) {
	var w4, w6 bytes.Buffer
	for _, w := range []*bytes.Buffer{&w4, &w6} {
		w.WriteString("# written by gvs-controlplane: the prefixes this node announces (docs/cluster.md)\n")
	}
	for _, r := range rs {
		w := &w4
		if r.Prefix.Addr().Is6() {
			w = &w6
		}
		cost, note := b.c.Cost, ""
		if r.Backup {
			cost, note = b.c.BackupCost, " # backup: a peer's local address"
		}
		fmt.Fprintf(w, "stubnet %s { cost %d; };%s\n", r.Prefix, cost, note)
	}
	return w4.Bytes(), w6.Bytes()
}

// Set makes BIRD announce exactly rs. A prefix whose family has no file is
// refused.
func (b *BIRD) Set(ctx context.Context, rs []Route) error {
	for _, r := range rs {
		p := r.Prefix
		if (p.Addr().Is4() && b.c.File == "") || (p.Addr().Is6() && b.c.File6 == "") {
			return fmt.Errorf("bird: cannot announce %s: announce.bird.%s is not set", p, map[bool]string{true: "file", false: "file6"}[p.Addr().Is4()])
		}
	}
	v4, v6 := b.Render(rs)
	b.mu.Lock()
	defer b.mu.Unlock()
	changed := false
	for _, f := range []struct {
		path string
		data []byte
	}{{b.c.File, v4}, {b.c.File6, v6}} {
		if f.path == "" {
			continue
		}
		if old, ok := b.written[f.path]; ok && bytes.Equal(old, f.data) {
			continue
		}
		if err := writeAtomic(f.path, f.data); err != nil {
			return fmt.Errorf("bird: %w", err)
		}
		delete(b.written, f.path) // until BIRD has read it
		changed = true
	}
	if !changed {
		return nil
	}
	if err := b.configure(ctx); err != nil {
		return err
	}
	if b.c.File != "" {
		b.written[b.c.File] = v4
	}
	if b.c.File6 != "" {
		b.written[b.c.File6] = v6
	}
	return nil
}

// configure makes BIRD re-read its configuration.
func (b *BIRD) configure(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, b.c.Birdc, "-s", b.c.Socket, "configure").CombinedOutput()
	msg := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "BIRD"))
	if err != nil {
		return fmt.Errorf("bird: %s -s %s configure: %w: %s (is BIRD running, and does its config include %s?)",
			b.c.Birdc, b.c.Socket, err, msg, b.files())
	}
	if !strings.Contains(string(out), "Reconfigur") {
		return fmt.Errorf("bird: %s -s %s configure answered %q", b.c.Birdc, b.c.Socket, msg)
	}
	return nil
}

func (b *BIRD) files() string {
	return strings.TrimSpace(b.c.File + " " + b.c.File6)
}

// Close withdraws everything unless keep_on_exit is set.
func (b *BIRD) Close(ctx context.Context) error {
	if b.c.KeepOnExit {
		return nil
	}
	return b.Set(ctx, nil)
}

// Peers is empty: BIRD reports its neighbours itself (birdc show ospf neighbors).
func (b *BIRD) Peers() []Peer { return nil }

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
