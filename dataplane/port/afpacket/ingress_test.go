//go:build linux

package afpacket

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/vishvananda/netlink"

	"github.com/gvs-lb/gvs/dataplane/port"
)

// TestIngressDrop gives the driver's end an address and pings it from the
// peer: the driver sees the request, the kernel never does (no reply, its
// ICMP counters still) — until Close, after which the kernel answers.
func TestIngressDrop(t *testing.T) {
	l := newLab(t)
	l.ipA("ip", "addr", "add", "10.77.0.1/24", "dev", devA)
	l.ipB("ip", "addr", "add", "10.77.0.2/24", "dev", devB)
	p := l.open(port.Config{}, Options{})
	peer := l.peer()

	fs := l.ingressFilters()
	if len(fs) != 1 || fs[0].handle != dropFilterHandle || fs[0].prio != 1 {
		t.Fatalf("ingress filters after Open: %+v, want GVS's drop filter alone at priority 1", fs)
	}
	if !l.hasClsact() {
		t.Fatal("no clsact qdisc after Open")
	}

	echo := func(seq uint16) []byte {
		return frame(t,
			&layers.Ethernet{SrcMAC: peer.mac, DstMAC: p.MAC(), EthernetType: layers.EthernetTypeIPv4},
			&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4,
				SrcIP: net.IPv4(10, 77, 0, 2), DstIP: net.IPv4(10, 77, 0, 1)},
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 0x4756, Seq: seq},
			gopacket.Payload("gvs afpacket ingress drop"))
	}
	before := l.snmp("Icmp", "InEchos")
	req := echo(1)
	peer.send(req)
	got := flat(collect(t, []port.Queue{p.Queue(0)}, waitFor, func(g [][][]byte) bool { return contains(flat(g), req) }))
	sameFrames(t, "driver rx", got, [][]byte{req})
	if r := peer.echoReply(300 * time.Millisecond); r != nil {
		t.Errorf("kernel answered the echo request behind the driver's back:\n%s", describe(r))
	}
	if after := l.snmp("Icmp", "InEchos"); after != before {
		t.Errorf("kernel counted %d echo requests with the ingress drop installed", after-before)
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if fs := l.ingressFilters(); len(fs) != 0 {
		t.Errorf("ingress filters after Close: %+v", fs)
	}
	if l.hasClsact() {
		t.Error("clsact qdisc left after Close")
	}
	peer.send(echo(2))
	if r := peer.echoReply(waitFor); r == nil {
		t.Error("no echo reply from the kernel after Close")
	}
}

// TestIngressDropLeavesOthersAlone checks that Open goes in front of a
// foreign filter, replaces a stale GVS filter, and that Close removes only
// its own filter; with KeepKernelIngress nothing is installed; and that a
// foreign filter holding priority 1 fails Open with a useful error.
func TestIngressDropLeavesOthersAlone(t *testing.T) {
	l := newLab(t)
	l.ipA("tc", "qdisc", "add", "dev", devA, "clsact")
	l.ipA("tc", "filter", "add", "dev", devA, "ingress", "prio", "10", "handle", "7", "bpf", "bytecode", "1,6 0 0 0")
	l.ipA("tc", "filter", "add", "dev", devA, "ingress", "prio", "5", "handle", "0x67760001", "bpf", "bytecode", "1,6 0 0 2", "da")

	p := l.open(port.Config{}, Options{})
	fs := l.ingressFilters()
	if len(fs) != 2 || fs[0] != (tcFilter{9, dropFilterHandle}) || fs[1] != (tcFilter{10, 7}) {
		t.Errorf("filters after Open: %+v, want GVS's at 9 in front of the foreign one at 10, the stale one gone", fs)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if fs := l.ingressFilters(); len(fs) != 1 || fs[0] != (tcFilter{10, 7}) {
		t.Errorf("filters after Close: %+v, want the foreign one only", fs)
	}
	if !l.hasClsact() {
		t.Error("Close removed a clsact qdisc it had not added")
	}

	p = l.open(port.Config{}, Options{KeepKernelIngress: true})
	if fs := l.ingressFilters(); len(fs) != 1 {
		t.Errorf("filters with KeepKernelIngress: %+v", fs)
	}
	p.Close()

	l.ipA("tc", "filter", "add", "dev", devA, "ingress", "prio", "1", "handle", "8", "bpf", "bytecode", "1,6 0 0 0")
	var err error
	l.in(l.nsA, func() { _, err = Open(port.Config{Name: "dp3", Device: devA}) })
	if err == nil || !strings.Contains(err.Error(), "afpacket: open dp3: drop kernel ingress on afp0: ") ||
		!strings.Contains(err.Error(), "priority 1") {
		t.Errorf("Open with priority 1 taken: %v", err)
	}
}

type tcFilter struct {
	prio   uint16
	handle uint32
}

// ingressFilters lists the filters on afp0's ingress hook, by priority.
func (l *lab) ingressFilters() []tcFilter {
	l.t.Helper()
	h, err := netlink.NewHandleAt(l.nsA)
	if err != nil {
		l.t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName(devA)
	if err != nil {
		l.t.Fatal(err)
	}
	list, err := h.FilterList(link, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		l.t.Fatal(err)
	}
	var fs []tcFilter
	for _, f := range list {
		a := f.Attrs()
		if a.Handle == 0 {
			continue // the priority's chain head, not a filter
		}
		fs = append(fs, tcFilter{a.Priority, a.Handle})
	}
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && fs[j].prio < fs[j-1].prio; j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
	return fs
}

func (l *lab) hasClsact() bool {
	l.t.Helper()
	return strings.Contains(l.ipA("tc", "qdisc", "show", "dev", devA), "clsact")
}

// snmp reads one counter of namespace A's /proc/net/snmp.
func (l *lab) snmp(group, name string) int {
	l.t.Helper()
	lines := strings.Split(l.ipA("cat", "/proc/net/snmp"), "\n")
	for i := 0; i+1 < len(lines); i++ {
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(keys) == 0 || keys[0] != group+":" || len(vals) != len(keys) {
			continue
		}
		for j, k := range keys {
			if k == name {
				v, err := strconv.Atoi(vals[j])
				if err != nil {
					l.t.Fatal(err)
				}
				return v
			}
		}
	}
	l.t.Fatalf("no %s %s in /proc/net/snmp", group, name)
	return 0
}

// echoReply waits for an ICMP echo reply to id 0x4756 on the peer.
func (p *peer) echoReply(timeout time.Duration) []byte {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f := p.recv(time.Until(deadline))
		if f == nil {
			return nil
		}
		pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		if icmp, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok &&
			icmp.TypeCode.Type() == layers.ICMPv4TypeEchoReply && icmp.Id == 0x4756 {
			return f
		}
	}
}
