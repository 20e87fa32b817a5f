package sched

import (
	"fmt"
	"strings"
)

// ipvsadm passes scheduler options as "scheduler flags" (-b flag,flag on a
// service): flag-1, flag-2 and flag-3, which sh and mh name sh-fallback /
// mh-fallback and sh-port / mh-port. ParseFlags and Options.Flags translate
// between that list and Options, so that the CLI, the saved rules (-S) and
// the listings spell them as ipvsadm does.

// ParseFlags parses an ipvsadm scheduler-flag list ("sh-fallback,sh-port")
// for the named scheduler ("" = Default) into Options. Errors use ipvsadm's
// words: an unknown flag is "invalid scheduler flag `x'", a flag named for
// another scheduler "incompatible scheduler flag `x'"; a flag the scheduler
// does not support wraps ErrUnsupported.
func ParseFlags(name, list string) (Options, error) {
	if name == "" {
		name = Default
	}
	var o Options
	for _, f := range strings.Split(list, ",") {
		switch f {
		case "flag-1":
			o.Fallback = true
		case "flag-2":
			o.Port = true
		case "sh-fallback", "sh-port", "mh-fallback", "mh-port":
			if !strings.HasPrefix(f, name+"-") {
				return Options{}, fmt.Errorf("incompatible scheduler flag `%s' for scheduler %s", f, name)
			}
			if strings.HasSuffix(f, "-fallback") {
				o.Fallback = true
			} else {
				o.Port = true
			}
		case "flag-3":
			return Options{}, fmt.Errorf("scheduler %s: flag-3 %w", name, ErrUnsupported)
		default:
			return Options{}, fmt.Errorf("invalid scheduler flag `%s'", f)
		}
	}
	if err := checkOptions(name, o); err != nil {
		return Options{}, err
	}
	return o, nil
}

// Flags returns the scheduler flags of o as ipvsadm lists and saves them for
// the named scheduler ("sh-fallback,sh-port"), "" when there are none. The
// table size has no ipvsadm flag and is not listed.
func (o Options) Flags(name string) string {
	fallback, port := "flag-1", "flag-2"
	if name == SH || name == MH {
		fallback, port = name+"-fallback", name+"-port"
	}
	switch {
	case o.Fallback && o.Port:
		return fallback + "," + port
	case o.Fallback:
		return fallback
	case o.Port:
		return port
	}
	return ""
}
