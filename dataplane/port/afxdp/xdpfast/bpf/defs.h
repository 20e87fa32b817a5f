/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * The few kernel UAPI definitions GVS's XDP fast path needs, spelled out
 * here so that building the program needs clang and nothing else: no kernel
 * or libbpf headers, no multiarch include path, the same object from the same
 * compiler on any build host. The numbers are kernel ABI (include/uapi/linux/
 * bpf.h) and never change.
 */
#ifndef GVS_BPF_DEFS_H
#define GVS_BPF_DEFS_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

/* struct xdp_md: the context of an XDP program. */
struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

/* enum xdp_action */
#define XDP_ABORTED 0
#define XDP_DROP 1
#define XDP_PASS 2
#define XDP_TX 3
#define XDP_REDIRECT 4

/* enum bpf_map_type */
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_LRU_HASH 9
#define BPF_MAP_TYPE_XSKMAP 17
#define BPF_MAP_TYPE_DEVMAP_HASH 25

/* BTF-defined maps, as libbpf and cilium/ebpf read them. */
#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

/* Helpers, by their stable numbers (enum bpf_func_id). */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;
static __u64 (*bpf_ktime_get_coarse_ns)(void) = (void *)160;

#define __always_inline inline __attribute__((always_inline))

#endif
