package dataplane

import "sync/atomic"

// Counter names a per-worker counter. Drops are never errors: each has a
// counter named after its reason, visible in `dpip -s link show` and the API.
type Counter uint8

// Counters. Keep counterNames in the same order.
const (
	CtrRxPackets Counter = iota
	CtrTxPackets
	CtrKNIPunted
	CtrKNISent // frames from the kernel sent out a port
	CtrARPReplied
	CtrARPRequested
	CtrNDReplied
	CtrNDSolicited
	CtrEchoReplied
	CtrForwarded
	CtrICMPErrorsSent
	CtrNeighQueued
	CtrLBNewConns
	CtrLBIn
	CtrLBOut
	CtrLBRedirectedOut
	CtrLBRedirectedIn
	CtrLBTOAAdded
	CtrLBTOAFailed
	CtrLBICMPTranslated
	CtrLBConnsExpired

	// drops
	CtrDropEthTooShort
	CtrDropNotForUs
	CtrDropUnknownVLAN
	CtrDropUnknownEtherType
	CtrDropARPInvalid
	CtrDropIPv4TooShort
	CtrDropIPv4BadVersion
	CtrDropIPv4BadHeaderLen
	CtrDropIPv4BadTotalLen
	CtrDropIPv4BadChecksum
	CtrDropIPv6TooShort
	CtrDropIPv6BadVersion
	CtrDropIPv6BadPayloadLen
	CtrDropICMPInvalid
	CtrDropNDInvalid
	CtrDropTTLExceeded
	CtrDropNoRoute
	CtrDropMTUExceeded
	CtrDropNeighUnresolved
	CtrDropNeighQueueFull
	CtrDropKNIRateLimit
	CtrDropKNIRingFull
	CtrDropKNIDisabled
	CtrDropKNICtlRateLimit
	CtrDropKNICtlRingFull
	CtrDropForwardingDisabled
	CtrDropNoBuffer
	CtrDropTxFull
	CtrDropMartian
	CtrDropLBNoConn
	CtrDropLBNotSYN
	CtrDropLBNoDest
	CtrDropLBNoLAddr
	CtrDropLBNoPort
	CtrDropLBTableFull
	CtrDropLBRedirectFull
	CtrDropLBExpiredDest
	CtrDropLBFragment
	CtrDropLBBadL4

	CtrLBTOAScrubbed       // a client-supplied TOA option (kind 254/253) overwritten with NOPs
	CtrDropLBBadChecksum   // a client segment that would carry the TOA has a bad TCP checksum
	CtrDropLBBadTCPOptions // a client segment's TCP option list is malformed (could hide a TOA)

	CtrDropNeighLearnFull   // a learn refused: the interface's table is at its bound
	CtrDropNeighLearnLost   // a learn event lost: the queue to the master was full
	CtrDropNeighUnsolicited // an ARP reply or NA about an unknown address nobody asked for
	CtrNeighEvicted         // an unsolicited entry evicted for a needed one

	CtrDropLBNoService    // TCP/UDP to a virtual address's port without a service
	CtrDropLBInsertFailed // a new connection the table refused for a reason other than full

	CtrSyncPublished      // a connection event put on the sync ring
	CtrSyncDropRingFull   // a connection event lost: the sync ring was full
	CtrSyncInstalled      // a synced connection installed
	CtrSyncUpdated        // a synced connection refreshed
	CtrSyncInstallRefused // a synced connection refused (no service/real server, port, table full)

	CtrLBMidFlowConns // a connection created for a segment without SYN (mh --mid-flow)

	CtrLBPersistFull       // a persistent service's new client scheduled without a template: its bucket was full
	CtrLBOnePacket         // a datagram of a one-packet (-o) service forwarded without a connection
	CtrLBPersistReused     // a new connection sent to its client's persistence template's real server
	CtrDropLBDRNotOnLink   // a direct-routing packet whose real server is not on a connected subnet
	CtrDropLBDenied        // a client in the service's deny list (blklst)
	CtrDropLBNotAllowed    // a client not in the service's allow list (whtlst)
	CtrDropLBRateLimited   // a new connection over the service's conn_rate_limit
	CtrDropLBSourceLimited // a new connection over the service's per_source_rate_limit

	CtrLBSynProxyCookies         // SYN proxy: a SYN answered with a cookie SYN-ACK
	CtrLBSynProxyConns           // SYN proxy: a connection made on a client ACK with a valid cookie
	CtrLBSynProxyEstablished     // SYN proxy: a real server's handshake completed
	CtrLBSynProxyHeld            // SYN proxy: a client's first data segment held during the server's handshake
	CtrLBSynProxyRetries         // SYN proxy: a SYN re-sent to a real server that had not answered
	CtrLBSynProxyServerReset     // SYN proxy: a real server refused the connection; the client was reset
	CtrLBSynProxyAckStorm        // SYN proxy: a client sent too many segments while its server was silent; reset
	CtrDropLBSynProxyBadCookie   // SYN proxy: an ACK without a connection whose cookie does not check
	CtrDropLBSynProxyStaleCookie // SYN proxy: an ACK whose cookie was made under a secret rotated out
	CtrDropLBSynProxyWaiting     // SYN proxy: a client segment during the server's handshake, not held (resent later)
	CtrDropLBSynProxyNotFullNAT  // SYN proxy: the scheduled real server is not FullNAT (its replies would bypass GVS)
	CtrLBPPAdded                 // a proxy protocol header put in front of a client segment
	CtrLBPPCut                   // a client segment cut to fit the egress MTU with the proxy protocol header
	CtrLBUOAAdded                // a UDP datagram given the client's address (UOA: an IPv4 option, or an opp header)
	CtrLBUOAFailed               // a UDP datagram that could not take the UOA (egress MTU, IP options, IPv6 fragment, headroom)
	CtrDropLBAdjustedSYN         // a new SYN for the port of a SYN-proxy/proxy-protocol connection (a closing one is ended)

	CtrLBEvictedEmbryonic // a full table made room: an embryonic conn (NONE, SYN_SENT, SYN_RECV, SYNACK) evicted
	CtrLBEvictedClosing   // a full table made room: a closing conn (FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK) evicted
	CtrLBPressureNew      // a new connection's first packet while the table was at or above its high-water mark

	CtrLBTunnelEncap        // a packet encapsulated towards a tunnel (-i) real server
	CtrDropLBTunnelTooBig   // a tunnel packet too big for the egress MTU once encapsulated: ICMP frag-needed / packet-too-big sent to the client
	CtrDropLBTunnelNeedFrag // an IPv4 tunnel packet without DF too big once encapsulated (GVS does not fragment)
	CtrDropLBTunnelNoSource // no address of the real server's family on the interface towards it (outer source)

	CtrLBNAT64In   // a client packet of a NAT64 connection translated from IPv6 to IPv4
	CtrLBNAT64Out  // a real server's packet of a NAT64 connection translated from IPv4 to IPv6
	CtrDropLBNAT64 // a NAT64 connection's packet that cannot be translated (an IPv4 fragment, no headroom)

	CtrLBMasqIndexFull // a NAT (-m) connection the owner index had no room for: its replies on other workers pass untranslated
	CtrLBMasqTransit   // a forwarded packet from a NAT real server's address that no connection owns (the server's own traffic)

	CtrLBFragFirst           // a first fragment (with the ports) to a VIP or local address forwarded and its datagram entered in the fragment cache (lbfrag.go)
	CtrLBFragForwarded       // a later fragment forwarded as its first fragment went
	CtrLBFragHeld            // a later fragment held until its first fragment comes
	CtrLBFragReleased        // a held fragment released after its first fragment passed
	CtrLBFragEvicted         // a full fragment cache set made room: its oldest live entry evicted
	CtrDropLBFragHoldFull    // a later fragment before its first, not held: no free slot, or the frame exceeds a slot
	CtrDropLBFragTimeout     // a held fragment whose first fragment never came
	CtrDropLBFragUnsupported // a fragment of a SYN-proxy, proxy-protocol, NAT64 or one-packet connection (GVS would change the datagram or has no connection)
	CtrDropLBFragNoConn      // a later fragment whose first fragment's connection has ended
	CtrDropLBExtHeader       // an IPv6 packet to a VIP whose extension headers hide the transport header (routing header with segments left, chain too long or cut)
	CtrLBXDPOffloaded        // a connection direction written to its port's XDP fast path (lbxdp.go)
	CtrLBXDPOffloadFailed    // a connection direction the XDP fast path had no room for (or refused): it stays on the slow path
	CtrLBXDPRemoved          // a connection direction taken back from the XDP fast path (FIN/RST, end, route or neighbour change)
	CtrLBXDPHeld             // a packet held after its direction was taken back from the XDP fast path, until the program's last ones have left
	CtrLBXDPHoldFull         // the packets held after a take-back from the XDP fast path sent before their time: the hold queue was full
	CtrLBSeekOut             // a client's TCP segment of no connection here, handed to the next worker to look for its connection (lbredirect.go)
	CtrLBSeekLimited         // such a segment dropped instead: the worker's hand-off budget for this second was spent

	CtrLBResetServer // a RST sent to a real server for a connection GVS ended: ESTABLISHED at expiry, embryonic (answered by the server) at expiry or eviction
	CtrLBResetClient // a RST sent to a client for an ESTABLISHED connection GVS ended at expiry

	CtrLBXDPHoldAcked // a drain after a take-back from the XDP fast path ended early: the other direction acknowledged what the program forwarded

	NumCounters
)

var counterNames = [NumCounters]string{
	"rx_packets", "tx_packets", "kni_punted", "kni_sent", "arp_replied", "arp_requested",
	"nd_replied", "nd_solicited", "echo_replied", "forwarded", "icmp_errors_sent", "neigh_queued",
	"lb_new_conns", "lb_in", "lb_out", "lb_redirected_out", "lb_redirected_in", "lb_toa_added", "lb_toa_failed",
	"lb_icmp_translated", "lb_conns_expired",
	"drop_eth_too_short", "drop_not_for_us", "drop_unknown_vlan", "drop_unknown_ethertype",
	"drop_arp_invalid", "drop_ipv4_too_short", "drop_ipv4_bad_version", "drop_ipv4_bad_header_len",
	"drop_ipv4_bad_total_len", "drop_ipv4_bad_checksum", "drop_ipv6_too_short", "drop_ipv6_bad_version",
	"drop_ipv6_bad_payload_len", "drop_icmp_invalid", "drop_nd_invalid", "drop_ttl_exceeded",
	"drop_no_route", "drop_mtu_exceeded", "drop_neigh_unresolved", "drop_neigh_queue_full",
	"drop_kni_rate_limit", "drop_kni_ring_full", "drop_kni_disabled", "drop_kni_control_rate_limit", "drop_kni_control_ring_full", "drop_forwarding_disabled",
	"drop_no_buffer", "drop_tx_full", "drop_martian",
	"drop_lb_no_conn", "drop_lb_not_syn", "drop_lb_no_dest", "drop_lb_no_laddr", "drop_lb_no_port",
	"drop_lb_table_full", "drop_lb_redirect_full", "drop_lb_expired_dest", "drop_lb_fragment", "drop_lb_bad_l4",
	"lb_toa_scrubbed", "drop_lb_bad_checksum", "drop_lb_bad_tcp_options",
	"drop_neigh_learn_full", "drop_neigh_learn_lost", "drop_neigh_unsolicited", "neigh_evicted",
	"drop_lb_no_service", "drop_lb_insert_failed",
	"sync_published", "sync_drop_ring_full", "sync_installed", "sync_updated", "sync_install_refused",
	"lb_mid_flow_conns",
	"lb_persist_full", "lb_one_packet", "lb_persist_reused",
	"drop_lb_dr_not_onlink",
	"drop_lb_denied", "drop_lb_not_allowed", "drop_lb_rate_limited", "drop_lb_source_limited",
	"lb_synproxy_cookies", "lb_synproxy_conns", "lb_synproxy_established", "lb_synproxy_held",
	"lb_synproxy_syn_retries", "lb_synproxy_server_reset", "lb_synproxy_ack_storm",
	"drop_lb_synproxy_bad_cookie", "drop_lb_synproxy_stale_cookie", "drop_lb_synproxy_waiting",
	"drop_lb_synproxy_not_fullnat",
	"lb_proxy_protocol_added", "lb_proxy_protocol_cut",
	"lb_uoa_added", "lb_uoa_failed", "drop_lb_adjusted_syn",
	"lb_evicted_embryonic", "lb_evicted_closing", "lb_pressure_new",
	"lb_tunnel_encap", "drop_lb_tunnel_too_big", "drop_lb_tunnel_need_frag", "drop_lb_tunnel_no_source",
	"lb_nat64_in", "lb_nat64_out", "drop_lb_nat64",
	"lb_masq_index_full", "lb_masq_transit",
	"lb_frag_first", "lb_frag_forwarded", "lb_frag_held", "lb_frag_released", "lb_frag_evicted",
	"drop_lb_frag_hold_full", "drop_lb_frag_timeout", "drop_lb_frag_unsupported", "drop_lb_frag_no_conn", "drop_lb_ext_header",
	"lb_xdp_offloaded", "lb_xdp_offload_failed", "lb_xdp_removed", "lb_xdp_held", "lb_xdp_hold_full",
	"lb_seek_out", "lb_seek_limited",
	"lb_reset_server", "lb_reset_client",
	"lb_xdp_hold_acked",
}

func (c Counter) String() string { return counterNames[c] }

// IsDrop reports whether c counts dropped packets (counters are appended,
// so drops are told by name).
func (c Counter) IsDrop() bool { return len(counterNames[c]) > 5 && counterNames[c][:5] == "drop_" }

// CounterNames returns the names of all counters in order.
func CounterNames() []string { return counterNames[:] }

// workerCounters are counted locally by the worker per packet and published
// to atomics once per loop iteration, so readers never race and the packet
// path does no atomic read-modify-write per packet.
type workerCounters struct {
	local [NumCounters]uint64
	dirty uint64 // bit i set: local[i] != 0 (counters >= 64 use bit 63)
	pub   [NumCounters]atomic.Uint64
}

func (c *workerCounters) inc(k Counter) { c.add(k, 1) }

func (c *workerCounters) add(k Counter, n uint64) {
	c.local[k] += n
	b := uint(k)
	if b > 63 {
		b = 63
	}
	c.dirty |= 1 << b
}

func (c *workerCounters) publish() {
	if c.dirty == 0 {
		return
	}
	for k := range c.local {
		if v := c.local[k]; v != 0 {
			c.pub[k].Add(v)
			c.local[k] = 0
		}
	}
	c.dirty = 0
}

// LoopHistBuckets is the number of power-of-two buckets of a worker's loop
// durations: bucket i holds loops of [2^(i-1), 2^i) ns, the last one all
// longer (2^30 ns is about a second).
const LoopHistBuckets = 32

// LoopStats describes a worker's polling loop.
type LoopStats struct {
	Loops, Bursts, IdleLoops, Sleeps, Packets uint64
	LongestLoopNs                             uint64
	// BusyNs is the time spent in iterations that had packets to handle or
	// to send (iterations that found nothing, and sleeps, are not in it):
	// its rate is the worker's load, 1 when saturated. A worker that polls
	// keeps its CPU busy whatever its load, so the CPU's utilisation cannot
	// tell this.
	BusyNs uint64
	// LoopHist counts loops by duration (LoopHistBuckets): unlike
	// LongestLoopNs, two reads tell the longest loop between them.
	LoopHist [LoopHistBuckets]uint64
}

type loopCounters struct {
	loops, bursts, idle, sleeps, packets, longest, busy atomic.Uint64
	hist                                                [LoopHistBuckets]atomic.Uint64
}
