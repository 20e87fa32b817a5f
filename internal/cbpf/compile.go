package cbpf

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
)

// Compiler turns tcpdump expressions into programs by running tcpdump.
type Compiler struct {
	// Tcpdump is the tcpdump binary; empty: "tcpdump" from PATH.
	Tcpdump string
}

// Compile compiles expr with the tcpdump found in PATH; see
// Compiler.Compile.
func Compile(expr string) ([]bpf.RawInstruction, error) { return Compiler{}.Compile(expr) }

// Compile compiles a tcpdump (pcap-filter(7)) expression for Ethernet
// frames. An empty or blank expression returns an empty program, which
// matches everything. Errors name the expression and the fix.
func (c Compiler) Compile(expr string) ([]bpf.RawInstruction, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil
	}
	bin := c.Tcpdump
	if bin == "" {
		bin = "tcpdump"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("compile filter %q: %s not found: install Debian's tcpdump (apt-get install tcpdump, or scripts/deps.sh)", expr, bin)
	}
	cmd := exec.Command(path, "-ddd", "-y", "EN10MB", expr)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		var ee *exec.ExitError
		if msg == "" || !errors.As(err, &ee) {
			msg = err.Error()
		}
		return nil, fmt.Errorf("compile filter %q: %s: fix the expression (pcap-filter(7) syntax, as tcpdump takes it)", expr, msg)
	}
	raw, err := Parse(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("compile filter %q: tcpdump's output: %w", expr, err)
	}
	return raw, nil
}

// Parse reads the decimal program tcpdump -ddd prints: the instruction
// count on the first line, then one "code jt jf k" line per instruction.
func Parse(text []byte) ([]bpf.RawInstruction, error) {
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	n, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil {
		return nil, fmt.Errorf("%w: first line %q is not an instruction count", ErrInvalid, lines[0])
	}
	if n < 1 || n > MaxInstructions {
		return nil, fmt.Errorf("%w: %d instructions, want 1 to %d", ErrInvalid, n, MaxInstructions)
	}
	if len(lines)-1 != n {
		return nil, fmt.Errorf("%w: %d instructions announced, %d lines follow", ErrInvalid, n, len(lines)-1)
	}
	raw := make([]bpf.RawInstruction, n)
	for i, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 4 {
			return nil, fmt.Errorf("%w: line %d %q: want code jt jf k", ErrInvalid, i+2, l)
		}
		var v [4]uint64
		for j, bits := range [4]int{16, 8, 8, 32} {
			if v[j], err = strconv.ParseUint(f[j], 10, bits); err != nil {
				return nil, fmt.Errorf("%w: line %d %q: field %d: %v", ErrInvalid, i+2, l, j+1, err)
			}
		}
		raw[i] = bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])}
	}
	return raw, nil
}
