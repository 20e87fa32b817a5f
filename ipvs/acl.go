package ipvs

// Deny and allow lists (DPVS's blklst and whtlst) of a service: client
// addresses and prefixes, checked by the workers before a new connection
// is scheduled and on every client packet of an existing one (as DPVS
// checks them on every packet it looks a connection up for).
//
// The model keeps each list as the operator gave it (masked prefixes, in
// order) for listings; the Table carries a PrefixSet compiled from it: the
// prefixes merged into sorted, disjoint address ranges per family, so a
// lookup is one binary search over a pointer-free slice — no allocation,
// no lock, O(log n) for any mix of overlapping prefixes. A list change
// rebuilds the table like any other change (Manager.update) and workers
// see it at their next loop iteration.

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// ACLKind names one of a service's two lists.
type ACLKind uint8

const (
	// ACLDeny is the deny list (DPVS blklst): its clients are dropped.
	ACLDeny ACLKind = iota + 1
	// ACLAllow is the allow list (DPVS whtlst): when it has entries, only
	// its clients get through.
	ACLAllow
)

func (k ACLKind) String() string {
	switch k {
	case ACLDeny:
		return "deny list"
	case ACLAllow:
		return "allow list"
	}
	return "list"
}

// MaxACLEntries bounds each list of a service, so that what an operator
// (or a runaway script) adds stays a bounded amount of memory and of
// rebuild time.
const MaxACLEntries = 1 << 20

// Errors of the list mutators (wrapped with the service and the prefix).
var (
	ErrACLExists = errors.New("Entry already exists")
	ErrNoACL     = errors.New("No such entry")
)

// ParseACLPrefix parses a list entry: an address ("10.1.2.3", "2001:db8::1")
// or a prefix ("10.0.0.0/8"); host bits of a prefix are masked off, an
// IPv4-mapped IPv6 address is taken as IPv4.
func ParseACLPrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: a list entry has no zone: drop it: %w", s, ErrInvalid)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q: not an address or prefix (give 192.0.2.7, 10.0.0.0/8 or 2001:db8::/32): %w", s, ErrInvalid)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// u128 is an IPv6 address as a number.
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

func (a u128) inc() (u128, bool) {
	a.lo++
	if a.lo == 0 {
		a.hi++
		return a, a.hi == 0
	}
	return a, false
}

type range4 struct{ lo, hi uint32 }
type range6 struct{ lo, hi u128 }

// PrefixSet is an immutable set of client prefixes. The zero value and nil
// are empty.
type PrefixSet struct {
	v4 []range4 // sorted by lo, disjoint and not adjacent
	v6 []range6
	n  int // prefixes it was built from
}

// NewPrefixSet compiles prefixes (masked or not) into a set.
func NewPrefixSet(ps []netip.Prefix) *PrefixSet {
	s := &PrefixSet{n: len(ps)}
	var r4 []range4
	var r6 []range6
	for _, p := range ps {
		p = p.Masked()
		a := p.Addr()
		if a.Is4() {
			lo := binary.BigEndian.Uint32(a.AsSlice())
			hi := lo | uint32(uint64(1)<<(32-p.Bits())-1)
			r4 = append(r4, range4{lo, hi})
			continue
		}
		b := a.As16()
		lo := u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
		hi := lo
		if host := 128 - p.Bits(); host >= 64 {
			hi.lo = ^uint64(0)
			if host > 64 {
				hi.hi |= uint64(1)<<(host-64) - 1
			}
			if host == 128 {
				hi.hi = ^uint64(0)
			}
		} else if host > 0 {
			hi.lo |= uint64(1)<<host - 1
		}
		r6 = append(r6, range6{lo, hi})
	}
	slices.SortFunc(r4, func(a, b range4) int { return cmp.Compare(a.lo, b.lo) })
	for _, r := range r4 {
		if n := len(s.v4); n > 0 && (s.v4[n-1].hi == ^uint32(0) || r.lo <= s.v4[n-1].hi+1) {
			s.v4[n-1].hi = max(s.v4[n-1].hi, r.hi)
			continue
		}
		s.v4 = append(s.v4, r)
	}
	slices.SortFunc(r6, func(a, b range6) int {
		if a.lo.less(b.lo) {
			return -1
		}
		if b.lo.less(a.lo) {
			return 1
		}
		return 0
	})
	for _, r := range r6 {
		if n := len(s.v6); n > 0 {
			last := &s.v6[n-1]
			next, wrapped := last.hi.inc()
			if wrapped || !next.less(r.lo) {
				if last.hi.less(r.hi) {
					last.hi = r.hi
				}
				continue
			}
		}
		s.v6 = append(s.v6, r)
	}
	return s
}

// Len returns how many prefixes the set was built from.
func (s *PrefixSet) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Ranges returns how many disjoint address ranges the set holds.
func (s *PrefixSet) Ranges() int {
	if s == nil {
		return 0
	}
	return len(s.v4) + len(s.v6)
}

// Contains reports whether a is in the set (an IPv4-mapped IPv6 address
// counts as IPv4). It allocates nothing.
func (s *PrefixSet) Contains(a netip.Addr) bool {
	if s == nil {
		return false
	}
	if a.Is4In6() {
		a = a.Unmap()
	}
	if a.Is4() {
		b := a.As4()
		return s.contains4(binary.BigEndian.Uint32(b[:]))
	}
	b := a.As16()
	return s.contains6(u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])})
}

func (s *PrefixSet) contains4(x uint32) bool {
	r := s.v4
	// the last range starting at or below x
	lo, hi := 0, len(r)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r[m].lo <= x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo > 0 && x <= r[lo-1].hi
}

func (s *PrefixSet) contains6(x u128) bool {
	r := s.v6
	lo, hi := 0, len(r)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !x.less(r[m].lo) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo > 0 && !r[lo-1].hi.less(x)
}

// ACLVerdict is what a service's lists say of a client.
type ACLVerdict uint8

const (
	ACLPass       ACLVerdict = iota
	ACLDenied                // in the deny list
	ACLNotAllowed            // the service has an allow list and the client is not in it
)

// Check applies the service's lists to client: the deny list first, then
// the allow list (DPVS's order). It allocates nothing.
func (s *Service) Check(client netip.Addr) ACLVerdict {
	if s.Deny != nil && s.Deny.Contains(client) {
		return ACLDenied
	}
	if s.Allow != nil && !s.Allow.Contains(client) {
		return ACLNotAllowed
	}
	return ACLPass
}

func (sv *svcState) list(kind ACLKind) *[]netip.Prefix {
	if kind == ACLAllow {
		return &sv.allow
	}
	return &sv.deny
}

func aclCheck(k ServiceKey, kind ACLKind, p netip.Prefix) error {
	if kind != ACLDeny && kind != ACLAllow {
		return fmt.Errorf("%s of %s: the list is deny (blklst) or allow (whtlst): %w", p, k, ErrInvalid)
	}
	if !p.IsValid() {
		return fmt.Errorf("%s of %s: no prefix given: give an address or prefix: %w", kind, k, ErrInvalid)
	}
	if p.Addr().Is4() != k.Addr.Is4() {
		fam := "IPv4"
		if !k.Addr.Is4() {
			fam = "IPv6"
		}
		return fmt.Errorf("%s %s of %s: the service's clients are %s: give an %s address or prefix: %w", kind, p, k, fam, fam, ErrInvalid)
	}
	return nil
}

// AddACL adds prefix p to the deny or allow list of service k.
func (m *Manager) AddACL(k ServiceKey, kind ACLKind, p netip.Prefix) error {
	p = p.Masked()
	if err := aclCheck(k, kind, p); err != nil {
		return err
	}
	return m.update(func(c *state) error {
		_, s := c.find(k)
		if s == nil {
			return fmt.Errorf("%s %s of %s: %w", kind, p, k, ErrNoService)
		}
		l := s.list(kind)
		if slices.Contains(*l, p) {
			return fmt.Errorf("%s %s of %s: %w", kind, p, k, ErrACLExists)
		}
		if len(*l) >= MaxACLEntries {
			return fmt.Errorf("%s %s of %s: the list holds %d entries, the most GVS takes: merge entries into shorter prefixes: %w",
				kind, p, k, len(*l), ErrInvalid)
		}
		*l = append(slices.Clip(*l), p)
		return nil
	})
}

// DelACL removes prefix p (as it was added, masked) from a list of service k.
func (m *Manager) DelACL(k ServiceKey, kind ACLKind, p netip.Prefix) error {
	p = p.Masked()
	if err := aclCheck(k, kind, p); err != nil {
		return err
	}
	return m.update(func(c *state) error {
		_, s := c.find(k)
		if s == nil {
			return fmt.Errorf("%s %s of %s: %w", kind, p, k, ErrNoService)
		}
		l := s.list(kind)
		i := slices.Index(*l, p)
		if i < 0 {
			return fmt.Errorf("%s %s of %s: %w", kind, p, k, ErrNoACL)
		}
		*l = slices.Delete(slices.Clone(*l), i, i+1)
		return nil
	})
}

// buildACL compiles the lists of sv into svc.
func buildACL(svc *Service, sv *svcState) {
	svc.DenyList, svc.AllowList = sv.deny, sv.allow
	if len(sv.deny) > 0 {
		svc.Deny = NewPrefixSet(sv.deny)
	}
	if len(sv.allow) > 0 {
		svc.Allow = NewPrefixSet(sv.allow)
	}
}

// SetACL replaces the deny or allow list of service k with ps (masked,
// duplicates dropped): one table rebuild for a whole list, for bulk loads.
func (m *Manager) SetACL(k ServiceKey, kind ACLKind, ps []netip.Prefix) error {
	if len(ps) > MaxACLEntries {
		return fmt.Errorf("%s of %s: %d entries, the most GVS takes is %d: merge entries into shorter prefixes: %w",
			kind, k, len(ps), MaxACLEntries, ErrInvalid)
	}
	list := make([]netip.Prefix, 0, len(ps))
	seen := make(map[netip.Prefix]struct{}, len(ps))
	for _, p := range ps {
		p = p.Masked()
		if err := aclCheck(k, kind, p); err != nil {
			return err
		}
		if _, dup := seen[p]; !dup {
			seen[p] = struct{}{}
			list = append(list, p)
		}
	}
	return m.update(func(c *state) error {
		_, s := c.find(k)
		if s == nil {
			return fmt.Errorf("%s of %s: %w", kind, k, ErrNoService)
		}
		*s.list(kind) = list
		return nil
	})
}

func (t *Table) buildACLIndex() {
	if !t.ACL {
		return
	}
	t.aclByID = make([]*Service, t.MaxID+1)
	for _, s := range t.Services {
		if (s.Deny != nil || s.Allow != nil) && int(s.ID) < len(t.aclByID) {
			t.aclByID[s.ID] = s
		}
	}
}

// ACLService returns the service with id if it has a deny or allow list,
// else nil: a slice index, for the packets of existing connections.
func (t *Table) ACLService(id uint32) *Service {
	if int(id) < len(t.aclByID) {
		return t.aclByID[id]
	}
	return nil
}
