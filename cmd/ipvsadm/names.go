package main

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gvs-lb/gvs/ctrlplane/ipvsadm"
)

// sysNames names ports from /etc/services and addresses by reverse DNS,
// as ipvsadm's getservbyport and gethostbyaddr do for listings without -n.
type sysNames struct {
	once     sync.Once
	services *ipvsadm.Services
	hosts    map[netip.Addr]string
}

func newSysNames() *sysNames { return &sysNames{hosts: map[netip.Addr]string{}} }

func (n *sysNames) load() {
	n.once.Do(func() {
		f, err := os.Open("/etc/services")
		if err != nil {
			return
		}
		defer f.Close()
		n.services = ipvsadm.ParseServices(f)
	})
}

func (n *sysNames) PortByName(name, proto string) (uint16, bool) {
	n.load()
	return n.services.PortByName(name, proto)
}

func (n *sysNames) ServiceByPort(port uint16, proto string) (string, bool) {
	n.load()
	return n.services.ServiceByPort(port, proto)
}

func (n *sysNames) HostByAddr(a netip.Addr) (string, bool) {
	if h, ok := n.hosts[a]; ok {
		return h, h != ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	h := ""
	if names, err := net.DefaultResolver.LookupAddr(ctx, a.String()); err == nil && len(names) > 0 {
		h = strings.TrimSuffix(names[0], ".")
	}
	n.hosts[a] = h
	return h, h != ""
}
