package xdpfast

// The program is C (bpf/xdpfast.c) compiled by clang into fast_bpfel.o,
// which is committed with the Go code bpf2go generates for it
// (fast_bpfel.go: loader and the key/value types). `make bpf` runs this;
// CI checks that it regenerates the committed files byte for byte.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -target bpfel -tags linux -type fnat_key -type fnat_val -type fnat_arm -type xdpfast_verdict fast bpf/xdpfast.c -- -O2 -g -Wall -Werror
