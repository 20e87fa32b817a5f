//go:build !linux

package afxdp

import (
	"fmt"

	"github.com/gvs-lb/gvs/dataplane/port"
)

// Port exists so that code naming the driver builds on every platform; Open
// always fails outside Linux.
type Port struct{ port.Port }

// Open fails: AF_XDP exists only on Linux.
func Open(cfg port.Config) (*Port, error) {
	return nil, fmt.Errorf("afxdp: open %s: AF_XDP needs Linux: %w", cfg.Name, port.ErrNotSupported)
}

// SharedUMEM is false outside Linux.
func (p *Port) SharedUMEM() bool { return false }

// Mode is "" outside Linux.
func (p *Port) Mode() string { return "" }

// AttachMode is "" outside Linux.
func (p *Port) AttachMode() string { return "" }

// Offload is never active outside Linux.
func (p *Port) Offload() (bool, string) { return false, "AF_XDP needs Linux" }
