/*
 * reattach_race — a disk detached and attached again at the same backend path while
 * its worker is too slow to see the first directory go (here: stopped with SIGSTOP):
 * when the worker runs again, the old device instance must not serve the new
 * directory (it never probed it: the frontend would find no features), but hand it to
 * a fresh instance. The new disk then connects with the queues and ring order the
 * frontend asked for, and verified I/O works. Repeated a few times.
 * (xenbus/device.c: "backend directory re-created by the toolstack".)
 *
 *   reattach_race [rounds]      (default 3)
 */
#include "frontend-shim/blkfront.h"
#include "frontend-shim/guest.h"
#include "frontend-shim/toolstack.h"
#include "tests/integration/lifecycle_util.h"
#include "tests/integration/shim_harness.h"

#include <fcntl.h>

#define DOM 8

static struct shim_harness shim;
static struct shim_ts *ts;

static int attach(const char *file, unsigned int *devid)
{
	struct shim_disk_spec spec;
	char s[400], err[256];
	int rc;

	snprintf(s, sizeof(s), "vdev=xvda,access=rw,target=%s", file);
	rc = shim_disk_spec_parse(s, &spec, err, sizeof(err));
	return rc ?: shim_ts_disk_attach(ts, DOM, &spec, devid);
}

int main(int argc, char **argv)
{
	static const char *const wopts[] = { "--max-queues", "2", "--max-ring-order", "2", NULL };
	int rounds = argc > 1 ? atoi(argv[1]) : 3;
	struct shim_ts_config cfg = { 0 };
	struct shim_guest *g = NULL;
	struct blkfront_opts o;
	struct blkfront *bf = NULL;
	char img[300];
	unsigned int devid = 0;
	pid_t splitpvd = -1;
	int rc, fd;

	rc = shim_harness_start(&shim, argv[0]);
	if (rc) {
		printf("SKIP: can't start splitpv-shim: %s\n", strerror(-rc));
		return rc == -ENOENT ? 77 : 1;
	}
	snprintf(img, sizeof(img), "%s/disk.img", shim.rundir);
	fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 16 << 20) != 0)
		return 1;
	close(fd);
	splitpvd = lc_start_splitpvd(wopts);
	CHECK(splitpvd > 0, "start splitpvd: %s", strerror(-splitpvd));
	if (splitpvd <= 0)
		goto out;
	cfg.rundir = shim.rundir;
	cfg.script_dir = "tools/hotplug";
	cfg.destroy_timeout_ms = 300; /* the stopped worker never answers the detach */
	rc = shim_ts_open(&ts, &cfg);
	rc = rc ?: shim_ts_domain_create(ts, DOM, NULL);
	rc = rc ?: shim_guest_create(&g, shim.rundir, DOM, 16384, 8192);
	CHECK(rc == 0, "guest: %s", strerror(-rc));
	if (rc)
		goto out;
	blkfront_opts_default(&o);
	o.queues = 2;
	o.ring_order = 2;
	for (int r = 0; r < rounds && !lc_failures; r++) {
		pid_t workers[4], waker;
		uint8_t w[4096], rd[4096];

		rc = attach(img, &devid);
		rc = rc ?: blkfront_open(&bf, g, devid, &o);
		CHECK(rc == 0, "round %d: attach and open: %s", r, strerror(-rc));
		if (rc)
			break;
		CHECK(lc_children(splitpvd, "splitpv-blkback", workers, 4) == 1, "one worker");
		/* The frontend goes away (as a guest that unplugged it), the worker is
		 * frozen, the toolstack detaches (forced after its timeout) and attaches the
		 * same disk again at the same path; the worker thaws during that attach. */
		blkfront_close(bf);
		bf = NULL;
		kill(workers[0], SIGSTOP);
		rc = shim_ts_device_detach(ts, DOM, SHIM_TS_VBD, devid);
		CHECK(rc == 0 || rc == -ETIMEDOUT, "round %d: detach: %s", r, strerror(-rc));
		waker = fork();
		if (waker == 0) {
			usleep(300000);
			kill(workers[0], SIGCONT);
			_exit(0);
		}
		rc = attach(img, &devid);
		waitpid(waker, NULL, 0);
		kill(workers[0], SIGCONT);
		CHECK(rc == 0, "round %d: re-attach at the same path: %s", r, strerror(-rc));
		if (rc)
			break;
		rc = blkfront_open(&bf, g, devid, &o);
		CHECK(rc == 0, "round %d: open: %s", r, strerror(-rc));
		if (rc)
			break;
		CHECK(blkfront_info(bf)->queues == 2 && blkfront_info(bf)->ring_order == 2,
		      "round %d: the re-attached disk has the asked-for 2 queues, order 2 (got %u, "
		      "%u): a backend that probed it", r, blkfront_info(bf)->queues,
		      blkfront_info(bf)->ring_order);
		lc_pattern(w, sizeof(w), (uint64_t)r, 1);
		CHECK(blkfront_write(bf, (uint64_t)r * 8, w, sizeof(w)) == 0 &&
		      blkfront_read(bf, (uint64_t)r * 8, rd, sizeof(rd)) == 0 &&
		      memcmp(w, rd, sizeof(w)) == 0, "round %d: verified I/O", r);
		blkfront_close(bf);
		bf = NULL;
		rc = shim_ts_device_detach(ts, DOM, SHIM_TS_VBD, devid);
		CHECK(rc == 0, "round %d: final detach: %s", r, strerror(-rc));
		/* until the worker has let go of the path */
		for (int i = 0; i < 200 && lc_children(splitpvd, "splitpv-blkback", workers, 4); i++)
			usleep(10000);
	}
	printf("%d round(s) of detach + re-attach behind a frozen worker\n", rounds);
out:
	blkfront_close(bf);
	shim_guest_destroy(g);
	shim_ts_close(ts);
	if (splitpvd > 0) {
		kill(splitpvd, SIGTERM);
		waitpid(splitpvd, NULL, 0);
	}
	shim_harness_stop(&shim);
	printf("%s: %d failure(s)\n", lc_failures ? "FAIL" : "PASS", lc_failures);
	return lc_failures ? 1 : 0;
}
