package dataplane

// Crash reporting. A panic in a worker or in the master must not vanish
// into Go's default dump without the packet that caused it: the goroutines
// the dataplane starts recover, describe the panic (value, stack, and for a
// worker the frame it was processing, hex-encoded and bounded), and hand
// the report to Options.OnCrash. The daemon's handler logs it, removes the
// API socket and exits; without a handler the report is logged and the
// panic continues as Go's would.

import (
	"encoding/hex"
	"fmt"
	"runtime/debug"

	"go.uber.org/zap"
)

// crashFrameMax bounds the bytes of a frame a crash report carries.
const crashFrameMax = 256

// CrashReport describes a recovered panic.
type CrashReport struct {
	// Where names the goroutine: "worker 0", "master", "kni reader dp0", …
	Where string
	Value any
	// Frame is the start of the frame being processed (hex), empty if none.
	Frame string
	// FrameLen is the frame's whole length.
	FrameLen int
	Stack    []byte
}

func (r CrashReport) String() string {
	return fmt.Sprintf("panic in %s: %v", r.Where, r.Value)
}

// Fields returns the report as log fields.
func (r CrashReport) Fields() []zap.Field {
	f := []zap.Field{zap.String("where", r.Where), zap.String("panic", fmt.Sprint(r.Value))}
	if r.FrameLen > 0 {
		f = append(f, zap.Int("frame_len", r.FrameLen), zap.String("frame_hex", r.Frame))
	}
	return append(f, zap.ByteString("stack", r.Stack))
}

// hexFrame returns the first crashFrameMax bytes of p in hex.
func hexFrame(p []byte) string {
	if len(p) > crashFrameMax {
		p = p[:crashFrameMax]
	}
	return hex.EncodeToString(p)
}

// recoverCrash is deferred by every goroutine the dataplane starts; frame
// returns the frame being processed, if any.
func (d *Dataplane) recoverCrash(where string, frame func() []byte) {
	v := recover()
	if v == nil {
		return
	}
	r := CrashReport{Where: where, Value: v, Stack: debug.Stack()}
	if frame != nil {
		if p := safeFrame(frame); p != nil {
			r.FrameLen, r.Frame = len(p), hexFrame(p)
		}
	}
	d.log.Error("dataplane crashed", r.Fields()...)
	if d.opts.OnCrash != nil {
		d.opts.OnCrash(r) // normally does not return
		return
	}
	panic(v)
}

// safeFrame reads the frame without letting a second panic (a buffer in
// a broken state) hide the first.
func safeFrame(frame func() []byte) (p []byte) {
	defer func() {
		if recover() != nil {
			p = nil
		}
	}()
	return frame()
}

// currentFrame returns the bytes of the buffer the worker is processing.
func (w *Worker) currentFrame() []byte {
	if w.cur == nil {
		return nil
	}
	return w.cur.Bytes()
}

// RecoverCrash is recoverCrash for goroutines outside the dataplane (the
// API server's handlers): defer it directly.
func (d *Dataplane) RecoverCrash(where string) {
	v := recover()
	if v == nil {
		return
	}
	r := CrashReport{Where: where, Value: v, Stack: debug.Stack()}
	d.log.Error("dataplane crashed", r.Fields()...)
	if d.opts.OnCrash != nil {
		d.opts.OnCrash(r)
		return
	}
	panic(v)
}
