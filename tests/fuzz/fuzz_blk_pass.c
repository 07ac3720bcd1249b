/*
 * fuzz_blk_pass — one whole pass of the block backend's data path over a hostile ring:
 * bytes -> device options, a shared ring page (or 2 or 4), req_prod, a 16-entry guest
 * grant table and its pages (indirect descriptors, data) -> blk_queue_open (which takes
 * everything published), the loop run until every request is answered, blk_queue_close.
 * The real datapath.c, parse.c, pgrant.c and ring/ run against a fake grant table
 * (hv_ops below) and the null storage driver.
 *
 * Invariants: a bogus req_prod and nothing else breaks the device (and then no response
 * is written); otherwise exactly the published requests are answered, each id as often
 * as it was asked, with a valid status and the request's (or indirect_op's) operation,
 * zero padding, nothing written past the response in its slot; no grant copy outside a
 * granted page or into a read-only grant; every persistent mapping unmapped at close;
 * no out-of-bounds access (ASan: the ring and every page are exactly sized buffers).
 *
 * Layout: [0] flags, [1] limits, [2..5] req_prod, [6..7] grant flags (bit per ref:
 * read-only), then ring bytes (ring size), then guest page bytes (up to 15 pages).
 */
#include "backends/blk/blkback.h"

#include "xenbus/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "fuzz_blk_pass: %s:%d: %s\n", __FILE__, __LINE__, \
				#cond);                                                  \
			abort();                                                         \
		}                                                                        \
	} while (0)

#define NGNT 16u        /* refs 1..15 valid; 0 and >= 16 never granted */
#define DOMID 7u
#define DISK_BYTES (1u << 20)

/* ---- the fake guest: pages, grant table, event channel ---- */

static struct {
	uint8_t *page[NGNT];         /* page[0] unused */
	uint8_t *orig[NGNT];         /* read-only pages as the input gave them */
	void *ring;                  /* the shared ring (unmapped by blk_queue_close) */
	bool readonly[NGNT];
	unsigned int mapped[NGNT];   /* live persistent mappings per ref */
	unsigned int copies_to_guest;
} guest;

static int fake_gnt_open(struct hv_gnt **out)
{
	struct hv_gnt *g = malloc(sizeof(*g));

	if (!g)
		return -ENOMEM;
	*out = g;
	return 0;
}

static void fake_gnt_close(struct hv_gnt *g)
{
	free(g);
}

static bool ref_ok(uint32_t ref)
{
	return ref >= 1 && ref < NGNT;
}

/* Multi-page maps (the cache maps a request's new grants together): a private buffer
 * filled from the pages and written back at unmap, enough for what this target checks
 * (read-only pages are never mapped, and are compared after the pass). */
#define MULTI_MAX 64
static struct multi {
	uint8_t *addr;
	uint32_t count;
	uint32_t refs[NGNT];
} multi[MULTI_MAX];

static void *fake_gnt_map(struct hv_gnt *g, uint32_t domid, uint32_t count, const uint32_t *refs,
			  bool writable)
{
	struct multi *m = NULL;

	CHECK(domid == DOMID);
	CHECK(count >= 1);
	for (uint32_t i = 0; i < count; i++) {
		if (!ref_ok(refs[i]) || count >= NGNT) {
			errno = EINVAL;
			return NULL;
		}
		if (writable && guest.readonly[refs[i]]) {
			errno = EPERM;
			return NULL;
		}
	}
	for (uint32_t i = 0; i < count; i++)
		guest.mapped[refs[i]]++;
	if (count == 1)
		return guest.page[refs[0]];
	for (unsigned int k = 0; k < MULTI_MAX && !m; k++)
		if (!multi[k].addr)
			m = &multi[k];
	CHECK(m);
	m->addr = malloc((size_t)count * HV_PAGE_SIZE);
	CHECK(m->addr);
	m->count = count;
	for (uint32_t i = 0; i < count; i++) {
		m->refs[i] = refs[i];
		memcpy(m->addr + (size_t)i * HV_PAGE_SIZE, guest.page[refs[i]], HV_PAGE_SIZE);
	}
	return m->addr;
}

static int fake_gnt_unmap(struct hv_gnt *g, void *addr, uint32_t count)
{
	if (addr == guest.ring)
		return 0;
	for (unsigned int k = 0; k < MULTI_MAX; k++) {
		struct multi *m = &multi[k];

		if (m->addr != addr)
			continue;
		CHECK(count == m->count);
		for (uint32_t i = 0; i < count; i++) {
			CHECK(guest.mapped[m->refs[i]] > 0);
			guest.mapped[m->refs[i]]--;
			memcpy(guest.page[m->refs[i]], m->addr + (size_t)i * HV_PAGE_SIZE,
			       HV_PAGE_SIZE);
		}
		free(m->addr);
		m->addr = NULL;
		return 0;
	}
	CHECK(count == 1);
	for (uint32_t r = 1; r < NGNT; r++) {
		if (guest.page[r] == addr) {
			CHECK(guest.mapped[r] > 0);
			guest.mapped[r]--;
			return 0;
		}
	}
	CHECK(!"unmap of an address we never mapped");
	return -EINVAL;
}

static int fake_gnt_copy(struct hv_gnt *g, uint32_t count, struct hv_copy_seg *segs)
{
	for (uint32_t i = 0; i < count; i++) {
		struct hv_copy_seg *s = &segs[i];
		bool to_guest = s->flags & HV_COPY_DEST_GREF;
		const union hv_copy_ptr *f = to_guest ? &s->dest : &s->source;
		uint8_t *gp;

		/* The backend never copies between two grants, nor with none. */
		CHECK((s->flags & (HV_COPY_DEST_GREF | HV_COPY_SOURCE_GREF)) == HV_COPY_DEST_GREF ||
		      (s->flags & (HV_COPY_DEST_GREF | HV_COPY_SOURCE_GREF)) == HV_COPY_SOURCE_GREF);
		CHECK(f->foreign.domid == DOMID);
		if (!ref_ok(f->foreign.ref)) {
			s->status = HV_GNTST_BAD_GNTREF;
			continue;
		}
		if ((uint32_t)f->foreign.offset + s->len > HV_PAGE_SIZE) {
			s->status = HV_GNTST_BAD_COPY_ARG;
			continue;
		}
		if (to_guest && guest.readonly[f->foreign.ref]) {
			s->status = HV_GNTST_PERMISSION_DENIED;
			continue;
		}
		gp = guest.page[f->foreign.ref] + f->foreign.offset;
		if (to_guest) {
			memcpy(gp, s->source.virt, s->len);
			guest.copies_to_guest++;
		} else {
			memcpy(s->dest.virt, gp, s->len);
		}
		s->status = HV_GNTST_OKAY;
	}
	return 0;
}

struct fake_evt {
	struct hv_evt base;
	int fd;
};
static unsigned int notifies;

static int fake_evt_open(struct hv_evt **out)
{
	return -ENOSYS;
}

static void fake_evt_close(struct hv_evt *e)
{
	struct fake_evt *fe = (struct fake_evt *)e;

	close(fe->fd);
	free(fe);
}

static int fake_evt_fd(struct hv_evt *e)
{
	return ((struct fake_evt *)e)->fd;
}

static int fake_evt_bind(struct hv_evt *e, uint32_t domid, uint32_t remote_port)
{
	return 1;
}

static int fake_evt_unbind(struct hv_evt *e, uint32_t port)
{
	return 0;
}

static int fake_evt_notify(struct hv_evt *e, uint32_t port)
{
	notifies++;
	return 0;
}

static int fake_evt_pending(struct hv_evt *e)
{
	return -EAGAIN;
}

static int fake_evt_unmask(struct hv_evt *e, uint32_t port)
{
	return 0;
}

static const struct hv_ops fake_ops = {
	.name = "fuzz",
	.gnt_open = fake_gnt_open,
	.gnt_close = fake_gnt_close,
	.gnt_map = fake_gnt_map,
	.gnt_unmap = fake_gnt_unmap,
	.gnt_copy = fake_gnt_copy,
	.evt_open = fake_evt_open,
	.evt_close = fake_evt_close,
	.evt_fd = fake_evt_fd,
	.evt_bind_interdomain = fake_evt_bind,
	.evt_unbind = fake_evt_unbind,
	.evt_notify = fake_evt_notify,
	.evt_pending = fake_evt_pending,
	.evt_unmask = fake_evt_unmask,
};

/* ---- checking the answers ---- */

static uint8_t rsp_op_of(const struct blkif_request *n)
{
	if (n->operation == BLKIF_OP_INDIRECT)
		return ((const struct blkif_request_indirect *)n)->indirect_op;
	return n->operation;
}

static void check_responses(const struct ring_back *r, enum blkif_abi abi, const uint8_t *before,
			    uint32_t taken)
{
	size_t ent = blkif_abi_ent_size(abi), rsz = blkif_abi_rsp_size(abi);
	uint32_t produced = r->sring->rsp_prod;
	bool *used = calloc(taken ? taken : 1, sizeof(bool));

	CHECK(used);
	CHECK(produced == taken); /* every request answered, nothing more */
	for (uint32_t k = 0; k < produced; k++) {
		const uint8_t *slot = r->ents + (size_t)k * ent;
		uint64_t id;
		int16_t st;
		uint32_t j;

		memcpy(&id, slot, 8);
		memcpy(&st, slot + 10, 2);
		CHECK(st == BLKIF_RSP_OKAY || st == BLKIF_RSP_ERROR || st == BLKIF_RSP_EOPNOTSUPP);
		CHECK(slot[9] == 0);
		for (size_t b = 12; b < rsz; b++)
			CHECK(slot[b] == 0);
		for (size_t b = rsz; b < ent; b++)
			CHECK(slot[b] == before[(size_t)k * ent + b]);
		/* Some request not yet matched with this id and operation. */
		for (j = 0; j < taken; j++) {
			struct blkif_request n;

			if (used[j])
				continue;
			blkif_abi_req_to_native(abi, before + (size_t)j * ent, &n);
			if (n.id == id && rsp_op_of(&n) == slot[8])
				break;
		}
		CHECK(j < taken);
		used[j] = true;
	}
	/* Slots past the responses are never written. */
	for (uint32_t k = produced; k < r->nr_ents; k++)
		CHECK(memcmp(r->ents + (size_t)k * ent, before + (size_t)k * ent, ent) == 0);
	free(used);
}

/* ---- one pass ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	struct blk_dev dev;
	struct blk_queue *q = NULL;
	struct fake_evt *evt;
	struct hv_gnt *gnt = NULL;
	struct blk_storage_opts so = { 0 };
	enum blkif_abi abi;
	unsigned int order, pages, nr;
	size_t ring_bytes, ent;
	uint8_t *ring, *before;
	uint32_t prod;
	bool bogus;
	int rc;

	if (!quiet) {
		log_set_level(LOG_EMERG);
		quiet = true;
	}
	if (size < 8)
		return 0;
	memset(&guest, 0, sizeof(guest));
	notifies = 0;
	abi = (data[0] & 1) ? BLKIF_ABI_X86_32 : BLKIF_ABI_NATIVE;
	order = (data[0] >> 4) & 3;
	if (order == 3)
		order = 2;
	pages = 1u << order;
	ring_bytes = (size_t)pages * HV_PAGE_SIZE;
	ent = blkif_abi_ent_size(abi);
	nr = ring_nr_ents(ring_bytes, ent);

	memset(&dev, 0, sizeof(dev));
	blk_config_default(&dev.cfg);
	dev.cfg.max_persistent_grants = 1 + ((data[1] >> 4) & 3) * 3;
	dev.abi = abi;
	dev.persistent = data[0] & 2;
	dev.lim.sectors = DISK_BYTES / 512;
	dev.lim.sector_size = (data[0] & 0x40) ? 4096 : 512;
	dev.lim.readonly = data[0] & 4;
	dev.lim.discard = data[0] & 8;
	dev.lim.flush = dev.lim.barrier = data[0] & 0x80;
	dev.lim.max_indirect_segments = (data[1] & 0xc0) == 0 ? 0 : (data[1] & 0xc0) == 0x40 ? 32
								 : (data[1] & 0xc0) == 0x80 ? 256
											: 512;
	/* Few bounce pages, to exercise parking; but (as the default configuration
	 * guarantees) enough for the largest request, or that one would wait forever. */
	dev.cfg.bounce_pages = (dev.lim.max_indirect_segments > BLKIF_MAX_SEGMENTS_PER_REQUEST
					? dev.lim.max_indirect_segments
					: BLKIF_MAX_SEGMENTS_PER_REQUEST) +
			       (data[1] & 0x0f) * 4;
	dev.readonly = dev.lim.readonly;
	snprintf(dev.xb.name, sizeof(dev.xb.name), "fuzz");
	dev.xb.otherend_id = DOMID;
	/* Connected, with the real control path's disconnect: a bogus req_prod goes through
	 * xenbus_device_fatal -> blk_disconnect -> blk_queue_close exactly as in the worker.
	 * Already Closing, so switching state needs no xenstore. */
	dev.xb.state = 5;
	dev.xb.connected = true;
	dev.xb.ops = &blk_xenbus_ops;
	dev.xb.priv = &dev;
	dev.nr_queues = 1;
	dev.queues = calloc(1, sizeof(*dev.queues));
	CHECK(dev.queues);
	dev.xb.loop = ev_loop_new(EVFLAG_AUTO);
	CHECK(dev.xb.loop);
	so.readonly = dev.readonly;
	CHECK(blk_storage_open(&dev.st, "null:1M", &so, dev.xb.loop) == 0);

	/* Guest pages 1..15: input bytes, then zeros; grant flags from data[6..7]. */
	ring = guest.ring = malloc(ring_bytes);
	before = malloc(ring_bytes);
	CHECK(ring && before);
	memset(ring, 0, ring_bytes);
	{
		size_t off = 8, n = size - 8 < ring_bytes - 64 ? size - 8 : ring_bytes - 64;

		memcpy(ring + 64, data + off, n);
		off += n;
		for (uint32_t i = 1; i < NGNT; i++) {
			size_t m = off < size ? size - off : 0;

			guest.page[i] = calloc(1, HV_PAGE_SIZE);
			CHECK(guest.page[i]);
			if (m > HV_PAGE_SIZE)
				m = HV_PAGE_SIZE;
			memcpy(guest.page[i], data + off, m);
			off += m;
			guest.readonly[i] = (((uint32_t)data[6] | (uint32_t)data[7] << 8) >> i) & 1;
			if (guest.readonly[i]) {
				guest.orig[i] = malloc(HV_PAGE_SIZE);
				CHECK(guest.orig[i]);
				memcpy(guest.orig[i], guest.page[i], HV_PAGE_SIZE);
			}
		}
	}
	/* req_prod: mostly in range; the top bit asks for a raw (likely bogus) value. */
	memcpy(&prod, data + 2, 4);
	if (!(prod & 0x80000000u))
		prod %= nr + 1;
	bogus = prod > nr;
	((struct ring_sring_hdr *)ring)->req_prod = prod;
	((struct ring_sring_hdr *)ring)->req_event = 1;
	((struct ring_sring_hdr *)ring)->rsp_event = 1;
	memcpy(before, ring + 64, ring_bytes - 64);

	gnt = calloc(1, sizeof(*gnt));
	evt = calloc(1, sizeof(*evt)); /* zeroed: hv.c keeps pool bookkeeping in it */
	CHECK(gnt && evt);
	gnt->ops = &fake_ops;
	evt->base.ops = &fake_ops;
	evt->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	CHECK(evt->fd >= 0);
	dev.gnt = gnt;
	(void)fake_gnt_open;

	rc = blk_queue_open(&dev, 0, ring, pages, &evt->base, 1, &dev.queues[0]);
	CHECK(rc == 0);
	q = dev.queues ? dev.queues[0] : NULL; /* NULL: broken at the first look */
	/* Every storage completion is an idle watcher: each turn makes progress, so a
	 * queue still busy after many turns is stuck (checked below). */
	for (int i = 0; i < 20000 && !dev.xb.broken && q && q->inflight; i++)
		ev_run(dev.xb.loop, EVRUN_NOWAIT);
	ev_run(dev.xb.loop, EVRUN_NOWAIT); /* the push runs in the prepare watcher */

	CHECK(dev.xb.broken == bogus);
	if (bogus) {
		/* Disconnected (queue closed and freed); nothing was taken, so nothing may
		 * have been answered. */
		CHECK(dev.queues == NULL && !dev.xb.connected);
		CHECK(((struct ring_sring_hdr *)ring)->rsp_prod == 0);
	} else {
		CHECK(q->inflight == 0);
		check_responses(&q->ring, abi, before, prod);
		blk_xenbus_ops.disconnect(&dev.xb); /* closes and frees q */
	}
	blk_storage_close(dev.st);
	for (uint32_t i = 1; i < NGNT; i++) {
		CHECK(guest.mapped[i] == 0);
		/* Read-only pages are never written (the fake copy refuses; a persistent map of
		 * one fails). */
		if (guest.readonly[i])
			CHECK(memcmp(guest.page[i], guest.orig[i], HV_PAGE_SIZE) == 0);
		free(guest.orig[i]);
		free(guest.page[i]);
	}
	ev_loop_destroy(dev.xb.loop);
	free(gnt);
	free(ring);
	free(before);
	return 0;
}
