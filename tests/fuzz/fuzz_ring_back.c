/*
 * fuzz_ring_back — the backend half of ring/ring.c against a hostile frontend: the input
 * picks the ring order and entry type, the shared header, a start index and the slot
 * contents, then scripts take/put/push/final_check steps and frontend index scribbles.
 * Invariants checked: no access outside the exactly-sized ring (ASan), bounded loops,
 * bogus producer indices always reported, indices and copies consistent.
 */
#include "ring/ring.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR_BYTES 22	/* order, type, start[4], header[16] */
#define MAX_STEPS 512
#define MAX_BATCH 64

struct ent_type {
	uint32_t ent_size; /* slot */
	uint32_t req_size; /* copied per request */
	uint32_t rsp_size; /* written per response */
};

/* blkif, blkif x86_32, netif tx, netif rx, netif ctrl; plus a partial copy. */
static const struct ent_type types[] = {
	{ 112, 112, 16 }, { 108, 108, 12 }, { 12, 12, 4 }, { 8, 8, 8 }, { 16, 16, 12 }, { 112, 24, 16 },
};

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "fuzz_ring_back: %s:%d: %s\n", __FILE__, __LINE__, \
				#cond);                                                  \
			abort();                                                         \
		}                                                                        \
	} while (0)

static bool prod_overflows(const struct ring_back *b, uint32_t prod)
{
	return prod - b->rsp_prod_pvt > b->nr_ents;
}

/* One take with its invariants; returns the count or -EPROTO. */
static int checked_take(struct ring_back *b, const struct ent_type *t, uint8_t *reqs,
			unsigned max)
{
	uint32_t prod = b->sring->req_prod;
	uint32_t cons = b->req_cons;
	uint32_t in_flight = cons - b->rsp_prod_pvt;
	bool was_broken = b->broken;
	int n = ring_back_take(b, reqs, t->req_size, max);

	if (was_broken || prod_overflows(b, prod)) {
		CHECK(n == -EPROTO && b->broken && b->req_cons == cons);
		return n;
	}
	if (n < 0) {
		/* Only other rejection: req_prod behind req_cons. */
		CHECK(n == -EPROTO && b->broken && prod - b->rsp_prod_pvt < in_flight);
		return n;
	}
	CHECK((unsigned)n <= max);
	CHECK((uint32_t)n <= b->nr_ents - in_flight);
	CHECK((uint32_t)n <= prod - cons);
	CHECK(b->req_cons == cons + (uint32_t)n);
	for (int i = 0; i < n; i++) {
		uint32_t slot = (cons + (uint32_t)i) & (b->nr_ents - 1);

		CHECK(memcmp(reqs + (size_t)i * t->req_size, b->ents + (size_t)slot * t->ent_size,
			     t->req_size) == 0);
	}
	return n;
}

static void answer(struct ring_back *b, const struct ent_type *t, unsigned k, uint8_t fill)
{
	uint8_t rsp[16];

	memset(rsp, fill, sizeof(rsp));
	while (k-- && b->req_cons != b->rsp_prod_pvt)
		ring_back_put(b, rsp, t->rsp_size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t reqs[MAX_BATCH * 112];
	const struct ent_type *t;
	struct ring_back b;
	struct ring_sring_hdr *s;
	size_t ring_bytes, pos;
	unsigned order;
	uint32_t start;
	int rc;

	if (size < HDR_BYTES)
		return 0;
	order = data[0] % (RING_MAX_ORDER + 1);
	t = &types[data[1] % (sizeof(types) / sizeof(types[0]))];
	start = rd32(data + 2);
	CHECK(ring_order_bytes(order, &ring_bytes) == 0);
	s = malloc(ring_bytes); /* exactly the ring: ASan flags any stray slot access */
	CHECK(s != NULL);
	/* Slots: the input repeated; header: straight from the input. */
	for (size_t i = 0; i < ring_bytes; i++)
		((uint8_t *)s)[i] = data[i % size];
	memcpy(s, data + 6, 16);
	rc = ring_back_attach(&b, s, ring_bytes, t->ent_size, start);
	CHECK(rc == 0);
	CHECK(b.nr_ents == ring_nr_ents(ring_bytes, t->ent_size));
	CHECK((size_t)t->ent_size * b.nr_ents + RING_HDR_SIZE <= ring_bytes);

	pos = HDR_BYTES;
	for (unsigned step = 0; step < MAX_STEPS && pos < size; step++) {
		uint8_t op = data[pos++];
		uint8_t arg = pos < size ? data[pos++] : 0;

		CHECK(ring_back_unconsumed(&b) <= b.nr_ents);
		switch (op % 8) {
		case 0: /* take a batch */
			checked_take(&b, t, reqs, 1 + arg % MAX_BATCH);
			break;
		case 1: /* answer some */
			answer(&b, t, arg % 40, arg);
			break;
		case 2:
			ring_back_push(&b);
			CHECK(s->rsp_prod == b.rsp_prod_pvt);
			break;
		case 3: /* frontend moves req_prod by a small step, either way */
			s->req_prod += (uint32_t)(int8_t)arg;
			break;
		case 4: /* frontend writes an arbitrary req_prod */
			if (pos + 4 <= size) {
				s->req_prod = rd32(data + pos);
				pos += 4;
			}
			break;
		case 5: /* frontend scribbles on events, rsp_prod and a slot */
			s->rsp_event = s->req_prod + arg;
			s->rsp_prod ^= arg;
			b.ents[((size_t)arg * 131) % ((size_t)b.nr_ents * t->ent_size)] ^= 0xff;
			break;
		case 6:
		case 7: { /* the real service loop: must terminate with a static req_prod */
			unsigned guard = 0;

			while (ring_back_final_check(&b)) {
				int n = checked_take(&b, t, reqs, 1 + arg % MAX_BATCH);

				CHECK(++guard <= 2 * b.nr_ents + 4);
				if (n <= 0) {
					/* final_check said work; only a broken ring yields none. */
					CHECK(n == -EPROTO);
					break;
				}
				answer(&b, t, (unsigned)n, arg);
				ring_back_push(&b);
			}
			if (!b.broken)
				CHECK(s->req_event == b.req_cons + 1);
			break;
		}
		}
		if (b.broken)
			CHECK(ring_back_take(&b, reqs, t->req_size, 1) == -EPROTO);
	}
	free(s);
	return 0;
}
