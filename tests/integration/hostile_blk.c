/*
 * hostile_blk — the hostile-frontend conformance suite for the block backend, on the
 * shim: splitpv-shim, splitpvd with one splitpv-blkback worker per device, guest 1 the
 * attacker (frontend-shim/hostile.h writing keys, indices, slots and grants by hand),
 * guest 2 a well-behaved blkfront on its own disk (the bystander that must keep being
 * served). Every case states its expected outcome and checks it, plus: the worker
 * survives, its RSS stays under a bound, every response slot is fully defined.
 *
 *   hostile_blk [CASE-SUBSTRING]   (run only the cases whose name contains it)
 */
#include "frontend-shim/blkfront.h"
#include "frontend-shim/guest.h"
#include "frontend-shim/hostile.h"
#include "frontend-shim/toolstack.h"
#include "tests/integration/shim_harness.h"
#include "xenbus/xs.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <xen/io/xenbus.h>
#include <xenstore.h>

#define DISK_MB 16
#define DISK_SECTORS (DISK_MB * 2048ull)
#define ATTACKER 1
#define VICTIM 2
/* A worker's RSS may grow at most this much over a case (its bounce pages, 16 MiB per
 * queue, are preallocated-but-lazy; everything a guest can grow must stay bounded). */
#ifdef __SANITIZE_ADDRESS__
/* Under ASan freed memory sits in a quarantine first: capped for the workers (below)
 * and added to the bound. */
#define ASAN_QUARANTINE_MB 16
#define RSS_GROWTH_KB ((24 + ASAN_QUARANTINE_MB) * 1024)
#else
#define RSS_GROWTH_KB (24 * 1024)
#endif
/* Worker CPU while its frontend storms notifications: at most this share of one core. */
#define STORM_CPU_PCT 25 /* with the back-off 5-11 %; without it 40-54 % */
/* The bystander's throughput under a storm, relative to a storm into the void. */
#define STORM_MIN_RATIO 0.90

static int failures, cases;
static const char *only;
#define CHECK(cond, ...)                                                                \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                   \
			fprintf(stderr, "\n");                                          \
			failures++;                                                     \
		}                                                                       \
	} while (0)

static struct shim_harness shim;
static pid_t splitpvd = -1;
static struct shim_ts *ts;
static struct shim_guest *g_att, *g_vic;
static struct blkfront *victim;
static unsigned int victim_devid;
static char disk_rw[300], disk_ro[300], disk_vic[300];

/* Disk bytes: sector s, byte i -> (s * 31 + i) & 0x7f. Never >= 0x80, so a marker byte
 * 0xEE written by a confused backend is visible. */
static uint8_t disk_byte(uint64_t s, size_t i)
{
	return (uint8_t)((s * 31 + i) & 0x7f);
}

static int make_disk(const char *path)
{
	uint8_t *buf = malloc(1 << 20);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600), rc = 0;

	if (fd < 0 || !buf) {
		free(buf);
		return -errno;
	}
	for (uint64_t mb = 0; mb < DISK_MB && !rc; mb++) {
		for (size_t off = 0; off < (1u << 20); off++)
			buf[off] = disk_byte(mb * 2048 + off / 512, off % 512);
		if (pwrite(fd, buf, 1 << 20, (off_t)(mb << 20)) != 1 << 20)
			rc = -EIO;
	}
	close(fd);
	free(buf);
	return rc;
}

/* Does the disk still hold only pattern bytes (no 0xEE marker anywhere)? */
static bool disk_intact(const char *path, uint64_t first_sector, uint64_t nsect)
{
	uint8_t buf[512];
	int fd = open(path, O_RDONLY);
	bool ok = fd >= 0;

	for (uint64_t s = first_sector; ok && s < first_sector + nsect; s++) {
		if (pread(fd, buf, 512, (off_t)(s * 512)) != 512)
			ok = false;
		for (size_t i = 0; ok && i < 512; i++)
			ok = buf[i] == disk_byte(s, i);
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

static bool page_matches_disk(const uint8_t *p, uint64_t sector, unsigned first, unsigned last)
{
	for (unsigned s = first; s <= last; s++)
		for (size_t i = 0; i < 512; i++)
			if (p[s * 512 + i] != disk_byte(sector + s - first, i))
				return false;
	return true;
}

static uint64_t now_us(void)
{
	struct timespec ts_;

	clock_gettime(CLOCK_MONOTONIC, &ts_);
	return (uint64_t)ts_.tv_sec * 1000000 + (uint64_t)ts_.tv_nsec / 1000;
}

/* ---- one case: a fresh disk for the attacker, its worker watched ---- */

struct hcase {
	const char *name;
	struct hostile_vbd *h;
	unsigned int devid;
	pid_t worker;
	long rss0;
	bool ro;
	uint64_t t0;
};

static bool selected(const char *name)
{
	return !only || strstr(name, only);
}

static int attach(const char *vdev, const char *path, bool ro, unsigned int domid,
		  unsigned int *devid)
{
	struct shim_disk_spec spec;
	char s[512], err[256];
	int rc;

	snprintf(s, sizeof(s), "vdev=%s,access=%s,target=%s", vdev, ro ? "ro" : "rw", path);
	rc = shim_disk_spec_parse(s, &spec, err, sizeof(err));
	if (rc)
		return rc;
	return shim_ts_disk_attach(ts, domid, &spec, devid);
}

/* Attach, find the worker, open the hostile frontend; want_connected: wait for it. */
static bool case_begin(struct hcase *c, const char *name, bool ro,
		       const struct hostile_vbd_opts *o, bool want_connected)
{
	char be[128];
	int rc, st = -1;

	memset(c, 0, sizeof(*c));
	c->t0 = now_us();
	c->name = name;
	c->ro = ro;
	c->worker = -1;
	cases++;
	rc = attach(ro ? "xvdc" : "xvdb", ro ? disk_ro : disk_rw, ro, ATTACKER, &c->devid);
	CHECK(rc == 0, "%s: attach: %s", name, strerror(-rc));
	if (rc)
		return false;
	snprintf(be, sizeof(be), "/local/domain/0/backend/vbd/%u/%u", ATTACKER, c->devid);
	for (int i = 0; i < 200 && c->worker < 0; i++) {
		c->worker = hostile_worker_pid(splitpvd, be);
		if (c->worker < 0)
			usleep(5000);
	}
	CHECK(c->worker > 0, "%s: no worker process for %s", name, be);
	rc = hostile_vbd_open(&c->h, g_att, c->devid, o);
	CHECK(rc == 0, "%s: hostile open: %s", name, strerror(-rc));
	if (rc)
		return false;
	if (want_connected) {
		rc = hostile_vbd_wait(c->h, 1u << XenbusStateConnected | 1u << XenbusStateClosing,
				      5000, &st);
		CHECK(rc == 0 && st == XenbusStateConnected, "%s: backend state %d, not Connected",
		      name, st);
		if (st != XenbusStateConnected)
			return false;
	}
	c->rss0 = c->worker > 0 ? hostile_rss_kb(c->worker) : -1;
	return true;
}

/* The invariants every case ends with, then tear down. */
static void case_end(struct hcase *c)
{
	uint8_t buf[4096];
	int rc;

	if (c->worker > 0) {
		long rss = hostile_rss_kb(c->worker);

		printf("rss %s: worker %ld KiB at connect, %ld KiB at the end\n", c->name, c->rss0,
		       rss);
		CHECK(hostile_pid_alive(c->worker), "%s: worker %d died", c->name, (int)c->worker);
		CHECK(rss > 0 && rss - c->rss0 <= RSS_GROWTH_KB,
		      "%s: worker RSS %ld KiB, was %ld KiB (bound +%d KiB)", c->name, rss, c->rss0,
		      RSS_GROWTH_KB);
	}
	rc = blkfront_read(victim, 64, buf, sizeof(buf));
	CHECK(rc == 0 && page_matches_disk(buf, 64, 0, 7), "%s: the other guest's disk no longer serves (%d)",
	      c->name, rc);
	hostile_vbd_close(c->h);
	c->h = NULL;
	if (c->devid) {
		rc = shim_ts_device_detach(ts, ATTACKER, SHIM_TS_VBD, c->devid);
		CHECK(rc == 0, "%s: detach: %s", c->name, strerror(-rc));
	}
	if (c->worker > 0) {
		/* The worker serves one device: it exits once its device is removed. */
		for (int i = 0; i < 200 && hostile_pid_alive(c->worker); i++)
			usleep(5000);
	}
	printf("done %s (%.1f s)\n", c->name, (double)(now_us() - c->t0) / 1e6);
}

/* The device must go Closing (protocol broken) and never be Connected again. */
static void expect_closing(struct hcase *c, const char *what)
{
	int st = -1, rc = hostile_vbd_wait(c->h, 1u << XenbusStateClosing | 1u << XenbusStateClosed,
					   3000, &st);

	CHECK(rc == 0, "%s: %s: backend state %d, expected Closing", c->name, what, st);
}

/* ---- requests ---- */

static uint64_t next_id = 0x5a5a5a5a00007766ull;

/* A read/write of 1 segment of page p. */
static void rw_req(struct blkif_request *r, struct hostile_vbd *h, uint8_t op, uint64_t sector,
		   unsigned int page, uint8_t first, uint8_t last, uint64_t id)
{
	hostile_req_init(r, op, 1, id, sector);
	r->seg[0].gref = hostile_vbd_data_gref(h, page);
	r->seg[0].first_sect = first;
	r->seg[0].last_sect = last;
}

/* Put, publish, wait, check the whole response slot. Returns the status seen (or
 * 99 on timeout / a malformed response). */
static int one(struct hcase *c, const struct blkif_request *r, uint8_t rsp_op, int16_t expect)
{
	uint8_t guest[sizeof(*r)];
	char why[200];
	int rc;

	hostile_vbd_layout(c->h, r, guest);
	hostile_vbd_put(c->h, guest);
	hostile_vbd_publish(c->h);
	rc = hostile_vbd_wait_responses(c->h, 1, 3000);
	CHECK(rc == 0, "%s: no response to op %u id %#llx", c->name, r->operation,
	      (unsigned long long)r->id);
	if (rc)
		return 99;
	rc = hostile_vbd_check_rsp(c->h, r->id, rsp_op, expect, true, why, sizeof(why));
	CHECK(rc == 0, "%s: %s", c->name, why);
	return rc ? 99 : expect;
}

/* ---- catalogue: ring indices ---- */

static void case_prod_overflow(void)
{
	struct hostile_vbd_opts o = { 0 };
	struct blkif_request r;
	struct hcase c;

	if (!selected("ring_prod_overflow"))
		return;
	if (case_begin(&c, "ring_prod_overflow_closes_device", false, &o, true)) {
		rw_req(&r, c.h, BLKIF_OP_READ, 8, 0, 0, 7, next_id++);
		one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_OKAY);
		/* Far ahead: more requests than the ring holds. */
		*hostile_vbd_req_prod(c.h) = c.h->req_prod_pvt + c.h->nr_ents + 1000;
		hostile_vbd_notify(c.h);
		expect_closing(&c, "req_prod far ahead");
	}
	case_end(&c);
}

/* req_prod is already bogus when the backend first maps the ring. */
static void case_prod_bogus_at_connect(void)
{
	struct hostile_vbd_opts o = { .req_prod_at_connect = 5000 };
	struct hcase c;
	int st = -1;

	if (!selected("ring_prod_bogus_at_connect"))
		return;
	if (case_begin(&c, "ring_prod_bogus_at_connect_closes_device", false, &o, false)) {
		/* No notification: the backend looks at the ring when it connects. */
		expect_closing(&c, "req_prod bogus before connecting");
		/* ... and stays there: a broken device must not be reported Connected. */
		usleep(300000);
		hostile_vbd_wait(c.h, ~0u, 100, &st);
		CHECK(st == XenbusStateClosing || st == XenbusStateClosed,
		      "%s: BACKEND BUG: state %d after the ring was found broken at connect",
		      c.name, st);
	}
	case_end(&c);
}

static void case_prod_backwards(void)
{
	struct hostile_vbd_opts o = { 0 };
	struct blkif_request r;
	struct hcase c;

	if (!selected("ring_prod_backwards"))
		return;
	if (case_begin(&c, "ring_prod_backwards_closes_device", false, &o, true)) {
		for (int i = 0; i < 4; i++) {
			rw_req(&r, c.h, BLKIF_OP_READ, 8 * (uint64_t)i, 0, 0, 7, next_id++);
			one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_OKAY);
		}
		*hostile_vbd_req_prod(c.h) = 2;
		hostile_vbd_notify(c.h);
		expect_closing(&c, "req_prod moved backwards");
	}
	case_end(&c);
}

/* req_prod flips between the true value and one far ahead while we notify. */
static void case_prod_racing(void)
{
	struct hostile_vbd_opts o = { 0 };
	struct hostile_flipper f = { 0 };
	struct blkif_request r;
	struct hcase c;
	uint32_t good, bad;

	if (!selected("ring_prod_racing"))
		return;
	if (case_begin(&c, "ring_prod_racing_closes_device", false, &o, true)) {
		rw_req(&r, c.h, BLKIF_OP_READ, 0, 0, 0, 7, next_id++);
		one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_OKAY);
		good = c.h->req_prod_pvt;
		bad = good + 0x80000000u;
		hostile_flipper_start(&f, hostile_vbd_req_prod(c.h), &good, &bad, sizeof(good),
				      NULL, 0);
		for (int i = 0; i < 2000 && c.h->backend_state != XenbusStateClosing; i++) {
			hostile_vbd_notify(c.h);
			if (i % 100 == 0)
				hostile_vbd_wait(c.h, 1u << XenbusStateClosing, 1, NULL);
			usleep(200);
		}
		hostile_flipper_stop(&f);
		expect_closing(&c, "req_prod racing between valid and bogus");
	}
	case_end(&c);
}

/* The frontend publishes a full ring and never consumes a response. */
static void case_ring_full(void)
{
	struct hostile_vbd_opts o = { 0 };
	struct blkif_request r;
	struct hcase c;
	uint8_t guest[sizeof(r)];
	char why[200];
	long cpu0, cpu1;

	if (!selected("ring_full"))
		return;
	if (case_begin(&c, "ring_full_never_consumed_backend_stops", false, &o, true)) {
		uint32_t n = c.h->nr_ents, first = c.h->req_prod_pvt;
		uint64_t id0 = next_id;

		for (uint32_t i = 0; i < n; i++) {
			rw_req(&r, c.h, BLKIF_OP_READ, 8 * (uint64_t)i, 0, 0, 7, next_id++);
			hostile_vbd_layout(c.h, &r, guest);
			hostile_vbd_put(c.h, guest);
		}
		hostile_vbd_publish(c.h);
		CHECK(hostile_vbd_wait_responses(c.h, n, 3000) == 0, "%s: not all answered", c.name);
		/* Keep poking: nothing more may be produced and the worker must sleep. */
		cpu0 = hostile_cpu_ms(c.worker);
		for (int i = 0; i < 500; i++) {
			hostile_vbd_notify(c.h);
			usleep(1000);
		}
		cpu1 = hostile_cpu_ms(c.worker);
		CHECK(*hostile_vbd_rsp_prod(c.h) == first + n,
		      "%s: rsp_prod %u, expected exactly %u", c.name, *hostile_vbd_rsp_prod(c.h),
		      first + n);
		CHECK(cpu1 - cpu0 < 300, "%s: worker used %ld ms CPU in ~0.5 s while idle", c.name,
		      cpu1 - cpu0);
		for (uint32_t i = 0; i < n; i++) {
			int rc = hostile_vbd_check_rsp(c.h, id0 + i, BLKIF_OP_READ, BLKIF_RSP_OKAY,
						       true, why, sizeof(why));

			CHECK(rc == 0, "%s: %s", c.name, why);
			if (rc)
				break;
		}
		CHECK(c.h->backend_state != XenbusStateClosing, "%s: a full ring is not an error",
		      c.name);
	}
	case_end(&c);
}

/* ---- notification storm ---- */

struct storm {
	struct shim_guest *g;
	unsigned int port, ms;
	long sent;
};

static void *storm_main(void *arg)
{
	struct storm *s = arg;

	s->sent = hostile_notify_storm(s->g, s->port, s->ms, 0);
	return NULL;
}

/* Bystander throughput: 44 KiB reads, queue depth 8, for ms. Returns MiB/s. */
static double victim_throughput(unsigned int ms)
{
	static uint8_t bufs[8][45056];
	struct blkfront_io ios[8];
	uint64_t end = now_us() + (uint64_t)ms * 1000, t0 = now_us(), bytes = 0;
	unsigned int sub = 0;

	for (int i = 0; i < 8; i++)
		ios[i] = (struct blkfront_io){ .op = BF_READ, .buf = bufs[i], .len = sizeof(bufs[i]),
					       .status = 0 };
	for (;;) {
		bool any = false;

		for (int i = 0; i < 8; i++) {
			if (ios[i].status == 1)
				continue; /* in flight */
			if (ios[i].status == BLKIF_RSP_OKAY && sub > (unsigned int)i)
				bytes += ios[i].len;
			if (now_us() >= end)
				continue;
			ios[i].sector = (sub * 88u) % (DISK_SECTORS - 88);
			ios[i].status = 1;
			if (blkfront_submit(victim, &ios[i]) == 0) {
				sub++;
				any = true;
			} else {
				ios[i].status = 0;
			}
		}
		if (any)
			blkfront_kick(victim);
		if (blkfront_inflight(victim) == 0 && now_us() >= end)
			break;
		if (blkfront_poll(victim, 100) < 0)
			break;
	}
	return (double)bytes / (1 << 20) / ((double)(now_us() - t0) / 1e6);
}

static double storm_phase(unsigned int port, unsigned int ms, long *sent)
{
	struct storm s = { g_att, port, ms, 0 };
	pthread_t th;
	double mibs;

	pthread_create(&th, NULL, storm_main, &s);
	mibs = victim_throughput(ms);
	pthread_join(th, NULL);
	*sent += s.sent;
	return mibs;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * 10^6+ notifications a second into the attacked device's port. The comparison is
 * against the same storm into a port nobody bound (the attacker's thread costs the
 * same CPU either way, so the difference is what the backend spends on the storm),
 * alternated in rounds and compared by median to ride out noise from other load.
 */
static void case_storm(void)
{
	enum { ROUNDS = 3, PHASE_MS = 1000 };
	struct hostile_vbd_opts o = { 0 };
	struct hcase c;
	double base, nul[ROUNDS], att[ROUNDS], ratio, spread;
	long cpu = 0, sent = 0, null_sent = 0;
	bool quiet = (shim_harness_quiet() && shim_harness_timing_build()); /* before we add our own load */
	int void_port;

	if (!selected("storm"))
		return;
	if (case_begin(&c, "notify_storm_bounded_cpu_and_bystander_served", false, &o, true)) {
		void_port = shim_guest_evtchn_alloc_unbound(g_att, 0);
		base = victim_throughput(PHASE_MS);
		for (int i = 0; i < ROUNDS; i++) {
			long cpu0;

			nul[i] = storm_phase((unsigned int)void_port, PHASE_MS, &null_sent);
			cpu0 = hostile_cpu_ms(c.worker);
			att[i] = storm_phase((unsigned int)c.h->port, PHASE_MS, &sent);
			cpu += hostile_cpu_ms(c.worker) - cpu0;
		}
		qsort(nul, ROUNDS, sizeof(nul[0]), cmp_double);
		qsort(att, ROUNDS, sizeof(att[0]), cmp_double);
		ratio = nul[ROUNDS / 2] > 0 ? att[ROUNDS / 2] / nul[ROUNDS / 2] : 0;
		/* The ratio means something only if the machine stayed ours: still quiet at
		 * the end too (the load average lags: a job started meanwhile shows there).
		 * The baseline rounds' spread is printed to judge the noise; it is not a
		 * condition (1.3-1.5 is common on a quiet 2-core machine). */
		spread = nul[0] > 0 ? nul[ROUNDS - 1] / nul[0] : 99;
		quiet = quiet && shim_harness_quiet();
		printf("storm: baseline rounds (storm into an unbound port) %.0f..%.0f MiB/s "
		       "(spread %.2f)\n", nul[0], nul[ROUNDS - 1], spread);
		printf("storm: %.2f M notifies/s into the device for %d x %d ms; attacked worker "
		       "CPU %ld ms (%ld %% of a core); bystander (median MiB/s) alone %.0f, storm "
		       "into an unbound port %.0f, storm into the device %.0f: %.0f %%\n",
		       sent / (ROUNDS * PHASE_MS / 1000.0) / 1e6, ROUNDS, PHASE_MS, cpu,
		       cpu * 100 / (ROUNDS * PHASE_MS), base, nul[ROUNDS / 2], att[ROUNDS / 2],
		       100 * ratio);
		if (quiet) {
			CHECK(sent / ROUNDS >= 1000000 * (long)PHASE_MS / 1000,
			      "%s: only %ld notifications sent", c.name, sent);
			CHECK(ratio >= STORM_MIN_RATIO,
			      "%s: bystander at %.0f %% of its throughput under the storm (bound "
			      "%.0f %%)",
			      c.name, 100 * ratio, 100 * STORM_MIN_RATIO);
		} else {
			printf("storm: NOT ASSERTED: the storm rate and the bystander's ratio (the "
			       "machine is overloaded (load average above its %ld CPUs at the "
			       "start or the end of the case) or this is a sanitizer build)\n",
			       sysconf(_SC_NPROCESSORS_ONLN));
		}
		CHECK(cpu * 100 / (ROUNDS * PHASE_MS) <= STORM_CPU_PCT,
		      "%s: attacked worker used %ld %% of a core under the storm (bound %d %%)",
		      c.name, cpu * 100 / (ROUNDS * PHASE_MS), STORM_CPU_PCT);
		CHECK(c.h->backend_state == XenbusStateConnected, "%s: a storm is not an error",
		      c.name);
		if (void_port > 0)
			shim_guest_evtchn_close(g_att, (unsigned int)void_port);
	}
	case_end(&c);
}

/* ---- double fetch ---- */

/* Version A of the slot: a valid 1-segment READ into page 1. Version B: a WRITE of 11
 * segments, the first with the marker page 0 (0xEE) and first > last, the others with
 * grants that don't exist. Any mix of A's checks with B's fields either writes 0xEE to
 * the disk or uses a bogus grant. */
static void case_double_fetch_slot(void)
{
	struct hostile_vbd_opts o = { 0 };
	struct hcase c;
	unsigned int conclusive = 0, ok = 0, err = 0, iters = 300;
	unsigned long flips = 0;

	if (!selected("double_fetch_slot"))
		return;
	if (case_begin(&c, "double_fetch_slot_acts_on_one_copy", false, &o, true)) {
		memset(hostile_vbd_data(c.h, 0), 0xEE, 4096);
		/* Every answer can be inconclusive on a slow (sanitizer, loaded) run: go on, up to
		 * 4x, until one is conclusive. */
		for (unsigned int i = 0; i < iters || (conclusive == 0 && i < 4 * iters); i++) {
			struct blkif_request a, b;
			struct hostile_flipper f = { 0 };
			uint8_t ga[sizeof(a)], gb[sizeof(b)];
			uint64_t sector = 8 * (uint64_t)(i % 256), id = next_id++;
			volatile uint8_t *slot = hostile_vbd_slot(c.h, c.h->req_prod_pvt);
			uint32_t rsp0 = *hostile_vbd_rsp_prod(c.h);
			uint8_t *page = hostile_vbd_data(c.h, 1);
			uint64_t rid;
			int16_t st;

			memset(page, 0xC3, 4096);
			rw_req(&a, c.h, BLKIF_OP_READ, sector, 1, 0, 7, id);
			hostile_req_init(&b, BLKIF_OP_WRITE, 11, id, sector);
			b.seg[0].gref = hostile_vbd_data_gref(c.h, 0);
			b.seg[0].first_sect = 5;
			b.seg[0].last_sect = 2;
			for (int k = 1; k < 11; k++) {
				b.seg[k].gref = 0xFFFFFF00u + (uint32_t)k;
				b.seg[k].first_sect = 0;
				b.seg[k].last_sect = 7;
			}
			hostile_vbd_layout(c.h, &a, ga);
			hostile_vbd_layout(c.h, &b, gb);
			hostile_vbd_put(c.h, ga);
			hostile_flipper_start(&f, slot, ga, gb, c.h->req_size,
					      hostile_vbd_rsp_prod(c.h), rsp0);
			while (f.flips < 2) /* the race is on before the backend looks */
				sched_yield();
			hostile_vbd_publish(c.h);
			if (hostile_vbd_wait_responses(c.h, 1, 3000) != 0) {
				hostile_flipper_stop(&f);
				CHECK(0, "%s: no response (iteration %u)", c.name, i);
				break;
			}
			flips += hostile_flipper_stop(&f);
			/* The flipper may have overwritten the response after the backend wrote
			 * it and before rsp_prod moved: then the id is not ours (inconclusive). */
			memcpy(&rid, (const void *)slot, 8);
			memcpy(&st, (const void *)(slot + 10), 2);
			c.h->rsp_cons++;
			if (rid != id)
				continue;
			conclusive++;
			CHECK(st == BLKIF_RSP_OKAY || st == BLKIF_RSP_ERROR, "%s: status %d", c.name,
			      st);
			if (st == BLKIF_RSP_OKAY) {
				ok++;
				CHECK(page_matches_disk(page, sector, 0, 7),
				      "%s: READ answered OKAY but the page doesn't hold the data",
				      c.name);
			} else {
				err++;
			}
		}
		CHECK(disk_intact(disk_rw, 0, 8 * 256 + 8),
		      "%s: the disk holds bytes of the rewritten (WRITE) version", c.name);
		CHECK(conclusive > 0, "%s: no conclusive iteration", c.name);
		printf("double fetch (slot): %u iterations, %lu rewrites, %u conclusive: %u OKAY "
		       "(version A), %u ERROR (version B)\n",
		       iters, flips, conclusive, ok, err);
	}
	case_end(&c);
}

/* Indirect WRITE of 20 segments: version A of the descriptor page rewrites the disk's
 * own bytes (pages 2..21 hold them); version B points every segment at the 0xEE page
 * with first > last. The ring slot is untouched, so every response is checked. */
static void case_double_fetch_indirect(void)
{
	struct hostile_vbd_opts o = { .data_pages = 64 };
	struct hcase c;
	unsigned int ok = 0, err = 0, iters = 200;
	unsigned long flips = 0;

	if (!selected("double_fetch_indirect"))
		return;
	if (case_begin(&c, "double_fetch_indirect_page_acts_on_one_copy", false, &o, true)) {
		struct blkif_request_segment *ipage = hostile_vbd_data(c.h, 40);
		struct blkif_request_segment va[512], vb[512];
		const uint64_t sector = 4096;

		memset(hostile_vbd_data(c.h, 0), 0xEE, 4096);
		for (int k = 0; k < 20; k++) {
			uint8_t *p = hostile_vbd_data(c.h, 2 + (unsigned int)k);

			for (size_t i = 0; i < 4096; i++)
				p[i] = disk_byte(sector + (uint64_t)k * 8 + i / 512, i % 512);
			va[k] = (struct blkif_request_segment){ .gref = hostile_vbd_data_gref(c.h, 2 + (unsigned int)k),
								.first_sect = 0, .last_sect = 7 };
			vb[k] = (struct blkif_request_segment){ .gref = hostile_vbd_data_gref(c.h, 0),
								.first_sect = 6, .last_sect = 1 };
		}
		for (unsigned int i = 0; i < iters; i++) {
			struct blkif_request r;
			struct blkif_request_indirect *ind = (void *)&r;
			struct hostile_flipper f = { 0 };
			uint8_t guest[sizeof(r)];
			char why[200];
			uint64_t id = next_id++;
			int16_t st;

			memcpy(ipage, va, 20 * sizeof(va[0]));
			hostile_req_init(&r, BLKIF_OP_INDIRECT, 0, id, sector);
			ind->indirect_op = BLKIF_OP_WRITE;
			ind->nr_segments = 20;
			ind->handle = 0;
			ind->indirect_grefs[0] = hostile_vbd_data_gref(c.h, 40);
			hostile_vbd_layout(c.h, &r, guest);
			hostile_vbd_put(c.h, guest);
			hostile_flipper_start(&f, ipage, va, vb, 20 * sizeof(va[0]), NULL, 0);
			while (f.flips < 2)
				sched_yield();
			hostile_vbd_publish(c.h);
			if (hostile_vbd_wait_responses(c.h, 1, 3000) != 0) {
				hostile_flipper_stop(&f);
				CHECK(0, "%s: no response (iteration %u)", c.name, i);
				break;
			}
			flips += hostile_flipper_stop(&f);
			memcpy(&st, (const void *)(hostile_vbd_slot(c.h, c.h->rsp_cons) + 10), 2);
			CHECK(hostile_vbd_check_rsp(c.h, id, BLKIF_OP_WRITE, st, true, why,
						    sizeof(why)) == 0,
			      "%s: %s", c.name, why);
			CHECK(st == BLKIF_RSP_OKAY || st == BLKIF_RSP_ERROR, "%s: status %d", c.name, st);
			if (st == BLKIF_RSP_OKAY)
				ok++;
			else
				err++;
		}
		CHECK(disk_intact(disk_rw, sector, 160),
		      "%s: the disk holds bytes of the rewritten descriptor page", c.name);
		printf("double fetch (indirect page): %u iterations, %lu rewrites: %u OKAY, %u "
		       "ERROR\n",
		       iters, flips, ok, err);
	}
	case_end(&c);
}

/* ---- blkif request validation (each response checked byte by byte) ---- */

static void blkif_requests(enum blkif_abi abi, bool persistent)
{
	struct hostile_vbd_opts o = { .abi = abi, .persistent = persistent };
	char name[96];
	struct blkif_request r;
	struct blkif_request_indirect *ind = (void *)&r;
	struct blkif_request_discard *dis = (void *)&r;
	struct hcase c;

	snprintf(name, sizeof(name), "blkif_bad_requests_answered_%s_%s",
		 abi == BLKIF_ABI_X86_32 ? "x86_32" : "native", persistent ? "persistent" : "copy");
	if (!selected(name))
		return;
	if (!case_begin(&c, name, false, &o, true)) {
		case_end(&c);
		return;
	}
	/* A good one first (and the page really is written). */
	memset(hostile_vbd_data(c.h, 0), 0, 4096);
	rw_req(&r, c.h, BLKIF_OP_READ, 16, 0, 0, 7, next_id++);
	one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_OKAY);
	CHECK(page_matches_disk(hostile_vbd_data(c.h, 0), 16, 0, 7), "%s: good read data", name);

	/* Unknown operations. */
	{
		const uint8_t ops[] = { BLKIF_OP_RESERVED_1, 7, 8, 100, 200, 255 };

		for (size_t i = 0; i < sizeof(ops); i++) {
			rw_req(&r, c.h, ops[i], 0, 0, 0, 7, next_id++);
			one(&c, &r, ops[i], BLKIF_RSP_EOPNOTSUPP);
		}
	}
	/* Segment counts: 0 and more than 11 (direct). */
	rw_req(&r, c.h, BLKIF_OP_READ, 0, 0, 0, 7, next_id++);
	r.nr_segments = 0;
	one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_ERROR);
	rw_req(&r, c.h, BLKIF_OP_WRITE, 0, 0, 0, 7, next_id++);
	r.nr_segments = 0;
	one(&c, &r, BLKIF_OP_WRITE, BLKIF_RSP_ERROR);
	for (int n = 12; n <= 255; n += 243) {
		rw_req(&r, c.h, BLKIF_OP_READ, 0, 0, 0, 7, next_id++);
		r.nr_segments = (uint8_t)n;
		one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_ERROR);
	}
	/* Sector bounds inside a page. */
	rw_req(&r, c.h, BLKIF_OP_READ, 0, 0, 5, 2, next_id++);
	one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_ERROR);
	rw_req(&r, c.h, BLKIF_OP_READ, 0, 0, 0, 8, next_id++);
	one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_ERROR);
	/* A 9-sector WRITE from a page holding the disk's own sectors 0..7: accepted, the
	 * 9th sector would come from beyond the page (persistent mapping) and show up in
	 * the disk check at the end. */
	for (int i = 0; i < 4096; i++)
		((uint8_t *)hostile_vbd_data(c.h, 3))[i] = disk_byte((uint64_t)i / 512, (size_t)i % 512);
	rw_req(&r, c.h, BLKIF_OP_WRITE, 0, 3, 0, 8, next_id++);
	one(&c, &r, BLKIF_OP_WRITE, BLKIF_RSP_ERROR);
	rw_req(&r, c.h, BLKIF_OP_WRITE, 0, 0, 8, 255, next_id++);
	one(&c, &r, BLKIF_OP_WRITE, BLKIF_RSP_ERROR);
	/* Ranges: wrap-around, past the end, straddling the end; the last sectors are fine. */
	rw_req(&r, c.h, BLKIF_OP_READ, UINT64_MAX - 3, 0, 0, 7, next_id++);
	one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_ERROR);
	rw_req(&r, c.h, BLKIF_OP_WRITE, UINT64_MAX - 3, 0, 0, 7, next_id++);
	one(&c, &r, BLKIF_OP_WRITE, BLKIF_RSP_ERROR);
	rw_req(&r, c.h, BLKIF_OP_READ, DISK_SECTORS, 0, 0, 0, next_id++);
	one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_ERROR);
	rw_req(&r, c.h, BLKIF_OP_READ, DISK_SECTORS - 4, 0, 0, 7, next_id++);
	one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_ERROR);
	rw_req(&r, c.h, BLKIF_OP_READ, DISK_SECTORS - 8, 0, 0, 7, next_id++);
	one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_OKAY);
	rw_req(&r, c.h, BLKIF_OP_WRITE, DISK_SECTORS - 4, 0, 0, 7, next_id++);
	one(&c, &r, BLKIF_OP_WRITE, BLKIF_RSP_ERROR);
	rw_req(&r, c.h, BLKIF_OP_WRITE, DISK_SECTORS, 0, 0, 0, next_id++);
	one(&c, &r, BLKIF_OP_WRITE, BLKIF_RSP_ERROR);
	{
		struct stat sb;

		CHECK(stat(disk_rw, &sb) == 0 && (uint64_t)sb.st_size == DISK_SECTORS * 512,
		      "%s: a write past the end grew the image to %lld bytes", name,
		      (long long)sb.st_size);
	}
	/* Discard wrapping and past the end. */
	hostile_req_init(&r, BLKIF_OP_DISCARD, 0, next_id++, UINT64_MAX - 7);
	dis->nr_sectors = 16;
	one(&c, &r, BLKIF_OP_DISCARD, BLKIF_RSP_ERROR);
	hostile_req_init(&r, BLKIF_OP_DISCARD, 0, next_id++, DISK_SECTORS - 8);
	dis->nr_sectors = 16;
	one(&c, &r, BLKIF_OP_DISCARD, BLKIF_RSP_ERROR);

	/* Indirect: 0 segments, more than advertised (256), more than 8 pages' worth,
	 * an op that isn't READ/WRITE, a bogus descriptor page, inconsistent counts (the
	 * descriptor page holds 3 good entries of the 20 claimed). */
	{
		struct blkif_request_segment *ip = hostile_vbd_data(c.h, 50);
		const struct { uint16_t nseg; uint8_t op; uint32_t gref; } bad[] = {
			{ 0, BLKIF_OP_READ, 0 }, { 257, BLKIF_OP_READ, 0 },
			{ 4097, BLKIF_OP_READ, 0 }, { 65535, BLKIF_OP_WRITE, 0 },
			{ 4, BLKIF_OP_FLUSH_DISKCACHE, 0 }, { 4, BLKIF_OP_INDIRECT, 0 },
			{ 4, BLKIF_OP_READ, 0xFFFFFFF0u }, { 20, BLKIF_OP_READ, 1 },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			memset(ip, 0, 4096);
			for (int k = 0; k < 3; k++)
				ip[k] = (struct blkif_request_segment){
					.gref = hostile_vbd_data_gref(c.h, 0), .first_sect = 0,
					.last_sect = 7 };
			for (int k = 3; k < 512; k++)
				ip[k] = (struct blkif_request_segment){ .gref = 0xFFFFFFFFu,
									.first_sect = 9,
									.last_sect = 3 };
			hostile_req_init(&r, BLKIF_OP_INDIRECT, 0, next_id++, 0);
			ind->indirect_op = bad[i].op;
			ind->nr_segments = bad[i].nseg;
			ind->handle = 0;
			for (int k = 0; k < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; k++)
				ind->indirect_grefs[k] = bad[i].gref == 1 || bad[i].gref == 0
								 ? hostile_vbd_data_gref(c.h, 50)
								 : bad[i].gref;
			one(&c, &r, bad[i].op, BLKIF_RSP_ERROR);
		}
		/* And a good indirect request still works. */
		hostile_req_init(&r, BLKIF_OP_INDIRECT, 0, next_id++, 24);
		ind->indirect_op = BLKIF_OP_READ;
		ind->nr_segments = 3;
		ind->handle = 0;
		ind->indirect_grefs[0] = hostile_vbd_data_gref(c.h, 50);
		one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_OKAY);
	}

	/* Grants: not in the table, the reserved ref 0, a freed ref, revoked before the
	 * request, read-only for a READ (must fail and leave the page alone), read-only
	 * for a WRITE (fine: the backend only reads it). */
	{
		uint32_t frame = 0;
		int ref;
		uint8_t *p;

		rw_req(&r, c.h, BLKIF_OP_READ, 0, 0, 0, 7, next_id++);
		r.seg[0].gref = 0xFFFFFFF0u;
		one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_ERROR);
		r.seg[0].gref = 0;
		r.id = next_id++;
		one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_ERROR);
		r.seg[0].gref = shim_guest_grant_entries(g_att) - 1;
		r.id = next_id++;
		one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_ERROR);

		CHECK(shim_guest_page_alloc(g_att, 1, &frame) == 0, "%s: page", name);
		p = shim_guest_frame_ptr(g_att, frame);
		ref = shim_guest_grant(g_att, frame, 0, false);
		CHECK(ref > 0 && shim_guest_revoke(g_att, (uint32_t)ref) == 0, "%s: revoke", name);
		rw_req(&r, c.h, BLKIF_OP_READ, 0, 0, 0, 7, next_id++);
		r.seg[0].gref = (uint32_t)ref;
		one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_ERROR);

		memset(p, 0x3C, 4096);
		ref = shim_guest_grant(g_att, frame, 0, true);
		CHECK(ref > 0, "%s: ro grant", name);
		rw_req(&r, c.h, BLKIF_OP_READ, 0, 0, 0, 7, next_id++);
		r.seg[0].gref = (uint32_t)ref;
		one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_ERROR);
		{
			bool untouched = true;

			for (int i = 0; i < 4096; i++)
				untouched = untouched && p[i] == 0x3C;
			CHECK(untouched, "%s: a READ wrote into a read-only grant", name);
		}
		for (int i = 0; i < 4096; i++)
			p[i] = disk_byte(200 + (uint64_t)i / 512, (size_t)i % 512);
		/* Copy path: fine, the backend only reads it. Persistent grants are mapped
		 * writable (as Linux blkback does), so there the request fails instead. */
		rw_req(&r, c.h, BLKIF_OP_WRITE, 200, 0, 0, 7, next_id++);
		r.seg[0].gref = (uint32_t)ref;
		one(&c, &r, BLKIF_OP_WRITE, persistent ? BLKIF_RSP_ERROR : BLKIF_RSP_OKAY);
		for (int tries = 0; tries < 100 && shim_guest_revoke(g_att, (uint32_t)ref) == -EBUSY;
		     tries++)
			usleep(10000);
		shim_guest_page_free(g_att, frame, 1);
	}
	/* Revoked while the request is in flight: OKAY or ERROR, never anything else, and
	 * the backend keeps serving. */
	{
		unsigned int okc = 0, errc = 0, revoked = 0;

		for (int i = 0; i < 100; i++) {
			uint32_t frame;
			int ref;
			uint8_t guest[sizeof(r)];
			int16_t st;
			char why[200];
			uint64_t id = next_id++;
			bool revoked_now = false;

			if (shim_guest_page_alloc(g_att, 1, &frame))
				break;
			memset(shim_guest_frame_ptr(g_att, frame), 0, 4096);
			ref = shim_guest_grant(g_att, frame, 0, false);
			rw_req(&r, c.h, BLKIF_OP_READ, 8 * (uint64_t)i, 0, 0, 7, id);
			r.seg[0].gref = (uint32_t)ref;
			hostile_vbd_layout(c.h, &r, guest);
			hostile_vbd_put(c.h, guest);
			hostile_vbd_publish(c.h);
			{
				int rrc = -EBUSY;

				for (int t = 0; t < 100 && (rrc = shim_guest_revoke(g_att, (uint32_t)ref)) == -EBUSY; t++)
					usleep(1000);
				revoked_now = rrc == 0;
				revoked += revoked_now;
				/* From now on the page is ours again: nothing may write it. */
				if (rrc == 0)
					memset(shim_guest_frame_ptr(g_att, frame), 0x11, 4096);
			}
			if (hostile_vbd_wait_responses(c.h, 1, 3000)) {
				CHECK(0, "%s: revoked mid-request: no response", name);
				break;
			}
			memcpy(&st, (const void *)(hostile_vbd_slot(c.h, c.h->rsp_cons) + 10), 2);
			CHECK(hostile_vbd_check_rsp(c.h, id, BLKIF_OP_READ, st, true, why,
						    sizeof(why)) == 0,
			      "%s: %s", name, why);
			CHECK(st == BLKIF_RSP_OKAY || st == BLKIF_RSP_ERROR, "%s: status %d", name, st);
			{
				const uint8_t *pg = shim_guest_frame_ptr(g_att, frame);
				bool clean = true;

				for (int k = 0; k < 4096; k++)
					clean = clean && pg[k] == 0x11;
				CHECK(!revoked_now || clean,
				      "%s: the backend wrote into a page after its grant was revoked", name);
				CHECK(revoked_now || st != BLKIF_RSP_OKAY ||
					      page_matches_disk(pg, 8 * (uint64_t)i, 0, 7),
				      "%s: revoked mid-request: OKAY without the data", name);
			}
			okc += st == BLKIF_RSP_OKAY;
			errc += st == BLKIF_RSP_ERROR;
			shim_guest_page_free(g_att, frame, 1);
		}
		printf("%s: revoked mid-request: %u revoked, %u OKAY, %u ERROR\n", name, revoked, okc, errc);
	}
	/* Still serving after all that. */
	rw_req(&r, c.h, BLKIF_OP_READ, 32, 0, 0, 7, next_id++);
	one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_OKAY);
	CHECK(c.h->backend_state == XenbusStateConnected, "%s: bad requests are not fatal", name);
	CHECK(disk_intact(disk_rw, 0, DISK_SECTORS), "%s: the disk changed", name);
	case_end(&c);
}

/* Read-only disk: writes, flushes, discards, indirect writes all refused; reads work;
 * the file is unchanged. */
static void case_readonly(void)
{
	struct hostile_vbd_opts o = { 0 };
	struct blkif_request r;
	struct blkif_request_indirect *ind = (void *)&r;
	struct blkif_request_discard *dis = (void *)&r;
	struct hcase c;

	if (!selected("readonly"))
		return;
	if (case_begin(&c, "readonly_disk_refuses_writes_and_discards", true, &o, true)) {
		memset(hostile_vbd_data(c.h, 0), 0xEE, 4096);
		rw_req(&r, c.h, BLKIF_OP_WRITE, 0, 0, 0, 7, next_id++);
		one(&c, &r, BLKIF_OP_WRITE, BLKIF_RSP_ERROR);
		hostile_req_init(&r, BLKIF_OP_DISCARD, 0, next_id++, 0);
		dis->nr_sectors = 8;
		CHECK(one(&c, &r, BLKIF_OP_DISCARD, BLKIF_RSP_EOPNOTSUPP) == BLKIF_RSP_EOPNOTSUPP,
		      "discard refused");
		hostile_req_init(&r, BLKIF_OP_DISCARD, 0, next_id++, 0);
		dis->flag = BLKIF_DISCARD_SECURE;
		dis->nr_sectors = 8;
		one(&c, &r, BLKIF_OP_DISCARD, BLKIF_RSP_EOPNOTSUPP);
		rw_req(&r, c.h, BLKIF_OP_FLUSH_DISKCACHE, 0, 0, 0, 7, next_id++);
		one(&c, &r, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_RSP_ERROR);
		rw_req(&r, c.h, BLKIF_OP_WRITE_BARRIER, 0, 0, 0, 7, next_id++);
		one(&c, &r, BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_ERROR);
		hostile_req_init(&r, BLKIF_OP_INDIRECT, 0, next_id++, 0);
		ind->indirect_op = BLKIF_OP_WRITE;
		ind->nr_segments = 1;
		ind->handle = 0;
		ind->indirect_grefs[0] = hostile_vbd_data_gref(c.h, 1);
		((struct blkif_request_segment *)hostile_vbd_data(c.h, 1))[0] =
			(struct blkif_request_segment){ .gref = hostile_vbd_data_gref(c.h, 0),
							.first_sect = 0, .last_sect = 7 };
		one(&c, &r, BLKIF_OP_WRITE, BLKIF_RSP_ERROR);
		rw_req(&r, c.h, BLKIF_OP_READ, 8, 2, 0, 7, next_id++);
		one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_OKAY);
		CHECK(page_matches_disk(hostile_vbd_data(c.h, 2), 8, 0, 7), "read-only read data");
		CHECK(disk_intact(disk_ro, 0, DISK_SECTORS), "%s: the read-only file changed",
		      c.name);
	}
	case_end(&c);
}

/*
 * Requests parked for bounce pages, one of which then fails its grant copy. 16 indirect
 * READs of 256 segments take all 4096 bounce pages of the queue (blk_config default),
 * so what follows waits: a WRITE whose segments name no grant, then 4 small READs.
 * Expected: 21 responses, each request once (the WRITE ERROR, the rest OKAY), nothing
 * else, and the worker alive.
 */
static void case_parked_bad_grant(void)
{
	enum { BIG = 16, SMALL = 4, TOTAL = BIG + 1 + SMALL };
	struct hostile_vbd_opts o = { .data_pages = 64 };
	struct blkif_request r;
	struct blkif_request_indirect *ind = (void *)&r;
	struct hcase c;
	uint8_t guest[sizeof(r)];
	bool seen[TOTAL] = { false };
	char why[200];

	if (!selected("parked"))
		return;
	if (case_begin(&c, "parked_request_with_bad_grant_answered_once", false, &o, true)) {
		struct blkif_request_segment *good = hostile_vbd_data(c.h, 40);
		struct blkif_request_segment *bad = hostile_vbd_data(c.h, 41);
		uint64_t id0 = next_id;
		uint32_t first = c.h->rsp_cons;

		for (int k = 0; k < 512; k++) {
			good[k] = (struct blkif_request_segment){
				.gref = hostile_vbd_data_gref(c.h, (unsigned int)k % 32),
				.first_sect = 0, .last_sect = 7 };
			bad[k] = (struct blkif_request_segment){ .gref = 0xFFFFFFF0u, .first_sect = 0,
								 .last_sect = 7 };
		}
		for (int i = 0; i < TOTAL; i++) {
			if (i <= BIG) {
				hostile_req_init(&r, BLKIF_OP_INDIRECT, 0, next_id++,
						 (uint64_t)(i % BIG) * 2048);
				ind->indirect_op = i < BIG ? BLKIF_OP_READ : BLKIF_OP_WRITE;
				ind->nr_segments = 256;
				ind->handle = 0;
				ind->indirect_grefs[0] = hostile_vbd_data_gref(c.h, i < BIG ? 40 : 41);
			} else {
				rw_req(&r, c.h, BLKIF_OP_READ, 8 * (uint64_t)i, 33 + (unsigned int)i, 0,
				       7, next_id++);
			}
			hostile_vbd_layout(c.h, &r, guest);
			hostile_vbd_put(c.h, guest);
		}
		hostile_vbd_publish(c.h);
		CHECK(hostile_vbd_wait_responses(c.h, TOTAL, 5000) == 0,
		      "%s: %u of %d requests answered", c.name, *hostile_vbd_rsp_prod(c.h) - first,
		      TOTAL);
		usleep(300000);
		CHECK(*hostile_vbd_rsp_prod(c.h) - first == TOTAL,
		      "%s: BACKEND BUG: %u responses to %d requests", c.name,
		      *hostile_vbd_rsp_prod(c.h) - first, TOTAL);
		for (int i = 0; i < TOTAL && *hostile_vbd_rsp_prod(c.h) != c.h->rsp_cons; i++) {
			uint64_t id;
			int k;

			memcpy(&id, (const void *)hostile_vbd_slot(c.h, c.h->rsp_cons), 8);
			k = (int)(id - id0);
			CHECK(id >= id0 && k < TOTAL && !seen[k],
			      "%s: BACKEND BUG: response with id %#llx (not asked, or twice)", c.name,
			      (unsigned long long)id);
			if (!(id >= id0 && k < TOTAL && !seen[k]))
				break;
			seen[k] = true;
			CHECK(hostile_vbd_check_rsp(c.h, id, k == BIG ? BLKIF_OP_WRITE : BLKIF_OP_READ,
						    k == BIG ? BLKIF_RSP_ERROR : BLKIF_RSP_OKAY, true,
						    why, sizeof(why)) == 0,
			      "%s: %s", c.name, why);
		}
	}
	case_end(&c);
}

/* Two WRITE_BARRIERs published together behind a READ: each must be answered (once). */
static void case_two_barriers(void)
{
	struct hostile_vbd_opts o = { 0 };
	struct blkif_request r;
	struct hcase c;
	uint8_t guest[sizeof(r)];
	char why[200];

	if (!selected("barriers"))
		return;
	if (case_begin(&c, "two_barriers_in_one_batch_both_answered", false, &o, true)) {
		uint64_t id0 = next_id;
		bool seen[3] = { false };
		uint32_t first = c.h->rsp_cons;

		rw_req(&r, c.h, BLKIF_OP_READ, 0, 0, 0, 7, next_id++);
		hostile_vbd_layout(c.h, &r, guest);
		hostile_vbd_put(c.h, guest);
		for (int i = 0; i < 2; i++) {
			hostile_req_init(&r, BLKIF_OP_WRITE_BARRIER, 0, next_id++, 0);
			hostile_vbd_layout(c.h, &r, guest);
			hostile_vbd_put(c.h, guest);
		}
		hostile_vbd_publish(c.h);
		CHECK(hostile_vbd_wait_responses(c.h, 3, 3000) == 0,
		      "%s: BACKEND BUG: %u of 3 requests answered", c.name,
		      *hostile_vbd_rsp_prod(c.h) - first);
		while (*hostile_vbd_rsp_prod(c.h) != c.h->rsp_cons) {
			uint64_t id;
			unsigned int k;

			memcpy(&id, (const void *)hostile_vbd_slot(c.h, c.h->rsp_cons), 8);
			k = (unsigned int)(id - id0);
			CHECK(k < 3 && !seen[k], "%s: response id %#llx", c.name,
			      (unsigned long long)id);
			if (k >= 3 || seen[k])
				break;
			seen[k] = true;
			CHECK(hostile_vbd_check_rsp(c.h, id, k ? BLKIF_OP_WRITE_BARRIER : BLKIF_OP_READ,
						    BLKIF_RSP_OKAY, true, why, sizeof(why)) == 0,
			      "%s: %s", c.name, why);
		}
		/* And the queue still takes requests. */
		rw_req(&r, c.h, BLKIF_OP_READ, 8, 0, 0, 7, next_id++);
		one(&c, &r, BLKIF_OP_READ, BLKIF_RSP_OKAY);
	}
	case_end(&c);
}

/* ---- xenstore keys ---- */

static void key_case(const char *name, const struct hostile_key *keys)
{
	struct hostile_vbd_opts o = { .keys = keys };
	struct hcase c;
	int st = -1;

	if (!selected(name))
		return;
	if (case_begin(&c, name, false, &o, false)) {
		/* Closing, or left in InitWait: anything but Connected, for a while. */
		hostile_vbd_wait(c.h, 1u << XenbusStateConnected | 1u << XenbusStateClosing |
					      1u << XenbusStateClosed,
				 1500, &st);
		CHECK(st != XenbusStateConnected, "%s: the backend connected (state %d)", name, st);
		CHECK(st == XenbusStateClosing || st == XenbusStateInitWait ||
			      st == XenbusStateClosed,
		      "%s: backend state %d", name, st);
	}
	case_end(&c);
}

/* ring-page-order one above the advertised maximum, with every ring-ref present and
 * valid: only the bound stops it. */
static void case_order_above_max(void)
{
	struct hostile_vbd_opts o = { .ring_order = 5 };
	struct hcase c;
	int st = -1;

	if (!selected("xenstore_ring_page_order_above_max"))
		return;
	if (case_begin(&c, "xenstore_ring_page_order_above_max_refused", false, &o, false)) {
		hostile_vbd_wait(c.h, 1u << XenbusStateConnected | 1u << XenbusStateClosing, 1500,
				 &st);
		CHECK(st != XenbusStateConnected, "%s: the backend connected a 32-page ring",
		      c.name);
	}
	case_end(&c);
}

static void case_keys(void)
{
	/* As big as the xenstored's node quota lets a guest write (2048-byte records). */
	static char huge_proto[1801], huge_num[1801];
	const struct hostile_key order99[] = { { "ring-page-order", "99" }, { NULL, NULL } };
	const struct hostile_key order_neg[] = { { "ring-page-order", "-1" }, { NULL, NULL } };
	const struct hostile_key q0[] = { { "multi-queue-num-queues", "0" }, { NULL, NULL } };
	const struct hostile_key q1000[] = { { "multi-queue-num-queues", "1000" }, { NULL, NULL } };
	const struct hostile_key evt_nan[] = { { "event-channel", "seven" }, { NULL, NULL } };
	const struct hostile_key evt_big[] = { { "event-channel", "99999999999" }, { NULL, NULL } };
	const struct hostile_key evt_gone[] = { { "event-channel", NULL }, { NULL, NULL } };
	const struct hostile_key proto[] = { { "protocol", "sparc64-abi" }, { NULL, NULL } };
	const struct hostile_key proto_empty[] = { { "protocol", "" }, { NULL, NULL } };
	const struct hostile_key ref_nan[] = { { "ring-ref", "12abc" }, { NULL, NULL } };
	const struct hostile_key ref_gone[] = { { "ring-ref", NULL }, { NULL, NULL } };
	struct hostile_key huge1[] = { { "protocol", huge_proto }, { NULL, NULL } };
	struct hostile_key huge2[] = { { "ring-ref", huge_num }, { NULL, NULL } };

	memset(huge_proto, 'x', sizeof(huge_proto) - 1);
	memset(huge_num, '9', sizeof(huge_num) - 1);
	key_case("xenstore_ring_page_order_99_refused", order99);
	key_case("xenstore_ring_page_order_negative_refused", order_neg);
	key_case("xenstore_num_queues_0_refused", q0);
	key_case("xenstore_num_queues_1000_refused", q1000);
	key_case("xenstore_event_channel_not_a_number_refused", evt_nan);
	key_case("xenstore_event_channel_too_big_refused", evt_big);
	key_case("xenstore_event_channel_missing_refused", evt_gone);
	key_case("xenstore_unknown_protocol_refused", proto);
	key_case("xenstore_empty_protocol_refused", proto_empty);
	key_case("xenstore_ring_ref_garbage_refused", ref_nan);
	key_case("xenstore_ring_ref_missing_refused", ref_gone);
	key_case("xenstore_huge_protocol_value_refused", huge1);
	key_case("xenstore_huge_ring_ref_value_refused", huge2);
}

/* The frontend's state flaps hundreds of times a second; afterwards a real frontend
 * connects to the same device and does I/O. */
static void case_flapping(void)
{
	struct hostile_vbd_opts o = { 0 };
	struct blkfront_opts bo;
	struct blkfront *bf = NULL;
	struct hcase c;
	uint8_t buf[4096];
	uint64_t t0;
	int n = 0, rc;

	if (!selected("flapping"))
		return;
	if (case_begin(&c, "xenstore_state_flapping_survived", false, &o, true)) {
		const int seq[] = { XenbusStateInitialising, XenbusStateInitialised,
				    XenbusStateConnected, XenbusStateClosing, XenbusStateInitialised,
				    XenbusStateClosed, XenbusStateInitialising, XenbusStateConnected };

		t0 = now_us();
		while (now_us() - t0 < 1500000) {
			hostile_vbd_set_state(c.h, seq[n % 8]);
			n++;
		}
		printf("flapping: %d state writes in 1.5 s (%.0f/s)\n", n, n / 1.5);
		CHECK(n >= 300, "%s: only %d state changes", c.name, n);
		hostile_vbd_close(c.h);
		c.h = NULL;
		blkfront_opts_default(&bo);
		bo.timeout_ms = 5000;
		/* A frontend starting over says Initialising first (as the toolstack's
		 * initial state=1 does for a new device), and again on each try: a late
		 * event of the flapping can still make the backend try the old frontend's
		 * ring and close, and a closed backend waits for Initialising. */
		for (int tries = 0; tries < 3 && !bf; tries++) {
			char fe[128];
			struct xs_handle *xs = shim_guest_xs_open(g_att);

			snprintf(fe, sizeof(fe), "/local/domain/%u/device/vbd/%u", ATTACKER, c.devid);
			CHECK(xs && xenbus_switch_state(xs, XBT_NULL, fe, XenbusStateInitialising) == 0,
			      "%s: state Initialising", c.name);
			if (xs)
				xs_close(xs);
			rc = blkfront_open(&bf, g_att, c.devid, &bo);
			if (rc) {
				printf("flapping: try %d: a real frontend did not connect (%s)\n",
				       tries + 1, strerror(-rc));
				bf = NULL;
			}
		}
		CHECK(bf != NULL, "%s: a real frontend can't connect after the flapping", c.name);
		if (bf) {
			rc = blkfront_read(bf, 8, buf, sizeof(buf));
			CHECK(rc == 0 && page_matches_disk(buf, 8, 0, 7), "%s: I/O after flapping: %d",
			      c.name, rc);
			blkfront_close(bf);
		}
	}
	case_end(&c);
}

/* ---- set-up ---- */

static int start_splitpvd(void)
{
	static const char *const opts[] = { "--max-queues", "2", NULL };

	splitpvd = shim_harness_splitpvd(opts, NULL);
	return splitpvd < 0 ? (int)splitpvd : 0;
}

/* Killed (the test runner's timeout): take splitpvd and the shim down with us. */
static void on_signal(int sig)
{
	if (splitpvd > 0)
		kill(splitpvd, SIGTERM);
	if (shim.pid > 0)
		kill(shim.pid, SIGTERM);
	signal(sig, SIG_DFL);
	raise(sig);
}

int main(int argc, char **argv)
{
	struct shim_ts_config cfg = { 0 };
	struct blkfront_opts bo;
	int rc;

	only = argc > 1 ? argv[1] : NULL;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	rc = shim_harness_start(&shim, argv[0]);
	if (rc) {
		printf("SKIP: can't start splitpv-shim: %s\n", strerror(-rc));
		return rc == -ENOENT ? 77 : 1;
	}
	snprintf(disk_rw, sizeof(disk_rw), "%s/rw.img", shim.rundir);
	snprintf(disk_ro, sizeof(disk_ro), "%s/ro.img", shim.rundir);
	snprintf(disk_vic, sizeof(disk_vic), "%s/victim.img", shim.rundir);
	if (make_disk(disk_rw) || make_disk(disk_ro) || make_disk(disk_vic)) {
		printf("can't create the disk images\n");
		shim_harness_stop(&shim);
		return 1;
	}
#ifdef __SANITIZE_ADDRESS__
	{
		char opts[512];
		const char *old = getenv("ASAN_OPTIONS");

		snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=%d", old ? old : "",
			 old && *old ? ":" : "", ASAN_QUARANTINE_MB);
		setenv("ASAN_OPTIONS", opts, 1);
	}
#endif
	rc = start_splitpvd();
	if (rc) {
		printf("SKIP: splitpvd not built\n");
		shim_harness_stop(&shim);
		return 77;
	}
	cfg.rundir = shim.rundir;
	cfg.script_dir = "tools/hotplug";
	rc = shim_ts_open(&ts, &cfg);
	CHECK(rc == 0, "toolstack: %s", strerror(-rc));
	rc = rc ?: shim_ts_domain_create(ts, ATTACKER, NULL);
	rc = rc ?: shim_ts_domain_create(ts, VICTIM, NULL);
	CHECK(rc == 0, "domains: %s", strerror(-rc));
	rc = rc ?: shim_guest_create(&g_att, shim.rundir, ATTACKER, 8192, 16384);
	rc = rc ?: shim_guest_create(&g_vic, shim.rundir, VICTIM, 8192, 16384);
	CHECK(rc == 0, "guests: %s", strerror(-rc));
	rc = rc ?: attach("xvda", disk_vic, false, VICTIM, &victim_devid);
	CHECK(rc == 0, "bystander disk: %s", strerror(-rc));
	if (rc == 0) {
		blkfront_opts_default(&bo);
		bo.persistent = false;
		rc = blkfront_open(&victim, g_vic, victim_devid, &bo);
		CHECK(rc == 0, "bystander blkfront: %s", strerror(-rc));
	}
	if (rc)
		goto out;

	case_storm(); /* first: the load average must not include our own spinning threads */
	case_prod_overflow();
	case_prod_bogus_at_connect();
	case_prod_backwards();
	case_prod_racing();
	case_ring_full();
	case_double_fetch_slot();
	case_double_fetch_indirect();
	blkif_requests(BLKIF_ABI_NATIVE, false);
	blkif_requests(BLKIF_ABI_X86_32, false);
	blkif_requests(BLKIF_ABI_NATIVE, true);
	case_readonly();
	case_parked_bad_grant();
	case_two_barriers();
	case_keys();
	case_order_above_max();
	case_flapping();

out:
	blkfront_close(victim);
	shim_guest_destroy(g_att);
	shim_guest_destroy(g_vic);
	shim_ts_close(ts);
	if (splitpvd > 0) {
		kill(splitpvd, SIGTERM);
		waitpid(splitpvd, NULL, 0);
	}
	shim_harness_stop(&shim);
	printf("%s: %d case(s), %d failure(s)\n", failures ? "FAIL" : "PASS", cases, failures);
	return failures ? 1 : 0;
}
