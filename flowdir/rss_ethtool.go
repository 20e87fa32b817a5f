package flowdir

// Reading a NIC's RSS configuration (hash key and redirection table) with
// `ethtool -x`, so local ports can be chosen whose replies the NIC's own
// hash puts on the owner worker's queue. Most drivers pick a random key at
// boot, so the key must be read, not assumed.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// ErrNoRSS reports a device whose RSS configuration cannot be read.
var ErrNoRSS = errors.New("device does not report its RSS key and indirection table")

// ReadRSS returns the RSS filter of dev for queues receive queues.
func ReadRSS(dev string, queues int) (*RSSFilter, error) {
	out, err := exec.Command("ethtool", "-x", dev).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("flowdir: ethtool -x %s: %s: %w", dev, strings.TrimSpace(string(out)), ErrNoRSS)
	}
	f, err := ParseRSS(out, queues)
	if err != nil {
		return nil, fmt.Errorf("flowdir: %s: %w", dev, err)
	}
	return f, nil
}

// ParseRSS parses `ethtool -x` output: the indirection table rows
// ("   0:      0     1     0     1 ...") and the hash key
// ("6d:5a:56:da:..." on the line after "RSS hash key:").
func ParseRSS(out []byte, queues int) (*RSSFilter, error) {
	var reta []uint16
	var key []byte
	sc := bufio.NewScanner(bytes.NewReader(out))
	inKey := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "RSS hash key:"):
			inKey = true
		case inKey:
			inKey = false
			for _, h := range strings.Split(line, ":") {
				v, err := strconv.ParseUint(h, 16, 8)
				if err != nil {
					return nil, fmt.Errorf("hash key %q: %w", line, ErrNoRSS)
				}
				key = append(key, byte(v))
			}
		default:
			idx, rest, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			if _, err := strconv.Atoi(strings.TrimSpace(idx)); err != nil {
				continue
			}
			for _, f := range strings.Fields(rest) {
				q, err := strconv.ParseUint(f, 10, 16)
				if err != nil {
					return nil, fmt.Errorf("indirection table %q: %w", line, ErrNoRSS)
				}
				reta = append(reta, uint16(q))
			}
		}
	}
	if len(key) < 16 || len(reta) == 0 {
		return nil, ErrNoRSS
	}
	if len(key) < 40 {
		key = append(key, make([]byte, 40-len(key))...)
	}
	return &RSSFilter{Hash: NewToeplitz(key), Queues: queues, RETA: reta}, nil
}
