package config

// The sync section: session sync between the load-balancer nodes
// (docs/sync.md). Absent (no interface): sync is off.

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
)

// Sync is the sync section.
type Sync struct {
	// Interface carries the multicast (the KNI interface towards the other
	// nodes). Empty: sync is off.
	Interface string `yaml:"interface"`
	// Group and Port: the IPv4 multicast group (default 224.0.0.81, port
	// 8848, as LVS).
	Group string `yaml:"group"`
	Port  int    `yaml:"port"`
	// KeyFile holds the cluster's shared HMAC-SHA256 key (at least 16
	// bytes; surrounding whitespace is ignored). Every node needs the same.
	KeyFile string `yaml:"key_file"`
	// NodeID is this node's id, unique in the cluster, from 1.
	NodeID uint32 `yaml:"node_id"`
	// Threshold and Period: a connection is sent when it has seen
	// Threshold client packets while established, then every Period client
	// packets (LVS sync_threshold; defaults 3 and 50; period 0: never).
	Threshold *int `yaml:"threshold"`
	Period    *int `yaml:"period"`
	// UDP also syncs UDP connections (default false).
	UDP bool `yaml:"udp"`
	// MaxConns bounds the synced table (default 1,048,576 connections).
	MaxConns int `yaml:"max_conns"`
	// BulkWait: a joining node is ready (announces) once a peer sent its
	// table, or after this long without an answer (default 3s).
	BulkWait Duration `yaml:"bulk_wait"`
	// BulkRate paces bulk answers, in datagrams per second (default 2000).
	BulkRate int `yaml:"bulk_rate"`
	// MaxSkew is the clock difference accepted between nodes (default 30s).
	MaxSkew Duration `yaml:"max_skew"`
}

// Enabled reports whether sync is configured.
func (s *Sync) Enabled() bool { return s.Interface != "" }

// GroupAddrPort returns the group and port, defaults applied.
func (s *Sync) GroupAddrPort() netip.AddrPort {
	a, _ := netip.ParseAddr(s.Group)
	return netip.AddrPortFrom(a, uint16(s.Port))
}

func (s *Sync) defaults() {
	if s.Group == "" {
		s.Group = "224.0.0.81"
	}
	if s.Port == 0 {
		s.Port = 8848
	}
	if s.Threshold == nil {
		v := 3
		s.Threshold = &v
	}
	if s.Period == nil {
		v := 50
		s.Period = &v
	}
	if s.MaxConns == 0 {
		s.MaxConns = 1 << 20
	}
	if s.BulkWait == 0 {
		s.BulkWait = Seconds(3)
	}
	if s.BulkRate == 0 {
		s.BulkRate = 2000
	}
	if s.MaxSkew == 0 {
		s.MaxSkew = Seconds(30)
	}
}

func (s *Sync) check() error {
	if !s.Enabled() {
		return nil
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("sync: "+format, a...)) }
	if a, err := netip.ParseAddr(s.Group); err != nil || !a.Is4() || !a.IsMulticast() {
		bad("group %q: give an IPv4 multicast address (default 224.0.0.81)", s.Group)
	}
	if s.Port < 1 || s.Port > 65535 {
		bad("port %d: give 1 to 65535 (default 8848)", s.Port)
	}
	if s.NodeID == 0 {
		bad("node_id missing: give every node its own id from 1")
	}
	if s.KeyFile == "" {
		bad("key_file missing: a file with the cluster's shared key (at least 16 bytes)")
	} else if _, err := s.Key(); err != nil {
		errs = append(errs, err)
	}
	if t := *s.Threshold; t < 1 || t > 200 {
		bad("threshold %d: give 1 to 200 client packets (default 3)", t)
	}
	if p := *s.Period; p < 0 || *s.Threshold+p > 255 {
		bad("period %d: give 0 (never) or a number with threshold + period below 256 (default 50)", p)
	}
	if s.MaxConns < 1 {
		bad("max_conns %d: give a positive bound", s.MaxConns)
	}
	if s.BulkRate < 1 {
		bad("bulk_rate %d: give datagrams per second, at least 1", s.BulkRate)
	}
	return errors.Join(errs...)
}

// Key reads the shared key from KeyFile.
func (s *Sync) Key() ([]byte, error) {
	b, err := os.ReadFile(s.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("sync: key_file: %w", err)
	}
	k := bytes.TrimSpace(b)
	if len(k) < 16 {
		return nil, fmt.Errorf("sync: key_file %s holds %d bytes: give at least 16 (e.g. head -c 32 /dev/urandom | base64 > %s)", s.KeyFile, len(k), s.KeyFile)
	}
	return k, nil
}
