package config

// The announce section: which routing protocols carry this node's VIPs and
// local addresses to the routers (docs/cluster.md). OSPF goes through a BIRD
// 2 daemon beside the control plane (gvs-controlplane writes a file of
// stubnet lines that BIRD includes, then reloads it); BGP is spoken by an
// embedded GoBGP speaker. Either, both or none may be configured.

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"
)

// Announce is the announce section.
type Announce struct {
	// Require is when a VIP with several services is announced: "all"
	// (default: every service on it can serve) or "any" (one can).
	Require string `yaml:"require"`
	// LocalAddresses also announces the services' FullNAT local addresses
	// while the dataplane is up (draining keeps them: replies of existing
	// connections come back to them).
	LocalAddresses bool `yaml:"local_addresses"`
	// Interval is how often the conditions are re-evaluated besides the
	// events that trigger it (default 1s).
	Interval Duration `yaml:"interval"`
	// Drained starts the node drained (nothing announced until undrain).
	Drained bool      `yaml:"drained"`
	BIRD    *BIRDConf `yaml:"bird"`
	BGP     *BGPConf  `yaml:"bgp"`
}

// BIRDConf drives a BIRD 2 daemon: the OSPF area of its config includes File
// (IPv4 stubnets) and File6 (IPv6, an OSPFv3 area).
type BIRDConf struct {
	Socket string `yaml:"socket"` // birdc -s; default /run/bird/bird.ctl
	Birdc  string `yaml:"birdc"`  // default birdc (from PATH)
	File   string `yaml:"file"`   // IPv4 prefixes
	File6  string `yaml:"file6"`  // IPv6 prefixes
	// Cost of the stub networks (default 10).
	Cost int `yaml:"cost"`
	// BackupCost is the cost of the backup local addresses' stub networks
	// (peers' local addresses held in case they die; default cost + 100).
	// It must be above cost, so that the routers send a local address's
	// traffic to its owner while the owner announces it.
	BackupCost int `yaml:"backup_cost"`
	// KeepOnExit leaves the prefixes in BIRD when gvs-controlplane stops
	// (a control-plane restart then does not move traffic). Default false:
	// stopping withdraws them.
	KeepOnExit bool `yaml:"keep_on_exit"`
}

// BGPConf is the embedded BGP speaker.
type BGPConf struct {
	LocalAS  uint32 `yaml:"local_as"`
	RouterID string `yaml:"router_id"`
	// ListenPort: 0 (default) only connects out; else the port to accept
	// sessions on.
	ListenPort int `yaml:"listen_port"`
	// NextHop (IPv4) and NextHop6: the KNI addresses traffic must arrive at.
	// NextHop defaults to router_id.
	NextHop   string        `yaml:"next_hop"`
	NextHop6  string        `yaml:"next_hop6"`
	Neighbors []BGPNeighbor `yaml:"neighbors"`
	// Backup local addresses (peers' local addresses held in case they
	// die) are announced with a worse path than the owner's:
	// BackupPrepend more copies of local_as in the AS path (default 3; 0
	// with iBGP neighbours, which would drop a path holding their own AS)
	// and a MULTI_EXIT_DISC of BackupMED (default 100; own addresses carry
	// none, which routers read as 0).
	BackupPrepend *int    `yaml:"backup_prepend"`
	BackupMED     *uint32 `yaml:"backup_med"`
}

// BGPNeighbor is a BGP peer.
type BGPNeighbor struct {
	Address string `yaml:"address"`
	PeerAS  uint32 `yaml:"peer_as"`
	// HoldTime in seconds (default 90; keepalives every third of it).
	HoldTime Duration `yaml:"hold_time"`
	// LocalAddress is the source of the session (default: the kernel's).
	LocalAddress string `yaml:"local_address"`
	Password     string `yaml:"password"`
	// Port is the neighbor's BGP port (default 179).
	Port int `yaml:"port"`
}

// Resolved announce settings, defaults applied.
const (
	DefaultBIRDSocket = "/run/bird/bird.ctl"
	DefaultBGPHold    = 90 * time.Second
	// backup local addresses: stubnet cost above announce.bird.cost,
	// AS-path prepends and MED
	DefaultBackupCostAbove  = 100
	DefaultBGPBackupPrepend = 3
	DefaultBGPBackupMED     = 100
)

// Enabled reports whether any protocol is configured.
func (a *Announce) Enabled() bool { return a.BIRD != nil || a.BGP != nil }

func (a *Announce) defaults() {
	if a.Require == "" {
		a.Require = "all"
	}
	if a.Interval == 0 {
		a.Interval = Seconds(1)
	}
	if b := a.BIRD; b != nil {
		if b.Socket == "" {
			b.Socket = DefaultBIRDSocket
		}
		if b.Birdc == "" {
			b.Birdc = "birdc"
		}
		if b.Cost == 0 {
			b.Cost = 10
		}
		if b.BackupCost == 0 {
			b.BackupCost = b.Cost + DefaultBackupCostAbove
		}
	}
	if g := a.BGP; g != nil {
		if g.NextHop == "" {
			g.NextHop = g.RouterID
		}
		if g.BackupPrepend == nil {
			n := DefaultBGPBackupPrepend
			for _, nb := range g.Neighbors {
				if nb.PeerAS == g.LocalAS {
					n = 0 // iBGP: the peers would see their own AS
				}
			}
			g.BackupPrepend = &n
		}
		if g.BackupMED == nil {
			m := uint32(DefaultBGPBackupMED)
			g.BackupMED = &m
		}
		for i := range g.Neighbors {
			if g.Neighbors[i].HoldTime == 0 {
				g.Neighbors[i].HoldTime = Duration(DefaultBGPHold)
			}
		}
	}
}

// check validates the section; every error names its field.
func (a *Announce) check() error {
	var e errs
	a.validate(&e)
	return errors.Join(e...)
}

func (a *Announce) validate(e *errs) {
	switch a.Require {
	case "all", "any":
	default:
		e.add("announce.require", "%q: use all or any", a.Require)
	}
	if a.Interval < Duration(10*time.Millisecond) {
		e.add("announce.interval", "%s is too short: give at least 10ms", a.Interval.D())
	}
	if b := a.BIRD; b != nil {
		if b.File == "" && b.File6 == "" {
			e.add("announce.bird", "give file (and/or file6): the file BIRD's OSPF area includes")
		}
		for _, f := range []struct{ name, v string }{{"file", b.File}, {"file6", b.File6}} {
			if f.v != "" && !filepath.IsAbs(f.v) {
				e.add("announce.bird."+f.name, "%q: give an absolute path (BIRD's include reads it)", f.v)
			}
		}
		if b.File != "" && b.File == b.File6 {
			e.add("announce.bird.file6", "%q is also file: give IPv6 prefixes a file of their own", b.File6)
		}
		if b.Cost < 1 || b.Cost > 65535 {
			e.add("announce.bird.cost", "%d: give 1-65535", b.Cost)
		}
		if b.BackupCost < 1 || b.BackupCost > 65535 {
			e.add("announce.bird.backup_cost", "%d: give 1-65535, above cost (%d)", b.BackupCost, b.Cost)
		} else if b.BackupCost <= b.Cost {
			e.add("announce.bird.backup_cost", "%d is not above cost (%d): the routers would prefer a peer's local address here over its owner; give more than %d", b.BackupCost, b.Cost, b.Cost)
		}
	}
	if g := a.BGP; g != nil {
		if g.LocalAS == 0 {
			e.add("announce.bgp.local_as", "missing: give this node's AS number")
		}
		if id, err := netip.ParseAddr(g.RouterID); err != nil || !id.Is4() {
			e.add("announce.bgp.router_id", "%q: give an IPv4 address (usually the KNI address)", g.RouterID)
		}
		if g.ListenPort < 0 || g.ListenPort > 65535 {
			e.add("announce.bgp.listen_port", "%d: give 0 (do not listen) or a port", g.ListenPort)
		}
		if a, err := netip.ParseAddr(g.NextHop); err != nil || !a.Is4() {
			e.add("announce.bgp.next_hop", "%q: give this node's IPv4 KNI address", g.NextHop)
		}
		if g.NextHop6 != "" {
			if a, err := netip.ParseAddr(g.NextHop6); err != nil || !a.Is6() || a.Is4In6() {
				e.add("announce.bgp.next_hop6", "%q: give this node's IPv6 KNI address", g.NextHop6)
			}
		}
		if len(g.Neighbors) == 0 {
			e.add("announce.bgp.neighbors", "none: give at least one {address, peer_as}")
		}
		if p := g.BackupPrepend; p != nil {
			if *p < 0 || *p > 16 {
				e.add("announce.bgp.backup_prepend", "%d: give 0-16", *p)
			} else if *p > 0 {
				for i, n := range g.Neighbors {
					if n.PeerAS == g.LocalAS {
						e.add("announce.bgp.backup_prepend", "%d with the iBGP neighbor %d (%s, AS %d): it would drop paths holding its own AS; give 0 (backup_med still ranks them)", *p, i, n.Address, n.PeerAS)
						break
					}
				}
			}
		}
		seen := map[netip.Addr]bool{}
		for i, n := range g.Neighbors {
			where := fmt.Sprintf("announce.bgp.neighbors[%d]", i)
			addr, err := parseUnicast(n.Address)
			if err != nil {
				e.add(where+".address", "%q: %v", n.Address, err)
			} else if seen[addr] {
				e.add(where+".address", "%s is listed twice: merge the entries", addr)
			}
			seen[addr] = true
			if n.PeerAS == 0 {
				e.add(where+".peer_as", "missing: give the neighbor's AS number")
			}
			if h := n.HoldTime.D(); h != 0 && (h < 3*time.Second || h > 65535*time.Second || h%time.Second != 0) {
				e.add(where+".hold_time", "%s: give whole seconds, 3-65535 (BGP's rule)", h)
			}
			if n.Port < 0 || n.Port > 65535 {
				e.add(where+".port", "%d: give a port (default 179)", n.Port)
			}
			if n.LocalAddress != "" {
				if _, err := parseUnicast(n.LocalAddress); err != nil {
					e.add(where+".local_address", "%q: %v", n.LocalAddress, err)
				}
			}
		}
	}
}
