//go:build !linux

package main

import (
	"errors"
	"net"
)

func serveUDPUOA(pc *net.UDPConn, name string, errc chan<- error) error {
	return errors.New("--uoa needs Linux (IP_RECVOPTS, raw sockets)")
}
