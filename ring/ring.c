/*
 * ring — shared-ring engine: index arithmetic, barriers, copy-out and event suppression
 * for both ends of an io/ring.h ring. Contract in ring/ring.h; the frontend half serves
 * frontend-shim and tests, the backend half every splitpv backend.
 */
#include "ring/ring.h"

#include "ring/abi.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

/*
 * Shared indices are accessed with __atomic builtins on the volatile header: the load of
 * a producer index is an acquire (slot contents are read after it), the store of our own
 * producer index is a release (slot contents are written before it), and the fence between
 * publishing and reading the peer's event index is sequentially consistent, as xen_mb().
 */
#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LOAD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define STORE_RLX(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define FULL_FENCE() __atomic_thread_fence(__ATOMIC_SEQ_CST)

_Static_assert(offsetof(struct blkif_sring, req_prod) ==
	       offsetof(struct ring_sring_hdr, req_prod), "req_prod");
_Static_assert(offsetof(struct blkif_sring, req_event) ==
	       offsetof(struct ring_sring_hdr, req_event), "req_event");
_Static_assert(offsetof(struct blkif_sring, rsp_prod) ==
	       offsetof(struct ring_sring_hdr, rsp_prod), "rsp_prod");
_Static_assert(offsetof(struct blkif_sring, rsp_event) ==
	       offsetof(struct ring_sring_hdr, rsp_event), "rsp_event");
_Static_assert(offsetof(struct blkif_sring, pvt) == offsetof(struct ring_sring_hdr, pvt), "pvt");
_Static_assert(offsetof(struct blkif_sring, ring) == RING_HDR_SIZE, "entries at 64");

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

unsigned ring_nr_ents(size_t ring_bytes, size_t ent_size)
{
	size_t n;
	unsigned p = 1;

	if (ent_size == 0 || ring_bytes < RING_HDR_SIZE + ent_size)
		return 0;
	n = (ring_bytes - RING_HDR_SIZE) / ent_size;
	if (n > (1u << 31))
		n = 1u << 31;
	while ((size_t)p * 2 <= n)
		p *= 2;
	return p;
}

int ring_order_bytes(unsigned order, size_t *bytes)
{
	if (order > RING_ORDER_LIMIT)
		return -EINVAL;
	*bytes = (size_t)RING_PAGE_SIZE << order;
	return 0;
}

static int ring_geometry(void *sring, size_t ring_bytes, size_t ent_size, uint32_t *nr)
{
	if (!sring)
		return -EINVAL;
	*nr = ring_nr_ents(ring_bytes, ent_size);
	return *nr ? 0 : -EINVAL;
}

/* ---- backend ---- */

int ring_back_attach(struct ring_back *r, void *sring, size_t ring_bytes, size_t ent_size,
		     uint32_t start)
{
	uint32_t nr;
	int rc = ring_geometry(sring, ring_bytes, ent_size, &nr);

	if (rc)
		return rc;
	r->sring = sring;
	r->ents = (uint8_t *)sring + RING_HDR_SIZE;
	r->ent_size = (uint32_t)ent_size;
	r->nr_ents = nr;
	r->req_cons = start;
	r->rsp_prod_pvt = start;
	r->broken = false;
	return 0;
}

/*
 * A producer index the frontend could legitimately have written lies in
 * [req_cons, rsp_prod_pvt + nr_ents] (modulo 2^32): past everything we took, and never
 * more than a ring ahead of the responses we produced. Anything else is a hostile or
 * corrupt frontend.
 */
static inline bool back_prod_bogus(const struct ring_back *r, uint32_t prod)
{
	uint32_t ahead = prod - r->rsp_prod_pvt;

	return ahead > r->nr_ents || ahead < r->req_cons - r->rsp_prod_pvt;
}

/* RING_HAS_UNCONSUMED_REQUESTS for a producer value read once. */
static inline uint32_t back_pending(const struct ring_back *r, uint32_t prod)
{
	uint32_t room = r->nr_ents - (r->req_cons - r->rsp_prod_pvt);

	return min_u32(prod - r->req_cons, room);
}

int ring_back_take(struct ring_back *r, void *reqs, size_t req_size, unsigned int max)
{
	uint32_t prod, cons, n, mask, idx, first;
	const size_t ent = r->ent_size;
	uint8_t *dst = reqs;

	if (r->broken)
		return -EPROTO;
	assert(req_size > 0 && req_size <= ent);
	/* One read of req_prod; the acquire orders every slot read below after it. */
	prod = LOAD_ACQ(&r->sring->req_prod);
	if (back_prod_bogus(r, prod)) {
		r->broken = true;
		return -EPROTO;
	}
	cons = r->req_cons;
	/* Also capped by free response space (RING_REQUEST_CONS_OVERFLOW). */
	n = min_u32(back_pending(r, prod), max);
	if (n == 0)
		return 0;
	mask = r->nr_ents - 1;
	idx = cons & mask;
	if (req_size == ent) {
		/* Contiguous slots: at most two copies, each slot still read once. */
		first = min_u32(n, r->nr_ents - idx);
		memcpy(dst, r->ents + idx * ent, first * ent);
		if (n > first)
			memcpy(dst + first * ent, r->ents, (n - first) * ent);
	} else {
		for (uint32_t i = 0; i < n; i++)
			memcpy(dst + i * req_size, r->ents + ((cons + i) & mask) * ent, req_size);
	}
	r->req_cons = cons + n;
	return (int)n;
}

bool ring_back_push(struct ring_back *r)
{
	uint32_t old = LOAD_RLX(&r->sring->rsp_prod);
	uint32_t new = r->rsp_prod_pvt;

	STORE_REL(&r->sring->rsp_prod, new);
	/* The frontend must see rsp_prod before we read its rsp_event, or both may sleep. */
	FULL_FENCE();
	return (uint32_t)(new - LOAD_RLX(&r->sring->rsp_event)) < (uint32_t)(new - old);
}

uint32_t ring_back_unconsumed(const struct ring_back *r)
{
	if (r->broken)
		return 0;
	return back_pending(r, LOAD_ACQ(&r->sring->req_prod));
}

bool ring_back_final_check(struct ring_back *r)
{
	uint32_t prod;

	if (r->broken)
		return false;
	prod = LOAD_ACQ(&r->sring->req_prod);
	/* A bogus index counts as work so the next take reports it. */
	if (back_pending(r, prod) || back_prod_bogus(r, prod))
		return true;
	STORE_RLX(&r->sring->req_event, r->req_cons + 1);
	/* req_event must be visible before we re-read req_prod (closes the sleep race). */
	FULL_FENCE();
	prod = LOAD_ACQ(&r->sring->req_prod);
	return back_pending(r, prod) || back_prod_bogus(r, prod);
}

/* ---- frontend ---- */

int ring_front_attach(struct ring_front *r, void *sring, size_t ring_bytes, size_t ent_size)
{
	uint32_t nr;
	int rc = ring_geometry(sring, ring_bytes, ent_size, &nr);
	volatile struct ring_sring_hdr *s = sring;

	if (rc)
		return rc;
	r->sring = s;
	r->ents = (uint8_t *)sring + RING_HDR_SIZE;
	r->ent_size = (uint32_t)ent_size;
	r->nr_ents = nr;
	/* The consumer index is private; responses already published count as consumed. */
	r->req_prod_pvt = LOAD_RLX(&s->req_prod);
	r->rsp_cons = LOAD_RLX(&s->rsp_prod);
	r->broken = r->req_prod_pvt - r->rsp_cons > nr;
	return 0;
}

int ring_front_init(struct ring_front *r, void *sring, size_t ring_bytes, size_t ent_size)
{
	uint32_t nr;
	int rc = ring_geometry(sring, ring_bytes, ent_size, &nr);

	if (rc)
		return rc;
	memset(sring, 0, RING_HDR_SIZE);
	((struct ring_sring_hdr *)sring)->req_event = 1;
	((struct ring_sring_hdr *)sring)->rsp_event = 1;
	return ring_front_attach(r, sring, ring_bytes, ent_size);
}

bool ring_front_push(struct ring_front *r)
{
	uint32_t old = LOAD_RLX(&r->sring->req_prod);
	uint32_t new = r->req_prod_pvt;

	STORE_REL(&r->sring->req_prod, new);
	/* The backend must see req_prod before we read its req_event. */
	FULL_FENCE();
	return (uint32_t)(new - LOAD_RLX(&r->sring->req_event)) < (uint32_t)(new - old);
}

/* rsp_prod may not pass the requests we produced, nor go behind what we consumed. */
static inline bool front_prod_bogus(const struct ring_front *r, uint32_t prod)
{
	return prod - r->rsp_cons > r->req_prod_pvt - r->rsp_cons;
}

int ring_front_take(struct ring_front *r, void *rsps, size_t rsp_size, unsigned int max)
{
	uint32_t prod, cons, n, mask;
	uint8_t *dst = rsps;

	if (r->broken)
		return -EPROTO;
	assert(rsp_size > 0 && rsp_size <= r->ent_size);
	prod = LOAD_ACQ(&r->sring->rsp_prod);
	if (front_prod_bogus(r, prod)) {
		r->broken = true;
		return -EPROTO;
	}
	cons = r->rsp_cons;
	n = min_u32(prod - cons, max);
	mask = r->nr_ents - 1;
	for (uint32_t i = 0; i < n; i++)
		memcpy(dst + i * rsp_size, r->ents + (size_t)((cons + i) & mask) * r->ent_size,
		       rsp_size);
	r->rsp_cons = cons + n;
	return (int)n;
}

bool ring_front_final_check(struct ring_front *r)
{
	uint32_t prod;

	if (r->broken)
		return false;
	prod = LOAD_ACQ(&r->sring->rsp_prod);
	if (prod != r->rsp_cons)
		return true;
	STORE_RLX(&r->sring->rsp_event, r->rsp_cons + 1);
	FULL_FENCE();
	return LOAD_ACQ(&r->sring->rsp_prod) != r->rsp_cons;
}
