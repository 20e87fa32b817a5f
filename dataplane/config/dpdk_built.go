//go:build dpdk

package config

// DPDKBuilt reports whether this build has the dpdk port driver.
const DPDKBuilt = true
