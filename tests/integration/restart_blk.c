/*
 * restart_blk — crash-proof restart on the shim: a data-verification workload runs
 * through the userspace blkfront while the test SIGKILLs the guest's splitpv-blkback
 * worker 20 times. splitpvd restarts it with the device's crash journal; the new worker
 * re-attaches to the live rings and re-issues what was in flight. Asserts 0 I/O errors,
 * 0 corrupted blocks, no reconnect (backend stays Connected, same rings), and each
 * re-attach (kill -> first response) under 1 s; prints the figures. Then an upgrade
 * (SIGHUP to splitpvd) under the same workload.
 *
 *   restart_blk [kills]      (default 20)
 */
#include "frontend-shim/blkfront.h"
#include "frontend-shim/guest.h"
#include "frontend-shim/toolstack.h"
#include "tests/integration/lifecycle_util.h"
#include "tests/integration/shim_harness.h"
#include "xenbus/supervisor.h"
#include "xenbus/xs.h"

#include <fcntl.h>
#include <xen/io/xenbus.h>

#define DOMID 3
#define NBLK 2048u          /* 4 KiB blocks: 8 MiB */
#define QD 32u
#define NO_VERSION UINT64_MAX

struct slot {
	struct blkfront_io io;
	uint8_t buf[4096];
	unsigned int blk;
	uint64_t ver;
	bool busy;
};

static struct slot slots[QD];
static uint64_t shadow[NBLK];       /* version last written (completed), or NO_VERSION */
static bool blk_busy[NBLK];
static unsigned long errors, corrupt, completions, since_kill;
static bool awaiting;
static double t_kill, reattach[64];
static int nreattach;

static void done_cb(struct blkfront_io *io)
{
	struct slot *s = io->opaque;
	uint8_t want[4096];

	completions++;
	since_kill++;
	if (awaiting) {
		reattach[nreattach++] = lc_now() - t_kill;
		awaiting = false;
	}
	if (io->status != BLKIF_RSP_OKAY) {
		errors++;
	} else if (io->op == BF_WRITE) {
		shadow[s->blk] = s->ver;
	} else {
		if (shadow[s->blk] == NO_VERSION)
			memset(want, 0, sizeof(want));
		else
			lc_pattern(want, sizeof(want), s->blk, shadow[s->blk]);
		if (memcmp(want, s->buf, sizeof(want)) != 0)
			corrupt++;
	}
	blk_busy[s->blk] = false;
	s->busy = false;
}

static void refill(struct blkfront *bf, uint64_t *seed)
{
	static uint64_t version;

	for (unsigned int i = 0; i < QD; i++) {
		struct slot *s = &slots[i];
		unsigned int blk;

		if (s->busy)
			continue;
		do
			blk = (unsigned int)(lc_xorshift(seed) % NBLK);
		while (blk_busy[blk]);
		memset(&s->io, 0, sizeof(s->io));
		s->blk = blk;
		s->io.sector = (uint64_t)blk * 8;
		s->io.len = sizeof(s->buf);
		s->io.buf = s->buf;
		s->io.queue = i;
		s->io.done = done_cb;
		s->io.opaque = s;
		if (lc_xorshift(seed) % 10 < 6) {
			s->io.op = BF_WRITE;
			s->ver = ++version;
			lc_pattern(s->buf, sizeof(s->buf), blk, s->ver);
		} else {
			s->io.op = BF_READ;
			memset(s->buf, 0xEE, sizeof(s->buf));
		}
		if (blkfront_submit(bf, &s->io) != 0)
			break; /* queue full: next round */
		s->busy = true;
		blk_busy[blk] = true;
	}
	blkfront_kick(bf);
}

static pid_t the_worker(pid_t splitpvd)
{
	pid_t pids[4];
	int n = lc_children(splitpvd, "splitpv-blkback", pids, 4);

	return n == 1 ? pids[0] : -1;
}

/* Run the workload, disrupting the worker `kills` times with disrupt(); returns the
 * largest re-attach time. */
static double run(struct blkfront *bf, pid_t *splitpvd, int kills, bool upgrade, double limit)
{
	uint64_t seed = 0x9d2c5680a1b2c3d4ull ^ (uint64_t)time(NULL);
	double next = lc_now() + 0.3, end = lc_now() + limit, worst = 0;
	int done = 0;
	pid_t last = -1;

	nreattach = 0;
	while (lc_now() < end && (done < kills || awaiting || since_kill < 200)) {
		refill(bf, &seed);
		if (blkfront_poll(bf, 20) < 0) {
			CHECK(0, "blkfront_poll failed: the ring broke");
			break;
		}
		if (done < kills && !awaiting && since_kill >= 100 && lc_now() >= next) {
			pid_t w = the_worker(*splitpvd);

			if (w <= 0 || w == last)
				continue; /* the new worker is not up yet */
			while (blkfront_poll(bf, 0) > 0) /* responses already out are not ours */
				;
			t_kill = lc_now();
			if (upgrade)
				CHECK(kill(*splitpvd, SIGHUP) == 0, "SIGHUP");
			else
				CHECK(kill(w, SIGKILL) == 0, "kill %d", (int)w);
			last = w;
			awaiting = true;
			since_kill = 0;
			done++;
			next = lc_now() + 0.25;
		}
	}
	CHECK(done == kills, "only %d of %d disruptions done", done, kills);
	CHECK(!awaiting, "no response after the last disruption");
	/* Drain. */
	for (int i = 0; i < 500 && blkfront_inflight(bf); i++)
		blkfront_poll(bf, 20);
	CHECK(blkfront_inflight(bf) == 0, "%u requests never answered", blkfront_inflight(bf));
	for (int i = 0; i < nreattach; i++)
		if (reattach[i] > worst)
			worst = reattach[i];
	return worst;
}

static void verify_all(struct blkfront *bf)
{
	uint8_t *rd = malloc((size_t)NBLK * 4096), want[4096];
	unsigned long bad = 0;

	CHECK(blkfront_read(bf, 0, rd, (size_t)NBLK * 4096) == 0, "final read");
	for (unsigned int b = 0; b < NBLK; b++) {
		if (shadow[b] == NO_VERSION)
			memset(want, 0, sizeof(want));
		else
			lc_pattern(want, sizeof(want), b, shadow[b]);
		if (memcmp(want, rd + (size_t)b * 4096, 4096) != 0)
			bad++;
	}
	CHECK(bad == 0, "%lu blocks differ from what the frontend wrote", bad);
	corrupt += bad;
	free(rd);
}

static int be_state(struct shim_ts *ts, const char *be)
{
	int st = -1;

	xenbus_read_state(shim_ts_xs(ts), XBT_NULL, be, &st);
	return st;
}

int main(int argc, char **argv)
{
	int kills = argc > 1 ? atoi(argv[1]) : 20;
	static const char *const wopts[] = { "--max-queues", "2", NULL };
	struct shim_harness shim;
	struct shim_ts_config cfg = { 0 };
	struct shim_ts *ts = NULL;
	struct shim_guest *g = NULL;
	struct shim_disk_spec spec;
	struct blkfront *bf = NULL;
	struct blkfront_opts o;
	char disk[300], specstr[400], err[256], be[128], sock[108];
	unsigned int devid = 0;
	double worst, sum = 0, worst_up;
	pid_t splitpvd;
	int fd, rc;

	rc = shim_harness_start(&shim, argv[0]);
	if (rc) {
		printf("SKIP: can't start splitpv-shim: %s\n", strerror(-rc));
		return rc == -ENOENT ? 77 : 1;
	}
	for (unsigned int b = 0; b < NBLK; b++)
		shadow[b] = NO_VERSION;
	snprintf(disk, sizeof(disk), "%s/disk.img", shim.rundir);
	fd = open(disk, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)NBLK * 4096) != 0)
		return 1;
	close(fd);
	splitpvd = lc_start_splitpvd(wopts);
	if (splitpvd < 0) {
		printf("splitpvd not built\n");
		return 1;
	}
	cfg.rundir = shim.rundir;
	cfg.script_dir = "tools/hotplug";
	rc = shim_ts_open(&ts, &cfg);
	rc = rc ?: shim_ts_domain_create(ts, DOMID, NULL);
	rc = rc ?: shim_guest_create(&g, shim.rundir, DOMID, 16384, 8192);
	CHECK(rc == 0, "toolstack/guest: %s", strerror(-rc));
	if (rc)
		goto out;
	snprintf(specstr, sizeof(specstr), "vdev=xvda,access=rw,target=%s", disk);
	rc = shim_disk_spec_parse(specstr, &spec, err, sizeof(err));
	rc = rc ?: shim_ts_disk_attach(ts, DOMID, &spec, &devid);
	CHECK(rc == 0, "attach: %s", strerror(-rc));
	if (rc)
		goto out;
	blkfront_opts_default(&o);
	o.queues = 2;
	o.ring_order = 1;
	o.persistent = true;
	o.max_inflight = QD;
	rc = blkfront_open(&bf, g, devid, &o);
	CHECK(rc == 0, "blkfront_open: %s", strerror(-rc));
	if (rc)
		goto out;
	snprintf(be, sizeof(be), "/local/domain/0/backend/vbd/%u/%u", DOMID, devid);

	worst = run(bf, &splitpvd, kills, false, 60);
	printf("re-attach times (ms):");
	for (int i = 0; i < nreattach; i++) {
		sum += reattach[i];
		printf(" %.1f", reattach[i] * 1000);
	}
	printf("\n");
	CHECK(nreattach == kills, "%d re-attaches timed", nreattach);
	CHECK(worst < 1.0, "slowest re-attach %.3f s", worst);
	CHECK(errors == 0, "%lu I/O errors seen by the frontend", errors);
	CHECK(corrupt == 0, "%lu corrupted reads", corrupt);
	CHECK(be_state(ts, be) == XenbusStateConnected, "backend left Connected");
	printf("kills %d: completions %lu, I/O errors %lu, corrupted %lu, re-attach mean %.1f ms "
	       "max %.1f ms\n",
	       kills, completions, errors, corrupt, nreattach ? sum * 1000 / nreattach : 0.0,
	       worst * 1000);

	/* What the operator sees: the restarts and the counters survived them. */
	if (xenbus_supervisor_socket_path(sock, sizeof(sock)) == 0) {
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);
		char want[64];

		rc = xenbus_supervisor_request(sock, "stats", f);
		fclose(f);
		CHECK(rc == 0, "splitpv stats: %s", strerror(-rc));
		snprintf(want, sizeof(want), "restarts %d ", kills);
		CHECK(text && strstr(text, want), "stats show %s:\n%s", want, text ? text : "");
		CHECK(text && strstr(text, "wr_req "), "stats carry counters");
		free(text);
	}

	/* Upgrade: splitpvd re-executes itself and takes every journal over. */
	worst_up = run(bf, &splitpvd, 2, true, 30);
	CHECK(errors == 0 && corrupt == 0, "upgrade: %lu errors, %lu corrupted", errors, corrupt);
	CHECK(worst_up < 1.0, "upgrade re-attach %.3f s", worst_up);
	CHECK(be_state(ts, be) == XenbusStateConnected, "backend left Connected after upgrade");
	printf("upgrades 2: re-attach max %.1f ms\n", worst_up * 1000);

	verify_all(bf);
	blkfront_close(bf);
	bf = NULL;
	rc = shim_ts_device_detach(ts, DOMID, SHIM_TS_VBD, devid);
	CHECK(rc == 0, "detach: %s", strerror(-rc));
out:
	blkfront_close(bf);
	shim_guest_destroy(g);
	shim_ts_close(ts);
	kill(splitpvd, SIGTERM);
	waitpid(splitpvd, NULL, 0);
	shim_harness_stop(&shim);
	printf("%s: %d failure(s)\n", lc_failures ? "FAIL" : "PASS", lc_failures);
	return lc_failures ? 1 : 0;
}
