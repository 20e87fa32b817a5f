// Command gvs-dataplane runs GVS's packet engine: it owns the configured
// ports, runs the poll-mode workers and serves the control API that dpip and
// gvs-controlplane use.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/dataplane/config"
	"github.com/gvs-lb/gvs/dataplane/daemon"
)

func main() {
	var cfgPath string
	var check bool
	cmd := &cobra.Command{
		Use:           "gvs-dataplane",
		Short:         "GVS userspace layer-4 load balancer dataplane",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			if check {
				if err := daemon.Check(c); err != nil {
					return err
				}
				fmt.Printf("%s: configuration is valid\n", cfgPath)
				return nil
			}
			log, err := daemon.NewLogger(c.Log)
			if err != nil {
				return err
			}
			defer log.Sync()
			// signals are caught before start-up: a SIGHUP must never kill it
			sig := make(chan os.Signal, 4)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
			d, err := daemon.Start(c, log)
			if err != nil {
				log.Error("start failed", zap.Error(err))
				return err
			}
			d.SetConfigPath(cfgPath)
			for s := range sig {
				if s == syscall.SIGHUP {
					// re-read the file and apply the difference (as the
					// API's Reload does); a bad file, or one that changes
					// what needs a restart, leaves everything as it is
					// (never the default: exit)
					if _, _, err := d.ReloadFile("", false); err != nil {
						log.Error("SIGHUP: reload refused; the running configuration stays", zap.Error(err))
					}
					continue
				}
				log.Info("stopping", zap.String("signal", s.String()))
				break
			}
			d.Close()
			return nil
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "/etc/gvs/dataplane.yaml", "configuration file")
	cmd.Flags().BoolVar(&check, "check", false, "validate the configuration and exit")
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "gvs-dataplane:", err)
		os.Exit(1)
	}
}
