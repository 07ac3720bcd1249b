/*
 * netfront — userspace netif frontend for simulated guests (see netfront.h).
 * Guest memory, grants and event channels come from the shim's guest library; the
 * ring engine is ring/. Counterpart: Linux drivers/net/xen-netfront.c.
 */
#include "frontend-shim/netfront.h"

#include "frontend-shim/front_xs.h"

#include "backends/net/parse.h"
#include "ring/ring.h"
#include "xenbus/xs.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>

#define PAGE 4096u
#define NF_RING 256u          /* entries of a one-page tx and rx ring */
#define NF_RAW_PAGES 8u
#define NF_RAW_ID_BASE 1024u
#define NF_ASM_MAX (65536u + PAGE)  /* largest frame a chain can assemble */
#define NF_COPY_MAX 2048u           /* smaller frames are copied out of the assembly buffer */

struct nf_frame {
	struct nf_frame *next;
	struct netfront_meta m;
	unsigned int q;
	uint32_t len;
	uint8_t data[];
};

struct nf_queue {
	struct ring_front tx, rx;
	uint32_t tx_frame, rx_frame;   /* ring pages */
	int tx_gref, rx_gref;
	int tx_port, rx_port;          /* equal unless split */
	uint32_t txbuf_frame, rxbuf_frame; /* NF_RING pages each */
	int txbuf_gref[NF_RING], rxbuf_gref[NF_RING];
	uint16_t tx_free[NF_RING];
	unsigned int tx_nfree;
	/* RX reassembly in progress, into asm_f->data (NF_ASM_MAX bytes) */
	struct nf_frame *asm_f;
	uint8_t *asm_buf;                   /* asm_f->data */
	uint32_t asm_len;
	struct netfront_meta asm_m;
	bool asm_active, asm_extra, asm_err;
};

struct netfront {
	struct shim_guest *g;
	struct xs_handle *xs;
	unsigned int devid, backend_id;
	char fe[XENBUS_PATH_MAX], be[XENBUS_PATH_MAX];
	struct netfront_opts o;
	bool sg, gso4, gso6, split, ctrl;
	unsigned int nq;
	struct nf_queue *queues;
	/* ctrl ring */
	struct ring_front cring;
	uint32_t cring_frame, cbuf_frame;
	int cring_gref, cbuf_gref, cport;
	uint16_t ctrl_id;
	/* raw pages for hostile tests */
	uint32_t raw_frame;
	unsigned int raw_next;
	int raw_gref[NF_RAW_PAGES];
	struct nf_frame *rxq_head, *rxq_tail;
	unsigned int rxq_n;
	struct netfront_stats st;
	bool connected;
};

void netfront_opts_default(struct netfront_opts *o)
{
	*o = (struct netfront_opts){
		.queues = 1, .sg = true, .gso4 = true, .gso6 = true, .csum = true, .csum6 = true,
		.split_evtchn = true, .ctrl_ring = true, .mcast_ctrl = false, .timeout_ms = 10000,
	};
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int wait_backend_state(struct netfront *nf, unsigned int want_mask)
{
	return front_xs_wait_state(nf->xs, nf->be, want_mask, nf->o.timeout_ms, NULL);
}

static bool be_bool(struct netfront *nf, const char *key)
{
	bool v = false;

	xenbus_read_bool(nf->xs, XBT_NULL, nf->be, key, false, &v);
	return v;
}

static int grant(struct netfront *nf, uint32_t frame, bool ro)
{
	return shim_guest_grant(nf->g, frame, nf->backend_id, ro);
}

static void post_rx(struct nf_queue *q, unsigned int n)
{
	/* Buffer i always sits in ring slot i (mod size): ids double as slot numbers. */
	for (unsigned int k = 0; k < n; k++) {
		uint16_t id = (uint16_t)(q->rx.req_prod_pvt & (NF_RING - 1));
		struct netif_rx_request r = { .id = id, .gref = (grant_ref_t)q->rxbuf_gref[id] };

		ring_front_put(&q->rx, &r, sizeof(r));
	}
}

static int setup_queue(struct netfront *nf, struct nf_queue *q)
{
	int rc;

	q->tx_port = q->rx_port = -1;
	rc = shim_guest_page_alloc(nf->g, 2, &q->tx_frame);
	rc = rc ?: shim_guest_page_alloc(nf->g, NF_RING, &q->txbuf_frame);
	rc = rc ?: shim_guest_page_alloc(nf->g, NF_RING, &q->rxbuf_frame);
	if (rc)
		return rc;
	q->rx_frame = q->tx_frame + 1;
	rc = ring_front_init(&q->tx, shim_guest_frame_ptr(nf->g, q->tx_frame), PAGE,
			     sizeof(union netif_tx_sring_entry));
	rc = rc ?: ring_front_init(&q->rx, shim_guest_frame_ptr(nf->g, q->rx_frame), PAGE,
				   sizeof(union netif_rx_sring_entry));
	if (rc)
		return rc;
	if ((q->tx_gref = grant(nf, q->tx_frame, false)) < 0)
		return q->tx_gref;
	if ((q->rx_gref = grant(nf, q->rx_frame, false)) < 0)
		return q->rx_gref;
	for (unsigned int i = 0; i < NF_RING; i++) {
		/* Backends only copy: read-only for TX, writable for RX. */
		if ((q->txbuf_gref[i] = grant(nf, q->txbuf_frame + i, true)) < 0)
			return q->txbuf_gref[i];
		if ((q->rxbuf_gref[i] = grant(nf, q->rxbuf_frame + i, false)) < 0)
			return q->rxbuf_gref[i];
		q->tx_free[q->tx_nfree++] = (uint16_t)i;
	}
	q->asm_f = malloc(sizeof(*q->asm_f) + NF_ASM_MAX);
	if (!q->asm_f)
		return -ENOMEM;
	q->asm_buf = q->asm_f->data;
	rc = shim_guest_evtchn_alloc_unbound(nf->g, nf->backend_id);
	if (rc < 0)
		return rc;
	q->tx_port = q->rx_port = rc;
	if (nf->split) {
		rc = shim_guest_evtchn_alloc_unbound(nf->g, nf->backend_id);
		if (rc < 0)
			return rc;
		q->rx_port = rc;
	}
	post_rx(q, NF_RING);
	ring_front_push(&q->rx);
	return 0;
}

static int write_fe_keys(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
	struct netfront *nf = arg;
	int rc = 0;

	for (unsigned int i = 0; i < nf->nq && !rc; i++) {
		struct nf_queue *q = &nf->queues[i];
		char dir[XENBUS_PATH_MAX], sub[24];

		snprintf(sub, sizeof(sub), "queue-%u", i);
		rc = xenbus_path(dir, sizeof(dir), nf->fe, nf->nq > 1 ? sub : NULL);
		rc = rc ?: xenbus_printf(xs, t, dir, "tx-ring-ref", "%d", q->tx_gref);
		rc = rc ?: xenbus_printf(xs, t, dir, "rx-ring-ref", "%d", q->rx_gref);
		if (nf->split) {
			rc = rc ?: xenbus_printf(xs, t, dir, "event-channel-tx", "%d", q->tx_port);
			rc = rc ?: xenbus_printf(xs, t, dir, "event-channel-rx", "%d", q->rx_port);
		} else {
			rc = rc ?: xenbus_printf(xs, t, dir, "event-channel", "%d", q->tx_port);
		}
	}
	if (nf->nq > 1)
		rc = rc ?: xenbus_printf(xs, t, nf->fe, "multi-queue-num-queues", "%u", nf->nq);
	if (nf->ctrl) {
		rc = rc ?: xenbus_printf(xs, t, nf->fe, "ctrl-ring-ref", "%d", nf->cring_gref);
		rc = rc ?: xenbus_printf(xs, t, nf->fe, "event-channel-ctrl", "%d", nf->cport);
	}
	rc = rc ?: xenbus_write(xs, t, nf->fe, "request-rx-copy", "1");
	rc = rc ?: xenbus_write(xs, t, nf->fe, "feature-rx-notify", "1");
	rc = rc ?: xenbus_printf(xs, t, nf->fe, "feature-sg", "%d", nf->sg);
	rc = rc ?: xenbus_printf(xs, t, nf->fe, "feature-gso-tcpv4", "%d", nf->gso4);
	rc = rc ?: xenbus_printf(xs, t, nf->fe, "feature-gso-tcpv6", "%d", nf->gso6);
	rc = rc ?: xenbus_printf(xs, t, nf->fe, "feature-no-csum-offload", "%d", !nf->o.csum);
	rc = rc ?: xenbus_printf(xs, t, nf->fe, "feature-ipv6-csum-offload", "%d", nf->o.csum6);
	if (nf->o.mcast_ctrl)
		rc = rc ?: xenbus_write(xs, t, nf->fe, "request-multicast-control", "1");
	return rc;
}

int netfront_open(struct netfront **out, struct shim_guest *g, unsigned int devid,
		  const struct netfront_opts *opts)
{
	struct netfront *nf = calloc(1, sizeof(*nf));
	unsigned int be_q = 1;
	int rc;

	if (!nf)
		return -ENOMEM;
	nf->g = g;
	nf->devid = devid;
	nf->o = *opts;
	nf->cport = -1;
	if (!nf->o.timeout_ms)
		nf->o.timeout_ms = 10000;
	rc = front_xs_open(g, "vif", devid, &nf->xs, nf->fe, nf->be, &nf->backend_id);
	if (rc) {
		free(nf);
		return rc;
	}
	rc = wait_backend_state(nf, 1u << XenbusStateInitWait | 1u << XenbusStateConnected);
	if (rc)
		goto fail;
	if (!be_bool(nf, "feature-rx-copy")) {
		rc = -EOPNOTSUPP;
		goto fail;
	}
	nf->sg = nf->o.sg && be_bool(nf, "feature-sg");
	nf->gso4 = nf->sg && nf->o.gso4 && be_bool(nf, "feature-gso-tcpv4");
	nf->gso6 = nf->sg && nf->o.gso6 && be_bool(nf, "feature-gso-tcpv6");
	nf->split = nf->o.split_evtchn && be_bool(nf, "feature-split-event-channels");
	nf->ctrl = nf->o.ctrl_ring && be_bool(nf, "feature-ctrl-ring");
	xenbus_read_uint_default(nf->xs, XBT_NULL, nf->be, "multi-queue-max-queues", 1, 64, 1,
				 &be_q);
	nf->nq = nf->o.queues < be_q ? nf->o.queues : be_q;
	if (nf->nq == 0)
		nf->nq = 1;
	nf->queues = calloc(nf->nq, sizeof(*nf->queues));
	if (!nf->queues) {
		rc = -ENOMEM;
		goto fail;
	}
	for (unsigned int i = 0; i < nf->nq; i++) {
		rc = setup_queue(nf, &nf->queues[i]);
		if (rc)
			goto fail;
	}
	if (nf->ctrl) {
		rc = shim_guest_page_alloc(nf->g, 2, &nf->cring_frame);
		rc = rc ?: ring_front_init(&nf->cring, shim_guest_frame_ptr(g, nf->cring_frame), PAGE,
					   sizeof(union xen_netif_ctrl_sring_entry));
		if (rc)
			goto fail;
		nf->cbuf_frame = nf->cring_frame + 1;
		if ((rc = nf->cring_gref = grant(nf, nf->cring_frame, false)) < 0 ||
		    (rc = nf->cbuf_gref = grant(nf, nf->cbuf_frame, true)) < 0 ||
		    (rc = nf->cport = shim_guest_evtchn_alloc_unbound(g, nf->backend_id)) < 0)
			goto fail;
	}
	rc = shim_guest_page_alloc(nf->g, NF_RAW_PAGES, &nf->raw_frame);
	if (rc)
		goto fail;
	rc = xenbus_transaction(nf->xs, write_fe_keys, nf, 10);
	/* As Linux netfront: straight to Connected once the keys are written. */
	rc = rc ?: xenbus_switch_state(nf->xs, XBT_NULL, nf->fe, XenbusStateConnected);
	rc = rc ?: wait_backend_state(nf, 1u << XenbusStateConnected);
	if (rc)
		goto fail;
	nf->connected = true;
	*out = nf;
	return 0;
fail:
	netfront_close(nf);
	return rc;
}

static void grant_end(struct netfront *nf, int ref)
{
	if (ref <= 0)
		return;
	for (int i = 0; i < 1000; i++) {
		if (shim_guest_revoke(nf->g, (uint32_t)ref) != -EBUSY)
			return;
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
}

void netfront_close(struct netfront *nf)
{
	if (!nf)
		return;
	xenbus_switch_state(nf->xs, XBT_NULL, nf->fe, XenbusStateClosing);
	wait_backend_state(nf, 1u << XenbusStateClosing | 1u << XenbusStateClosed |
				       1u << XenbusStateUnknown | 1u << XenbusStateInitWait);
	for (unsigned int i = 0; nf->queues && i < nf->nq; i++) {
		struct nf_queue *q = &nf->queues[i];

		grant_end(nf, q->tx_gref);
		grant_end(nf, q->rx_gref);
		for (unsigned int k = 0; k < NF_RING; k++) {
			grant_end(nf, q->txbuf_gref[k]);
			grant_end(nf, q->rxbuf_gref[k]);
		}
		if (q->tx_port > 0)
			shim_guest_evtchn_close(nf->g, (unsigned int)q->tx_port);
		if (q->rx_port > 0 && q->rx_port != q->tx_port)
			shim_guest_evtchn_close(nf->g, (unsigned int)q->rx_port);
		if (q->tx_frame) {
			shim_guest_page_free(nf->g, q->tx_frame, 2);
			shim_guest_page_free(nf->g, q->txbuf_frame, NF_RING);
			shim_guest_page_free(nf->g, q->rxbuf_frame, NF_RING);
		}
		free(q->asm_f);
	}
	free(nf->queues);
	grant_end(nf, nf->cring_gref);
	grant_end(nf, nf->cbuf_gref);
	for (unsigned int k = 0; k < NF_RAW_PAGES; k++)
		grant_end(nf, nf->raw_gref[k]);
	if (nf->cport > 0)
		shim_guest_evtchn_close(nf->g, (unsigned int)nf->cport);
	while (nf->rxq_head) {
		struct nf_frame *f = nf->rxq_head;

		nf->rxq_head = f->next;
		free(f);
	}
	xenbus_switch_state(nf->xs, XBT_NULL, nf->fe, XenbusStateClosed);
	xs_close(nf->xs);
	free(nf);
}

unsigned int netfront_queues(const struct netfront *nf)
{
	return nf->nq;
}

bool netfront_has_ctrl(const struct netfront *nf)
{
	return nf->ctrl;
}

const struct netfront_stats *netfront_stats(const struct netfront *nf)
{
	return &nf->st;
}

bool netfront_backend_connected(struct netfront *nf)
{
	int st = -1;

	return xenbus_read_state(nf->xs, XBT_NULL, nf->be, &st) == 0 && st == XenbusStateConnected;
}

static void notify(struct netfront *nf, int port)
{
	shim_guest_evtchn_notify(nf->g, (unsigned int)port);
}

/* ---- TX ---- */

int netfront_send(struct netfront *nf, unsigned int qi, const void *frame, size_t len,
		  const struct netfront_meta *m)
{
	struct nf_queue *q = &nf->queues[qi % nf->nq];
	unsigned int ndata = (unsigned int)((len + PAGE - 1) / PAGE);
	bool gso = m && m->gso_type;
	const uint8_t *p = frame;

	if (len < 14 || len > 65535 || (ndata > 1 && !nf->sg))
		return -EINVAL;
	if (gso && !((m->gso_type == XEN_NETIF_GSO_TYPE_TCPV4 && nf->gso4) ||
		     (m->gso_type == XEN_NETIF_GSO_TYPE_TCPV6 && nf->gso6)))
		return -EINVAL;
	if (ring_front_free(&q->tx) < ndata + gso || q->tx_nfree < ndata)
		return -EAGAIN;
	for (unsigned int i = 0; i < ndata; i++) {
		uint16_t id = q->tx_free[--q->tx_nfree];
		size_t chunk = len - (size_t)i * PAGE < PAGE ? len - (size_t)i * PAGE : PAGE;
		struct netif_tx_request r = {
			.gref = (grant_ref_t)q->txbuf_gref[id],
			.offset = 0,
			.id = id,
			.size = (uint16_t)(i == 0 ? len : chunk),
		};

		memcpy(shim_guest_frame_ptr(nf->g, q->txbuf_frame + id), p + (size_t)i * PAGE, chunk);
		if (i + 1 < ndata)
			r.flags |= NETTXF_more_data;
		if (i == 0 && m && m->csum_blank)
			r.flags |= NETTXF_csum_blank | NETTXF_data_validated;
		else if (i == 0 && m && m->data_validated)
			r.flags |= NETTXF_data_validated;
		if (i == 0 && gso)
			r.flags |= NETTXF_extra_info;
		ring_front_put(&q->tx, &r, sizeof(r));
		if (i == 0 && gso) {
			union netif_tx_sring_entry e;

			memset(&e, 0, sizeof(e));
			e.req.gref = 0;
			{
				struct netif_extra_info *x = (struct netif_extra_info *)&e;

				x->type = XEN_NETIF_EXTRA_TYPE_GSO;
				x->u.gso.size = m->gso_size;
				x->u.gso.type = m->gso_type;
			}
			ring_front_put(&q->tx, &e, sizeof(e));
		}
	}
	nf->st.tx_frames++;
	if (ring_front_push(&q->tx))
		notify(nf, q->tx_port);
	return 0;
}

int netfront_raw_grant(struct netfront *nf, const void *data, size_t len)
{
	unsigned int k = nf->raw_next++ % NF_RAW_PAGES;

	if (len > PAGE)
		return -EINVAL;
	memcpy(shim_guest_frame_ptr(nf->g, nf->raw_frame + k), data, len);
	if (!nf->raw_gref[k]) {
		int r = grant(nf, nf->raw_frame + k, true);

		if (r < 0)
			return r;
		nf->raw_gref[k] = r;
	}
	return nf->raw_gref[k];
}

int netfront_raw_tx(struct netfront *nf, unsigned int qi, const struct netif_tx_request *reqs,
		    unsigned int n)
{
	struct nf_queue *q = &nf->queues[qi % nf->nq];

	if (ring_front_free(&q->tx) < n)
		return -EAGAIN;
	for (unsigned int i = 0; i < n; i++)
		ring_front_put(&q->tx, &reqs[i], sizeof(reqs[i]));
	if (ring_front_push(&q->tx))
		notify(nf, q->tx_port);
	return 0;
}

static int tx_gc(struct netfront *nf, struct nf_queue *q)
{
	struct netif_tx_response rsp[64];
	int n;

	do {
		while ((n = ring_front_take(&q->tx, rsp, sizeof(rsp[0]), 64)) > 0) {
			for (int i = 0; i < n; i++) {
				if (rsp[i].status == NETIF_RSP_NULL) {
					nf->st.tx_rsp_null++;
					continue;
				}
				if (rsp[i].status == NETIF_RSP_OKAY)
					nf->st.tx_rsp_okay++;
				else
					nf->st.tx_rsp_error++;
				if (rsp[i].id < NF_RING && q->tx_nfree < NF_RING)
					q->tx_free[q->tx_nfree++] = rsp[i].id;
			}
		}
		if (n < 0)
			return n;
	} while (ring_front_final_check(&q->tx));
	return 0;
}

/* ---- RX ---- */

static void rx_deliver(struct netfront *nf, struct nf_queue *q, unsigned int qi)
{
	struct nf_frame *f;

	if (q->asm_err) {
		nf->st.rx_errors++;
		return;
	}
	if (q->asm_len <= NF_COPY_MAX) {
		f = malloc(sizeof(*f) + q->asm_len);
		if (!f)
			return;
		memcpy(f->data, q->asm_buf, q->asm_len);
	} else {
		/* Big frames (GSO) change hands instead of being copied again: the
		 * assembly buffer becomes the frame and a fresh one takes its place. */
		struct nf_frame *next = malloc(sizeof(*next) + NF_ASM_MAX);

		if (!next)
			return;
		f = q->asm_f;
		q->asm_f = next;
		q->asm_buf = next->data;
	}
	f->next = NULL;
	f->m = q->asm_m;
	f->q = qi;
	f->len = q->asm_len;
	if (nf->rxq_tail)
		nf->rxq_tail->next = f;
	else
		nf->rxq_head = f;
	nf->rxq_tail = f;
	nf->rxq_n++;
	nf->st.rx_frames++;
}

static int rx_take(struct netfront *nf, struct nf_queue *q, unsigned int qi)
{
	union netif_rx_sring_entry e[64];
	unsigned int reposted = 0;
	int n;

	do {
		while ((n = ring_front_take(&q->rx, e, sizeof(e[0]), 64)) > 0) {
			/* Index of the first response taken: rsp_cons already moved past them. */
			uint32_t idx = q->rx.rsp_cons - (uint32_t)n;

			for (int i = 0; i < n; i++, idx++) {
				const struct netif_rx_response *r = &e[i].rsp;
				uint16_t slot = (uint16_t)(idx & (NF_RING - 1));

				if (q->asm_extra) {
					const struct netif_extra_info *x = (const void *)&e[i];

					if (x->type == XEN_NETIF_EXTRA_TYPE_GSO) {
						q->asm_m.gso_type = x->u.gso.type;
						q->asm_m.gso_size = x->u.gso.size;
					}
					q->asm_extra = x->flags & XEN_NETIF_EXTRA_FLAG_MORE;
					continue;
				}
				if (r->id != slot)
					nf->st.rx_slot_mismatch++;
				if (!q->asm_active) {
					q->asm_active = true;
					q->asm_len = 0;
					q->asm_err = false;
					memset(&q->asm_m, 0, sizeof(q->asm_m));
					q->asm_m.csum_blank = r->flags & NETRXF_csum_blank;
					q->asm_m.data_validated = r->flags & NETRXF_data_validated;
					q->asm_extra = r->flags & NETRXF_extra_info;
				}
				if (r->status < 0 || r->offset + r->status > (int)PAGE ||
				    q->asm_len + (uint32_t)r->status > NF_ASM_MAX) {
					q->asm_err = true;
				} else {
					memcpy(q->asm_buf + q->asm_len,
					       (uint8_t *)shim_guest_frame_ptr(nf->g, q->rxbuf_frame + slot) +
						       r->offset,
					       (size_t)r->status);
					q->asm_len += (uint32_t)r->status;
				}
				if (!(r->flags & NETRXF_more_data)) {
					rx_deliver(nf, q, qi);
					q->asm_active = false;
				}
			}
			post_rx(q, (unsigned int)n);
			reposted += (unsigned int)n;
		}
		if (n < 0)
			return n;
		if (reposted && ring_front_push(&q->rx))
			notify(nf, q->rx_port);
		reposted = 0;
	} while (ring_front_final_check(&q->rx));
	return 0;
}

int netfront_poll(struct netfront *nf, int timeout_ms)
{
	struct pollfd pfd = { .fd = shim_guest_evtchn_fd(nf->g), .events = POLLIN };
	int port, rc;

	if (!nf->rxq_n && timeout_ms)
		poll(&pfd, 1, timeout_ms);
	while ((port = shim_guest_evtchn_pending(nf->g)) >= 0)
		shim_guest_evtchn_unmask(nf->g, (unsigned int)port);
	for (unsigned int i = 0; i < nf->nq; i++) {
		rc = tx_gc(nf, &nf->queues[i]);
		rc = rc ?: rx_take(nf, &nf->queues[i], i);
		if (rc)
			return rc;
	}
	return (int)nf->rxq_n;
}

int netfront_recv(struct netfront *nf, void *buf, size_t cap, struct netfront_meta *m,
		  unsigned int *q_out)
{
	struct nf_frame *f = nf->rxq_head;
	int len;

	if (!f)
		return -EAGAIN;
	nf->rxq_head = f->next;
	if (!nf->rxq_head)
		nf->rxq_tail = NULL;
	nf->rxq_n--;
	memcpy(buf, f->data, f->len < cap ? f->len : cap);
	if (m)
		*m = f->m;
	if (q_out)
		*q_out = f->q;
	len = (int)f->len;
	free(f);
	return len;
}

/* ---- ctrl ring and multicast ---- */

int netfront_ctrl_buf(struct netfront *nf, const void *data, size_t len)
{
	if (!nf->ctrl)
		return -EOPNOTSUPP;
	if (len > PAGE)
		return -EINVAL;
	memcpy(shim_guest_frame_ptr(nf->g, nf->cbuf_frame), data, len);
	return nf->cbuf_gref;
}

int netfront_ctrl(struct netfront *nf, uint16_t type, uint32_t d0, uint32_t d1, uint32_t d2,
		  uint32_t *status, uint32_t *data)
{
	struct xen_netif_ctrl_request req = { .id = ++nf->ctrl_id, .type = type,
					      .data = { d0, d1, d2 } };
	struct xen_netif_ctrl_response rsp;
	uint64_t deadline = now_ms() + (uint64_t)nf->o.timeout_ms;
	int rc;

	if (!nf->ctrl)
		return -EOPNOTSUPP;
	rc = ring_front_put(&nf->cring, &req, sizeof(req));
	if (rc)
		return rc;
	if (ring_front_push(&nf->cring))
		notify(nf, nf->cport);
	while (now_ms() < deadline) {
		int n = ring_front_take(&nf->cring, &rsp, sizeof(rsp), 1);

		if (n < 0)
			return n;
		if (n == 1) {
			if (rsp.id != req.id)
				continue;
			*status = rsp.status;
			if (data)
				*data = rsp.data;
			return 0;
		}
		rc = netfront_poll(nf, 10);
		if (rc < 0)
			return rc;
	}
	return -ETIMEDOUT;
}

int netfront_mcast(struct netfront *nf, bool add, const uint8_t mac[6])
{
	struct nf_queue *q = &nf->queues[0];
	uint64_t before = nf->st.tx_rsp_okay, before_err = nf->st.tx_rsp_error;
	uint64_t deadline = now_ms() + (uint64_t)nf->o.timeout_ms;
	union netif_tx_sring_entry e[2];
	struct netif_extra_info *x = (struct netif_extra_info *)&e[1];
	uint16_t id;
	int rc;

	if (ring_front_free(&q->tx) < 2 || q->tx_nfree < 1)
		return -EAGAIN;
	id = q->tx_free[--q->tx_nfree];
	memset(e, 0, sizeof(e));
	/* A dummy first slot carrying only the extra (as Linux netfront's mcast_add). */
	e[0].req.gref = (grant_ref_t)q->txbuf_gref[id];
	e[0].req.id = id;
	e[0].req.size = 0;
	e[0].req.flags = NETTXF_extra_info;
	x->type = add ? XEN_NETIF_EXTRA_TYPE_MCAST_ADD : XEN_NETIF_EXTRA_TYPE_MCAST_DEL;
	memcpy(x->u.mcast.addr, mac, 6);
	ring_front_put(&q->tx, &e[0], sizeof(e[0]));
	ring_front_put(&q->tx, &e[1], sizeof(e[1]));
	if (ring_front_push(&q->tx))
		notify(nf, q->tx_port);
	while (now_ms() < deadline) {
		rc = netfront_poll(nf, 10);
		if (rc < 0)
			return rc;
		if (nf->st.tx_rsp_okay != before)
			return NETIF_RSP_OKAY;
		if (nf->st.tx_rsp_error != before_err)
			return NETIF_RSP_ERROR;
	}
	return -ETIMEDOUT;
}

/* ---- tap pump ---- */

int netfront_tap_pump(struct netfront *nf, int tapfd, volatile bool *stop)
{
	static __thread uint8_t buf[sizeof(struct net_vnet_hdr) + 65536 + 64];
	static __thread uint8_t rxbuf[sizeof(struct net_vnet_hdr) + 65536 + 64];
	struct pollfd pfd[2] = {
		{ .fd = tapfd, .events = POLLIN },
		{ .fd = shim_guest_evtchn_fd(nf->g), .events = POLLIN },
	};
	bool pending_tx = false;
	size_t pending_len = 0;
	struct netfront_meta pending_m;

	while (!*stop) {
		int rc;

		pfd[0].events = pending_tx ? 0 : POLLIN;
		poll(pfd, 2, 50);
		rc = netfront_poll(nf, 0);
		if (rc < 0)
			return rc;
		/* Received frames go to the guest's kernel with a virtio-net header. */
		for (;;) {
			struct net_vnet_hdr *h = (struct net_vnet_hdr *)rxbuf;
			struct netfront_meta m;
			int len = netfront_recv(nf, rxbuf + sizeof(*h), 65536 + 64, &m, NULL);

			if (len < 0)
				break;
			memset(h, 0, sizeof(*h));
			if (m.csum_blank || m.gso_type)
				net_csum_setup(rxbuf + sizeof(*h), (size_t)len, false, h);
			else if (m.data_validated)
				h->flags = 2;
			if (m.gso_type) {
				struct net_l4 l4;

				h->gso_type = m.gso_type == XEN_NETIF_GSO_TYPE_TCPV4 ? 1 : 4;
				h->gso_size = m.gso_size;
				if (net_l4_find(rxbuf + sizeof(*h), (size_t)len, &l4) == 0)
					h->hdr_len = (uint16_t)(l4.l4_off + l4.l4_hlen);
			}
			if (write(tapfd, rxbuf, sizeof(*h) + (size_t)len) < 0 && errno != EAGAIN)
				nf->st.rx_errors++;
		}
		/* Frames the guest's kernel sends go out on queue 0; one waits while the ring is full. */
		for (int i = 0; i < 256; i++) {
			struct net_vnet_hdr h;
			uint8_t *frame;

			if (!pending_tx) {
				ssize_t n = read(tapfd, buf, sizeof(buf));

				if (n < (ssize_t)(sizeof(h) + 14))
					break;
				memcpy(&h, buf, sizeof(h));
				memset(&pending_m, 0, sizeof(pending_m));
				pending_m.csum_blank = h.flags & 1;
				pending_m.data_validated = h.flags & 2;
				if ((h.gso_type & 0x7f) == 1)
					pending_m.gso_type = XEN_NETIF_GSO_TYPE_TCPV4;
				else if ((h.gso_type & 0x7f) == 4)
					pending_m.gso_type = XEN_NETIF_GSO_TYPE_TCPV6;
				pending_m.gso_size = h.gso_size;
				pending_len = (size_t)n - sizeof(h);
				pending_tx = true;
			}
			frame = buf + sizeof(h);
			rc = netfront_send(nf, 0, frame, pending_len, &pending_m);
			if (rc == -EAGAIN)
				break;
			pending_tx = false;
		}
	}
	return 0;
}
