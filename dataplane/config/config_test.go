package config

import (
	"strings"
	"testing"
	"time"
)

const good = `
api: {socket: /tmp/gvs.sock}
workers: {count: 2, cores: [0, 1], idle: adaptive}
ports:
  - {name: dp0, driver: afxdp, device: veth0}
  - {name: dp1, driver: afpacket, kni: {enabled: false}}
vlans:
  - {name: dp0.100, port: dp0, id: 100}
addresses:
  - {addr: 10.1.0.1/24, dev: dp0}
  - {addr: "fd00:1::1/64", dev: dp0.100}
routes:
  - {dst: 0.0.0.0/0, via: 10.1.0.254}
neighbours:
  - {addr: 10.1.0.254, lladdr: "02:00:00:00:00:01", dev: dp0}
forwarding: {ipv4: true}
`

func TestParseGood(t *testing.T) {
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Ports[0].Queues != 2 || c.Ports[1].Device != "dp1" || c.Ports[0].KNI.Name != "dp0.kni" || !c.Ports[0].KNI.On() || c.Ports[1].KNI.On() {
		t.Errorf("defaults not applied: %+v", c.Ports)
	}
	if time.Duration(c.Workers.DrainInterval) != 100*time.Microsecond || c.Workers.Burst != DefaultBurst {
		t.Errorf("worker defaults: %+v", c.Workers)
	}
	if c.Neighbour.MaxEntries != 4096 {
		t.Errorf("neighbour.max_entries default %d, want 4096", c.Neighbour.MaxEntries)
	}
	if c.IPVS.UOAMode != "ipo" {
		t.Errorf("ipvs.uoa_mode default %q, want ipo", c.IPVS.UOAMode)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"empty", ``, "at least one port"},
		{"unknown key", "ports: [{name: dp0, driver: mem}]\nworkrs: {count: 1}", "field workrs not found"},
		{"bad driver", "ports: [{name: dp0, driver: foo}]", `ports[0] (dp0).driver: "foo" is not a driver`},
		{"queues", "workers: {count: 2}\nports: [{name: dp0, driver: mem, queues: 1}]", "1 queues for 2 workers"},
		{"cores", "workers: {count: 2, cores: [1]}\nports: [{name: dp0, driver: mem}]", "workers.cores: 1 cores for 2 workers"},
		{"idle", "workers: {idle: lazy}\nports: [{name: dp0, driver: mem}]", `workers.idle: "lazy" is not an idle mode`},
		{"umem", "workers: {umem: pooled}\nports: [{name: dp0, driver: afxdp}]", `workers.umem: "pooled": use shared (one UMEM per queue for the afxdp ports) or per-port`},
		{"addr", "ports: [{name: dp0, driver: mem}]\naddresses: [{addr: 10.0.0.1, dev: dp0}]", "addresses[0].addr"},
		{"addr dev", "ports: [{name: dp0, driver: mem}]\naddresses: [{addr: 10.0.0.1/24, dev: dp9}]", `addresses[0].dev: "dp9" is not a configured`},
		{"route", "ports: [{name: dp0, driver: mem}]\nroutes: [{dst: 10.0.0.0/8}]", "routes[0]: give via"},
		{"ring", "ports: [{name: dp0, driver: afxdp, rx_ring: 1000}]", "rx_ring: 1000: use a power of two"},
		{"xdp opts on afpacket", "ports: [{name: dp0, driver: afpacket, xdp_mode: native}]", "apply to the afxdp driver only"},
		{"duration", "ports: [{name: dp0, driver: mem}]\nneighbour: {reachable: soon}", "is not a duration"},
		{"neigh bound", "ports: [{name: dp0, driver: mem}]\nneighbour: {max_entries: 8}", "neighbour.max_entries: 8: use 16-1048576"},
		{"vlan", "ports: [{name: dp0, driver: mem}]\nvlans: [{name: v, port: dp0, id: 5000}]", "vlans[0] (v).id: 5000"},
		{"kni name", "ports: [{name: dp0, driver: mem, kni: {name: averyveryverylongname}}]", "longer than 15 bytes"},
		{"neigh mac", "ports: [{name: dp0, driver: mem}]\nneighbours: [{addr: 10.0.0.1, lladdr: zz, dev: dp0}]", "is not a MAC"},
		{"synproxy mss", "ports: [{name: dp0, driver: mem}]\nipvs: {synproxy: {mss: 100}}", "ipvs.synproxy: mss 100: use 536-65535"},
		{"synproxy wscale", "ports: [{name: dp0, driver: mem}]\nipvs: {synproxy: {wscale: 15}}", "wscale 15: use -1-14"},
		{"synproxy storm", "ports: [{name: dp0, driver: mem}]\nipvs: {synproxy: {ack_storm_threshold: 0}}", "ack_storm_threshold 0: use 1-15"},
		{"synproxy period", "ports: [{name: dp0, driver: mem}]\nipvs: {synproxy: {secret_period: 10ms}}", "secret_period 10ms: use at least 1s"},
		{"synproxy key", "ports: [{name: dp0, driver: mem}]\nipvs: {synproxy: {msss: 1400}}", "field msss not found"},
		{"uoa mode", "ports: [{name: dp0, driver: mem}]\nipvs: {uoa_mode: ipv6}", `ipvs.uoa_mode: "ipv6": use ipo (an IPv4 option, IPv4 clients and servers only) or opp`},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

func TestParseMAC(t *testing.T) {
	m, err := ParseMAC("02:AB:cd:00:01:ff")
	if err != nil || m != [6]byte{2, 0xab, 0xcd, 0, 1, 0xff} {
		t.Errorf("ParseMAC = %x, %v", m, err)
	}
	for _, s := range []string{"", "02:ab:cd:00:01", "02:ab:cd:00:01:fg", "2:ab:cd:00:01:ff"} {
		if _, err := ParseMAC(s); err == nil {
			t.Errorf("ParseMAC(%q) accepted", s)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("ports: [{name: dp0, driver: mem}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err == nil && len(c.Ports) == 0 {
			t.Fatal("accepted a config without ports")
		}
	})
}

// TestRTPriorityDefault: adaptive workers default to SCHED_FIFO 50, busy
// ones to normal scheduling; an explicit value (0 included) is kept.
func TestRTPriorityDefault(t *testing.T) {
	for _, c := range []struct {
		workers string
		want    int
	}{
		{"{count: 1}", DefaultRTPriority},
		{"{count: 1, idle: adaptive}", DefaultRTPriority},
		{"{count: 1, idle: busy}", 0},
		{"{count: 1, idle: adaptive, rt_priority: 0}", 0},
		{"{count: 1, idle: busy, rt_priority: 20}", 20},
	} {
		cfg, err := Parse([]byte(strings.Replace(good, "{count: 2, cores: [0, 1], idle: adaptive}", c.workers, 1)))
		if err != nil {
			t.Fatalf("%s: %v", c.workers, err)
		}
		if got := cfg.Workers.Priority(); got != c.want {
			t.Errorf("workers %s: priority %d, want %d", c.workers, got, c.want)
		}
	}
	if _, err := Parse([]byte(strings.Replace(good, "{count: 2, cores: [0, 1], idle: adaptive}", "{count: 1, rt_priority: 120}", 1))); err == nil ||
		!strings.Contains(err.Error(), "workers.rt_priority") {
		t.Errorf("rt_priority 120: %v", err)
	}
}

// TestSynProxyConfig: the ipvs.synproxy section over the defaults.
func TestSynProxyConfig(t *testing.T) {
	c, err := Parse([]byte("ports: [{name: dp0, driver: mem}]\nipvs: {synproxy: {mss: 1400, wscale: -1, sack: false, defer_rs_syn: true, held_segments: 0, secret_period: 30s}}"))
	if err != nil {
		t.Fatal(err)
	}
	sp, err := c.IPVS.SynProxy.Config()
	if err != nil {
		t.Fatal(err)
	}
	if sp.MSS != 1400 || sp.WScale != -1 || sp.SACK || !sp.Timestamps || !sp.DeferServerSYN || sp.Held != 0 ||
		sp.SecretPeriod != 30*time.Second || sp.TTL != 63 || sp.MaxRetries != 3 {
		t.Errorf("synproxy config %+v", sp)
	}
}
