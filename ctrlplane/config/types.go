package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/gvs-lb/gvs/internal/yamlconf"
)

// Duration is written as keepalived writes it, in seconds (6, 0.5), or in
// Go syntax ("500ms", "2m"): the type both daemons' files share.
type Duration = yamlconf.Duration

// Seconds returns n seconds as a Duration.
func Seconds(n int) Duration { return yamlconf.Seconds(n) }

// CodeRange is an inclusive range of HTTP status codes.
type CodeRange struct{ Lo, Hi int }

// StatusCodes is a set of status code ranges; empty means 200-299.
type StatusCodes []CodeRange

// UnmarshalYAML accepts 200, "200-299", "200-299,302" or a list of those.
func (s *StatusCodes) UnmarshalYAML(n *yaml.Node) error {
	var parts []string
	switch n.Kind {
	case yaml.ScalarNode:
		parts = strings.Split(n.Value, ",")
	case yaml.SequenceNode:
		for _, e := range n.Content {
			if e.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: status_code: write codes or ranges like 200-299", e.Line)
			}
			parts = append(parts, strings.Split(e.Value, ",")...)
		}
	default:
		return fmt.Errorf("line %d: status_code: write codes or ranges like 200-299", n.Line)
	}
	var out StatusCodes
	for _, p := range parts {
		p = strings.TrimSpace(p)
		lo, hi, isRange := strings.Cut(p, "-")
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(strings.TrimSpace(hi))
		}
		if err1 != nil || err2 != nil || a < 100 || b > 599 || a > b {
			return fmt.Errorf("line %d: status_code %q: write a code (100-599) or a range like 200-299", n.Line, p)
		}
		out = append(out, CodeRange{a, b})
	}
	*s = out
	return nil
}

// Match reports whether code is in the set (200-299 when empty).
func (s StatusCodes) Match(code int) bool {
	if len(s) == 0 {
		return code >= 200 && code <= 299
	}
	return slices.ContainsFunc(s, func(r CodeRange) bool { return code >= r.Lo && code <= r.Hi })
}

// String writes the set back as configured.
func (s StatusCodes) String() string {
	if len(s) == 0 {
		return "200-299"
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		if r.Lo == r.Hi {
			b.WriteString(strconv.Itoa(r.Lo))
		} else {
			fmt.Fprintf(&b, "%d-%d", r.Lo, r.Hi)
		}
	}
	return b.String()
}
