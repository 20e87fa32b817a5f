package config

import (
	"strings"
	"testing"
)

func TestSessionHighWater(t *testing.T) {
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.IPVS.SessionHighWater != 90 {
		t.Errorf("default session_high_water = %d, want 90", c.IPVS.SessionHighWater)
	}
	c, err = Parse([]byte(good + "ipvs:\n  session_high_water: 75\n"))
	if err != nil || c.IPVS.SessionHighWater != 75 {
		t.Fatalf("session_high_water 75: %d %v", c.IPVS.SessionHighWater, err)
	}
	for _, v := range []string{"-1", "101", "1000"} {
		_, err := Parse([]byte(good + "ipvs:\n  session_high_water: " + v + "\n"))
		want := "ipvs.session_high_water: " + v + ": use a percentage of conn_capacity, 1-100"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("session_high_water %s: %v, want an error containing %q", v, err, want)
		}
	}
}

// TestExpireReset: resets at a connection's end are on unless the file
// says expire_reset: false; a value that is not a boolean is refused
// (the YAML decoder's error names its line, value and type).
func TestExpireReset(t *testing.T) {
	for _, c := range []struct {
		conf string
		want bool
	}{
		{"", true},
		{"ipvs:\n  expire_reset: true\n", true},
		{"ipvs:\n  expire_reset: false\n", false},
	} {
		cfg, err := Parse([]byte(good + c.conf))
		if err != nil {
			t.Fatalf("%q: %v", c.conf, err)
		}
		if got := cfg.IPVS.ResetsOnExpire(); got != c.want {
			t.Errorf("%q: resets %v, want %v", c.conf, got, c.want)
		}
	}
	if _, err := Parse([]byte(good + "ipvs:\n  expire_reset: sometimes\n")); err == nil || !strings.Contains(err.Error(), "`sometimes` into bool") {
		t.Errorf("expire_reset: sometimes: %v, want an error naming the value and the type", err)
	}
}
