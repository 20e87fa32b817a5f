// GVS's C side of the DPDK port driver: small static wrappers so that one
// cgo call moves a whole burst. Included by dpdk_cgo.go only (build tag
// dpdk). Every function here is either called once at set-up or once per
// burst; none is called per packet.
#ifndef GVS_DPDK_H
#define GVS_DPDK_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_memzone.h>

#define GVS_MAX_BURST 256
#define GVS_MAX_LEND 512
#define GVS_FOREIGN 0xffffffffu /* rxd.idx: an mbuf of another pool, copy it */
#define GVS_DROPPED 0xfffffffeu /* rxd.idx: a chained mbuf, already freed */

/* One received packet as Go reads it. */
struct gvs_rxd {
	void *data;     /* packet start (foreign mbufs only) */
	uint32_t idx;   /* frame index in the queue's memzone, or GVS_FOREIGN/GVS_DROPPED */
	uint16_t off;   /* packet offset inside the frame */
	uint16_t len;
};

/* One queue: its mempool of pinned external buffers over one memzone
 * (frame i is mz->addr + i*fs and belongs to mbuf frames[i] for life), and
 * the fixed arrays the bursts go through. Go owns which frames are lent to
 * the mempool; C never allocates after gvs_q_new. */
struct gvs_q {
	uint16_t port, qid;
	struct rte_mempool *mp;
	const struct rte_memzone *mz;
	uintptr_t base;
	void *mem; /* == base, for Go */
	uint32_t fs, nframes;
	struct rte_mbuf **frames;
	uint32_t nforeign;
	uint64_t chained;
	struct rte_mbuf *foreign[GVS_MAX_BURST];
	struct rte_mbuf *rx[GVS_MAX_BURST];
	struct gvs_rxd rxd[GVS_MAX_BURST];
	struct rte_mbuf *tx[GVS_MAX_BURST];
	uint32_t txidx[GVS_MAX_BURST];
	uint16_t txoff[GVS_MAX_BURST];
	uint16_t txlen[GVS_MAX_BURST];
	uint32_t lend[GVS_MAX_LEND]; /* frames to lend (gvs_rx) or reclaimed (gvs_reclaim) */
	void *objs[GVS_MAX_LEND];
};

/* EAL initialisation that leaves the calling thread's CPU affinity as it
 * was: rte_eal_init pins its caller to the main lcore, and the caller is an
 * arbitrary Go runtime thread. Returns 0 or -errno. */
static int gvs_eal_init(int argc, char **argv)
{
	cpu_set_t saved;
	int have = sched_getaffinity(0, sizeof(saved), &saved) == 0;
	int r = rte_eal_init(argc, argv);
	int e = rte_errno;
	if (have)
		sched_setaffinity(0, sizeof(saved), &saved);
	if (r < 0)
		return e > 0 ? -e : -EINVAL;
	return 0;
}

/* Registers the calling thread with the EAL the first time it moves a
 * burst, so mempool per-lcore caches work for GVS's worker threads. A
 * thread that cannot get an lcore id keeps LCORE_ID_ANY (no cache): slower,
 * still correct. */
static inline void gvs_register(void)
{
	static __thread int tried;
	if (unlikely(!tried)) {
		tried = 1;
		if (rte_lcore_id() == LCORE_ID_ANY)
			rte_thread_register();
	}
}

/* gvs_q_new creates queue qid's memory: a memzone of n frames of fs bytes
 * and a pinned-external-buffer mempool over it, then takes every mbuf out
 * of the mempool and indexes it by its frame (Go lends frames back). */
static struct gvs_q *gvs_q_new(uint16_t port, uint16_t qid, const char *name, uint32_t n, uint32_t fs,
			       int socket, char *err, size_t errlen)
{
	char zname[RTE_MEMZONE_NAMESIZE];
	struct gvs_q *q = calloc(1, sizeof(*q));
	if (q == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	q->port = port;
	q->qid = qid;
	q->fs = fs;
	q->nframes = n;
	q->frames = calloc(n, sizeof(*q->frames));
	if (q->frames == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	snprintf(zname, sizeof(zname), "%s_z", name);
	q->mz = rte_memzone_reserve_aligned(zname, (size_t)n * fs, socket, RTE_MEMZONE_IOVA_CONTIG, 4096);
	if (q->mz == NULL && rte_eal_iova_mode() == RTE_IOVA_VA)
		q->mz = rte_memzone_reserve_aligned(zname, (size_t)n * fs, socket, 0, 4096);
	if (q->mz == NULL) {
		snprintf(err, errlen, "reserve %zu bytes of DPDK memory for %u frames: %s (raise dpdk.memory_mb or the hugepages, or lower frames)",
			 (size_t)n * fs, n, rte_strerror(rte_errno));
		goto fail;
	}
	q->base = (uintptr_t)q->mz->addr;
	q->mem = q->mz->addr;
	struct rte_pktmbuf_extmem ext = {
		.buf_ptr = q->mz->addr,
		.buf_iova = rte_eal_iova_mode() == RTE_IOVA_VA ? (rte_iova_t)q->base : q->mz->iova,
		.buf_len = (size_t)n * fs,
		.elt_size = (uint16_t)fs,
	};
	unsigned cache = n / 8 < 256 ? n / 8 : 256;
	q->mp = rte_pktmbuf_pool_create_extbuf(name, n, cache, 0, (uint16_t)fs, socket, &ext, 1);
	if (q->mp == NULL) {
		snprintf(err, errlen, "create mempool %s of %u mbufs: %s", name, n, rte_strerror(rte_errno));
		goto fail;
	}
	for (uint32_t got = 0; got < n;) {
		uint32_t k = n - got < GVS_MAX_LEND ? n - got : GVS_MAX_LEND;
		if (rte_mempool_get_bulk(q->mp, q->objs, k) != 0) {
			snprintf(err, errlen, "mempool %s holds fewer than %u mbufs", name, n);
			goto fail;
		}
		for (uint32_t i = 0; i < k; i++) {
			struct rte_mbuf *m = q->objs[i];
			uintptr_t idx = ((uintptr_t)m->buf_addr - q->base) / fs;
			if ((uintptr_t)m->buf_addr < q->base || idx >= n || q->frames[idx] != NULL) {
				snprintf(err, errlen, "mempool %s: mbuf outside its memzone", name);
				goto fail;
			}
			q->frames[idx] = m;
		}
		got += k;
	}
	return q;
fail:
	if (q->mp != NULL)
		rte_mempool_free(q->mp);
	if (q->mz != NULL)
		rte_memzone_free(q->mz);
	free(q->frames);
	free(q);
	return NULL;
}

/* gvs_q_free releases a queue's memory; its port must be stopped and every
 * mbuf back (rte_mempool_free does not check). */
static void gvs_q_free(struct gvs_q *q)
{
	if (q->nforeign)
		rte_pktmbuf_free_bulk(q->foreign, q->nforeign);
	rte_mempool_free(q->mp);
	rte_memzone_free(q->mz);
	free(q->frames);
	free(q);
}

/* gvs_lend puts the frames q->lend[0:n] into the mempool: through the
 * calling lcore's cache on the packet path, straight into the pool's ring
 * with nocache (at open, from a thread that is not the queue's worker, whose
 * cache would keep the frames from everyone else). */
static inline void gvs_lend(struct gvs_q *q, uint32_t n, int nocache)
{
	for (uint32_t i = 0; i < n; i++)
		q->objs[i] = q->frames[q->lend[i]];
	if (nocache)
		rte_mempool_generic_put(q->mp, q->objs, n, NULL);
	else
		rte_mempool_put_bulk(q->mp, q->objs, n);
}

/* gvs_noop is the floor of a cgo crossing, for the benchmarks. */
static void gvs_noop(void) {}

/* gvs_rx lends q->lend[0:nlend] to the mempool, frees the foreign mbufs of
 * the previous burst (Go has copied them), receives up to n packets and
 * describes them in q->rxd. One cgo call per burst. */
static uint16_t gvs_rx(struct gvs_q *q, uint16_t n, uint32_t nlend)
{
	gvs_register();
	if (q->nforeign) {
		rte_pktmbuf_free_bulk(q->foreign, q->nforeign);
		q->nforeign = 0;
	}
	if (nlend)
		gvs_lend(q, nlend, 0);
	uint16_t got = rte_eth_rx_burst(q->port, q->qid, q->rx, n);
	for (uint16_t i = 0; i < got; i++) {
		struct rte_mbuf *m = q->rx[i];
		struct gvs_rxd *d = &q->rxd[i];
		d->len = m->data_len;
		if (unlikely(m->nb_segs != 1)) {
			rte_pktmbuf_free(m);
			q->chained++;
			d->idx = GVS_DROPPED;
		} else if (likely(m->pool == q->mp)) {
			d->idx = (uint32_t)(((uintptr_t)m->buf_addr - q->base) / q->fs);
			d->off = m->data_off;
		} else {
			q->foreign[q->nforeign++] = m;
			d->idx = GVS_FOREIGN;
			d->data = rte_pktmbuf_mtod(m, void *);
		}
	}
	return got;
}

/* gvs_tx transmits the frames q->txidx[0:n], each holding a packet at
 * q->txoff[i] of q->txlen[i] bytes. Returns how many the device took. */
static uint16_t gvs_tx(struct gvs_q *q, uint16_t n)
{
	gvs_register();
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = q->frames[q->txidx[i]];
		m->data_off = q->txoff[i];
		m->data_len = q->txlen[i];
		m->pkt_len = q->txlen[i];
		m->nb_segs = 1;
		m->next = NULL;
		m->ol_flags &= RTE_MBUF_F_EXTERNAL;
		m->packet_type = 0;
		m->port = q->port;
		q->tx[i] = m;
	}
	return rte_eth_tx_burst(q->port, q->qid, q->tx, n);
}

/* gvs_reclaim takes up to max mbufs back from the mempool and writes their
 * frame indexes to q->lend. Returns how many. */
static uint32_t gvs_reclaim(struct gvs_q *q, uint32_t max)
{
	uint32_t got = 0, k = 32;
	if (max > GVS_MAX_LEND)
		max = GVS_MAX_LEND;
	while (got < max && k > 0) {
		if (k > max - got)
			k = max - got;
		if (rte_mempool_get_bulk(q->mp, q->objs, k) != 0) {
			k /= 2;
			continue;
		}
		for (uint32_t i = 0; i < k; i++) {
			struct rte_mbuf *m = q->objs[i];
			q->lend[got++] = (uint32_t)(((uintptr_t)m->buf_addr - q->base) / q->fs);
		}
	}
	return got;
}

/* gvs_reta_spread sets the redirection table to entry i -> queue i % nq,
 * what GVS's RSS-aware port choice assumes, since not every PMD fills it in
 * at configure (net_null leaves it all zeroes). A PMD that cannot update
 * it keeps its own table, which gvs_rss reads back either way. */
static void gvs_reta_spread(uint16_t port, uint16_t nq)
{
	struct rte_eth_dev_info info;
	if (rte_eth_dev_info_get(port, &info) != 0 || info.reta_size == 0 || info.reta_size > 512)
		return;
	uint16_t groups = (info.reta_size + RTE_ETH_RETA_GROUP_SIZE - 1) / RTE_ETH_RETA_GROUP_SIZE;
	struct rte_eth_rss_reta_entry64 conf[groups];
	memset(conf, 0, sizeof(conf));
	for (uint16_t i = 0; i < info.reta_size; i++) {
		conf[i / RTE_ETH_RETA_GROUP_SIZE].mask |= 1ULL << (i % RTE_ETH_RETA_GROUP_SIZE);
		conf[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE] = i % nq;
	}
	(void)rte_eth_dev_rss_reta_update(port, conf, info.reta_size);
}

/* gvs_port_setup configures port with nq rx/tx queue pairs over the queues'
 * mempools, RSS over IP/TCP/UDP when nq > 1, and starts it. */
static int gvs_port_setup(uint16_t port, uint16_t nq, uint16_t nrx, uint16_t ntx, struct gvs_q **qs,
			  uint64_t *rss_hf_out, char *err, size_t errlen)
{
	struct rte_eth_dev_info info;
	struct rte_eth_conf conf;
	int r = rte_eth_dev_info_get(port, &info);
	if (r != 0) {
		snprintf(err, errlen, "device info: %s", rte_strerror(-r));
		return r;
	}
	if (nq > info.max_rx_queues || nq > info.max_tx_queues) {
		snprintf(err, errlen, "%u queues requested, the device (%s) has %u rx and %u tx queues: lower workers.count",
			 nq, info.driver_name, info.max_rx_queues, info.max_tx_queues);
		return -EINVAL;
	}
	memset(&conf, 0, sizeof(conf));
	*rss_hf_out = 0;
	if (nq > 1) {
		uint64_t hf = info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
		if (hf != 0) {
			conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
			conf.rx_adv_conf.rss_conf.rss_hf = hf;
			*rss_hf_out = hf;
		}
	}
	r = rte_eth_dev_configure(port, nq, nq, &conf);
	if (r != 0) {
		snprintf(err, errlen, "configure %u queues: %s", nq, rte_strerror(-r));
		return r;
	}
	r = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nrx, &ntx);
	if (r != 0) {
		snprintf(err, errlen, "ring sizes: %s", rte_strerror(-r));
		return r;
	}
	int socket = rte_eth_dev_socket_id(port);
	for (uint16_t i = 0; i < nq; i++) {
		r = rte_eth_rx_queue_setup(port, i, nrx, socket, NULL, qs[i]->mp);
		if (r != 0) {
			snprintf(err, errlen, "rx queue %u (%u descriptors): %s", i, nrx, rte_strerror(-r));
			return r;
		}
		r = rte_eth_tx_queue_setup(port, i, ntx, socket, NULL);
		if (r != 0) {
			snprintf(err, errlen, "tx queue %u (%u descriptors): %s", i, ntx, rte_strerror(-r));
			return r;
		}
	}
	r = rte_eth_dev_start(port);
	if (r != 0) {
		snprintf(err, errlen, "start: %s", rte_strerror(-r));
		return r;
	}
	if (*rss_hf_out != 0)
		gvs_reta_spread(port, nq);
	return 0;
}

/* gvs_link reads the link state without waiting. */
static int gvs_link(uint16_t port, int *up, uint32_t *speed)
{
	struct rte_eth_link l;
	int r = rte_eth_link_get_nowait(port, &l);
	if (r != 0)
		return r;
	*up = l.link_status == RTE_ETH_LINK_UP;
	*speed = l.link_speed;
	return 0;
}

/* gvs_rss reads the port's RSS key (into key, keylen bytes at most) and
 * redirection table (into reta, up to retamax entries). Returns the table
 * size, or -errno. */
static int gvs_rss(uint16_t port, uint8_t *key, uint8_t *keylen, uint16_t *reta, uint16_t retamax)
{
	struct rte_eth_dev_info info;
	struct rte_eth_rss_conf rc;
	int r = rte_eth_dev_info_get(port, &info);
	if (r != 0)
		return r;
	if (info.reta_size == 0 || info.reta_size > retamax || info.hash_key_size > *keylen)
		return -ENOTSUP;
	memset(&rc, 0, sizeof(rc));
	rc.rss_key = key;
	rc.rss_key_len = *keylen;
	r = rte_eth_dev_rss_hash_conf_get(port, &rc);
	if (r != 0)
		return r;
	*keylen = rc.rss_key_len;
	uint16_t groups = (info.reta_size + RTE_ETH_RETA_GROUP_SIZE - 1) / RTE_ETH_RETA_GROUP_SIZE;
	struct rte_eth_rss_reta_entry64 conf[groups];
	memset(conf, 0, sizeof(conf));
	for (uint16_t g = 0; g < groups; g++)
		conf[g].mask = ~0ULL;
	r = rte_eth_dev_rss_reta_query(port, conf, info.reta_size);
	if (r != 0)
		return r;
	for (uint16_t i = 0; i < info.reta_size; i++)
		reta[i] = conf[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE];
	return info.reta_size;
}

/* gvs_flow steers packets to addr (4 or 16 bytes, network order) with
 * protocol proto (6 or 17) whose destination port matches pspec under pmask
 * to rx queue queue. With validate set it only asks the PMD. Returns the
 * rule (create) or (void*)1 (validate), NULL with err filled on failure. */
static struct rte_flow *gvs_flow(uint16_t port, int is6, const uint8_t *addr, uint8_t proto, uint16_t pspec,
				 uint16_t pmask, uint16_t queue, int validate, char *err, size_t errlen)
{
	struct rte_flow_attr attr = {.ingress = 1};
	struct rte_flow_item_ipv4 ip4 = {0}, ip4m = {0};
	struct rte_flow_item_ipv6 ip6 = {0}, ip6m = {0};
	struct rte_flow_item_tcp tcp = {0}, tcpm = {0};
	struct rte_flow_item_udp udp = {0}, udpm = {0};
	struct rte_flow_item pat[4];
	struct rte_flow_action_queue qa = {.index = queue};
	struct rte_flow_action act[2];
	struct rte_flow_error fe;
	memset(pat, 0, sizeof(pat));
	memset(act, 0, sizeof(act));
	memset(&fe, 0, sizeof(fe));
	pat[0].type = RTE_FLOW_ITEM_TYPE_ETH;
	if (is6) {
		memcpy(&ip6.hdr.dst_addr, addr, 16);
		memset(&ip6m.hdr.dst_addr, 0xff, 16);
		pat[1].type = RTE_FLOW_ITEM_TYPE_IPV6;
		pat[1].spec = &ip6;
		pat[1].mask = &ip6m;
	} else {
		memcpy(&ip4.hdr.dst_addr, addr, 4);
		ip4m.hdr.dst_addr = 0xffffffff;
		pat[1].type = RTE_FLOW_ITEM_TYPE_IPV4;
		pat[1].spec = &ip4;
		pat[1].mask = &ip4m;
	}
	if (proto == 6) {
		tcp.hdr.dst_port = rte_cpu_to_be_16(pspec);
		tcpm.hdr.dst_port = rte_cpu_to_be_16(pmask);
		pat[2].type = RTE_FLOW_ITEM_TYPE_TCP;
		pat[2].spec = &tcp;
		pat[2].mask = &tcpm;
	} else {
		udp.hdr.dst_port = rte_cpu_to_be_16(pspec);
		udpm.hdr.dst_port = rte_cpu_to_be_16(pmask);
		pat[2].type = RTE_FLOW_ITEM_TYPE_UDP;
		pat[2].spec = &udp;
		pat[2].mask = &udpm;
	}
	pat[3].type = RTE_FLOW_ITEM_TYPE_END;
	act[0].type = RTE_FLOW_ACTION_TYPE_QUEUE;
	act[0].conf = &qa;
	act[1].type = RTE_FLOW_ACTION_TYPE_END;
	struct rte_flow *f = NULL;
	int r;
	if (validate) {
		r = rte_flow_validate(port, &attr, pat, act, &fe);
		if (r == 0)
			return (struct rte_flow *)1;
	} else {
		f = rte_flow_create(port, &attr, pat, act, &fe);
		if (f != NULL)
			return f;
		r = -rte_errno;
	}
	const char *why = rte_strerror(r < 0 ? -r : r);
	if (fe.message == NULL || strcmp(fe.message, why) == 0)
		snprintf(err, errlen, "%s", why);
	else
		snprintf(err, errlen, "%s (%s)", fe.message, why);
	return NULL;
}

#endif
