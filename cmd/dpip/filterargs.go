package main

// The command lines of dpip capture and dpip trace read like tcpdump's:
// options anywhere, keywords (dev, worker, …) before the filter, the rest
// a tcpdump filter expression; "--" ends the options. One scanner for
// both, so they agree on what a value, a number, the socket option and an
// unknown option are.

import (
	"fmt"
	"strconv"
	"strings"
)

type filterArgs struct {
	cmd, usage string
	args       []string
	i          int
	arg        string   // the current word
	filter     []string // the filter expression's words so far
	socket     string   // -S/--socket
}

func newFilterArgs(cmd, usage string, args []string) *filterArgs {
	return &filterArgs{cmd: cmd, usage: usage, args: args, i: -1}
}

// next moves to the next word.
func (f *filterArgs) next() bool {
	f.i++
	if f.i >= len(f.args) {
		return false
	}
	f.arg = f.args[f.i]
	return true
}

// inFilter reports whether the filter expression has begun (keywords are
// only taken before it).
func (f *filterArgs) inFilter() bool { return len(f.filter) > 0 }

// val takes the current option's value.
func (f *filterArgs) val() (string, error) {
	if f.i+1 >= len(f.args) {
		return "", fmt.Errorf("%s: %s needs a value (%s)", f.cmd, f.arg, f.usage)
	}
	f.i++
	return f.args[f.i], nil
}

// num takes the current option's value as an unsigned number of at most
// bits bits.
func (f *filterArgs) num(what string, bits int) (uint64, error) {
	v, err := f.val()
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(v, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%s: %s %q: give a number", f.cmd, what, v)
	}
	return n, nil
}

// common handles what both commands share: "--", the socket option, an
// unknown option, and a filter word.
func (f *filterArgs) common() error {
	a := f.arg
	switch {
	case a == "--":
		f.filter = append(f.filter, f.args[f.i+1:]...)
		f.i = len(f.args)
	case a == "-S" || a == "--socket":
		var err error
		f.socket, err = f.val()
		return err
	case strings.HasPrefix(a, "--socket="):
		f.socket = strings.TrimPrefix(a, "--socket=")
	case strings.HasPrefix(a, "-") && len(a) > 1:
		return fmt.Errorf("%s: unknown option %q (%s)", f.cmd, a, f.usage)
	default:
		f.filter = append(f.filter, a)
	}
	return nil
}

// expr is the filter expression.
func (f *filterArgs) expr() string { return strings.Join(f.filter, " ") }
