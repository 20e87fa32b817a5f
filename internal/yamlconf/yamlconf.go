// Package yamlconf holds what GVS's YAML configuration files share: strict
// decoding (an unknown or misspelt key is an error, never ignored), the
// load-then-parse step that names the file in every error, and the
// Duration type both daemons' files use.
package yamlconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrEmpty is returned by Decode for a file with no document.
var ErrEmpty = errors.New("empty configuration")

// Decode decodes b into out, refusing keys out does not have.
func Decode(b []byte, out any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		if errors.Is(err, io.EOF) {
			return ErrEmpty
		}
		return err
	}
	return nil
}

// Load reads the file at path and parses it; parse errors are prefixed
// with the path.
func Load[T any](path string, parse func([]byte) (*T, error)) (*T, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Duration is written in seconds as keepalived writes it (6, 0.5) or in Go
// syntax ("500ms", "2m", "100us"). Negative durations are refused.
type Duration time.Duration

// Seconds returns n seconds as a Duration.
func Seconds(n int) Duration { return Duration(time.Duration(n) * time.Second) }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML accepts a number of seconds or a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a duration must be a number of seconds or a string like \"500ms\"", n.Line)
	}
	if f, err := strconv.ParseFloat(n.Value, 64); err == nil && n.Tag != "!!str" {
		if f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f > 1e9 {
			return fmt.Errorf("line %d: duration %s out of range: give seconds ≥ 0", n.Line, n.Value)
		}
		*d = Duration(f * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration (write seconds, e.g. 3, or e.g. 500ms, 2m, 100us)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}
