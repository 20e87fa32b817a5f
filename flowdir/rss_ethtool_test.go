package flowdir

import (
	"errors"
	"net/netip"
	"testing"
)

// what ethtool -x prints for a 4-queue NIC with the verification key
const ethtoolX = `RX flow hash indirection table for eth1 with 4 RX ring(s):
    0:      0     1     2     3     0     1     2     3
    8:      0     1     2     3     0     1     2     3
RSS hash key:
6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0:d0:ca:2b:cb:ae:7b:30:b4:77:cb:2d:a3:80:30:f2:0c:6a:42:b7:3b:be:ac:01:fa
RSS hash function:
    toeplitz: on
    xor: off
`

func TestParseRSS(t *testing.T) {
	f, err := ParseRSS([]byte(ethtoolX), 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.RETA) != 16 || f.RETA[5] != 1 || f.RETA[15] != 3 {
		t.Errorf("RETA = %v", f.RETA)
	}
	// the key read back gives the published hash
	h := f.Hash.Hash4Tuple(netip.MustParseAddr("66.9.149.187"), netip.MustParseAddr("161.142.100.80"), 2794, 1766, true)
	if h != 0x51ccc178 {
		t.Errorf("hash with the parsed key = %#x", h)
	}
	if q := f.Queue(h); q != int(f.RETA[h%16]) {
		t.Errorf("queue %d", q)
	}
	for _, bad := range []string{"", "RSS hash key:\nzz:01\n", "Operation not supported"} {
		if _, err := ParseRSS([]byte(bad), 4); !errors.Is(err, ErrNoRSS) {
			t.Errorf("ParseRSS(%q) = %v", bad, err)
		}
	}
}
