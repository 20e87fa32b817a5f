package dataplane

import (
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/route"
)

// routePath returns the next hop and the outgoing interface of route r for
// the packet l3 (validated, addressed to dst). A multipath route chooses by
// the hash of the packet's 5-tuple, so a flow keeps its path; the hash is
// computed only for multipath routes.
func routePath(r *route.Route, dst netip.Addr, l3 []byte) (netip.Addr, uint16) {
	var h uint32
	if r.Multipath() {
		h = route.FlowHash(l3)
	}
	return r.Path(dst, h)
}
