/*
 * queue — one netif queue: TX and RX rings, their event channel(s) and the tap fd
 * it reads, built over mapped rings at connect (or taken over from a worker that died,
 * from the crash journal) and torn down in reverse; the journal glue of every ring.
 * Counterpart: Linux xen-netback interface.c (xenvif_init_queue, xenvif_connect_data).
 */
#include "backends/net/netback.h"

#include "xenbus/log.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t net_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void evt_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct net_queue *q = w->data;
	bool tx = revents & EV_CUSTOM, rx = false;
	int port;

	/* Drain what fired, then unmask, then work: a notify after the unmask re-fires.
	 * EV_CUSTOM: tx.c yielded after a long burst and wants to continue. */
	for (int i = 0; i < 16 && (port = hv_evt_pending(q->evt)) >= 0; i++) {
		if (port == q->tx_port)
			tx = true;
		if (port == q->rx_port)
			rx = true;
		hv_evt_unmask(q->evt, (uint32_t)port);
		q->stats.notify_in++;
	}
	struct net_dev *dev = q->dev;
	uint32_t tx0 = q->tx.req_cons, rx0 = q->rx.req_cons;

	if (rx) {
		net_rx_kick(q);
		/* A bogus RX index disconnected the device, which freed q. */
		if (dev->xb.broken)
			return;
	}
	if (tx) {
		net_tx_kick(q);
		if (dev->xb.broken)
			return;
	}
	evt_storm_note(&q->storm, loop,
		       !(revents & EV_READ) || q->tx.req_cons != tx0 || q->rx.req_cons != rx0);
}

static void credit_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct net_queue *q = w->data;
	uint64_t max_burst = q->credit_bytes > 131072 ? q->credit_bytes : 131072;

	/* tx_credit_callback: a new window's credit, then resume TX. */
	q->credit_wait = false;
	q->remaining_credit += q->credit_bytes;
	if (q->remaining_credit > max_burst)
		q->remaining_credit = max_burst;
	net_tx_kick(q);
}

void net_queue_set_rate(struct net_queue *q, uint64_t bytes, uint64_t usecs)
{
	q->credit_bytes = bytes;
	q->credit_usec = usecs;
	q->remaining_credit = bytes;
	q->credit_window_us = net_now_us();
	if (q->credit_wait) {
		ev_timer_stop(q->dev->xb.loop, &q->credit_timer);
		q->credit_wait = false;
		net_tx_kick(q);
	}
}

/* ---- crash journal glue (see netback.h) ---- */

void net_journal_taken(struct net_dev *dev, int jqi, const struct ring_back *r,
		       const void *reqs, size_t req_size, unsigned int n)
{
	struct xenbus_journal *j = &dev->journal;
	uint32_t first = r->req_cons - n;

	if (jqi < 0 || !dev->journal_on || n == 0)
		return;
	for (unsigned int i = 0; i < n; i++) {
		uint32_t idx = first + i;
		struct xenbus_journal_ent *e =
			xenbus_journal_ent(j, (unsigned int)jqi, idx & (r->nr_ents - 1));

		/* Its previous user (idx - nr_ents) was answered and published before this
		 * take could happen: every take follows a push of all written responses. */
		assert(e->state == XENBUS_JOURNAL_FREE);
		xenbus_journal_ent_take(e, idx, (const uint8_t *)reqs + i * req_size, req_size);
	}
	xenbus_journal_set_req_cons(xenbus_journal_queue(j, (unsigned int)jqi), r->req_cons);
}

bool net_ring_push(struct net_dev *dev, int jqi, struct ring_back *r)
{
	struct xenbus_journal *j = &dev->journal;
	struct xenbus_journal_queue *jq;
	uint32_t from, to = r->rsp_prod_pvt;
	bool notify;

	if (jqi < 0 || !dev->journal_on)
		return ring_back_push(r);
	jq = xenbus_journal_queue(j, (unsigned int)jqi);
	from = jq->rsp_prod;
	/* Responded before rsp_prod moves past them, or recovery would find requests
	 * below rsp_prod still taken. */
	for (uint32_t i = from; i != to; i++)
		xenbus_journal_ent_responded(
			xenbus_journal_ent(j, (unsigned int)jqi, i & (r->nr_ents - 1)), i);
	xenbus_journal_set_rsp_prod(jq, to);
	notify = ring_back_push(r);
	for (uint32_t i = from; i != to; i++)
		xenbus_journal_ent_free(xenbus_journal_ent(j, (unsigned int)jqi, i & (r->nr_ents - 1)));
	return notify;
}

int net_journal_resume(struct net_dev *dev, int jqi, struct ring_back *r, void *reqs,
		       size_t req_size)
{
	struct xenbus_journal *j = &dev->journal;
	struct xenbus_journal_queue *jq;
	uint32_t req_cons, rsp_prod;
	unsigned int *redo;
	int n;

	if (jqi < 0 || !dev->journal_on || r->nr_ents > j->hdr->nr_ents)
		return -EPROTO;
	redo = calloc(j->hdr->nr_ents, sizeof(*redo));
	if (!redo)
		return -ENOMEM;
	jq = xenbus_journal_queue(j, (unsigned int)jqi);
	n = xenbus_journal_recover(j, (unsigned int)jqi, redo);
	req_cons = jq->req_cons;
	rsp_prod = jq->rsp_prod;
	/* Our own memory, but checked like guest input: the ring invariants depend on it. */
	if (n >= 0 && (req_cons - rsp_prod > r->nr_ents || (uint32_t)n != req_cons - rsp_prod))
		n = -EPROTO;
	for (int i = 0; n > 0 && i < n; i++) {
		const struct xenbus_journal_ent *e = xenbus_journal_ent(j, (unsigned int)jqi, redo[i]);

		/* One entry per ring index, answered in order: exactly rsp_prod .. req_cons. */
		if (e->req_idx != rsp_prod + (uint32_t)i || redo[i] != (e->req_idx & (r->nr_ents - 1)) ||
		    e->len != req_size) {
			n = -EPROTO;
			break;
		}
		memcpy((uint8_t *)reqs + (size_t)i * req_size, e->payload, req_size);
	}
	free(redo);
	if (n < 0)
		return n;
	r->req_cons = req_cons;
	r->rsp_prod_pvt = rsp_prod;
	/* The journal's rsp_prod is never behind the ring's (it is written first): publish
	 * what the dead worker may have journaled and not yet published. */
	ring_back_push(r);
	return n;
}

static void queue_free(struct net_queue *q)
{
	free(q->rx_spare);
	free(q->txreqs);
	free(q->rxreqs);
	free(q->txpkt);
	free(q->txsegs);
	free(q->txb);
	free(q->rxsegs);
	free(q);
}

int net_queue_open(struct net_dev *dev, unsigned int idx, void *tx_addr, void *rx_addr,
		   struct hv_evt *evt, int tx_port, int rx_port, struct net_queue **out)
{
	struct net_queue *q = calloc(1, sizeof(*q));
	struct ev_loop *loop = dev->xb.loop;
	int rc;

	if (!q)
		return -ENOMEM;
	q->dev = dev;
	q->idx = idx;
	q->jtx = q->jrx = -1;
	snprintf(q->name, sizeof(q->name), "%s/q%u", dev->xb.name, idx);
	rc = ring_back_attach(&q->tx, tx_addr, NET_PAGE_SIZE, sizeof(union netif_tx_sring_entry), 0);
	rc = rc ?: ring_back_attach(&q->rx, rx_addr, NET_PAGE_SIZE,
				    sizeof(union netif_rx_sring_entry), 0);
	if (rc) {
		free(q);
		return rc;
	}
	q->txreqs = calloc(q->tx.nr_ents, sizeof(*q->txreqs));
	q->rxreqs = calloc(q->rx.nr_ents, sizeof(*q->rxreqs));
	q->txpkt = malloc(NET_TX_ARENA);
	q->txsegs = calloc((size_t)NET_TX_BATCH * (NET_TX_FATAL_SLOTS + 1), sizeof(*q->txsegs));
	q->txb = calloc(NET_TX_BATCH, sizeof(*q->txb));
	q->rxsegs = calloc((size_t)NET_RX_BATCH * 18, sizeof(*q->rxsegs));
	if (!q->txreqs || !q->rxreqs || !q->txpkt || !q->txsegs || !q->txb || !q->rxsegs) {
		queue_free(q);
		return -ENOMEM;
	}
	if (dev->journal_on) {
		q->jtx = (int)NET_JQ_TX(idx);
		q->jrx = (int)NET_JQ_RX(idx);
	}
	if (dev->resuming) {
		/* TX: the slots the dead worker had taken are parsed and sent again (a frame
		 * may go out twice; no slot goes unanswered). RX: the buffers it had taken
		 * are posted buffers again; the frames it had queued from the tap are lost. */
		int ntx = net_journal_resume(dev, q->jtx, &q->tx, q->txreqs, sizeof(*q->txreqs));
		int nrx = ntx < 0 ? ntx
				  : net_journal_resume(dev, q->jrx, &q->rx, q->rxreqs,
						       sizeof(*q->rxreqs));

		if (ntx < 0 || nrx < 0) {
			log_err(q->name, "journal unusable (%d): can't resume", ntx < 0 ? ntx : nrx);
			queue_free(q);
			return -EPROTO;
		}
		q->tx_have = (unsigned int)ntx;
		q->rx_have = (unsigned int)nrx;
		log_info(q->name, "resumed: tx at %u/%u (%d slot(s) redone), rx at %u/%u (%d "
			 "buffer(s) kept)", q->tx.req_cons, q->tx.rsp_prod_pvt, ntx, q->rx.req_cons,
			 q->rx.rsp_prod_pvt, nrx);
	}
	/* From here on the queue owns the rings and the event channel. */
	q->tx_addr = tx_addr;
	q->rx_addr = rx_addr;
	q->evt = evt;
	q->tx_port = tx_port;
	q->rx_port = rx_port;
	q->tapfd = dev->tapfds[idx < dev->ntapfds ? idx : 0];
	q->rx_last_progress_ms = net_now_us() / 1000;

	ev_timer_init(&q->credit_timer, credit_cb, 0, 0);
	q->credit_timer.data = q;
	ev_timer_init(&q->rx_timer, net_rx_timer_cb, 0, 0);
	q->rx_timer.data = q;
	ev_io_init(&q->evt_io, evt_cb, hv_evt_fd(evt), EV_READ);
	q->evt_io.data = q;
	evt_storm_init(&q->storm, &q->evt_io, NULL, NULL, &q->stats.storm_pauses);
	ev_io_start(loop, &q->evt_io);
	ev_io_init(&q->tap_io, net_rx_tap_cb, q->tapfd, EV_READ);
	q->tap_io.data = q;
	/* Queues sharing one tap fd (fewer tap queues than rings) read it once. */
	if (idx < dev->ntapfds) {
		ev_io_start(loop, &q->tap_io);
		q->tap_reading = true;
	}
	*out = q;
	if (dev->resuming) {
		/* Whatever the frontend waited for while no worker ran. */
		hv_evt_notify(evt, (uint32_t)tx_port);
		if (rx_port != tx_port)
			hv_evt_notify(evt, (uint32_t)rx_port);
	}
	/* Requests the frontend published before we bound the channel. */
	net_tx_kick(q);
	net_rx_kick(q);
	return 0;
}

void net_queue_close(struct net_queue *q)
{
	struct ev_loop *loop;

	if (!q)
		return;
	loop = q->dev->xb.loop;
	ev_io_stop(loop, &q->tap_io);
	ev_io_stop(loop, &q->evt_io);
	evt_storm_stop(&q->storm, loop);
	ev_timer_stop(loop, &q->credit_timer);
	ev_timer_stop(loop, &q->rx_timer);
	if (q->rx_port != q->tx_port)
		hv_evt_unbind(q->evt, (uint32_t)q->rx_port);
	hv_evt_unbind(q->evt, (uint32_t)q->tx_port);
	hv_evt_close(q->evt);
	hv_gnt_unmap(q->dev->gnt, q->rx_addr, 1);
	hv_gnt_unmap(q->dev->gnt, q->tx_addr, 1);
	while (q->rxq_head) {
		struct net_frame *f = q->rxq_head;

		q->rxq_head = f->next;
		free(f);
	}
	log_info(q->name,
		 "stats: tx %llu pkts %llu bytes (gso %llu, errors %llu, bad grants %llu), "
		 "rx %llu pkts %llu bytes (gso %llu, expired %llu, filtered %llu, "
		 "unsupported %llu, stalls %llu, queue full %llu, peak %llu pkts), "
		 "notify in/out %llu/%llu storm_pauses %llu",
		 (unsigned long long)q->stats.tx_packets, (unsigned long long)q->stats.tx_bytes,
		 (unsigned long long)q->stats.tx_gso, (unsigned long long)q->stats.tx_errors,
		 (unsigned long long)q->stats.tx_bad_grant, (unsigned long long)q->stats.rx_packets,
		 (unsigned long long)q->stats.rx_bytes, (unsigned long long)q->stats.rx_gso,
		 (unsigned long long)q->stats.rx_dropped_expired,
		 (unsigned long long)q->stats.rx_dropped_filtered,
		 (unsigned long long)q->stats.rx_dropped_unsupported,
		 (unsigned long long)q->stats.rx_stalls,
		 (unsigned long long)q->stats.rx_queue_full,
		 (unsigned long long)q->stats.rx_queue_peak_pkts,
		 (unsigned long long)q->stats.notify_in, (unsigned long long)q->stats.notify_out,
		 (unsigned long long)q->stats.storm_pauses);
	queue_free(q);
}
