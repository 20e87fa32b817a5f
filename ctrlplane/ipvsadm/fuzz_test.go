package ipvsadm

import (
	"strings"
	"testing"
)

// FuzzParse feeds command lines (words separated by NUL) to the parser
// and everything downstream of it: none of it may panic, and every error
// carries one of ipvsadm's exit codes.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"-A -t 10.0.0.1:80 -s rr -p",
		"-a -t [2001:db8::1]:80 -r 2001:db8::a -b -w 3 -x 1 -y 0",
		"-Ln --stats --exact", "-Lnc", "-S -n", "--set 1 2 3", "-P -t 10.0.0.1:80 -z 10.0.0.2 -F dpdk0",
		"-A -t 10.0.0.1:80 --sched-flags flag-1,,x", "-A -t 10.0.0.1:80 --conn-timeout=0x7fffffff",
		"-At=[::1]:http -p5", "-A -- -t", "-i --tun-type gue --tun-port 1 --tun-csum", "-f 1 -6 -M 64",
		"--start-daemon master --mcast-group ff02::1", "-A -H proto=tcp", "--socket /x -L",
	} {
		f.Add(strings.ReplaceAll(s, " ", "\x00"))
	}
	f.Fuzz(func(t *testing.T, line string) {
		argv := append([]string{"ipvsadm"}, strings.Split(line, "\x00")...)
		c, err := Parse(argv, ParseOptions{Names: fakeNames{}, AllowSocket: true})
		if err != nil {
			switch err.Code {
			case ExitFail, ExitMinus1:
			default:
				t.Fatalf("exit code %d for %q", err.Code, err.Msg)
			}
			return
		}
		_ = c.CheckGVS()
		_ = c.ServiceKey()
		_ = c.ServicePB()
		_ = c.DestPB()
		_ = c.LAddrPB()
		_ = c.TimeoutsPB()
	})
}

// FuzzRestore feeds -R input to the reader and the parser.
func FuzzRestore(f *testing.F) {
	f.Add(savedNumeric)
	f.Add("# c\nipvsadm -C\n\n-A -t 10.0.0.1:80 # x\r\n-L\t-n")
	f.Fuzz(func(t *testing.T, in string) {
		cmds, err := ParseRestore(strings.NewReader(in), "ipvsadm", ParseOptions{Names: fakeNames{}})
		if err != nil && !strings.HasPrefix(err.Msg, "ipvsadm: line ") {
			t.Fatalf("error without a line number: %q", err.Msg)
		}
		for _, c := range cmds {
			if c.Line < 1 {
				t.Fatalf("line %d", c.Line)
			}
		}
	})
}
