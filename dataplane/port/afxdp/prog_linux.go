//go:build linux

// The XDP side: an XSKMAP with one slot per queue and the redirect program
//
//	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
//
// assembled at run time, so neither clang nor an object file is needed.
// Packets arriving on a queue without a socket in the map fall back to
// XDP_PASS and reach the kernel as if no program were attached.
//
// With XDPOffload on or auto the program is instead the XDP fast path
// (package xdpfast), which redirects the same way but first forwards the
// packets of established FullNAT connections the workers offloaded.
package afxdp

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/afxdp/xdpfast"
)

// Offset of rx_queue_index in struct xdp_md (data, data_end, data_meta,
// ingress_ifindex, rx_queue_index: all __u32).
const xdpMDRxQueueIndex = 16

// xdpProg is the loaded map and program and, once attached, the link.
type xdpProg struct {
	xsks *ebpf.Map
	prog *ebpf.Program
	link link.Link
	mode string // "native" or "generic" once attached
	// fast is the XDP fast path when it is the program loaded (it owns
	// xsks and prog); otherwise whyNot says why it is not.
	fast   *xdpfast.Fast
	whyNot string
}

// loadProg loads the program cfg.XDPOffload asks for: the fast path
// ("on", "auto") or the plain redirect ("off", ""); "auto" falls back to
// the plain one when the fast path does not load, keeping the reason.
func loadProg(queues int, cfg port.Config) (*xdpProg, error) {
	switch cfg.XDPOffload {
	case "", "off":
		x, err := loadPlain(queues)
		if x != nil {
			x.whyNot = "off in the configuration (ipvs.xdp_offload)"
		}
		return x, err
	case "on", "auto":
	default:
		return nil, fmt.Errorf("XDP offload setting %q: want off, on or auto", cfg.XDPOffload)
	}
	f, err := xdpfast.Load(xdpfast.Options{Queues: queues, MaxConns: cfg.XDPOffloadEntries})
	if err == nil {
		return &xdpProg{xsks: f.XSKMap(), prog: f.Program(), fast: f}, nil
	}
	if cfg.XDPOffload == "on" {
		return nil, fmt.Errorf("%w (ipvs.xdp_offload is on: set it to auto or off to run without the fast path)", err)
	}
	x, perr := loadPlain(queues)
	if x != nil {
		x.whyNot = "the fast path did not load: " + err.Error()
	}
	return x, perr
}

// loadPlain loads the plain redirect program and its XSKMAP.
func loadPlain(queues int) (*xdpProg, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "gvs_xsks",
		Type:       ebpf.XSKMap,
		KeySize:    4,
		ValueSize:  4,
		MaxEntries: uint32(queues),
	})
	if err != nil {
		return nil, fmt.Errorf("create XSKMAP: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "gvs_xsk_redir",
		Type:    ebpf.XDP,
		License: "Dual MIT/GPL",
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, xdpMDRxQueueIndex, asm.Word), // r2 = ctx->rx_queue_index
			asm.LoadMapPtr(asm.R1, m.FD()),                           // r1 = &xsks
			asm.Mov.Imm(asm.R3, 2),                                   // r3 = XDP_PASS (fallback action)
			asm.FnRedirectMap.Call(),                                 // r0 = bpf_redirect_map(r1, r2, r3)
			asm.Return(),
		},
	})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("load XDP program: %w", err)
	}
	return &xdpProg{xsks: m, prog: prog}, nil
}

// insert puts the socket fd of queue q into the map.
func (x *xdpProg) insert(q, fd int) error {
	return x.xsks.Put(uint32(q), uint32(fd))
}

// attach links the program to ifindex in mode "native", "generic" or ""
// (native, then generic).
func (x *xdpProg) attach(ifindex int, mode string) error {
	try := func(flags link.XDPAttachFlags) error {
		l, err := link.AttachXDP(link.XDPOptions{Program: x.prog, Interface: ifindex, Flags: flags})
		if err != nil {
			return err
		}
		x.link = l
		return nil
	}
	switch mode {
	case "native":
		if err := try(link.XDPDriverMode); err != nil {
			return fmt.Errorf("native mode: %w", explainAttach(err))
		}
		x.mode = "native"
	case "generic":
		if err := try(link.XDPGenericMode); err != nil {
			return fmt.Errorf("generic mode: %w", explainAttach(err))
		}
		x.mode = "generic"
	case "":
		errNative := try(link.XDPDriverMode)
		if errNative == nil {
			x.mode = "native"
			return nil
		}
		if errors.Is(errNative, unix.EBUSY) || errors.Is(errNative, unix.EEXIST) {
			return explainAttach(errNative)
		}
		if err := try(link.XDPGenericMode); err != nil {
			return fmt.Errorf("native mode: %v; generic mode: %w", errNative, explainAttach(err))
		}
		x.mode = "generic"
	default:
		return fmt.Errorf("unknown XDP mode %q (want native, generic or empty)", mode)
	}
	return nil
}

func explainAttach(err error) error {
	if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("%w (another XDP program is attached to the device; remove it, e.g. ip link set dev DEV xdp off)", err)
	}
	return err
}

// close detaches the program and releases program and map; idempotent.
func (x *xdpProg) close() error {
	var err error
	if x.link != nil {
		err = x.link.Close()
		x.link = nil
	}
	if x.fast != nil { // owns prog and xsks
		x.fast.Close()
		x.fast, x.prog, x.xsks = nil, nil, nil
	}
	if x.prog != nil {
		x.prog.Close()
		x.prog = nil
	}
	if x.xsks != nil {
		x.xsks.Close()
		x.xsks = nil
	}
	return err
}
