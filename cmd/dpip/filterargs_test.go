package main

import (
	"strings"
	"testing"
)

// subsequence reports whether the words of expr appear in args in order.
func subsequence(expr string, args []string) bool {
	i := 0
	for _, w := range strings.Fields(expr) {
		for i < len(args) && args[i] != w {
			i++
		}
		if i == len(args) {
			return false
		}
		i++
	}
	return true
}

// FuzzFilterArgs: any command line given to dpip capture or dpip trace is
// either refused with an error naming the command, or parsed so that the
// filter expression is made of words of the line, in order (options may
// stand between them), and the numbers fit their fields.
func FuzzFilterArgs(f *testing.F) {
	for _, s := range []string{
		"dev dp0 rx -c 10 -s 96 -w /tmp/x.pcapng tcp port 80",
		"worker 1 -c 5 -- -c host 10.0.0.1",
		"--socket=/run/gvs/dp.sock both udp",
		"-c", "worker x", "-s 99999999999", "--json -c 300 tcp", "dev",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		if c, _, err := parseCaptureArgs(args); err != nil {
			if !strings.HasPrefix(err.Error(), "capture: ") {
				t.Fatalf("capture %q: error %q does not name the command", line, err)
			}
		} else if !subsequence(c.req.FilterExpr, args) {
			t.Fatalf("capture %q: filter %q is not words of the line", line, c.req.FilterExpr)
		}
		if req, _, _, err := parseTraceArgs(args); err != nil {
			if !strings.HasPrefix(err.Error(), "trace: ") {
				t.Fatalf("trace %q: error %q does not name the command", line, err)
			}
		} else {
			if !subsequence(req.FilterExpr, args) {
				t.Fatalf("trace %q: filter %q is not words of the line", line, req.FilterExpr)
			}
			if req.Count > 256 || (req.Worker != nil && *req.Worker < 0) {
				t.Fatalf("trace %q: count %d worker %v", line, req.Count, req.Worker)
			}
		}
	})
}
