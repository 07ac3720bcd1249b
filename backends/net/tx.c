/*
 * tx — guest → host: copy requests out, parse each slot chain (parse.c), copy the
 * slots of a batch of packets into a private arena with one grant-copy call, add each
 * packet's virtio-net header (GSO, checksum) and write it to the tap; answer every
 * slot, in ring order.
 * Counterpart: Linux xen-netback netback.c (xenvif_tx_build_gops, xenvif_tx_submit).
 */
#include "backends/net/netback.h"

#include "xenbus/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#define VNET_F_NEEDS_CSUM 1
#define VNET_F_DATA_VALID 2
#define VNET_GSO_TCPV4 1
#define VNET_GSO_TCPV6 4

static void tx_rsp(struct net_queue *q, uint16_t id, int16_t status)
{
	struct netif_tx_response rsp = { .id = id, .status = status };

	ring_back_put(&q->tx, &rsp, sizeof(rsp));
}

/* make_tx_response for a chain: first slot, NULL for each extra, then each frag. */
static void tx_answer(struct net_queue *q, const struct net_tx_pkt *pkt, const int16_t *st)
{
	tx_rsp(q, pkt->data[0].id, st[0]);
	for (unsigned int i = 0; i < pkt->nr_extras; i++)
		tx_rsp(q, 0, NETIF_RSP_NULL);
	for (unsigned int i = 1; i < pkt->nr_data; i++)
		tx_rsp(q, pkt->data[i].id, st[i]);
}

/* tx_credit_exceeded (Linux): true = wait for the credit timer. */
static bool credit_exceeded(struct net_queue *q, uint32_t size)
{
	uint64_t now, next;

	if (q->credit_bytes == 0 || size <= q->remaining_credit)
		return false;
	if (q->credit_wait)
		return true;
	now = net_now_us();
	next = q->credit_window_us + q->credit_usec;
	if (now >= next) {
		uint64_t max_burst = q->credit_bytes > 131072 ? q->credit_bytes : 131072;

		q->credit_window_us = now;
		q->remaining_credit += q->credit_bytes;
		if (q->remaining_credit > max_burst)
			q->remaining_credit = max_burst;
		next = now + q->credit_usec;
	}
	if (size > q->remaining_credit) {
		ev_timer_set(&q->credit_timer, (double)(next - now) / 1e6, 0);
		ev_timer_start(q->dev->xb.loop, &q->credit_timer);
		q->credit_window_us = next;
		q->credit_wait = true;
		q->stats.tx_credit_waits++;
		return true;
	}
	return false;
}

/*
 * Packets to send are staged: their slots' grant copies go out together, one call per
 * batch instead of one per packet (each call is an ioctl and a hypercall on Xen), then
 * each packet gets its header and goes to the tap, and its slots are answered, in ring
 * order. A batch ends at NET_TX_BATCH packets, when the next would not fit the
 * NET_TX_ARENA bytes of q->txpkt, and before anything that must not pass the staged
 * packets (another verdict's answer, a response push, the end of a kick).
 */
static uint32_t arena_need(uint32_t len)
{
	return (uint32_t)((sizeof(struct net_vnet_hdr) + len + 63) & ~(size_t)63);
}

/* Header and tap write for a packet whose data was copied in. */
static void tx_finish(struct net_queue *q, const struct net_tx_pkt *pkt, uint8_t *buf)
{
	struct net_vnet_hdr *h = (struct net_vnet_hdr *)buf;
	uint8_t *frame = buf + sizeof(*h);
	uint32_t pos = pkt->len;
	ssize_t w;

	memset(h, 0, sizeof(*h));
	if (pkt->flags & NETTXF_csum_blank || pkt->has_gso) {
		/* checksum_setup: a GSO frame must be partial; fix up one that isn't. */
		bool recalc = !(pkt->flags & NETTXF_csum_blank);

		if (recalc)
			q->stats.tx_csum_fixup++;
		if (net_csum_setup(frame, pos, recalc, h) != 0) {
			q->stats.tx_csum_fixup++;
			log_guest(q->name, "tx: can't set up the checksum: packet dropped");
			return; /* dropped after the copy; the slots were fine (as Linux) */
		}
		q->stats.tx_csum_blank++;
	} else if (pkt->flags & NETTXF_data_validated) {
		h->flags = VNET_F_DATA_VALID;
	}
	if (pkt->has_gso) {
		struct net_l4 l4;
		bool v6 = pkt->gso_type == XEN_NETIF_GSO_TYPE_TCPV6;

		/* GSO here is TCP segmentation: a frame that isn't TCP over the IP version
		 * the extra names, or has no payload, is not handed to the host stack as
		 * one (Linux netback drops a GSO skb without its L4 header). */
		if (net_l4_find(frame, pos, &l4) != 0 || l4.proto != IPPROTO_TCP ||
		    l4.ipv6 != v6 || (uint32_t)l4.l4_off + l4.l4_hlen >= pos) {
			q->stats.tx_csum_fixup++;
			log_guest(q->name, "tx: GSO on a frame that isn't TCP%s: packet dropped",
				  v6 ? "v6" : "v4");
			return; /* dropped after the copy; the slots were fine (as Linux) */
		}
		h->gso_type = v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4;
		h->gso_size = pkt->gso_size;
		h->hdr_len = (uint16_t)(l4.l4_off + l4.l4_hlen);
		q->stats.tx_gso++;
	}
	w = write(q->tapfd, buf, sizeof(*h) + pos);
	if (w < 0) {
		q->stats.tx_tap_errors++;
		return;
	}
	q->stats.tx_packets++;
	q->stats.tx_bytes += pos;
}

/* Copy the staged packets in (one call), send the good ones, answer them all. */
static void tx_flush(struct net_queue *q)
{
	bool call_failed;

	if (q->txb_n == 0)
		return;
	call_failed = q->txb_segs && hv_gnt_copy(q->dev->gnt, q->txb_segs, q->txsegs) != 0;
	for (unsigned int n = 0; n < q->txb_n; n++) {
		struct net_tx_staged *e = &q->txb[n];
		int16_t st[NET_TX_FATAL_SLOTS + 1];
		bool bad = false;

		for (unsigned int i = 0; i < e->pkt.nr_data; i++)
			st[i] = call_failed ? NETIF_RSP_ERROR : NETIF_RSP_OKAY;
		for (unsigned int k = 0; !call_failed && k < e->nseg; k++) {
			const struct hv_copy_seg *sg = &q->txsegs[e->seg0 + k];

			if (sg->status != HV_GNTST_OKAY) {
				st[e->segslot[k]] = NETIF_RSP_ERROR;
				if (!bad)
					log_guest(q->name,
						  "tx: grant copy failed (status %d): packet dropped",
						  sg->status);
				bad = true;
			}
		}
		if (call_failed || bad)
			q->stats.tx_bad_grant++;
		else
			tx_finish(q, &e->pkt, q->txpkt + e->off);
		tx_answer(q, &e->pkt, st);
	}
	q->txb_n = 0;
	q->txb_segs = 0;
	q->txb_used = 0;
}

/* Stage a packet to send: its slots' copies into its place in the arena. */
static void tx_stage(struct net_queue *q, const struct net_tx_pkt *pkt)
{
	struct net_dev *dev = q->dev;
	struct net_tx_staged *e;
	uint32_t pos = 0;

	if (q->txb_n == NET_TX_BATCH || q->txb_used + arena_need(pkt->len) > NET_TX_ARENA)
		tx_flush(q);
	e = &q->txb[q->txb_n++];
	e->pkt = *pkt;
	e->off = q->txb_used;
	e->seg0 = (uint16_t)q->txb_segs;
	e->nseg = 0;
	q->txb_used += arena_need(pkt->len);
	for (unsigned int i = 0; i < pkt->nr_data; i++) {
		const struct netif_tx_request *r = &pkt->data[i];
		struct hv_copy_seg *sg;

		if (r->size == 0)
			continue;
		sg = &q->txsegs[q->txb_segs++];
		memset(sg, 0, sizeof(*sg));
		sg->source.foreign.ref = r->gref;
		sg->source.foreign.offset = r->offset;
		sg->source.foreign.domid = (uint16_t)dev->xb.otherend_id;
		sg->dest.virt = q->txpkt + e->off + sizeof(struct net_vnet_hdr) + pos;
		sg->len = r->size;
		sg->flags = HV_COPY_SOURCE_GREF;
		e->segslot[e->nseg++] = (uint8_t)i;
		pos += r->size; /* parse.c guarantees the slots add up to pkt->len */
	}
}

static void tx_push(struct net_queue *q)
{
	if (net_ring_push(q->dev, q->jtx, &q->tx)) {
		hv_evt_notify(q->evt, (uint32_t)q->tx_port);
		q->stats.notify_out++;
	}
}

/* Answer a chain that is not sent: a DROP (errors) or a multicast control request. */
static void tx_not_sent(struct net_queue *q, const struct net_tx_pkt *pkt)
{
	int16_t st[NET_TX_FATAL_SLOTS + 1] = { 0 };

	if (pkt->verdict == NET_TX_MCAST) {
		st[0] = NETIF_RSP_OKAY;
		if (pkt->mcast_add && net_mcast_add(q->dev, pkt->mcast_addr) != 0)
			st[0] = NETIF_RSP_ERROR;
		if (pkt->mcast_del)
			net_mcast_del(q->dev, pkt->mcast_addr);
		/* Recorded before the response that confirms it is published. */
		net_dev_save_state(q->dev);
	} else {
		log_guest(q->name, "tx: %s: answering errors", pkt->why);
		for (unsigned int i = 0; i < pkt->nr_data; i++)
			st[i] = NETIF_RSP_ERROR;
		q->stats.tx_errors++;
	}
	tx_answer(q, pkt, st);
}

void net_tx_kick(struct net_queue *q)
{
	struct net_dev *dev = q->dev;
	unsigned int done = 0;

	if (q->tx.broken || q->credit_wait)
		return;
	for (;;) {
		unsigned int consumed = 0;
		int n;

		n = ring_back_take(&q->tx, q->txreqs + q->tx_have, sizeof(*q->txreqs),
				   q->tx.nr_ents - q->tx_have);
		if (n < 0) {
			xenbus_device_fatal(&dev->xb, "tx ring: impossible number of requests");
			return;
		}
		/* Journaled before any of it is used (a restarted worker redoes them). */
		net_journal_taken(dev, q->jtx, &q->tx, q->txreqs + q->tx_have, sizeof(*q->txreqs),
				  (unsigned int)n);
		q->tx_have += (unsigned int)n;
		if (q->tx_have == 0) {
			if (!ring_back_final_check(&q->tx))
				break;
			continue;
		}
		while (consumed < q->tx_have) {
			struct net_tx_pkt pkt;
			int rc;

			if (credit_exceeded(q, q->txreqs[consumed].size))
				break;
			rc = net_tx_parse(q->txreqs + consumed, q->tx_have - consumed, &pkt);
			if (rc) {
				/* xenvif_fatal_tx_err: this frontend is broken; others carry on. */
				log_guest(q->name, "tx: %s: disconnecting", pkt.why);
				tx_flush(q);
				tx_push(q);
				xenbus_device_fatal(&dev->xb, pkt.why);
				return;
			}
			if (pkt.verdict == NET_TX_SEND) {
				tx_stage(q, &pkt); /* answered by tx_flush */
				if (q->credit_bytes)
					q->remaining_credit -= q->remaining_credit < pkt.len
								       ? q->remaining_credit
								       : pkt.len;
			} else {
				tx_flush(q); /* what was staged is answered first: ring order */
				tx_not_sent(q, &pkt);
			}
			consumed += pkt.slots;
			/* Hand responses back in batches so the frontend can refill early. */
			if (++done % 32 == 0) {
				tx_flush(q);
				tx_push(q);
			}
		}
		tx_flush(q);
		memmove(q->txreqs, q->txreqs + consumed,
			(q->tx_have - consumed) * sizeof(*q->txreqs));
		q->tx_have -= consumed;
		tx_push(q);
		if (q->credit_wait)
			return;
		/* Fairness: let RX and other devices' work run between big bursts. */
		if (done >= 4096) {
			ev_feed_event(dev->xb.loop, &q->evt_io, EV_CUSTOM);
			break;
		}
	}
}
