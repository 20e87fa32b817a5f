package ipvsadm

// A small re-implementation of the parts of popt (the option parser
// ipvsadm 1.31 is built with) that ipvsadm's command line relies on:
//
//   - short options, clustered ("-Ln"); an option that takes an argument
//     takes the rest of its cluster ("-t10.0.0.1:80", "-t=10.0.0.1:80") or
//     else the next word, whatever it starts with;
//   - an optional argument (-p [timeout]) is taken from the rest of the
//     cluster, or from the next word unless that starts with '-';
//   - long options "--name value" and "--name=value", exact names only
//     (popt does not accept abbreviations, unlike getopt_long);
//   - words that are not options are collected as leftovers wherever they
//     appear; "--" makes every later word a leftover; "-" is a leftover;
//   - integer arguments are read like strtol(s, &end, 0);
//   - the options are handed out one at a time, so a caller stops at the
//     first one it rejects, exactly where ipvsadm stops.
//
// poptBadOption, which ipvsadm uses in its messages, names the last word
// consumed, which is the option's argument when the argument was the next
// word; event.bad and poptError.bad carry that word.

import (
	"strings"
)

type argKind uint8

const (
	argNone argKind = iota
	argRequired
	argOptional
	argInt
)

type optDef struct {
	long  string
	short byte
	arg   argKind
	tag   tag
}

// popt's error codes and texts (popt.h, poptStrerror).
type poptCode int

const (
	poptErrNoArg       poptCode = -10
	poptErrBadOpt      poptCode = -11
	poptErrUnwantedArg poptCode = -12
	poptErrBadNumber   poptCode = -17
	poptErrOverflow    poptCode = -18
)

func (c poptCode) String() string {
	switch c {
	case poptErrNoArg:
		return "missing argument"
	case poptErrBadOpt:
		return "unknown option"
	case poptErrUnwantedArg:
		return "option does not take an argument"
	case poptErrBadNumber:
		return "invalid numeric value"
	case poptErrOverflow:
		return "number too large or too small"
	}
	return "unknown error"
}

type poptError struct {
	code poptCode
	bad  string
}

// event is one option handed out by the parser.
type event struct {
	tag    tag
	arg    string
	hasArg bool
	num    int64 // argInt options
	bad    string
}

type popt struct {
	argv      []string // argv[0] is the program
	next      int
	cluster   string // the rest of a short-option cluster
	rest      bool   // after "--"
	leftovers []string
	table     []optDef
	socket    *string // where --socket goes; nil: --socket is not an option here
}

func newPopt(argv []string, table []optDef, socket *string) *popt {
	return &popt{argv: argv, next: 1, table: table, socket: socket}
}

func (p *popt) lastWord() string {
	if p.next > 0 && p.next <= len(p.argv) {
		return p.argv[p.next-1]
	}
	return ""
}

func (p *popt) findLong(name string) *optDef {
	for i := range p.table {
		if p.table[i].long == name {
			return &p.table[i]
		}
	}
	return nil
}

func (p *popt) findShort(c byte) *optDef {
	for i := range p.table {
		if p.table[i].short == c {
			return &p.table[i]
		}
	}
	return nil
}

// nextOpt returns the next option; done is true at the end of the words.
func (p *popt) nextOpt() (ev event, done bool, perr *poptError) {
	for {
		var d *optDef
		longArg, hasLongArg := "", false
		if p.cluster == "" {
			if p.next >= len(p.argv) {
				return event{}, true, nil
			}
			w := p.argv[p.next]
			p.next++
			if p.rest || len(w) < 2 || w[0] != '-' {
				p.leftovers = append(p.leftovers, w)
				continue
			}
			if w == "--" {
				p.rest = true
				continue
			}
			if w[1] == '-' {
				name := w[2:]
				if i := strings.IndexByte(name, '='); i >= 0 {
					longArg, hasLongArg = name[i+1:], true
					name = name[:i]
				}
				if name == "socket" && p.socket != nil {
					d = &optDef{long: "socket", arg: argRequired, tag: tagSocket}
				} else if d = p.findLong(name); d == nil {
					return event{}, false, &poptError{poptErrBadOpt, p.lastWord()}
				}
			} else {
				p.cluster = w[1:]
			}
		}
		if d == nil {
			c := p.cluster[0]
			p.cluster = p.cluster[1:]
			if d = p.findShort(c); d == nil {
				p.cluster = ""
				return event{}, false, &poptError{poptErrBadOpt, p.lastWord()}
			}
		}
		ev, perr := p.finish(d, longArg, hasLongArg)
		if perr != nil {
			return event{}, false, perr
		}
		if ev.tag == tagSocket {
			*p.socket = ev.arg
			continue
		}
		return ev, false, nil
	}
}

func (p *popt) finish(d *optDef, longArg string, hasLongArg bool) (event, *poptError) {
	ev := event{tag: d.tag}
	if d.arg == argNone {
		if hasLongArg {
			return ev, &poptError{poptErrUnwantedArg, p.lastWord()}
		}
		ev.bad = p.lastWord()
		return ev, nil
	}
	switch {
	case hasLongArg:
		ev.arg, ev.hasArg = longArg, true
	case p.cluster != "":
		ev.arg, ev.hasArg = strings.TrimPrefix(p.cluster, "="), true
		p.cluster = ""
	case p.next >= len(p.argv):
		if d.arg != argOptional {
			return ev, &poptError{poptErrNoArg, p.lastWord()}
		}
	case d.arg == argOptional && strings.HasPrefix(p.argv[p.next], "-"):
		// an optional argument is never a word that looks like an option
	default:
		ev.arg, ev.hasArg = p.argv[p.next], true
		p.next++
	}
	if d.arg == argInt {
		n, rest, overflow := strtol(ev.arg, 0)
		if rest != "" {
			return ev, &poptError{poptErrBadNumber, p.lastWord()}
		}
		if overflow || n > 1<<31-1 || n < -1<<31 {
			return ev, &poptError{poptErrOverflow, p.lastWord()}
		}
		ev.num = n
	}
	ev.bad = p.lastWord()
	return ev, nil
}

// strtol reads s like C's strtol: leading white space, a sign, then digits
// in base (0: 0x… hex, 0… octal, else decimal). It returns the value, the
// unread rest of s (all of s when no digit was read) and whether the
// value overflowed a 64-bit long.
func strtol(s string, base int) (n int64, rest string, overflow bool) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	if (base == 0 || base == 16) && i+1 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') && i+2 < len(s) && digitVal(s[i+2]) < 16 {
		i += 2
		base = 16
	} else if base == 0 {
		if i < len(s) && s[i] == '0' {
			base = 8
		} else {
			base = 10
		}
	}
	start := i
	maxU := uint64(1<<63 - 1)
	if neg {
		maxU = 1 << 63
	}
	var u uint64
	for i < len(s) {
		v := digitVal(s[i])
		if v >= base {
			break
		}
		if !overflow {
			if u > (maxU-uint64(v))/uint64(base) {
				overflow = true
			} else {
				u = u*uint64(base) + uint64(v)
			}
		}
		i++
	}
	if i == start {
		return 0, s, false
	}
	if overflow {
		if neg {
			return -1 << 63, s[i:], true
		}
		return 1<<63 - 1, s[i:], true
	}
	if neg {
		return -int64(u), s[i:], false
	}
	return int64(u), s[i:], false
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func digitVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return 99
}

// stringToNumber is ipvsadm's string_to_number: a whole base-10 number in
// [min, max], else -1.
func stringToNumber(s string, min, max int64) int64 {
	n, rest, overflow := strtol(s, 10)
	if rest == "" && s != "" && !overflow && n >= min && n <= max {
		return n
	}
	// strtol leaves rest == s when nothing was read; "" is no number either
	return -1
}
