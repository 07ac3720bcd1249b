/*
 * rx — host → guest: read frames (with their virtio-net header) from the tap, filter
 * and steer them (multicast list, Toeplitz mapping), queue them (bounded in packets
 * and bytes, expired after rx_drain_ms: XSA-392), and copy them into the guest's
 * posted buffers with one batched grant copy per batch; each response goes into the
 * slot of its request, a GSO extra-info slot right after the first.
 * Counterpart: Linux xen-netback rx.c and interface.c (xenvif_start_xmit).
 */
#include "backends/net/netback.h"

#include "xenbus/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* Frames up to this size are copied into an allocation of their own; bigger ones (GSO)
 * keep the buffer they were read into, so 64 KiB isn't copied once more. */
#define RX_COPY_MAX 2048u

#define VNET_F_NEEDS_CSUM 1
#define VNET_F_DATA_VALID 2
#define VNET_GSO_TCPV4 1
#define VNET_GSO_TCPV6 4

static uint64_t now_ms(void)
{
	return net_now_us() / 1000;
}

bool net_mcast_ok(const struct net_dev *dev, const uint8_t *frame, size_t len)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	if (!dev->mcast_ctrl || len < 6 || !(frame[0] & 1) || memcmp(frame, bcast, 6) == 0)
		return true;
	for (unsigned int i = 0; i < dev->nr_mcast; i++)
		if (memcmp(dev->mcast[i], frame, 6) == 0)
			return true;
	return false;
}

int net_mcast_add(struct net_dev *dev, const uint8_t addr[6])
{
	for (unsigned int i = 0; i < dev->nr_mcast; i++)
		if (memcmp(dev->mcast[i], addr, 6) == 0)
			return 0;
	if (dev->nr_mcast >= NET_MCAST_MAX)
		return -ENOSPC;
	memcpy(dev->mcast[dev->nr_mcast++], addr, 6);
	return 0;
}

void net_mcast_del(struct net_dev *dev, const uint8_t addr[6])
{
	for (unsigned int i = 0; i < dev->nr_mcast; i++) {
		if (memcmp(dev->mcast[i], addr, 6) == 0) {
			memmove(dev->mcast[i], dev->mcast[i + 1], (dev->nr_mcast - i - 1) * 6);
			dev->nr_mcast--;
			return;
		}
	}
}

static bool queue_full(const struct net_queue *q)
{
	const struct net_config *c = &q->dev->cfg;

	return q->rxq_pkts >= c->rx_queue_max_pkts || q->rxq_bytes >= c->rx_queue_max_bytes;
}

static void carrier(struct net_dev *dev, bool on)
{
	dev->carrier = on;
	net_tap_set_carrier(dev->tapfds[0], on);
	xenbus_printf(dev->xb.xs, XBT_NULL, dev->xb.nodename, "carrier", "%d", on);
}

static void timer_arm(struct net_queue *q)
{
	const struct net_config *c = &q->dev->cfg;
	unsigned int ms = c->rx_drain_ms < c->rx_stall_ms ? c->rx_drain_ms : c->rx_stall_ms;

	ms /= 4;
	if (ms < 10)
		ms = 10;
	ev_timer_set(&q->rx_timer, ms / 1000.0, 0);
	ev_timer_start(q->dev->xb.loop, &q->rx_timer);
}

void net_rx_enqueue(struct net_queue *q, struct net_frame *f)
{
	if (queue_full(q)) {
		/* Only frames steered here from another queue's tap get this far. */
		q->stats.rx_queue_full++;
		free(f);
		return;
	}
	f->next = NULL;
	if (q->rxq_tail)
		q->rxq_tail->next = f;
	else
		q->rxq_head = f;
	q->rxq_tail = f;
	if (q->rxq_pkts++ == 0) {
		q->rx_last_progress_ms = f->t_ms;
		if (!ev_is_active(&q->rx_timer))
			timer_arm(q);
	}
	q->rxq_bytes += f->len;
	if (q->rxq_pkts > q->stats.rx_queue_peak_pkts)
		q->stats.rx_queue_peak_pkts = q->rxq_pkts;
}

static struct net_frame *rxq_pop(struct net_queue *q)
{
	struct net_frame *f = q->rxq_head;

	q->rxq_head = f->next;
	if (!q->rxq_head)
		q->rxq_tail = NULL;
	q->rxq_pkts--;
	q->rxq_bytes -= f->len;
	return f;
}

static void tap_resume(struct net_queue *q)
{
	const struct net_config *c = &q->dev->cfg;

	if (q->tap_reading || q->idx >= q->dev->ntapfds)
		return;
	if (q->rxq_pkts <= c->rx_queue_max_pkts / 2 && q->rxq_bytes <= c->rx_queue_max_bytes / 2) {
		ev_io_start(q->dev->xb.loop, &q->tap_io);
		q->tap_reading = true;
	}
}

void net_rx_tap_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct net_queue *q = w->data;
	struct net_dev *dev = q->dev;
	uint32_t kick = 0;

	(void)revents;
	for (int i = 0; i < 64; i++) {
		struct net_queue *t = q;
		struct net_frame *f, *s;
		struct iovec iov[2];
		uint32_t hash;
		uint8_t htype;
		ssize_t n;

		if (queue_full(q)) {
			/* Bounded: stop reading; the kernel's tap queue holds or drops the rest. */
			ev_io_stop(loop, &q->tap_io);
			q->tap_reading = false;
			q->stats.rx_queue_full++;
			break;
		}
		if (!q->rx_spare && !(q->rx_spare = malloc(sizeof(*s) + NET_FRAME_MAX)))
			break;
		s = q->rx_spare;
		iov[0] = (struct iovec){ &s->h, sizeof(s->h) };
		iov[1] = (struct iovec){ s->data, NET_FRAME_MAX };
		n = readv(q->tapfd, iov, 2);
		if (n < 0)
			break;
		if ((size_t)n < sizeof(struct net_vnet_hdr) + NET_ETH_HLEN)
			continue;
		n -= (ssize_t)sizeof(struct net_vnet_hdr);
		if (!net_mcast_ok(dev, s->data, (size_t)n)) {
			q->stats.rx_dropped_filtered++;
			continue;
		}
		if ((size_t)n <= RX_COPY_MAX) {
			f = malloc(sizeof(*f) + (size_t)n);
			if (!f)
				break;
			f->h = s->h;
			memcpy(f->data, s->data, (size_t)n);
		} else {
			/* Hand the buffer over, trimmed (a shrinking realloc stays in place). */
			q->rx_spare = NULL;
			f = realloc(s, sizeof(*f) + (size_t)n);
			if (!f)
				f = s;
		}
		f->len = (uint32_t)n;
		f->t_ms = now_ms();
		if (dev->nr_queues > 1 && net_hash_frame(&dev->hash, f->data, f->len, &hash, &htype))
			t = dev->queues[net_hash_queue(&dev->hash, hash, dev->nr_queues)];
		net_rx_enqueue(t, f);
		kick |= 1u << t->idx;
	}
	for (unsigned int i = 0; i < dev->nr_queues; i++)
		if (kick & (1u << i))
			net_rx_kick(dev->queues[i]);
}

/* Can the guest take f? Completes checksums it can't, in software. */
static bool frame_ok(struct net_queue *q, struct net_frame *f, uint8_t *xgso)
{
	struct net_dev *dev = q->dev;
	bool v6 = f->len >= NET_ETH_HLEN && f->data[12] == 0x86 && f->data[13] == 0xdd;

	*xgso = 0;
	if (f->h.flags & VNET_F_NEEDS_CSUM && !(v6 ? dev->csum6 : dev->csum4)) {
		if (net_csum_complete(f->data, f->len, f->h.csum_start, f->h.csum_offset) != 0)
			return false;
		f->h.flags = VNET_F_DATA_VALID;
	}
	if (f->h.gso_type) {
		uint8_t t = f->h.gso_type & 0x7f;

		if (t == VNET_GSO_TCPV4 && dev->gso4)
			*xgso = XEN_NETIF_GSO_TYPE_TCPV4;
		else if (t == VNET_GSO_TCPV6 && dev->gso6)
			*xgso = XEN_NETIF_GSO_TYPE_TCPV6;
		else
			return false;
		if (f->h.gso_size == 0)
			return false;
	}
	if (f->len > NET_PAGE_SIZE && !dev->sg)
		return false;
	return f->len <= 65535 + NET_ETH_HLEN;
}

static unsigned int frame_slots(const struct net_frame *f, uint8_t xgso)
{
	return (f->len + NET_PAGE_SIZE - 1) / NET_PAGE_SIZE + (xgso ? 1 : 0);
}

static void rx_push(struct net_queue *q)
{
	if (net_ring_push(q->dev, q->jrx, &q->rx)) {
		hv_evt_notify(q->evt, (uint32_t)q->rx_port);
		q->stats.notify_out++;
	}
}

void net_rx_kick(struct net_queue *q)
{
	struct net_dev *dev = q->dev;
	uint8_t xgso[NET_RX_BATCH];

	if (q->rx.broken)
		return;
	if (q->stalled && (q->rx_have || ring_back_unconsumed(&q->rx))) {
		q->stalled = false;
		log_info(q->name, "rx: guest posting buffers again: carrier on");
		carrier(dev, true);
	}
	while (q->rxq_head) {
		unsigned int nf = 0, used = 0, nseg = 0, seg = 0;
		struct net_frame *f;

		/* Frames the guest can't take are dropped at the head. */
		while (q->rxq_head && !frame_ok(q, q->rxq_head, &xgso[0])) {
			free(rxq_pop(q));
			q->stats.rx_dropped_unsupported++;
		}
		for (f = q->rxq_head; f && nf < NET_RX_BATCH; f = f->next) {
			unsigned int need;

			if (nf && !frame_ok(q, f, &xgso[nf]))
				break; /* dropped when it reaches the head */
			need = frame_slots(f, xgso[nf]);
			if (q->rx_have - used < need && q->rx_have < q->rx.nr_ents) {
				int n = ring_back_take(&q->rx, q->rxreqs + q->rx_have,
						       sizeof(*q->rxreqs), q->rx.nr_ents - q->rx_have);

				if (n < 0) {
					xenbus_device_fatal(&dev->xb, "rx ring: bogus request index");
					return;
				}
				net_journal_taken(dev, q->jrx, &q->rx, q->rxreqs + q->rx_have,
						  sizeof(*q->rxreqs), (unsigned int)n);
				q->rx_have += (unsigned int)n;
			}
			if (q->rx_have - used < need)
				break;
			/* Data slot j goes to request used + j, after the extra slot for GSO. */
			for (uint32_t off = 0, j = 0; off < f->len; off += NET_PAGE_SIZE, j++) {
				const struct netif_rx_request *r =
					&q->rxreqs[used + j + (j && xgso[nf] ? 1 : 0)];
				struct hv_copy_seg *s = &q->rxsegs[nseg++];

				memset(s, 0, sizeof(*s));
				s->source.virt = f->data + off;
				s->dest.foreign.ref = r->gref;
				s->dest.foreign.domid = (uint16_t)dev->xb.otherend_id;
				s->len = (uint16_t)(f->len - off < NET_PAGE_SIZE ? f->len - off
										 : NET_PAGE_SIZE);
				s->flags = HV_COPY_DEST_GREF;
			}
			used += need;
			nf++;
		}
		if (nf == 0) {
			/* Out of buffers: ask for a notify when more are posted (rx-notify). */
			if (ring_back_final_check(&q->rx))
				continue;
			break;
		}
		if (hv_gnt_copy(dev->gnt, nseg, q->rxsegs) != 0)
			for (unsigned int k = 0; k < nseg; k++)
				q->rxsegs[k].status = HV_GNTST_GENERAL_ERROR;
		used = 0;
		for (unsigned int i = 0; i < nf; i++) {
			struct net_frame *fr = rxq_pop(q);
			unsigned int ndata = (fr->len + NET_PAGE_SIZE - 1) / NET_PAGE_SIZE;
			uint16_t flags0 = 0;

			if (fr->h.flags & VNET_F_NEEDS_CSUM)
				flags0 = NETRXF_csum_blank | NETRXF_data_validated;
			else if (fr->h.flags & VNET_F_DATA_VALID)
				flags0 = NETRXF_data_validated;
			if (xgso[i])
				flags0 |= NETRXF_extra_info;
			for (unsigned int j = 0; j < ndata; j++) {
				const struct netif_rx_request *r = &q->rxreqs[used++];
				struct netif_rx_response rsp;
				const struct hv_copy_seg *s = &q->rxsegs[seg++];

				memset(&rsp, 0, sizeof(rsp));
				rsp.id = r->id;
				rsp.flags = (uint16_t)((j == 0 ? flags0 : 0) |
						       (j + 1 < ndata ? NETRXF_more_data : 0));
				rsp.status = (int16_t)s->len;
				if (s->status != HV_GNTST_OKAY) {
					rsp.status = NETIF_RSP_ERROR;
					q->stats.rx_copy_errors++;
				}
				ring_back_put(&q->rx, &rsp, sizeof(rsp));
				if (j == 0 && xgso[i]) {
					struct netif_extra_info ex;

					memset(&ex, 0, sizeof(ex));
					ex.type = XEN_NETIF_EXTRA_TYPE_GSO;
					ex.u.gso.size = fr->h.gso_size;
					ex.u.gso.type = xgso[i];
					used++;
					ring_back_put(&q->rx, &ex, sizeof(ex));
				}
			}
			q->stats.rx_packets++;
			q->stats.rx_bytes += fr->len;
			q->stats.rx_gso += xgso[i] != 0;
			free(fr);
		}
		memmove(q->rxreqs, q->rxreqs + used, (q->rx_have - used) * sizeof(*q->rxreqs));
		q->rx_have -= used;
		rx_push(q);
		q->rx_last_progress_ms = now_ms();
		if (q->stalled) {
			q->stalled = false;
			log_info(q->name, "rx: guest posting buffers again: carrier on");
			carrier(dev, true);
		}
	}
	if (!q->rxq_head && (q->rx_have || ring_back_unconsumed(&q->rx)))
		ev_timer_stop(dev->xb.loop, &q->rx_timer);
	tap_resume(q);
}

void net_rx_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct net_queue *q = w->data;
	struct net_dev *dev = q->dev;
	uint64_t now = now_ms();

	/* xenvif_rx_queue_drop_expired: nothing waits for buffers forever. */
	while (q->rxq_head && now - q->rxq_head->t_ms >= dev->cfg.rx_drain_ms) {
		free(rxq_pop(q));
		q->stats.rx_dropped_expired++;
	}
	if (!q->stalled && now - q->rx_last_progress_ms >= dev->cfg.rx_stall_ms &&
	    (q->rxq_head || (q->rx_have == 0 && ring_back_unconsumed(&q->rx) == 0))) {
		q->stalled = true;
		q->stats.rx_stalls++;
		log_guest(q->name, "rx: guest posted no buffers for %u ms: carrier off",
			  dev->cfg.rx_stall_ms);
		carrier(dev, false);
	}
	/* As Linux's rx_queue_stalled: a guest with no buffers is watched until declared
	 * stalled even if every waiting frame has expired meanwhile. */
	if (q->rxq_head ||
	    (!q->stalled && q->rx_have == 0 && ring_back_unconsumed(&q->rx) == 0))
		timer_arm(q);
	tap_resume(q);
}
