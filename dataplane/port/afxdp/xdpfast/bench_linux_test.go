//go:build linux

package xdpfast

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/nat"
)

// benchRepeat is the program runs per BPF_PROG_RUN call. The kernel runs
// them on the same buffer, so a hit rewrites the frame the next run sees:
// the benchmark offloads the rewritten tuple too, back to the original,
// and starts from TTL 255 so that 250 runs never reach TTL 1.
const benchRepeat = 250

// BenchmarkProgram: ns per packet inside the kernel (BPF_PROG_RUN's own
// clock, without the syscall) for a fast-path hit in each family, a miss,
// and the program without the fast path (the AF_XDP redirect alone). Each
// BPF_PROG_RUN call with a repeat count above one costs ~25 ms of wall time
// on this kernel whatever the count, so ns/op means nothing here: read
// ns/pkt.
// Run: go test -run '^$' -bench BenchmarkProgram ./dataplane/port/afxdp/xdpfast/
func BenchmarkProgram(b *testing.B) {
	f := loadTest(b, Options{MaxConns: 1024})
	for _, k := range []fnatConn{conn4, conn6} {
		for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
			offload(b, f, proto, k, 1500)
			back := k.clientSent() // L:lport -> D:dport back to C:cport -> V:vport
			if err := f.Add(keyOf(proto, k.toServer()), Rewrite{Src: back.Src, Dst: back.Dst, SrcPort: back.SrcPort, DstPort: back.DstPort,
				SrcMAC: portMAC, DstMAC: clientHop, Ifindex: loIfindex, MTU: 1500}); err != nil {
				b.Fatal(err)
			}
		}
	}
	xskOnly := xskProgram(b, f)
	payload := make([]byte, 18) // 64-byte IPv4 UDP frames
	cases := []struct {
		name string
		prog *ebpf.Program
		fr   frame
		ret  uint32
	}{
		{"xsk-redirect-only", xskOnly, frame{ep: conn4.clientSent(), proto: header.ProtoUDP, payload: payload}, xdpPass},
		{"miss-ipv4-udp", f.Program(), frame{ep: nat.Endpoints{Src: conn4.c, Dst: conn4.v, SrcPort: 1, DstPort: 2}, proto: header.ProtoUDP, payload: payload}, xdpPass},
		{"hit-ipv4-udp", f.Program(), frame{ep: conn4.clientSent(), proto: header.ProtoUDP, payload: payload, ttl: 255}, xdpRedirect},
		{"hit-ipv4-tcp", f.Program(), frame{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, payload: payload, ttl: 255}, xdpRedirect},
		{"hit-ipv6-udp", f.Program(), frame{ep: conn6.clientSent(), proto: header.ProtoUDP, payload: payload, ttl: 255}, xdpRedirect},
		{"hit-ipv6-tcp", f.Program(), frame{ep: conn6.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, payload: payload, ttl: 255}, xdpRedirect},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			in := c.fr.build(b)
			v0 := verdicts(b, f)
			var total time.Duration
			for b.Loop() {
				ret, per, err := c.prog.Benchmark(in, benchRepeat, nil)
				if err != nil {
					b.Fatal(err)
				}
				if ret != c.ret {
					b.Fatalf("action %d, want %d; verdicts %v", ret, c.ret, verdicts(b, f))
				}
				total += per
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/pkt")
			if v := verdicts(b, f); v[VerdictTTL] != v0[VerdictTTL] || c.ret == xdpRedirect && v[VerdictFast] < v0[VerdictFast]+uint64(b.N*benchRepeat) {
				b.Fatalf("verdicts %v -> %v: runs left the fast path", v0, v)
			}
		})
	}
}

// xskProgram is the program the afxdp driver attaches without the fast
// path, over f's XSKMAP: the baseline of the benchmark.
func xskProgram(b *testing.B, f *Fast) *ebpf.Program {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "gvs_xsk_redir", Type: ebpf.XDP, License: "Dual MIT/GPL",
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, 16, asm.Word), // ctx->rx_queue_index
			asm.LoadMapPtr(asm.R1, f.objs.GvsXsks.FD()),
			asm.Mov.Imm(asm.R3, 2), // XDP_PASS when the queue has no socket
			asm.FnRedirectMap.Call(),
			asm.Return(),
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}
