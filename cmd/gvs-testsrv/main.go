// Command gvs-testsrv is the real server of GVS's labs and demos: an HTTP
// server that answers with its name and the peer address it sees, plus
// optional TCP and UDP echo services, so a demo or a test can tell which
// real server answered and from which source address it was reached.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	var name string
	var httpAddrs, tcpEcho, udpEcho, decapKinds []string
	var decapPort int
	var uoa bool
	var decapDev string
	cmd := &cobra.Command{
		Use:          "gvs-testsrv",
		Short:        "HTTP / TCP echo / UDP echo server for GVS labs",
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if len(httpAddrs)+len(tcpEcho)+len(udpEcho) == 0 {
				return fmt.Errorf("nothing to serve: give --http, --tcp-echo or --udp-echo")
			}
			errc := make(chan error, 8)
			if len(decapKinds) > 0 { // a tunnel real server without kernel tunnel modules (decap_linux.go)
				if err := startDecap(decapKinds, decapPort, decapDev, errc); err != nil {
					return err
				}
			}
			for _, a := range httpAddrs {
				ln, err := net.Listen("tcp", a)
				if err != nil {
					return err
				}
				go func() {
					errc <- http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						fmt.Fprintf(w, "%s peer=%s\n", name, r.RemoteAddr)
					}))
				}()
			}
			for _, a := range tcpEcho {
				ln, err := net.Listen("tcp", a)
				if err != nil {
					return err
				}
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							errc <- err
							return
						}
						go func() { defer c.Close(); io.Copy(c, c) }()
					}
				}()
			}
			for _, a := range udpEcho {
				pc, err := net.ListenPacket("udp", a)
				if err != nil {
					return err
				}
				if uoa {
					if err := serveUDPUOA(pc.(*net.UDPConn), name, errc); err != nil {
						return err
					}
					continue
				}
				go func() {
					buf := make([]byte, 65536)
					for {
						n, peer, err := pc.ReadFrom(buf)
						if err != nil {
							errc <- err
							return
						}
						pc.WriteTo(append([]byte(name+" "), buf[:n]...), peer)
					}
				}()
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			select {
			case <-sig:
				return nil
			case err := <-errc:
				return err
			}
		},
	}
	host, _ := os.Hostname()
	cmd.Flags().StringVar(&name, "name", host, "name to answer with")
	cmd.Flags().StringArrayVar(&httpAddrs, "http", nil, "serve HTTP on this address (repeatable)")
	cmd.Flags().StringArrayVar(&tcpEcho, "tcp-echo", nil, "TCP echo on this address (repeatable)")
	cmd.Flags().StringArrayVar(&udpEcho, "udp-echo", nil, "UDP echo (reply prefixed with the name) on this address (repeatable)")
	cmd.Flags().StringArrayVar(&decapKinds, "decap", nil, "receive tunnel packets of this type (ipip, gre, gue; repeatable) and hand their inner packets to the stack through a TUN device")
	cmd.Flags().BoolVar(&uoa, "uoa", false, "--udp-echo answers name uoa=ADDR:PORT message when the datagram carries GVS's UOA: the IPv4 option of uoa_mode ipo (read with IP_RECVOPTS) or the IP protocol 248 header of uoa_mode opp (read with a raw socket; IPv4 and IPv6)")
	cmd.Flags().IntVar(&decapPort, "decap-port", 0, "UDP port of --decap gue")
	cmd.Flags().StringVar(&decapDev, "decap-dev", "tun0", "TUN device of --decap")
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "gvs-testsrv:", err)
		os.Exit(1)
	}
}
