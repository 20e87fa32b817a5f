package cbpf

import (
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

// frame builds an Ethernet frame carrying TCP or UDP between src:sport and
// dst:dport (IPv4 or IPv6 by the addresses).
func frame(t testing.TB, proto, src string, sport uint16, dst string, dport uint16) []byte {
	t.Helper()
	s, d := net.ParseIP(src), net.ParseIP(dst)
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}
	var l3 gopacket.NetworkLayer
	var ipProto layers.IPProtocol = layers.IPProtocolTCP
	if proto == "udp" {
		ipProto = layers.IPProtocolUDP
	}
	ls := []gopacket.SerializableLayer{eth}
	if s.To4() != nil {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: ipProto, SrcIP: s.To4(), DstIP: d.To4()}
		l3 = ip
		ls = append(ls, ip)
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: ipProto, SrcIP: s, DstIP: d}
		l3 = ip
		ls = append(ls, ip)
	}
	if proto == "udp" {
		u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		u.SetNetworkLayerForChecksum(l3)
		ls = append(ls, u)
	} else {
		tc := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Window: 1024}
		tc.SetNetworkLayerForChecksum(l3)
		ls = append(ls, tc)
	}
	ls = append(ls, gopacket.Payload("hello"))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// requireTcpdump fails when tcpdump is missing: these tests are about
// programs tcpdump really emits (scripts/deps.sh installs it).
func requireTcpdump(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatal("tcpdump is not installed: run scripts/deps.sh (Debian package tcpdump)")
	}
}

func mustFilter(t testing.TB, expr string) *Filter {
	t.Helper()
	raw, err := Compile(expr)
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(raw)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return f
}

func TestCompiledFiltersMatch(t *testing.T) {
	requireTcpdump(t)
	c1to80 := frame(t, "tcp", "10.0.0.1", 40000, "10.0.0.100", 80)
	c2to80 := frame(t, "tcp", "10.0.0.2", 40001, "10.0.0.100", 80)
	c1udp := frame(t, "udp", "10.0.0.1", 5353, "10.0.0.100", 53)
	v6to443 := frame(t, "tcp", "fd00:1::2", 40000, "fd00:1::100", 443)
	all := map[string][]byte{"c1to80": c1to80, "c2to80": c2to80, "c1udp": c1udp, "v6to443": v6to443}
	for _, tc := range []struct {
		expr string
		want []string // names of the frames that match
	}{
		{"host 10.0.0.1", []string{"c1to80", "c1udp"}},
		{"src host 10.0.0.2", []string{"c2to80"}},
		{"tcp", []string{"c1to80", "c2to80", "v6to443"}},
		{"udp", []string{"c1udp"}},
		{"port 80", []string{"c1to80", "c2to80"}},
		{"tcp and src port 40000", []string{"c1to80", "v6to443"}},
		{"host 10.0.0.1 and tcp port 80", []string{"c1to80"}},
		{"ip6 and dst port 443", []string{"v6to443"}},
		{"dst host 10.0.0.100 and not host 10.0.0.2", []string{"c1to80", "c1udp"}},
		{"net 10.0.0.0/24", []string{"c1to80", "c2to80", "c1udp"}},
		{"", []string{"c1to80", "c2to80", "c1udp", "v6to443"}},
	} {
		f := mustFilter(t, tc.expr)
		for name, fr := range all {
			want := false
			for _, w := range tc.want {
				want = want || w == name
			}
			if got := f.Match(fr); got != want {
				t.Errorf("filter %q on %s: match %v, want %v", tc.expr, name, got, want)
			}
		}
		if tc.expr != "" && f.Match(c1to80[:10]) {
			t.Errorf("filter %q matched a truncated frame", tc.expr)
		}
	}
}

func TestCompileErrorNamesExpressionAndFix(t *testing.T) {
	requireTcpdump(t)
	_, err := Compile("host 10.0.0.1 andd port 80")
	if err == nil || !strings.Contains(err.Error(), `"host 10.0.0.1 andd port 80"`) || !strings.Contains(err.Error(), "fix the expression") {
		t.Fatalf("error %v: want it to name the expression and the fix", err)
	}
	_, err = Compiler{Tcpdump: "/nonexistent/tcpdump"}.Compile("tcp")
	if err == nil || !strings.Contains(err.Error(), "apt-get install tcpdump") {
		t.Fatalf("error %v: want it to say how to install tcpdump", err)
	}
}

func TestEmptyAndNilMatchEverything(t *testing.T) {
	f, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	var nilF *Filter
	for _, x := range []*Filter{f, nilF} {
		if !x.Match(nil) || !x.Match([]byte{1, 2, 3}) || x.Len() != 0 {
			t.Errorf("empty filter %v does not match everything", x)
		}
	}
	if raw, err := Compile("  "); err != nil || raw != nil {
		t.Errorf("blank expression: %v %v, want an empty program", raw, err)
	}
}

func TestNewRefusesBadPrograms(t *testing.T) {
	ret := bpf.RawInstruction{Op: 0x06, K: 0xffff}
	for _, tc := range []struct {
		name string
		raw  []bpf.RawInstruction
	}{
		{"jump past the end", []bpf.RawInstruction{{Op: 0x15, Jt: 5, Jf: 0}, ret}},
		{"no return at the end", []bpf.RawInstruction{{Op: 0x28, K: 12}}},
		{"division by zero", []bpf.RawInstruction{{Op: 0x34, K: 0}, ret}},
		{"vlan extension", []bpf.RawInstruction{{Op: 0x30, K: 0xfffff000 + 44}, ret}},
		{"unknown opcode", []bpf.RawInstruction{{Op: 0xff}, ret}},
		{"scratch slot", []bpf.RawInstruction{{Op: 0x02, K: 16}, ret}},
		{"too long", make([]bpf.RawInstruction, MaxInstructions+1)},
	} {
		if _, err := New(tc.raw); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: New returned %v, want ErrInvalid", tc.name, err)
		}
	}
}

func TestQuadsRoundTrip(t *testing.T) {
	raw := []bpf.RawInstruction{{Op: 0x28, K: 12}, {Op: 0x15, Jt: 0, Jf: 1, K: 0x800}, {Op: 0x06, K: 262144}, {Op: 0x06}}
	q := ToQuads(raw)
	if len(q) != 16 || q[4] != 0x15 || q[6] != 1 || q[7] != 0x800 {
		t.Fatalf("quads %v", q)
	}
	back, err := FromQuads(q)
	if err != nil || len(back) != len(raw) {
		t.Fatalf("FromQuads: %v %v", back, err)
	}
	for i := range raw {
		if back[i] != raw[i] {
			t.Errorf("instruction %d: %v, want %v", i, back[i], raw[i])
		}
	}
	for _, bad := range [][]uint32{{1, 2, 3}, {0x10000, 0, 0, 0}, {6, 256, 0, 0}, {6, 0, 256, 0}} {
		if _, err := FromQuads(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("FromQuads(%v) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestParse(t *testing.T) {
	raw, err := Parse([]byte("4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []bpf.RawInstruction{{Op: 40, K: 12}, {Op: 21, Jf: 1, K: 2048}, {Op: 6, K: 262144}, {Op: 6}}
	for i := range want {
		if raw[i] != want[i] {
			t.Errorf("instruction %d: %v, want %v", i, raw[i], want[i])
		}
	}
	for _, bad := range []string{"", "x", "2\n6 0 0 1\n", "1\n6 0 0\n", "1\n70000 0 0 0\n", "1\n6 0 300 0\n", "0\n"} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	requireTcpdump(t)
	f := mustFilter(t, "host 10.0.0.1 and tcp port 80")
	p := frame(t, "tcp", "10.0.0.1", 40000, "10.0.0.100", 80)
	if n := testing.AllocsPerRun(1000, func() { f.Match(p) }); n != 0 {
		t.Errorf("Match allocates %v times per call", n)
	}
}

func BenchmarkMatch(b *testing.B) {
	requireTcpdump(b)
	f := mustFilter(b, "host 10.0.0.1 and tcp port 80")
	p := frame(b, "tcp", "10.0.0.2", 40000, "10.0.0.100", 80)
	b.ReportAllocs()
	for b.Loop() {
		f.Match(p)
	}
}

// FuzzParse: no input makes Parse, FromQuads, New or Match panic; a
// program that parses survives the quad round trip unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte("4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n"), []byte{0x08, 0x00})
	f.Add([]byte("2\n32 0 0 4294963200\n6 0 0 1\n"), []byte{})
	f.Add([]byte("3\n177 0 0 14\n80 0 0 100\n22 0 0 0\n"), make([]byte, 60))
	f.Add([]byte("2\n7 0 0 0\n96 0 0 3\n"), []byte{1})
	f.Fuzz(func(t *testing.T, text, pkt []byte) {
		raw, err := Parse(text)
		if err != nil {
			return
		}
		back, err := FromQuads(ToQuads(raw))
		if err != nil {
			t.Fatalf("FromQuads of a parsed program: %v", err)
		}
		for i := range raw {
			if back[i] != raw[i] {
				t.Fatalf("instruction %d: %v after the round trip, want %v", i, back[i], raw[i])
			}
		}
		flt, err := New(raw)
		if err != nil {
			return
		}
		flt.Match(pkt)
	})
}
