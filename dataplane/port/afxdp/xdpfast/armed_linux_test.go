//go:build linux

package xdpfast

import (
	"bytes"
	"testing"

	"github.com/gvs-lb/gvs/header"
)

// TestFastArmed: an armed TCP entry forwards no segment ahead of the
// workers' mark or behind it (a retransmission: newer segments may still
// be queued for the workers), none at a mark that has not reached the end
// of the newest segment the program passed to the workers (nor before it
// passed one), none while the segment the workers sent last is not the
// one the program passed them last (a retransmission passed behind the
// newest, or another segment ending there: another acknowledgment
// number), without a mark none at all, and leaves those to the workers
// unchanged (counted as armed); the first segment that starts at a mark
// that has reached all that is forwarded, rewritten as any hit, and
// disarms the entry, so the following segments go fast whatever their
// sequence numbers. Both families, both directions. UDP entries cannot be
// armed.
func TestFastArmed(t *testing.T) {
	payload := []byte("0123456789")
	for _, fam := range []struct {
		name string
		k    fnatConn
	}{{"ipv4", conn4}, {"ipv6", conn6}} {
		for _, dir := range []string{"in", "out"} {
			t.Run(fam.name+"/"+dir, func(t *testing.T) {
				f := loadTest(t, Options{MaxConns: 16})
				offload(t, f, header.ProtoTCP, fam.k, 1500)
				ep, to, src, dst := fam.k.clientSent(), fam.k.toServer(), egressPort, serverHop
				if dir == "out" {
					ep, to, src, dst = fam.k.serverSent(), fam.k.toClient(), portMAC, clientHop
				}
				k := keyOf(header.ProtoTCP, ep)
				e, err := f.Lookup(k)
				if err != nil {
					t.Fatal(err)
				}
				e.Armed = true
				if err := f.Add(k, e.Rewrite); err != nil {
					t.Fatal(err)
				}
				segAck := func(seq, ack uint32, payload []byte) []byte {
					return frame{ep: ep, proto: header.ProtoTCP, flags: header.TCPFlagACK, payload: payload, seq: seq, ack: ack}.build(t)
				}
				seg := func(seq uint32) []byte { return segAck(seq, 2000, payload) }
				passed := func(in []byte, seq uint32, armed uint64) {
					t.Helper()
					ret, out := run(t, f, in)
					if ret != xdpPass || !bytes.Equal(out, in) {
						t.Fatalf("seq %d: action %d, frame changed %v; want the workers' XDP_PASS, unchanged", seq, ret, !bytes.Equal(out, in))
					}
					if v := verdicts(t, f); v[VerdictArmed] != armed || v[VerdictFast] != 0 {
						t.Fatalf("seq %d: verdicts %v, want %d armed and none fast", seq, v, armed)
					}
				}
				toWorkers := func(seq uint32, armed uint64) { t.Helper(); passed(seg(seq), seq, armed) }
				// arm: the workers sent up to seq, lastEnd (ack 2000) last
				arm := func(seq, lastEnd, lastAck uint32) {
					t.Helper()
					if err := f.Arm(k, Mark{Seq: seq, LastEnd: lastEnd, LastAck: lastAck}); err != nil {
						t.Fatal(err)
					}
				}
				toWorkers(0xfffffff0, 1)                    // no mark yet
				if err := f.Add(k, e.Rewrite); err != nil { // written again: nothing passed to the workers since
					t.Fatal(err)
				}
				arm(0xfffffff0, 0xfffffff0, 2000)
				toWorkers(0xfffffff0, 2) // at the mark, but what reached the workers before the entry may still be queued
				toWorkers(0xfffffffa, 3) // ahead of the mark
				toWorkers(4, 4)          // ahead, across the wrap
				arm(4, 4, 2000)
				toWorkers(4, 5)          // at the mark, but the workers have not sent the one passed them last (4 to 14)
				toWorkers(3, 6)          // behind the mark
				toWorkers(0xfffffff6, 7) // behind, across the wrap (0xfffffff6 to 0)
				arm(14, 14, 2000)
				toWorkers(14, 8) // at the mark, past the newest, but the retransmission passed last (to 0) is not sent yet
				passed(segAck(24, 2100, nil), 24, 9)
				arm(24, 24, 2000) // the workers sent the segment 14 to 24 last, not the acknowledgment passed after it
				toWorkers(24, 10)
				arm(34, 34, 2000)
				for i, seq := range []uint32{34, 44, 0xfffffff0} { // at the mark; then disarmed
					in := seg(seq)
					ret, out := run(t, f, in)
					if ret != xdpRedirect {
						t.Fatalf("seq %d: action %d, want XDP_REDIRECT; verdicts %v", seq, ret, verdicts(t, f))
					}
					if want := expectFast(t, in, to, src, dst); !bytes.Equal(out, want) {
						t.Fatalf("seq %d: frame\n got  %x\n want %x", seq, out, want)
					}
					e, err := f.Lookup(k)
					if err != nil || e.Armed || e.Packets != uint64(i+1) {
						t.Fatalf("after seq %d: %+v %v, want disarmed with %d packets", seq, e, err, i+1)
					}
				}
				if v := verdicts(t, f); v[VerdictArmed] != 10 || v[VerdictFast] != 3 {
					t.Fatalf("verdicts %v", v)
				}
			})
		}
	}
	f := loadTest(t, Options{MaxConns: 16})
	offload(t, f, header.ProtoUDP, conn4, 1500)
	k := keyOf(header.ProtoUDP, conn4.clientSent())
	e, err := f.Lookup(k)
	if err != nil {
		t.Fatal(err)
	}
	e.Armed = true
	if err := f.Add(k, e.Rewrite); err == nil {
		t.Fatal("an armed UDP entry was accepted")
	}
	if err := f.Delete(k); err != nil {
		t.Fatal(err)
	}
}

// TestFastSeqEnds: the program notes where the TCP segments it forwards
// end, as the workers note the real server's for the resets at a
// connection's end: just past the newest segment and the acknowledgment
// number of the segment noted last. A segment that acknowledges less
// (reordered, an old retransmission) changes nothing; one that ends before
// the noted end with a newer acknowledgment moves only the acknowledgment;
// sequence numbers wrap. Segments left to the workers (FIN, TTL 1),
// segments without ACK and UDP datagrams note nothing. Both families, both
// directions.
func TestFastSeqEnds(t *testing.T) {
	for _, fam := range []struct {
		name string
		k    fnatConn
	}{{"ipv4", conn4}, {"ipv6", conn6}} {
		for _, dir := range []string{"in", "out"} {
			t.Run(fam.name+"/"+dir, func(t *testing.T) {
				f := loadTest(t, Options{MaxConns: 16})
				offload(t, f, header.ProtoTCP, fam.k, 1500)
				ep := fam.k.clientSent()
				if dir == "out" {
					ep = fam.k.serverSent()
				}
				k := keyOf(header.ProtoTCP, ep)
				want := func(what string, s SeqEnds) {
					t.Helper()
					e, err := f.Lookup(k)
					if err != nil {
						t.Fatal(err)
					}
					if e.Seq != s {
						t.Fatalf("%s: %+v, want %+v", what, e.Seq, s)
					}
				}
				segFlags := func(seq, ack uint32, n int, flags uint8, ttl uint8) {
					t.Helper()
					in := frame{ep: ep, proto: header.ProtoTCP, flags: flags, payload: make([]byte, n), seq: seq, ack: ack, ttl: ttl}.build(t)
					ret, _ := run(t, f, in)
					if fast := flags&(header.TCPFlagFIN|header.TCPFlagSYN|header.TCPFlagRST) == 0 && ttl != 1; fast != (ret == xdpRedirect) {
						t.Fatalf("seq %d flags %#x ttl %d: action %d", seq, flags, ttl, ret)
					}
				}
				seg := func(seq, ack uint32, n int, flags uint8, ttl uint8) {
					t.Helper()
					segFlags(seq, ack, n, header.TCPFlagACK|flags, ttl)
				}
				want("before any segment", SeqEnds{})
				seg(1000, 2000, 0, header.TCPFlagFIN, 0)
				seg(1000, 2000, 10, 0, 1)
				want("after segments left to the workers", SeqEnds{})
				segFlags(1000, 0x7fffffff, 10, header.TCPFlagPSH, 0) // forwarded, but its acknowledgment field means nothing
				want("after a segment without ACK", SeqEnds{})
				seg(1000, 2000, 10, 0, 0)
				want("the first segment", SeqEnds{Known: true, End: 1010, Ack: 2000})
				seg(1010, 2100, 0, 0, 0)
				want("a pure acknowledgment", SeqEnds{Known: true, End: 1010, Ack: 2100})
				seg(1000, 2000, 10, 0, 0)
				want("an old retransmission", SeqEnds{Known: true, End: 1010, Ack: 2100})
				seg(1020, 2100, 10, 0, 0)
				want("a segment ahead", SeqEnds{Known: true, End: 1030, Ack: 2100})
				seg(1010, 2200, 10, 0, 0)
				want("the late one, with a newer acknowledgment", SeqEnds{Known: true, End: 1030, Ack: 2200})
				seg(1030, 2100, 10, 0, 0)
				want("one acknowledging behind", SeqEnds{Known: true, End: 1030, Ack: 2200})
				// written again (taken back, offloaded again): noted from nothing
				e, err := f.Lookup(k)
				if err != nil {
					t.Fatal(err)
				}
				if err := f.Add(k, e.Rewrite); err != nil {
					t.Fatal(err)
				}
				want("the entry written again", SeqEnds{})
				seg(0xfffffff0, 0xfffffff0, 8, 0, 0)
				want("a segment before the wrap", SeqEnds{Known: true, End: 0xfffffff8, Ack: 0xfffffff0})
				seg(0xfffffff8, 0xfffffff0, 10, 0, 0)
				want("a segment across the wrap", SeqEnds{Known: true, End: 2, Ack: 0xfffffff0})
				seg(2, 6, 10, 0, 0)
				want("the next, its acknowledgment across the wrap", SeqEnds{Known: true, End: 12, Ack: 6})
				seg(0xfffffff8, 0xfffffff0, 10, 0, 0)
				want("the one before the wrap again", SeqEnds{Known: true, End: 12, Ack: 6})
			})
		}
	}
	f := loadTest(t, Options{MaxConns: 16})
	offload(t, f, header.ProtoUDP, conn4, 1500)
	k := keyOf(header.ProtoUDP, conn4.clientSent())
	if ret, _ := run(t, f, frame{ep: conn4.clientSent(), proto: header.ProtoUDP, payload: []byte("x")}.build(t)); ret != xdpRedirect {
		t.Fatalf("UDP: action %d", ret)
	}
	if e, err := f.Lookup(k); err != nil || e.Packets != 1 || e.Seq.Known {
		t.Fatalf("UDP entry %+v %v: want one packet and no sequence numbers", e, err)
	}
}
