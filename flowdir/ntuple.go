package flowdir

// Hardware steering with ethtool n-tuple rules: one rule per (local
// address, protocol, worker) matching the local port's low bits, sending
// the replies of a worker's connections to its own receive queue. Where a
// NIC (or veth) has no n-tuple filters, installation fails with
// ErrNoHardwareSteering and the dataplane falls back to handing packets
// over between workers in software.

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// ErrNoHardwareSteering reports a device without usable n-tuple filters.
var ErrNoHardwareSteering = errors.New("device has no n-tuple flow steering")

// Rule is one n-tuple rule.
type Rule struct {
	Dev    string
	Proto  string // tcp4, udp4, tcp6, udp6
	LAddr  netip.Addr
	Worker int
	Mask   uint16
	ID     int // location the device gave it; -1 until installed
}

// Args returns the ethtool arguments that insert r. ethtool's mask marks
// the bits to ignore, so the low (owner) bits are the ones left clear.
func (r Rule) Args() []string {
	return []string{"-N", r.Dev, "flow-type", r.Proto, "dst-ip", r.LAddr.String(),
		"dst-port", strconv.Itoa(r.Worker), "m", fmt.Sprintf("0x%04x", ^r.Mask),
		"action", strconv.Itoa(r.Worker)}
}

// RulesFor lists the rules steering replies to laddr on dev for st.
func RulesFor(dev string, laddr netip.Addr, st Steering) []Rule {
	protos := []string{"tcp4", "udp4"}
	if laddr.Is6() {
		protos = []string{"tcp6", "udp6"}
	}
	var rs []Rule
	for _, p := range protos {
		for w := 0; w < st.Workers(); w++ {
			rs = append(rs, Rule{Dev: dev, Proto: p, LAddr: laddr, Worker: w, Mask: st.Mask(), ID: -1})
		}
	}
	return rs
}

var addedRule = regexp.MustCompile(`Added rule with ID (\d+)`)

// Install inserts rules with ethtool and returns them with their IDs. On
// the first failure it removes what it installed and returns the error
// (ErrNoHardwareSteering when the device does not support the feature).
func Install(rules []Rule) ([]Rule, error) {
	var done []Rule
	for _, r := range rules {
		out, err := exec.Command("ethtool", r.Args()...).CombinedOutput()
		if err != nil {
			Remove(done)
			msg := strings.TrimSpace(string(out))
			if strings.Contains(msg, "not supported") || strings.Contains(msg, "Cannot") {
				return nil, fmt.Errorf("flowdir: %s: %s: %w", r.Dev, msg, ErrNoHardwareSteering)
			}
			return nil, fmt.Errorf("flowdir: ethtool %s: %v: %s", strings.Join(r.Args(), " "), err, msg)
		}
		if m := addedRule.FindSubmatch(out); m != nil {
			r.ID, _ = strconv.Atoi(string(m[1]))
		}
		done = append(done, r)
	}
	return done, nil
}

// Remove deletes installed rules (those with an ID).
func Remove(rules []Rule) error {
	var errs []error
	for _, r := range rules {
		if r.ID < 0 {
			continue
		}
		if out, err := exec.Command("ethtool", "-N", r.Dev, "delete", strconv.Itoa(r.ID)).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("flowdir: delete rule %d on %s: %v: %s", r.ID, r.Dev, err, out))
		}
	}
	return errors.Join(errs...)
}
