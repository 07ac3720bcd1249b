/*
 * Unit tests for ring/ring.c: index arithmetic across 2^32, bogus producer indices,
 * event suppression in both directions, copy-out, ring geometry for every entry type.
 */
#include "ring/abi.h"
#include "ring/ring.h"
#include "tests/unit/unit.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define BLK_ENT sizeof(union blkif_sring_entry)

/* A ring of exactly ring_bytes (so ASan catches any access past it), header zeroed. */
static void *ring_alloc(size_t ring_bytes)
{
	void *p = malloc(ring_bytes);

	if (p)
		memset(p, 0, ring_bytes);
	return p;
}

static struct blkif_request make_req(uint64_t id)
{
	struct blkif_request q;

	memset(&q, (int)(id & 0xff), sizeof(q));
	q.operation = BLKIF_OP_READ;
	q.nr_segments = 1;
	q.id = id;
	q.sector_number = id * 8;
	return q;
}

static struct blkif_response make_rsp(uint64_t id)
{
	struct blkif_response s;

	memset(&s, 0, sizeof(s));
	s.id = id;
	s.operation = BLKIF_OP_READ;
	s.status = BLKIF_RSP_OKAY;
	return s;
}

/* Set up a front and back on one fresh blkif ring of 4096 << order bytes. */
static void *pair_init(unsigned order, struct ring_front *f, struct ring_back *b)
{
	size_t bytes;
	void *s;

	CU_ASSERT_FATAL(ring_order_bytes(order, &bytes) == 0);
	s = ring_alloc(bytes);
	CU_ASSERT_FATAL(s != NULL);
	CU_ASSERT_FATAL(ring_front_init(f, s, bytes, BLK_ENT) == 0);
	CU_ASSERT_FATAL(ring_back_attach(b, s, bytes, BLK_ENT, 0) == 0);
	return s;
}

static void ring_prod_overflow_marks_broken_and_takes_nothing(void)
{
	struct ring_front f;
	struct ring_back b;
	struct blkif_request reqs[64];
	struct ring_sring_hdr *s = pair_init(0, &f, &b);

	/* 33 requests claimed on a 32-slot ring with nothing answered. */
	s->req_prod = b.nr_ents + 1;
	CU_ASSERT_EQUAL(ring_back_take(&b, reqs, sizeof(reqs[0]), 64), -EPROTO);
	CU_ASSERT_TRUE(b.broken);
	CU_ASSERT_EQUAL(b.req_cons, 0);
	/* Sticky: a frontend that "fixes" the index gets nothing more. */
	s->req_prod = 1;
	CU_ASSERT_EQUAL(ring_back_take(&b, reqs, sizeof(reqs[0]), 64), -EPROTO);
	CU_ASSERT_EQUAL(b.req_cons, 0);
	CU_ASSERT_FALSE(ring_back_final_check(&b));
	CU_ASSERT_EQUAL(ring_back_unconsumed(&b), 0);
	free(s);
}

static void ring_prod_exactly_full_is_not_overflow(void)
{
	struct ring_front f;
	struct ring_back b;
	struct blkif_request reqs[64];
	struct ring_sring_hdr *s = pair_init(0, &f, &b);

	s->req_prod = b.nr_ents;
	CU_ASSERT_EQUAL(ring_back_take(&b, reqs, sizeof(reqs[0]), 64), (int)b.nr_ents);
	CU_ASSERT_FALSE(b.broken);
	free(s);
}

static void ring_prod_moving_backwards_marks_broken(void)
{
	struct ring_front f;
	struct ring_back b;
	struct blkif_request reqs[8];
	struct ring_sring_hdr *s = pair_init(0, &f, &b);

	s->req_prod = 5;
	CU_ASSERT_EQUAL(ring_back_take(&b, reqs, sizeof(reqs[0]), 8), 5);
	/* req_prod behind req_cons: req_prod - rsp_prod_pvt alone would not notice. */
	s->req_prod = 3;
	CU_ASSERT_EQUAL(ring_back_take(&b, reqs, sizeof(reqs[0]), 8), -EPROTO);
	CU_ASSERT_TRUE(b.broken);
	CU_ASSERT_EQUAL(b.req_cons, 5);
	free(s);
}

/* Push n requests with ids first.., take them all, answer them all, consume answers. */
static void round_trip(struct ring_front *f, struct ring_back *b, uint64_t first, unsigned n)
{
	struct blkif_request in[64];
	struct blkif_response out[64];
	int got;

	CU_ASSERT_FATAL(n <= 64);
	for (unsigned i = 0; i < n; i++) {
		struct blkif_request q = make_req(first + i);

		CU_ASSERT_EQUAL_FATAL(ring_front_put(f, &q, sizeof(q)), 0);
	}
	ring_front_push(f);
	got = ring_back_take(b, in, sizeof(in[0]), 64);
	CU_ASSERT_EQUAL_FATAL(got, (int)n);
	for (unsigned i = 0; i < n; i++) {
		struct blkif_request want = make_req(first + i);
		struct blkif_response s = make_rsp(in[i].id);

		CU_ASSERT_EQUAL(memcmp(&in[i], &want, sizeof(want)), 0);
		ring_back_put(b, &s, sizeof(s));
	}
	ring_back_push(b);
	got = ring_front_take(f, out, sizeof(out[0]), 64);
	CU_ASSERT_EQUAL_FATAL(got, (int)n);
	for (unsigned i = 0; i < n; i++)
		CU_ASSERT_EQUAL(out[i].id, first + i);
}

static void ring_indices_wrap_past_2_pow_32(void)
{
	const uint32_t start = 0xFFFFFFF0u;
	struct ring_front f;
	struct ring_back b;
	size_t bytes = RING_PAGE_SIZE;
	struct ring_sring_hdr *s = ring_alloc(bytes);
	uint64_t id = 1;

	CU_ASSERT_FATAL(s != NULL);
	s->req_prod = start;
	s->rsp_prod = start;
	s->req_event = start + 1;
	s->rsp_event = start + 1;
	CU_ASSERT_FATAL(ring_front_attach(&f, s, bytes, BLK_ENT) == 0);
	CU_ASSERT_FATAL(ring_back_attach(&b, s, bytes, BLK_ENT, start) == 0);
	CU_ASSERT_EQUAL(f.req_prod_pvt, start);
	CU_ASSERT_EQUAL(ring_front_free(&f), 32);
	/* Batches of 7 and a full ring straddle the wrap and the slot boundary. */
	for (int round = 0; round < 6; round++) {
		unsigned n = round == 3 ? 32 : 7;

		round_trip(&f, &b, id, n);
		id += n;
		CU_ASSERT_FALSE(b.broken);
		CU_ASSERT_FALSE(f.broken);
	}
	CU_ASSERT_EQUAL(b.req_cons, start + (uint32_t)(id - 1));
	CU_ASSERT_TRUE(b.req_cons < start); /* wrapped */
	CU_ASSERT_EQUAL(s->rsp_prod, b.req_cons);
	CU_ASSERT_EQUAL(ring_front_free(&f), 32);
	/* Overflow detection still works after the wrap. */
	s->req_prod = b.rsp_prod_pvt + 33;
	CU_ASSERT_EQUAL(ring_back_take(&b, NULL, BLK_ENT, 0), -EPROTO);
	free(s);
}

static void ring_back_notifies_only_when_rsp_event_in_range(void)
{
	struct ring_front f;
	struct ring_back b;
	struct blkif_request reqs[8];
	struct blkif_response r = make_rsp(0);
	struct ring_sring_hdr *s = pair_init(0, &f, &b);

	s->req_prod = 8;
	CU_ASSERT_EQUAL_FATAL(ring_back_take(&b, reqs, sizeof(reqs[0]), 8), 8);
	/* rsp_event = 1 (init): the first response notifies. */
	ring_back_put(&b, &r, sizeof(r));
	CU_ASSERT_TRUE(ring_back_push(&b)); /* (0,1] contains 1 */
	/* The frontend has not re-armed: no more notifications. */
	ring_back_put(&b, &r, sizeof(r));
	CU_ASSERT_FALSE(ring_back_push(&b)); /* (1,2] does not contain 1 */
	/* Frontend asks for the event at index 4: pushing to 3 is silent, to 5 notifies. */
	s->rsp_event = 4;
	ring_back_put(&b, &r, sizeof(r));
	CU_ASSERT_FALSE(ring_back_push(&b)); /* (2,3] */
	ring_back_put(&b, &r, sizeof(r));
	ring_back_put(&b, &r, sizeof(r));
	CU_ASSERT_TRUE(ring_back_push(&b)); /* (3,5] contains 4 */
	/* Event exactly at the new index notifies; one past it does not. */
	s->rsp_event = 6;
	ring_back_put(&b, &r, sizeof(r));
	CU_ASSERT_TRUE(ring_back_push(&b)); /* (5,6] */
	s->rsp_event = 8;
	ring_back_put(&b, &r, sizeof(r));
	CU_ASSERT_FALSE(ring_back_push(&b)); /* (6,7] */
	/* Pushing nothing never notifies. */
	s->rsp_event = 7;
	CU_ASSERT_FALSE(ring_back_push(&b));
	CU_ASSERT_EQUAL(s->rsp_prod, 7);
	free(s);
}

static void ring_front_notifies_only_when_req_event_in_range(void)
{
	struct ring_front f;
	struct ring_back b;
	struct blkif_request q = make_req(1);
	struct ring_sring_hdr *s = pair_init(0, &f, &b);

	CU_ASSERT_EQUAL(s->req_event, 1);
	CU_ASSERT_EQUAL(s->rsp_event, 1);
	ring_front_put(&f, &q, sizeof(q));
	CU_ASSERT_TRUE(ring_front_push(&f)); /* (0,1] */
	ring_front_put(&f, &q, sizeof(q));
	CU_ASSERT_FALSE(ring_front_push(&f)); /* (1,2], event 1 */
	s->req_event = 5;
	ring_front_put(&f, &q, sizeof(q));
	ring_front_put(&f, &q, sizeof(q));
	CU_ASSERT_FALSE(ring_front_push(&f)); /* (2,4] */
	ring_front_put(&f, &q, sizeof(q));
	ring_front_put(&f, &q, sizeof(q));
	CU_ASSERT_TRUE(ring_front_push(&f)); /* (4,6] */
	CU_ASSERT_EQUAL(s->req_prod, 6);
	free(s);
}

static void ring_back_final_check_arms_req_event_when_idle(void)
{
	struct ring_front f;
	struct ring_back b;
	struct blkif_request reqs[4], q = make_req(9);
	struct ring_sring_hdr *s = pair_init(0, &f, &b);

	ring_front_put(&f, &q, sizeof(q));
	ring_front_put(&f, &q, sizeof(q));
	ring_front_push(&f);
	CU_ASSERT_TRUE(ring_back_final_check(&b));
	CU_ASSERT_EQUAL(s->req_event, 1); /* work waiting: not re-armed */
	CU_ASSERT_EQUAL(ring_back_take(&b, reqs, sizeof(reqs[0]), 4), 2);
	CU_ASSERT_FALSE(ring_back_final_check(&b));
	CU_ASSERT_EQUAL(s->req_event, 3);
	/* Re-armed, so the next request notifies. */
	ring_front_put(&f, &q, sizeof(q));
	CU_ASSERT_TRUE(ring_front_push(&f));
	free(s);
}

static void ring_front_final_check_arms_rsp_event_when_idle(void)
{
	struct ring_front f;
	struct ring_back b;
	struct blkif_request reqs[4], q = make_req(9);
	struct blkif_response r = make_rsp(9), out[4];
	struct ring_sring_hdr *s = pair_init(0, &f, &b);

	ring_front_put(&f, &q, sizeof(q));
	ring_front_put(&f, &q, sizeof(q));
	ring_front_push(&f);
	CU_ASSERT_EQUAL(ring_back_take(&b, reqs, sizeof(reqs[0]), 4), 2);
	CU_ASSERT_FALSE(ring_front_final_check(&f));
	CU_ASSERT_EQUAL(s->rsp_event, 1);
	ring_back_put(&b, &r, sizeof(r));
	CU_ASSERT_TRUE(ring_back_push(&b));
	CU_ASSERT_TRUE(ring_front_final_check(&f));
	CU_ASSERT_EQUAL(ring_front_take(&f, out, sizeof(out[0]), 4), 1);
	CU_ASSERT_FALSE(ring_front_final_check(&f));
	CU_ASSERT_EQUAL(s->rsp_event, 2);
	ring_back_put(&b, &r, sizeof(r));
	CU_ASSERT_TRUE(ring_back_push(&b));
	free(s);
}

/*
 * The race final_check exists for: a request is published after the first "no work"
 * look but before req_event is written, so the frontend saw the old req_event and sends
 * no notification. To land the request exactly there, the header page is read-only:
 * the req_event store faults, and the handler (playing the frontend) publishes a request,
 * makes the page writable and lets the store retry. The re-check must see the request.
 */
static struct {
	struct ring_front *f;
	void *page;
	bool front_notified;
	volatile sig_atomic_t faults;
	bool racing_backend; /* true: race the backend's req_event; false: the frontend's */
	struct ring_back *b;
} race;

static void race_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	race.faults++;
	if (mprotect(race.page, RING_PAGE_SIZE, PROT_READ | PROT_WRITE) != 0)
		abort();
	if (race.racing_backend) {
		struct blkif_request q = make_req(77);

		if (ring_front_put(race.f, &q, sizeof(q)) != 0)
			abort();
		race.front_notified = ring_front_push(race.f);
	} else {
		struct blkif_response r = make_rsp(77);

		ring_back_put(race.b, &r, sizeof(r));
		race.front_notified = ring_back_push(race.b);
	}
}

static void run_race(bool racing_backend)
{
	struct ring_front f;
	struct ring_back b;
	struct blkif_request reqs[4], q = make_req(1);
	struct blkif_response out[4], first_rsp = make_rsp(1);
	struct sigaction sa, old;
	void *page = mmap(NULL, RING_PAGE_SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool work;

	CU_ASSERT_FATAL(page != MAP_FAILED);
	CU_ASSERT_FATAL(ring_front_init(&f, page, RING_PAGE_SIZE, BLK_ENT) == 0);
	CU_ASSERT_FATAL(ring_back_attach(&b, page, RING_PAGE_SIZE, BLK_ENT, 0) == 0);
	/* One request and its answer, so both event indices are stale (== 1). */
	ring_front_put(&f, &q, sizeof(q));
	ring_front_push(&f);
	CU_ASSERT_FATAL(ring_back_take(&b, reqs, sizeof(reqs[0]), 4) == 1);
	if (!racing_backend) {
		/* Leave one request outstanding for the racing response. */
		ring_front_put(&f, &q, sizeof(q));
		ring_front_push(&f);
		CU_ASSERT_FATAL(ring_back_take(&b, reqs, sizeof(reqs[0]), 4) == 1);
	}
	ring_back_put(&b, &first_rsp, sizeof(first_rsp));
	ring_back_push(&b);
	CU_ASSERT_FATAL(ring_front_take(&f, out, sizeof(out[0]), 4) == 1);

	memset(&race, 0, sizeof(race));
	race.f = &f;
	race.b = &b;
	race.page = page;
	race.racing_backend = racing_backend;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = race_segv;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	CU_ASSERT_FATAL(sigaction(SIGSEGV, &sa, &old) == 0);
	CU_ASSERT_FATAL(mprotect(page, RING_PAGE_SIZE, PROT_READ) == 0);
	work = racing_backend ? ring_back_final_check(&b) : ring_front_final_check(&f);
	sigaction(SIGSEGV, &old, NULL);
	mprotect(page, RING_PAGE_SIZE, PROT_READ | PROT_WRITE);

	CU_ASSERT_EQUAL(race.faults, 1);
	CU_ASSERT_FALSE(race.front_notified); /* the peer really did skip the notification */
	CU_ASSERT_TRUE(work);		      /* ...and the re-check caught it anyway */
	if (racing_backend) {
		CU_ASSERT_EQUAL(ring_back_take(&b, reqs, sizeof(reqs[0]), 4), 1);
	} else {
		CU_ASSERT_EQUAL(ring_front_take(&f, out, sizeof(out[0]), 4), 1);
	}
	munmap(page, RING_PAGE_SIZE);
}

static void ring_back_final_check_catches_request_racing_in(void)
{
	run_race(true);
}

static void ring_front_final_check_catches_response_racing_in(void)
{
	run_race(false);
}

static void ring_back_never_takes_more_than_free_response_slots(void)
{
	struct ring_front f;
	struct ring_back b;
	struct blkif_request reqs[64];
	struct blkif_response r = make_rsp(0);
	struct ring_sring_hdr *s = pair_init(0, &f, &b);

	s->req_prod = 32;
	CU_ASSERT_EQUAL(ring_back_take(&b, reqs, sizeof(reqs[0]), 20), 20);
	CU_ASSERT_EQUAL(ring_back_take(&b, reqs, sizeof(reqs[0]), 64), 12);
	/* All 32 in flight. The frontend claims 8 more before any response: no room. */
	s->req_prod = 40;
	CU_ASSERT_EQUAL(ring_back_unconsumed(&b), 0);
	/* Three answered: exactly three more slots may be consumed. */
	for (int i = 0; i < 3; i++)
		ring_back_put(&b, &r, sizeof(r));
	CU_ASSERT_EQUAL(ring_back_unconsumed(&b), 3);
	/* But taking now exposes req_prod as impossible (40 - 3 > 32). */
	CU_ASSERT_EQUAL(ring_back_take(&b, reqs, sizeof(reqs[0]), 64), -EPROTO);
	CU_ASSERT_EQUAL(b.req_cons, 32);
	free(s);
}

static void ring_unconsumed_is_bounded_when_req_prod_is_bogus(void)
{
	struct ring_front f;
	struct ring_back b;
	struct ring_sring_hdr *s = pair_init(0, &f, &b);

	s->req_prod = 0x80000000u;
	CU_ASSERT_TRUE(ring_back_unconsumed(&b) <= b.nr_ents);
	CU_ASSERT_TRUE(ring_back_final_check(&b)); /* so the caller takes and learns */
	CU_ASSERT_EQUAL(ring_back_take(&b, NULL, BLK_ENT, 0), -EPROTO);
	free(s);
}

struct geometry {
	const char *what;
	size_t ent_size;
	unsigned per_order[5];
};

static void ring_sizes_match_xen_for_orders_0_to_4(void)
{
	static const struct geometry g[] = {
		{ "blkif", sizeof(union blkif_sring_entry), { 32, 64, 128, 256, 512 } },
		{ "blkif x86_32", sizeof(union blkif_x86_32_sring_entry), { 32, 64, 128, 256, 512 } },
		{ "netif tx", sizeof(union netif_tx_sring_entry), { 256, 512, 1024, 2048, 4096 } },
		{ "netif rx", sizeof(union netif_rx_sring_entry), { 256, 512, 1024, 2048, 4096 } },
		{ "netif ctrl", 16, { 128, 256, 512, 1024, 2048 } },
	};

	for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
		for (unsigned order = 0; order <= RING_MAX_ORDER; order++) {
			size_t bytes;
			struct ring_front f;
			struct ring_back b;
			uint8_t *s, req[112], got[112];
			unsigned n;

			CU_ASSERT_FATAL(ring_order_bytes(order, &bytes) == 0);
			CU_ASSERT_EQUAL(bytes, (size_t)4096 << order);
			CU_ASSERT_EQUAL(ring_nr_ents(bytes, g[i].ent_size), g[i].per_order[order]);
			s = ring_alloc(bytes);
			CU_ASSERT_FATAL(s != NULL);
			CU_ASSERT_FATAL(ring_front_init(&f, s, bytes, g[i].ent_size) == 0);
			CU_ASSERT_FATAL(ring_back_attach(&b, s, bytes, g[i].ent_size, 0) == 0);
			CU_ASSERT_EQUAL(b.nr_ents, g[i].per_order[order]);
			CU_ASSERT_PTR_EQUAL(b.ents, s + 64);
			/* Fill every slot (the last one ends inside the allocation), drain them. */
			n = 0;
			while (ring_front_free(&f)) {
				memset(req, (int)(n & 0xff), sizeof(req));
				CU_ASSERT_EQUAL_FATAL(ring_front_put(&f, req, g[i].ent_size), 0);
				n++;
			}
			CU_ASSERT_EQUAL(n, g[i].per_order[order]);
			CU_ASSERT_EQUAL(ring_front_put(&f, req, g[i].ent_size), -ENOSPC);
			ring_front_push(&f);
			for (unsigned k = 0; k < n; k++) {
				CU_ASSERT_EQUAL_FATAL(ring_back_take(&b, got, g[i].ent_size, 1), 1);
				CU_ASSERT_EQUAL(got[0], k & 0xff);
				CU_ASSERT_EQUAL(got[g[i].ent_size - 1], k & 0xff);
			}
			CU_ASSERT_EQUAL(ring_back_take(&b, got, g[i].ent_size, 1), 0);
			free(s);
		}
	}
	/* Orders up to 8 compute; beyond is refused. */
	{
		size_t bytes = 0;

		CU_ASSERT_EQUAL(ring_order_bytes(8, &bytes), 0);
		CU_ASSERT_EQUAL(bytes, (size_t)4096 << 8);
		CU_ASSERT_EQUAL(ring_nr_ents(bytes, BLK_ENT), 8192);
		CU_ASSERT_EQUAL(ring_order_bytes(9, &bytes), -EINVAL);
	}
}

static void ring_attach_refuses_a_ring_too_small_for_one_entry(void)
{
	uint8_t buf[200];
	struct ring_back b;
	struct ring_front f;

	CU_ASSERT_EQUAL(ring_back_attach(&b, buf, 64 + 111, 112, 0), -EINVAL);
	CU_ASSERT_EQUAL(ring_back_attach(&b, buf, 32, 8, 0), -EINVAL);
	CU_ASSERT_EQUAL(ring_back_attach(&b, buf, sizeof(buf), 0, 0), -EINVAL);
	CU_ASSERT_EQUAL(ring_back_attach(&b, NULL, 4096, 112, 0), -EINVAL);
	CU_ASSERT_EQUAL(ring_front_init(&f, buf, 64 + 111, 112), -EINVAL);
	CU_ASSERT_EQUAL(ring_back_attach(&b, buf, 64 + 112, 112, 0), 0);
	CU_ASSERT_EQUAL(b.nr_ents, 1);
	/* 3 entries' worth rounds down to 2, as __RING_SIZE. */
	CU_ASSERT_EQUAL(ring_nr_ents(64 + 3 * 8, 8), 2);
}

static void ring_take_copies_each_request_out_once(void)
{
	struct ring_front f;
	struct ring_back b;
	struct blkif_request q = make_req(5), got;
	struct ring_sring_hdr *s = pair_init(0, &f, &b);
	struct blkif_request *slot = (struct blkif_request *)b.ents;

	q.nr_segments = 3;
	ring_front_put(&f, &q, sizeof(q));
	ring_front_push(&f);
	CU_ASSERT_EQUAL_FATAL(ring_back_take(&b, &got, sizeof(got), 1), 1);
	/* The guest rewrites the slot after the copy (double-fetch attempt). */
	slot->nr_segments = 200;
	slot->id = 0xdead;
	memset(slot->seg, 0xee, sizeof(slot->seg));
	CU_ASSERT_EQUAL(got.nr_segments, 3);
	CU_ASSERT_EQUAL(got.id, 5);
	CU_ASSERT_EQUAL(memcmp(&got, &q, sizeof(q)), 0);
	CU_ASSERT_PTR_NOT_EQUAL((void *)&got, (void *)slot);
	free(s);
}

static void ring_take_copies_partial_entries_in_order(void)
{
	struct ring_front f;
	struct ring_back b;
	uint64_t ids[40];
	struct ring_sring_hdr *s = pair_init(0, &f, &b);
	struct blkif_response r = make_rsp(0);

	/* Copy only the first 8 bytes of each slot (operation..handle + pad). */
	for (uint64_t i = 0; i < 20; i++) {
		struct blkif_request q = make_req(i);

		memcpy(&q, &i, sizeof(i));
		ring_front_put(&f, &q, sizeof(q));
	}
	ring_front_push(&f);
	CU_ASSERT_EQUAL_FATAL(ring_back_take(&b, ids, sizeof(ids[0]), 40), 20);
	for (uint64_t i = 0; i < 20; i++)
		CU_ASSERT_EQUAL(ids[i], i);
	for (int i = 0; i < 20; i++)
		ring_back_put(&b, &r, sizeof(r));
	ring_back_push(&b);
	free(s);
}

static void ring_front_back_round_trip_delivers_every_request_and_response(void)
{
	struct ring_front f;
	struct ring_back b;
	struct ring_sring_hdr *s = pair_init(1, &f, &b);
	uint64_t id = 100;

	CU_ASSERT_EQUAL(ring_front_free(&f), 64);
	for (unsigned n = 1; n <= 64; n += 9) {
		round_trip(&f, &b, id, n);
		id += n;
	}
	CU_ASSERT_EQUAL(s->req_prod, s->rsp_prod);
	CU_ASSERT_EQUAL(ring_front_free(&f), 64);
	CU_ASSERT_FALSE(ring_back_final_check(&b));
	CU_ASSERT_FALSE(ring_front_final_check(&f));
	free(s);
}

static void ring_front_take_rejects_more_responses_than_requests(void)
{
	struct ring_front f;
	struct ring_back b;
	struct blkif_request q = make_req(1);
	struct blkif_response out[8];
	struct ring_sring_hdr *s = pair_init(0, &f, &b);

	ring_front_put(&f, &q, sizeof(q));
	ring_front_put(&f, &q, sizeof(q));
	ring_front_push(&f);
	s->rsp_prod = 3;
	CU_ASSERT_EQUAL(ring_front_take(&f, out, sizeof(out[0]), 8), -EPROTO);
	CU_ASSERT_TRUE(f.broken);
	CU_ASSERT_EQUAL(f.rsp_cons, 0);
	CU_ASSERT_EQUAL(ring_front_put(&f, &q, sizeof(q)), -EPROTO);
	CU_ASSERT_FALSE(ring_front_final_check(&f));
	free(s);
}

static void ring_front_attach_resumes_at_shared_indices(void)
{
	struct ring_front f;
	struct ring_back b;
	struct ring_sring_hdr *s = pair_init(0, &f, &b);

	s->req_prod = 1000;
	s->rsp_prod = 990;
	CU_ASSERT_EQUAL(ring_front_attach(&f, s, RING_PAGE_SIZE, BLK_ENT), 0);
	CU_ASSERT_EQUAL(f.req_prod_pvt, 1000);
	CU_ASSERT_EQUAL(f.rsp_cons, 990);
	CU_ASSERT_EQUAL(ring_front_free(&f), 22);
	CU_ASSERT_FALSE(f.broken);
	free(s);
}

static const struct unit_test ring_tests[] = {
	{ "ring_prod_overflow_marks_broken_and_takes_nothing",
	  ring_prod_overflow_marks_broken_and_takes_nothing },
	{ "ring_prod_exactly_full_is_not_overflow", ring_prod_exactly_full_is_not_overflow },
	{ "ring_prod_moving_backwards_marks_broken", ring_prod_moving_backwards_marks_broken },
	{ "ring_indices_wrap_past_2_pow_32", ring_indices_wrap_past_2_pow_32 },
	{ "ring_back_notifies_only_when_rsp_event_in_range",
	  ring_back_notifies_only_when_rsp_event_in_range },
	{ "ring_front_notifies_only_when_req_event_in_range",
	  ring_front_notifies_only_when_req_event_in_range },
	{ "ring_back_final_check_arms_req_event_when_idle",
	  ring_back_final_check_arms_req_event_when_idle },
	{ "ring_front_final_check_arms_rsp_event_when_idle",
	  ring_front_final_check_arms_rsp_event_when_idle },
	{ "ring_back_final_check_catches_request_racing_in",
	  ring_back_final_check_catches_request_racing_in },
	{ "ring_front_final_check_catches_response_racing_in",
	  ring_front_final_check_catches_response_racing_in },
	{ "ring_back_never_takes_more_than_free_response_slots",
	  ring_back_never_takes_more_than_free_response_slots },
	{ "ring_unconsumed_is_bounded_when_req_prod_is_bogus",
	  ring_unconsumed_is_bounded_when_req_prod_is_bogus },
	{ "ring_sizes_match_xen_for_orders_0_to_4", ring_sizes_match_xen_for_orders_0_to_4 },
	{ "ring_attach_refuses_a_ring_too_small_for_one_entry",
	  ring_attach_refuses_a_ring_too_small_for_one_entry },
	{ "ring_take_copies_each_request_out_once", ring_take_copies_each_request_out_once },
	{ "ring_take_copies_partial_entries_in_order", ring_take_copies_partial_entries_in_order },
	{ "ring_front_back_round_trip_delivers_every_request_and_response",
	  ring_front_back_round_trip_delivers_every_request_and_response },
	{ "ring_front_take_rejects_more_responses_than_requests",
	  ring_front_take_rejects_more_responses_than_requests },
	{ "ring_front_attach_resumes_at_shared_indices", ring_front_attach_resumes_at_shared_indices },
	{ NULL, NULL },
};

UNIT_SUITE(ring, ring_tests)
