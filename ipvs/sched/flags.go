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
//
// conhash is DPVS's: its hash target is set with DPVS's --hash-target sip|qid
// and travels in the same list as "sip" or "qid"; flag-2 (port) hashes the
// source port with the source address, as sh-port does for sh.

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
		case "sip", "qid":
			if name != CONHASH {
				return Options{}, fmt.Errorf("incompatible scheduler flag `%s' for scheduler %s: hash targets are for conhash", f, name)
			}
			o.HashTarget = HashSourceIP
			if f == "qid" {
				o.HashTarget = HashQUICID
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
// the named scheduler ("sh-fallback,sh-port"), "" when there are none; a
// conhash qid hash target is added as "qid" (sip, the default, is not). The
// table and cache sizes have no ipvsadm flag and are not listed.
func (o Options) Flags(name string) string {
	fallback, port := "flag-1", "flag-2"
	if name == SH || name == MH {
		fallback, port = name+"-fallback", name+"-port"
	}
	var fs []string
	if o.Fallback {
		fs = append(fs, fallback)
	}
	if o.Port {
		fs = append(fs, port)
	}
	if o.HashTarget == HashQUICID {
		fs = append(fs, "qid")
	}
	return strings.Join(fs, ",")
}
