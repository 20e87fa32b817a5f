//go:build !linux

package main

import "errors"

func startDecap([]string, int, string, chan<- error) error {
	return errors.New("--decap needs Linux (raw sockets and TUN devices)")
}
