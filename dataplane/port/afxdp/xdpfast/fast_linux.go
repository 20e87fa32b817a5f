//go:build linux

package xdpfast

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Defaults for zero fields of Options.
const (
	DefaultQueues   = 1
	DefaultMaxConns = 1 << 16 // entries: two per connection
	DefaultMaxPorts = 64
)

// Options size the maps of a loaded program.
type Options struct {
	Queues   int // AF_XDP sockets (XSKMAP slots), one per queue
	MaxConns int // entries of the connection map; a connection takes two
	MaxPorts int // egress ports (DEVMAP_HASH entries)
}

// Verdict is where the program sent a frame and why.
type Verdict int

// The verdicts, as the program counts them.
const (
	VerdictFast     = Verdict(fastXdpfastVerdictXDPFAST_FAST)      // rewritten and redirected
	VerdictMiss     = Verdict(fastXdpfastVerdictXDPFAST_MISS)      // TCP/UDP without an entry: to the workers
	VerdictOther    = Verdict(fastXdpfastVerdictXDPFAST_OTHER)     // not IP, VLAN, group address, other protocol
	VerdictTCPCtl   = Verdict(fastXdpfastVerdictXDPFAST_TCP_CTL)   // SYN, FIN or RST
	VerdictFrag     = Verdict(fastXdpfastVerdictXDPFAST_FRAG)      // IP fragment
	VerdictIPOpts   = Verdict(fastXdpfastVerdictXDPFAST_IP_OPTS)   // IPv4 options, IPv6 extension headers
	VerdictTTL      = Verdict(fastXdpfastVerdictXDPFAST_TTL)       // TTL or hop limit would expire
	VerdictMTU      = Verdict(fastXdpfastVerdictXDPFAST_MTU)       // longer than the egress MTU
	VerdictNoEgress = Verdict(fastXdpfastVerdictXDPFAST_NO_EGRESS) // egress port not added
	VerdictShort    = Verdict(fastXdpfastVerdictXDPFAST_SHORT)     // truncated or malformed headers
	VerdictSlow     = Verdict(fastXdpfastVerdictXDPFAST_SLOW)      // entry marked Slow
	VerdictArmed    = Verdict(fastXdpfastVerdictXDPFAST_ARMED)     // armed entry, segment not at the workers' mark
	NumVerdicts     = int(fastXdpfastVerdictXDPFAST_VERDICTS)
)

var verdictNames = [NumVerdicts]string{
	"xdp_fast", "xdp_miss", "xdp_other", "xdp_tcp_ctl", "xdp_frag", "xdp_ip_opts",
	"xdp_ttl", "xdp_mtu", "xdp_no_egress", "xdp_short", "xdp_slow", "xdp_armed",
}

// String is the verdict's counter name.
func (v Verdict) String() string {
	if v < 0 || int(v) >= NumVerdicts {
		return fmt.Sprintf("xdp_verdict_%d", int(v))
	}
	return verdictNames[v]
}

// Verdicts counts frames by verdict, summed over CPUs.
type Verdicts [NumVerdicts]uint64

// Fast is a loaded fast-path program and its maps.
type Fast struct {
	objs fastObjects
}

var _ Table = (*Fast)(nil)

// Load loads the program with maps sized by o. It attaches nothing: pass
// Program to link.AttachXDP (the afxdp driver does).
func Load(o Options) (*Fast, error) {
	if o.Queues <= 0 {
		o.Queues = DefaultQueues
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxPorts <= 0 {
		o.MaxPorts = DefaultMaxPorts
	}
	spec, err := loadFast()
	if err != nil {
		return nil, fmt.Errorf("xdpfast: %w", err)
	}
	spec.Maps[fastMapGvsXsks].MaxEntries = uint32(o.Queues)
	spec.Maps[fastMapGvsFnatConns].MaxEntries = uint32(o.MaxConns)
	spec.Maps[fastMapGvsFnatArm].MaxEntries = uint32(o.MaxConns)
	spec.Maps[fastMapGvsEgress].MaxEntries = uint32(o.MaxPorts)
	f := &Fast{}
	if err := spec.LoadAndAssign(&f.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("xdpfast: the kernel's verifier refused the program: %v", ve)
		}
		return nil, fmt.Errorf("xdpfast: load the program (%d connection entries): %w", o.MaxConns, err)
	}
	return f, nil
}

// Program returns the XDP program to attach.
func (f *Fast) Program() *ebpf.Program { return f.objs.GvsXdpFast }

// XSKMap returns the XSKMAP the program redirects to, one slot per queue.
func (f *Fast) XSKMap() *ebpf.Map { return f.objs.GvsXsks }

// InsertXSK puts the AF_XDP socket fd of queue q into the XSKMAP.
func (f *Fast) InsertXSK(q, fd int) error {
	if err := f.objs.GvsXsks.Put(uint32(q), uint32(fd)); err != nil {
		return fmt.Errorf("xdpfast: insert queue %d socket: %w", q, err)
	}
	return nil
}

// AddEgress lets entries redirect to interface ifindex. Without it their
// packets go to the workers (VerdictNoEgress).
func (f *Fast) AddEgress(ifindex int) error {
	if err := f.objs.GvsEgress.Put(uint32(ifindex), uint32(ifindex)); err != nil {
		return fmt.Errorf("xdpfast: add egress port ifindex %d: %w", ifindex, err)
	}
	return nil
}

// DeleteEgress removes interface ifindex from the egress ports.
func (f *Fast) DeleteEgress(ifindex int) error {
	if err := f.objs.GvsEgress.Delete(uint32(ifindex)); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("xdpfast: delete egress port ifindex %d: %w", ifindex, ErrNotExist)
		}
		return fmt.Errorf("xdpfast: delete egress port ifindex %d: %w", ifindex, err)
	}
	return nil
}

func unmapKey(k Key) Key {
	k.Src, k.Dst = k.Src.Unmap(), k.Dst.Unmap()
	return k
}

func makeKey(k Key) fastFnatKey {
	var m fastFnatKey
	m.Proto = k.Proto
	if k.Src.Is4() {
		m.Family = 4
		s, d := k.Src.As4(), k.Dst.As4()
		copy(m.Saddr[:], s[:])
		copy(m.Daddr[:], d[:])
	} else {
		m.Family = 6
		m.Saddr, m.Daddr = k.Src.As16(), k.Dst.As16()
	}
	m.Sport = [2]uint8{uint8(k.SrcPort >> 8), uint8(k.SrcPort)}
	m.Dport = [2]uint8{uint8(k.DstPort >> 8), uint8(k.DstPort)}
	return m
}

// Add writes the entry for packets of k (creating or replacing it, with
// counters from zero). Addresses may be IPv4-mapped IPv6; they are unmapped.
// It returns an error wrapping ErrFull when the map has no room.
func (f *Fast) Add(k Key, r Rewrite) error {
	k = unmapKey(k)
	r.Src, r.Dst = r.Src.Unmap(), r.Dst.Unmap()
	if err := check(k, &r); err != nil {
		return fmt.Errorf("xdpfast: offload %s: %w", k, err)
	}
	key := makeKey(k)
	var v fastFnatVal
	if r.Src.Is4() {
		s, d := r.Src.As4(), r.Dst.As4()
		copy(v.Saddr[:], s[:])
		copy(v.Daddr[:], d[:])
	} else {
		v.Saddr, v.Daddr = r.Src.As16(), r.Dst.As16()
	}
	v.Sport = [2]uint8{uint8(r.SrcPort >> 8), uint8(r.SrcPort)}
	v.Dport = [2]uint8{uint8(r.DstPort >> 8), uint8(r.DstPort)}
	v.CsumL3, v.CsumL4 = csumDiffs(k, &r)
	v.Mtu = uint16(r.MTU)
	v.Ifindex = uint32(r.Ifindex)
	if r.Slow {
		v.Flags |= flagSlow
	}
	if r.Armed {
		if k.Proto != 6 {
			return fmt.Errorf("xdpfast: offload %s: only TCP entries are armed (their segments carry sequence numbers)", k)
		}
		v.Flags |= flagArm
	}
	v.Smac, v.Dmac = r.SrcMAC, r.DstMAC
	if err := f.objs.GvsFnatConns.Update(&key, &v, ebpf.UpdateAny); err != nil {
		if errors.Is(err, unix.E2BIG) {
			err = ErrFull
		}
		return fmt.Errorf("xdpfast: offload %s: %w", k, err)
	}
	return nil
}

// flagSlow, flagArm and flagSeq are FNAT_F_SLOW, FNAT_F_ARM and
// FNAT_F_SEQ of the program.
const (
	flagSlow = 1
	flagArm  = 2
	flagSeq  = 8
)

// Arm sets the workers' mark of k's armed entry. The program forwards a
// segment of an armed entry only when its sequence number is m.Seq and
// the segment it passed to the workers last is m's LastEnd and LastAck (it
// continues what the workers sent, with nothing queued in between), and
// disarms the entry then; segments ahead of the mark or behind it
// (retransmissions) go to the workers.
func (f *Fast) Arm(k Key, m Mark) error {
	key := makeKey(unmapKey(k))
	if err := f.objs.GvsFnatArm.Update(&key, &fastFnatArm{Seq: m.Seq, LastEnd: m.LastEnd, LastAck: m.LastAck}, ebpf.UpdateAny); err != nil {
		if errors.Is(err, unix.E2BIG) {
			err = ErrFull
		}
		return fmt.Errorf("xdpfast: mark %s: %w", unmapKey(k), err)
	}
	return nil
}

// Delete removes the entry of k; the error wraps ErrNotExist when there is
// none.
func (f *Fast) Delete(k Key) error {
	k = unmapKey(k)
	key := makeKey(k)
	_ = f.objs.GvsFnatArm.Delete(&key) // an entry that was never armed has none
	if err := f.objs.GvsFnatConns.Delete(&key); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			err = ErrNotExist
		}
		return fmt.Errorf("xdpfast: remove %s: %w", k, err)
	}
	return nil
}

// Lookup reads the entry of k; the error wraps ErrNotExist when there is
// none.
func (f *Fast) Lookup(k Key) (Entry, error) {
	k = unmapKey(k)
	key := makeKey(k)
	var v fastFnatVal
	if err := f.objs.GvsFnatConns.Lookup(&key, &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			err = ErrNotExist
		}
		return Entry{}, fmt.Errorf("xdpfast: look up %s: %w", k, err)
	}
	e := Entry{
		Rewrite: Rewrite{
			SrcPort: uint16(v.Sport[0])<<8 | uint16(v.Sport[1]),
			DstPort: uint16(v.Dport[0])<<8 | uint16(v.Dport[1]),
			SrcMAC:  v.Smac, DstMAC: v.Dmac,
			Ifindex: int(v.Ifindex), MTU: int(v.Mtu), Slow: v.Flags&flagSlow != 0,
			Armed: v.Flags&flagArm != 0,
		},
		LastSeen: time.Duration(v.LastSeen),
		Packets:  v.Packets,
		Bytes:    v.Bytes,
	}
	if v.Flags&flagSeq != 0 {
		e.Seq = SeqEnds{Known: true, End: v.SeqEnd, Ack: v.SeqAck}
	}
	if k.Src.Is4() {
		e.Src = netip.AddrFrom4([4]byte(v.Saddr[:4]))
		e.Dst = netip.AddrFrom4([4]byte(v.Daddr[:4]))
	} else {
		e.Src, e.Dst = netip.AddrFrom16(v.Saddr), netip.AddrFrom16(v.Daddr)
	}
	return e, nil
}

// Len counts the entries by walking the map: for reports, not for a loop.
func (f *Fast) Len() (int, error) {
	var (
		k fastFnatKey
		v fastFnatVal
		n int
	)
	it := f.objs.GvsFnatConns.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		return n, fmt.Errorf("xdpfast: count entries: %w", err)
	}
	return n, nil
}

// Verdicts returns the program's verdict counters summed over CPUs.
func (f *Fast) Verdicts() (Verdicts, error) {
	var out Verdicts
	var per []uint64
	for i := range out {
		if err := f.objs.GvsVerdicts.Lookup(uint32(i), &per); err != nil {
			return out, fmt.Errorf("xdpfast: read counter %s: %w", Verdict(i), err)
		}
		for _, c := range per {
			out[i] += c
		}
	}
	return out, nil
}

// Now returns the clock the program stamps entries with (Entry.LastSeen):
// CLOCK_MONOTONIC_COARSE, CLOCK_MONOTONIC to a timer tick's resolution.
func Now() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC_COARSE, &ts) // cannot fail for this clock
	return time.Duration(ts.Nano())
}

// Close releases the program and its maps; a link attaching the program
// keeps it alive until the link is closed.
func (f *Fast) Close() error {
	return f.objs.Close()
}
