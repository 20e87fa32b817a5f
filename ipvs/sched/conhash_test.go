package sched

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// modelConhash is DPVS's conhash step by step: every dest with weight w owns
// 160·w/gcd points, point k of a dest at hash_k(address, port); a flow's
// key is hashed and the dest of the first point clockwise (the smallest
// point >= key, else the smallest point) gets it if it is available; there
// is no fallback. It walks every point linearly.
type modelConhash struct {
	hashes []uint64
	dests  []int
}

func newModelConhash(ds []Dest) *modelConhash {
	m := &modelConhash{}
	g := 0
	for i := range ds {
		if ds[i].Weight > 0 {
			g = gcd(ds[i].Weight, g)
		}
	}
	for i := range ds {
		if g == 0 {
			break
		}
		for k := range ds[i].Weight / g * 160 {
			m.hashes = append(m.hashes, hashAddrPort(seedConhashPoint+uint64(k)*0x9e3779b97f4a7c15, ds[i].Addr.Addr(), ds[i].Addr.Port()))
			m.dests = append(m.dests, i)
		}
	}
	return m
}

func (m *modelConhash) pick(k *kstate, key uint64) int {
	best, lowest := -1, -1
	for p, h := range m.hashes {
		if h >= key && (best < 0 || h < m.hashes[best]) {
			best = p
		}
		if lowest < 0 || h < m.hashes[lowest] {
			lowest = p
		}
	}
	if best < 0 {
		best = lowest
	}
	if best < 0 {
		return -1
	}
	if d := m.dests[best]; k.avail(d) {
		return d
	}
	return -1
}

func TestConhashMatchesModel(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for round := range 100 {
		k := randKState(r)
		ds := k.dests()
		port := round%2 == 0
		s := mustNew(t, "conhash", ds, Options{Port: port})
		m := newModelConhash(ds)
		for pick, f := range randFlows(uint64(round), 300) {
			var p uint16
			if port {
				p = f.SrcPort
			}
			want := m.pick(k, hashAddrPort(seedConhashKey, f.Src, p))
			if got := s.Pick(&f); got != want {
				t.Fatalf("round %d pick %d: weights %v: got %d, want %d", round, pick, k.w, got, want)
			}
			k.churn(r, want)
			k.apply(ds)
		}
	}
}

func TestConhashDistribution(t *testing.T) {
	w := []int{1, 2, 3, 4}
	fs := randFlows(9, 100_000)
	checkShares(t, mustNew(t, "conhash", mkDests(w...), Options{}), w, fs, 0.03)
	checkShares(t, mustNew(t, "conhash", mkDests(w...), Options{Port: true}), w, fs, 0.03)
}

// Consistency: removing, quiescing or adding a dest moves only the flows
// that must move; the order of the dests and the instance do not matter.
func TestConhashConsistent(t *testing.T) {
	fs := randFlows(10, 20_000)
	ds := mkDests(1, 1, 1, 1, 1)
	s := mustNew(t, "conhash", ds, Options{})
	before := make([]netip.AddrPort, len(fs))
	for i := range fs {
		before[i] = ds[s.Pick(&fs[i])].Addr
	}
	// reversed order, another instance: same dests
	rev := mkDests(1, 1, 1, 1, 1)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	r := mustNew(t, "conhash", rev, Options{})
	for i := range fs {
		if got := rev[r.Pick(&fs[i])].Addr; got != before[i] {
			t.Fatalf("flow %d: %s with dests reversed, %s before", i, got, before[i])
		}
	}
	// quiesce dest 2: only its flows move
	q := mkDests(1, 1, 0, 1, 1)
	qs := mustNew(t, "conhash", q, Options{})
	moved := 0
	for i := range fs {
		got := q[qs.Pick(&fs[i])].Addr
		switch {
		case before[i] == ds[2].Addr:
			moved++
			if got == ds[2].Addr {
				t.Fatalf("flow %d still on the quiesced dest", i)
			}
		case got != before[i]:
			t.Fatalf("flow %d moved from %s to %s though its dest stayed", i, before[i], got)
		}
	}
	if moved < len(fs)/10 {
		t.Fatalf("only %d flows were on dest 2", moved)
	}
	// add a sixth dest: flows only move to it
	a := mkDests(1, 1, 1, 1, 1, 1)
	as := mustNew(t, "conhash", a, Options{})
	for i := range fs {
		if got := a[as.Pick(&fs[i])].Addr; got != before[i] && got != a[5].Addr {
			t.Fatalf("flow %d moved from %s to %s, not to the new dest", i, before[i], got)
		}
	}
	// an overloaded dest refuses its flows (no fallback, as DPVS)
	o := mkDests(1, 1, 1, 1, 1)
	o[2].Upper, o[2].Lower = 1, 1
	o[2].C.Active.Store(1)
	os := mustNew(t, "conhash", o, Options{})
	for i := range fs {
		got := os.Pick(&fs[i])
		if before[i] == o[2].Addr && got != -1 || before[i] != o[2].Addr && o[got].Addr != before[i] {
			t.Fatalf("flow %d: dest 2 overloaded: got %d, was %s", i, got, before[i])
		}
	}
}

// quicInitial is a QUIC v1 long-header Initial with the given DCID.
func quicInitial(dcid []byte) []byte {
	p := []byte{0xc3, 0, 0, 0, 1, byte(len(dcid))}
	p = append(p, dcid...)
	return append(p, 0, 0x44, 0xd0) // SCID length 0, token length, length...
}

// qid: the QUIC connection ID decides, whatever the source; a datagram
// without one, and a TCP flow, fall back to the source address.
func TestConhashQUICID(t *testing.T) {
	ds := mkDests(1, 1, 1, 1)
	s := mustNew(t, "conhash", ds, Options{HashTarget: HashQUICID})
	sip := mustNew(t, "conhash", ds, Options{})
	fs := randFlows(12, 2000)
	spread := map[int]int{}
	for i := range fs {
		cid := []byte{1, 2, 3, 4, 5, 6, 7, byte(i), byte(i >> 8)}
		want := -1
		for j, short := range [][]byte{quicInitial(cid), append([]byte{0x41}, cid[:8]...)} {
			f := fs[(i+j*7)%len(fs)] // another source each time
			f.Proto, f.Payload = 17, short
			got := s.Pick(&f)
			if j == 0 {
				want = got
				spread[got]++
				continue
			}
			wantShort := s.Pick(&Flow{Proto: 17, Payload: append([]byte{0xc0, 0, 0, 0, 1, 8}, cid[:8]...)})
			if got != wantShort {
				t.Fatalf("flow %d: short header with CID %x: %d, long header with the same 8-byte CID: %d", i, cid[:8], got, wantShort)
			}
		}
		f := fs[i]
		f.Proto, f.Payload = 17, quicInitial(cid)
		g := fs[(i+1)%len(fs)]
		g.Proto, g.Payload = 17, quicInitial(cid)
		if s.Pick(&f) != want || s.Pick(&g) != want {
			t.Fatalf("flow %d: same CID from two sources, different dests", i)
		}
		for _, bad := range [][]byte{nil, {0x80}, {0xc0, 0, 0, 0, 1, 0}, {0xc0, 0, 0, 0, 1, 21}, {0x00, 1, 2, 3, 4, 5, 6, 7, 8}, {0x41, 1, 2}} {
			h := fs[i]
			h.Proto, h.Payload = 17, bad
			if got, w := s.Pick(&h), sip.Pick(&fs[i]); got != w {
				t.Fatalf("flow %d: payload %x without a CID: %d, sip gives %d", i, bad, got, w)
			}
		}
		tcp := fs[i]
		tcp.Proto, tcp.Payload = 6, quicInitial(cid)
		if got, w := s.Pick(&tcp), sip.Pick(&fs[i]); got != w {
			t.Fatalf("flow %d: TCP: %d, sip gives %d", i, got, w)
		}
	}
	checkSpread(t, spread, []int{0, 1, 2, 3}, 0.08)
}

func TestQUICDCID(t *testing.T) {
	for _, tc := range []struct {
		p    []byte
		want []byte
	}{
		{quicInitial([]byte{9, 8, 7}), []byte{9, 8, 7}},
		{quicInitial(bytes.Repeat([]byte{1}, 20)), bytes.Repeat([]byte{1}, 20)},
		{[]byte{0xc0, 0, 0, 0, 1, 21}, nil},         // longer than 20
		{[]byte{0xc0, 0, 0, 0, 1, 4, 1, 2, 3}, nil}, // truncated
		{[]byte{0xc0, 0, 0, 0, 1}, nil},
		{[]byte{0x40, 1, 2, 3, 4, 5, 6, 7, 8, 9}, []byte{1, 2, 3, 4, 5, 6, 7, 8}}, // IETF short header
		{[]byte{0x08, 1, 2, 3, 4, 5, 6, 7, 8}, []byte{1, 2, 3, 4, 5, 6, 7, 8}},    // Google QUIC, 8-byte CID
		{[]byte{0x40, 1, 2, 3, 4, 5, 6, 7}, nil},
		{[]byte{0x00, 1, 2, 3, 4, 5, 6, 7, 8}, nil},
		{nil, nil},
	} {
		if got := quicDCID(tc.p); !bytes.Equal(got, tc.want) {
			t.Errorf("quicDCID(%x) = %x, want %x", tc.p, got, tc.want)
		}
	}
}

func FuzzQUICDCID(f *testing.F) {
	f.Add(quicInitial([]byte{1, 2, 3, 4, 5, 6, 7, 8}))
	f.Add([]byte{0x41, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{0xc0, 0, 0, 0, 1, 255})
	s := mustNew(f, "conhash", mkDests(1, 2, 3), Options{HashTarget: HashQUICID})
	f.Fuzz(func(t *testing.T, p []byte) {
		id := quicDCID(p)
		if id != nil {
			if len(id) == 0 || len(id) > quicMaxCIDLen {
				t.Fatalf("quicDCID(%x): %d-byte ID", p, len(id))
			}
			off := 1
			if p[0]&quicLongHeader != 0 {
				off = 6
			}
			if !bytes.Equal(id, p[off:off+len(id)]) {
				t.Fatalf("quicDCID(%x) = %x: not the bytes at %d", p, id, off)
			}
		}
		fl := Flow{Src: netip.MustParseAddr("192.0.2.7"), Proto: 17, Payload: p}
		if d := s.Pick(&fl); d < 0 || d > 2 {
			t.Fatalf("Pick = %d", d)
		}
	})
}

func BenchmarkConhashPick(b *testing.B) { benchPick(b, "conhash", Options{}) }

// QUIC Initials: the DCID parse and hash instead of the source's.
func BenchmarkConhashPickQUIC(b *testing.B) {
	s := mustNew(b, "conhash", mkDests(1, 2, 3, 4, 5, 1, 2, 3, 4, 5), Options{HashTarget: HashQUICID})
	fs := randFlows(1, 1024)
	for i := range fs {
		fs[i].Proto = 17
		fs[i].Payload = quicInitial([]byte{1, 2, 3, 4, 5, 6, byte(i), byte(i >> 8)})
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if s.Pick(&fs[i&1023]) < 0 {
			b.Fatal("no dest")
		}
	}
}
