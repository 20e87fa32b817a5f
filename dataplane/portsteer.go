package dataplane

// Flow steering and RSS through the port driver itself. A driver that
// programs the NIC without a kernel net device (the dpdk driver: rte_flow
// rules, the RSS key and redirection table read through the PMD) offers
// it with the optional interfaces below. steerLAddr and rssPorts try them
// before the kernel-device path (ethtool n-tuple rules, ethtool -x), which
// only ports with a kernel device have; the outcome is reported in
// `dpip info` the same way. Runs on the control path only, under d.ctl;
// the fields it changes are guarded by d.mu.

import (
	"net/netip"

	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/flowdir"
)

// portSteerer is a port that installs the owner-bit steering rules itself.
type portSteerer interface {
	// SteeringSupport returns nil when the device would take the rules,
	// otherwise an error naming the device and wrapping
	// flowdir.ErrNoHardwareSteering. Nothing is installed.
	SteeringSupport() error
	// Steer installs the rules, all or nothing.
	Steer(rules []flowdir.Rule) error
	// Unsteer removes the rules Steer installed for laddr.
	Unsteer(laddr netip.Addr) error
}

// portRSS is a port that reports its NIC's RSS key and redirection table
// (an error wrapping flowdir.ErrNoRSS when the device has none).
type portRSS interface {
	RSS() (*flowdir.RSSFilter, error)
}

// steerByPort installs the rules for a on p, or falls back to software
// redirect and says why. It reports whether a is settled (steered or
// refused for good); false leaves a to the kernel-device path. d.mu held.
func (d *Dataplane) steerByPort(a netip.Addr, p port.Port, ps portSteerer) bool {
	err := ps.SteeringSupport()
	if err == nil {
		err = ps.Steer(flowdir.RulesFor(p.Name(), a, d.steer))
	}
	if err != nil {
		if _, dev := p.(interface{ Device() string }); dev {
			return false
		}
		d.steerStatus = "software redirect (" + err.Error() + ")"
		d.log.Warn("no hardware flow steering: replies are handed between workers in software",
			zap.String("laddr", a.String()), zap.Error(err))
		d.steerRules[a] = nil
		return true
	}
	if d.portSteered == nil {
		d.portSteered = map[netip.Addr]portSteerer{}
	}
	d.portSteered[a] = ps
	d.steerRules[a] = nil
	if d.steerStatus == "" {
		d.steerStatus = "hardware (rte_flow rules)"
	}
	return true
}

// unsteerByPort removes a's rules from the port that holds them, if any.
// d.mu held.
func (d *Dataplane) unsteerByPort(a netip.Addr) {
	ps, ok := d.portSteered[a]
	if !ok {
		return
	}
	delete(d.portSteered, a)
	if err := ps.Unsteer(a); err != nil {
		d.log.Warn("removing steering rules", zap.Error(err))
	}
}

// readRSS returns the RSS filter of port p: from the driver when it
// reports one, otherwise from its kernel device (ok false: neither).
func (d *Dataplane) readRSS(p port.Port) (f *flowdir.RSSFilter, ok bool, err error) {
	switch p := p.(type) {
	case portRSS:
		f, err = p.RSS()
		return f, true, err
	case interface{ Device() string }:
		f, err = flowdir.ReadRSS(p.Device(), len(d.workers))
		return f, true, err
	}
	return nil, false, nil
}
