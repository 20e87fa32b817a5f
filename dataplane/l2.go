package dataplane

import (
	"encoding/binary"
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
)

// input is the first pipeline stage: Ethernet and 802.1Q demultiplexing.
func (w *Worker) input(b *pktbuf.Buf) {
	pkt := b.Bytes()
	if len(pkt) < header.EthernetMinSize {
		w.drop(b, CtrDropEthTooShort)
		return
	}
	eth := header.Ethernet(pkt)
	et := eth.Type()
	l3 := header.EthernetMinSize
	var vid uint16
	tagged := false
	if et == header.EtherTypeVLAN {
		if len(pkt) < header.EthernetMinSize+header.VLANSize {
			w.drop(b, CtrDropEthTooShort)
			return
		}
		vid = header.VLAN(pkt[12:]).VID()
		et = binary.BigEndian.Uint16(pkt[16:])
		l3 += header.VLANSize
		tagged = true
	}
	ifidx := w.snap.ifaceFor(int(b.Port), vid, tagged)
	if ifidx == 0 {
		// a VLAN GVS does not terminate: the kernel may have one on KNI
		w.toKNI(b)
		return
	}
	ifc := w.snap.ifaces[ifidx]
	dst := eth.Dst()
	if dst != ifc.MAC && !dst.IsMulticast() {
		w.drop(b, CtrDropNotForUs)
		return
	}
	b.Iface = ifidx
	b.L3 = uint16(l3)
	switch et {
	case header.EtherTypeARP:
		w.arpInput(b, ifc)
	case header.EtherTypeIPv4:
		w.ipv4Input(b, ifc)
	case header.EtherTypeIPv6:
		w.ipv6Input(b, ifc)
	default:
		w.toKNI(b)
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
	owner, owned := w.snap.local[tpa]
	owned = owned && owner == ifc.Index
	if owned || w.neighKnown(spa) {
		if spa.IsValid() && !spa.IsUnspecified() && !sha.IsMulticast() && w.snap.connectedOn(ifc.Index, spa) {
			// RFC 826 lets a request addressed to us create an entry for
			// its sender; a reply only may if we asked (see neigh.go).
			switch {
			case w.dp.neigh.solicit.has(spa, w.now):
				w.learn(spa, sha, ifc.Index, neighNeeded)
			case owned && a.Op() == header.ARPRequest:
				w.learn(spa, sha, ifc.Index, neighUnsolicited)
			case w.neighKnown(spa):
				w.learn(spa, sha, ifc.Index, neighUpdate)
			default:
				w.ctr.inc(CtrDropNeighUnsolicited)
			}
		}
	}
	if !owned {
		w.toKNI(b)
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
	_, ok := w.neigh[a]
	return ok
}

// learn posts a neighbour observation of the given class to the master,
// unless the published table already has it fresh enough, or it could only
// be refused (an unsolicited one for an interface at its bound).
func (w *Worker) learn(a netip.Addr, mac header.MAC, iface uint16, class neighClass) {
	if e, ok := w.neigh[a]; ok {
		if e.static || e.mac == mac && e.iface == iface && w.now-e.confirmed.Load() < int64(neighProbeInterval) {
			return
		}
	} else if class == neighUpdate {
		return
	} else if class == neighUnsolicited && w.dp.neigh.isFull(iface) {
		w.ctr.inc(CtrDropNeighLearnFull)
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
