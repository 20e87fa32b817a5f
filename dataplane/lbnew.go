package dataplane

// New connections: the first packet of a flow to a service is scheduled
// onto a destination, given a local address and a port from this worker's
// own share of the port space, and entered in the worker's session table.

import (
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/ipvs/sched"
	"github.com/gvs-lb/gvs/nat"
	"github.com/gvs-lb/gvs/session"
)

// lbNew schedules a new connection and sends its first packet.
func (w *Worker) lbNew(b *pktbuf.Buf, l3 []byte, t header.Transport, svc *ipvs.Service, key session.Key) verdict {
	midFlow := false
	if key.Proto == header.ProtoTCP {
		if f := t.TCPFlags(l3); f&(header.TCPFlagSYN|header.TCPFlagACK|header.TCPFlagRST|header.TCPFlagFIN) != header.TCPFlagSYN {
			// mid-flow (mh services that ask for it): an ACK without SYN
			// or RST of a flow this node has no connection for
			if !svc.Spec.MidFlow || f&(header.TCPFlagSYN|header.TCPFlagRST|header.TCPFlagACK) != header.TCPFlagACK {
				if !w.seek(b) { // its conn may be another worker's (lbredirect.go)
					w.drop(b, CtrDropLBNotSYN)
				}
				return stolen
			}
			midFlow = true
		}
	}
	if id, ok := w.lbMake(b, l3, t, svc, key, midFlow, false); ok {
		w.lbConn(b, l3, t, id, session.In)
	}
	return stolen
}

// lbMake schedules a new connection for b (a segment that may open one)
// and enters it in the session table. false: b was taken (dropped and
// counted, or forwarded on its own by a one-packet service). proxied: the
// SYN proxy made the client's handshake (lbsynproxy.go): the connection
// starts in SYN_SENT, flagged for the worker's adjustment table, and needs
// a FullNAT real server.
func (w *Worker) lbMake(b *pktbuf.Buf, l3 []byte, t header.Transport, svc *ipvs.Service, key session.Key,
	midFlow, proxied bool) (uint32, bool) {
	client, vip := key.SrcAddrPort(), key.DstAddrPort()
	client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	vip = netip.AddrPortFrom(vip.Addr().Unmap(), vip.Port())
	if !w.lbAdmitNew(b, svc, client.Addr()) { // deny/allow lists and limits (lbacl.go)
		return session.NoID, false
	}
	w.flow = sched.Flow{Src: client.Addr(), SrcPort: client.Port(), Dst: vip.Addr(), DstPort: vip.Port(), Proto: key.Proto,
		Payload: t.UDPPayload(l3)}
	var dest *ipvs.Dest
	held := false // a reference to the client's persistence template (lbpersist.go)
	if svc.Spec.Persistent {
		dest, held = w.persistDest(svc, client.Addr())
	} else if i := svc.Scheds[w.id].Pick(&w.flow); i >= 0 {
		dest = svc.Dests[i]
	}
	w.flow.Payload = nil // the scheduler keeps no reference; neither does the worker
	if dest == nil {
		w.drop(b, CtrDropLBNoDest)
		return session.NoID, false
	}
	if w.trBuf == b {
		w.traceSchedule(svc, dest)
	}
	daddr := dest.Spec.Addr
	if daddr.Port() == 0 {
		daddr = netip.AddrPortFrom(daddr.Addr(), vip.Port()) // port-0 service: the port the client asked for
	}
	fullNAT := dest.Spec.Fwd == ipvs.FwdFullNAT
	masq := dest.Spec.Fwd == ipvs.FwdMasq // NAT (lbmasq.go)
	snat := dest.Spec.Fwd == ipvs.FwdSNAT // SNAT (lbsnat.go): the packet's own destination
	if proxied && !fullNAT {
		// a direct-routing server's replies bypass GVS: nothing could shift
		// them (the control API refuses -j with such servers)
		if held {
			w.persistUnref(svc.ID, client.Addr(), svc)
		}
		w.drop(b, CtrDropLBSynProxyNotFullNAT)
		return session.NoID, false
	}
	// FullNAT: a local address, round robin over the service's, skipping
	// exhausted ones. Direct routing and NAT have none: the client's
	// address and port stand in, so the connection's reply key is the
	// packet the real server sends the client (which bypasses the balancer
	// with direct routing, and comes back through it with NAT).
	local := client
	if snat {
		daddr = vip
		var ok bool
		if local, ok = w.snatLocal(dest.Spec.Addr.Addr()); !ok {
			if held {
				w.persistUnref(svc.ID, client.Addr(), svc)
			}
			w.drop(b, CtrDropLBNoPort)
			return session.NoID, false
		}
	} else if fullNAT {
		var ok bool
		if local, ok = w.localPort(svc, daddr); !ok {
			if held {
				w.persistUnref(svc.ID, client.Addr(), svc)
			}
			if len(svc.AllocLAddrs) == 0 {
				w.drop(b, CtrDropLBNoLAddr) // none, or only backup ones
			} else {
				w.drop(b, CtrDropLBNoPort)
			}
			return session.NoID, false
		}
	}
	if svc.Spec.OnePacket {
		w.lbOnePacket(b, l3, t, svc, dest, held, client, local, daddr)
		return session.NoID, false
	}
	c := session.NewConn(key.Proto, client, vip, local, daddr)
	c.Dest, c.Service = dest.ID, svc.ID
	if masq || snat {
		c.Flags |= session.FlagTOAConfirmed // the server sees the client's own address; SNAT has no server
	} else if !fullNAT {
		// replies go straight to the client: the input-only state table
		// until one is seen here; the client's own address needs no TOA
		c.Flags |= session.FlagNoOutput | session.FlagTOAConfirmed
	}
	if midFlow {
		c.Flags |= session.FlagMidFlow
	}
	if held {
		c.Flags |= session.FlagTemplate
	}
	if proxied {
		c.State = session.StateSynSent
	}
	// the SYN proxy and the proxy protocol translate sequence numbers: an
	// entry in the worker's adjustment table (lbsynproxy.go, lbproxyproto.go)
	pp := svc.Spec.ProxyProtocol != 0 && fullNAT && key.Proto == header.ProtoTCP && !midFlow
	if proxied || pp {
		c.Flags |= session.FlagAdjusted
		w.sp.init(w.sess.Capacity(), w.dp.spCfg.Held)
	}
	if pp {
		c.Flags |= session.FlagTOAConfirmed // the header carries the client's address: no TOA
	}
	uoa := key.Proto == header.ProtoUDP && fullNAT && w.dp.opts.UOAMaxTrail > 0 &&
		(w.dp.opts.UOAMode == UOAOPP || client.Addr().Is4() && daddr.Addr().Is4()) // ipo: IPv4 only, as DPVS
	if key.Proto == header.ProtoUDP && !uoa {
		c.Flags |= session.FlagTOAConfirmed // UDP: no UOA to send (lbuoa.go)
	}
	if uoa {
		w.sp.init(w.sess.Capacity(), w.dp.spCfg.Held)
	}
	w.makeRoom() // a full table evicts an embryonic or closing conn (lbpressure.go)
	id, err := w.sess.Insert(c, w.tick())
	if err != nil {
		if fullNAT {
			w.pool.Put(local.Addr(), daddr, local.Port())
		} else if snat {
			w.pool.Put(local.Addr(), snatPeer, local.Port())
		}
		if held {
			w.persistUnref(svc.ID, client.Addr(), svc)
		}
		if err == session.ErrFull {
			w.drop(b, CtrDropLBTableFull)
		} else {
			w.drop(b, CtrDropLBInsertFailed) // a key clash (ErrExists) or an invalid conn
		}
		return session.NoID, false
	}
	w.masqMade(id, &c, masq || snat)
	if uoa {
		w.sp.conns[id] = spConn{} // its count of UOA datagrams
	}
	if c.Flags&session.FlagAdjusted != 0 {
		isn := header.TCP(l3[t.Off:]).Seq()
		if proxied {
			isn-- // the client's ACK
		}
		w.adjustEntry(id, svc, &c, isn)
	}
	dest.C.Inactive.Add(1)
	dest.Stats.Conns.Add(1) // a service's count is the sum of its destinations'
	w.ctr.inc(CtrLBNewConns)
	if midFlow {
		w.ctr.inc(CtrLBMidFlowConns)
	}
	return id, true
}

// localPort takes a local address and port towards daddr: round robin
// over the service's local addresses, skipping exhausted ones.
func (w *Worker) localPort(svc *ipvs.Service, daddr netip.AddrPort) (netip.AddrPort, bool) {
	for n := 0; n < len(svc.AllocLAddrs); n++ {
		la := svc.AllocLAddrs[w.laddrNext%uint32(len(svc.AllocLAddrs))].Addr
		w.laddrNext++
		if la.Is4() != daddr.Addr().Is4() {
			continue // an IPv6 service's IPv4 local addresses are for its NAT64 servers, and back
		}
		if p, err := w.pool.Get(la, daddr); err == nil {
			return netip.AddrPortFrom(la, p), true
		}
	}
	return netip.AddrPort{}, false
}

// lbOnePacket forwards a datagram of a one-packet (-o) UDP service: it
// was scheduled on its own and leaves no connection. Its local port goes
// back to the pool at once; the pool's cursor moves on, so the port is
// the last one handed out again. A reply to it finds no connection and is
// dropped (drop_lb_no_conn), as LVS's one-packet connections see none:
// -o is for datagrams that need no answer through the balancer (syslog,
// telemetry, SNMP traps) or whose answers take another path.
func (w *Worker) lbOnePacket(b *pktbuf.Buf, l3 []byte, t header.Transport, svc *ipvs.Service, dest *ipvs.Dest, held bool,
	client, local, daddr netip.AddrPort) {
	fullNAT := dest.Spec.Fwd == ipvs.FwdFullNAT
	if fullNAT {
		w.pool.Put(local.Addr(), daddr, local.Port())
	}
	if held {
		w.persistUnref(svc.ID, client.Addr(), svc)
	}
	dest.Stats.Conns.Add(1) // LVS counts a one-packet connection per datagram
	w.destIn(dest.ID, uint64(len(l3)))
	w.ctr.inc(CtrLBOnePacket)
	w.ctr.inc(CtrLBIn)
	if dest.Spec.Fwd == ipvs.FwdTunnel {
		w.lbTunnel(b, l3, &dest.Spec, daddr.Addr(), client) // lbtunnel.go
		return
	}
	if !fullNAT && dest.Spec.Fwd != ipvs.FwdMasq {
		w.lbDR(b, l3, daddr.Addr())
		return
	}
	// FullNAT: local → server; NAT: the local address is the client's own
	to := nat.Endpoints{Src: local.Addr(), Dst: daddr.Addr(), SrcPort: local.Port(), DstPort: daddr.Port()}
	if client.Addr().Is6() && daddr.Addr().Is4() {
		w.nat64OnePacket(b, l3, t, &to) // lbnat64.go
		return
	}
	if err := nat.RewriteAt(l3, t, &to); err != nil {
		w.drop(b, CtrDropLBBadL4)
		return
	}
	w.lbRouteOrDrop(b, l3, to.Dst)
}
