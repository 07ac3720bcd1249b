/*
 * datapath — the blkif data path of one queue: requests are copied out of the ring
 * once (ring/), translated to the native layout, validated by the pure parser
 * (parse.c), their data moved by batched grant copy into bounce pages or straight
 * through persistent mappings, submitted to storage in batches, and answered.
 * Responses are pushed and the frontend notified once per loop iteration.
 * Counterpart: Linux drivers/block/xen-blkback/blkback.c.
 */
#include "backends/blk/blkback.h"

#include "xenbus/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* Requests copied out per pass before submitting what we have. */
#define BLK_TAKE_BATCH 32u

/* I/O chain stages (blk_inflight.stage indexes the request's op list). */
enum { CHAIN_MAX = 3 };

uint64_t blk_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned int queue_max_segs(const struct blk_queue *q)
{
	unsigned int m = q->dev->lim.max_indirect_segments;

	return m > BLKIF_MAX_SEGMENTS_PER_REQUEST ? m : BLKIF_MAX_SEGMENTS_PER_REQUEST;
}

/* ---- responses ---- */

static void queue_respond(struct blk_queue *q, uint64_t id, uint8_t op, int16_t status)
{
	struct blkif_response rsp;
	uint8_t guest[sizeof(struct blkif_response)];
	size_t n;

	memset(&rsp, 0, sizeof(rsp)); /* no stray bytes reach the guest (XSA-216) */
	rsp.id = id;
	rsp.operation = op;
	rsp.status = status;
	if (status == BLKIF_RSP_ERROR)
		q->dev->stats.errors++;
	else if (status == BLKIF_RSP_EOPNOTSUPP)
		q->dev->stats.eopnotsupp++;
	if (!q->connected)
		return; /* zombie: the ring is gone, the frontend reset */
	n = blkif_abi_rsp_from_native(q->dev->abi, &rsp, guest);
	ring_back_put(&q->ring, guest, n);
	q->need_push = true;
}

/* Responses are out: their journal entries are free again. */
static void journal_published(struct blk_queue *q)
{
	while (q->jfifo_head != q->jfifo_tail) {
		unsigned int e = q->jfifo[q->jfifo_head++ & (q->jnents - 1)];

		xenbus_journal_ent_free(xenbus_journal_ent(&q->dev->journal, q->idx, e));
		q->jfree[q->jnfree++] = e;
	}
}

static void push_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct blk_queue *q = w->data;

	while (q->need_push && q->connected) {
		q->need_push = false;
		/* Journal first: a worker killed between the two publishes the same rsp_prod
		 * again on restart, from responses already in the ring. */
		if (q->jq)
			xenbus_journal_set_rsp_prod(q->jq, q->ring.rsp_prod_pvt);
		if (ring_back_push(&q->ring)) {
			hv_evt_notify(q->evt, (uint32_t)q->lport);
			q->dev->stats.notify_out++;
		}
		if (q->jq) {
			journal_published(q);
			if (q->jstarved) {
				q->jstarved = false;
				blk_queue_kick(q); /* may answer more: the loop pushes them */
			}
		}
	}
}

/* ---- resources ---- */

static void *bounce_get(struct blk_queue *q)
{
	if (q->bounce_nfree)
		return q->bounce_free[--q->bounce_nfree];
	return NULL;
}

static void release_data(struct blk_queue *q, struct blk_inflight *f)
{
	uint64_t now = 0;

	for (unsigned int i = 0; i < f->req.nr_segments; i++) {
		if (f->pg[i]) {
			if (!now)
				now = blk_now_ms();
			pgrant_put(&q->pgrants, f->pg[i], now);
			f->pg[i] = NULL;
		}
	}
	for (unsigned int i = 0; i < f->nr_pages; i++)
		q->bounce_free[q->bounce_nfree++] = f->pages[i];
	f->nr_pages = 0;
}

static void queue_free(struct blk_queue *q);

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void count_latency(struct blk_stats *s, uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned int b = 0;

	while (us > 1 && b < BLK_LAT_BUCKETS - 1) {
		us >>= 1;
		b++;
	}
	s->lat_hist[b]++;
}

uint64_t blk_stats_latency_us(const struct blk_stats *s, double pct)
{
	uint64_t total = 0, seen = 0;

	for (unsigned int b = 0; b < BLK_LAT_BUCKETS; b++)
		total += s->lat_hist[b];
	if (!total)
		return 0;
	for (unsigned int b = 0; b < BLK_LAT_BUCKETS; b++) {
		seen += s->lat_hist[b];
		if ((double)seen * 100.0 >= pct * (double)total)
			return 2ull << b;
	}
	return 2ull << (BLK_LAT_BUCKETS - 1);
}

static void finish(struct blk_queue *q, struct blk_inflight *f)
{
	count_latency(&q->dev->stats, now_ns() - f->t_taken_ns);
	release_data(q, f);
	queue_respond(q, f->req.id, f->req.rsp_op, (int16_t)f->status);
	if (f->jent >= 0 && q->jq) {
		/* The response sits in the ring now; it counts once rsp_prod passes it. */
		xenbus_journal_ent_responded(xenbus_journal_ent(&q->dev->journal, q->idx,
								(unsigned int)f->jent),
					     q->ring.rsp_prod_pvt - 1);
		q->jfifo[q->jfifo_tail++ & (q->jnents - 1)] = (unsigned int)f->jent;
	}
	f->jent = -1;
	f->next_free = q->free;
	q->free = f;
	q->inflight--;
	if (q->zombie) {
		if (q->inflight == 0 && !q->kicking)
			queue_free(q); /* (inside a kick, the kick frees it on the way out) */
		return;
	}
	/* Resume taking requests if we had stopped: a parked barrier may start, pages or a
	 * request slot came back. (Without this a full ring would never be looked at
	 * again: we set no req_event while stopped, so the frontend won't notify.) */
	if (q->parked || q->starved)
		blk_queue_kick(q);
}

/* ---- moving data with grant copy ---- */

/* Copy between the guest's segments and our bounce pages; to_guest picks the direction.
 * Returns 0 or -EIO if any segment's copy failed (bad or revoked grant). */
static int copy_segments(struct blk_queue *q, struct blk_inflight *f, bool to_guest)
{
	struct hv_copy_seg segs[64];
	uint16_t domid = (uint16_t)q->dev->xb.otherend_id;
	unsigned int done = 0, n = f->req.nr_segments;

	while (done < n) {
		unsigned int batch = n - done > 64 ? 64 : n - done;

		for (unsigned int i = 0; i < batch; i++) {
			const struct blk_seg *s = &f->segs[done + i];
			struct hv_copy_seg *c = &segs[i];

			memset(c, 0, sizeof(*c));
			c->len = s->len;
			if (to_guest) {
				c->source.virt = f->pages[done + i];
				c->dest.foreign.ref = s->gref;
				c->dest.foreign.offset = s->offset;
				c->dest.foreign.domid = domid;
				c->flags = HV_COPY_DEST_GREF;
			} else {
				c->dest.virt = f->pages[done + i];
				c->source.foreign.ref = s->gref;
				c->source.foreign.offset = s->offset;
				c->source.foreign.domid = domid;
				c->flags = HV_COPY_SOURCE_GREF;
			}
		}
		if (hv_gnt_copy(q->dev->gnt, batch, segs) < 0)
			return -EIO;
		for (unsigned int i = 0; i < batch; i++) {
			if (segs[i].status != HV_GNTST_OKAY) {
				log_guest(q->name, "grant copy of gref %u failed: status %d",
					  f->segs[done + i].gref, segs[i].status);
				return -EIO;
			}
		}
		done += batch;
	}
	return 0;
}

/*
 * Give every segment a buffer: persistent mappings when negotiated (I/O goes straight
 * to guest memory), bounce pages otherwise. Returns 0, -EAGAIN (out of bounce pages:
 * retry when some come back) or -EIO (the guest's grant is bad).
 */
static int attach_buffers(struct blk_queue *q, struct blk_inflight *f)
{
	unsigned int n = f->req.nr_segments;

	f->copy_path = true;
	if (q->persistent) {
		uint64_t now = blk_now_ms();
		unsigned int off, cnt;

		/* the request's new grants are mapped together, PGRANT_BATCH_MAX at a time */
		for (off = 0; off < n; off += cnt) {
			uint32_t grefs[PGRANT_BATCH_MAX];

			cnt = n - off < PGRANT_BATCH_MAX ? n - off : PGRANT_BATCH_MAX;
			for (unsigned int k = 0; k < cnt; k++)
				grefs[k] = f->segs[off + k].gref;
			if (pgrant_get_many(&q->pgrants, cnt, grefs, &f->pg[off], now) < 0)
				break;
		}
		if (off >= n) {
			for (unsigned int i = 0; i < n; i++) {
				f->iov[i].iov_base = (uint8_t *)f->pg[i]->addr + f->segs[i].offset;
				f->iov[i].iov_len = f->segs[i].len;
			}
			f->copy_path = false;
			return 0;
		}
		if (errno != EBUSY) {
			release_data(q, f);
			return -EIO;
		}
		release_data(q, f); /* pool full of busy mappings: use grant copy */
	}
	if (q->bounce_nfree < n) {
		q->dev->stats.oo_req++;
		return -EAGAIN;
	}
	for (unsigned int i = 0; i < n; i++) {
		f->pages[i] = bounce_get(q);
		f->iov[i].iov_base = f->pages[i];
		f->iov[i].iov_len = f->segs[i].len;
	}
	f->nr_pages = (uint16_t)n;
	return 0;
}

/* ---- the I/O chain ---- */

static void io_done_cb(struct blk_io *io, int res);

/* Which storage operations request f needs, in order. */
static unsigned int chain_of(const struct blk_inflight *f, enum blk_io_op ops[CHAIN_MAX])
{
	unsigned int n = 0;

	switch (f->req.op) {
	case BLKIF_OP_READ:
		ops[n++] = BLK_IO_READ;
		break;
	case BLKIF_OP_WRITE:
		ops[n++] = BLK_IO_WRITE;
		break;
	case BLKIF_OP_WRITE_BARRIER:
		/* Everything before is complete (drained); make it stable, then the write,
		 * then make the write stable. */
		ops[n++] = BLK_IO_FLUSH;
		if (f->req.nr_segments)
			ops[n++] = BLK_IO_WRITE;
		ops[n++] = BLK_IO_FLUSH;
		break;
	case BLKIF_OP_FLUSH_DISKCACHE:
		if (f->req.nr_segments)
			ops[n++] = BLK_IO_WRITE;
		ops[n++] = BLK_IO_FLUSH;
		break;
	case BLKIF_OP_DISCARD:
		ops[n++] = BLK_IO_DISCARD;
		break;
	}
	return n;
}

static void prepare_io(struct blk_queue *q, struct blk_inflight *f)
{
	enum blk_io_op ops[CHAIN_MAX];
	struct blk_io *io = &f->io;

	chain_of(f, ops);
	memset(io, 0, sizeof(*io));
	io->op = ops[f->stage];
	io->done_cb = io_done_cb;
	io->opaque = f;
	switch (io->op) {
	case BLK_IO_READ:
	case BLK_IO_WRITE:
		io->offset = f->req.sector * 512;
		io->len = f->req.nr_sectors * 512;
		io->iov = f->iov;
		io->iovcnt = f->req.nr_segments;
		break;
	case BLK_IO_DISCARD:
		io->offset = f->req.sector * 512;
		io->len = f->req.nr_sectors * 512;
		break;
	default:
		break;
	}
}

static void complete(struct blk_queue *q, struct blk_inflight *f)
{
	if (f->status == BLKIF_RSP_OKAY && f->req.op == BLKIF_OP_READ && f->copy_path &&
	    copy_segments(q, f, true) != 0)
		f->status = BLKIF_RSP_ERROR;
	finish(q, f);
}

static void io_done_cb(struct blk_io *io, int res)
{
	struct blk_inflight *f = io->opaque;
	struct blk_queue *q = f->q;
	enum blk_io_op ops[CHAIN_MAX];
	unsigned int n = chain_of(f, ops);

	if (res < 0) {
		f->status = (res == -EOPNOTSUPP && (io->op == BLK_IO_FLUSH || io->op == BLK_IO_DISCARD))
				    ? BLKIF_RSP_EOPNOTSUPP
				    : BLKIF_RSP_ERROR;
		if (f->status == BLKIF_RSP_ERROR)
			log_guest(q->name, "storage error on request %llu: %s",
				  (unsigned long long)f->req.id, strerror(-res));
		complete(q, f);
		return;
	}
	if (++f->stage < n) {
		struct blk_io *one = &f->io;

		prepare_io(q, f);
		if (blk_storage_submit(q->dev->st, &one, 1) < 0) {
			f->status = BLKIF_RSP_ERROR;
			complete(q, f);
		}
		return;
	}
	complete(q, f);
}

/* ---- taking requests ---- */

/*
 * Copy the indirect descriptor pages out through persistent mappings: a frontend that
 * negotiated feature-persistent reuses its indirect pages like its data pages (Linux
 * blkback maps them the same way). Saves a grant-copy call per request. Returns 0, or
 * -EAGAIN when a page can't be had that way: the pool is busy, or the map failed (a
 * frontend may grant its indirect pages read-only: then the queue copies from now on,
 * and a bad grant gets its error from the copy).
 */
static int fetch_indirect_persistent(struct blk_queue *q, struct blk_inflight *f, size_t bytes)
{
	struct pgrant *pg[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
	unsigned int pages = f->req.nr_indirect_pages;
	uint64_t now = blk_now_ms();

	if (pgrant_get_many(&q->pgrants, pages, f->req.indirect_grefs, pg, now) < 0) {
		if (errno != EBUSY)
			q->indirect_by_copy = true;
		return -EAGAIN;
	}
	for (unsigned int i = 0; i < pages; i++) {
		size_t left = bytes - (size_t)i * HV_PAGE_SIZE;

		/* the one read of the shared page: parsing looks at our copy only */
		memcpy((uint8_t *)q->indirect_buf + (size_t)i * HV_PAGE_SIZE, pg[i]->addr,
		       left > HV_PAGE_SIZE ? HV_PAGE_SIZE : left);
		pgrant_put(&q->pgrants, pg[i], now);
	}
	return 0;
}

/* Fetch the indirect descriptor pages (copy-out once) and parse them. */
static int fetch_indirect(struct blk_queue *q, struct blk_inflight *f)
{
	struct hv_copy_seg segs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
	size_t bytes = (size_t)f->req.nr_segments * sizeof(struct blkif_request_segment);
	unsigned int pages = f->req.nr_indirect_pages;

	if (q->persistent && !q->indirect_by_copy && fetch_indirect_persistent(q, f, bytes) == 0)
		return blk_parse_indirect(q->indirect_buf, &q->dev->lim, &f->req);
	for (unsigned int i = 0; i < pages; i++) {
		size_t left = bytes - (size_t)i * HV_PAGE_SIZE;

		memset(&segs[i], 0, sizeof(segs[i]));
		segs[i].source.foreign.ref = f->req.indirect_grefs[i];
		segs[i].source.foreign.domid = (uint16_t)q->dev->xb.otherend_id;
		segs[i].dest.virt = (uint8_t *)q->indirect_buf + (size_t)i * HV_PAGE_SIZE;
		segs[i].len = (uint16_t)(left > HV_PAGE_SIZE ? HV_PAGE_SIZE : left);
		segs[i].flags = HV_COPY_SOURCE_GREF;
	}
	if (hv_gnt_copy(q->dev->gnt, pages, segs) < 0)
		return BLKIF_RSP_ERROR;
	for (unsigned int i = 0; i < pages; i++)
		if (segs[i].status != HV_GNTST_OKAY)
			return BLKIF_RSP_ERROR;
	return blk_parse_indirect(q->indirect_buf, &q->dev->lim, &f->req);
}

static void count_request(struct blk_dev *dev, const struct blk_inflight *f)
{
	struct blk_stats *s = &dev->stats;

	switch (f->req.op) {
	case BLKIF_OP_READ:
		s->rd_req++;
		s->rd_sect += f->req.nr_sectors;
		break;
	case BLKIF_OP_WRITE:
		s->wr_req++;
		s->wr_sect += f->req.nr_sectors;
		break;
	case BLKIF_OP_FLUSH_DISKCACHE:
		s->flush_req++;
		s->wr_sect += f->req.nr_sectors;
		break;
	case BLKIF_OP_WRITE_BARRIER:
		s->barrier_req++;
		s->wr_sect += f->req.nr_sectors;
		break;
	case BLKIF_OP_DISCARD:
		s->discard_req++;
		break;
	}
}

enum dispatch_result {
	DISPATCH_SUBMIT, /* f->io is ready: add it to the batch */
	DISPATCH_DONE,   /* answered already */
	DISPATCH_WAIT,   /* can't start yet: park it (pages, a barrier, or order) */
};

/*
 * Attach buffers (bringing write data in) and ready the first I/O. A WRITE_BARRIER
 * starts only when nothing else is in flight (what is parked behind it doesn't count):
 * everything before it has completed, as Linux blkback drains before a barrier.
 */
static enum dispatch_result dispatch_buffers(struct blk_queue *q, struct blk_inflight *f)
{
	if (f->req.nr_segments && !f->has_buffers) {
		int rc = attach_buffers(q, f);

		if (rc == -EAGAIN)
			return DISPATCH_WAIT;
		if (rc == 0 && f->copy_path && f->req.op != BLKIF_OP_READ &&
		    copy_segments(q, f, false) != 0)
			rc = -EIO;
		if (rc) {
			f->status = BLKIF_RSP_ERROR;
			finish(q, f);
			return DISPATCH_DONE;
		}
		f->has_buffers = true;
	}
	if (f->req.op == BLKIF_OP_WRITE_BARRIER && q->inflight - q->nparked > 1)
		return DISPATCH_WAIT;
	prepare_io(q, f);
	return DISPATCH_SUBMIT;
}

/* One copied-out request (guest layout): translate, validate, attach buffers. */
static enum dispatch_result dispatch(struct blk_queue *q, struct blk_inflight *f,
				     const void *guest_req)
{
	struct blkif_request native;
	int rc;

	f->t_taken_ns = now_ns();
	blkif_abi_req_to_native(q->dev->abi, guest_req, &native);
	f->req.seg = f->segs;
	f->stage = 0;
	f->status = BLKIF_RSP_OKAY;
	f->nr_pages = 0;
	f->copy_path = true;
	f->has_buffers = false;
	rc = blk_parse_request(&native, &q->dev->lim, &f->req);
	if (rc == 1) {
		rc = fetch_indirect(q, f);
		if (rc == 0)
			q->dev->stats.indirect_req++;
	}
	if (rc < 0) {
		log_guest(q->name, "bad request: op %u id %llu %s", native.operation,
			  (unsigned long long)f->req.id,
			  rc == BLKIF_RSP_EOPNOTSUPP ? "not supported" : "invalid");
		f->status = rc;
		finish(q, f);
		return DISPATCH_DONE;
	}
	count_request(q->dev, f);
	if (q->parked)
		return DISPATCH_WAIT; /* behind what already waits: ring order is kept */
	return dispatch_buffers(q, f);
}

static void submit_batch(struct blk_queue *q, struct blk_io **ios, unsigned int n)
{
	if (n == 0)
		return;
	if (blk_storage_submit(q->dev->st, ios, n) < 0) {
		for (unsigned int i = 0; i < n; i++) {
			struct blk_inflight *f = ios[i]->opaque;

			f->status = BLKIF_RSP_ERROR;
			complete(q, f);
		}
	}
}

static void queue_kick(struct blk_queue *q);

/*
 * Service the queue. Completions that finish a request while we are inside (an error
 * answered during dispatch) ask for another pass instead of recursing: a nested pass
 * would take new requests into reqbuf while the outer one still reads it.
 */
/* A request just taken (or re-issued from the journal): give it a slot and start it. */
static void take_one(struct blk_queue *q, const void *guest_req, int jent,
		     struct blk_io **ios, unsigned int *nios)
{
	struct blk_inflight *f = q->free;
	enum dispatch_result r;

	q->free = f->next_free;
	q->inflight++;
	f->jent = jent;
	r = dispatch(q, f, guest_req);
	if (r == DISPATCH_SUBMIT) {
		ios[(*nios)++] = &f->io;
	} else if (r == DISPATCH_WAIT) {
		/* Keep it (and any after it) in ring order until completions let it
		 * start; take nothing more meanwhile. */
		f->next_free = NULL;
		if (q->parked_tail)
			q->parked_tail->next_free = f;
		else
			q->parked = f;
		q->parked_tail = f;
		q->nparked++;
	}
}

void blk_queue_kick(struct blk_queue *q)
{
	if (q->kicking) {
		q->rekick = true;
		return;
	}
	q->kicking = true;
	do {
		q->rekick = false;
		queue_kick(q);
	} while (q->rekick && q->connected);
	q->kicking = false;
	/* A broken ring closed the queue under us (xenbus_device_fatal): its memory was
	 * kept for us to free here. */
	if (q->zombie && q->inflight == 0)
		queue_free(q);
}

static void queue_kick(struct blk_queue *q)
{
	struct blk_io *ios[BLK_TAKE_BATCH];
	size_t req_size = blkif_abi_req_size(q->dev->abi);
	int jtake[BLK_TAKE_BATCH];
	unsigned int nios = 0;

	if (!q->connected)
		return;

	/* Parked requests go before anything newer, in ring order. */
	while (q->parked) {
		struct blk_inflight *f = q->parked;
		enum dispatch_result r;

		/* Unlink first: if dispatch answers it (a failed grant copy), finish() puts
		 * it on the free list through the same next_free link. */
		q->parked = f->next_free;
		if (!q->parked)
			q->parked_tail = NULL;
		q->nparked--;
		r = dispatch_buffers(q, f);
		if (r == DISPATCH_WAIT) {
			f->next_free = q->parked; /* back at the head, order kept */
			q->parked = f;
			if (!q->parked_tail)
				q->parked_tail = f;
			q->nparked++;
			submit_batch(q, ios, nios);
			return;
		}
		if (r == DISPATCH_SUBMIT) {
			ios[nios++] = &f->io;
			if (nios == BLK_TAKE_BATCH) {
				submit_batch(q, ios, nios);
				nios = 0;
			}
		}
	}

	while (q->connected) {
		unsigned int want = BLK_TAKE_BATCH - nios;
		int n;

		if (q->parked)
			break; /* resumed by a completion */
		if (!q->free) {
			q->starved = true; /* resumed by a completion */
			break;
		}
		q->starved = false;
		if (want == 0) {
			submit_batch(q, ios, nios);
			nios = 0;
			continue;
		}
		/* Never more than the request slots we have (one per ring entry). */
		if (want > q->ring.nr_ents - q->inflight)
			want = q->ring.nr_ents - q->inflight;
		if (q->jq) {
			/* Only a frontend breaking the ring protocol gets here; resumed by
			 * the next push. */
			if (q->jnfree == 0) {
				q->jstarved = true;
				break;
			}
			if (want > q->jnfree)
				want = q->jnfree;
		}
		n = ring_back_take(&q->ring, q->reqbuf, req_size, want);
		if (n < 0) {
			submit_batch(q, ios, nios);
			xenbus_device_fatal(&q->dev->xb, "frontend's req_prod is beyond the ring");
			return;
		}
		if (n > 0 && q->jq) {
			/* Journal the batch before any of it reaches storage. */
			uint32_t first = q->ring.req_cons - (uint32_t)n;

			for (int i = 0; i < n; i++) {
				unsigned int e = q->jfree[--q->jnfree];

				jtake[i] = (int)e;
				xenbus_journal_ent_take(xenbus_journal_ent(&q->dev->journal, q->idx, e),
							first + (uint32_t)i,
							q->reqbuf + (size_t)i * req_size, req_size);
			}
			xenbus_journal_set_req_cons(q->jq, q->ring.req_cons);
		}
		for (int i = 0; i < n; i++)
			take_one(q, q->reqbuf + (size_t)i * req_size, q->jq ? jtake[i] : -1,
				 ios, &nios);
		if (n == 0) {
			submit_batch(q, ios, nios);
			nios = 0;
			if (!ring_back_final_check(&q->ring))
				return;
		}
	}
	submit_batch(q, ios, nios);
}

static void evt_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct blk_queue *q = w->data;
	struct blk_dev *dev = q->dev;
	int port = hv_evt_pending(q->evt);
	uint32_t cons;

	if (port < 0)
		return;
	hv_evt_unmask(q->evt, (uint32_t)port);
	q->dev->stats.notify_in++;
	cons = q->ring.req_cons;
	blk_queue_kick(q);
	/* A broken ring closed the queue inside the kick, which may have freed it. */
	if (dev->xb.broken)
		return;
	evt_storm_note(&q->storm, loop, q->ring.req_cons != cons);
}

static void storm_resumed(void *opaque)
{
	blk_queue_kick(opaque);
}

/* ---- queue lifetime ---- */

/* Bounce pages (bounded: cfg.bounce_pages) and the indirect copy-out area, page-aligned
 * so O_DIRECT can use them. */
static int bounce_alloc(struct blk_queue *q)
{
	unsigned int n = q->dev->cfg.bounce_pages;

	q->bounce_bytes = ((size_t)n + BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST) * HV_PAGE_SIZE;
	q->bounce_mem = mmap(NULL, q->bounce_bytes, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q->bounce_mem == MAP_FAILED) {
		q->bounce_mem = NULL;
		return -ENOMEM;
	}
	q->bounce_free = calloc(n, sizeof(void *));
	if (!q->bounce_free)
		return -ENOMEM;
	for (unsigned int i = 0; i < n; i++)
		q->bounce_free[i] = (uint8_t *)q->bounce_mem + (size_t)i * HV_PAGE_SIZE;
	q->bounce_nfree = q->bounce_total = n;
	q->indirect_buf = (uint8_t *)q->bounce_mem + (size_t)n * HV_PAGE_SIZE;
	return 0;
}

static void queue_free(struct blk_queue *q)
{
	if (q->slots) {
		for (unsigned int i = 0; i < q->ring.nr_ents; i++) {
			free(q->slots[i].segs);
			free(q->slots[i].iov);
			free(q->slots[i].pages);
			free(q->slots[i].pg);
		}
	}
	free(q->slots);
	free(q->jfree);
	free(q->jfifo);
	pgrant_cache_deinit(&q->pgrants);
	if (q->bounce_mem)
		munmap(q->bounce_mem, q->bounce_bytes);
	free(q->bounce_free);
	free(q->reqbuf);
	free(q);
}

void blk_queue_close(struct blk_queue *q)
{
	struct ev_loop *loop = q->dev->xb.loop;

	if (!q->connected)
		return;
	ev_io_stop(loop, &q->evt_io);
	/* a storm pause would restart the watcher on the closed channel */
	evt_storm_stop(&q->storm, loop);
	ev_prepare_stop(loop, &q->push_prep);
	if (q->need_push) /* answer what completed so far */
		push_prepare_cb(loop, &q->push_prep, 0);
	q->jq = NULL; /* a clean close: nothing to resume */
	q->connected = false;
	hv_evt_unbind(q->evt, (uint32_t)q->lport);
	hv_evt_close(q->evt);
	q->evt = NULL;
	hv_gnt_unmap(q->dev->gnt, q->ring_addr, q->ring_pages);
	q->ring_addr = NULL;
	/* Parked requests never started: nothing will complete them. Drop them (the
	 * frontend reset the ring; it expects no answer). */
	while (q->parked) {
		struct blk_inflight *f = q->parked;

		q->parked = f->next_free;
		release_data(q, f);
		f->next_free = q->free;
		q->free = f;
		q->inflight--;
	}
	q->parked_tail = NULL;
	q->nparked = 0;
	if (q->inflight || q->kicking) {
		/* The last completion frees it, or the kick we are inside of. */
		q->zombie = true;
		return;
	}
	queue_free(q);
}

/* This queue's part of the journal: entry tables; on a resume, the ring position. */
static int journal_attach(struct blk_queue *q)
{
	struct xenbus_journal *j = &q->dev->journal;

	q->jnents = j->hdr->nr_ents;
	if (q->idx >= j->hdr->nr_queues || q->jnents < 2 * q->ring.nr_ents ||
	    (q->jnents & (q->jnents - 1)))
		return -EINVAL;
	q->jfree = calloc(q->jnents, sizeof(*q->jfree));
	q->jfifo = calloc(q->jnents, sizeof(*q->jfifo));
	if (!q->jfree || !q->jfifo)
		return -ENOMEM;
	q->jfifo_head = q->jfifo_tail = 0;
	q->jq = xenbus_journal_queue(j, q->idx);
	if (q->dev->resuming) {
		uint32_t req_cons = q->jq->req_cons, rsp_prod = q->jq->rsp_prod;

		/* Our own memory, but check it anyway: a bad journal must not break the
		 * ring invariants the engine asserts. */
		if (req_cons - rsp_prod > q->ring.nr_ents)
			return -EPROTO;
		q->ring.rsp_prod_pvt = rsp_prod;
		q->ring.req_cons = req_cons;
		return 0;
	}
	for (unsigned int i = 0; i < q->jnents; i++)
		q->jfree[q->jnfree++] = q->jnents - 1 - i;
	return 0;
}

/*
 * Take over from a worker that died: publish the responses it had made (rsp_prod as
 * journaled), then re-issue every request it had taken and not answered, oldest first.
 * Their responses go where the lost ones would have; whatever it had written there
 * and not published is overwritten.
 */
static int journal_resume(struct blk_queue *q)
{
	struct xenbus_journal *j = &q->dev->journal;
	struct blk_io *ios[BLK_TAKE_BATCH];
	unsigned int *redo = calloc(q->jnents, sizeof(*redo)), nios = 0;
	int n;

	if (!redo)
		return -ENOMEM;
	n = xenbus_journal_recover(j, q->idx, redo);
	if (n < 0 || (unsigned int)n > q->ring.nr_ents) {
		log_err(q->name, "journal unusable (%d): can't resume", n);
		free(redo);
		return n < 0 ? n : -EPROTO;
	}
	/* Free entries are the ones recovery left alone and didn't keep. */
	for (unsigned int i = 0; i < q->jnents; i++)
		if (xenbus_journal_ent(j, q->idx, i)->state == XENBUS_JOURNAL_FREE)
			q->jfree[q->jnfree++] = i;
	xenbus_journal_set_rsp_prod(q->jq, q->ring.rsp_prod_pvt);
	ring_back_push(&q->ring);
	hv_evt_notify(q->evt, (uint32_t)q->lport);
	for (int i = 0; i < n; i++) {
		struct xenbus_journal_ent *e = xenbus_journal_ent(j, q->idx, redo[i]);

		/* Back to TAKEN: its (unpublished) response will be written anew. */
		xenbus_journal_ent_take(e, e->req_idx, e->payload, e->len);
		if (e->len < blkif_abi_req_size(q->dev->abi)) {
			free(redo);
			return -EPROTO;
		}
		take_one(q, e->payload, (int)redo[i], ios, &nios);
		if (nios == BLK_TAKE_BATCH) {
			submit_batch(q, ios, nios);
			nios = 0;
		}
	}
	submit_batch(q, ios, nios);
	log_info(q->name, "resumed at req_cons %u rsp_prod %u, %d request(s) re-issued",
		 q->ring.req_cons, q->ring.rsp_prod_pvt, n);
	free(redo);
	return 0;
}

int blk_queue_open(struct blk_dev *dev, unsigned int idx, void *ring_addr,
		   unsigned int ring_pages, struct hv_evt *evt, int lport, struct blk_queue **out)
{
	struct blk_queue *q = calloc(1, sizeof(*q));
	unsigned int maxseg, nr;
	int rc = -ENOMEM;

	if (!q)
		return -ENOMEM;
	q->dev = dev;
	q->idx = idx;
	snprintf(q->name, sizeof(q->name), "%s/q%u", dev->xb.name, idx);
	rc = ring_back_attach(&q->ring, ring_addr, (size_t)ring_pages * HV_PAGE_SIZE,
			      blkif_abi_ent_size(dev->abi), 0);
	if (rc) {
		free(q);
		return rc;
	}
	rc = -ENOMEM;
	q->ring_addr = ring_addr;
	q->ring_pages = ring_pages;
	nr = q->ring.nr_ents;
	maxseg = queue_max_segs(q);
	q->reqbuf = malloc((size_t)BLK_TAKE_BATCH * blkif_abi_req_size(dev->abi));
	q->slots = calloc(nr, sizeof(*q->slots));
	if (!q->reqbuf || !q->slots)
		goto fail;
	for (unsigned int i = 0; i < nr; i++) {
		struct blk_inflight *f = &q->slots[i];

		f->q = q;
		f->jent = -1;
		f->segs = calloc(maxseg, sizeof(*f->segs));
		f->iov = calloc(maxseg, sizeof(*f->iov));
		f->pages = calloc(maxseg, sizeof(*f->pages));
		f->pg = calloc(maxseg, sizeof(*f->pg));
		if (!f->segs || !f->iov || !f->pages || !f->pg)
			goto fail;
		f->next_free = q->free;
		q->free = f;
	}
	if (bounce_alloc(q) != 0)
		goto fail;
	q->persistent = dev->persistent;
	rc = pgrant_cache_init(&q->pgrants, dev->gnt, dev->xb.otherend_id,
			       dev->cfg.max_persistent_grants);
	if (rc)
		goto fail;
	if (dev->journal_on) {
		rc = journal_attach(q);
		if (rc)
			goto fail;
	}
	q->evt = evt;
	q->lport = lport;
	q->connected = true;
	ev_io_init(&q->evt_io, evt_cb, hv_evt_fd(evt), EV_READ);
	q->evt_io.data = q;
	evt_storm_init(&q->storm, &q->evt_io, storm_resumed, q, &dev->stats.storm_pauses);
	ev_io_start(dev->xb.loop, &q->evt_io);
	ev_prepare_init(&q->push_prep, push_prepare_cb);
	q->push_prep.data = q;
	ev_prepare_start(dev->xb.loop, &q->push_prep);
	*out = q;
	if (dev->resuming) {
		rc = journal_resume(q);
		if (rc) {
			*out = NULL;
			blk_queue_close(q);
			return rc;
		}
	}
	blk_queue_kick(q); /* requests may already be waiting */
	return 0;
fail:
	queue_free(q);
	return rc;
}
