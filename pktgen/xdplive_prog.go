package pktgen

// The XDP program of the live-frame generator, assembled at run time with
// cilium/ebpf's asm package (no clang). Per frame it does what
// liveTemplate.apply does:
//
//	c = counter[0]++                      (frames this thread generated)
//	now = bpf_ktime_get_ns() - clockOffset
//	if data + liveEnd > data_end: return XDP_DROP
//	the template's headers (to liveRestore) over whatever the page holds
//	i = c·T + t; flow = i % Flows; seq = i / Flows
//	write flow, seq, now into the stamp; client address and source port of the flow
//	IPv4 checksum = ~(ipSum + source address words)
//	UDP checksum  = ~(udpSum + source address, port, stamp words), 0 sent as 0xffff
//	return XDP_TX                         (out of the client device)

import (
	"encoding/binary"

	"github.com/cilium/ebpf/asm"
)

// XDP verdicts and xdp_md offsets the program uses.
const (
	xdpDrop       = 1
	xdpTX         = 3
	xdpMdData     = 0
	xdpMdDataEnd  = 4
	liveCounterSz = 8
)

// liveProgram returns the program for lt over the counter map whose file
// descriptor is counterFD (an array of one 8-byte value).
func liveProgram(lt *liveTemplate, counterFD int) asm.Instructions {
	const (
		ctx  = asm.R6
		cnt  = asm.R7 // c, then i
		now  = asm.R8
		data = asm.R9
	)
	fold := func(r, tmp asm.Register) asm.Instructions {
		return asm.Instructions{
			asm.Mov.Reg(tmp, r), asm.RSh.Imm(tmp, 16), asm.And.Imm(r, 0xffff), asm.Add.Reg(r, tmp),
			asm.Mov.Reg(tmp, r), asm.RSh.Imm(tmp, 16), asm.And.Imm(r, 0xffff), asm.Add.Reg(r, tmp),
		}
	}
	in := asm.Instructions{
		asm.Mov.Reg(ctx, asm.R1),
		// c = counter[0]++
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, counterFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(cnt, asm.R0, 0, asm.DWord),
		asm.Mov.Reg(asm.R1, cnt),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		// the send time on the run clock
		asm.FnKtimeGetNs.Call(),
		asm.LoadImm(asm.R1, lt.clockOffset, asm.DWord),
		asm.Sub.Reg(asm.R0, asm.R1),
		asm.Mov.Reg(now, asm.R0),
		// the frame must reach the end of the stamp
		asm.LoadMem(data, ctx, xdpMdData, asm.Word),
		asm.LoadMem(asm.R3, ctx, xdpMdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, data),
		asm.Add.Imm(asm.R4, liveEnd),
		asm.JGT.Reg(asm.R4, asm.R3, "drop"),
	}
	// the template's headers, four bytes a store (liveRestore is even:
	// the last store is two bytes)
	for off := 0; off < liveRestore; off += 4 {
		if liveRestore-off >= 4 {
			in = append(in, asm.StoreImm(data, int16(off), int64(int32(binary.LittleEndian.Uint32(lt.frame[off:]))), asm.Word))
		} else {
			in = append(in, asm.StoreImm(data, int16(off), int64(binary.LittleEndian.Uint16(lt.frame[off:])), asm.Half))
		}
	}
	in = append(in,
		// i = c·T + t; flow (R1) = i % Flows; seq (R2) = i / Flows
		asm.Mul.Imm(cnt, int32(lt.threads)),
		asm.Add.Imm(cnt, int32(lt.thread)),
		asm.Mov.Reg(asm.R1, cnt),
		asm.Mod.Imm(asm.R1, int32(lt.flows)),
		asm.Mov.Reg(asm.R2, cnt),
		asm.Div.Imm(asm.R2, int32(lt.flows)),
		// the stamp
		asm.Mov.Reg(asm.R3, asm.R1),
		asm.HostTo(asm.BE, asm.R3, asm.Word),
		asm.StoreMem(data, liveOffFlow, asm.R3, asm.Word),
		asm.HostTo(asm.BE, asm.R2, asm.Word),
		asm.StoreMem(data, liveOffSeq, asm.R2, asm.Word),
		asm.HostTo(asm.BE, now, asm.DWord),
		asm.StoreMem(data, liveOffSentNs, now, asm.DWord),
		// client address addrBase + flow % addrs (32-bit arithmetic)
		asm.Mov.Reg(asm.R3, asm.R1),
		asm.Mod.Imm(asm.R3, int32(lt.addrs)),
		asm.Add.Imm32(asm.R3, int32(lt.addrBase)),
		asm.HostTo(asm.BE, asm.R3, asm.Word),
		asm.StoreMem(data, liveOffSrc, asm.R3, asm.Word),
		// source port portMin + (flow / addrs) % ports
		asm.Div.Imm(asm.R1, int32(lt.addrs)),
		asm.Mod.Imm(asm.R1, int32(lt.ports)),
		asm.Add.Imm(asm.R1, int32(lt.portMin)),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.StoreMem(data, liveOffSport, asm.R1, asm.Half),
		// R1 = the source address words, read in host order
		asm.LoadMem(asm.R1, data, liveOffSrc, asm.Half),
		asm.LoadMem(asm.R2, data, liveOffSrc+2, asm.Half),
		asm.Add.Reg(asm.R1, asm.R2),
		// IPv4 header checksum
		asm.Mov.Reg(asm.R0, asm.R1),
		asm.Add.Imm(asm.R0, int32(lt.ipSum)),
	)
	in = append(in, fold(asm.R0, asm.R2)...)
	in = append(in,
		asm.Xor.Imm(asm.R0, 0xffff),
		asm.StoreMem(data, liveOffIPCsum, asm.R0, asm.Half),
		// UDP checksum
		asm.Mov.Reg(asm.R0, asm.R1),
		asm.Add.Imm(asm.R0, int32(lt.udpSum)),
	)
	for _, off := range liveUDPWords {
		in = append(in, asm.LoadMem(asm.R2, data, int16(off), asm.Half), asm.Add.Reg(asm.R0, asm.R2))
	}
	in = append(in, fold(asm.R0, asm.R2)...)
	in = append(in,
		asm.Xor.Imm(asm.R0, 0xffff),
		asm.JNE.Imm(asm.R0, 0, "udpsum"),
		asm.Mov.Imm(asm.R0, 0xffff),
		asm.StoreMem(data, liveOffUDPSum, asm.R0, asm.Half).WithSymbol("udpsum"),
		asm.Mov.Imm(asm.R0, xdpTX),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("drop"),
		asm.Return(),
	)
	return in
}
