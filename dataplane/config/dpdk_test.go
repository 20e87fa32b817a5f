package config

import (
	"slices"
	"strings"
	"testing"
)

func TestDPDKDriver(t *testing.T) {
	_, err := Parse([]byte("ports: [{name: dp0, driver: dpdk, device: net_ring0}]\ndpdk: {no_huge: true, vdevs: [net_ring0]}"))
	if DPDKBuilt {
		if err != nil {
			t.Fatalf("dpdk build refused a dpdk port: %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), "ports[0] (dp0).driver: dpdk needs a build with the dpdk driver: make dpdk") {
		t.Fatalf("default build: err = %v, want the refusal saying how to build dpdk", err)
	}
}

func TestDPDKSectionErrors(t *testing.T) {
	cases := []struct{ name, dpdk, want string }{
		{"lcores", "{lcores: all}", `dpdk.lcores: "all" is not an lcore list`},
		{"channels", "{memory_channels: 40}", "dpdk.memory_channels: 40: use 1-32"},
		{"memory", "{memory_mb: -1}", "dpdk.memory_mb: -1"},
		{"pci", "{pci_allow: [eth0]}", `dpdk.pci_allow[0]: "eth0" is not a PCI address`},
		{"no_pci", "{no_pci: true, pci_allow: ['0000:3b:00.0']}", "dpdk.no_pci: no_pci skips the PCI bus"},
		{"vdev", "{vdevs: [ring0]}", `dpdk.vdevs[0]: "ring0" is not a vdev`},
		{"log", "{log_level: loud}", `dpdk.log_level: "loud": use emerg`},
		{"log number", "{log_level: '9'}", `dpdk.log_level: "9"`},
		{"prefix", "{file_prefix: a/b}", `dpdk.file_prefix: "a/b"`},
		{"in_memory no_huge", "{in_memory: true, no_huge: true}", "dpdk.in_memory: the EAL refuses --in-memory with --no-huge"},
		{"extra", "{extra_args: ['']}", "dpdk.extra_args[0]: empty argument"},
	}
	for _, c := range cases {
		_, err := Parse([]byte("ports: [{name: dp0, driver: mem}]\ndpdk: " + c.dpdk))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

func TestDPDKEALArgs(t *testing.T) {
	c, err := Parse([]byte(`ports: [{name: dp0, driver: mem}]
dpdk:
  lcores: "2"
  memory_channels: 4
  memory_mb: 512
  in_memory: true
  no_shconf: true
  pci_allow: ["0000:3b:00.0", "0000:3b:00.1"]
  vdevs: ["net_af_packet0,iface=eth1"]
  log_level: debug
  file_prefix: gvs1
  extra_args: ["--iova-mode=va"]
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"gvs-dataplane", "-l", "2", "-n", "4", "-m", "512", "--in-memory", "--no-shconf",
		"-a", "0000:3b:00.0", "-a", "0000:3b:00.1", "--vdev=net_af_packet0,iface=eth1", "--log-level=debug",
		"--file-prefix=gvs1", "--iova-mode=va"}
	if got := c.DPDK.EALArgs(); !slices.Equal(got, want) {
		t.Errorf("EALArgs\n got %q\nwant %q", got, want)
	}
	if got := (DPDK{}).EALArgs(); !slices.Equal(got, []string{"gvs-dataplane", "-l", "0", "--log-level=notice"}) {
		t.Errorf("default EALArgs %q", got)
	}
}
