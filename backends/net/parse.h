/*
 * parse — the pure, I/O-free parts of the net backend: the TX slot-chain parser
 * (copied-out requests in, a validated packet description or a verdict out), checksum
 * setup from the IP/TCP/UDP headers, and the Toeplitz flow hash with its ctrl-ring
 * state. Unit-tested and fuzzed directly (tests/unit/test_net_parse.c,
 * tests/fuzz/fuzz_net_tx.c). Counterpart: Linux xen-netback netback.c
 * (xenvif_count_requests, xenvif_get_extras, xenvif_set_skb_gso, checksum_setup)
 * and hash.c.
 */
#ifndef SPLITPV_NET_PARSE_H
#define SPLITPV_NET_PARSE_H

#include "ring/abi.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_PAGE_SIZE 4096u
#define NET_ETH_HLEN 14u
/* XEN_NETBK_LEGACY_SLOTS_MAX: chains longer than this (data slots) are dropped with errors. */
#define NET_TX_MAX_SLOTS XEN_NETIF_NR_SLOTS_MIN /* frags after the first slot */
/* Linux's fatal_skb_slots default (frags): a chain this long is a malicious frontend. */
#define NET_TX_FATAL_SLOTS 20u
/* Extra-info types we know (XEN_NETIF_EXTRA_TYPE_MAX - 1). */
#define NET_TX_MAX_EXTRAS (XEN_NETIF_EXTRA_TYPE_MAX - 1)

/* What to do with a parsed chain. */
enum net_tx_verdict {
	NET_TX_SEND,   /* a packet: copy its data and hand it to the host */
	NET_TX_DROP,   /* answer every slot with NETIF_RSP_ERROR, send nothing */
	NET_TX_MCAST,  /* a multicast add/del with no data: answer OKAY/ERROR */
};

struct net_tx_pkt {
	enum net_tx_verdict verdict;
	unsigned int slots;       /* ring slots the chain used (first + extras + frags) */
	unsigned int nr_extras;   /* extra-info slots following the first */
	unsigned int nr_data;     /* data slots (first + frags), <= NET_TX_FATAL_SLOTS + 1 */
	/* Data slots in ring order; data[0].size is the first slot's own length (the
	 * packet size minus the other slots), as netback rewrites it. */
	struct netif_tx_request data[NET_TX_FATAL_SLOTS + 1];
	uint32_t len;             /* bytes of packet data (the first slot's size field) */
	uint16_t flags;           /* the first slot's NETTXF_* */
	bool has_gso;
	uint16_t gso_size;
	uint8_t gso_type;         /* XEN_NETIF_GSO_TYPE_TCPV4/6 */
	bool mcast_add, mcast_del;
	uint8_t mcast_addr[6];
	const char *why;          /* for DROP and fatal: a short reason for the log */
};

/*
 * Parse one TX chain starting at reqs[0], with avail requests copied out (reqs[i] is
 * ring slot req_cons + i; the parser reads the extra-info overlay of slots after a
 * NETTXF_extra_info first slot). Follows Linux netback:
 *  - extra info missing, of type 0 or >= MAX, a GSO extra with size 0 or an unknown
 *    GSO type, a chain past avail or reaching NET_TX_FATAL_SLOTS, a slot crossing its
 *    page: -EPROTO (the frontend is broken; disconnect it). pkt->why says which.
 *  - more than NET_TX_MAX_SLOTS data slots, a slot larger than what remains of the
 *    packet, a first slot shorter than an Ethernet header: NET_TX_DROP.
 * Returns 0 with *pkt filled (pkt->slots consumed), or -EPROTO. Pure; no allocation.
 */
int net_tx_parse(const struct netif_tx_request *reqs, unsigned int avail,
		 struct net_tx_pkt *pkt);

/* virtio_net_hdr as the tap device reads and writes it (struct virtio_net_hdr). */
struct net_vnet_hdr {
	uint8_t flags;       /* VIRTIO_NET_HDR_F_NEEDS_CSUM 1, _DATA_VALID 2 */
	uint8_t gso_type;    /* VIRTIO_NET_HDR_GSO_NONE 0, TCPV4 1, UDP 3, TCPV6 4, ECN 0x80 */
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
};
_Static_assert(sizeof(struct net_vnet_hdr) == 10, "virtio_net_hdr is 10 bytes");

/* Where the L4 header of an Ethernet frame is. */
struct net_l4 {
	uint16_t l3_off, l4_off;    /* offsets in the frame */
	uint8_t proto;              /* IPPROTO_TCP / IPPROTO_UDP / other */
	bool ipv6;
	uint16_t l4_hlen;           /* TCP header length (data offset) or 8 for UDP */
};

/*
 * Find the IPv4/IPv6 and TCP/UDP headers of frame (len bytes), bounds-checked.
 * IPv6 extension headers (hop-by-hop, routing, destination) are skipped. -EPROTO for
 * anything else (not IP, fragments, truncated), 0 otherwise.
 */
int net_l4_find(const uint8_t *frame, size_t len, struct net_l4 *out);

/*
 * checksum_setup: fill csum_start/csum_offset of h (NEEDS_CSUM) for a TCP or UDP frame
 * whose checksum is left blank. If recalc (a GSO frame that didn't say csum_blank),
 * also write the pseudo-header checksum into the frame as Linux does. -EPROTO if the
 * frame isn't TCP/UDP over IPv4/IPv6 or is truncated.
 */
int net_csum_setup(uint8_t *frame, size_t len, bool recalc, struct net_vnet_hdr *h);

/*
 * Complete a partial checksum in software: fold the sum from csum_start to the end
 * into csum_start + csum_offset. -EPROTO if the offsets don't fit in len.
 */
int net_csum_complete(uint8_t *frame, size_t len, uint16_t csum_start, uint16_t csum_offset);

/* ---- Toeplitz hash and its ctrl-ring state (Linux hash.c) ---- */
#define NET_HASH_KEY_MAX 40u
#define NET_HASH_MAPPING_MAX 128u
#define NET_HASH_TYPES_SUPPORTED                                                        \
	(XEN_NETIF_CTRL_HASH_TYPE_IPV4 | XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP |            \
	 XEN_NETIF_CTRL_HASH_TYPE_IPV6 | XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP)

struct net_hash {
	uint32_t alg;                       /* XEN_NETIF_CTRL_HASH_ALGORITHM_* */
	uint32_t flags;                     /* XEN_NETIF_CTRL_HASH_TYPE_* enabled */
	uint8_t key[NET_HASH_KEY_MAX];
	uint32_t mapping_size;              /* 0: queue = hash % nr_queues */
	uint32_t mapping[NET_HASH_MAPPING_MAX];
};

uint32_t net_toeplitz(const uint8_t *key, unsigned int keylen, const uint8_t *buf,
		      unsigned int buflen);

/*
 * Hash a frame per h->flags (the "maximal" type: 4-tuple for TCP when the TCP type is
 * on, else the address pair). Returns true and *hash / *htype (_XEN_NETIF_CTRL_HASH_TYPE_*)
 * if a hash applies, false otherwise.
 */
bool net_hash_frame(const struct net_hash *h, const uint8_t *frame, size_t len,
		    uint32_t *hash, uint8_t *htype);

/* The queue a hash selects (mapping or modulo). nr_queues >= 1. */
unsigned int net_hash_queue(const struct net_hash *h, uint32_t hash, unsigned int nr_queues);

/*
 * Apply one ctrl-ring request to h. Requests that carry a grant (SET_HASH_KEY,
 * SET_HASH_MAPPING) get the granted bytes through copy_in(opaque, gref, offset, buf,
 * len) -> 0 or -errno (a failed copy answers INVALID_PARAMETER). Fills *rsp completely
 * (id, type, status, data). Pure apart from copy_in.
 */
typedef int net_ctrl_copy_cb(void *opaque, uint32_t gref, uint32_t offset, void *buf,
			     uint32_t len);
void net_ctrl_handle(struct net_hash *h, unsigned int nr_queues,
		     const struct xen_netif_ctrl_request *req, struct xen_netif_ctrl_response *rsp,
		     net_ctrl_copy_cb *copy_in, void *opaque);

#endif
