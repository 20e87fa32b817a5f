// Command xdpfwd is the benchmark's kernel-side limit: an XDP program on
// each of two interfaces that rewrites the Ethernet addresses and
// redirects every frame out of the other interface through a DEVMAP —
// the least work a forwarder can do on this kernel, with no socket, no
// copy to user space and no skb. The program is assembled at run time with
// cilium/ebpf's asm package:
//
//	if data + 14 > data_end: return XDP_PASS
//	eth.dst = peer MAC of the other side; eth.src = MAC of the other side
//	return bpf_redirect_map(&tx_port, 0, XDP_DROP)
//
// It runs until SIGINT/SIGTERM, then detaches.
//
//	xdpfwd --netns gvsb-lb --a l0 --b l1 --a-peer 02:..:01 --b-peer 02:..:02
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netns"
)

// xdp_md: data, data_end (u32 each)
const (
	xdpData    = 0
	xdpDataEnd = 4
	xdpPass    = 2
	xdpDrop    = 1
)

func main() {
	ns := flag.String("netns", "", "network namespace of the interfaces")
	a := flag.String("a", "", "first interface")
	b := flag.String("b", "", "second interface")
	aPeer := flag.String("a-peer", "", "MAC of the station behind a (destination of frames sent out of a)")
	bPeer := flag.String("b-peer", "", "MAC of the station behind b")
	mode := flag.String("mode", "native", "attach mode: native or generic")
	flag.Parse()
	if err := run(*ns, *a, *b, *aPeer, *bPeer, *mode); err != nil {
		fmt.Fprintln(os.Stderr, "xdpfwd:", err)
		os.Exit(1)
	}
}

func run(ns, a, b, aPeer, bPeer, mode string) error {
	if a == "" || b == "" || aPeer == "" || bPeer == "" {
		return errors.New("give --a, --b, --a-peer and --b-peer")
	}
	runtime.LockOSThread()
	if ns != "" {
		h, err := netns.GetFromName(ns)
		if err != nil {
			return fmt.Errorf("netns %s: %w", ns, err)
		}
		if err := netns.Set(h); err != nil {
			return fmt.Errorf("enter netns %s: %w", ns, err)
		}
	}
	flags := link.XDPDriverMode
	if mode == "generic" {
		flags = link.XDPGenericMode
	}
	ifA, err := net.InterfaceByName(a)
	if err != nil {
		return err
	}
	ifB, err := net.InterfaceByName(b)
	if err != nil {
		return err
	}
	peerA, err := net.ParseMAC(aPeer)
	if err != nil {
		return fmt.Errorf("--a-peer: %w", err)
	}
	peerB, err := net.ParseMAC(bPeer)
	if err != nil {
		return fmt.Errorf("--b-peer: %w", err)
	}
	// frames arriving on a leave through b (to b's peer, from b's MAC)
	l1, err := attach(ifA, ifB, peerB, flags)
	if err != nil {
		return err
	}
	defer l1.Close()
	l2, err := attach(ifB, ifA, peerA, flags)
	if err != nil {
		return err
	}
	defer l2.Close()
	fmt.Printf("xdpfwd: %s <-> %s (%s mode)\n", a, b, mode)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return nil
}

// attach loads the redirect program for frames arriving on in and going
// out of out to the station dst, and attaches it to in.
func attach(in, out *net.Interface, dst net.HardwareAddr, flags link.XDPAttachFlags) (link.Link, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "tx_port", Type: ebpf.DevMap, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("create DEVMAP: %w", err)
	}
	if err := m.Put(uint32(0), uint32(out.Index)); err != nil {
		return nil, fmt.Errorf("DEVMAP entry for %s: %w", out.Name, err)
	}
	le := func(b []byte) int32 {
		if len(b) == 2 {
			return int32(binary.LittleEndian.Uint16(b))
		}
		return int32(binary.LittleEndian.Uint32(b))
	}
	src := out.HardwareAddr
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, xdpData, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, xdpDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.StoreImm(asm.R2, 0, int64(le(dst[0:4])), asm.Word),
		asm.StoreImm(asm.R2, 4, int64(le(dst[4:6])), asm.Half),
		asm.StoreImm(asm.R2, 6, int64(le(src[0:2])), asm.Half),
		asm.StoreImm(asm.R2, 8, int64(le(src[2:6])), asm.Word),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Imm(asm.R3, xdpDrop),
		asm.FnRedirectMap.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "gvsb_xdp_fwd", Type: ebpf.XDP, License: "Dual MIT/GPL", Instructions: insns})
	if err != nil {
		return nil, fmt.Errorf("load XDP program: %w", err)
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: in.Index, Flags: flags})
	if err != nil {
		return nil, fmt.Errorf("attach XDP to %s: %w", in.Name, err)
	}
	return l, nil
}
