package config

import (
	"strings"
	"testing"
)

// FuzzParse: no file, however broken, makes Parse panic; a file Parse
// accepts yields services that name themselves, and parses again to the
// same model.
func FuzzParse(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte("virtual_servers: [{vip: 10.1.0.100, port: 80, local_addresses: [{ip: 10.2.0.100}], real_servers: [{ip: 10.2.0.11, port: 80}]}]"))
	f.Add([]byte("dataplane: {poll_interval: 0.5}\nglobal_defs: {timeouts: {tcp: 900}}\n"))
	f.Add([]byte("virtual_servers:\n  - {vip: 10.1.0.100, port: 80, lb_algo: mh, sched_flags: [mh-port], mid_flow: true}\n"))
	f.Add([]byte("virtual_servers:\n  - {protocol: UDP, vip: 10.1.0.100, port: 0, ops: true, persistence_timeout: 300, persistence_granularity: 255.255.255.0, local_addresses: [{ip: 10.2.0.100}], real_servers: [{ip: 10.2.0.11, port: 0, UDP_CHECK: {connect_port: 53}}]}\n"))
	f.Add([]byte("virtual_servers: [{vip: 10.1.0.100, port: 80, lb_kind: DR, real_servers: [{ip: 10.2.0.11, port: 80}], sorry_server: {ip: 10.2.0.9, port: 80}}]"))
	f.Add([]byte("virtual_servers: [{vip: 10.1.0.100, port: 80, deny_list: [192.0.2.7, 10.0.0.0/8], allow_list: [0.0.0.0/0], conn_rate_limit: 100, per_source_limit: 5, synproxy: true, local_addresses: [{ip: 10.2.0.100}]}]"))
	f.Add([]byte(""))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		for _, s := range c.Services {
			if s.Name == "" || s.Sched == "" {
				t.Fatalf("service %v without a name or scheduler", s.Key)
			}
		}
		again, err := Parse(b)
		if err != nil || len(again.Services) != len(c.Services) {
			t.Fatalf("the same file parsed differently: %v", err)
		}
	})
}
