package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestAdmission: deny_list, allow_list, conn_rate_limit, per_source_limit
// and synproxy resolve to masked prefixes in the file's order and plain
// numbers, for IPv4 and IPv6 services; a service without them has none.
func TestAdmission(t *testing.T) {
	c, err := Parse([]byte(`
virtual_servers:
  - name: web
    vip: 10.1.0.100
    port: 80
    deny_list: [192.0.2.7, 198.51.100.0/24, "::ffff:203.0.113.9"]
    allow_list: [10.0.0.0/8]
    conn_rate_limit: 1000
    per_source_limit: 20
    synproxy: true
    local_addresses: [{ip: 10.2.0.100}]
  - name: web6
    vip: fd00:1::100
    port: 443
    deny_list: ["2001:db8::/32", "fd00:9::1"]
    local_addresses: [{ip: "fd00:2::100"}]
  - name: plain
    protocol: UDP
    vip: 10.1.0.100
    port: 53
    local_addresses: [{ip: 10.2.0.100}]
`))
	if err != nil {
		t.Fatal(err)
	}
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	web, web6, plain := c.Services[0], c.Services[1], c.Services[2]
	if want := pfx("192.0.2.7/32", "198.51.100.0/24", "203.0.113.9/32"); !slices.Equal(web.Deny, want) {
		t.Errorf("web deny %v, want %v", web.Deny, want)
	}
	if want := pfx("10.0.0.0/8"); !slices.Equal(web.Allow, want) {
		t.Errorf("web allow %v, want %v", web.Allow, want)
	}
	if web.ConnRateLimit != 1000 || web.PerSourceLimit != 20 || !web.SynProxy {
		t.Errorf("web limits %d/%d synproxy %v, want 1000/20 true", web.ConnRateLimit, web.PerSourceLimit, web.SynProxy)
	}
	if want := pfx("2001:db8::/32", "fd00:9::1/128"); !slices.Equal(web6.Deny, want) || web6.Allow != nil {
		t.Errorf("web6 deny %v allow %v, want %v and none", web6.Deny, web6.Allow, want)
	}
	if plain.Deny != nil || plain.Allow != nil || plain.ConnRateLimit != 0 || plain.PerSourceLimit != 0 || plain.SynProxy {
		t.Errorf("a service without admission settings got %+v", plain)
	}
}

// TestAdmissionErrors: each mistake is refused with the service, the
// field and what to write instead.
func TestAdmissionErrors(t *testing.T) {
	base := "virtual_servers: [{name: web, vip: 10.1.0.100, port: 80, local_addresses: [{ip: 10.2.0.100}], "
	for _, tc := range []struct {
		yaml string
		want []string
	}{
		{"deny_list: [10.1.2.3/8]", []string{`virtual_server "web"`, "deny_list[0]", "host bits set: write 10.0.0.0/8"}},
		{"deny_list: [nonsense]", []string{"deny_list[0]", "not an address or prefix"}},
		{"allow_list: [10.0.0.0/33]", []string{"allow_list[0]", "not a prefix"}},
		{"allow_list: [\"2001:db8::/32\"]", []string{"allow_list[0]", "address family differs from the vip", "IPv4"}},
		{"deny_list: [192.0.2.7, 192.0.2.7/32]", []string{"deny_list[1] 192.0.2.7/32: listed twice (also deny_list[0])", "remove one"}},
		{"deny_list: [\"fe80::1%eth0\"]", []string{"deny_list[0]"}},
		{"conn_rate_limit: -1", []string{"conn_rate_limit -1", "0-4294967295", "0: no limit"}},
		{"per_source_limit: 5000000000", []string{"per_source_limit 5000000000"}},
		{"protocol: UDP, synproxy: true", []string{"synproxy", "TCP services only", "remove synproxy or set protocol: TCP"}},
	} {
		_, err := Parse([]byte(base + tc.yaml + "}]"))
		if err == nil {
			t.Errorf("%s: accepted", tc.yaml)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v\n(wanted %q)", tc.yaml, err, w)
			}
		}
	}
}

// FuzzListEntry: no entry panics; an accepted one is a masked prefix of
// the vip's family that parses back to itself, and a refused one says why.
func FuzzListEntry(f *testing.F) {
	for _, s := range []string{"192.0.2.7", "10.0.0.0/8", "10.1.2.3/8", "2001:db8::/32", "::ffff:1.2.3.4", "::ffff:1.2.3.0/120", "fe80::1%x", "", "/", "1.2.3.4/-1"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, four bool) {
		vip := netip.MustParseAddr("fd00:1::100")
		if four {
			vip = netip.MustParseAddr("10.1.0.100")
		}
		p, msg := parseListEntry(s, vip)
		if msg != "" {
			if p.IsValid() {
				t.Fatalf("%q refused (%s) but gave %s", s, msg, p)
			}
			return
		}
		if !p.IsValid() || p.Masked() != p || p.Addr().Is4() != vip.Is4() || p.Addr().Is4In6() {
			t.Fatalf("%q accepted as %s for %s", s, p, vip)
		}
		if q, msg := parseListEntry(p.String(), vip); msg != "" || q != p {
			t.Fatalf("%q: %s does not parse back (%s, %s)", s, p, q, msg)
		}
	})
}
