package sched

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	// ipvsadm -h's list, then the kernel's twos and DPVS's conhash
	want := []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos", "conhash"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, n := range Names() {
		mustNew(t, n, mkDests(1, 2), Options{})
	}
	s, err := New("", mkDests(1), Options{})
	if err != nil || s.Name() != "wlc" {
		t.Fatalf(`New("") = %v, %v; want the default, wlc`, s, err)
	}
}

func TestUnknownScheduler(t *testing.T) {
	for _, n := range []string{"foo", "WLC", "lblc ", " rr", "random", "con"} {
		_, err := New(n, mkDests(1), Options{})
		if !errors.Is(err, ErrUnknown) {
			t.Errorf("New(%q): err = %v, want ErrUnknown", n, err)
			continue
		}
		if !strings.Contains(err.Error(), "Scheduler or persistence engine not found") {
			t.Errorf("New(%q): %q lacks ipvsadm's wording", n, err)
		}
	}
}

func TestUnsupportedOptions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   Options
		option string
	}{
		{"rr", Options{Fallback: true}, "fallback"},
		{"wrr", Options{Port: true}, "port"},
		{"lc", Options{TableSize: 65537}, "table size"},
		{"wlc", Options{Fallback: true, Port: true}, "fallback"},
		{"sh", Options{TableSize: 251}, "table size"},
		{"dh", Options{Fallback: true}, "fallback"},
		{"dh", Options{Port: true}, "port"},
		{"lblc", Options{Port: true}, "port"},
		{"conhash", Options{Fallback: true}, "fallback"},
		{"sh", Options{HashTarget: HashQUICID}, "hash target"},
		{"wlc", Options{CacheSize: 1024}, "cache size"},
		{"conhash", Options{CacheSize: 1024}, "cache size"},
	} {
		_, err := New(tc.name, mkDests(1), tc.opts)
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("New(%s, %+v): err = %v, want ErrUnsupported", tc.name, tc.opts, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.option) || !strings.Contains(msg, "not supported") {
			t.Errorf("New(%s, %+v): %q does not name option %q", tc.name, tc.opts, msg, tc.option)
		}
	}
	for _, n := range []string{"sh", "mh"} {
		mustNew(t, n, mkDests(1), Options{Fallback: true, Port: true})
	}
	mustNew(t, "conhash", mkDests(1), Options{Port: true, HashTarget: HashQUICID})
	mustNew(t, "lblc", mkDests(1), Options{CacheSize: 100})
	mustNew(t, "lblcr", mkDests(1), Options{CacheSize: 100})
}

func TestNewValidatesDests(t *testing.T) {
	for _, tc := range []struct {
		desc string
		mod  func(*Dest)
		want string
	}{
		{"negative weight", func(d *Dest) { d.Weight = -1 }, "weight -1 out of range"},
		{"weight too large", func(d *Dest) { d.Weight = 65536 }, "weight 65536 out of range"},
		{"no counters", func(d *Dest) { d.C = nil }, "no counters"},
	} {
		for _, n := range Names() {
			ds := mkDests(1, 1)
			tc.mod(&ds[1])
			_, err := New(n, ds, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "10.0.0.2:80") {
				t.Errorf("%s, %s: err = %v, want one naming the dest and %q", n, tc.desc, err, tc.want)
			}
		}
	}
}

// New copies the dests: changing the caller's slice afterwards changes nothing.
func TestNewCopiesDests(t *testing.T) {
	ds := mkDests(1, 1)
	s := mustNew(t, "rr", ds, Options{})
	ds[0].Weight = 0
	if got := seq(s, 4); got != "ABAB" {
		t.Fatalf("sequence %q after changing the caller's slice, want ABAB", got)
	}
}

func TestNoDests(t *testing.T) {
	for _, n := range Names() {
		for _, ds := range [][]Dest{nil, mkDests(0, 0, 0)} {
			s := mustNew(t, n, ds, Options{})
			if got := s.Pick(&Flow{}); got != -1 {
				t.Errorf("%s over %d dests with weight 0: Pick = %d, want -1", n, len(ds), got)
			}
		}
	}
}

// The thresholds behave as in LVS: overloaded from Upper conns on, until the
// count falls below Lower, or below 3/4 of Upper when Lower is 0.
func TestOverloadHysteresis(t *testing.T) {
	type step struct {
		active, inactive int64
		avail            bool
	}
	for _, tc := range []struct {
		desc         string
		upper, lower uint32
		steps        []step
	}{
		{"no thresholds", 0, 0, []step{{0, 0, true}, {1000, 1000, true}}},
		{"upper only: back below 3/4 of upper", 10, 0, []step{
			{0, 0, true}, {5, 4, true}, {5, 5, false}, // 10 >= 10
			{4, 5, false}, {8, 0, false}, // 9, 8: not below 7.5
			{0, 7, true}, // 7 < 7.5
			{0, 9, true}, {9, 1, false},
		}},
		{"upper and lower", 10, 5, []step{
			{0, 9, true}, {1, 9, false}, {0, 11, false}, {3, 2, false}, // 5 is not below 5
			{2, 2, true}, {0, 9, true}, {0, 10, false},
		}},
		{"active and inactive both count", 4, 0, []step{{4, 0, false}, {0, 3, false}, {0, 2, true}, {2, 2, false}}},
	} {
		d := mkDests(1)[0]
		d.Upper, d.Lower = tc.upper, tc.lower
		for i, st := range tc.steps {
			d.C.Active.Store(st.active)
			d.C.Inactive.Store(st.inactive)
			if got := d.Available(); got != st.avail {
				t.Errorf("%s: step %d (%d+%d conns): Available = %v, want %v", tc.desc, i, st.active, st.inactive, got, st.avail)
			}
			if d.C.Overloaded() == st.avail {
				t.Errorf("%s: step %d: Overloaded = %v, want %v", tc.desc, i, d.C.Overloaded(), !st.avail)
			}
		}
	}

	// The flag lives in the shared counters and outlives a rebuild: a new
	// Dest with the same counters and the thresholds removed clears it.
	d := mkDests(1)[0]
	d.Upper = 2
	d.C.Active.Store(2)
	if d.Available() {
		t.Fatal("2 conns, upper 2: available")
	}
	d2 := d
	d2.Upper = 0
	if !d2.Available() || d2.C.Overloaded() {
		t.Fatal("thresholds removed: still overloaded")
	}

	// Weight 0 is never available, whatever the counters.
	q := mkDests(0)[0]
	if q.Available() {
		t.Fatal("weight 0: available")
	}
}

// Pick allocates nothing, including the fallback walks of sh and mh.
func TestPickZeroAllocs(t *testing.T) {
	fs := randFlows(7, 64)
	for i := range fs { // half of them QUIC Initials for conhash qid
		if i%2 == 0 {
			fs[i].Proto = 17
			fs[i].Payload = []byte{0xc0, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, byte(i), 0}
		}
	}
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"rr", Options{}}, {"wrr", Options{}}, {"lc", Options{}}, {"wlc", Options{}},
		{"sh", Options{}}, {"sh", Options{Fallback: true, Port: true}},
		{"mh", Options{}}, {"mh", Options{Fallback: true, Port: true}},
		{"dh", Options{}}, {"sed", Options{}}, {"nq", Options{}}, {"fo", Options{}},
		{"ovf", Options{}}, {"lblc", Options{}}, {"lblcr", Options{}}, {"twos", Options{}},
		{"conhash", Options{}}, {"conhash", Options{Port: true, HashTarget: HashQUICID}},
	} {
		ds := mkDests(1, 2, 3, 0, 2)
		ds[1].Upper = 1
		overload(&ds[1]) // makes the fallback walks run
		s := mustNew(t, tc.name, ds, tc.opts)
		i := 0
		if a := testing.AllocsPerRun(1000, func() {
			// lblc/lblcr: new destination addresses keep inserting
			fs[i&63].Dst = netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
			s.Pick(&fs[i&63])
			i++
		}); a != 0 {
			t.Errorf("%s %+v: %v allocations per Pick", tc.name, tc.opts, a)
		}
	}
}

// Workers each own their instances over shared counters, which other
// workers change meanwhile; an mh instance may even be shared. Run with
// -race: everything shared is atomic.
func TestConcurrentWorkers(t *testing.T) {
	ds := mkDests(1, 2, 3, 0, 2)
	for i := range ds {
		ds[i].Upper, ds[i].Lower = 50, 10
	}
	shared := mustNew(t, "mh", ds, Options{Fallback: true})
	fs := randFlows(16, 256)
	done := make(chan struct{})
	for w := range 2 {
		var own []Scheduler
		for _, n := range Names() {
			own = append(own, mustNew(t, n, ds, Options{}))
		}
		own = append(own, shared)
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 20_000 {
				s := own[i%len(own)]
				if d := s.Pick(&fs[(i+w)&255]); d >= 0 {
					c := ds[d].C
					c.Active.Add(1)
					if i%2 == 0 {
						c.Active.Add(-1)
						c.Inactive.Add(1)
					}
				}
				if i%3 == 0 { // connections end
					c := ds[i%len(ds)].C
					if c.Inactive.Add(-1) < 0 {
						c.Inactive.Add(1)
					}
					if c.Active.Add(-1) < 0 {
						c.Active.Add(1)
					}
				}
			}
		}()
	}
	<-done
	<-done
	for i := range ds {
		if n := ds[i].C.Active.Load() + ds[i].C.Inactive.Load(); n < 0 {
			t.Errorf("dest %d: %d connections", i, n)
		}
	}
}
