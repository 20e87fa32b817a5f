/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * GVS's XDP program for AF_XDP ports with the FullNAT fast path.
 *
 * Every frame is parsed as far as needed to build the 5-tuple of an IPv4 or
 * IPv6 TCP/UDP packet (no IPv4 options, no IPv6 extension headers, not a
 * fragment, no VLAN tag) and looked up in gvs_fnat_conns, the connections
 * the userspace workers offloaded, one entry per direction. On a hit the
 * packet is rewritten as the worker would (addresses, ports, incremental
 * IPv4 header and TCP/UDP checksums, TTL or hop limit minus one, the next
 * hop's MACs) and redirected out of the entry's egress port through
 * gvs_egress (a DEVMAP_HASH keyed by ifindex). Everything else goes where
 * it went before the fast path existed: to the AF_XDP socket of the
 * receiving queue (gvs_xsks), or to the kernel when that queue has none.
 *
 * Packets the workers must see although their connection is offloaded:
 * TCP segments with SYN, FIN or RST (state changes), packets whose TTL or
 * hop limit would expire (ICMP time exceeded), packets longer than the
 * egress MTU (ICMP too big), and packets of an entry marked slow.
 *
 * An entry written armed (TCP) forwards nothing until the workers have sent
 * every segment of its direction that came before: the program compares
 * each segment's sequence number with the workers' mark in gvs_fnat_arm
 * (the sequence number just past the last segment they transmitted, once
 * the transmission completed) and sends it to the workers unless it starts
 * exactly at the mark and the workers have sent everything the program
 * passed them: the program keeps in hi the end of the newest segment it
 * passed to the workers since the entry was written, and the mark must
 * have reached it (the workers take their ring in order, so they have
 * then handled what came before, including what reached them before the
 * entry existed). A segment ahead of the mark may have others queued for
 * the workers before it; one behind it, or at a mark behind hi, is a
 * retransmission (of a segment lost on its way to them, say), which says
 * nothing about what is still queued. A segment at the mark once the mark
 * has reached hi continues what the workers sent with nothing queued in
 * between, provided the workers have also sent the segment the program
 * passed them last: a retransmission passed behind hi may still wait for
 * the workers while the next new segment arrives at the mark. The program
 * keeps that segment's end and acknowledgment number (last_end, last_ack)
 * and the workers' mark carries those of the segment they transmitted
 * last; the two must match. Then the segment at the mark disarms the
 * entry, and the fast path never overtakes a segment when a connection
 * moves to it.
 *
 * The checksum differences (csum_l3, csum_l4) are computed by the control
 * side when it writes an entry: the old addresses and ports are those of the
 * key, so the difference is the same for every packet of the entry.
 * gvs_verdicts counts per CPU why each frame went where it went.
 */
#include "defs.h"

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define PROTO_TCP 6
#define PROTO_UDP 17

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/* fnat_val.flags */
#define FNAT_F_SLOW 0x1 /* the entry's packets go to the workers */
#define FNAT_F_ARM 0x2  /* TCP: forward once the workers' mark reaches the segment */
#define FNAT_F_HI 0x4   /* hi is set: the program passed an armed segment to the workers */
#define FNAT_F_SEQ 0x8  /* TCP: seq_end and seq_ack are set: the program forwarded a segment */

/* A packet's direction of a connection: fields in network byte order. An
 * IPv4 address takes the first 4 bytes of its field, the rest is zero. */
struct fnat_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u8 sport[2];
	__u8 dport[2];
	__u8 proto;  /* 6 TCP, 17 UDP */
	__u8 family; /* 4 or 6: the IP version */
	__u8 pad[2];
};

/* What a packet with that key becomes, and the entry's counters. */
struct fnat_val {
	__u8 saddr[16];
	__u8 daddr[16];
	__u8 sport[2];
	__u8 dport[2];
	__u16 csum_l3; /* folded difference for the IPv4 header checksum: addresses and the TTL */
	__u16 csum_l4; /* folded difference for the TCP/UDP checksum: addresses and ports */
	__u16 mtu;     /* egress MTU: an IP packet longer than this goes to the workers */
	__u16 pad;
	__u32 ifindex; /* egress port, a key of gvs_egress */
	__u32 flags;   /* FNAT_F_* */
	__u8 smac[6];
	__u8 dmac[6];
	__u32 hi;       /* armed: just past the newest segment passed to the workers (the program's) */
	__u32 last_end; /* armed: just past the segment passed to the workers last */
	__u32 last_ack; /* armed: that segment's acknowledgment number */
	__u32 seq_end;  /* TCP: just past the newest segment forwarded here (FNAT_F_SEQ) */
	__u64 last_seen; /* CLOCK_MONOTONIC_COARSE ns of the last packet forwarded here */
	__u64 packets;   /* forwarded here (not counting those sent to the workers) */
	__u64 bytes;     /* their IP lengths */
	__u32 seq_ack;   /* TCP: the acknowledgment number of the segment noted last (FNAT_F_SEQ) */
	__u32 pad2;
};

/* The workers' mark of an armed entry: host byte order. */
struct fnat_arm {
	__u32 seq;      /* just past the newest segment of the direction they sent */
	__u32 last_end; /* just past the segment of the direction they sent last */
	__u32 last_ack; /* that segment's acknowledgment number */
	__u32 pad;
};

/* Where a frame went and why: indexes of gvs_verdicts. */
enum xdpfast_verdict {
	XDPFAST_FAST = 0,      /* rewritten and redirected */
	XDPFAST_MISS = 1,      /* IPv4/IPv6 TCP/UDP without an entry */
	XDPFAST_OTHER = 2,     /* not IP, VLAN-tagged, group address, other protocol */
	XDPFAST_TCP_CTL = 3,   /* SYN, FIN or RST */
	XDPFAST_FRAG = 4,      /* an IP fragment */
	XDPFAST_IP_OPTS = 5,   /* IPv4 options or IPv6 extension headers */
	XDPFAST_TTL = 6,       /* TTL or hop limit 1 or less */
	XDPFAST_MTU = 7,       /* longer than the egress MTU */
	XDPFAST_NO_EGRESS = 8, /* the egress port is not in gvs_egress */
	XDPFAST_SHORT = 9,     /* truncated or malformed headers */
	XDPFAST_SLOW = 10,     /* the entry is marked slow */
	XDPFAST_ARMED = 11,    /* armed, not at the workers' mark */
	XDPFAST_VERDICTS = 12,
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64); /* set to the number of queues at load */
	__type(key, __u32);
	__type(value, __u32);
} gvs_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* set from the configuration at load */
	__type(key, struct fnat_key);
	__type(value, struct fnat_val);
} gvs_fnat_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* set from the configuration at load */
	__type(key, struct fnat_key);
	__type(value, struct fnat_arm);
} gvs_fnat_arm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} gvs_egress SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPFAST_VERDICTS);
	__type(key, enum xdpfast_verdict);
	__type(value, __u64);
} gvs_verdicts SEC(".maps");

static __always_inline void count(__u32 v)
{
	__u64 *c = bpf_map_lookup_elem(&gvs_verdicts, &v);
	if (c)
		*c += 1;
}

/* to_xsk is the program as it was before the fast path: the receiving
 * queue's socket, or the kernel. */
static __always_inline int to_xsk(struct xdp_md *ctx, __u32 why)
{
	count(why);
	return bpf_redirect_map(&gvs_xsks, ctx->rx_queue_index, XDP_PASS);
}

/* csum_apply returns checksum ck (host order) updated by the folded
 * difference d (RFC 1624, eqn. 3). */
static __always_inline __u16 csum_apply(__u16 ck, __u16 d)
{
	__u32 s = (__u32)(__u16)~ck + d;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

static __always_inline __u16 get16(const __u8 *p)
{
	return (__u16)p[0] << 8 | p[1];
}

static __always_inline void put16(__u8 *p, __u16 v)
{
	p[0] = v >> 8;
	p[1] = v;
}

/* tcp_seg returns the sequence number of the TCP segment whose header is
 * at l4 (20 bytes checked readable) and sets *ack to its acknowledgment
 * number and *last to just past its data (l3len and iplen: the IP header's
 * and the packet's length). */
static __always_inline __u32 tcp_seg(const __u8 *l4, __u32 l3len, __u32 iplen, __u32 *ack, __u32 *last)
{
	__u32 seq = (__u32)get16(l4 + 4) << 16 | get16(l4 + 6);
	__u32 hdr = l3len + (__u32)(l4[12] >> 4) * 4;
	*ack = (__u32)get16(l4 + 8) << 16 | get16(l4 + 10);
	*last = seq + (iplen > hdr ? iplen - hdr : 0);
	return seq;
}

SEC("xdp")
int gvs_xdp_fast(struct xdp_md *ctx)
{
	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *end = (__u8 *)(long)ctx->data_end;
	__u8 *eth = data;

	if (eth + ETH_HLEN > end)
		return to_xsk(ctx, XDPFAST_SHORT);
	if (eth[0] & 1)
		return to_xsk(ctx, XDPFAST_OTHER);

	struct fnat_key key;
	__builtin_memset(&key, 0, sizeof(key));
	__u8 *l3 = eth + ETH_HLEN;
	__u8 *l4;
	__u32 iplen, l3len;
	__u8 ttl;
	__u16 type = get16(eth + 12);

	if (type == ETH_P_IP) {
		if (l3 + 20 > end)
			return to_xsk(ctx, XDPFAST_SHORT);
		if (l3[0] != 0x45) {
			if ((l3[0] >> 4) != 4 || (l3[0] & 0xf) < 5)
				return to_xsk(ctx, XDPFAST_SHORT);
			return to_xsk(ctx, XDPFAST_IP_OPTS);
		}
		if ((l3[6] & 0x3f) || l3[7]) /* MF or an offset */
			return to_xsk(ctx, XDPFAST_FRAG);
		key.proto = l3[9];
		if (key.proto != PROTO_TCP && key.proto != PROTO_UDP)
			return to_xsk(ctx, XDPFAST_OTHER);
		iplen = get16(l3 + 2);
		if (iplen < 20 || iplen > 0xffff || l3 + iplen > end)
			return to_xsk(ctx, XDPFAST_SHORT);
		__builtin_memcpy(key.saddr, l3 + 12, 4);
		__builtin_memcpy(key.daddr, l3 + 16, 4);
		key.family = 4;
		ttl = l3[8];
		l3len = 20;
		l4 = l3 + 20;
	} else if (type == ETH_P_IPV6) {
		if (l3 + 40 > end)
			return to_xsk(ctx, XDPFAST_SHORT);
		if ((l3[0] >> 4) != 6)
			return to_xsk(ctx, XDPFAST_SHORT);
		key.proto = l3[6];
		switch (key.proto) {
		case PROTO_TCP:
		case PROTO_UDP:
			break;
		case 44: /* fragment */
			return to_xsk(ctx, XDPFAST_FRAG);
		case 0:   /* hop-by-hop */
		case 43:  /* routing */
		case 60:  /* destination options */
		case 50:  /* ESP */
		case 51:  /* AH */
		case 135: /* mobility */
		case 139: /* HIP */
		case 140: /* shim6 */
			return to_xsk(ctx, XDPFAST_IP_OPTS);
		default:
			return to_xsk(ctx, XDPFAST_OTHER);
		}
		iplen = 40 + (__u32)get16(l3 + 4);
		if (iplen > 40 + 0xffff || l3 + iplen > end)
			return to_xsk(ctx, XDPFAST_SHORT);
		__builtin_memcpy(key.saddr, l3 + 8, 16);
		__builtin_memcpy(key.daddr, l3 + 24, 16);
		key.family = 6;
		ttl = l3[7];
		l3len = 40;
		l4 = l3 + 40;
	} else {
		return to_xsk(ctx, XDPFAST_OTHER);
	}

	__u8 tcpflags = 0;
	__u32 ckoff = 6; /* of the TCP or UDP checksum */
	if (key.proto == PROTO_TCP) {
		if (l4 + 20 > end || l4 + 20 > l3 + iplen)
			return to_xsk(ctx, XDPFAST_SHORT);
		tcpflags = l4[13];
		ckoff = 16;
	} else {
		if (l4 + 8 > end || l4 + 8 > l3 + iplen)
			return to_xsk(ctx, XDPFAST_SHORT);
	}
	__builtin_memcpy(key.sport, l4, 2);
	__builtin_memcpy(key.dport, l4 + 2, 2);

	struct fnat_val *v = bpf_map_lookup_elem(&gvs_fnat_conns, &key);
	if (!v)
		return to_xsk(ctx, XDPFAST_MISS);
	if (v->flags & FNAT_F_SLOW)
		return to_xsk(ctx, XDPFAST_SLOW);
	if (tcpflags & (TCP_SYN | TCP_FIN | TCP_RST))
		return to_xsk(ctx, XDPFAST_TCP_CTL);
	if (v->flags & FNAT_F_ARM) {
		if (key.proto != PROTO_TCP || l4 + 20 > end)
			return to_xsk(ctx, XDPFAST_ARMED);
		struct fnat_arm *a = bpf_map_lookup_elem(&gvs_fnat_arm, &key);
		__u32 ack, last;
		__u32 seq = tcp_seg(l4, l3len, iplen, &ack, &last);
		if (!a || !(v->flags & FNAT_F_HI) || seq != a->seq || (int)(v->hi - a->seq) > 0 ||
		    a->last_end != v->last_end || a->last_ack != v->last_ack) {
			/* plain stores: one CPU takes a flow's packets */
			if (!(v->flags & FNAT_F_HI) || (int)(last - v->hi) > 0)
				v->hi = last;
			v->last_end = last;
			v->last_ack = ack;
			v->flags |= FNAT_F_HI;
			return to_xsk(ctx, XDPFAST_ARMED);
		}
		v->flags &= ~FNAT_F_ARM; /* a plain store: every CPU that races here clears the same bit */
	}
	if (ttl <= 1)
		return to_xsk(ctx, XDPFAST_TTL);
	if (iplen > v->mtu)
		return to_xsk(ctx, XDPFAST_MTU);
	/* checked above for each protocol; again here, where the verifier
	 * may have merged the two paths */
	__u8 *ck = l4 + ckoff;
	if (ck + 2 > end)
		return to_xsk(ctx, XDPFAST_SHORT);
	/* sets the redirect target, or fails and leaves the packet as it is */
	if (bpf_redirect_map(&gvs_egress, v->ifindex, 0) != XDP_REDIRECT)
		return to_xsk(ctx, XDPFAST_NO_EGRESS);

	if (key.family == 4) {
		if (l3 + 20 > end) /* checked above; again for the verifier */
			return XDP_ABORTED;
		__builtin_memcpy(l3 + 12, v->saddr, 4);
		__builtin_memcpy(l3 + 16, v->daddr, 4);
		l3[8] = ttl - 1;
		put16(l3 + 10, csum_apply(get16(l3 + 10), v->csum_l3));
	} else {
		if (l3 + 40 > end) /* checked above; again for the verifier */
			return XDP_ABORTED;
		__builtin_memcpy(l3 + 8, v->saddr, 16);
		__builtin_memcpy(l3 + 24, v->daddr, 16);
		l3[7] = ttl - 1;
	}
	__builtin_memcpy(l4, v->sport, 2);
	__builtin_memcpy(l4 + 2, v->dport, 2);
	__u16 sum = get16(ck);
	if (key.proto == PROTO_TCP) {
		put16(ck, csum_apply(sum, v->csum_l4));
	} else if (sum) { /* UDP checksum zero: none, and it stays so */
		sum = csum_apply(sum, v->csum_l4);
		put16(ck, sum ? sum : 0xffff); /* a computed zero is sent as all ones */
	}
	__builtin_memcpy(eth, v->dmac, 6);
	__builtin_memcpy(eth + 6, v->smac, 6);

	if (key.proto == PROTO_TCP && (tcpflags & TCP_ACK)) {
		/* The workers reset both ends of a connection they end (expiry),
		 * each at the sequence number it expects next: the end of the real
		 * server's data and its acknowledgment number, which they can no
		 * longer see once its direction goes fast. As the workers note
		 * them: a segment that acknowledges less than the one noted
		 * (reordered, an old retransmission) changes nothing, one that
		 * ends before it keeps the noted end. Plain stores: one CPU takes a
		 * flow's packets, and a torn pair fails safe (a RST outside the
		 * receiver's window is ignored). Noted for both directions: the
		 * program does not know which one is the server's. Only segments
		 * with ACK: without it the acknowledgment field means nothing. */
		if (l4 + 20 > end) /* checked above; again for the verifier */
			return XDP_ABORTED;
		__u32 ack, last;
		tcp_seg(l4, l3len, iplen, &ack, &last);
		if (!(v->flags & FNAT_F_SEQ)) {
			v->seq_end = last;
			v->seq_ack = ack;
			v->flags |= FNAT_F_SEQ;
		} else if ((int)(ack - v->seq_ack) >= 0) {
			if ((int)(last - v->seq_end) > 0)
				v->seq_end = last;
			v->seq_ack = ack;
		}
	}

	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, iplen);
	v->last_seen = bpf_ktime_get_coarse_ns(); /* a tick's resolution; the fine clock costs ~35 ns here */
	count(XDPFAST_FAST);
	return XDP_REDIRECT;
}

char _license[] SEC("license") = "Dual MIT/GPL";
