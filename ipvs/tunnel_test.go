package ipvs

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// TestTunnelDestValidate: the tunnel options LVS and ipvsadm accept per
// type, the port and family rules, and tunnel options refused on other
// methods.
func TestTunnelDestValidate(t *testing.T) {
	k := ServiceKey{Proto: TCP, Addr: netip.MustParseAddr("10.1.0.100"), Port: 80}
	rs := netip.MustParseAddrPort("192.0.2.11:80")
	for _, c := range []struct {
		d    DestSpec
		want string // "" valid, else a part of the error
	}{
		{DestSpec{Addr: rs, Fwd: FwdTunnel}, ""},
		{DestSpec{Addr: netip.MustParseAddrPort("192.0.2.11:0"), Fwd: FwdTunnel}, "port 0"},
		{DestSpec{Addr: rs, Fwd: FwdTunnel, TunType: TunGUE, TunPort: 6080}, ""},
		{DestSpec{Addr: rs, Fwd: FwdTunnel, TunType: TunGUE, TunPort: 6080, TunFlags: TunRemCsum}, ""},
		{DestSpec{Addr: rs, Fwd: FwdTunnel, TunType: TunGUE}, "add --tun-port"},
		{DestSpec{Addr: rs, Fwd: FwdTunnel, TunType: TunGUE, TunPort: 1, TunFlags: TunCsum | TunRemCsum}, "give one of"},
		{DestSpec{Addr: rs, Fwd: FwdTunnel, TunType: TunGRE, TunFlags: TunCsum}, ""},
		{DestSpec{Addr: rs, Fwd: FwdTunnel, TunType: TunGRE, TunFlags: TunRemCsum}, "not --tun-remcsum"},
		{DestSpec{Addr: rs, Fwd: FwdTunnel, TunType: TunGRE, TunPort: 1}, "drop --tun-port"},
		{DestSpec{Addr: rs, Fwd: FwdTunnel, TunPort: 1}, "ipip tunnel takes no"},
		{DestSpec{Addr: rs, Fwd: FwdTunnel, TunType: 7}, "use ipip, gue or gre"},
		{DestSpec{Addr: netip.MustParseAddrPort("192.0.2.11:8080"), Fwd: FwdTunnel}, "cannot change the port"},
		{DestSpec{Addr: netip.MustParseAddrPort("[2001:db8::11]:80"), Fwd: FwdTunnel}, "other address family"},
		{DestSpec{Addr: rs, Fwd: FwdRoute, TunType: TunGRE}, "use -i"},
		{DestSpec{Addr: rs, Fwd: FwdFullNAT, TunFlags: TunCsum}, "use -i"},
	} {
		err := c.d.Validate(k)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.d, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: %v, want an error with %q", c.d, err, c.want)
		case c.want != "" && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotSupported):
			t.Errorf("%+v: %v wraps neither ErrInvalid nor ErrNotSupported", c.d, err)
		}
	}
}
