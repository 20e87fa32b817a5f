// Package cbpf runs tcpdump filter expressions as classic BPF programs, the
// way the kernel runs a socket filter, for GVS's packet capture and trace.
//
// The expression is compiled outside the dataplane and without cgo: the CLI
// runs Debian's tcpdump (`tcpdump -ddd -y EN10MB EXPR`) and sends the program
// as quads (code, jt, jf, k) in its request. The dataplane never trusts that
// program: New refuses anything the interpreter would not run to the end
// (jumps out of the program, a division by a constant zero, extensions other
// than the packet length, a last instruction that is not a return, more than
// MaxInstructions), so Match never fails at run time and never allocates.
//
// A nil Filter, or one built from an empty program, matches every frame:
// "no filter" costs one nil check.
package cbpf

import (
	"errors"
	"fmt"

	"golang.org/x/net/bpf"
)

// MaxInstructions is the longest program accepted, the kernel's
// BPF_MAXINSNS.
const MaxInstructions = 4096

// ErrInvalid is wrapped by every refusal of a program.
var ErrInvalid = errors.New("invalid classic BPF program")

// Filter is a validated program. It is safe for concurrent use: Match keeps
// its registers on the stack.
type Filter struct {
	vm  *bpf.VM
	raw []bpf.RawInstruction
}

// New validates raw and returns its filter. An empty program returns a
// filter that matches everything.
func New(raw []bpf.RawInstruction) (*Filter, error) {
	if len(raw) == 0 {
		return &Filter{}, nil
	}
	if len(raw) > MaxInstructions {
		return nil, fmt.Errorf("%w: %d instructions, at most %d: simplify the filter expression", ErrInvalid, len(raw), MaxInstructions)
	}
	insns := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		in := r.Disassemble()
		if err := supported(in); err != nil {
			return nil, fmt.Errorf("%w: instruction %d (%#04x %d %d %#x): %v", ErrInvalid, i, r.Op, r.Jt, r.Jf, r.K, err)
		}
		insns[i] = in
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &Filter{vm: vm, raw: append([]bpf.RawInstruction(nil), raw...)}, nil
}

// supported refuses the instructions the interpreter would fail on at run
// time (an error there allocates and tells the worker nothing).
func supported(in bpf.Instruction) error {
	switch in := in.(type) {
	case bpf.ALUOpConstant, bpf.ALUOpX, bpf.Jump, bpf.JumpIf, bpf.JumpIfX,
		bpf.LoadAbsolute, bpf.LoadConstant, bpf.LoadIndirect, bpf.LoadMemShift,
		bpf.RetA, bpf.RetConstant, bpf.TAX, bpf.TXA:
		return nil
	case bpf.LoadScratch:
		if in.N < 0 || in.N > 15 {
			return fmt.Errorf("scratch slot %d out of range", in.N)
		}
		return nil
	case bpf.StoreScratch:
		if in.N < 0 || in.N > 15 {
			return fmt.Errorf("scratch slot %d out of range", in.N)
		}
		return nil
	case bpf.LoadExtension:
		if in.Num == bpf.ExtLen {
			return nil
		}
		return fmt.Errorf("kernel extension %d (vlan, ifindex, …) is not available to GVS's workers: filter on packet bytes instead", in.Num)
	default:
		return fmt.Errorf("unsupported instruction %T", in)
	}
}

// Match reports whether the program accepts frame (an Ethernet frame). A
// nil or empty filter matches everything. It does not allocate.
func (f *Filter) Match(frame []byte) bool {
	if f == nil || f.vm == nil {
		return true
	}
	n, _ := f.vm.Run(frame)
	return n > 0
}

// Len returns the number of instructions (0: matches everything).
func (f *Filter) Len() int {
	if f == nil {
		return 0
	}
	return len(f.raw)
}

// Raw returns a copy of the program.
func (f *Filter) Raw() []bpf.RawInstruction {
	if f == nil {
		return nil
	}
	return append([]bpf.RawInstruction(nil), f.raw...)
}

// ToQuads flattens a program into (code, jt, jf, k) quads, the form the
// API carries.
func ToQuads(raw []bpf.RawInstruction) []uint32 {
	q := make([]uint32, 0, 4*len(raw))
	for _, r := range raw {
		q = append(q, uint32(r.Op), uint32(r.Jt), uint32(r.Jf), r.K)
	}
	return q
}

// FromQuads is the inverse of ToQuads; it refuses a length that is not a
// multiple of four and fields that do not fit their instruction field.
func FromQuads(q []uint32) ([]bpf.RawInstruction, error) {
	if len(q)%4 != 0 {
		return nil, fmt.Errorf("%w: %d words is not a whole number of (code, jt, jf, k) quads", ErrInvalid, len(q))
	}
	if len(q)/4 > MaxInstructions {
		return nil, fmt.Errorf("%w: %d instructions, at most %d: simplify the filter expression", ErrInvalid, len(q)/4, MaxInstructions)
	}
	raw := make([]bpf.RawInstruction, len(q)/4)
	for i := range raw {
		op, jt, jf, k := q[4*i], q[4*i+1], q[4*i+2], q[4*i+3]
		if op > 0xffff || jt > 0xff || jf > 0xff {
			return nil, fmt.Errorf("%w: instruction %d (%d %d %d %d): code must fit 16 bits and jt, jf 8 bits", ErrInvalid, i, op, jt, jf, k)
		}
		raw[i] = bpf.RawInstruction{Op: uint16(op), Jt: uint8(jt), Jf: uint8(jf), K: k}
	}
	return raw, nil
}
