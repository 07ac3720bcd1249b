/*
 * parse — pure parsers of the net backend (see parse.h): TX slot chains, checksum
 * setup, Toeplitz hashing and the ctrl-ring hash messages.
 * Counterpart: Linux drivers/net/xen-netback/{netback.c,hash.c}.
 */
#include "backends/net/parse.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#define ETH_P_IPV4 0x0800
#define ETH_P_IPV6_ 0x86DD

static int tx_fatal(struct net_tx_pkt *pkt, const char *why)
{
	pkt->why = why;
	return -EPROTO;
}

int net_tx_parse(const struct netif_tx_request *reqs, unsigned int avail,
		 struct net_tx_pkt *pkt)
{
	struct netif_tx_request first;
	struct netif_extra_info extras[NET_TX_MAX_EXTRAS];
	unsigned int idx = 1, frags = 0;
	bool more;

	memset(pkt, 0, sizeof(*pkt));
	memset(extras, 0, sizeof(extras));
	if (avail == 0)
		return tx_fatal(pkt, "no request");
	first = reqs[0];
	pkt->flags = first.flags;
	pkt->len = first.size;

	if (first.flags & NETTXF_extra_info) {
		struct netif_extra_info ex;

		do {
			if (idx >= avail)
				return tx_fatal(pkt, "missing extra info");
			/* The extra-info overlays the request slot (both are copies). */
			memcpy(&ex, &reqs[idx], sizeof(ex));
			idx++;
			pkt->nr_extras++;
			if (ex.type == XEN_NETIF_EXTRA_TYPE_NONE || ex.type >= XEN_NETIF_EXTRA_TYPE_MAX)
				return tx_fatal(pkt, "invalid extra type");
			extras[ex.type - 1] = ex;
		} while (ex.flags & XEN_NETIF_EXTRA_FLAG_MORE);
	}

	/* Multicast control rides on a dummy first slot; no data follows it. */
	if (extras[XEN_NETIF_EXTRA_TYPE_MCAST_ADD - 1].type ||
	    extras[XEN_NETIF_EXTRA_TYPE_MCAST_DEL - 1].type) {
		const struct netif_extra_info *e = extras[XEN_NETIF_EXTRA_TYPE_MCAST_ADD - 1].type
							   ? &extras[XEN_NETIF_EXTRA_TYPE_MCAST_ADD - 1]
							   : &extras[XEN_NETIF_EXTRA_TYPE_MCAST_DEL - 1];

		pkt->verdict = NET_TX_MCAST;
		pkt->mcast_add = e->type == XEN_NETIF_EXTRA_TYPE_MCAST_ADD;
		pkt->mcast_del = !pkt->mcast_add;
		memcpy(pkt->mcast_addr, e->u.mcast.addr, 6);
		pkt->data[0] = first;
		pkt->nr_data = 1;
		pkt->slots = idx;
		return 0;
	}

	/* xenvif_count_requests: walk the chain, subtracting each frag from the total. */
	pkt->data[0] = first;
	pkt->nr_data = 1;
	more = first.flags & NETTXF_more_data;
	while (more) {
		struct netif_tx_request txp;

		if (idx >= avail)
			return tx_fatal(pkt, "chain runs past the published requests");
		if (frags >= NET_TX_FATAL_SLOTS)
			return tx_fatal(pkt, "too many slots (fatal)");
		if (!pkt->why && frags >= NET_TX_MAX_SLOTS)
			pkt->why = "too many slots";
		txp = reqs[idx];
		if (!pkt->why && txp.size > pkt->data[0].size)
			pkt->why = "slot larger than the rest of the packet";
		pkt->data[0].size = (uint16_t)(pkt->data[0].size - txp.size);
		frags++;
		idx++;
		if ((uint32_t)txp.offset + txp.size > NET_PAGE_SIZE)
			return tx_fatal(pkt, "slot crosses its page");
		more = txp.flags & NETTXF_more_data;
		pkt->data[pkt->nr_data++] = txp;
	}
	pkt->slots = idx;
	if (pkt->why) {
		pkt->verdict = NET_TX_DROP;
		return 0;
	}
	if (pkt->data[0].size < NET_ETH_HLEN) {
		pkt->verdict = NET_TX_DROP;
		pkt->why = "first slot shorter than an Ethernet header";
		return 0;
	}
	if ((uint32_t)first.offset + pkt->data[0].size > NET_PAGE_SIZE)
		return tx_fatal(pkt, "first slot crosses its page");

	if (extras[XEN_NETIF_EXTRA_TYPE_GSO - 1].type) {
		const struct netif_extra_info *g = &extras[XEN_NETIF_EXTRA_TYPE_GSO - 1];

		if (g->u.gso.size == 0)
			return tx_fatal(pkt, "GSO size must not be zero");
		if (g->u.gso.type != XEN_NETIF_GSO_TYPE_TCPV4 &&
		    g->u.gso.type != XEN_NETIF_GSO_TYPE_TCPV6)
			return tx_fatal(pkt, "bad GSO type");
		pkt->has_gso = true;
		pkt->gso_size = g->u.gso.size;
		pkt->gso_type = g->u.gso.type;
	}
	pkt->verdict = NET_TX_SEND;
	return 0;
}

/* ---- headers and checksums ---- */

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

int net_l4_find(const uint8_t *frame, size_t len, struct net_l4 *out)
{
	size_t off = NET_ETH_HLEN;
	uint16_t proto;

	memset(out, 0, sizeof(*out));
	if (len < NET_ETH_HLEN)
		return -EPROTO;
	proto = rd16(frame + 12);
	out->l3_off = (uint16_t)off;
	if (proto == ETH_P_IPV4) {
		const uint8_t *ip = frame + off;
		size_t ihl;

		if (len < off + 20 || (ip[0] >> 4) != 4)
			return -EPROTO;
		ihl = (size_t)(ip[0] & 15) * 4;
		if (ihl < 20 || len < off + ihl)
			return -EPROTO;
		if (rd16(ip + 6) & 0x3fff) /* MF or a fragment offset */
			return -EPROTO;
		out->proto = ip[9];
		off += ihl;
	} else if (proto == ETH_P_IPV6_) {
		const uint8_t *ip = frame + off;
		uint8_t nh;

		if (len < off + 40 || (ip[0] >> 4) != 6)
			return -EPROTO;
		out->ipv6 = true;
		nh = ip[6];
		off += 40;
		/* Bounded: each header moves off forward by at least 8 within len. */
		while (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS) {
			if (len < off + 8)
				return -EPROTO;
			nh = frame[off];
			off += ((size_t)frame[off + 1] + 1) * 8;
		}
		out->proto = nh;
	} else {
		return -EPROTO;
	}
	if (off > 0xffff)
		return -EPROTO;
	out->l4_off = (uint16_t)off;
	if (out->proto == IPPROTO_TCP) {
		if (len < off + 20)
			return -EPROTO;
		out->l4_hlen = (uint16_t)((frame[off + 12] >> 4) * 4);
		if (out->l4_hlen < 20 || len < off + out->l4_hlen)
			return -EPROTO;
	} else if (out->proto == IPPROTO_UDP) {
		if (len < off + 8)
			return -EPROTO;
		out->l4_hlen = 8;
	} else {
		return -EPROTO;
	}
	return 0;
}

static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

int net_csum_setup(uint8_t *frame, size_t len, bool recalc, struct net_vnet_hdr *h)
{
	struct net_l4 l4;
	uint16_t csum_off;
	int rc = net_l4_find(frame, len, &l4);

	if (rc)
		return rc;
	csum_off = l4.proto == IPPROTO_TCP ? 16 : 6;
	h->flags |= 1; /* VIRTIO_NET_HDR_F_NEEDS_CSUM */
	h->csum_start = l4.l4_off;
	h->csum_offset = csum_off;
	if (recalc) {
		/* Pseudo-header sum (not complemented), as csum_tcpudp_magic's partial form. */
		uint32_t sum = 0, l4len = (uint32_t)(len - l4.l4_off);
		uint16_t v;

		if (l4.ipv6)
			sum = sum16(sum, frame + l4.l3_off + 8, 32);
		else
			sum = sum16(sum, frame + l4.l3_off + 12, 8);
		sum += l4.proto;
		sum += l4len >> 16;
		sum += l4len & 0xffff;
		v = fold(sum);
		frame[l4.l4_off + csum_off] = (uint8_t)(v >> 8);
		frame[l4.l4_off + csum_off + 1] = (uint8_t)v;
	}
	return 0;
}

int net_csum_complete(uint8_t *frame, size_t len, uint16_t csum_start, uint16_t csum_offset)
{
	uint16_t v;

	if ((size_t)csum_start + csum_offset + 2 > len)
		return -EPROTO;
	/* The field holds the pseudo-header sum: include it, then store the complement. */
	v = (uint16_t)~fold(sum16(0, frame + csum_start, len - csum_start));
	frame[csum_start + csum_offset] = (uint8_t)(v >> 8);
	frame[csum_start + csum_offset + 1] = (uint8_t)v;
	return 0;
}

/* ---- Toeplitz ---- */

uint32_t net_toeplitz(const uint8_t *key, unsigned int keylen, const uint8_t *buf,
		      unsigned int buflen)
{
	uint64_t window = 0, hash = 0;
	unsigned int k;

	/* A 64-bit window over the key: its top 32 bits line up with the current input bit. */
	for (k = 0; k < 8; k++)
		window = window << 8 | (k < keylen ? key[k] : 0);
	for (unsigned int i = 0; i < buflen; i++) {
		for (int bit = 7; bit >= 0; bit--) {
			if (buf[i] >> bit & 1)
				hash ^= window;
			window <<= 1;
		}
		window |= k < keylen ? key[k] : 0;
		k++;
	}
	return (uint32_t)(hash >> 32);
}

bool net_hash_frame(const struct net_hash *h, const uint8_t *frame, size_t len,
		    uint32_t *hash, uint8_t *htype)
{
	uint8_t buf[36];
	unsigned int n;
	struct net_l4 l4;
	bool tcp;

	if (h->alg != XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ || !h->flags)
		return false;
	if (net_l4_find(frame, len, &l4) != 0) {
		/* Non-TCP/UDP IP still hashes on addresses; find the L3 header alone. */
		if (len < NET_ETH_HLEN + 40)
			return false;
		l4.l3_off = NET_ETH_HLEN;
		l4.proto = 0;
		if (rd16(frame + 12) == ETH_P_IPV4 && (frame[14] >> 4) == 4)
			l4.ipv6 = false;
		else if (rd16(frame + 12) == ETH_P_IPV6_ && (frame[14] >> 4) == 6)
			l4.ipv6 = true;
		else
			return false;
	}
	tcp = l4.proto == IPPROTO_TCP;
	if (!l4.ipv6) {
		memcpy(buf, frame + l4.l3_off + 12, 8);
		n = 8;
		if (tcp && (h->flags & XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP)) {
			memcpy(buf + 8, frame + l4.l4_off, 4);
			n = 12;
			*htype = _XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP;
		} else if (h->flags & XEN_NETIF_CTRL_HASH_TYPE_IPV4) {
			*htype = _XEN_NETIF_CTRL_HASH_TYPE_IPV4;
		} else {
			return false;
		}
	} else {
		memcpy(buf, frame + l4.l3_off + 8, 32);
		n = 32;
		if (tcp && (h->flags & XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP)) {
			memcpy(buf + 32, frame + l4.l4_off, 4);
			n = 36;
			*htype = _XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP;
		} else if (h->flags & XEN_NETIF_CTRL_HASH_TYPE_IPV6) {
			*htype = _XEN_NETIF_CTRL_HASH_TYPE_IPV6;
		} else {
			return false;
		}
	}
	*hash = net_toeplitz(h->key, NET_HASH_KEY_MAX, buf, n);
	return true;
}

unsigned int net_hash_queue(const struct net_hash *h, uint32_t hash, unsigned int nr_queues)
{
	unsigned int q;

	if (h->mapping_size)
		q = h->mapping[hash % h->mapping_size];
	else
		q = hash % nr_queues;
	/* Entries were checked against nr_queues when set; a reconnect may shrink it. */
	return q < nr_queues ? q : 0;
}

void net_ctrl_handle(struct net_hash *h, unsigned int nr_queues,
		     const struct xen_netif_ctrl_request *req, struct xen_netif_ctrl_response *rsp,
		     net_ctrl_copy_cb *copy_in, void *opaque)
{
	uint32_t st = XEN_NETIF_CTRL_STATUS_SUCCESS, data = 0;

	switch (req->type) {
	case XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM:
		if (req->data[0] != XEN_NETIF_CTRL_HASH_ALGORITHM_NONE &&
		    req->data[0] != XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ)
			st = XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
		else
			h->alg = req->data[0];
		break;
	case XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS:
		if (h->alg == XEN_NETIF_CTRL_HASH_ALGORITHM_NONE)
			st = XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED;
		else
			data = NET_HASH_TYPES_SUPPORTED;
		break;
	case XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS:
		if (req->data[0] & ~(uint32_t)NET_HASH_TYPES_SUPPORTED)
			st = XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
		else if (h->alg == XEN_NETIF_CTRL_HASH_ALGORITHM_NONE)
			st = XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED;
		else
			h->flags = req->data[0];
		break;
	case XEN_NETIF_CTRL_TYPE_SET_HASH_KEY: {
		uint8_t key[NET_HASH_KEY_MAX];
		uint32_t len = req->data[1];

		if (len > NET_PAGE_SIZE) {
			st = XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
			break;
		}
		if (len > NET_HASH_KEY_MAX) {
			st = XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW;
			break;
		}
		memset(key, 0, sizeof(key));
		if (len && copy_in(opaque, req->data[0], 0, key, len) != 0) {
			st = XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
			break;
		}
		memcpy(h->key, key, sizeof(key));
		break;
	}
	case XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE:
		data = NET_HASH_MAPPING_MAX;
		break;
	case XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE:
		if (req->data[0] > NET_HASH_MAPPING_MAX) {
			st = XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
			break;
		}
		h->mapping_size = req->data[0];
		memset(h->mapping, 0, sizeof(h->mapping));
		break;
	case XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING: {
		uint32_t gref = req->data[0], len = req->data[1], off = req->data[2];
		uint32_t map[NET_HASH_MAPPING_MAX];

		/* off + len without wrapping, inside the table and inside one page. */
		if (len > h->mapping_size || off > h->mapping_size - len ||
		    (uint64_t)len * sizeof(uint32_t) > NET_PAGE_SIZE) {
			st = XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
			break;
		}
		if (len && copy_in(opaque, gref, 0, map, len * (uint32_t)sizeof(uint32_t)) != 0) {
			st = XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
			break;
		}
		for (uint32_t i = 0; i < len; i++)
			if (map[i] >= nr_queues) {
				st = XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
				break;
			}
		if (st == XEN_NETIF_CTRL_STATUS_SUCCESS)
			memcpy(&h->mapping[off], map, len * sizeof(uint32_t));
		break;
	}
	default:
		st = XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED;
		break;
	}
	memset(rsp, 0, sizeof(*rsp));
	rsp->id = req->id;
	rsp->type = req->type;
	rsp->status = st;
	rsp->data = data;
}
