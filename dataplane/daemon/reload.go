package daemon

// Reload: gvs-dataplane re-reads its file (SIGHUP) and applies the
// difference from the file it runs with — VLANs, addresses, static routes
// and neighbours as one all-or-nothing change, then the timeouts — without
// touching anything else: traffic, connections and what was added at run
// time with dpip or ipvsadm stay. What cannot change while the ports are
// open (ports, drivers, workers, table sizes, the API socket, …) is refused
// with the settings named; a refused or invalid file changes nothing.

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/config"
	"github.com/gvs-lb/gvs/header"
)

// Diff returns the interface-model changes that turn old into new (old
// may be an empty Config: start-up).
func Diff(old, new *config.Config) dataplane.Reconfig {
	var rc dataplane.Reconfig
	for _, r := range minus(old.Routes, new.Routes) {
		rc.DelRoutes = append(rc.DelRoutes, routeSpec(r))
	}
	for _, a := range minus(old.Addresses, new.Addresses) {
		rc.DelAddrs = append(rc.DelAddrs, dataplane.Addr{Prefix: netip.MustParsePrefix(a.Addr), Iface: a.Dev})
	}
	for _, v := range minus(old.VLANs, new.VLANs) {
		rc.DelVLANs = append(rc.DelVLANs, v.Name)
	}
	for _, n := range minus(old.Neighbours, new.Neighbours) {
		rc.DelNeighs = append(rc.DelNeighs, netip.MustParseAddr(n.Addr))
	}
	for _, v := range minus(new.VLANs, old.VLANs) {
		rc.AddVLANs = append(rc.AddVLANs, dataplane.VLANSpec{Name: v.Name, Port: v.Port, VID: v.ID})
	}
	for _, a := range minus(new.Addresses, old.Addresses) {
		rc.AddAddrs = append(rc.AddAddrs, dataplane.Addr{Prefix: netip.MustParsePrefix(a.Addr), Iface: a.Dev})
	}
	for _, r := range minus(new.Routes, old.Routes) {
		rc.AddRoutes = append(rc.AddRoutes, routeSpec(r))
	}
	for _, n := range minus(new.Neighbours, old.Neighbours) {
		mac, _ := config.ParseMAC(n.LLAddr)
		rc.AddNeighs = append(rc.AddNeighs, dataplane.NeighSpec{Addr: netip.MustParseAddr(n.Addr), MAC: header.MAC(mac), Iface: n.Dev})
	}
	return rc
}

// minus returns the elements of a that b does not have (whole-value
// comparison: a changed entry is removed and added again).
func minus[T any](a, b []T) []T {
	var out []T
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y T) bool { return reflect.DeepEqual(x, y) }) {
			out = append(out, x)
		}
	}
	return out
}

func routeSpec(r config.Route) dataplane.RouteSpec {
	rs := dataplane.RouteSpec{Dst: netip.MustParsePrefix(r.Dst), Iface: r.Dev, Metric: r.Metric}
	if r.Via != "" {
		rs.Gateway = netip.MustParseAddr(r.Via)
	}
	if r.Src != "" {
		rs.Src = netip.MustParseAddr(r.Src)
	}
	for _, nh := range r.NextHops {
		n := dataplane.NextHopSpec{Iface: nh.Dev, Weight: nh.Weight}
		if nh.Via != "" {
			n.Gateway = netip.MustParseAddr(nh.Via)
		}
		rs.NextHops = append(rs.NextHops, n)
	}
	return rs
}

// Apply configures VLANs, addresses, routes and static neighbours: the
// start-up case of Reload, all or nothing.
func Apply(dp *dataplane.Dataplane, c *config.Config) error {
	return dp.Reconfigure(Diff(&config.Config{}, c))
}

// needsRestart names the settings that differ between old and new and
// cannot change while the dataplane runs.
func needsRestart(old, new *config.Config) []string {
	var out []string
	check := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, name)
		}
	}
	check("api", old.API, new.API)
	check("log", old.Log, new.Log)
	check("workers", old.Workers, new.Workers)
	check("ports", old.Ports, new.Ports)
	check("forwarding", old.Forwarding, new.Forwarding)
	check("neighbour", old.Neighbour, new.Neighbour)
	check("capture", old.Capture, new.Capture)
	oi, ni := old.IPVS, new.IPVS
	oi.Timeouts, ni.Timeouts = nil, nil // applied at run time
	check("ipvs (other than timeouts)", oi, ni)
	return out
}

// RestartError refuses a reload whose file changes settings that only a
// restart of gvs-dataplane applies.
type RestartError struct{ Fields []string }

func (e *RestartError) Error() string {
	return fmt.Sprintf("reload refused: %s changed: these need a restart of gvs-dataplane (the running configuration is unchanged)",
		strings.Join(e.Fields, ", "))
}

// NeedsRestart names the settings (the API reports the refusal as a
// failed precondition by it).
func (e *RestartError) NeedsRestart() []string { return e.Fields }

// Reload applies c, the file re-read, as the difference from the one the
// dataplane runs with. On error nothing changed.
func (d *Daemon) Reload(c *config.Config) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	_, err := d.reload(c, false)
	return err
}

// reload is Reload with d.reloadMu held; with check it only validates c
// and lists the changes it would make.
func (d *Daemon) reload(c *config.Config, check bool) ([]string, error) {
	changes, err := d.plan(c, check)
	if err != nil || check {
		return changes, err
	}
	return changes, d.apply(c)
}

// plan validates c against the running file and names its changes.
func (d *Daemon) plan(c *config.Config, check bool) ([]string, error) {
	if d.cfg == nil {
		return nil, fmt.Errorf("reload: the dataplane was not started from a file")
	}
	if fields := needsRestart(d.cfg, c); len(fields) > 0 {
		return nil, &RestartError{Fields: fields}
	}
	to := c.IPVS.SessionTimeouts()
	if err := to.Validate(); err != nil {
		return nil, fmt.Errorf("reload refused: ipvs.timeouts: %w", err)
	}
	if check {
		// the file alone must build a valid model (off-link gateways,
		// duplicates…); clashes with what was added at run time show
		// only when it is applied, which is all or nothing
		if err := checkModel(c); err != nil {
			return nil, fmt.Errorf("reload refused: %w (the running configuration is unchanged)", err)
		}
	}
	changes := describe(Diff(d.cfg, c))
	if !reflect.DeepEqual(d.cfg.IPVS.Timeouts, c.IPVS.Timeouts) {
		changes = append(changes, "ipvs timeouts")
	}
	return changes, nil
}

// apply commits c; plan has accepted it.
func (d *Daemon) apply(c *config.Config) error {
	rc := Diff(d.cfg, c)
	if err := d.DP.Reconfigure(rc); err != nil {
		return fmt.Errorf("reload refused: %w (the running configuration is unchanged)", err)
	}
	if !reflect.DeepEqual(d.cfg.IPVS.Timeouts, c.IPVS.Timeouts) {
		// every state back to the file's value, or the default
		full := c.IPVS.SessionTimeouts().WithDefaults()
		if err := d.DP.UpdateTimeouts(full); err != nil {
			d.cfg.VLANs, d.cfg.Addresses, d.cfg.Routes, d.cfg.Neighbours = c.VLANs, c.Addresses, c.Routes, c.Neighbours
			return fmt.Errorf("reload: interfaces applied, timeouts not: %w", err)
		}
	}
	d.cfg = c
	d.Log.Info("reloaded", zap.Bool("interfaces_changed", !rc.Empty()))
	return nil
}

// SetConfigPath records the file the daemon was started with: a reload
// without a path (SIGHUP, dpip reload) re-reads it.
func (d *Daemon) SetConfigPath(path string) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.path = path
}

// ReloadFile reads path (empty: the file the daemon was started with) and
// applies it as Reload does, or with check only validates it; it returns
// the file read and the changes. SIGHUP and the API's Reload both come
// here, one at a time. A path given is applied once: the next reload
// without one re-reads the start-up file, diffing against what runs.
func (d *Daemon) ReloadFile(path string, check bool) (string, []string, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if path == "" {
		path = d.path
	}
	if path == "" {
		return "", nil, fmt.Errorf("reload: gvs-dataplane was not started from a file: give the path of one")
	}
	c, err := config.Load(path)
	if err != nil {
		return path, nil, fmt.Errorf("reload refused: %s: %w (the running configuration is unchanged)", path, err)
	}
	changes, err := d.reload(c, check)
	return path, changes, err
}

// describe names rc's changes in dpip's words, in the order they apply.
func describe(rc dataplane.Reconfig) []string {
	var out []string
	route := func(op string, r dataplane.RouteSpec) string {
		s := "route " + op + " " + r.Dst.String()
		if r.Gateway.IsValid() {
			s += " via " + r.Gateway.String()
		}
		if r.Iface != "" {
			s += " dev " + r.Iface
		}
		for _, nh := range r.NextHops {
			s += " nexthop via " + nh.Gateway.String() + " dev " + nh.Iface
		}
		return s
	}
	for _, r := range rc.DelRoutes {
		out = append(out, route("del", r))
	}
	for _, a := range rc.DelAddrs {
		out = append(out, fmt.Sprintf("addr del %s dev %s", a.Prefix, a.Iface))
	}
	for _, v := range rc.DelVLANs {
		out = append(out, "vlan del "+v)
	}
	for _, n := range rc.DelNeighs {
		out = append(out, "neigh del "+n.String())
	}
	for _, v := range rc.AddVLANs {
		out = append(out, fmt.Sprintf("vlan add %s link %s id %d", v.Name, v.Port, v.VID))
	}
	for _, a := range rc.AddAddrs {
		out = append(out, fmt.Sprintf("addr add %s dev %s", a.Prefix, a.Iface))
	}
	for _, r := range rc.AddRoutes {
		out = append(out, route("add", r))
	}
	for _, n := range rc.AddNeighs {
		out = append(out, fmt.Sprintf("neigh add %s lladdr %s dev %s", n.Addr, n.MAC, n.Iface))
	}
	return out
}
