package config

import (
	"strings"
	"testing"
)

func TestCaptureLimits(t *testing.T) {
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Capture.Rate != 100000 || c.Capture.Ring != 1024 {
		t.Errorf("capture defaults %+v, want rate 100000, ring 1024", c.Capture)
	}
	c, err = Parse([]byte(good + "capture: {rate: 5000, ring: 256}\n"))
	if err != nil || c.Capture.Rate != 5000 || c.Capture.Ring != 256 {
		t.Errorf("capture %+v, %v: want rate 5000, ring 256", c.Capture, err)
	}
	for _, bad := range []string{"capture: {rate: -1}\n", "capture: {ring: 100000}\n", "capture: {rate: 20000000}\n"} {
		_, err := Parse([]byte(good + bad))
		if err == nil || !strings.Contains(err.Error(), "capture.r") {
			t.Errorf("%q: %v, want the capture field named", bad, err)
		}
	}
}
