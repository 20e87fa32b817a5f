package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/config"
	"github.com/gvs-lb/gvs/ctrlplane/dpclient"
)

// OpKind is a dataplane call.
type OpKind int

const (
	AddService OpKind = iota + 1
	EditService
	DelService
	AddLAddr
	DelLAddr
	AddDest
	EditDest
	DelDest
	AddACL
	DelACL
)

// The lists of AddACL and DelACL, in the API's words.
const (
	ListDeny  = "deny"  // DPVS blklst
	ListAllow = "allow" // DPVS whtlst
)

// Op is one dataplane call of a plan.
type Op struct {
	Kind    OpKind
	Service config.ServiceKey
	Sched   string   // AddService, EditService
	Flags   []string // AddService, EditService
	MidFlow bool     // AddService, EditService
	LAddr   netip.Addr
	Dev     string
	Backup  bool // AddLAddr
	Dest    netip.AddrPort
	D       DestState

	// Persistence and one-packet scheduling (AddService, EditService), as
	// in ServiceState.
	Persistent     bool
	PersistTimeout uint32
	PersistPrefix  int
	OnePacket      bool

	// Limits and the SYN proxy (AddService, EditService), as in
	// ServiceState.
	ConnRateLimit, PerSourceLimit uint32
	SynProxy                      bool
	// List (ListDeny or ListAllow) and Prefix: AddACL, DelACL.
	List   string
	Prefix netip.Prefix
}

// String describes the op in the words of logs and tests.
func (o Op) String() string {
	var b strings.Builder
	switch o.Kind {
	case AddService, EditService:
		fmt.Fprintf(&b, "%s service %s sched %s", map[OpKind]string{AddService: "add", EditService: "edit"}[o.Kind], o.Service, o.Sched)
		if len(o.Flags) > 0 {
			fmt.Fprintf(&b, " flags %s", strings.Join(o.Flags, ","))
		}
		if o.MidFlow {
			b.WriteString(" mid-flow")
		}
		if o.Persistent {
			fmt.Fprintf(&b, " persistent %d", o.PersistTimeout)
			if o.PersistPrefix != 0 {
				fmt.Fprintf(&b, " mask /%d", o.PersistPrefix)
			}
		}
		if o.OnePacket {
			b.WriteString(" ops")
		}
		if o.ConnRateLimit != 0 {
			fmt.Fprintf(&b, " conn-rate-limit %d", o.ConnRateLimit)
		}
		if o.PerSourceLimit != 0 {
			fmt.Fprintf(&b, " per-source-limit %d", o.PerSourceLimit)
		}
		if o.SynProxy {
			b.WriteString(" synproxy")
		}
	case AddACL:
		fmt.Fprintf(&b, "add %s list entry %s to %s", o.List, o.Prefix, o.Service)
	case DelACL:
		fmt.Fprintf(&b, "del %s list entry %s from %s", o.List, o.Prefix, o.Service)
	case DelService:
		fmt.Fprintf(&b, "del service %s", o.Service)
	case AddLAddr:
		fmt.Fprintf(&b, "add laddr %s", o.LAddr)
		if o.Dev != "" {
			fmt.Fprintf(&b, " dev %s", o.Dev)
		}
		if o.Backup {
			b.WriteString(" backup")
		}
		fmt.Fprintf(&b, " to %s", o.Service)
	case DelLAddr:
		fmt.Fprintf(&b, "del laddr %s from %s", o.LAddr, o.Service)
	case AddDest, EditDest:
		verb, prep := "add", "to"
		if o.Kind == EditDest {
			verb, prep = "edit", "in"
		}
		fmt.Fprintf(&b, "%s dest %s weight %d", verb, o.Dest, o.D.Weight)
		if o.D.Upper != 0 || o.D.Lower != 0 {
			fmt.Fprintf(&b, " upper %d lower %d", o.D.Upper, o.D.Lower)
		}
		if o.D.Fwd != "" && o.D.Fwd != config.FwdFullNAT {
			fmt.Fprintf(&b, " fwd %s", o.D.Fwd)
		}
		if t := o.D.Tun; t.Type != "" {
			fmt.Fprintf(&b, " tun %s", t.Type)
			if t.Port != 0 {
				fmt.Fprintf(&b, " port %d", t.Port)
			}
			if t.Csum != "" {
				fmt.Fprintf(&b, " %s", t.Csum)
			}
		}
		fmt.Fprintf(&b, " %s %s", prep, o.Service)
	case DelDest:
		fmt.Fprintf(&b, "del dest %s from %s", o.Dest, o.Service)
	default:
		return "unknown op"
	}
	return b.String()
}

// Diff returns the calls that turn actual into desired. manages says which
// services of actual that are not desired the reconciler may delete (its
// own, or all with remove_unmanaged). The plan is ordered: deletions of
// services first, then per service (in key order) the service itself, its
// local addresses (before any destination, so no new connection finds the
// service without one), destinations added, edited, then removed, and
// last the local addresses no longer wanted (a service turning from
// FullNAT to DR keeps them until no FullNAT destination is left).
//
// The deny and allow lists follow the service op, before any local
// address or destination (a new service admits no client its lists
// refuse), entries added before entries removed: replacing an allow
// list's entries never passes through an empty allow list, which would
// admit every client.
//
// A destination whose forwarding method changes (lb_kind) is removed and
// added again rather than edited: its connections then finish by the
// method they began with (a removed destination's connections drain),
// as LVS keeps each connection's method, while new ones take the new
// method.
func Diff(desired, actual State, manages func(config.ServiceKey) bool) []Op {
	var ops []Op
	for _, k := range sortedKeys(actual, compareKeys) {
		if _, ok := desired[k]; !ok && manages(k) {
			ops = append(ops, Op{Kind: DelService, Service: k})
		}
	}
	for _, k := range sortedKeys(desired, compareKeys) {
		want, have := desired[k], actual[k]
		if have == nil {
			ops = append(ops, want.serviceOp(AddService))
			have = &ServiceState{}
		} else if !want.sameService(have) {
			ops = append(ops, want.serviceOp(EditService))
		}
		ops = append(ops, listOps(k, want, have)...)
		var dels []Op
		for _, a := range sortedKeys(have.LAddrs, netip.Addr.Compare) {
			dev, ok := want.LAddrs[a]
			// a change of device or of the backup mark: removed, added again
			if !ok || (dev != "" && dev != have.LAddrs[a]) || want.Backup[a] != have.Backup[a] {
				dels = append(dels, Op{Kind: DelLAddr, Service: k, LAddr: a})
			}
		}
		// a local address moving to another device is removed before it is
		// added again; extra ones go after the additions
		for _, d := range dels {
			if _, ok := want.LAddrs[d.LAddr]; ok {
				ops = append(ops, d)
			}
		}
		for _, a := range sortedKeys(want.LAddrs, netip.Addr.Compare) {
			dev, ok := have.LAddrs[a]
			if !ok || (want.LAddrs[a] != "" && want.LAddrs[a] != dev) || want.Backup[a] != have.Backup[a] {
				ops = append(ops, Op{Kind: AddLAddr, Service: k, LAddr: a, Dev: want.LAddrs[a], Backup: want.Backup[a]})
			}
		}
		for _, a := range sortedKeys(want.Dests, netip.AddrPort.Compare) {
			if _, ok := have.Dests[a]; !ok {
				ops = append(ops, Op{Kind: AddDest, Service: k, Dest: a, D: want.Dests[a]})
			}
		}
		for _, a := range sortedKeys(want.Dests, netip.AddrPort.Compare) {
			d, ok := have.Dests[a]
			switch {
			case !ok || d == want.Dests[a]:
			case d.Fwd != want.Dests[a].Fwd:
				ops = append(ops, Op{Kind: DelDest, Service: k, Dest: a, D: d},
					Op{Kind: AddDest, Service: k, Dest: a, D: want.Dests[a]})
			default:
				ops = append(ops, Op{Kind: EditDest, Service: k, Dest: a, D: want.Dests[a]})
			}
		}
		for _, a := range sortedKeys(have.Dests, netip.AddrPort.Compare) {
			if _, ok := want.Dests[a]; !ok {
				ops = append(ops, Op{Kind: DelDest, Service: k, Dest: a, D: have.Dests[a]})
			}
		}
		for _, d := range dels {
			if _, ok := want.LAddrs[d.LAddr]; !ok {
				ops = append(ops, d)
			}
		}
	}
	return ops
}

// listOps adds the list entries of want missing from have, then removes
// those have holds and want does not, each list in prefix order.
func listOps(k config.ServiceKey, want, have *ServiceState) []Op {
	var ops []Op
	lists := []struct {
		name       string
		want, have map[netip.Prefix]bool
	}{{ListDeny, want.Deny, have.Deny}, {ListAllow, want.Allow, have.Allow}}
	for _, l := range lists {
		for _, p := range sortedKeys(l.want, comparePrefixes) {
			if !l.have[p] {
				ops = append(ops, Op{Kind: AddACL, Service: k, List: l.name, Prefix: p})
			}
		}
	}
	for _, l := range lists {
		for _, p := range sortedKeys(l.have, comparePrefixes) {
			if !l.want[p] {
				ops = append(ops, Op{Kind: DelACL, Service: k, List: l.name, Prefix: p})
			}
		}
	}
	return ops
}

func comparePrefixes(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// serviceOp is the AddService or EditService call that gives the
// dataplane this service's own settings.
func (s *ServiceState) serviceOp(kind OpKind) Op {
	return Op{Kind: kind, Service: s.Key, Sched: s.Sched, Flags: s.Flags, MidFlow: s.MidFlow,
		Persistent: s.Persistent, PersistTimeout: s.PersistTimeout, PersistPrefix: s.PersistPrefix, OnePacket: s.OnePacket,
		ConnRateLimit: s.ConnRateLimit, PerSourceLimit: s.PerSourceLimit, SynProxy: s.SynProxy}
}

// sameService reports whether the service's own settings (not its local
// addresses and destinations) agree.
func (s *ServiceState) sameService(o *ServiceState) bool {
	return s.Sched == o.Sched && slices.Equal(s.Flags, o.Flags) && s.MidFlow == o.MidFlow &&
		s.Persistent == o.Persistent && s.PersistTimeout == o.PersistTimeout && s.PersistPrefix == o.PersistPrefix &&
		s.OnePacket == o.OnePacket && s.ConnRateLimit == o.ConnRateLimit && s.PerSourceLimit == o.PerSourceLimit &&
		s.SynProxy == o.SynProxy
}

// pbService is the API's form of an AddService or EditService op.
func (o Op) pbService() *pb.Service {
	return &pb.Service{Key: pbKey(o.Service), Sched: o.Sched, SchedFlags: o.Flags, MidFlow: o.MidFlow,
		Persistent: o.Persistent, PersistentTimeout: o.PersistTimeout, PersistentPrefix: uint32(o.PersistPrefix), OnePacket: o.OnePacket,
		ConnRateLimit: o.ConnRateLimit, PerSourceRateLimit: o.PerSourceLimit, Synproxy: o.SynProxy}
}

// Apply makes the calls of a plan, each bounded by timeout. After a failed
// call the remaining calls of the same service are skipped (they would
// fail the same way); other services go on. It returns how many calls
// succeeded and every failure, each naming the call.
func Apply(ctx context.Context, api pb.DataplaneClient, timeout time.Duration, ops []Op, applied func(Op)) (int, error) {
	var errs []error
	failed := map[config.ServiceKey]bool{}
	n := 0
	for _, o := range ops {
		if failed[o.Service] {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := call(cctx, api, o)
		cancel()
		if err != nil && status.Code(err) == codes.NotFound && (o.Kind == DelService || o.Kind == DelDest || o.Kind == DelLAddr || o.Kind == DelACL) {
			err = nil // already gone: the plan's goal is reached
		}
		if err != nil && status.Code(err) == codes.AlreadyExists && o.Kind == AddACL {
			err = nil // added meanwhile (ipvsadm): the plan's goal is reached
		}
		if err != nil {
			failed[o.Service] = true
			errs = append(errs, fmt.Errorf("%s: %w", o, dpclient.Message(err)))
			continue
		}
		n++
		if applied != nil {
			applied(o)
		}
	}
	return n, errors.Join(errs...)
}

func call(ctx context.Context, api pb.DataplaneClient, o Op) error {
	k := pbKey(o.Service)
	dest := &pb.Dest{Addr: o.Dest.Addr().String(), Port: uint32(o.Dest.Port()), Weight: int32(o.D.Weight),
		Upper: o.D.Upper, Lower: o.D.Lower, Fwd: cmp.Or(o.D.Fwd, config.FwdFullNAT),
		TunType: o.D.Tun.Type, TunPort: uint32(o.D.Tun.Port), TunCsum: o.D.Tun.Csum}
	var err error
	switch o.Kind {
	case AddService:
		_, err = api.AddService(ctx, o.pbService())
	case EditService:
		_, err = api.EditService(ctx, o.pbService())
	case DelService:
		_, err = api.DelService(ctx, &pb.Service{Key: k})
	case AddLAddr:
		_, err = api.AddLAddr(ctx, &pb.LAddrRequest{Service: k, Laddr: &pb.LAddr{Addr: o.LAddr.String(), Dev: o.Dev, Backup: o.Backup}})
	case DelLAddr:
		_, err = api.DelLAddr(ctx, &pb.LAddrRequest{Service: k, Laddr: &pb.LAddr{Addr: o.LAddr.String()}})
	case AddDest:
		_, err = api.AddDest(ctx, &pb.DestRequest{Service: k, Dest: dest})
	case EditDest:
		_, err = api.EditDest(ctx, &pb.DestRequest{Service: k, Dest: dest})
	case DelDest:
		// connections of a removed destination finish on their own (no expire)
		_, err = api.DelDest(ctx, &pb.DestRequest{Service: k, Dest: dest})
	case AddACL:
		_, err = api.AddACL(ctx, &pb.ACLRequest{Service: k, List: o.List, Prefix: o.Prefix.String()})
	case DelACL:
		_, err = api.DelACL(ctx, &pb.ACLRequest{Service: k, List: o.List, Prefix: o.Prefix.String()})
	default:
		err = fmt.Errorf("unknown op %d", o.Kind)
	}
	return err
}
