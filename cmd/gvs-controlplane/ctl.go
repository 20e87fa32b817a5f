package main

// `gvs-controlplane reload`, `state`, `drain` and `undrain` talk to a running
// control plane over its control socket (control.socket), which only root
// and members of control.group may use.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gvs-lb/gvs/ctrlplane/config"
)

// controlClient returns an HTTP client whose every request goes to the
// unix socket at path.
func controlClient(path string) *http.Client {
	return &http.Client{
		Timeout: 2 * time.Minute, // a reload applies the whole difference
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}
}

// controlSocket is --control-socket, else the file's control.socket, else
// the default (a file being reloaded may be invalid: that is for the
// running control plane to say).
func controlSocket(flag, cfgPath string) string {
	if flag != "" {
		return flag
	}
	if c, err := config.Load(cfgPath); err == nil && c.Control.Socket != "" {
		return c.Control.Socket
	}
	return config.DefaultControlSocket
}

func ctlCmd(use, short, method, path string, cfgPath *string) *cobra.Command {
	var sock string
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs, SilenceUsage: true, SilenceErrors: true,
		RunE: func(c *cobra.Command, _ []string) error {
			s := controlSocket(sock, *cfgPath)
			req, err := http.NewRequest(method, "http://gvs-controlplane"+path, nil)
			if err != nil {
				return err
			}
			resp, err := controlClient(s).Do(req)
			if err != nil {
				return fmt.Errorf("control socket %s: %w (is gvs-controlplane running, and are you root or in control.group?)", s, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s", strings.TrimSpace(string(body)))
			}
			c.OutOrStdout().Write(body)
			return nil
		},
	}
	cmd.Flags().StringVar(&sock, "control-socket", "", "control socket of the running control plane (default: the file's control.socket)")
	return cmd
}
