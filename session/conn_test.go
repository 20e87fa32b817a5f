package session

import (
	"net/netip"
	"reflect"
	"testing"
	"unsafe"

	"github.com/gvs-lb/gvs/header"
)

func TestSizes(t *testing.T) {
	if s := unsafe.Sizeof(Conn{}); s > 96 {
		t.Errorf("Conn is %d bytes, budget 96", s)
	}
	if s := unsafe.Sizeof(slot{}); s != 8 {
		t.Errorf("index slot is %d bytes, want 8", s)
	}
	t.Logf("Conn %d bytes, Key %d bytes, slot %d bytes", unsafe.Sizeof(Conn{}), unsafe.Sizeof(Key{}), unsafe.Sizeof(slot{}))
}

// hasPointers reports whether values of type typ contain pointers.
func hasPointers(typ reflect.Type) bool {
	switch typ.Kind() {
	case reflect.Array:
		return typ.Len() > 0 && hasPointers(typ.Elem())
	case reflect.Struct:
		for i := range typ.NumField() {
			if hasPointers(typ.Field(i).Type) {
				return true
			}
		}
		return false
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	}
	return true
}

func TestBulkStatePointerFree(t *testing.T) {
	for _, v := range []any{Conn{}, slot{}, Key{}} {
		if hasPointers(reflect.TypeOf(v)) {
			t.Errorf("%T contains pointers: the GC would scan the slab", v)
		}
	}
}

func TestConnAccessors(t *testing.T) {
	tests := []struct {
		name                    string
		proto                   uint8
		client, vip, local, dst string
		v6                      bool
		state                   State
	}{
		{"v4 TCP", header.ProtoTCP, "192.0.2.1:40000", "198.51.100.1:80", "10.0.0.1:1025", "10.0.1.2:8080", false, StateNone},
		{"v6 UDP", header.ProtoUDP, "[2001:db8::1]:5353", "[2001:db8::80]:53", "[fd00::1]:2000", "[fd00::2]:53", true, StateUDP},
		{"NAT64", header.ProtoTCP, "[2001:db8::1]:40000", "[2001:db8::80]:443", "10.0.0.1:1025", "10.0.1.2:443", true, StateNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConn(tc.proto, ap(tc.client), ap(tc.vip), ap(tc.local), ap(tc.dst))
			for _, f := range []struct {
				got  netip.AddrPort
				want string
			}{{c.CAddrPort(), tc.client}, {c.VAddrPort(), tc.vip}, {c.LAddrPort(), tc.local}, {c.DAddrPort(), tc.dst}} {
				if f.got != ap(f.want) {
					t.Errorf("got %v, want %v", f.got, f.want)
				}
			}
			if got := c.Flags&FlagIPv6 != 0; got != tc.v6 {
				t.Errorf("FlagIPv6 = %v, want %v", got, tc.v6)
			}
			if c.State != tc.state {
				t.Errorf("State = %v, want %v", c.State, tc.state)
			}
			in, out := c.InKey(), c.OutKey()
			if in != MakeKey(tc.proto, ap(tc.client), ap(tc.vip)) {
				t.Errorf("InKey = %v", in)
			}
			if out != MakeKey(tc.proto, ap(tc.dst), ap(tc.local)) {
				t.Errorf("OutKey = %v", out)
			}
			if !c.matchIn(&in) || c.matchIn(&out) || !c.matchOut(&out) || c.matchOut(&in) {
				t.Error("matchIn/matchOut disagree with InKey/OutKey")
			}
		})
	}
}

func TestConnV4Mapped(t *testing.T) {
	var c Conn
	c.SetCAddrPort(ap("192.0.2.1:1"))
	want := [16]byte{10: 0xff, 11: 0xff, 12: 192, 13: 0, 14: 2, 15: 1}
	if c.CAddr != want {
		t.Fatalf("CAddr = %x, want v4-mapped %x", c.CAddr, want)
	}
	// a v4-mapped input is the same IPv4 client
	c.SetCAddrPort(netip.AddrPortFrom(netip.AddrFrom16(want), 1))
	if c.CAddr != want || c.Flags&FlagIPv6 != 0 {
		t.Fatalf("v4-mapped input: CAddr %x flags %b", c.CAddr, c.Flags)
	}
}
