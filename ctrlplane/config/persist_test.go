package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestPersistence: keepalived's persistence_timeout, persistence_granularity
// and ops resolve to the dataplane's terms (seconds, a prefix length with 0
// for one client, one-packet), and a port-0 service takes real servers with
// port 0 whose network checks use connect_port.
func TestPersistence(t *testing.T) {
	c, err := Parse([]byte(`
virtual_servers:
  - name: web
    vip: 10.1.0.100
    port: 80
    persistence_timeout: 300
    persistence_granularity: 255.255.255.0
    local_addresses: [{ip: 10.2.0.100}]
    real_servers: [{ip: 10.2.0.11, port: 8080}]
  - name: all
    vip: 10.1.0.100
    port: 0
    persistence_timeout: 10m
    persistence_granularity: /16
    local_addresses: [{ip: 10.2.0.100}]
    sorry_server: {ip: 10.2.0.99, port: 0}
    real_servers:
      - ip: 10.2.0.11
        port: 0
        TCP_CHECK: {connect_port: 22}
        MISC_CHECK: {misc_path: /bin/true}
      - ip: 10.2.0.12
        port: 443
        TCP_CHECK: {}
  - name: host
    vip: 10.1.0.100
    port: 443
    persistence_timeout: 60
    persistence_granularity: 255.255.255.255
    local_addresses: [{ip: 10.2.0.100}]
  - name: dns
    protocol: UDP
    vip: fd00:1::100
    port: 53
    ops: true
    persistence_timeout: 30
    persistence_granularity: 64
    local_addresses: [{ip: "fd00:2::100"}]
  - name: dns-mask
    protocol: UDP
    vip: fd00:1::100
    port: 54
    persistence_timeout: 30
    persistence_granularity: "ffff:ffff:ffff:ff00::"
    local_addresses: [{ip: "fd00:2::100"}]
  - name: plain
    vip: 10.1.0.100
    port: 8080
    local_addresses: [{ip: 10.2.0.100}]
`))
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		key     string
		timeout time.Duration
		prefix  int
		ops     bool
	}
	for i, w := range []want{
		{"TCP 10.1.0.100:80", 300 * time.Second, 24, false},
		{"TCP 10.1.0.100:0", 10 * time.Minute, 16, false},
		{"TCP 10.1.0.100:443", time.Minute, 0, false}, // a full mask is one client: 0
		{"UDP [fd00:1::100]:53", 30 * time.Second, 64, true},
		{"UDP [fd00:1::100]:54", 30 * time.Second, 56, false},
		{"TCP 10.1.0.100:8080", 0, 0, false},
	} {
		s := c.Services[i]
		if s.Key.String() != w.key || s.PersistTimeout != w.timeout || s.PersistPrefix != w.prefix || s.OnePacket != w.ops {
			t.Errorf("service %d: %s timeout %s prefix %d ops %v; want %+v", i, s.Key, s.PersistTimeout, s.PersistPrefix, s.OnePacket, w)
		}
	}
	all := c.Services[1]
	if len(all.Reals) != 2 || all.Reals[0].Addr.String() != "10.2.0.11:0" || all.Reals[1].Addr.String() != "10.2.0.12:443" {
		t.Fatalf("port-0 service's real servers %+v", all.Reals)
	}
	if all.Sorry == nil || all.Sorry.Addr.String() != "10.2.0.99:0" {
		t.Errorf("sorry server %+v", all.Sorry)
	}
	chk := all.Reals[0].Checks
	if len(chk) != 2 || chk[0].Target != netip.MustParseAddrPort("10.2.0.11:22") || chk[1].Kind != MiscCheckKind {
		t.Errorf("checks of the port-0 real server %+v", chk)
	}
	if got := all.Reals[1].Checks[0].Target.String(); got != "10.2.0.12:443" {
		t.Errorf("a fixed-port real server of a port-0 service is checked on %s", got)
	}
}

// TestPortRequired: an absent port is an error even with persistence (an
// all-ports service is asked for with port: 0, never by forgetting the port).
func TestPortRequired(t *testing.T) {
	_, err := Parse([]byte("virtual_servers: [{vip: 10.1.0.100, persistence_timeout: 300, local_addresses: [{ip: 10.2.0.100}]}]"))
	if err == nil || !strings.Contains(err.Error(), "port missing") || !strings.Contains(err.Error(), "port: 0") {
		t.Errorf("a service without a port: %v", err)
	}
	_, err = Parse([]byte("virtual_servers: [{vip: 10.1.0.100, port: 0, persistence_timeout: 300, local_addresses: [{ip: 10.2.0.100}], real_servers: [{ip: 10.2.0.11}]}]"))
	if err == nil || !strings.Contains(err.Error(), "real_servers[0]: port missing") {
		t.Errorf("a real server without a port: %v", err)
	}
}

func TestParseGranularity(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.1.0.100"), netip.MustParseAddr("fd00:1::100")
	for _, tc := range []struct {
		g    string
		vip  netip.Addr
		want int // -1: refused
	}{
		{"255.255.255.0", v4, 24}, {"255.255.254.0", v4, 23}, {"255.255.255.255", v4, 32}, {"128.0.0.0", v4, 1},
		{"0.0.0.0", v4, 0}, {"24", v4, 24}, {"/8", v4, 8}, {"33", v4, -1}, {"-1", v4, -1},
		{"255.255.0.255", v4, -1}, {"255.255.255.1", v4, -1}, {"ffff::", v4, -1}, {"x", v4, -1},
		{"64", v6, 64}, {"/128", v6, 128}, {"ffff:ffff:ffff:ffff::", v6, 64}, {"ffff:fffe::", v6, 31},
		{"ffff::ffff", v6, -1}, {"255.255.255.0", v6, -1}, {"129", v6, -1}, {"fe80::%eth0", v6, -1},
	} {
		n, err := parseGranularity(tc.g, tc.vip)
		if tc.want < 0 {
			if err == nil {
				t.Errorf("%s for %s: accepted as /%d", tc.g, tc.vip, n)
			}
			continue
		}
		if err != nil || n != tc.want {
			t.Errorf("%s for %s: /%d %v, want /%d", tc.g, tc.vip, n, err, tc.want)
		}
	}
}

// FuzzGranularity: no input panics; an accepted mask or length is a prefix
// length of the vip's family, and an accepted mask is exactly the mask of
// that length.
func FuzzGranularity(f *testing.F) {
	for _, s := range []string{"255.255.255.0", "24", "/64", "ffff:ffff::", "255.0.255.0", "", "::", "0"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, g string, four bool) {
		vip := netip.MustParseAddr("fd00:1::100")
		if four {
			vip = netip.MustParseAddr("10.1.0.100")
		}
		n, err := parseGranularity(g, vip)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if n < 0 || n > vip.BitLen() {
			t.Fatalf("%q: /%d for an IPv%d service", g, n, family(vip))
		}
		if m, perr := netip.ParseAddr(g); perr == nil {
			full := netip.IPv4Unspecified()
			if !four {
				full = netip.IPv6Unspecified()
			}
			b := full.AsSlice()
			for i := range b {
				b[i] = 0xff
			}
			ones, _ := netip.AddrFromSlice(b)
			if p := netip.PrefixFrom(ones, n).Masked().Addr(); p != m {
				t.Fatalf("%q read as /%d, whose mask is %s", g, n, p)
			}
		}
	})
}
