/*
 * ring — the shared-ring engine, generic over entry size: the backend side (copy-out
 * only, bogus-index detection, event suppression) and the frontend side used by the
 * shim and by tests. Byte-compatible with Xen's io/ring.h DEFINE_RING_TYPES layout.
 *
 * Threading: one ring_back (or ring_front) is driven by one thread at a time; the peer
 * runs concurrently on the other side of the shared page. No function allocates, blocks
 * or makes a system call. Caller allocates the structs and owns the shared memory.
 */
#ifndef SPLITPV_RING_RING_H
#define SPLITPV_RING_RING_H

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define RING_PAGE_SIZE 4096u
#define RING_HDR_SIZE 64u	/* entries start at this offset of the shared ring */
#define RING_MAX_ORDER 4u	/* largest ring-page-order we advertise by default */
#define RING_ORDER_LIMIT 8u	/* largest order ring_order_bytes() will compute */

/* The 64-byte header at offset 0 of every shared ring (io/ring.h). Guest-writable. */
struct ring_sring_hdr {
	uint32_t req_prod;	/* written by the frontend: requests published */
	uint32_t req_event;	/* written by the backend: notify me when req_prod passes this */
	uint32_t rsp_prod;	/* written by the backend: responses published */
	uint32_t rsp_event;	/* written by the frontend: notify me when rsp_prod passes this */
	uint8_t pvt[4];		/* netif smartpoll / tapif byte; unused by splitpv */
	uint8_t pad[44];	/* reserved, zeroed at init */
};
_Static_assert(sizeof(struct ring_sring_hdr) == RING_HDR_SIZE, "shared ring header is 64 bytes");

/* Backend side of one shared ring; caller allocates. */
struct ring_back {
	volatile struct ring_sring_hdr *sring; /* the shared page(s), header at offset 0 */
	uint8_t *ents;		/* sring + 64 */
	uint32_t ent_size;	/* bytes per slot = sizeof(union <name>_sring_entry) */
	uint32_t nr_ents;	/* power of two */
	uint32_t req_cons;	/* private: next request slot to take */
	uint32_t rsp_prod_pvt;	/* private: next response slot to fill */
	bool broken;		/* set once a bogus producer index was seen; sticky */
};

/* Frontend side of one shared ring; caller allocates. */
struct ring_front {
	volatile struct ring_sring_hdr *sring; /* the shared page(s), header at offset 0 */
	uint8_t *ents;		/* sring + 64 */
	uint32_t ent_size;	/* bytes per slot */
	uint32_t nr_ents;	/* power of two */
	uint32_t req_prod_pvt;	/* private: next request slot to fill */
	uint32_t rsp_cons;	/* private: next response slot to take */
	bool broken;		/* set once a bogus rsp_prod was seen; sticky */
};

/*
 * Entries that fit in ring_bytes (header excluded), rounded down to a power of two as
 * io/ring.h's __RING_SIZE does. 0 if not even one entry fits or ent_size is 0.
 */
unsigned ring_nr_ents(size_t ring_bytes, size_t ent_size);

/* *bytes = 4096 << order for order 0..RING_ORDER_LIMIT; -EINVAL otherwise. */
int ring_order_bytes(unsigned order, size_t *bytes);

/* ---- backend ---- */

/*
 * BACK_RING_ATTACH: attach at index start (0 for a fresh ring; a restarted worker passes
 * the index it resumes at). Does not write the shared page. ring_bytes = 4096 << order.
 * -EINVAL if sring is NULL or the ring is too small for one entry.
 */
int ring_back_attach(struct ring_back *r, void *sring, size_t ring_bytes, size_t ent_size,
		     uint32_t start);

/*
 * Read req_prod once (acquire). If it is impossible — more than nr_ents ahead of
 * rsp_prod_pvt (RING_REQUEST_PROD_OVERFLOW), or behind req_cons — mark the ring broken
 * and return -EPROTO, now and on every later call. Otherwise copy up to max requests
 * (req_size bytes each, req_size <= ent_size) into the private array reqs, in order,
 * each slot read exactly once, and advance req_cons. Never takes more than the free
 * response space allows (RING_REQUEST_CONS_OVERFLOW). Returns the count copied (0..max).
 */
int ring_back_take(struct ring_back *r, void *reqs, size_t req_size, unsigned int max);

/*
 * Write one fully-built private response (rsp_size <= ent_size) into slot rsp_prod_pvt
 * and advance it. The caller guarantees it is answering a request it took. Not visible
 * to the frontend until ring_back_push().
 */
static inline void ring_back_put(struct ring_back *r, const void *rsp, size_t rsp_size);

/*
 * RING_PUSH_RESPONSES_AND_CHECK_NOTIFY: publish rsp_prod (release), full barrier; true if
 * the frontend asked to be notified (rsp_event in (old, new]).
 */
bool ring_back_push(struct ring_back *r);

/*
 * RING_FINAL_CHECK_FOR_REQUESTS: true if requests are waiting (or req_prod is bogus, so
 * that the next ring_back_take() reports it); otherwise set req_event = req_cons + 1,
 * full barrier, re-check. Always false once broken.
 */
bool ring_back_final_check(struct ring_back *r);

/*
 * Requests published and not yet taken, limited by free response space; bounded by
 * nr_ents even if req_prod is bogus. 0 once broken.
 */
uint32_t ring_back_unconsumed(const struct ring_back *r);

/* ---- frontend ---- */

/*
 * SHARED_RING_INIT + FRONT_RING_INIT: zero the header (req_event = rsp_event = 1) and
 * start at index 0. -EINVAL if sring is NULL or the ring is too small for one entry.
 */
int ring_front_init(struct ring_front *r, void *sring, size_t ring_bytes, size_t ent_size);

/* No init: resume at the indices currently in the shared header. -EINVAL as above. */
int ring_front_attach(struct ring_front *r, void *sring, size_t ring_bytes, size_t ent_size);

/* Free request slots (nr_ents minus requests not yet answered and consumed). */
static inline uint32_t ring_front_free(const struct ring_front *r);

/* Copy one request (req_size <= ent_size) into the next slot. -ENOSPC if full, -EPROTO once broken. */
static inline int ring_front_put(struct ring_front *r, const void *req, size_t req_size);

/* Publish requests (release), full barrier; true = notify the backend (req_event in range). */
bool ring_front_push(struct ring_front *r);

/*
 * Copy out up to max responses (rsp_size bytes each) in order, advance rsp_cons; returns
 * the count. -EPROTO (sticky) if rsp_prod claims more responses than requests outstanding.
 */
int ring_front_take(struct ring_front *r, void *rsps, size_t rsp_size, unsigned int max);

/* RING_FINAL_CHECK_FOR_RESPONSES: as ring_back_final_check() with rsp_event. */
bool ring_front_final_check(struct ring_front *r);

/*
 * ---- per-entry hot path, inline so a constant entry size becomes plain moves ----
 * These touch only private indices and the slot being written; nothing is published
 * until the matching push.
 */

static inline void ring_back_put(struct ring_back *r, const void *rsp, size_t rsp_size)
{
	uint32_t idx = r->rsp_prod_pvt & (r->nr_ents - 1);

	assert(rsp_size <= r->ent_size);
	/* Responses never outnumber requests taken. */
	assert(r->req_cons - r->rsp_prod_pvt - 1 < r->nr_ents);
	memcpy(r->ents + (size_t)idx * r->ent_size, rsp, rsp_size);
	r->rsp_prod_pvt++;
}

static inline uint32_t ring_front_free(const struct ring_front *r)
{
	uint32_t used = r->req_prod_pvt - r->rsp_cons;

	return used >= r->nr_ents ? 0 : r->nr_ents - used;
}

static inline int ring_front_put(struct ring_front *r, const void *req, size_t req_size)
{
	uint32_t idx;

	if (r->broken)
		return -EPROTO;
	assert(req_size <= r->ent_size);
	if (ring_front_free(r) == 0)
		return -ENOSPC;
	idx = r->req_prod_pvt & (r->nr_ents - 1);
	memcpy(r->ents + (size_t)idx * r->ent_size, req, req_size);
	r->req_prod_pvt++;
	return 0;
}

#endif
