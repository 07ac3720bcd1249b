/*
 * tx — guest → host: copy requests out, parse each slot chain (parse.c), copy the
 * packet's slots into a private linear buffer with one batched grant copy, add the
 * virtio-net header (GSO, checksum) and write it to the tap; answer every slot.
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

/* Copy the packet in, build its header, hand it to the tap. Fills per-slot status. */
static void tx_send(struct net_queue *q, const struct net_tx_pkt *pkt, int16_t *st)
{
	struct net_dev *dev = q->dev;
	struct net_vnet_hdr *h = (struct net_vnet_hdr *)q->txpkt;
	uint8_t *frame = q->txpkt + sizeof(*h);
	unsigned int nseg = 0, segslot[NET_TX_FATAL_SLOTS + 1];
	uint32_t pos = 0;
	bool bad = false;
	ssize_t w;

	for (unsigned int i = 0; i < pkt->nr_data; i++) {
		const struct netif_tx_request *r = &pkt->data[i];
		struct hv_copy_seg *s;

		st[i] = NETIF_RSP_OKAY;
		if (r->size == 0)
			continue;
		s = &q->txsegs[nseg];
		memset(s, 0, sizeof(*s));
		s->source.foreign.ref = r->gref;
		s->source.foreign.offset = r->offset;
		s->source.foreign.domid = (uint16_t)dev->xb.otherend_id;
		s->dest.virt = frame + pos;
		s->len = r->size;
		s->flags = HV_COPY_SOURCE_GREF;
		segslot[nseg++] = i;
		pos += r->size;
	}
	/* parse.c guarantees the slots add up to the packet size. */
	if (nseg && hv_gnt_copy(dev->gnt, nseg, q->txsegs) != 0) {
		for (unsigned int i = 0; i < pkt->nr_data; i++)
			st[i] = NETIF_RSP_ERROR;
		q->stats.tx_bad_grant++;
		return;
	}
	for (unsigned int k = 0; k < nseg; k++) {
		if (q->txsegs[k].status != HV_GNTST_OKAY) {
			st[segslot[k]] = NETIF_RSP_ERROR;
			bad = true;
		}
	}
	if (bad) {
		q->stats.tx_bad_grant++;
		log_guest(q->name, "tx: grant copy failed (status %d): packet dropped",
			  q->txsegs[0].status);
		return;
	}

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
	w = write(q->tapfd, q->txpkt, sizeof(*h) + pos);
	if (w < 0) {
		q->stats.tx_tap_errors++;
		return;
	}
	q->stats.tx_packets++;
	q->stats.tx_bytes += pos;
}

static void tx_push(struct net_queue *q)
{
	if (net_ring_push(q->dev, q->jtx, &q->tx)) {
		hv_evt_notify(q->evt, (uint32_t)q->tx_port);
		q->stats.notify_out++;
	}
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
			int16_t st[NET_TX_FATAL_SLOTS + 1] = { 0 };
			int rc;

			if (credit_exceeded(q, q->txreqs[consumed].size))
				break;
			rc = net_tx_parse(q->txreqs + consumed, q->tx_have - consumed, &pkt);
			if (rc) {
				/* xenvif_fatal_tx_err: this frontend is broken; others carry on. */
				log_guest(q->name, "tx: %s: disconnecting", pkt.why);
				tx_push(q);
				xenbus_device_fatal(&dev->xb, pkt.why);
				return;
			}
			switch (pkt.verdict) {
			case NET_TX_SEND:
				tx_send(q, &pkt, st);
				if (q->credit_bytes)
					q->remaining_credit -= q->remaining_credit < pkt.len
								       ? q->remaining_credit
								       : pkt.len;
				break;
			case NET_TX_DROP:
				log_guest(q->name, "tx: %s: answering errors", pkt.why);
				for (unsigned int i = 0; i < pkt.nr_data; i++)
					st[i] = NETIF_RSP_ERROR;
				q->stats.tx_errors++;
				break;
			case NET_TX_MCAST:
				st[0] = NETIF_RSP_OKAY;
				if (pkt.mcast_add && net_mcast_add(dev, pkt.mcast_addr) != 0)
					st[0] = NETIF_RSP_ERROR;
				if (pkt.mcast_del)
					net_mcast_del(dev, pkt.mcast_addr);
				/* Recorded before the response that confirms it is published. */
				net_dev_save_state(dev);
				break;
			}
			tx_answer(q, &pkt, st);
			consumed += pkt.slots;
			/* Hand responses back in batches so the frontend can refill early. */
			if (++done % 32 == 0)
				tx_push(q);
		}
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
