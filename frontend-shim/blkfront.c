/*
 * blkfront — userspace blkif frontend for simulated guests (see blkfront.h).
 * Guest memory, grants and event channels come from the shim's guest library; the
 * ring engine is ring/. Counterpart: Linux drivers/block/xen-blkfront.c.
 */
#include "frontend-shim/blkfront.h"

#include "frontend-shim/front_xs.h"

#include "ring/ring.h"
#include "xenbus/xs.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xenstore.h>

#define PAGE 4096u
#define SECT_PER_PAGE 8u

struct bf_queue;

struct bf_slot {
	struct bf_queue *q;
	struct blkfront_io *io;
	uint32_t first_frame;     /* maxseg data frames */
	uint32_t *grefs;          /* per data frame (persistent: granted once) */
	uint32_t ind_frame;       /* indirect descriptor frames (8) */
	uint32_t ind_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
	unsigned int nsegs, nind; /* grants in use by the current request */
	struct bf_slot *next_free;
};

struct bf_queue {
	struct blkfront *bf;
	unsigned int idx;
	struct ring_front ring;
	uint32_t ring_frame;
	uint32_t ring_grefs[1u << RING_MAX_ORDER];
	int port;
	struct bf_slot *slots;
	struct bf_slot *free;
	unsigned int nslots, inflight, unpushed;
};

struct blkfront {
	struct shim_guest *g;
	struct xs_handle *xs;
	unsigned int devid, backend_id;
	char fe[XENBUS_PATH_MAX], be[XENBUS_PATH_MAX];
	struct blkfront_opts o;
	struct blkfront_info info;
	struct bf_queue *queues;
	unsigned int nq;
	unsigned int maxseg;      /* segments per request we use */
	size_t req_size, rsp_size, ent_size;
	bool connected;
};

void blkfront_opts_default(struct blkfront_opts *o)
{
	*o = (struct blkfront_opts){
		.queues = 1,
		.ring_order = 0,
		.max_indirect = 32,
		.persistent = true,
		.large_sector = false,
		.abi = BLKIF_ABI_NATIVE,
		.max_inflight = 0,
		.timeout_ms = 10000,
	};
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- xenstore handshake ---- */

static int wait_backend_state(struct blkfront *bf, unsigned int want_mask, int *state_out)
{
	return front_xs_wait_state(bf->xs, bf->be, want_mask, bf->o.timeout_ms, state_out);
}

static unsigned int read_be_uint(struct blkfront *bf, const char *key, unsigned int def)
{
	unsigned int v;

	if (xenbus_read_uint_default(bf->xs, XBT_NULL, bf->be, key, 0, UINT32_MAX, def, &v))
		return def;
	return v;
}

static int write_fe_keys(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
	struct blkfront *bf = arg;
	int rc = 0;

	if (bf->info.ring_order)
		rc = xenbus_printf(xs, t, bf->fe, "ring-page-order", "%u", bf->info.ring_order);
	if (bf->nq > 1)
		rc = rc ?: xenbus_printf(xs, t, bf->fe, "multi-queue-num-queues", "%u", bf->nq);
	for (unsigned int i = 0; i < bf->nq && !rc; i++) {
		struct bf_queue *q = &bf->queues[i];
		char dir[XENBUS_PATH_MAX], sub[24];

		snprintf(sub, sizeof(sub), "queue-%u", i);
		rc = xenbus_path(dir, sizeof(dir), bf->fe, bf->nq > 1 ? sub : NULL);
		for (unsigned int p = 0; p < (1u << bf->info.ring_order) && !rc; p++) {
			char key[24];

			if (bf->info.ring_order == 0)
				snprintf(key, sizeof(key), "ring-ref");
			else
				snprintf(key, sizeof(key), "ring-ref%u", p);
			rc = xenbus_printf(xs, t, dir, key, "%u", q->ring_grefs[p]);
		}
		rc = rc ?: xenbus_printf(xs, t, dir, "event-channel", "%d", q->port);
	}
	rc = rc ?: xenbus_write(xs, t, bf->fe, "protocol",
				bf->o.abi == BLKIF_ABI_X86_32 ? XEN_IO_PROTO_ABI_X86_32
							      : XEN_IO_PROTO_ABI_X86_64);
	rc = rc ?: xenbus_printf(xs, t, bf->fe, "feature-persistent", "%d", bf->o.persistent);
	if (bf->o.large_sector)
		rc = rc ?: xenbus_write(xs, t, bf->fe, "feature-large-sector-size", "1");
	return rc;
}

/* ---- rings, slots, grants ---- */

static int setup_queue(struct blkfront *bf, struct bf_queue *q)
{
	unsigned int pages = 1u << bf->info.ring_order;
	int rc;

	q->bf = bf;
	q->port = -1;
	rc = shim_guest_page_alloc(bf->g, pages, &q->ring_frame);
	if (rc)
		return rc;
	rc = ring_front_init(&q->ring, shim_guest_frame_ptr(bf->g, q->ring_frame),
			     (size_t)pages * PAGE, bf->ent_size);
	if (rc)
		return rc;
	for (unsigned int p = 0; p < pages; p++) {
		rc = shim_guest_grant(bf->g, q->ring_frame + p, bf->backend_id, false);
		if (rc < 0)
			return rc;
		q->ring_grefs[p] = (uint32_t)rc;
	}
	rc = shim_guest_evtchn_alloc_unbound(bf->g, bf->backend_id);
	if (rc < 0)
		return rc;
	q->port = rc;
	return 0;
}

static int setup_slots(struct blkfront *bf, struct bf_queue *q)
{
	unsigned int n = bf->o.max_inflight ? bf->o.max_inflight : 64;

	if (n > q->ring.nr_ents)
		n = q->ring.nr_ents;
	q->slots = calloc(n, sizeof(*q->slots));
	if (!q->slots)
		return -ENOMEM;
	q->nslots = n;
	for (unsigned int i = 0; i < n; i++) {
		struct bf_slot *s = &q->slots[i];
		int rc;

		s->q = q;
		s->grefs = calloc(bf->maxseg, sizeof(*s->grefs));
		if (!s->grefs)
			return -ENOMEM;
		rc = shim_guest_page_alloc(bf->g, bf->maxseg, &s->first_frame);
		rc = rc ?: shim_guest_page_alloc(bf->g, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST,
						 &s->ind_frame);
		if (rc)
			return rc;
		if (bf->info.persistent) {
			/* Granted once, reused by every request (feature-persistent). */
			for (unsigned int k = 0; k < bf->maxseg; k++) {
				rc = shim_guest_grant(bf->g, s->first_frame + k, bf->backend_id,
						      false);
				if (rc < 0)
					return rc;
				s->grefs[k] = (uint32_t)rc;
			}
			for (unsigned int k = 0; k < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; k++) {
				rc = shim_guest_grant(bf->g, s->ind_frame + k, bf->backend_id, false);
				if (rc < 0)
					return rc;
				s->ind_grefs[k] = (uint32_t)rc;
			}
		}
		s->next_free = q->free;
		q->free = s;
	}
	return 0;
}

/* Revoke a grant the backend should have released by now; retry briefly. */
static void grant_end(struct blkfront *bf, uint32_t ref)
{
	for (int i = 0; i < 1000; i++) {
		int rc = shim_guest_revoke(bf->g, ref);

		if (rc != -EBUSY)
			return;
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	fprintf(stderr, "blkfront: grant %u still mapped by the backend: leaking it\n", ref);
}

static void free_queue(struct blkfront *bf, struct bf_queue *q)
{
	unsigned int pages = 1u << bf->info.ring_order;

	for (unsigned int i = 0; i < q->nslots; i++) {
		struct bf_slot *s = &q->slots[i];

		if (bf->info.persistent && s->grefs) {
			for (unsigned int k = 0; k < bf->maxseg; k++)
				if (s->grefs[k])
					grant_end(bf, s->grefs[k]);
			for (unsigned int k = 0; k < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; k++)
				if (s->ind_grefs[k])
					grant_end(bf, s->ind_grefs[k]);
		}
		free(s->grefs);
		if (s->first_frame || s->ind_frame) {
			shim_guest_page_free(bf->g, s->first_frame, bf->maxseg);
			shim_guest_page_free(bf->g, s->ind_frame, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
		}
	}
	free(q->slots);
	q->slots = NULL;
	for (unsigned int p = 0; p < pages; p++)
		if (q->ring_grefs[p])
			grant_end(bf, q->ring_grefs[p]);
	if (q->ring.sring)
		shim_guest_page_free(bf->g, q->ring_frame, pages);
	if (q->port >= 0)
		shim_guest_evtchn_close(bf->g, (unsigned int)q->port);
	q->port = -1;
}

/* ---- requests ---- */

static void to_x86_32(const struct blkif_request *n, void *out)
{
	memset(out, 0, sizeof(struct blkif_x86_32_request));
	if (n->operation == BLKIF_OP_DISCARD) {
		const struct blkif_request_discard *d = (const void *)n;
		struct blkif_x86_32_request_discard *o = out;

		o->operation = d->operation;
		o->flag = d->flag;
		o->handle = d->handle;
		o->id = d->id;
		o->sector_number = d->sector_number;
		o->nr_sectors = d->nr_sectors;
	} else if (n->operation == BLKIF_OP_INDIRECT) {
		const struct blkif_request_indirect *d = (const void *)n;
		struct blkif_x86_32_request_indirect *o = out;

		o->operation = d->operation;
		o->indirect_op = d->indirect_op;
		o->nr_segments = d->nr_segments;
		o->id = d->id;
		o->sector_number = d->sector_number;
		o->handle = d->handle;
		memcpy(o->indirect_grefs, d->indirect_grefs, sizeof(o->indirect_grefs));
	} else {
		struct blkif_x86_32_request *o = out;

		o->operation = n->operation;
		o->nr_segments = n->nr_segments;
		o->handle = n->handle;
		o->id = n->id;
		o->sector_number = n->sector_number;
		memcpy(o->seg, n->seg, sizeof(o->seg));
	}
}

size_t blkfront_max_io(const struct blkfront *bf)
{
	return (size_t)bf->maxseg * PAGE;
}

int blkfront_submit(struct blkfront *bf, struct blkfront_io *io)
{
	struct bf_queue *q = &bf->queues[io->queue % bf->nq];
	struct blkif_request req;
	uint8_t guest[sizeof(struct blkif_request)];
	struct bf_slot *s;
	unsigned int nsegs = 0, slot_idx;
	uint8_t op;
	bool data = io->op == BF_READ || io->op == BF_WRITE || (io->op == BF_BARRIER && io->len);

	if (!bf->connected)
		return -ENOTCONN;
	if (io->op != BF_DISCARD && (io->len % 512 || io->len > blkfront_max_io(bf)))
		return -EINVAL;
	if ((io->op == BF_READ || io->op == BF_WRITE) && io->len == 0)
		return -EINVAL;
	if (!q->free || ring_front_free(&q->ring) == 0)
		return -EAGAIN;
	s = q->free;
	q->free = s->next_free;
	slot_idx = (unsigned int)(s - q->slots);
	s->io = io;
	s->nsegs = s->nind = 0;

	memset(&req, 0, sizeof(req));
	switch (io->op) {
	case BF_READ: op = BLKIF_OP_READ; break;
	case BF_WRITE: op = BLKIF_OP_WRITE; break;
	case BF_FLUSH: op = BLKIF_OP_FLUSH_DISKCACHE; break;
	case BF_BARRIER: op = BLKIF_OP_WRITE_BARRIER; break;
	default: op = BLKIF_OP_DISCARD; break;
	}
	if (data) {
		nsegs = (unsigned int)((io->len + PAGE - 1) / PAGE);
		for (unsigned int k = 0; k < nsegs; k++) {
			size_t len = io->len - (size_t)k * PAGE;

			if (len > PAGE)
				len = PAGE;
			if (io->op != BF_READ)
				memcpy(shim_guest_frame_ptr(bf->g, s->first_frame + k),
				       (const uint8_t *)io->buf + (size_t)k * PAGE, len);
			if (!bf->info.persistent) {
				int ref = shim_guest_grant(bf->g, s->first_frame + k, bf->backend_id,
							   io->op != BF_READ);

				if (ref < 0) {
					for (unsigned int j = 0; j < k; j++)
						grant_end(bf, s->grefs[j]);
					s->next_free = q->free;
					q->free = s;
					return ref;
				}
				s->grefs[k] = (uint32_t)ref;
			}
			s->nsegs = k + 1;
		}
	}
	if (op == BLKIF_OP_DISCARD) {
		struct blkif_request_discard *d = (void *)&req;

		d->operation = op;
		d->flag = io->secure ? BLKIF_DISCARD_SECURE : 0;
		d->handle = (blkif_vdev_t)bf->devid;
		d->id = slot_idx;
		d->sector_number = io->sector;
		d->nr_sectors = io->len / 512;
	} else if (nsegs > BLKIF_MAX_SEGMENTS_PER_REQUEST) {
		struct blkif_request_indirect *d = (void *)&req;
		struct blkif_request_segment *segs =
			shim_guest_frame_ptr(bf->g, s->ind_frame); /* contiguous frames */

		d->operation = BLKIF_OP_INDIRECT;
		d->indirect_op = op;
		d->nr_segments = (uint16_t)nsegs;
		d->id = slot_idx;
		d->sector_number = io->sector;
		d->handle = (blkif_vdev_t)bf->devid;
		for (unsigned int k = 0; k < nsegs; k++) {
			size_t len = io->len - (size_t)k * PAGE;

			segs[k].gref = s->grefs[k];
			segs[k].first_sect = 0;
			segs[k].last_sect = (uint8_t)((len >= PAGE ? PAGE : len) / 512 - 1);
		}
		s->nind = (nsegs + 511) / 512;
		for (unsigned int k = 0; k < s->nind; k++) {
			if (!bf->info.persistent) {
				int ref = shim_guest_grant(bf->g, s->ind_frame + k, bf->backend_id, true);

				if (ref < 0)
					return ref; /* table exhausted: a test setup error */
				s->ind_grefs[k] = (uint32_t)ref;
			}
			d->indirect_grefs[k] = s->ind_grefs[k];
		}
	} else {
		req.operation = op;
		req.nr_segments = (uint8_t)nsegs;
		req.handle = (blkif_vdev_t)bf->devid;
		req.id = slot_idx;
		req.sector_number = io->sector;
		for (unsigned int k = 0; k < nsegs; k++) {
			size_t len = io->len - (size_t)k * PAGE;

			req.seg[k].gref = s->grefs[k];
			req.seg[k].first_sect = 0;
			req.seg[k].last_sect = (uint8_t)((len >= PAGE ? PAGE : len) / 512 - 1);
		}
	}
	if (bf->o.abi == BLKIF_ABI_X86_32) {
		to_x86_32(&req, guest);
		ring_front_put(&q->ring, guest, bf->req_size);
	} else {
		ring_front_put(&q->ring, &req, sizeof(req));
	}
	q->inflight++;
	q->unpushed++;
	return 0;
}

void blkfront_kick(struct blkfront *bf)
{
	for (unsigned int i = 0; i < bf->nq; i++) {
		struct bf_queue *q = &bf->queues[i];

		if (!q->unpushed)
			continue;
		q->unpushed = 0;
		if (ring_front_push(&q->ring))
			shim_guest_evtchn_notify(bf->g, (unsigned int)q->port);
	}
}

static void complete_slot(struct blkfront *bf, struct bf_queue *q, struct bf_slot *s, int status)
{
	struct blkfront_io *io = s->io;

	if (status == BLKIF_RSP_OKAY && io->op == BF_READ) {
		for (unsigned int k = 0; k < s->nsegs; k++) {
			size_t len = io->len - (size_t)k * PAGE;

			memcpy((uint8_t *)io->buf + (size_t)k * PAGE,
			       shim_guest_frame_ptr(bf->g, s->first_frame + k), len > PAGE ? PAGE : len);
		}
	}
	if (!bf->info.persistent) {
		for (unsigned int k = 0; k < s->nsegs; k++)
			grant_end(bf, s->grefs[k]);
		for (unsigned int k = 0; k < s->nind; k++)
			grant_end(bf, s->ind_grefs[k]);
	}
	s->io = NULL;
	s->next_free = q->free;
	q->free = s;
	q->inflight--;
	io->status = status;
	if (io->done)
		io->done(io);
}

static int drain_queue(struct blkfront *bf, struct bf_queue *q)
{
	uint8_t rsps[32 * sizeof(struct blkif_response)]; /* rsp_size-strided */
	int total = 0;

	for (;;) {
		int n = ring_front_take(&q->ring, rsps, bf->rsp_size, 32);

		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			uint64_t id;
			int16_t status;

			if (bf->o.abi == BLKIF_ABI_X86_32) {
				const struct blkif_x86_32_response *r =
					(const void *)(rsps + (size_t)i * bf->rsp_size);

				id = r->id;
				status = r->status;
			} else {
				const struct blkif_response *r =
					(const void *)(rsps + (size_t)i * bf->rsp_size);

				id = r->id;
				status = r->status;
			}
			if (id >= q->nslots || !q->slots[id].io) {
				fprintf(stderr, "blkfront: response for unknown id %llu\n",
					(unsigned long long)id);
				return -EPROTO;
			}
			complete_slot(bf, q, &q->slots[id], status);
			total++;
		}
		if (n == 0 && !ring_front_final_check(&q->ring))
			return total;
	}
}

int blkfront_poll(struct blkfront *bf, int timeout_ms)
{
	struct pollfd pfd = { .fd = shim_guest_evtchn_fd(bf->g), .events = POLLIN };
	int total = 0, port;

	/* Responses may be there already (we may have missed no event: final_check). */
	for (unsigned int i = 0; i < bf->nq; i++) {
		int n = drain_queue(bf, &bf->queues[i]);

		if (n < 0)
			return n;
		total += n;
	}
	if (total || blkfront_inflight(bf) == 0)
		return total;
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return 0;
	while ((port = shim_guest_evtchn_pending(bf->g)) >= 0) {
		shim_guest_evtchn_unmask(bf->g, (unsigned int)port);
		for (unsigned int i = 0; i < bf->nq; i++) {
			if (bf->queues[i].port == port) {
				int n = drain_queue(bf, &bf->queues[i]);

				if (n < 0)
					return n;
				total += n;
			}
		}
	}
	return total;
}

unsigned int blkfront_inflight(const struct blkfront *bf)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < bf->nq; i++)
		n += bf->queues[i].inflight;
	return n;
}

/* ---- synchronous helpers ---- */

static void sync_done(struct blkfront_io *io)
{
	(*(unsigned int *)io->opaque)--;
}

static int run_one(struct blkfront *bf, struct blkfront_io *io)
{
	unsigned int pending = 1;
	uint64_t deadline = now_ms() + (uint64_t)bf->o.timeout_ms;
	int rc;

	io->done = sync_done;
	io->opaque = &pending;
	while ((rc = blkfront_submit(bf, io)) == -EAGAIN) {
		if (blkfront_poll(bf, 100) < 0 || now_ms() > deadline)
			return -EIO;
	}
	if (rc)
		return rc;
	blkfront_kick(bf);
	while (pending) {
		if (blkfront_poll(bf, 100) < 0 || now_ms() > deadline)
			return -ETIMEDOUT;
	}
	if (io->status == BLKIF_RSP_EOPNOTSUPP)
		return -EOPNOTSUPP;
	return io->status == BLKIF_RSP_OKAY ? 0 : -EIO;
}

static int sync_rw(struct blkfront *bf, enum blkfront_op op, uint64_t sector, void *buf,
		   size_t len)
{
	size_t max = blkfront_max_io(bf);

	while (len) {
		size_t n = len > max ? max : len;
		struct blkfront_io io = { .op = op, .sector = sector, .buf = buf, .len = n };
		int rc = run_one(bf, &io);

		if (rc)
			return rc;
		sector += n / 512;
		buf = (uint8_t *)buf + n;
		len -= n;
	}
	return 0;
}

int blkfront_read(struct blkfront *bf, uint64_t sector, void *buf, size_t len)
{
	return sync_rw(bf, BF_READ, sector, buf, len);
}

int blkfront_write(struct blkfront *bf, uint64_t sector, const void *buf, size_t len)
{
	return sync_rw(bf, BF_WRITE, sector, (void *)buf, len);
}

int blkfront_flush(struct blkfront *bf)
{
	struct blkfront_io io = { .op = BF_FLUSH };

	return run_one(bf, &io);
}

int blkfront_barrier_write(struct blkfront *bf, uint64_t sector, const void *buf, size_t len)
{
	struct blkfront_io io = { .op = BF_BARRIER, .sector = sector, .buf = (void *)buf,
				  .len = len };

	return run_one(bf, &io);
}

int blkfront_discard(struct blkfront *bf, uint64_t sector, uint64_t nr_sectors, bool secure)
{
	struct blkfront_io io = { .op = BF_DISCARD, .sector = sector, .len = nr_sectors * 512,
				  .secure = secure };

	return run_one(bf, &io);
}

/* ---- open / close ---- */

static int read_disk_props(struct blkfront *bf)
{
	struct blkfront_info *in = &bf->info;
	uint64_t sectors;
	int rc;

	rc = xenbus_read_u64(bf->xs, XBT_NULL, bf->be, "sectors", 0, UINT64_MAX, &sectors);
	if (rc)
		return rc;
	in->sectors = sectors;
	in->sector_size = read_be_uint(bf, "sector-size", 512);
	in->physical_sector_size = read_be_uint(bf, "physical-sector-size", in->sector_size);
	in->vdisk_info = read_be_uint(bf, "info", 0);
	in->readonly = in->vdisk_info & VDISK_READONLY;
	in->flush = read_be_uint(bf, "feature-flush-cache", 0);
	in->barrier = read_be_uint(bf, "feature-barrier", 0);
	in->discard = read_be_uint(bf, "feature-discard", 0);
	in->discard_secure = read_be_uint(bf, "discard-secure", 0);
	in->discard_granularity = read_be_uint(bf, "discard-granularity", 0);
	return 0;
}

int blkfront_refresh(struct blkfront *bf)
{
	return read_disk_props(bf);
}

int blkfront_open(struct blkfront **out, struct shim_guest *g, unsigned int devid,
		  const struct blkfront_opts *opts)
{
	struct blkfront *bf = calloc(1, sizeof(*bf));
	unsigned int be_order, be_queues, be_ind;
	int rc;

	if (!bf)
		return -ENOMEM;
	bf->g = g;
	bf->devid = devid;
	bf->o = *opts;
	if (!bf->o.timeout_ms)
		bf->o.timeout_ms = 10000;
	rc = front_xs_open(g, "vbd", devid, &bf->xs, bf->fe, bf->be, &bf->backend_id);
	if (rc) {
		free(bf);
		return rc;
	}

	rc = wait_backend_state(bf, 1u << XenbusStateInitWait | 1u << XenbusStateConnected, NULL);
	if (rc)
		goto fail;
	be_order = read_be_uint(bf, "max-ring-page-order", 0);
	be_queues = read_be_uint(bf, "multi-queue-max-queues", 1);
	bf->info.ring_order = bf->o.ring_order < be_order ? bf->o.ring_order : be_order;
	if (bf->info.ring_order > RING_MAX_ORDER)
		bf->info.ring_order = RING_MAX_ORDER;
	bf->nq = bf->o.queues < be_queues ? bf->o.queues : be_queues;
	if (bf->nq == 0)
		bf->nq = 1;
	bf->info.queues = bf->nq;
	bf->ent_size = blkif_abi_ent_size(bf->o.abi);
	bf->req_size = blkif_abi_req_size(bf->o.abi);
	bf->rsp_size = blkif_abi_rsp_size(bf->o.abi);

	bf->queues = calloc(bf->nq, sizeof(*bf->queues));
	if (!bf->queues) {
		rc = -ENOMEM;
		goto fail;
	}
	for (unsigned int i = 0; i < bf->nq; i++) {
		bf->queues[i].idx = i;
		bf->queues[i].port = -1;
	}
	for (unsigned int i = 0; i < bf->nq; i++) {
		rc = setup_queue(bf, &bf->queues[i]);
		if (rc)
			goto fail;
	}
	rc = xenbus_transaction(bf->xs, write_fe_keys, bf, 10);
	rc = rc ?: xenbus_switch_state(bf->xs, XBT_NULL, bf->fe, XenbusStateInitialised);
	if (rc)
		goto fail;
	rc = wait_backend_state(bf, 1u << XenbusStateConnected, NULL);
	if (rc)
		goto fail;
	rc = read_disk_props(bf);
	if (rc)
		goto fail;
	bf->info.persistent = bf->o.persistent && read_be_uint(bf, "feature-persistent", 0);
	be_ind = read_be_uint(bf, "feature-max-indirect-segments", 0);
	bf->info.max_indirect = bf->o.max_indirect < be_ind ? bf->o.max_indirect : be_ind;
	if (bf->info.max_indirect > ABI_MAX_INDIRECT_SEGMENTS)
		bf->info.max_indirect = ABI_MAX_INDIRECT_SEGMENTS;
	bf->maxseg = bf->info.max_indirect > BLKIF_MAX_SEGMENTS_PER_REQUEST
			     ? bf->info.max_indirect
			     : BLKIF_MAX_SEGMENTS_PER_REQUEST;
	for (unsigned int i = 0; i < bf->nq; i++) {
		rc = setup_slots(bf, &bf->queues[i]);
		if (rc)
			goto fail;
	}
	rc = xenbus_switch_state(bf->xs, XBT_NULL, bf->fe, XenbusStateConnected);
	if (rc)
		goto fail;
	bf->connected = true;
	*out = bf;
	return 0;
fail:
	blkfront_close(bf);
	return rc;
}

void blkfront_close(struct blkfront *bf)
{
	uint64_t deadline;

	if (!bf)
		return;
	deadline = now_ms() + (uint64_t)bf->o.timeout_ms;
	while (bf->connected && blkfront_inflight(bf) && now_ms() < deadline)
		blkfront_poll(bf, 100);
	bf->connected = false;
	/* Linux order: Closing, the backend follows (and unmaps), then Closed. */
	xenbus_switch_state(bf->xs, XBT_NULL, bf->fe, XenbusStateClosing);
	wait_backend_state(bf, 1u << XenbusStateClosing | 1u << XenbusStateClosed |
				       1u << XenbusStateUnknown, NULL);
	for (unsigned int i = 0; bf->queues && i < bf->nq; i++)
		free_queue(bf, &bf->queues[i]);
	free(bf->queues);
	xenbus_switch_state(bf->xs, XBT_NULL, bf->fe, XenbusStateClosed);
	xs_close(bf->xs);
	free(bf);
}

const struct blkfront_info *blkfront_info(const struct blkfront *bf)
{
	return &bf->info;
}

void *blkfront_raw_sring(struct blkfront *bf, unsigned int q)
{
	return (void *)bf->queues[q % bf->nq].ring.sring;
}

int blkfront_raw_notify(struct blkfront *bf, unsigned int q)
{
	return shim_guest_evtchn_notify(bf->g, (unsigned int)bf->queues[q % bf->nq].port);
}
