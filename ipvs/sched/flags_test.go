package sched

import (
	"errors"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		sched, list string
		want        Options
		err         string
	}{
		{"sh", "sh-fallback", Options{Fallback: true}, ""},
		{"sh", "sh-port,sh-fallback", Options{Fallback: true, Port: true}, ""},
		{"mh", "mh-port", Options{Port: true}, ""},
		{"mh", "flag-1,flag-2", Options{Fallback: true, Port: true}, ""},
		{"sh", "mh-port", Options{}, "incompatible scheduler flag `mh-port'"},
		{"", "sh-port", Options{}, "incompatible scheduler flag `sh-port'"}, // default wlc
		{"sh", "sh-bogus", Options{}, "invalid scheduler flag `sh-bogus'"},
		{"sh", "", Options{}, "invalid scheduler flag `'"},
		{"rr", "flag-1", Options{}, "option fallback (flag-1) not supported"},
		{"mh", "flag-3", Options{}, "flag-3 not supported"},
		{"conhash", "qid", Options{HashTarget: HashQUICID}, ""},
		{"conhash", "sip", Options{}, ""},
		{"conhash", "flag-2,qid", Options{Port: true, HashTarget: HashQUICID}, ""},
		{"conhash", "flag-1", Options{}, "option fallback (flag-1) not supported"},
		{"conhash", "sh-port", Options{}, "incompatible scheduler flag `sh-port'"},
		{"sh", "qid", Options{}, "incompatible scheduler flag `qid'"},
		{"", "sip", Options{}, "incompatible scheduler flag `sip'"},
		{"dh", "flag-1", Options{}, "option fallback (flag-1) not supported"},
		{"lblcr", "flag-2", Options{}, "option port (flag-2) not supported"},
	} {
		got, err := ParseFlags(tc.sched, tc.list)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseFlags(%q, %q): %v", tc.sched, tc.list, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseFlags(%q, %q): err = %v, want %q", tc.sched, tc.list, err, tc.err)
		case got != tc.want:
			t.Errorf("ParseFlags(%q, %q) = %+v, want %+v", tc.sched, tc.list, got, tc.want)
		}
	}
	if _, err := ParseFlags("wrr", "flag-2"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("wrr flag-2: err = %v, want ErrUnsupported", err)
	}
}

func TestOptionsFlags(t *testing.T) {
	for _, tc := range []struct {
		sched string
		o     Options
		want  string
	}{
		{"sh", Options{Fallback: true, Port: true}, "sh-fallback,sh-port"},
		{"mh", Options{Port: true, TableSize: 4093}, "mh-port"},
		{"mh", Options{Fallback: true}, "mh-fallback"},
		{"wlc", Options{}, ""},
		{"rr", Options{Fallback: true}, "flag-1"},
		{"conhash", Options{Port: true, HashTarget: HashQUICID}, "flag-2,qid"},
		{"conhash", Options{HashTarget: HashQUICID}, "qid"},
		{"conhash", Options{}, ""},
	} {
		got := tc.o.Flags(tc.sched)
		if got != tc.want {
			t.Errorf("%+v.Flags(%q) = %q, want %q", tc.o, tc.sched, got, tc.want)
		}
		if got == "" || tc.sched == "rr" {
			continue
		}
		back, err := ParseFlags(tc.sched, got)
		if err != nil || back.Fallback != tc.o.Fallback || back.Port != tc.o.Port {
			t.Errorf("ParseFlags(%q, %q) = %+v, %v: does not round-trip", tc.sched, got, back, err)
		}
	}
}
