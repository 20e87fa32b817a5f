package yamlconf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	type f struct {
		D Duration `yaml:"d"`
	}
	for in, want := range map[string]time.Duration{"d: 3": 3 * time.Second, "d: 0.5": 500 * time.Millisecond,
		"d: 100us": 100 * time.Microsecond, "d: 2m": 2 * time.Minute, `d: "7"`: -1} {
		var v f
		err := Decode([]byte(in), &v)
		if want < 0 {
			if err == nil {
				t.Errorf("%q accepted", in)
			}
			continue
		}
		if err != nil || v.D.D() != want {
			t.Errorf("%q: %v %v, want %v", in, v.D.D(), err, want)
		}
	}
	for _, in := range []string{"d: -1", "d: -1ms", "d: soon", "d: [1]"} {
		var v f
		if err := Decode([]byte(in), &v); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: %v, want an error naming the line", in, err)
		}
	}
}

func TestDecodeStrictAndLoad(t *testing.T) {
	type f struct {
		A int `yaml:"a"`
	}
	var v f
	if err := Decode([]byte("b: 1"), &v); err == nil || !strings.Contains(err.Error(), "field b not found") {
		t.Errorf("unknown key: %v", err)
	}
	if err := Decode(nil, &v); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty: %v", err)
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("a: x"), 0o644)
	parse := func(b []byte) (*f, error) { var v f; return &v, Decode(b, &v) }
	if _, err := Load(p, parse); err == nil || !strings.HasPrefix(err.Error(), p+": ") {
		t.Errorf("Load: %v, want the path first", err)
	}
}
