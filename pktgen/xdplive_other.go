//go:build !linux

package pktgen

import (
	"fmt"

	"github.com/gvs-lb/gvs/header"
)

// startLive needs BPF_PROG_RUN with live frames: Linux only.
func (r *runner) startLive(header.MAC) error {
	return fmt.Errorf("%s generator: needs Linux >= 5.18", GenXDPLive)
}
