package proxyproto

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func TestV1(t *testing.T) {
	for _, tc := range []struct {
		src, dst string
		want     string
	}{
		{"192.0.2.1:40000", "10.1.0.100:80", "PROXY TCP4 192.0.2.1 10.1.0.100 40000 80\r\n"},
		{"[2001:db8::1]:1", "[fd00:1::100]:443", "PROXY TCP6 2001:db8::1 fd00:1::100 1 443\r\n"},
		{"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
			"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"},
	} {
		src, dst := netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst)
		n := Len(V1, src, dst)
		b := make([]byte, n+3)
		if w := Write(b, V1, 6, src, dst); w != n || string(b[:n]) != tc.want || n > MaxV1Len {
			t.Errorf("%s: %q (%d, Len %d), want %q", tc.src, b[:w], w, n, tc.want)
		}
		if v, m := Parse(append(b[:n:n], "GET /"...)); v != V1 || m != n {
			t.Errorf("%s: Parse = %d, %d", tc.src, v, m)
		}
	}
}

func TestV2(t *testing.T) {
	src, dst := netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("10.1.0.100:80")
	b := make([]byte, 64)
	n := Write(b, V2, 6, src, dst)
	want := append(sigV2[:], 0x21, 0x11, 0, 12, 192, 0, 2, 1, 10, 1, 0, 100, 0x9c, 0x40, 0, 80)
	if n != 28 || Len(V2, src, dst) != 28 || string(b[:n]) != string(want) {
		t.Fatalf("v2 IPv4: % x", b[:n])
	}
	src6, dst6 := netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[fd00:1::100]:443")
	n = Write(b, V2, 17, src6, dst6)
	if n != 52 || b[13] != 0x22 || binary.BigEndian.Uint16(b[14:]) != 36 || binary.BigEndian.Uint16(b[48:]) != 1 || binary.BigEndian.Uint16(b[50:]) != 443 {
		t.Fatalf("v2 IPv6 UDP: % x", b[:n])
	}
	if v, m := Parse(b[:n]); v != V2 || m != 52 {
		t.Errorf("Parse = %d, %d", v, m)
	}
	for _, bad := range [][]byte{b[:20], []byte("PROXY TCP4 1.2.3.4"), []byte("GET / HTTP/1.1\r\n"), nil,
		append([]byte("PROXY "), make([]byte, 200)...)} {
		if v, m := Parse(bad); v != 0 || m != 0 {
			t.Errorf("%q: Parse = %d, %d", bad, v, m)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Write(b, V1, 6, src6, dst6); Write(b, V2, 6, src, dst) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// FuzzParse: any data parses to nothing or to a header that lies within
// it; a written header parses back to its own length.
func FuzzParse(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 10.1.0.100 40000 80\r\nGET /"), uint16(1), uint16(2))
	b := make([]byte, 64)
	f.Add(b[:Write(b, V2, 6, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("10.0.0.1:2"))], uint16(3), uint16(4))
	f.Fuzz(func(t *testing.T, data []byte, sp, dp uint16) {
		v, n := Parse(data)
		if (v == 0) != (n == 0) || n > len(data) || v == V1 && n > MaxV1Len {
			t.Fatalf("Parse = %d, %d for %d bytes", v, n, len(data))
		}
		if len(data) >= 16 {
			src := netip.AddrPortFrom(netip.AddrFrom16([16]byte(data[:16])), sp)
			dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(data[:4])), dp)
			dst = netip.AddrPortFrom(netip.AddrFrom16(dst.Addr().As16()), dp)
			for _, ver := range []int{V1, V2} {
				out := make([]byte, Len(ver, src, dst))
				w := Write(out, ver, 6, src, dst)
				if pv, pn := Parse(out); pv != ver || pn != w || w != len(out) {
					t.Fatalf("v%d: wrote %d, Parse = %d, %d", ver, w, pv, pn)
				}
			}
		}
	})
}
