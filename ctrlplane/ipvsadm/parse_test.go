package ipvsadm

import (
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// args splits a command line on spaces; a word of two single quotes is
// an empty word.
func args(line string) []string {
	argv := []string{"ipvsadm"}
	for _, w := range strings.Fields(line) {
		if w == "''" {
			w = ""
		}
		argv = append(argv, w)
	}
	return argv
}

var (
	vip  = netip.MustParseAddr("10.0.0.1")
	rip  = netip.MustParseAddr("192.168.0.1")
	vip6 = netip.MustParseAddr("2001:db8::1")
)

func TestParseOK(t *testing.T) {
	type want struct {
		cmd     Cmd
		svc     *ServiceSpec
		dest    *DestSpec
		format  Format
		opts    []Opt
		laddr   string
		ifname  string
		timeout *Timeouts
		socket  string
	}
	tcp := func(a netip.Addr, port uint16, sched string) *ServiceSpec {
		return &ServiceSpec{Proto: protoTCP, Addr: a, Port: port, Sched: sched}
	}
	dest := func(port uint16, fwd Fwd, w int32) *DestSpec {
		return &DestSpec{Addr: rip, Port: port, Fwd: fwd, Weight: w}
	}
	cases := []struct {
		line string
		want want
	}{
		{"", want{cmd: CmdList}},
		{"-A -t 10.0.0.1:80 -s rr", want{cmd: CmdAdd, svc: tcp(vip, 80, "rr")}},
		{"-A -t 10.0.0.1:80", want{cmd: CmdAdd, svc: tcp(vip, 80, "wlc")}},
		{"-At 10.0.0.1:80", want{cmd: CmdAdd, svc: tcp(vip, 80, "wlc")}},
		{"-At10.0.0.1:80", want{cmd: CmdAdd, svc: tcp(vip, 80, "wlc")}},
		{"-At=10.0.0.1:80", want{cmd: CmdAdd, svc: tcp(vip, 80, "wlc")}},
		{"--add-service --tcp-service=10.0.0.1:80 --scheduler=rr", want{cmd: CmdAdd, svc: tcp(vip, 80, "rr")}},
		{"--add-service --tcp-service 10.0.0.1:80 --scheduler rr", want{cmd: CmdAdd, svc: tcp(vip, 80, "rr")}},
		{"-A -t 10.0.0.1:80 -s a-scheduler-name-too-long", want{cmd: CmdAdd, svc: tcp(vip, 80, "a-scheduler-nam")}},
		{"-A -t 10.1:80", want{cmd: CmdAdd, svc: tcp(vip, 80, "wlc")}},
		{"-A -t 0x0a000001:80", want{cmd: CmdAdd, svc: tcp(vip, 80, "wlc")}},
		{"-A -t 012.0.0.1:80", want{cmd: CmdAdd, svc: tcp(vip, 80, "wlc")}},
		{"-A -t 10.0.0.1:http", want{cmd: CmdAdd, svc: tcp(vip, 80, "wlc")}},
		{"-A -u [2001:db8::1]:53 -s sh", want{cmd: CmdAdd, svc: &ServiceSpec{Proto: protoUDP, Addr: vip6, Port: 53, Sched: "sh"}}},
		{"-A -t 10.0.0.1:0 -p", want{cmd: CmdAdd, svc: &ServiceSpec{Proto: protoTCP, Addr: vip, Sched: "wlc", Persistent: true, Timeout: 300}}},
		{"-A -t 10.0.0.1 -p 600", want{cmd: CmdAdd, svc: &ServiceSpec{Proto: protoTCP, Addr: vip, Sched: "wlc", Persistent: true, Timeout: 600}}},
		{"-A -t 10.0.0.1:80 -p600", want{cmd: CmdAdd, svc: &ServiceSpec{Proto: protoTCP, Addr: vip, Port: 80, Sched: "wlc", Persistent: true, Timeout: 600}}},
		{"-A -t 10.0.0.1:80 -p -s rr", want{cmd: CmdAdd, svc: &ServiceSpec{Proto: protoTCP, Addr: vip, Port: 80, Sched: "rr", Persistent: true, Timeout: 300}}},
		{"-A -t 10.0.0.1:80 --persistent=60", want{cmd: CmdAdd, svc: &ServiceSpec{Proto: protoTCP, Addr: vip, Port: 80, Sched: "wlc", Persistent: true, Timeout: 60}}},
		{"-A -t 10.0.0.1:80 -s rr -p", want{cmd: CmdAdd, svc: &ServiceSpec{Proto: protoTCP, Addr: vip, Port: 80, Sched: "rr", Persistent: true, Timeout: 300}}},
		{"-A -t 10.0.0.1:80 -j enable --conn-timeout 90", want{cmd: CmdAdd, svc: &ServiceSpec{Proto: protoTCP, Addr: vip, Port: 80, Sched: "wlc", Synproxy: true, ConnTimeout: 90}}},
		{"-A -t 10.0.0.1:80 --synproxy=disable --conn-timeout=0x10", want{cmd: CmdAdd, svc: &ServiceSpec{Proto: protoTCP, Addr: vip, Port: 80, Sched: "wlc", ConnTimeout: 16}}},
		{"-A -t 10.0.0.1:80 --proxy-protocol disable", want{cmd: CmdAdd, svc: tcp(vip, 80, "wlc")}},
		{"-A -t 10.0.0.1:80 --proxy-protocol V2", want{cmd: CmdAdd, svc: &ServiceSpec{Proto: protoTCP, Addr: vip, Port: 80, Sched: "wlc", ProxyProtocol: "v2"}}},
		{"-A -t 10.0.0.1:80 --sched-flags flag-1,flag-2", want{cmd: CmdAdd, svc: &ServiceSpec{Proto: protoTCP, Addr: vip, Port: 80, Sched: "wlc", SchedFlags: []string{"flag-1", "flag-2"}}}},
		{"-A -t 10.0.0.1:80 --sched-flags sh-port -s sh", want{cmd: CmdAdd, svc: &ServiceSpec{Proto: protoTCP, Addr: vip, Port: 80, Sched: "sh", SchedFlags: []string{"sh-port"}}}},
		{"-E -t 10.0.0.1:80 -s wrr", want{cmd: CmdEdit, svc: tcp(vip, 80, "wrr")}},
		{"-D -t 10.0.0.1:80", want{cmd: CmdDel, svc: tcp(vip, 80, "")}},
		{"-C", want{cmd: CmdFlush}},
		{"--clear", want{cmd: CmdFlush}},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1", want{cmd: CmdAddDest, dest: dest(80, FwdRoute, 1)}},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1:8080", want{cmd: CmdAddDest, dest: dest(80, FwdRoute, 1)}},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1:8080 -i", want{cmd: CmdAddDest, dest: dest(80, FwdTunnel, 1)}},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1:8080 -i --tun-type ipip", want{cmd: CmdAddDest, dest: &DestSpec{Addr: rip, Port: 80, Fwd: FwdTunnel, Weight: 1, TunType: "ipip"}}},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1:8080 -m -w 0 -x 100 -y 10", want{cmd: CmdAddDest, dest: &DestSpec{Addr: rip, Port: 8080, Fwd: FwdMasq, Upper: 100, Lower: 10}}},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1:8080 -b", want{cmd: CmdAddDest, dest: dest(8080, FwdFullNAT, 1)}},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 --fullnat --weight=5", want{cmd: CmdAddDest, dest: dest(80, FwdFullNAT, 5)}},
		{"-a -r 192.168.0.1 -t 10.0.0.1:80 -b", want{cmd: CmdAddDest, dest: dest(80, FwdFullNAT, 1)}},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -J -w +7", want{cmd: CmdAddDest, dest: dest(80, FwdSNAT, 7)}},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -w 65535 -b", want{cmd: CmdAddDest, dest: dest(80, FwdFullNAT, 65535)}},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1:http-alt -b", want{cmd: CmdAddDest, dest: dest(8080, FwdFullNAT, 1)}},
		{"-e -t 10.0.0.1:80 -r 192.168.0.1:81 -b -w 3", want{cmd: CmdEditDest, dest: dest(81, FwdFullNAT, 3)}},
		{"-d -t 10.0.0.1:80 -r 192.168.0.1", want{cmd: CmdDelDest, dest: dest(80, FwdRoute, 1)}},
		{"-d -t 10.0.0.1:80 -r 192.168.0.1:8080", want{cmd: CmdDelDest, dest: dest(8080, FwdRoute, 1)}},
		{"-a -t [2001:db8::1]:80 -r 2001:db8::a -b", want{cmd: CmdAddDest, dest: &DestSpec{Addr: netip.MustParseAddr("2001:db8::a"), Port: 80, Fwd: FwdFullNAT, Weight: 1}}},
		{"-a -t 10.0.0.1:80 -r 2001:db8::a -i", want{cmd: CmdAddDest, dest: &DestSpec{Addr: netip.MustParseAddr("2001:db8::a"), Port: 80, Fwd: FwdTunnel, Weight: 1}}},
		{"-L", want{cmd: CmdList}},
		{"-l", want{cmd: CmdList}},
		{"-Ln", want{cmd: CmdList, format: FmtNumeric, opts: []Opt{OptNumeric}}},
		{"--list --numeric", want{cmd: CmdList, format: FmtNumeric}},
		{"-L -n --stats --exact", want{cmd: CmdList, format: FmtNumeric | FmtStats | FmtExact}},
		{"-L --nosort --sort", want{cmd: CmdList, format: FmtNoSort}},
		{"-L -n --thresholds", want{cmd: CmdList, format: FmtNumeric | FmtThresholds}},
		{"-L -n --tun-info", want{cmd: CmdList, format: FmtNumeric | FmtTunInfo}},
		{"-Lnt 10.0.0.1:80", want{cmd: CmdList, format: FmtNumeric, opts: []Opt{OptService}}},
		{"-L --timeout", want{cmd: CmdList, opts: []Opt{OptTimeout}}},
		{"-L --daemon", want{cmd: CmdList, opts: []Opt{OptDaemon}}},
		{"-Lnc", want{cmd: CmdList, format: FmtNumeric, opts: []Opt{OptConnection}}},
		{"-S -n", want{cmd: CmdSave, format: FmtNumeric}},
		{"--save", want{cmd: CmdSave}},
		{"-R", want{cmd: CmdRestore}},
		{"--set 900 120 300", want{cmd: CmdTimeout, timeout: &Timeouts{900, 120, 300}}},
		{"--set 0 0 2678400", want{cmd: CmdTimeout, timeout: &Timeouts{0, 0, 2678400}}},
		{"-P -t 10.0.0.1:80 -z 10.0.0.200 -F dpdk0", want{cmd: CmdAddLAddr, laddr: "10.0.0.200", ifname: "dpdk0"}},
		{"-Pt 10.0.0.1:80 -z10.0.0.200 -Fdpdk0", want{cmd: CmdAddLAddr, laddr: "10.0.0.200", ifname: "dpdk0"}},
		{"--add-laddr --laddr=10.0.0.200 --tcp-service 10.0.0.1:80 --ifname dpdk0", want{cmd: CmdAddLAddr, laddr: "10.0.0.200", ifname: "dpdk0"}},
		{"-Q -t 10.0.0.1:80 -z 2001:db8::200 -F a-very-long-device-name", want{cmd: CmdDelLAddr, laddr: "2001:db8::200", ifname: "a-very-long-dev"}},
		{"-G", want{cmd: CmdGetLAddr}},
		{"-G -t 10.0.0.1:80", want{cmd: CmdGetLAddr, opts: []Opt{OptService}}},
		{"-Z", want{cmd: CmdZero}},
		{"-h", want{cmd: CmdHelp}},
		{"--help", want{cmd: CmdHelp}},
		{"-h --bogus -x", want{cmd: CmdHelp}},
		{"-v", want{cmd: CmdVersion}},
		{"--version", want{cmd: CmdVersion}},
		{"--start-daemon master --syncid 5 --mcast-interface eth1 --mcast-group 224.0.0.81 --mcast-port 8848 --mcast-ttl 2 --sync-maxlen 1472", want{cmd: CmdStartDaemon}},
		{"--stop-daemon=backup", want{cmd: CmdStopDaemon}},
		{"--socket /x -L", want{cmd: CmdList, socket: "/x"}},
		{"--socket /x", want{cmd: CmdList, socket: "/x"}},
		{"-L --socket=/y -n", want{cmd: CmdList, socket: "/y", format: FmtNumeric}},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			got, err := Parse(args(c.line), ParseOptions{Names: fakeNames{}, AllowSocket: true})
			if err != nil {
				t.Fatalf("error %q (exit %d)", err.Msg, err.Code)
			}
			w := c.want
			if got.Cmd != w.cmd {
				t.Errorf("cmd %v, want %v", got.Cmd, w.cmd)
			}
			if w.svc != nil && !sameService(got.Service, *w.svc) {
				t.Errorf("service %+v, want %+v", got.Service, *w.svc)
			}
			if w.dest != nil {
				g := got.Dest
				g.portGiven = false
				if g != *w.dest {
					t.Errorf("dest %+v, want %+v", g, *w.dest)
				}
			}
			if w.format != 0 && got.Format != w.format {
				t.Errorf("format %b, want %b", got.Format, w.format)
			}
			for _, o := range w.opts {
				if !got.Opts.Has(o) {
					t.Errorf("option %v missing", o)
				}
			}
			if w.laddr != "" && got.LAddr.String() != w.laddr {
				t.Errorf("laddr %v, want %v", got.LAddr, w.laddr)
			}
			if got.IfName != w.ifname {
				t.Errorf("ifname %q, want %q", got.IfName, w.ifname)
			}
			if w.timeout != nil && got.Timeouts != *w.timeout {
				t.Errorf("timeouts %+v, want %+v", got.Timeouts, *w.timeout)
			}
			if got.Socket != w.socket {
				t.Errorf("socket %q, want %q", got.Socket, w.socket)
			}
		})
	}
}

func sameService(a, b ServiceSpec) bool {
	if len(a.SchedFlags) != len(b.SchedFlags) {
		return false
	}
	for i := range a.SchedFlags {
		if a.SchedFlags[i] != b.SchedFlags[i] {
			return false
		}
	}
	a.SchedFlags, b.SchedFlags = nil, nil
	return a.Proto == b.Proto && a.Addr == b.Addr && a.Port == b.Port && a.Sched == b.Sched &&
		a.Persistent == b.Persistent && a.Timeout == b.Timeout && a.Synproxy == b.Synproxy &&
		a.ConnTimeout == b.ConnTimeout && a.ProxyProtocol == b.ProxyProtocol && a.FWMark == b.FWMark
}

const tryHelp = "Try `ipvsadm -h' or 'ipvsadm --help' for more information."

func TestParseErrors(t *testing.T) {
	cases := []struct {
		line string
		msg  string
		code int
	}{
		// the command must come first (tryhelp_exit(-1))
		{"-n -L", tryHelp, 255},
		{"-t 10.0.0.1:80 -A", tryHelp, 255},
		{"foo", tryHelp, 255},
		{"--bogus", tryHelp, 255},
		{"-Kn", tryHelp, 255},
		{"--start-daemon", tryHelp, 255},
		{"-6 -L", tryHelp, 255},
		// popt's errors: "<word>: <poptStrerror>"
		{"-L --bogus", "--bogus: unknown option", 255},
		{"-LK", "-LK: unknown option", 255},
		{"-L -n -K", "-K: unknown option", 255},
		{"-L --list-all", "--list-all: unknown option", 255},
		{"-L --num", "--num: unknown option", 255},
		{"-A -t", "-t: missing argument", 255},
		{"-a -t 10.0.0.1:80 -r", "-r: missing argument", 255},
		{"-L --numeric=1", "--numeric=1: option does not take an argument", 255},
		{"-A -t 10.0.0.1:80 --conn-timeout abc", "abc: invalid numeric value", 255},
		{"-A -t 10.0.0.1:80 --conn-timeout=abc", "--conn-timeout=abc: invalid numeric value", 255},
		{"-A -t 10.0.0.1:80 --conn-timeout 99999999999", "99999999999: number too large or too small", 255},
		{"-L --socket /x", "--socket: unknown option", 255}, // only with AllowSocket
		{"--socket /x foo", tryHelp, 255},
		// a second command is an invalid option, named as popt names it
		{"-A -E", "invalid option `-E'", 2},
		{"-AE", "invalid option `-AE'", 2},
		{"-L -h", "invalid option `-h'", 2},
		{"-L --start-daemon master", "invalid option `master'", 2},
		{"-C -C", "invalid option `-C'", 2},
		// set_option
		{"-A -t 10.0.0.1:80 -s rr -s wlc", "multiple 'scheduler' options specified", 2},
		{"-A -t 10.0.0.1:80 -u 10.0.0.1:53", "multiple 'service-address' options specified", 2},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -b -m", "multiple 'forwarding-method' options specified", 2},
		{"-L -n -n", "multiple 'numeric' options specified", 2},
		// generic_opt_check
		{"-A", "You need to supply the 'service-address' option for the 'add-service' command", 2},
		{"-a -t 10.0.0.1:80", "You need to supply the 'real-server' option for the 'add-server' command", 2},
		{"-d -r 192.168.0.1", "You need to supply the 'service-address' option for the 'delete-server' command", 2},
		{"-A -t 10.0.0.1:80 -b", "Illegal 'forwarding-method' option with the 'add-service' command", 2},
		{"-A -t 10.0.0.1:80 -n", "Illegal 'numeric' option with the 'add-service' command", 2},
		{"-D -t 10.0.0.1:80 -s rr", "Illegal 'scheduler' option with the 'delete-service' command", 2},
		{"-d -t 10.0.0.1:80 -r 192.168.0.1 -w 2", "Illegal 'weight' option with the 'delete-server' command", 2},
		{"-C -n", "Illegal 'numeric' option with the 'flush' command", 2},
		{"-S -c", "Illegal 'connection' option with the 'save' command", 2},
		{"-L -c -t 10.0.0.1:80", "The option 'service-address' conflicts with the 'connection' option in the 'list' command", 2},
		{"-L --timeout --daemon", "The option 'daemon' conflicts with the 'timeout' option in the 'list' command", 2},
		{"-L -c --stats", "options conflicts in the list command", 2},
		{"-L --timeout --thresholds", "options conflicts in the list command", 2},
		{"-L --daemon --persistent-conn", "options conflicts in the list command", 2},
		{"-P -t 10.0.0.1:80 -z 10.0.0.200", "You need to supply the 'ifname' option for the 'add-laddr' command", 2},
		{"-Q -t 10.0.0.1:80 -F dpdk0", "You need to supply the 'local-address' option for the 'del-laddr' command", 2},
		{"-G -z 10.0.0.200", "Illegal 'local-address' option with the 'get-laddr' command", 2},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -j enable", "Illegal 'synproxy' option with the 'add-server' command", 2},
		{"-L --conn-timeout 5", "Illegal 'conn-timeout' option with the 'list' command", 2},
		// process_options
		{"-A -t 10.0.0.1", "Zero port specified for non-persistent service", 2},
		{"-A -t [10.0.0.1]:80", "Zero port specified for non-persistent service", 2},
		{"-A -t 10.0.0.1:80 -o", "One-Packet Scheduling is only for UDP virtual services", 2},
		{"-a -t 10.0.0.1:80 -r 2001:db8::a -b", "Different address family is allowed only for tunneling servers", 2},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -b --tun-type ipip", "Tunnel options conflict with forward method", 2},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 --tun-nocsum", "Tunnel options conflict with forward method", 2},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -i --tun-type gue", "You need to supply the 'tun-port' option for the 'gue' tunnel type", 2},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -i --tun-port 4000", "Illegal 'tun-port' option with the 'ipip' tunnel type", 2},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -i --tun-type gue --tun-port 1 --tun-csum --tun-nocsum",
			"The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type", 2},
		// arguments
		{"-A -t 10.0.0.1:80 -p 0", "invalid timeout value `0' specified", 2},
		{"-A -t 10.0.0.1:80 -p 2678401", "invalid timeout value `2678401' specified", 2},
		{"-A -t 10.0.0.1:80 -p x", "invalid timeout value `x' specified", 2},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -w 65536", "illegal weight specified", 2},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -w -1", "illegal weight specified", 2},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -w 1x", "illegal weight specified", 2},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -w ''", "illegal weight specified", 2},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -x -1", "illegal u_threshold specified", 2},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -y 2147483648", "illegal l_threshold specified", 2},
		{"-A -t 10.0.0.1:65536", "illegal virtual server address[:port] specified", 2},
		{"-A -t 10.0.0.1:", "illegal virtual server address[:port] specified", 2},
		{"-A -t 80", "illegal virtual server address[:port] specified", 2},
		{"-A -t ''", "illegal virtual server address[:port] specified", 2},
		{"-A -t foo.example.com:80", "illegal virtual server address[:port] specified", 2},
		{"-A -t 10.0.0.1:nosuchservice", "illegal virtual server address[:port] specified", 2},
		{"-A -u 10.0.0.1:http-alt", "illegal virtual server address[:port] specified", 2},
		{"-A -t 256.0.0.1:80", "illegal virtual server address[:port] specified", 2},
		{"-A -t 1.2.3.4.5:80", "illegal virtual server address[:port] specified", 2},
		{"-A -t 08.0.0.1:80", "illegal virtual server address[:port] specified", 2},
		{"-A -t [2001:db8::1]", "illegal virtual server address[:port] specified", 2},
		{"-a -t [2001:db8::1]:80 -r [2001:db8::a]", "illegal real server address[:port] specified", 2},
		{"-A -t [2001:db8::1:80", "illegal virtual server address[:port] specified", 2},
		{"-A -t [fe80::1%eth0]:80", "illegal virtual server address[:port] specified", 2},
		{"-a -t 10.0.0.1:80 -r bad", "illegal real server address[:port] specified", 2},
		{"-A -t 10.0.0.1:80 -M 255.255.255.256", "illegal virtual server persistent mask specified", 2},
		{"-A -t [2001:db8::1]:80 -M 129", "illegal ipv6 netmask specified", 2},
		{"-A -t 10.0.0.1:80 -6", "-6 used before -f\n", 2},
		{"-A -f 0", "invalid fwmark value `0' specified", 2},
		{"-A -f 4294967296", "invalid fwmark value `4294967296' specified", 2},
		{"-A -t 10.0.0.1:80 --sched-flags bogus", "invalid scheduler flag `bogus'", 2},
		{"-A -t 10.0.0.1:80 --sched-flags flag-1,,bogus", "invalid scheduler flag `bogus'", 2},
		{"-A -t 10.0.0.1:80 --sched-flags sh-port", "incompatible scheduler flag `sh-port'", 2},
		{"-A -t 10.0.0.1:80 -s sh --sched-flags mh-port", "incompatible scheduler flag `mh-port'", 2},
		{"-A -t 10.0.0.1:80 -j maybe", "synproxy switch must be enable or disable\n", 2},
		{"-A -t 10.0.0.1:80 --conn-timeout -1", "invalid timeout value `-1' specified", 2},
		{"-P -t 10.0.0.1:80 -z bad -F dpdk0", "illegal local address", 2},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -i --tun-type vxlan", "illegal tunnel type specified", 2},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -i --tun-type gue --tun-port 0", "illegal tunnel port specified", 2},
		{"--set 1 2", "--set option requires 3 timeout values", 2},
		{"--set 1 2 x", "invalid timeout value `x' specified", 2},
		{"--set 1 2 2678401", "invalid timeout value `2678401' specified", 2},
		{"--set 1 2 3 4", "unexpected argument 4", 2},
		{"-C foo", "unexpected argument foo", 2},
		{"-A -- -t 10.0.0.1:80", "unexpected argument -t", 2},
		{"-L - -n", "unexpected argument -", 2},
		{"--start-daemon foo", "illegal start-daemon parameter specified", 2},
		{"--stop-daemon foo", "illegal start_daemon specified", 2},
		{"--start-daemon master --syncid 256", "illegal syncid specified", 2},
		{"--start-daemon master --mcast-group 10.0.0.1", "invalid IPv4 mcast-group `10.0.0.1'", 2},
		{"--start-daemon master --mcast-group ff02::zz", "invalid IPv6 mcast-group `ff02::zz'", 2},
		{"--start-daemon master --mcast-port 0", "illegal mcast-port specified", 2},
		{"--start-daemon master --mcast-ttl 256", "illegal mcast-ttl specified", 2},
		{"--start-daemon master --sync-maxlen 65508", "illegal sync-maxlen specified", 2},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			got, err := Parse(args(c.line), ParseOptions{Names: fakeNames{}})
			if err == nil {
				t.Fatalf("parsed as %+v, want error %q", got, c.msg)
			}
			if err.Msg != c.msg || err.Code != c.code {
				t.Errorf("got %q (exit %d), want %q (exit %d)", err.Msg, err.Code, c.msg, c.code)
			}
		})
	}
}

func TestProgramNameInTryHelp(t *testing.T) {
	_, err := Parse([]string{"/sbin/ipvsadm", "-n"}, ParseOptions{})
	if want := "Try `/sbin/ipvsadm -h' or '/sbin/ipvsadm --help' for more information."; err == nil || err.Msg != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestNestedRestore(t *testing.T) {
	_, err := Parse(args("-R"), ParseOptions{Restoring: true})
	if err == nil || err.Msg != tryHelp || err.Code != 255 {
		t.Fatalf("got %v", err)
	}
}

func TestCheckGVS(t *testing.T) {
	cases := []struct{ line, msg string }{
		{"--start-daemon master", "ipvsadm: --start-daemon: not supported yet"},
		{"--stop-daemon backup", "ipvsadm: --stop-daemon: not supported yet"},
		{"-A -f 1", "ipvsadm: --fwmark-service: not supported by GVS"},
		{"-A -f 1 -6", "ipvsadm: --fwmark-service: not supported by GVS"},
		{"-A --sctp-service 10.0.0.1:80", "ipvsadm: --sctp-service: not supported by GVS"},
		{"-A -t 10.0.0.1:80 -M 255.255.255.0", "ipvsadm: --netmask without --persistent: add -p [timeout]"},
		{"-A -t 10.0.0.1:80 -p -M 255.0.255.0", "ipvsadm: --netmask 255.0.255.0: GVS takes contiguous masks only (255.255.255.0, a prefix): give one"},
		{"-A -t 10.0.0.1:80 -p -M 0.0.0.0", "ipvsadm: --netmask 0.0.0.0: one template for every client is not supported by GVS: give a longer mask"},
		{"-A -t 10.0.0.1:80 --pe sip", "ipvsadm: --pe: not supported by GVS"},
		{"-L --syncid 1", "ipvsadm: --syncid: not supported by GVS"},
		{"-A -q 10.0.0.1:0 -p", "ipvsadm: --icmp-service: not supported by GVS"},
		{"-A -t 10.0.0.1:80 --quic", "ipvsadm: --quic: not supported by GVS"},
		{"-A -t 10.0.0.1:80 --dest-check default", "ipvsadm: --dest-check: not supported by GVS"},
		{"-L --cpu 1", "ipvsadm: --cpu: not supported by GVS"},
		{"-U -t 10.0.0.1:80 -k ipset:bad", "ipvsadm: ipset:bad: ipsets are not supported by GVS: give an address or prefix (10.0.0.0/8)"},
		{"-O -t 10.0.0.1:80 -2 2001:db8::/32", "ipvsadm: 2001:db8::/32: the service's clients are of its address family: give an address or prefix of that family"},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			cmd, err := Parse(args(c.line), ParseOptions{})
			if err != nil {
				t.Fatalf("parse: %q", err.Msg)
			}
			gerr := cmd.CheckGVS()
			if gerr == nil || gerr.Msg != c.msg || gerr.Code != 2 {
				t.Errorf("got %v, want %q (exit 2)", gerr, c.msg)
			}
		})
	}
	for _, line := range []string{
		"-A -t 10.0.0.1:80 -s rr -p 60 -j enable --conn-timeout 5 --sched-flags flag-1",
		"-A -t 10.0.0.1:80 --proxy-protocol disable",
		"-A -t 10.0.0.1:80 --proxy-protocol v2", "-E -t 10.0.0.1:80 --proxy-protocol v1-insecure",
		"-a -t 10.0.0.1:80 -r 192.168.0.1 -m", // the dataplane answers forwarding methods itself
		"-a -t 10.0.0.1:80 -r 192.168.0.1 -i --tun-type ipip",
		"-L -n --stats --exact", "-L -n --thresholds", "-L -n --tun-info", "-L --daemon", "-L --timeout",
		"-S -n", "-R", "-C", "--set 1 2 3", "-G", "-P -t 10.0.0.1:80 -z 10.0.0.2 -F dpdk0",
	} {
		cmd, err := Parse(args(line), ParseOptions{})
		if err != nil {
			t.Fatalf("%s: parse: %q", line, err.Msg)
		}
		if gerr := cmd.CheckGVS(); gerr != nil {
			t.Errorf("%s: refused: %q", line, gerr.Msg)
		}
	}
}

func TestRequests(t *testing.T) {
	must := func(line string) *Command {
		t.Helper()
		c, err := Parse(args(line), ParseOptions{})
		if err != nil {
			t.Fatalf("%s: %q", line, err.Msg)
		}
		return c
	}
	k := &pb.ServiceKey{Proto: "TCP", Addr: "10.0.0.1", Port: 80}
	for _, c := range []struct {
		got, want proto.Message
	}{
		{must("-A -t 10.0.0.1:80 -s rr -p 60 -j enable --conn-timeout 5 --sched-flags flag-2").ServicePB(),
			&pb.Service{Key: k, Sched: "rr", SchedFlags: []string{"flag-2"}, Persistent: true, PersistentTimeout: 60, Synproxy: true, ConnTimeout: 5}},
		{must("-E -t 10.0.0.1:80 -s rr --proxy-protocol v1-insecure").ServicePB(),
			&pb.Service{Key: k, Sched: "rr", ProxyProtocol: "v1-insecure"}},
		{must("-E -u [2001:db8::1]:53").ServicePB(),
			&pb.Service{Key: &pb.ServiceKey{Proto: "UDP", Addr: "2001:db8::1", Port: 53}, Sched: "wlc"}},
		{must("-a -t 10.0.0.1:80 -r 192.168.0.1:8080 -b -w 3 -x 10 -y 2").DestPB(),
			&pb.DestRequest{Service: k, Dest: &pb.Dest{Addr: "192.168.0.1", Port: 8080, Weight: 3, Upper: 10, Lower: 2, Fwd: "FullNat"}}},
		{must("-a -t 10.0.0.1:80 -r 192.168.0.1").DestPB(),
			&pb.DestRequest{Service: k, Dest: &pb.Dest{Addr: "192.168.0.1", Port: 80, Weight: 1, Fwd: "Route"}}},
		{must("-d -t 10.0.0.1:80 -r 192.168.0.1:8080").DestPB(),
			&pb.DestRequest{Service: k, Dest: &pb.Dest{Addr: "192.168.0.1", Port: 8080}}},
		{must("-P -t 10.0.0.1:80 -z 10.0.0.200 -F dpdk0").LAddrPB(),
			&pb.LAddrRequest{Service: k, Laddr: &pb.LAddr{Addr: "10.0.0.200", Dev: "dpdk0"}}},
		{must("--set 900 0 300").TimeoutsPB(), &pb.Timeouts{Tcp: 900, Udp: 300}},
	} {
		if !proto.Equal(c.got, c.want) {
			t.Errorf("got %v, want %v", c.got, c.want)
		}
	}
	if must("-L").ServiceKey() != nil {
		t.Error("-L has a service key")
	}
}

func TestPopt(t *testing.T) {
	table := []optDef{
		{"alpha", 'a', argNone, tagAdd},
		{"bravo", 'b', argRequired, tagTCP},
		{"charlie", 'c', argOptional, tagPersistent},
		{"delta", 0, argInt, tagConnTimeout},
	}
	type tok struct {
		tag tag
		arg string
		has bool
		bad string
	}
	cases := []struct {
		line      string
		toks      []tok
		leftovers []string
		err       string
	}{
		{"-ab x y", []tok{{tagAdd, "", false, "-ab"}, {tagTCP, "x", true, "x"}}, []string{"y"}, ""},
		{"-abx", []tok{{tagAdd, "", false, "-abx"}, {tagTCP, "x", true, "-abx"}}, nil, ""},
		{"-ab=x", []tok{{tagAdd, "", false, "-ab=x"}, {tagTCP, "x", true, "-ab=x"}}, nil, ""},
		{"-b -a", []tok{{tagTCP, "-a", true, "-a"}}, nil, ""},
		{"-c -a", []tok{{tagPersistent, "", false, "-c"}, {tagAdd, "", false, "-a"}}, nil, ""},
		{"-c 5 -a", []tok{{tagPersistent, "5", true, "5"}, {tagAdd, "", false, "-a"}}, nil, ""},
		{"-c5", []tok{{tagPersistent, "5", true, "-c5"}}, nil, ""},
		{"-c ''", []tok{{tagPersistent, "", true, ""}}, nil, ""},
		{"-c", []tok{{tagPersistent, "", false, "-c"}}, nil, ""},
		{"--charlie=7 x", []tok{{tagPersistent, "7", true, "--charlie=7"}}, []string{"x"}, ""},
		{"--bravo= ", []tok{{tagTCP, "", true, "--bravo="}}, nil, ""},
		{"x -- -a --bravo", nil, []string{"x", "-a", "--bravo"}, ""},
		{"- -a", []tok{{tagAdd, "", false, "-a"}}, []string{"-"}, ""},
		{"--delta 0x1f", []tok{{tagConnTimeout, "0x1f", true, "0x1f"}}, nil, ""},
		{"--delta 010", []tok{{tagConnTimeout, "010", true, "010"}}, nil, ""},
		{"--delta", nil, nil, "--delta: missing argument"},
		{"-b", nil, nil, "-b: missing argument"},
		{"--alpha=1", nil, nil, "--alpha=1: option does not take an argument"},
		{"-az", []tok{{tagAdd, "", false, "-az"}}, nil, "-az: unknown option"},
		{"--alph", nil, nil, "--alph: unknown option"},
		{"--delta 1.5", nil, nil, "1.5: invalid numeric value"},
		{"--delta -2147483649", nil, nil, "-2147483649: number too large or too small"},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			p := newPopt(args(c.line), table, nil)
			var toks []tok
			err := ""
			for {
				ev, done, perr := p.nextOpt()
				if perr != nil {
					err = perr.bad + ": " + perr.code.String()
					break
				}
				if done {
					break
				}
				toks = append(toks, tok{ev.tag, ev.arg, ev.hasArg, ev.bad})
			}
			if err != c.err {
				t.Errorf("error %q, want %q", err, c.err)
			}
			if len(toks) != len(c.toks) {
				t.Fatalf("options %+v, want %+v", toks, c.toks)
			}
			for i := range toks {
				if toks[i] != c.toks[i] {
					t.Errorf("option %d: %+v, want %+v", i, toks[i], c.toks[i])
				}
			}
			if c.err == "" && strings.Join(p.leftovers, "|") != strings.Join(c.leftovers, "|") {
				t.Errorf("leftovers %q, want %q", p.leftovers, c.leftovers)
			}
		})
	}
}

func TestStrtol(t *testing.T) {
	for _, c := range []struct {
		in       string
		base     int
		n        int64
		rest     string
		overflow bool
	}{
		{"42", 10, 42, "", false},
		{"  -42x", 10, -42, "x", false},
		{"+7", 10, 7, "", false},
		{"0x1F", 0, 31, "", false},
		{"0x", 0, 0, "x", false},
		{"017", 0, 15, "", false},
		{"09", 0, 0, "9", false},
		{"", 10, 0, "", false},
		{"abc", 10, 0, "abc", false},
		{"9223372036854775807", 10, 9223372036854775807, "", false},
		{"9223372036854775808", 10, 9223372036854775807, "", true},
		{"-9223372036854775808", 10, -9223372036854775808, "", false},
		{"-9223372036854775809", 10, -9223372036854775808, "", true},
	} {
		n, rest, of := strtol(c.in, c.base)
		if n != c.n || rest != c.rest || of != c.overflow {
			t.Errorf("strtol(%q, %d) = %d, %q, %v; want %d, %q, %v", c.in, c.base, n, rest, of, c.n, c.rest, c.overflow)
		}
	}
}

func TestInetAton(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1": "10.0.0.1", "10.1": "10.0.0.1", "10.0.1": "10.0.0.1", "167772161": "10.0.0.1",
		"0x0a.0.0.1": "10.0.0.1", "012.0.0.01": "10.0.0.1", "0xa000001": "10.0.0.1",
		"255.255.255.255": "255.255.255.255", "1.2.3.4 junk": "1.2.3.4",
		"256.0.0.1": "", "1.2.3.4.5": "", "1..2": "", "": "", "a.b.c.d": "", "1.2.3.": "",
		"09.0.0.1": "", "1.16777216": "", "4294967296": "",
	} {
		a, ok := inetAton(in)
		got := ""
		if ok {
			got = a.String()
		}
		if got != want {
			t.Errorf("inetAton(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestParseMatch: DPVS's SNAT match services (-H) parse into their
// canonical key; a bad match is refused with the reason.
func TestParseMatchService(t *testing.T) {
	cmd, err := Parse(args("-A -s rr -H proto=udp,src-range=10.2.0.0-10.2.0.255,oif=dp0"), ParseOptions{})
	if err != nil {
		t.Fatalf("parse: %q", err.Msg)
	}
	if gerr := cmd.CheckGVS(); gerr != nil {
		t.Fatalf("CheckGVS: %v", gerr)
	}
	k := cmd.ServiceKey()
	if k.GetProto() != "UDP" || k.GetAddr() != "" || k.GetMatch() != "proto=udp,src-range=10.2.0.0-10.2.0.255:0-0,dst-range=0.0.0.0-0.0.0.0:0-0,iif=,oif=dp0" {
		t.Errorf("key %v", k)
	}
	cmd, err = Parse(args("-a -H proto=tcp,dst-range=[2001:db8::1-2001:db8::9]:80-80 -r [2001:db8::100]:0 -J -w 100"), ParseOptions{})
	if err != nil {
		t.Fatalf("parse: %q", err.Msg)
	}
	if cmd.Dest.Fwd != FwdSNAT || cmd.Dest.Port != 0 || cmd.Service.Proto != protoTCP {
		t.Errorf("dest %+v", cmd.Dest)
	}
	if _, err := Parse(args("-A -s rr -H proto=tcp,src-range=10.0.0.9-10.0.0.1"), ParseOptions{}); err == nil || !strings.Contains(err.Msg, "illegal match specified") || !strings.Contains(err.Msg, "above") {
		t.Errorf("bad range: %v", err)
	}
}
