package dataplane

import (
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
)

// input is the first pipeline stage: Ethernet and 802.1Q demultiplexing.
func (w *Worker) input(b *pktbuf.Buf) {
	pkt := b.Bytes()
	l2, ok := header.ParseL2(pkt)
	if !ok {
		w.drop(b, CtrDropEthTooShort)
		return
	}
	ifidx := w.snap.ifaceFor(int(b.Port), l2.VID, l2.Tagged)
	if ifidx == 0 {
		// a VLAN GVS does not terminate: the kernel may have one on KNI
		w.toKNIOr(b, CtrDropUnknownVLAN)
		return
	}
	ifc := w.snap.ifaces[ifidx]
	dst := header.Ethernet(pkt).Dst()
	if dst != ifc.MAC && !dst.IsMulticast() {
		w.drop(b, CtrDropNotForUs)
		return
	}
	b.Iface = ifidx
	b.L3 = uint16(l2.L3)
	switch l2.Type {
	case header.EtherTypeARP:
		w.arpInput(b, ifc)
	case header.EtherTypeIPv4:
		w.ipv4Input(b, ifc)
	case header.EtherTypeIPv6:
		w.ipv6Input(b, ifc)
	default:
		w.toKNIOr(b, CtrDropUnknownEtherType)
	}
}

// arpInput answers requests for the interface's addresses, learns senders on
// connected subnets and hands everything else to the kernel.
func (w *Worker) arpInput(b *pktbuf.Buf, ifc *Iface) {
	pkt := b.Bytes()
	a := header.ARP(pkt[b.L3:])
	if !a.IsValid() {
		w.drop(b, CtrDropARPInvalid)
		return
	}
	spa, tpa := a.SenderIP(), a.TargetIP()
	sha := a.SenderMAC()
	owner, owned := w.snap.local.Get(tpa)
	owned = owned && owner == ifc.Index
	if owned || w.neighKnown(spa) {
		if spa.IsValid() && !spa.IsUnspecified() && !sha.IsMulticast() && w.snap.connectedOn(ifc.Index, spa) {
			// RFC 826 lets a request addressed to us create an entry for
			// its sender; a reply only may if we asked (see neigh.go).
			w.learn(spa, sha, ifc.Index, owned && a.Op() == header.ARPRequest)
		}
	}
	if !owned {
		w.toKNI(b, kniControl)
		return
	}
	if a.Op() != header.ARPRequest {
		// a reply to one of our requests: learnt above
		b.Free()
		return
	}
	// Turn the request into the reply in place; a VLAN tag stays as it is.
	a.Set(header.ARPReply, ifc.MAC, tpa, sha, spa)
	eth := header.Ethernet(pkt)
	eth.SetDst(sha)
	eth.SetSrc(ifc.MAC)
	w.ctr.inc(CtrARPReplied)
	w.enqueueTx(ifc.Port, b)
}

func (w *Worker) neighKnown(a netip.Addr) bool {
	ok := w.neigh.Has(a)
	return ok
}

// learn posts a neighbour observation to the master, unless the published
// table already has it fresh enough. Its class (neigh.go) is needed when a
// worker solicited a, else unsolicited when the packet may create an entry
// (mayCreate: an ARP request or NS addressed to the dataplane), else an
// update of an existing entry; an observation that could only be refused
// (about an unknown address, or unsolicited for a full interface) is
// counted here and goes no further.
func (w *Worker) learn(a netip.Addr, mac header.MAC, iface uint16, mayCreate bool) {
	e, known := w.neigh.Get(a)
	if known && (e.static || e.mac == mac && e.iface == iface && w.now-e.confirmed.Load() < int64(neighProbeInterval)) {
		return
	}
	class := neighUpdate
	switch {
	case w.dp.neigh.solicit.has(a, w.now):
		class = neighNeeded
	case mayCreate:
		class = neighUnsolicited
		if !known && w.dp.neigh.isFull(iface) {
			w.ctr.inc(CtrDropNeighLearnFull)
			return
		}
	case !known:
		w.ctr.inc(CtrDropNeighUnsolicited)
		return
	}
	ch := w.dp.learnCh
	if class == neighNeeded {
		ch = w.dp.needCh
	}
	select {
	case ch <- neighLearn{addr: a, mac: mac, iface: iface, class: class, worker: uint16(w.id)}:
	default:
		w.ctr.inc(CtrDropNeighLearnLost)
	}
}
