//go:build dpdk

package daemon

import (
	"github.com/gvs-lb/gvs/dataplane/config"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/dpdk"
)

// startDPDK starts the EAL when a port uses the dpdk driver.
func startDPDK(c *config.Config) error {
	for _, p := range c.Ports {
		if p.Driver == "dpdk" {
			return dpdk.Init(c.DPDK.EALArgs())
		}
	}
	return nil
}

func openDPDK(pc port.Config) (port.Port, error) { return dpdk.Open(pc) }
