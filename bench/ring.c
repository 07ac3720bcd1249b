/*
 * bench/ring — requests per second through the ring engine (copy-out, responses,
 * push with event-suppression checks; peers poll instead of making evtchn syscalls)
 * versus a minimal SPSC queue pair moving the same bytes between the same two threads
 * at the same depth. Runs A B A B ... and prints both medians and their ratio.
 *
 * Each run lasts a fixed time; a waiting side spins briefly, then yields the CPU, so a
 * descheduled peer on a loaded machine costs both variants alike.
 *
 *   build/default/bench/ring [order] [seconds-per-run] [pairs]
 */
#include "ring/abi.h"
#include "ring/ring.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 64
#define REQ_SIZE sizeof(struct blkif_request)
#define RSP_SIZE sizeof(struct blkif_response)

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Polling where a real peer would block on its event channel. */
static inline void backoff(unsigned *spins)
{
	if (++*spins < 1024) {
		cpu_relax();
	} else {
		*spins = 0;
		sched_yield();
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
	fprintf(stderr, "bench/ring: %s\n", what);
	exit(1);
}

/* Shared by both variants: the frontend runs for `secs`, then drains and raises stop. */
struct run_ctl {
	double secs;
	uint64_t done;	   /* responses consumed by the frontend */
	uint64_t bad;	   /* responses out of order (must stay 0) */
	uint64_t notifies; /* notifications the engine's sides would have sent */
	alignas(64) int stop; /* set by the frontend once drained; polled by the backend */
};

static inline bool stopped(struct run_ctl *c)
{
	return __atomic_load_n(&c->stop, __ATOMIC_ACQUIRE);
}

static void fill_req(struct blkif_request *q, uint64_t id)
{
	q->id = id;
	q->sector_number = id * 8;
}

static void answer(const struct blkif_request *q, struct blkif_response *r)
{
	memset(r, 0, sizeof(*r));
	r->id = q->id;
	r->operation = q->operation;
	r->status = BLKIF_RSP_OKAY;
}

/* ---- A: the engine ---- */

/* Each side's private state on its own cache lines, as in a real frontend and backend. */
struct xen_run {
	alignas(64) struct run_ctl c;
	alignas(64) struct ring_front f;
	alignas(64) struct ring_back b;
	uint64_t notify_be;
};

static void *xen_back(void *arg)
{
	struct xen_run *x = arg;
	struct ring_back *b = &x->b;
	struct blkif_request reqs[BATCH];
	unsigned spins = 0;

	while (!stopped(&x->c)) {
		int n = ring_back_take(b, reqs, REQ_SIZE, BATCH);

		if (n < 0)
			die("backend saw a bogus index");
		if (n == 0) {
			/* Where a real backend sleeps on the event channel, poll instead. */
			if (!ring_back_final_check(b))
				while (!ring_back_unconsumed(b) && !stopped(&x->c))
					backoff(&spins);
			continue;
		}
		spins = 0;
		for (int i = 0; i < n; i++) {
			struct blkif_response r;

			answer(&reqs[i], &r);
			ring_back_put(b, &r, sizeof(r));
		}
		if (ring_back_push(b))
			x->notify_be++;
	}
	return NULL;
}

static void xen_front(struct xen_run *x)
{
	struct ring_front *f = &x->f;
	struct blkif_response rsps[BATCH];
	struct blkif_request q;
	uint64_t sent = 0, done = 0;
	double end = now_s() + x->c.secs;
	bool producing = true;
	unsigned spins = 0;

	memset(&q, 0, sizeof(q));
	q.operation = BLKIF_OP_READ;
	q.nr_segments = 1;
	while (producing || done < sent) {
		uint32_t free_slots = ring_front_free(f);
		int n;

		if (producing && free_slots) {
			while (free_slots--) {
				fill_req(&q, sent++);
				ring_front_put(f, &q, sizeof(q));
			}
			if (ring_front_push(f))
				x->c.notifies++;
			producing = now_s() < end;
		}
		n = ring_front_take(f, rsps, RSP_SIZE, BATCH);
		if (n < 0)
			die("frontend saw a bogus index");
		for (int i = 0; i < n; i++)
			x->c.bad += rsps[i].id != done + (uint64_t)i;
		done += (uint64_t)n;
		if (n) {
			spins = 0;
		} else if (!ring_front_final_check(f)) {
			/* Poll rsp_prod where a real frontend would wait for the event. */
			while (__atomic_load_n(&f->sring->rsp_prod, __ATOMIC_ACQUIRE) == f->rsp_cons)
				backoff(&spins);
		}
	}
	x->c.done = done;
	__atomic_store_n(&x->c.stop, 1, __ATOMIC_RELEASE);
}

static double run_xen(unsigned order, double secs, uint64_t *notifies, uint64_t *reqs)
{
	struct xen_run x;
	size_t bytes;
	void *s;
	pthread_t t;
	double t0, t1;

	memset(&x, 0, sizeof(x));
	x.c.secs = secs;
	if (ring_order_bytes(order, &bytes) || posix_memalign(&s, 4096, bytes))
		die("ring allocation");
	if (ring_front_init(&x.f, s, bytes, sizeof(union blkif_sring_entry)) ||
	    ring_back_attach(&x.b, s, bytes, sizeof(union blkif_sring_entry), 0))
		die("ring setup");
	if (pthread_create(&t, NULL, xen_back, &x))
		die("pthread_create");
	t0 = now_s();
	xen_front(&x);
	t1 = now_s();
	pthread_join(t, NULL);
	if (x.c.bad)
		die("responses out of order");
	*notifies += x.c.notifies + x.notify_be;
	*reqs += x.c.done;
	free(s);
	return (double)x.c.done / (t1 - t0);
}

/* ---- B: minimal SPSC queue pair, same entry bytes, same depth ---- */

struct spsc {
	alignas(64) uint32_t tail; /* written by the producer */
	alignas(64) uint32_t head; /* written by the consumer */
	alignas(64) uint32_t mask;
	uint32_t size;
	uint8_t *ents;
};

struct spsc_run {
	alignas(64) struct run_ctl c;
	struct spsc req, rsp;
	uint32_t depth;
};

static void spsc_init(struct spsc *q, uint32_t nr, uint32_t size)
{
	memset(q, 0, sizeof(*q));
	q->mask = nr - 1;
	q->size = size;
	if (posix_memalign((void **)&q->ents, 64, (size_t)nr * size))
		die("spsc allocation");
}

/* Copy out up to max entries; returns the count. */
static uint32_t spsc_pop(struct spsc *q, void *out, uint32_t max)
{
	uint32_t head = q->head;
	uint32_t n = __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE) - head;

	if (n > max)
		n = max;
	for (uint32_t i = 0; i < n; i++)
		memcpy((uint8_t *)out + (size_t)i * q->size,
		       q->ents + (size_t)((head + i) & q->mask) * q->size, q->size);
	if (n)
		__atomic_store_n(&q->head, head + n, __ATOMIC_RELEASE);
	return n;
}

static void *spsc_back(void *arg)
{
	struct spsc_run *x = arg;
	struct blkif_request reqs[BATCH];
	unsigned spins = 0;

	while (!stopped(&x->c)) {
		uint32_t n = spsc_pop(&x->req, reqs, BATCH);
		uint32_t tail = x->rsp.tail;

		if (n == 0) {
			backoff(&spins);
			continue;
		}
		spins = 0;
		/* The response queue has room: the frontend never has more than depth out. */
		for (uint32_t i = 0; i < n; i++) {
			struct blkif_response r;

			answer(&reqs[i], &r);
			memcpy(x->rsp.ents + (size_t)((tail + i) & x->rsp.mask) * RSP_SIZE, &r, sizeof(r));
		}
		__atomic_store_n(&x->rsp.tail, tail + n, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void spsc_front(struct spsc_run *x)
{
	struct blkif_response rsps[BATCH];
	struct blkif_request q;
	uint64_t sent = 0, done = 0;
	double end = now_s() + x->c.secs;
	bool producing = true;
	unsigned spins = 0;

	memset(&q, 0, sizeof(q));
	q.operation = BLKIF_OP_READ;
	q.nr_segments = 1;
	while (producing || done < sent) {
		uint32_t tail = x->req.tail, k = 0, n;

		if (producing && sent - done < x->depth) {
			while (sent - done < x->depth) {
				fill_req(&q, sent++);
				memcpy(x->req.ents + (size_t)((tail + k) & x->req.mask) * REQ_SIZE, &q,
				       sizeof(q));
				k++;
			}
			__atomic_store_n(&x->req.tail, tail + k, __ATOMIC_RELEASE);
			producing = now_s() < end;
		}
		n = spsc_pop(&x->rsp, rsps, BATCH);
		for (uint32_t i = 0; i < n; i++)
			x->c.bad += rsps[i].id != done + i;
		done += n;
		if (n)
			spins = 0;
		else
			backoff(&spins);
	}
	x->c.done = done;
	__atomic_store_n(&x->c.stop, 1, __ATOMIC_RELEASE);
}

static double run_spsc(uint32_t depth, double secs, uint64_t *reqs)
{
	struct spsc_run *x;
	pthread_t t;
	double t0, t1, rate;

	if (posix_memalign((void **)&x, 64, sizeof(*x)))
		die("spsc allocation");
	memset(x, 0, sizeof(*x));
	spsc_init(&x->req, depth, REQ_SIZE);
	spsc_init(&x->rsp, depth, RSP_SIZE);
	x->depth = depth;
	x->c.secs = secs;
	if (pthread_create(&t, NULL, spsc_back, x))
		die("pthread_create");
	t0 = now_s();
	spsc_front(x);
	t1 = now_s();
	pthread_join(t, NULL);
	if (x->c.bad)
		die("spsc responses out of order");
	rate = (double)x->c.done / (t1 - t0);
	*reqs += x->c.done;
	free(x->req.ents);
	free(x->rsp.ents);
	free(x);
	return rate;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(v[0]), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define MAX_PAIRS 15

int main(int argc, char **argv)
{
	unsigned order = argc > 1 ? (unsigned)atoi(argv[1]) : 0;
	double secs = argc > 2 ? atof(argv[2]) : 0.5;
	unsigned pairs = argc > 3 ? (unsigned)atoi(argv[3]) : 7;
	double a[MAX_PAIRS], b[MAX_PAIRS], ma, mb;
	uint64_t notifies = 0, reqs_a = 0, reqs_b = 0;
	size_t bytes;
	uint32_t depth;

	if (ring_order_bytes(order, &bytes) || order > RING_MAX_ORDER || !(secs > 0 && secs <= 2) ||
	    pairs == 0 || pairs > MAX_PAIRS) {
		fprintf(stderr, "usage: %s [order 0-%u] [seconds-per-run <= 2] [pairs 1-%d]\n",
			argv[0], RING_MAX_ORDER, MAX_PAIRS);
		return 2;
	}
	depth = ring_nr_ents(bytes, sizeof(union blkif_sring_entry));
	printf("ring: blkif %zu-byte requests, %zu-byte responses, order %u (%u slots, same depth "
	       "for spsc), %.2f s per run, %u A/B pairs\n",
	       REQ_SIZE, RSP_SIZE, order, depth, secs, pairs);
	for (unsigned i = 0; i < pairs; i++) {
		a[i] = run_xen(order, secs, &notifies, &reqs_a);
		b[i] = run_spsc(depth, secs, &reqs_b);
		printf("  pair %u: ring %.2f Mreq/s, spsc %.2f Mreq/s\n", i, a[i] / 1e6, b[i] / 1e6);
	}
	ma = median(a, pairs);
	mb = median(b, pairs);
	printf("ring engine   : %.2f Mreq/s (median; %.4f notifications per request)\n", ma / 1e6,
	       reqs_a ? (double)notifies / (double)reqs_a : 0.0);
	printf("spsc baseline : %.2f Mreq/s (median)\n", mb / 1e6);
	printf("ratio ring/spsc: %.2f (target >= 0.70)\n", ma / mb);
	return 0;
}
