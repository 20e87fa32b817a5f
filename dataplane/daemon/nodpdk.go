//go:build !dpdk

package daemon

import (
	"fmt"

	"github.com/gvs-lb/gvs/dataplane/config"
	"github.com/gvs-lb/gvs/dataplane/port"
)

// startDPDK: this build has no dpdk driver (config validation refuses
// dpdk ports already).
func startDPDK(*config.Config) error { return nil }

func openDPDK(pc port.Config) (port.Port, error) {
	return nil, fmt.Errorf("port %s: driver dpdk needs a build with the dpdk driver: make dpdk (needs libdpdk-dev): %w", pc.Name, port.ErrNotSupported)
}
