//go:build dpdk

package dpdk

// The EAL and port-level C calls. cgo, unsafe and the DPDK headers stay in
// this file and queue_cgo.go.

/*
#cgo pkg-config: libdpdk
#cgo CFLAGS: -DALLOW_EXPERIMENTAL_API -Wno-deprecated-declarations
#include "gvs_dpdk.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

// eal is the process's EAL: DPDK allows one initialisation per process, so
// this is the one piece of package state, guarded by its mutex.
var eal struct {
	mu   sync.Mutex
	args []string
	err  error
	done bool
}

// Init starts the EAL with args (as config.DPDK.EALArgs builds them, the
// program name first). A second call with the same arguments returns the
// first call's result; with other arguments it fails: the EAL cannot be
// restarted in a running process.
func Init(args []string) error {
	eal.mu.Lock()
	defer eal.mu.Unlock()
	if eal.done {
		if !slices.Equal(args, eal.args) {
			return fmt.Errorf("dpdk: EAL already initialised with %q, cannot restart it with %q: restart gvs-dataplane",
				strings.Join(eal.args, " "), strings.Join(args, " "))
		}
		return eal.err
	}
	eal.done = true
	eal.args = slices.Clone(args)
	argv := make([]*C.char, len(args)+1)
	for i, a := range args {
		argv[i] = C.CString(a)
	}
	// the EAL keeps pointers into argv (rte_eal_init permutes it): the
	// strings are never freed
	cargv := (**C.char)(C.malloc(C.size_t(len(argv)) * C.size_t(unsafe.Sizeof(argv[0]))))
	copy(unsafe.Slice(cargv, len(argv)), argv)
	if r := C.gvs_eal_init(C.int(len(args)), cargv); r < 0 {
		errno := syscall.Errno(-r)
		eal.err = fmt.Errorf("dpdk: EAL initialisation (%s) failed: %s: %s",
			strings.Join(args[1:], " "), C.GoString(C.rte_strerror(-r)), ealFix(errno, args))
	}
	return eal.err
}

// ealFix names the likely fix of a failed EAL initialisation.
func ealFix(e syscall.Errno, args []string) string {
	noHuge := slices.Contains(args, "--no-huge")
	switch {
	case (e == syscall.EACCES || e == syscall.ENOMEM || e == syscall.EFAULT) && !noHuge:
		return "no usable hugepages: reserve some (echo 1024 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages) or set dpdk.no_huge for tests"
	case e == syscall.EACCES:
		return "permission denied: run as root (or with CAP_SYS_ADMIN, CAP_IPC_LOCK and access to /dev/vfio)"
	case e == syscall.EALREADY:
		return "the EAL was already initialised in this process"
	case e == syscall.ENODEV || e == syscall.ENOENT:
		return "a device in dpdk.pci_allow or dpdk.vdevs was not found: check dpdk-devbind.py --status and the vdev names"
	}
	return "check the dpdk: section (dpdk.log_level: debug shows the EAL's reasons)"
}

func ealReady() error {
	eal.mu.Lock()
	defer eal.mu.Unlock()
	if !eal.done {
		return errors.New("dpdk: the EAL is not initialised: configure the dpdk: section (gvs-dataplane initialises it before opening dpdk ports)")
	}
	if eal.err != nil {
		return eal.err
	}
	return nil
}

func portByName(name string) (uint16, bool) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	var id C.uint16_t
	if C.rte_eth_dev_get_port_by_name(cs, &id) != 0 {
		return 0, false
	}
	return uint16(id), true
}

// availablePorts lists the DPDK devices the EAL found, for error messages.
func availablePorts() []string {
	var names []string
	var buf [C.RTE_ETH_NAME_MAX_LEN]C.char
	for id := 0; id < C.RTE_MAX_ETHPORTS; id++ {
		if C.rte_eth_dev_is_valid_port(C.uint16_t(id)) == 1 && C.rte_eth_dev_get_name_by_port(C.uint16_t(id), &buf[0]) == 0 {
			names = append(names, C.GoString(&buf[0]))
		}
	}
	return names
}

func errStr(b []C.char) string { return C.GoString(&b[0]) }

type devInfo struct {
	driver                  string
	maxRxQueues, maxTxQueue int
	socket                  int
	rssOffloads             uint64
	retaSize, keySize       int
	minMTU, maxMTU          int
}

func deviceInfo(id uint16) (devInfo, error) {
	var info C.struct_rte_eth_dev_info
	if r := C.rte_eth_dev_info_get(C.uint16_t(id), &info); r != 0 {
		return devInfo{}, fmt.Errorf("device info: %s", C.GoString(C.rte_strerror(-r)))
	}
	return devInfo{
		driver: C.GoString(info.driver_name),
		minMTU: int(info.min_mtu), maxMTU: int(info.max_mtu),
		maxRxQueues: int(info.max_rx_queues), maxTxQueue: int(info.max_tx_queues),
		socket:      int(C.rte_eth_dev_socket_id(C.uint16_t(id))),
		rssOffloads: uint64(info.flow_type_rss_offloads),
		retaSize:    int(info.reta_size), keySize: int(info.hash_key_size),
	}, nil
}

func setupPort(id uint16, qs []*Queue, rxRing, txRing int) (rssHF uint64, err error) {
	cq := (**C.struct_gvs_q)(C.malloc(C.size_t(len(qs)) * C.size_t(unsafe.Sizeof((*C.struct_gvs_q)(nil)))))
	defer C.free(unsafe.Pointer(cq))
	s := unsafe.Slice(cq, len(qs))
	for i, q := range qs {
		s[i] = q.c
	}
	var hf C.uint64_t
	var eb [256]C.char
	if r := C.gvs_port_setup(C.uint16_t(id), C.uint16_t(len(qs)), C.uint16_t(rxRing), C.uint16_t(txRing), cq, &hf, &eb[0], C.size_t(len(eb))); r != 0 {
		return 0, errors.New(errStr(eb[:]))
	}
	return uint64(hf), nil
}

func macOf(id uint16) net.HardwareAddr {
	var a C.struct_rte_ether_addr
	if C.rte_eth_macaddr_get(C.uint16_t(id), &a) != 0 {
		return nil
	}
	m := make(net.HardwareAddr, 6)
	for i := range m {
		m[i] = byte(a.addr_bytes[i])
	}
	return m
}

func mtuOf(id uint16) int {
	var m C.uint16_t
	if C.rte_eth_dev_get_mtu(C.uint16_t(id), &m) != 0 {
		return 1500
	}
	return int(m)
}

// mbufHeadroom is the room DPDK leaves in front of a received frame.
const mbufHeadroom = C.RTE_PKTMBUF_HEADROOM

func setMTU(id uint16, mtu int) error {
	if r := C.rte_eth_dev_set_mtu(C.uint16_t(id), C.uint16_t(mtu)); r != 0 {
		return errnoErr(r)
	}
	return nil
}

func errnoErr(r C.int) error {
	if r == -C.ENOTSUP {
		return errNotSupported
	}
	return errors.New(C.GoString(C.rte_strerror(-r)))
}

func setPromisc(id uint16, on bool) error {
	var r C.int
	if on {
		r = C.rte_eth_promiscuous_enable(C.uint16_t(id))
	} else {
		r = C.rte_eth_promiscuous_disable(C.uint16_t(id))
	}
	if r != 0 {
		return errnoErr(r)
	}
	return nil
}

func setAllMulti(id uint16, on bool) error {
	var r C.int
	if on {
		r = C.rte_eth_allmulticast_enable(C.uint16_t(id))
	} else {
		r = C.rte_eth_allmulticast_disable(C.uint16_t(id))
	}
	if r != 0 {
		return errnoErr(r)
	}
	return nil
}

func linkUp(id uint16) (up bool, speedMbps uint32) {
	var u C.int
	var sp C.uint32_t
	if C.gvs_link(C.uint16_t(id), &u, &sp) != 0 {
		return false, 0
	}
	return u != 0, uint32(sp)
}

type devStats struct {
	ipackets, opackets, ibytes, obytes, imissed, ierrors, oerrors, nombuf uint64
}

func statsOf(id uint16) (devStats, bool) {
	var s C.struct_rte_eth_stats
	if C.rte_eth_stats_get(C.uint16_t(id), &s) != 0 {
		return devStats{}, false
	}
	return devStats{uint64(s.ipackets), uint64(s.opackets), uint64(s.ibytes), uint64(s.obytes),
		uint64(s.imissed), uint64(s.ierrors), uint64(s.oerrors), uint64(s.rx_nombuf)}, true
}

func xstatsOf(id uint16) ([]XStat, error) {
	n := C.rte_eth_xstats_get_names(C.uint16_t(id), nil, 0)
	if n < 0 {
		return nil, errnoErr(n)
	}
	if n == 0 {
		return nil, nil
	}
	names := make([]C.struct_rte_eth_xstat_name, n)
	vals := make([]C.struct_rte_eth_xstat, n)
	if C.rte_eth_xstats_get_names(C.uint16_t(id), &names[0], C.uint(n)) != n {
		return nil, errors.New("xstats names changed while reading")
	}
	got := C.rte_eth_xstats_get(C.uint16_t(id), &vals[0], C.uint(n))
	if got < 0 {
		return nil, errnoErr(got)
	}
	out := make([]XStat, 0, got)
	for _, v := range vals[:got] {
		if int(v.id) < int(n) {
			out = append(out, XStat{Name: C.GoString(&names[v.id].name[0]), Value: uint64(v.value)})
		}
	}
	return out, nil
}

func readRSS(id uint16) (key []byte, reta []uint16, err error) {
	var k [64]C.uint8_t
	kl := C.uint8_t(len(k))
	var t [512]C.uint16_t
	r := C.gvs_rss(C.uint16_t(id), &k[0], &kl, &t[0], C.uint16_t(len(t)))
	if r < 0 {
		return nil, nil, errnoErr(r)
	}
	key = make([]byte, int(kl))
	for i := range key {
		key[i] = byte(k[i])
	}
	reta = make([]uint16, int(r))
	for i := range reta {
		reta[i] = uint16(t[i])
	}
	return key, reta, nil
}

// flowRule is an installed rte_flow rule.
type flowRule struct {
	port uint16
	f    *C.struct_rte_flow
}

func flow(id uint16, addr netip.Addr, proto uint8, spec, mask uint16, queue int, validate bool) (flowRule, error) {
	a := addr.As16()
	is6 := 0
	ab := a[12:]
	if addr.Is6() && !addr.Is4In6() {
		is6, ab = 1, a[:]
	}
	ca := (*C.uint8_t)(C.malloc(16))
	defer C.free(unsafe.Pointer(ca))
	copy(unsafe.Slice((*byte)(unsafe.Pointer(ca)), 16), ab)
	var eb [256]C.char
	f := C.gvs_flow(C.uint16_t(id), C.int(is6), ca, C.uint8_t(proto), C.uint16_t(spec), C.uint16_t(mask),
		C.uint16_t(queue), boolInt(validate), &eb[0], C.size_t(len(eb)))
	if f == nil {
		return flowRule{}, errors.New(errStr(eb[:]))
	}
	if validate {
		return flowRule{}, nil
	}
	return flowRule{port: id, f: f}, nil
}

func (r flowRule) destroy() error {
	var fe C.struct_rte_flow_error
	if C.rte_flow_destroy(C.uint16_t(r.port), r.f, &fe) != 0 {
		if fe.message != nil {
			return errors.New(C.GoString(fe.message))
		}
		return errors.New("rte_flow_destroy failed")
	}
	return nil
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// closePort stops and closes the device: the PMD releases the mbufs it
// holds into their mempools, which must still exist.
func closePort(id uint16) error {
	var errs []error
	if r := C.rte_eth_dev_stop(C.uint16_t(id)); r != 0 {
		errs = append(errs, fmt.Errorf("stop: %w", errnoErr(r)))
	}
	if r := C.rte_eth_dev_close(C.uint16_t(id)); r != 0 {
		errs = append(errs, fmt.Errorf("close: %w", errnoErr(r)))
	}
	return errors.Join(errs...)
}
