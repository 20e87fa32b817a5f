// Package sched holds the LVS schedulers — rr, wrr, lc, wlc (the default),
// lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh and twos — and DPVS's conhash,
// named as ipvsadm spells them.
//
// A scheduler answers one question for the first packet of a new connection:
// which destination of the service gets it. The control plane builds a []Dest
// for a service and New builds one scheduler instance per worker over it; the
// instance is rebuilt (New again) whenever the dest set, a weight or a
// threshold changes, so everything a scheduler derives from weights (the wrr
// gcd, the sh and mh tables) is computed once in New and Pick only reads it.
//
// Pick runs on the packet path: it never allocates, takes no lock and keeps
// its mutable state (the rr/wrr cursor, the lblc/lblcr locality tables, the
// twos random source) in the instance, which only its owning worker calls.
// Schedulers whose instance has no mutable state (Shared) may be built once
// and used by every worker. The one thing shared between workers is each dest's
// DestCounters (atomics): lc/wlc read them, every scheduler consults them for
// the overload thresholds.
//
// Availability is the same for every scheduler, as in LVS: a dest is
// available when its weight is > 0 (weight 0 = quiescent: it keeps its
// established connections but gets no new ones) and it is not overloaded
// (see Dest.Available for the threshold hysteresis).
package sched

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
)

// Scheduler names, as ipvsadm spells them.
const (
	RR  = "rr"
	WRR = "wrr"
	LC  = "lc"
	WLC = "wlc"
	SH  = "sh"
	MH  = "mh"

	LBLC    = "lblc"
	LBLCR   = "lblcr"
	DH      = "dh"
	SED     = "sed"
	NQ      = "nq"
	FO      = "fo"
	OVF     = "ovf"
	TWOS    = "twos"    // the kernel's weighted random twos choice (not in ipvsadm -h)
	CONHASH = "conhash" // DPVS's consistent hashing (not in ipvsadm -h)

	// Default is the scheduler ipvsadm uses when -s is not given.
	Default = WLC
)

// MaxWeight is the largest weight ipvsadm accepts (-w 0–65535).
const MaxWeight = 65535

var (
	// ErrUnknown is returned (wrapped) by New for a scheduler name it does not
	// know. The text is libipvs's, which operators know from ipvsadm.
	ErrUnknown = errors.New("Scheduler or persistence engine not found") //nolint:staticcheck // ipvsadm's wording

	// ErrUnsupported is returned (wrapped, with the option's name) by New and
	// ParseFlags when an option is given to a scheduler that has no use for it.
	ErrUnsupported = errors.New("not supported")
)

// DestCounters are a destination's live counters, shared by all workers and
// updated with atomics. The session code counts a connection as Active while
// it is ESTABLISHED and as Inactive in every other state (ipvsadm's ActiveConn
// and InActConn). The struct is padded to a cache line so that two dests'
// counters, written by every worker, never share one.
type DestCounters struct {
	Active   atomic.Int64
	Inactive atomic.Int64
	// Persist counts the persistence templates pointing to the dest
	// (ipvsadm's PersistConn); schedulers do not read it.
	Persist atomic.Int64

	// overloaded is the LVS IP_VS_DEST_F_OVERLOAD flag, kept by Dest.Available.
	overloaded atomic.Bool

	_ [64 - 8 - 8 - 8 - 4]byte
}

// Overloaded reports whether the dest was found over its upper threshold and
// has not yet dropped below its lower one (for listings and metrics).
func (c *DestCounters) Overloaded() bool { return c.overloaded.Load() }

// Dest is a destination as a scheduler sees it. The control plane builds it
// and never changes it afterwards (a change builds a new []Dest and new
// schedulers); only the counters it points to move.
type Dest struct {
	// Addr identifies the dest. sh and mh place dests by it, so the same
	// address always lands on the same table slots.
	Addr netip.AddrPort
	// Weight is 0–MaxWeight; 0 = quiescent: never chosen for new connections.
	Weight int
	// Upper and Lower are the connection thresholds (ipvsadm -x/-y), 0 = none.
	Upper, Lower uint32
	// C must not be nil; it is shared by every scheduler instance built over
	// this dest, in every worker, across rebuilds.
	C *DestCounters
}

// Flow is what a scheduler may look at for a new connection. Ports are 0 for
// protocols without ports.
type Flow struct {
	Src     netip.Addr
	SrcPort uint16
	Dst     netip.Addr
	DstPort uint16
	Proto   uint8
	// Payload is the transport payload of the first packet (for UDP, the
	// bytes after the UDP header), or nil. It is optional: only conhash
	// with the qid hash target reads it (the QUIC connection ID), and falls
	// back to the source address when it is nil or holds no connection ID.
	// The scheduler only reads it during Pick and keeps no reference.
	Payload []byte
}

// Scheduler picks the destination for a new connection.
type Scheduler interface {
	// Name returns the ipvsadm name of the scheduler ("wlc", …).
	Name() string
	// Pick returns the index in the dest slice given to New of the
	// destination for a new connection, or -1 if none is available. It is
	// called only by the worker that owns this instance: implementations keep
	// per-instance state without locks. It does not allocate.
	Pick(f *Flow) int
}

// Options are the per-service scheduler options. The zero value is valid for
// every scheduler.
type Options struct {
	// Fallback: when the dest a flow hashes to is unavailable, use another
	// one instead of refusing the connection (LVS sh-fallback / mh-fallback,
	// ipvsadm flag-1). sh and mh only.
	Fallback bool
	// Port: hash the source port as well as the source address (LVS sh-port
	// / mh-port, ipvsadm flag-2). sh and mh only.
	Port bool
	// TableSize is the Maglev lookup table size M, a prime between
	// MinTableSize and MaxTableSize; 0 selects DefaultTableSize. mh only.
	TableSize int
	// HashTarget is what conhash hashes: HashSourceIP (the default, DPVS
	// "sip"), or HashQUICID (DPVS "qid": the QUIC connection ID of the
	// first datagram, UDP services only). With Port, the source port is
	// hashed with the source address. conhash only.
	HashTarget HashTarget
	// CacheSize bounds the locality table of lblc and lblcr: the number of
	// destination addresses one instance remembers, rounded up to a power
	// of two; 0 selects DefaultCacheSize. lblc and lblcr only.
	CacheSize int
}

// HashTarget selects what conhash hashes.
type HashTarget uint8

// conhash hash targets, as DPVS's --hash-target names them.
const (
	HashSourceIP HashTarget = iota // "sip"
	HashQUICID                     // "qid"
)

// Names returns the scheduler names New accepts: the ones ipvsadm -h lists,
// in its order, then the kernel's twos and DPVS's conhash.
func Names() []string {
	return []string{RR, WRR, LC, WLC, LBLC, LBLCR, DH, SH, SED, NQ, FO, OVF, MH, TWOS, CONHASH}
}

// Shared reports whether an instance of the named scheduler keeps no
// mutable state, so that one instance built by New may serve every worker:
// the table-driven hashing schedulers (sh, mh, dh, conhash). The others keep
// a cursor, a locality table or a random source and need one per worker.
func Shared(name string) bool {
	switch name {
	case SH, MH, DH, CONHASH:
		return true
	}
	return false
}

// New builds the named scheduler over dests; "" selects Default. The result
// owns a copy of dests, and indexes returned by Pick refer to that order.
//
// New returns an error wrapping ErrUnknown for an unknown name, one wrapping
// ErrUnsupported for an option the scheduler has no use for, and a
// descriptive error for an invalid dest (negative or too large weight,
// missing counters) or an invalid mh table size.
func New(name string, dests []Dest, opts Options) (Scheduler, error) {
	if name == "" {
		name = Default
	}
	if err := checkOptions(name, opts); err != nil {
		return nil, err
	}
	for i := range dests {
		d := &dests[i]
		if d.Weight < 0 || d.Weight > MaxWeight {
			return nil, fmt.Errorf("scheduler %s: dest %s: weight %d out of range 0-%d", name, d.Addr, d.Weight, MaxWeight)
		}
		if d.C == nil {
			return nil, fmt.Errorf("scheduler %s: dest %s: no counters (Dest.C is nil)", name, d.Addr)
		}
	}
	ds := append([]Dest(nil), dests...)
	switch name {
	case RR:
		return newRR(ds), nil
	case WRR:
		return newWRR(ds), nil
	case LC:
		return newLC(ds), nil
	case WLC:
		return newWLC(ds), nil
	case SH:
		return newSH(ds, opts)
	case MH:
		return newMH(ds, opts)
	case DH:
		return newDH(ds), nil
	case SED:
		return newSED(ds), nil
	case NQ:
		return newNQ(ds), nil
	case FO:
		return newFO(ds), nil
	case OVF:
		return newOVF(ds), nil
	case LBLC:
		return newLBLC(ds, opts)
	case LBLCR:
		return newLBLCR(ds, opts)
	case TWOS:
		return newTWOS(ds), nil
	case CONHASH:
		return newConhash(ds, opts)
	}
	return nil, fmt.Errorf("scheduler %q: %w", name, ErrUnknown)
}

// checkOptions refuses options the named scheduler does not support, naming
// the option and who does support it. Unknown names pass through to New's
// ErrUnknown.
func checkOptions(name string, o Options) error {
	hashing := name == SH || name == MH
	switch {
	case o.Fallback && !hashing:
		return fmt.Errorf("scheduler %s: option fallback (flag-1) %w: only sh and mh have it", name, ErrUnsupported)
	case o.Port && !hashing && name != CONHASH:
		return fmt.Errorf("scheduler %s: option port (flag-2) %w: only sh, mh and conhash have it", name, ErrUnsupported)
	case o.TableSize != 0 && name != MH:
		return fmt.Errorf("scheduler %s: option table size %w: only mh has it", name, ErrUnsupported)
	case o.HashTarget != HashSourceIP && name != CONHASH:
		return fmt.Errorf("scheduler %s: option hash target %w: only conhash has it", name, ErrUnsupported)
	case o.HashTarget > HashQUICID:
		return fmt.Errorf("scheduler %s: hash target %d unknown: use sip or qid", name, o.HashTarget)
	case o.CacheSize != 0 && name != LBLC && name != LBLCR:
		return fmt.Errorf("scheduler %s: option cache size %w: only lblc and lblcr have it", name, ErrUnsupported)
	}
	return nil
}

// Available reports whether d may get a new connection: its weight is > 0 and
// it is not overloaded. It also keeps the overload flag in d.C, with LVS's
// hysteresis: the dest becomes overloaded when Active+Inactive >= Upper
// (Upper > 0) and stops being overloaded when the count drops below Lower, or
// below 3/4 of Upper when Lower is 0 (and at once when both are 0, e.g. after
// the thresholds were removed).
//
// LVS updates the flag when a connection is bound to or unbound from the
// dest; here it is updated when a scheduler looks. Between two picks the
// count of a dest can only fall (connections are added by picks), so the
// count seen at the next pick is the lowest since the last one and both ways
// make the same decisions.
func (d *Dest) Available() bool {
	return d.Weight > 0 && !d.overloaded()
}

// overloaded applies the threshold hysteresis (see Available). The flag is
// written only when it changes, so the shared cache line stays clean in the
// common case.
func (d *Dest) overloaded() bool {
	c := d.C
	was := c.overloaded.Load()
	if !was && d.Upper == 0 {
		return false
	}
	conns := c.Active.Load() + c.Inactive.Load()
	if was {
		var below bool
		switch {
		case d.Lower != 0:
			below = conns < int64(d.Lower)
		case d.Upper != 0:
			below = conns*4 < int64(d.Upper)*3
		default:
			below = true
		}
		if !below {
			return true
		}
		c.overloaded.Store(false)
	}
	if d.Upper != 0 && conns >= int64(d.Upper) {
		c.overloaded.Store(true)
		return true
	}
	return false
}

// overhead is LVS's load estimate of a dest: an active connection is taken to
// cost 256 times an inactive one.
func (d *Dest) overhead() int64 {
	return d.C.Active.Load()<<8 + d.C.Inactive.Load()
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// weightGCD is the greatest common divisor of the positive weights in ds,
// 0 if there are none.
func weightGCD(ds []Dest) int {
	g := 0
	for i := range ds {
		if w := ds[i].Weight; w > 0 {
			g = gcd(w, g)
		}
	}
	return g
}
