package synproxy

import (
	"fmt"
	"time"
)

// Config is how the proxy answers and what it sends (the dataplane's
// `ipvs.synproxy` section; DPVS's synproxy settings under other names).
type Config struct {
	// MSS is the largest MSS the SYN-ACK offers; it is lowered to fit the
	// receiving interface's MTU with the TOA GVS inserts.
	MSS uint16
	// TTL is the SYN-ACK's TTL (hop limit).
	TTL uint8
	// Window is the SYN-ACK's window field.
	Window uint16
	// WScale is the window scale offered to clients that offer one; −1
	// offers none (the client then scales nothing).
	WScale int8
	// SACK and Timestamps: offered to clients that offer them.
	SACK, Timestamps bool
	// DeferServerSYN: the real server's handshake starts at the client's
	// first data segment, not at its ACK, so a client that completes the
	// handshake and sends nothing never reaches a server.
	DeferServerSYN bool
	// MaxRetries is how many times GVS re-sends its SYN to a real server
	// that has not answered, each time the client retransmits its first
	// data segment.
	MaxRetries int
	// AckStorm: a connection whose client sends more segments than this
	// while its real server has not answered is reset.
	AckStorm int
	// Held is the number of client first-data segments each worker can
	// hold while the real server's handshake completes (2 KiB each).
	Held int
	// SecretPeriod is how long a cookie secret is used; a cookie is
	// accepted for one to two periods after it was sent.
	SecretPeriod time.Duration
}

// DefaultConfig returns the defaults: MSS 1460, TTL 63, window 65535,
// wscale 7, SACK and timestamps on, the server's SYN at the client's ACK,
// 3 retries, an ACK storm at 10 segments, 256 held segments per worker, a
// new secret every 64 s.
func DefaultConfig() Config {
	return Config{MSS: 1460, TTL: 63, Window: 65535, WScale: 7, SACK: true, Timestamps: true,
		MaxRetries: 3, AckStorm: 10, Held: 256, SecretPeriod: 64 * time.Second}
}

// Validate checks c, naming the setting and the fix.
func (c *Config) Validate() error {
	switch {
	case c.MSS < 536:
		return fmt.Errorf("synproxy mss %d: use 536-65535", c.MSS)
	case c.TTL == 0:
		return fmt.Errorf("synproxy ttl 0: use 1-255")
	case c.Window == 0:
		return fmt.Errorf("synproxy window 0: use 1-65535")
	case c.WScale < -1 || c.WScale > 14:
		return fmt.Errorf("synproxy wscale %d: use 0-14, or -1 for none", c.WScale)
	case c.MaxRetries < 0 || c.MaxRetries > 7:
		return fmt.Errorf("synproxy max_retries %d: use 0-7", c.MaxRetries)
	case c.AckStorm < 1 || c.AckStorm > 15:
		return fmt.Errorf("synproxy ack_storm_threshold %d: use 1-15", c.AckStorm)
	case c.Held < 0 || c.Held > 1<<16:
		return fmt.Errorf("synproxy held_segments %d: use 0-65536", c.Held)
	case c.SecretPeriod < time.Second:
		return fmt.Errorf("synproxy secret_period %s: use at least 1s", c.SecretPeriod)
	}
	return nil
}
