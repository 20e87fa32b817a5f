package ring

import (
	"bytes"
	"sync"
	"testing"
)

func TestSPSCOrderAndBounds(t *testing.T) {
	r := NewSPSC[int](3)
	if r.Cap() != 4 {
		t.Fatalf("cap = %d, want 4", r.Cap())
	}
	for i := 0; i < 4; i++ {
		if !r.Push(i) {
			t.Fatalf("push %d refused", i)
		}
	}
	if r.Push(9) {
		t.Fatal("push into a full ring accepted")
	}
	for i := 0; i < 4; i++ {
		v, ok := r.Pop()
		if !ok || v != i {
			t.Fatalf("pop = %d,%v want %d", v, ok, i)
		}
	}
	if _, ok := r.Pop(); ok {
		t.Fatal("pop from an empty ring succeeded")
	}
}

func TestSPSCConcurrent(t *testing.T) {
	r := NewSPSC[int](64)
	const n = 200000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; {
			if r.Push(i) {
				i++
			}
		}
	}()
	for want := 0; want < n; {
		if v, ok := r.Pop(); ok {
			if v != want {
				t.Fatalf("got %d want %d", v, want)
			}
			want++
		}
	}
	wg.Wait()
}

func TestFrameRing(t *testing.T) {
	r := NewFrameRing(2, 16)
	if !r.Put([]byte("hello"), 7) || !r.Put([]byte("world!"), 8) {
		t.Fatal("put refused")
	}
	if r.Put([]byte("x"), 0) {
		t.Fatal("put into a full ring accepted")
	}
	if r.Put(make([]byte, 17), 0) {
		t.Fatal("oversized frame accepted")
	}
	f, tag, ok := r.Peek()
	if !ok || !bytes.Equal(f, []byte("hello")) || tag != 7 {
		t.Fatalf("peek = %q %d %v", f, tag, ok)
	}
	r.Release()
	f, tag, _ = r.Peek()
	if !bytes.Equal(f, []byte("world!")) || tag != 8 {
		t.Fatalf("peek = %q %d", f, tag)
	}
	r.Release()
	if _, _, ok := r.Peek(); ok {
		t.Fatal("peek on empty ring succeeded")
	}
}

func TestAllocs(t *testing.T) {
	r := NewSPSC[*int](8)
	fr := NewFrameRing(8, 64)
	x := 1
	frame := make([]byte, 60)
	n := testing.AllocsPerRun(100, func() {
		r.Push(&x)
		r.Pop()
		fr.Put(frame, 1)
		fr.Peek()
		fr.Release()
	})
	if n != 0 {
		t.Fatalf("allocs = %v", n)
	}
}
