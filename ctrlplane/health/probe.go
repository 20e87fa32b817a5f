// Package health runs keepalived-style health checks of real servers —
// TCP_CHECK, HTTP_GET, SSL_GET, UDP_CHECK and MISC_CHECK — from the control
// plane's own network namespace (on a GVS box, the kernel side of KNI, so
// checks leave through the dataplane like any host traffic), feeds each
// result through a rise/fall Machine and reports real-server state changes.
//
// A real server is up when all its checks are up (keepalived's rule); one
// without checks is always up. The Manager never changes the dataplane: it
// logs the change and calls the reconciler's kick, and the reconciler reads
// Up when it computes the desired state.
package health

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/ctrlplane/config"
)

// maxBody bounds what an HTTP check reads of a body (regex, digest).
const maxBody = 1 << 20

// Prober runs one check once per Probe call.
type Prober struct {
	c       config.Check
	svc     config.ServiceKey
	rs      netip.AddrPort
	client  *http.Client // HTTP_GET, SSL_GET
	urlRes  []*regexp.Regexp
	regex   *regexp.Regexp // UDP_CHECK
	dialer  net.Dialer
	scheme  string
	payload []byte
}

// NewProber prepares check c of real server rs of service svc.
func NewProber(svc config.ServiceKey, rs netip.AddrPort, c config.Check) (*Prober, error) {
	p := &Prober{c: c, svc: svc, rs: rs, payload: c.Payload}
	if c.Bind.IsValid() {
		switch c.Kind {
		case config.UDPCheckKind:
			p.dialer.LocalAddr = &net.UDPAddr{IP: c.Bind.AsSlice()}
		default:
			p.dialer.LocalAddr = &net.TCPAddr{IP: c.Bind.AsSlice()}
		}
	}
	switch c.Kind {
	case config.HTTPGetKind, config.SSLGetKind:
		p.scheme = "http"
		tr := &http.Transport{DialContext: p.dialer.DialContext, DisableKeepAlives: true, Proxy: nil}
		if c.Kind == config.SSLGetKind {
			p.scheme = "https"
			// keepalived's SSL_GET does not verify the certificate either:
			// the check is about the service answering, not about trust.
			tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, ServerName: c.VirtualHost} //nolint:gosec
		}
		p.client = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is a status code to judge, not to follow
		}}
		for _, u := range c.URLs {
			var re *regexp.Regexp
			if u.Regex != "" {
				var err error
				if re, err = regexp.Compile(u.Regex); err != nil {
					return nil, err
				}
			}
			p.urlRes = append(p.urlRes, re)
		}
	case config.UDPCheckKind:
		if c.Regex != "" {
			var err error
			if p.regex, err = regexp.Compile(c.Regex); err != nil {
				return nil, err
			}
		}
	case config.TCPCheckKind, config.MiscCheckKind:
	default:
		return nil, fmt.Errorf("check kind %q unknown", c.Kind)
	}
	return p, nil
}

// Probe runs the check once; nil means healthy, an error says why not.
func (p *Prober) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.c.Timeout)
	defer cancel()
	var err error
	switch p.c.Kind {
	case config.TCPCheckKind:
		err = p.tcp(ctx)
	case config.HTTPGetKind, config.SSLGetKind:
		err = p.http(ctx)
	case config.UDPCheckKind:
		err = p.udp(ctx)
	case config.MiscCheckKind:
		err = p.misc(ctx)
	}
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %s: %w", p.c.Timeout, err)
	}
	return err
}

func (p *Prober) tcp(ctx context.Context) error {
	c, err := p.dialer.DialContext(ctx, "tcp", p.c.Target.String())
	if err != nil {
		return err
	}
	return c.Close()
}

func (p *Prober) http(ctx context.Context) error {
	defer p.client.CloseIdleConnections()
	for i, u := range p.c.URLs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.scheme+"://"+p.c.Target.String()+u.Path, nil)
		if err != nil {
			return err
		}
		if p.c.VirtualHost != "" {
			req.Host = p.c.VirtualHost
		}
		req.Header.Set("User-Agent", "gvs-controlplane health check")
		resp, err := p.client.Do(req)
		if err != nil {
			return err
		}
		var body []byte
		if u.Regex != "" || u.Digest != "" {
			body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
		} else {
			_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		}
		resp.Body.Close()
		switch {
		case !u.Codes.Match(resp.StatusCode):
			return fmt.Errorf("GET %s: status %d, want %s", u.Path, resp.StatusCode, u.Codes)
		case err != nil:
			return fmt.Errorf("GET %s: reading the body: %w", u.Path, err)
		case p.urlRes[i] != nil && !p.urlRes[i].Match(body):
			return fmt.Errorf("GET %s: body does not match %q", u.Path, u.Regex)
		case u.Digest != "":
			sum := md5.Sum(body) //nolint:gosec // keepalived's digest is MD5
			if got := hex.EncodeToString(sum[:]); got != u.Digest {
				return fmt.Errorf("GET %s: body digest %s, want %s", u.Path, got, u.Digest)
			}
		}
	}
	return nil
}

func (p *Prober) udp(ctx context.Context) error {
	c, err := p.dialer.DialContext(ctx, "udp", p.c.Target.String())
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write(p.payload); err != nil {
		return err
	}
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("port unreachable (ICMP)")
	case err != nil && errors.As(err, &ne) && ne.Timeout() && !p.c.RequireReply:
		return nil // keepalived's default: silence is fine, only an ICMP error fails
	case err != nil && errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("no reply within %s", p.c.Timeout)
	case err != nil:
		return err
	case p.regex != nil && !p.regex.Match(buf[:n]):
		return fmt.Errorf("reply %.64q does not match %q", buf[:n], p.c.Regex)
	}
	return nil
}

// tailBuffer keeps the last bytes a script wrote, for the failure reason.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 256 {
		t.b = t.b[len(t.b)-256:]
	}
	return len(p), nil
}

func (p *Prober) misc(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", p.c.Script)
	cmd.Env = append(os.Environ(),
		"GVS_VIRTUAL_SERVER="+p.svc.String(),
		"GVS_REAL_SERVER="+p.rs.String(),
		"GVS_REAL_SERVER_IP="+p.rs.Addr().String(),
		"GVS_REAL_SERVER_PORT="+strconv.Itoa(int(p.rs.Port())))
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	killGroupOnCancel(cmd)
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("%s: killed after misc_timeout %s", p.c.Script, p.c.Timeout)
	}
	if err != nil {
		if msg := bytes.TrimSpace(out.b); len(msg) > 0 {
			return fmt.Errorf("%s: %v: %s", p.c.Script, err, msg)
		}
		return fmt.Errorf("%s: %v", p.c.Script, err)
	}
	return nil
}
