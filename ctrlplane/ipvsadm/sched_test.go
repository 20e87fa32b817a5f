package ipvsadm

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ipvs/sched"
)

// helpSchedulers returns the scheduler names ipvsadm -h prints.
func helpSchedulers(t *testing.T) []string {
	t.Helper()
	m := regexp.MustCompile(`-s scheduler\s+one of ([a-z|]+),`).FindStringSubmatch(Usage("ipvsadm"))
	if m == nil {
		t.Fatal("ipvsadm -h lists no schedulers")
	}
	return strings.Split(m[1], "|")
}

// Every name ipvsadm -h prints is one the dataplane's scheduler package
// builds (it answers the -A), plus the kernel's twos and DPVS's conhash.
func TestHelpSchedulersExist(t *testing.T) {
	help := helpSchedulers(t)
	if want := "rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh"; strings.Join(help, "|") != want {
		t.Fatalf("ipvsadm -h lists %v, ipvsadm 1.31 lists %s", help, want)
	}
	for _, n := range append(help, "twos", "conhash") {
		if !slices.Contains(sched.Names(), n) {
			t.Errorf("%s: listed by ipvsadm -h but not a GVS scheduler", n)
		}
	}
}

// Each scheduler's -A is parsed, sent, listed and saved as ipvsadm 1.31
// does (the name after the address; no flags), and -S | -R | -S is stable.
// conhash is listed with DPVS's hash target.
func TestEverySchedulerListedAndSaved(t *testing.T) {
	names := append(helpSchedulers(t), "twos", "conhash")
	var svcs []*pb.Service
	var wantList, wantSave strings.Builder
	for i, n := range names {
		line := "-A -t 10.0.0." + itoa(i+1) + ":80 -s " + n
		c, err := Parse(args(line), ParseOptions{})
		if err != nil {
			t.Fatalf("%s: %s", line, err.Msg)
		}
		if e := c.CheckGVS(); e != nil {
			t.Fatalf("%s: %s", line, e.Msg)
		}
		p := c.ServicePB()
		if p.GetSched() != n || len(p.GetSchedFlags()) != 0 {
			t.Fatalf("%s: sends %v", line, p)
		}
		svcs = append(svcs, p)
		flags := ""
		if n == "conhash" {
			flags = " sip"
		}
		wantList.WriteString("TCP  10.0.0." + itoa(i+1) + ":80 " + n + flags + "\n")
		wantSave.WriteString(line + "\n")
	}
	// the API answers in another order; ipvsadm sorts by address
	rev := slices.Clone(svcs)
	slices.Reverse(rev)
	head := "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
	if got := (Lister{Format: FmtNumeric}).ListAll(4096, rev); got != head+sortLines(wantList.String()) {
		t.Errorf("-L -n:\n%s\nwant:\n%s", got, head+sortLines(wantList.String()))
	}
	saved := Lister{Format: FmtRule | FmtNumeric}.ListAll(4096, rev)
	if saved != sortLines(wantSave.String()) {
		t.Errorf("-S -n:\n%s\nwant:\n%s", saved, sortLines(wantSave.String()))
	}
	cmds, perr := ParseRestore(strings.NewReader(saved), "ipvsadm", ParseOptions{})
	if perr != nil {
		t.Fatalf("-R: %s", perr.Msg)
	}
	if again := (Lister{Format: FmtRule | FmtNumeric}).ListAll(4096, apply(t, cmds)); again != saved {
		t.Errorf("-S | -R | -S:\n%s\nwant:\n%s", again, saved)
	}
}

// sortLines sorts the lines of s as ipvsadm sorts services here (by
// address: 10.0.0.1, 10.0.0.10, … compare as numbers, not text).
func sortLines(s string) string {
	ls := strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n")
	for i := range ls {
		ls[i] = strings.TrimSuffix(ls[i], "\n")
	}
	num := func(l string) int {
		m := regexp.MustCompile(`10\.0\.0\.(\d+):`).FindStringSubmatch(l)
		n := 0
		for _, c := range m[1] {
			n = n*10 + int(c-'0')
		}
		return n
	}
	slices.SortStableFunc(ls, func(a, b string) int { return num(a) - num(b) })
	return strings.Join(ls, "\n") + "\n"
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// DPVS's --hash-target: sip or qid (compared on three letters), conhash
// only, qid for UDP services only; it travels as the scheduler flag "qid",
// is listed after the scheduler as DPVS lists it and saved (qid only: sip is
// the default) so that -R restores it.
func TestHashTarget(t *testing.T) {
	for _, c := range []struct {
		line  string
		flags []string
	}{
		{"-A -u 10.0.0.1:443 -s conhash --hash-target qid", []string{"qid"}},
		{"-A -u 10.0.0.1:443 --hash-target qidx -s conhash", []string{"qid"}},
		{"-E -t 10.0.0.1:443 -s conhash --hash-target sip", nil},
		{"-A -u 10.0.0.1:443 -s conhash --sched-flags flag-2 --hash-target qid", []string{"flag-2", "qid"}},
	} {
		cmd, err := Parse(args(c.line), ParseOptions{})
		if err != nil {
			t.Fatalf("%s: %s", c.line, err.Msg)
		}
		if e := cmd.CheckGVS(); e != nil {
			t.Fatalf("%s: %s", c.line, e.Msg)
		}
		if got := cmd.ServicePB().GetSchedFlags(); !slices.Equal(got, c.flags) {
			t.Errorf("%s: flags %v, want %v", c.line, got, c.flags)
		}
	}
	for _, c := range []struct{ line, msg string }{
		{"-A -t 10.0.0.1:443 -s conhash --hash-target qid", "qid hash can only be set in udp service"},
		{"-A -u 10.0.0.1:443 -s wlc --hash-target sip", "hash target can only be set when schedule is conhash"},
		{"-A -u 10.0.0.1:443 --hash-target sip", "hash target can only be set when schedule is conhash"},
		{"-A -u 10.0.0.1:443 -s conhash --hash-target dip", "hash target not support"},
		{"-A -u 10.0.0.1:443 -s conhash --hash-target sip --hash-target qid", "multiple 'hash-target' options specified"},
		{"-L --hash-target sip", "Illegal 'hash-target' option with the 'list' command"},
		{"-A -u 10.0.0.1:443 -s conhash --sched-flags qid", "invalid scheduler flag `qid'"},
	} {
		_, err := Parse(args(c.line), ParseOptions{})
		if err == nil || err.Msg != c.msg || err.Code != 2 {
			t.Errorf("%s: got %+v, want %q (exit 2)", c.line, err, c.msg)
		}
	}
	svcs := []*pb.Service{
		{Key: key("UDP", "10.0.0.1", 443), Sched: "conhash", SchedFlags: []string{"flag-2", "qid"}},
		{Key: key("UDP", "10.0.0.2", 443), Sched: "conhash"},
	}
	list := Lister{Format: FmtNumeric}.ListAll(4096, svcs)
	if want := "UDP  10.0.0.1:443 conhash (flag-2) qid\nUDP  10.0.0.2:443 conhash sip\n"; !strings.HasSuffix(list, want) {
		t.Errorf("-L:\n%s\nwant it to end with:\n%s", list, want)
	}
	saved := Lister{Format: FmtRule | FmtNumeric}.ListAll(4096, svcs)
	if want := "-A -u 10.0.0.1:443 -s conhash --sched-flags flag-2 --hash-target qid\n-A -u 10.0.0.2:443 -s conhash\n"; saved != want {
		t.Errorf("-S: %q, want %q", saved, want)
	}
	cmds, perr := ParseRestore(strings.NewReader(saved), "ipvsadm", ParseOptions{})
	if perr != nil {
		t.Fatalf("-R: %s", perr.Msg)
	}
	if again := (Lister{Format: FmtRule | FmtNumeric}).ListAll(4096, apply(t, cmds)); again != saved {
		t.Errorf("-S | -R | -S: %q, want %q", again, saved)
	}
}
