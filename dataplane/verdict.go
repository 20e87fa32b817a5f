package dataplane

// verdict is what a pipeline stage did with a packet buffer — DPVS's
// INET_ACCEPT / INET_STOLEN — so that who owns the buffer afterwards is
// explicit, not a bool the caller has to remember the meaning of.
type verdict uint8

const (
	// pass: the stage did not take the buffer; the caller goes on with it
	// (the next stage, local delivery, the kernel).
	pass verdict = iota
	// stolen: the stage took the buffer — transmitted, queued, handed to
	// another worker or the kernel, or dropped under a counter — and the
	// caller must not touch it again.
	stolen
)
