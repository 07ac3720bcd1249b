/*
 * bench/shim — the shim hypervisor's data-path costs against in-run baselines:
 *  1. grant copy of 4 KiB segments in batches of 32 (hv_gnt_copy through hv_shim)
 *     vs plain memcpy of the same bytes from the same guest memory (throughput ratio);
 *  2. event-channel round trip (guest notify -> backend wake, pending, unmask, notify
 *     back -> guest wake) between two threads vs a raw eventfd ping-pong (time ratio).
 * Starts its own splitpv-shim (SPLITPV_BUILD/bin, or ../bin next to this binary).
 * Options: -s (short run, for smoke tests), -p (pin the two ping-pong threads to
 * CPUs 0 and 1; without it the scheduler places them).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "frontend-shim/guest.h"
#include "tests/integration/shim_harness.h"
#include "xenbus/hv.h"

#define DOMID 9
#define PAGES 256u /* source working set: 1 MiB */
#define BATCH 32u

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench/shim: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	exit(1);
}

/* ------------------------------------------------------------------ grant copy */

static volatile uint64_t sink;

static double bench_memcpy(const uint8_t *src, uint8_t *dst, unsigned iters)
{
	double t0 = now();

	for (unsigned it = 0; it < iters; it++) {
		unsigned base = (it * BATCH) % PAGES;

		for (unsigned i = 0; i < BATCH; i++)
			memcpy(dst + (size_t)i * HV_PAGE_SIZE,
			       src + (size_t)((base + i) % PAGES) * HV_PAGE_SIZE, HV_PAGE_SIZE);
		__asm__ volatile("" : : "r"(dst) : "memory");
	}
	sink += dst[0];
	return now() - t0;
}

static double bench_gntcopy(struct hv_gnt *h, const uint32_t *refs, uint8_t *dst,
			    unsigned iters)
{
	struct hv_copy_seg segs[BATCH];
	double t0;

	memset(segs, 0, sizeof(segs));
	t0 = now();
	for (unsigned it = 0; it < iters; it++) {
		unsigned base = (it * BATCH) % PAGES;

		for (unsigned i = 0; i < BATCH; i++) {
			segs[i].source.foreign.ref = refs[(base + i) % PAGES];
			segs[i].source.foreign.offset = 0;
			segs[i].source.foreign.domid = DOMID;
			segs[i].dest.virt = dst + (size_t)i * HV_PAGE_SIZE;
			segs[i].len = HV_PAGE_SIZE;
			segs[i].flags = HV_COPY_SOURCE_GREF;
		}
		if (hv_gnt_copy(h, BATCH, segs) < 0)
			die("hv_gnt_copy", EIO);
		for (unsigned i = 0; i < BATCH; i++)
			if (segs[i].status != HV_GNTST_OKAY)
				die("grant copy status", EIO);
	}
	sink += dst[0];
	return now() - t0;
}

/* ------------------------------------------------------------------ event channels */

struct pingpong {
	unsigned iters;
	/* shim */
	struct hv_evt *evt;
	int bport;
	/* raw */
	int efd_ab, efd_ba;
};

static void wait_in(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
}

static bool pin; /* -p */

/* With -p: main thread on CPU 0, peers on CPU 1 (same placement for both ping-pongs). */
static void pin_cpu(unsigned cpu)
{
	cpu_set_t set;

	if (!pin || sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *backend_thread(void *arg)
{
	struct pingpong *pp = arg;

	pin_cpu(1);

	for (unsigned i = 0; i < pp->iters; i++) {
		int port;

		do {
			wait_in(hv_evt_fd(pp->evt));
			port = hv_evt_pending(pp->evt);
		} while (port < 0);
		hv_evt_unmask(pp->evt, (uint32_t)port);
		hv_evt_notify(pp->evt, (uint32_t)port);
	}
	return NULL;
}

static void *raw_thread(void *arg)
{
	struct pingpong *pp = arg;
	uint64_t v;

	pin_cpu(1);

	for (unsigned i = 0; i < pp->iters; i++) {
		wait_in(pp->efd_ab);
		if (read(pp->efd_ab, &v, sizeof(v)) < 0)
			continue;
		v = 1;
		if (write(pp->efd_ba, &v, sizeof(v)) < 0)
			die("write", errno);
	}
	return NULL;
}

static double bench_evtchn(struct shim_guest *g, unsigned gport, struct pingpong *pp)
{
	pthread_t t;
	double t0;

	pthread_create(&t, NULL, backend_thread, pp);
	t0 = now();
	for (unsigned i = 0; i < pp->iters; i++) {
		int port;

		shim_guest_evtchn_notify(g, gport);
		do {
			wait_in(shim_guest_evtchn_fd(g));
			port = shim_guest_evtchn_pending(g);
		} while (port < 0);
		shim_guest_evtchn_unmask(g, (unsigned)port);
	}
	t0 = now() - t0;
	pthread_join(t, NULL);
	return t0 / pp->iters;
}

static double bench_raw(struct pingpong *pp)
{
	pthread_t t;
	uint64_t v;
	double t0;

	pthread_create(&t, NULL, raw_thread, pp);
	t0 = now();
	for (unsigned i = 0; i < pp->iters; i++) {
		v = 1;
		if (write(pp->efd_ab, &v, sizeof(v)) < 0)
			die("write", errno);
		wait_in(pp->efd_ba);
		if (read(pp->efd_ba, &v, sizeof(v)) < 0)
			die("read", errno);
	}
	t0 = now() - t0;
	pthread_join(t, NULL);
	return t0 / pp->iters;
}

int main(int argc, char **argv)
{
	bool quick = false;
	unsigned copy_iters = 20000, rtt_iters = 10000, rounds = 9;
	struct shim_harness shim;
	struct shim_guest *g;
	struct hv_gnt *h;
	struct pingpong pp = { 0 };
	uint32_t refs[PAGES], first;
	uint8_t *dst;
	double best_mc = 1e9, best_gc = 1e9, best_ev = 1e9, best_raw = 1e9;
	int rc, gport;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-s") == 0) {
			quick = true;
		} else if (strcmp(argv[i], "-p") == 0) {
			pin = true;
		} else {
			fprintf(stderr, "usage: %s [-s] [-p]\n", argv[0]);
			return 2;
		}
	}
	if (quick) {
		copy_iters = 2000;
		rtt_iters = 2000;
		rounds = 1;
	}
	rc = shim_harness_start(&shim, argv[0]);
	if (rc < 0)
		die("starting splitpv-shim", rc);
	unsetenv("SPLITPV_SHIM_DOMID");
	rc = shim_guest_create(&g, shim.rundir, DOMID, PAGES + 16, PAGES + 16);
	if (rc < 0)
		die("shim_guest_create", rc);
	rc = shim_guest_page_alloc(g, PAGES, &first);
	if (rc < 0)
		die("page_alloc", rc);
	for (unsigned i = 0; i < PAGES; i++) {
		memset(shim_guest_frame_ptr(g, first + i), (int)i, HV_PAGE_SIZE);
		rc = shim_guest_grant(g, first + i, 0, true);
		if (rc < 0)
			die("grant", rc);
		refs[i] = (uint32_t)rc;
	}
	rc = hv_gnt_open(&h);
	if (rc < 0)
		die("hv_gnt_open", rc);
	dst = aligned_alloc(HV_PAGE_SIZE, (size_t)BATCH * HV_PAGE_SIZE);
	if (!dst)
		die("alloc", ENOMEM);

	/* Warm up both paths (page faults, attach), then alternate the measurements. */
	bench_gntcopy(h, refs, dst, 200);
	bench_memcpy(shim_guest_frame_ptr(g, first), dst, 200);
	for (unsigned r = 0; r < rounds; r++) {
		double mc = bench_memcpy(shim_guest_frame_ptr(g, first), dst, copy_iters);
		double gc = bench_gntcopy(h, refs, dst, copy_iters);

		best_mc = mc < best_mc ? mc : best_mc;
		best_gc = gc < best_gc ? gc : best_gc;
	}
	{
		double bytes = (double)copy_iters * BATCH * HV_PAGE_SIZE;
		double ratio = best_mc / best_gc;

		printf("grant copy 4 KiB x %u/batch: %.2f GB/s; memcpy baseline: %.2f GB/s; "
		       "ratio %.2f (target >= 0.5) %s\n",
		       BATCH, bytes / best_gc / 1e9, bytes / best_mc / 1e9, ratio,
		       ratio >= 0.5 ? "ok" : "MISSED");
	}

	/* Event channels: guest thread (main, CPU 0) <-> backend thread (CPU 1). */
	pin_cpu(0);
	gport = shim_guest_evtchn_alloc_unbound(g, 0);
	if (gport < 0)
		die("alloc_unbound", gport);
	rc = hv_evt_open(&pp.evt);
	if (rc < 0)
		die("hv_evt_open", rc);
	pp.bport = hv_evt_bind_interdomain(pp.evt, DOMID, (uint32_t)gport);
	if (pp.bport < 0)
		die("bind", pp.bport);
	pp.efd_ab = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pp.efd_ba = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pp.efd_ab < 0 || pp.efd_ba < 0)
		die("eventfd", errno);
	pp.iters = 1000;
	bench_evtchn(g, (unsigned)gport, &pp);
	bench_raw(&pp);
	pp.iters = rtt_iters;
	for (unsigned r = 0; r < rounds; r++) {
		double raw = bench_raw(&pp);
		double ev = bench_evtchn(g, (unsigned)gport, &pp);

		best_raw = raw < best_raw ? raw : best_raw;
		best_ev = ev < best_ev ? ev : best_ev;
	}
	printf("event channel round trip: %.2f us; raw eventfd round trip: %.2f us; "
	       "ratio %.2f (target <= 1.5) %s\n",
	       best_ev * 1e6, best_raw * 1e6, best_ev / best_raw,
	       best_ev / best_raw <= 1.5 ? "ok" : "MISSED");

	hv_evt_close(pp.evt);
	close(pp.efd_ab);
	close(pp.efd_ba);
	hv_gnt_close(h);
	free(dst);
	shim_guest_destroy(g);
	shim_harness_stop(&shim);
	return 0;
}
