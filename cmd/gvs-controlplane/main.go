// Command gvs-controlplane keeps gvs-dataplane configured from a YAML file
// in keepalived's vocabulary: it reconciles the services, re-applies them
// after a dataplane restart, runs the health checks, and serves Prometheus
// metrics. SIGHUP (or `gvs-controlplane reload`) re-reads the file and
// applies only the difference. See docs/controlplane.md.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/ctrlplane/daemon"
)

func main() {
	if err := newCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "gvs-controlplane:", format(err))
		os.Exit(1)
	}
}

// newCmd builds the command line; tests run it with their own arguments.
func newCmd() *cobra.Command {
	var o daemon.Options
	var dryRun bool
	var cpus []int
	cmd := &cobra.Command{
		Use:           "gvs-controlplane",
		Short:         "GVS control plane: config reconciler, health checks, metrics",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if c.Flags().Changed("cpus") {
				o.CPUs = append([]int{}, cpus...)
			}
			if dryRun {
				cfg, err := daemon.LoadConfig(o)
				if err != nil {
					return err
				}
				reals, checks := 0, 0
				for _, s := range cfg.Services {
					reals += len(s.Reals)
					for _, r := range s.Reals {
						checks += len(r.Checks)
					}
				}
				fmt.Fprintf(c.OutOrStdout(), "%s: configuration is valid (%d virtual servers, %d real servers, %d health checks)\n",
					o.ConfigPath, len(cfg.Services), reals, checks)
				return nil
			}
			d, err := daemon.Start(o)
			if err != nil {
				return err
			}
			sig := make(chan os.Signal, 4)
			signal.Notify(sig, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2)
			for s := range sig {
				if s == syscall.SIGUSR1 || s == syscall.SIGUSR2 {
					f := map[bool]func(string) (string, error){true: d.Drain, false: d.Undrain}[s == syscall.SIGUSR1]
					if _, err := f(s.String()); err != nil {
						d.Log.Warn("signal ignored", zap.String("signal", s.String()), zap.Error(err))
					}
					continue
				}
				if s == syscall.SIGHUP {
					d.Log.Info("SIGHUP: reloading", zap.String("config", o.ConfigPath))
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					d.Reload(ctx) // logs its outcome; a refused file changes nothing
					cancel()
					continue
				}
				d.Log.Info("stopping", zap.String("signal", s.String()))
				break
			}
			d.Close()
			d.Log.Sync()
			return nil
		},
	}
	f := cmd.Flags()
	cmd.PersistentFlags().StringVarP(&o.ConfigPath, "config", "c", "/etc/gvs/controlplane.yaml", "configuration file")
	f.BoolVar(&dryRun, "dry-run", false, "validate the configuration file and exit")
	f.IntSliceVar(&cpus, "cpus", nil, "CPUs to run on, e.g. 0 or 0,1 (overrides the file's cpus)")
	f.StringVar(&o.Socket, "socket", "", "dataplane API socket (overrides dataplane.socket)")
	f.StringVar(&o.Listen, "listen", "", "HTTP listener for /metrics, host:port or off (overrides http.listen)")
	f.StringVar(&o.ControlSocket, "control-socket", "", "unix socket for reload and state, or off (overrides control.socket)")
	cmd.AddCommand(
		ctlCmd("reload", "re-read the running control plane's file and apply the difference", http.MethodPost, "/reload", &o.ConfigPath),
		ctlCmd("state", "print the running control plane's state as JSON", http.MethodGet, "/state", &o.ConfigPath),
		ctlCmd("drain", "withdraw this node's VIPs from the routers and keep serving (SIGUSR1 does the same)", http.MethodPost, "/drain", &o.ConfigPath),
		ctlCmd("undrain", "announce this node's VIPs again (SIGUSR2 does the same)", http.MethodPost, "/undrain", &o.ConfigPath),
	)
	return cmd
}

// format puts each of several configuration errors on its own line.
func format(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "\n  ")
}
