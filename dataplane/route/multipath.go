package route

// Multipath routes. A route with two or more next hops spreads flows over
// them by hash-threshold (RFC 2992, what Linux does for IPv4 and IPv6
// multipath routes): the 32-bit hash of a packet's flow falls into one of
// the next hops' ranges, sized by weight. A flow's packets always carry the
// same 5-tuple, so they always take the same next hop; different flows
// spread in proportion to the weights, and removing one next hop moves
// only the flows whose range changed.
//
// The hash reads the validated IP packet in place (FlowHash), and only
// when the route found is multipath: single-path routes cost nothing more.
// Next hops are chosen by a scan of a few entries: no allocation.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// MaxNextHops bounds the next hops of one route.
const MaxNextHops = 64

// MaxWeight is the largest next-hop weight (iproute2's range is 1-256).
const MaxWeight = 256

// NextHop is one path of a multipath route.
type NextHop struct {
	Gateway netip.Addr // invalid: the destination is on the link of Iface
	Iface   uint16
	Weight  uint16 // 1-MaxWeight; 0 is taken as 1
	bound   uint32 // the highest flow hash taking this next hop (set by New)
}

func (n NextHop) weight() uint64 {
	if n.Weight == 0 {
		return 1
	}
	return uint64(n.Weight)
}

// ErrNextHop reports an invalid set of next hops.
var ErrNextHop = errors.New("invalid next hops")

// prepareMultipath validates r's next hops, fills Gateway and Iface from
// the first one (so code that ignores multipath still finds a usable path)
// and computes the hash ranges. One next hop folds into a plain route.
func prepareMultipath(r *Route) error {
	switch n := len(r.NextHops); {
	case n == 0:
		return nil
	case n == 1:
		r.Gateway, r.Iface, r.NextHops = r.NextHops[0].Gateway, r.NextHops[0].Iface, nil
		return nil
	case n > MaxNextHops:
		return fmt.Errorf("route %s: %d next hops, at most %d: %w", r.Dst, n, MaxNextHops, ErrNextHop)
	}
	r.NextHops = slices.Clone(r.NextHops) // the table owns its copy
	var total uint64
	for i, nh := range r.NextHops {
		if nh.Weight > MaxWeight {
			return fmt.Errorf("route %s nexthop %d: weight %d, use 1-%d: %w", r.Dst, i+1, nh.Weight, MaxWeight, ErrNextHop)
		}
		if nh.Gateway.IsValid() && nh.Gateway.Is4() != r.Dst.Addr().Is4() {
			return fmt.Errorf("route %s nexthop via %s: address families differ: %w", r.Dst, nh.Gateway, ErrNextHop)
		}
		for _, o := range r.NextHops[:i] {
			if o.Gateway == nh.Gateway && o.Iface == nh.Iface {
				return fmt.Errorf("route %s: next hop %s given twice: %w", r.Dst, nh.Gateway, ErrNextHop)
			}
		}
		total += nh.weight()
	}
	var cum uint64
	for i := range r.NextHops {
		cum += r.NextHops[i].weight()
		// the range of next hop i ends at cum/total of the hash space
		r.NextHops[i].bound = uint32((cum<<32)/total - 1)
	}
	r.NextHops[len(r.NextHops)-1].bound = math.MaxUint32
	r.Gateway, r.Iface = r.NextHops[0].Gateway, r.NextHops[0].Iface
	return nil
}

// Multipath reports whether r has several next hops.
func (r *Route) Multipath() bool { return len(r.NextHops) > 1 }

// Path returns the next hop (the address to resolve on the link) and the
// outgoing interface for dst; hash is FlowHash of the packet and matters
// only for multipath routes.
func (r *Route) Path(dst netip.Addr, hash uint32) (netip.Addr, uint16) {
	gw, ifc := r.Gateway, r.Iface
	if len(r.NextHops) > 1 {
		for i := range r.NextHops {
			if nh := &r.NextHops[i]; hash <= nh.bound {
				gw, ifc = nh.Gateway, nh.Iface
				break
			}
		}
	}
	if gw.IsValid() {
		return gw, ifc
	}
	return dst, ifc
}

// HasGateway reports whether gw is the gateway of r or of one of its next
// hops.
func (r *Route) HasGateway(gw netip.Addr) bool {
	if r.Gateway == gw {
		return true
	}
	for _, nh := range r.NextHops {
		if nh.Gateway == gw {
			return true
		}
	}
	return false
}

// mum multiplies to 128 bits and folds the halves (the wyhash mix): one
// multiplication spreads every input bit over the result.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// Keys of the flow hash (arbitrary odd constants: the hash needs to spread
// flows, not to resist an adversary — a flow cannot pick its next hop
// without also picking its addresses).
const (
	k0 = 0xa0761d6478bd642f
	k1 = 0xe7037ed1a0b428db
	k2 = 0x8ebc6af09c88c6e3
	k3 = 0x589965cc75374cc3
)

// FlowHash hashes the flow of a validated IPv4 or IPv6 packet: addresses,
// protocol and, for TCP and UDP, the ports (not for IPv4 fragments, so
// that every fragment of a datagram takes the same path). It reads l3 in
// place and never allocates; a packet too short for its ports hashes
// without them.
func FlowHash(l3 []byte) uint32 {
	if len(l3) < 20 {
		return 0
	}
	var h uint64
	var proto uint8
	var l4 []byte
	switch l3[0] >> 4 {
	case 4:
		ihl := int(l3[0]&0xf) * 4
		proto = l3[9]
		h = binary.BigEndian.Uint64(l3[12:20])                     // source and destination
		fragmented := binary.BigEndian.Uint16(l3[6:8])&0x3fff != 0 // MF or an offset
		if !fragmented && ihl >= 20 && len(l3) >= ihl {
			l4 = l3[ihl:]
		}
	case 6:
		if len(l3) < 40 {
			return 0
		}
		proto = l3[6]
		h = mum(binary.BigEndian.Uint64(l3[8:16])^k0, binary.BigEndian.Uint64(l3[16:24])^k1) ^
			mum(binary.BigEndian.Uint64(l3[24:32])^k2, binary.BigEndian.Uint64(l3[32:40])^k3)
		l4 = l3[40:]
	default:
		return 0
	}
	var ports uint64
	if (proto == 6 || proto == 17) && len(l4) >= 4 {
		ports = uint64(binary.BigEndian.Uint32(l4[:4]))
	}
	h = mum(h^k0, (ports<<8|uint64(proto))^k1)
	h = mum(h^k2, k3) // finish: the split uses the top bits as much as the low ones
	return uint32(h) ^ uint32(h>>32)
}

// nextHopsString formats r's next hops as iproute2 lists them, one per
// line after a tab; ifname names interface indexes.
func (r Route) nextHopsString(ifname func(uint16) string) string {
	var b strings.Builder
	for _, nh := range r.NextHops {
		b.WriteString("\n\tnexthop")
		if nh.Gateway.IsValid() {
			b.WriteString(" via " + nh.Gateway.String())
		}
		b.WriteString(" dev " + ifname(nh.Iface) + " weight " + strconv.FormatUint(nh.weight(), 10))
	}
	return b.String()
}

// NextHopsString formats the next hops of a multipath route as iproute2
// lists them ("\n\tnexthop via GW dev D weight W" each), "" for others.
func (r Route) NextHopsString(ifname func(uint16) string) string {
	if !r.Multipath() {
		return ""
	}
	return r.nextHopsString(ifname)
}
