/*
 * lifecycle_blk — device lifecycle under splitpvd on the shim, counted:
 *  1. one worker per guest: a guest's second disk is handed to its running worker;
 *  2. attach -> I/O -> detach of a disk 50 times while another disk of the same guest
 *     stays attached: the worker's fds, threads and mappings, splitpvd's fds and the
 *     shim daemon's fds are the same afterwards (no leak), and the worker is the same;
 *  3. guest reboot: the frontend closes and comes back through Initialising on the same
 *     device; data written before and after verifies;
 *  4. a guest killed mid-I/O and destroyed: its worker is gone and the shim has
 *     released its resources within 1 s; the other guest keeps working.
 *
 *   lifecycle_blk [cycles]      (default 50)
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
#include <xenstore.h>

#define DOM_A 4
#define DOM_B 5

static struct shim_harness shim;
static struct shim_ts *ts;
static char rundir_disk[3][300];

static int attach(unsigned int domid, const char *vdev, const char *file, unsigned int *devid)
{
	struct shim_disk_spec spec;
	char s[400], err[256];
	int rc;

	snprintf(s, sizeof(s), "vdev=%s,access=rw,target=%s", vdev, file);
	rc = shim_disk_spec_parse(s, &spec, err, sizeof(err));
	return rc ?: shim_ts_disk_attach(ts, domid, &spec, devid);
}

static pid_t one_worker(pid_t splitpvd)
{
	pid_t p[8];

	return lc_children(splitpvd, "splitpv-blkback", p, 8) == 1 ? p[0] : -1;
}

static int nworkers(pid_t splitpvd)
{
	pid_t p[8];

	return lc_children(splitpvd, "splitpv-blkback", p, 8);
}

static void rw_check(struct blkfront *bf, uint64_t blk, uint64_t ver, const char *what)
{
	uint8_t w[8192], r[8192];

	lc_pattern(w, sizeof(w), blk, ver);
	CHECK(blkfront_write(bf, blk * 16, w, sizeof(w)) == 0, "%s: write", what);
	CHECK(blkfront_read(bf, blk * 16, r, sizeof(r)) == 0 && memcmp(w, r, sizeof(w)) == 0,
	      "%s: read back", what);
}

struct counts {
	int w_fd, w_task, w_maps, d_fd, s_fd;
};

static void count(pid_t worker, pid_t splitpvd, struct counts *c)
{
	c->w_fd = lc_count_dir(worker, "fd");
	c->w_task = lc_count_dir(worker, "task");
	c->w_maps = lc_count_maps(worker);
	c->d_fd = lc_count_dir(splitpvd, "fd");
	c->s_fd = lc_count_dir(shim.pid, "fd");
}

int main(int argc, char **argv)
{
	int cycles = argc > 1 ? atoi(argv[1]) : 50;
	static const char *const wopts[] = { "--max-queues", "2", NULL };
	struct shim_ts_config cfg = { 0 };
	struct shim_guest *g = NULL;
	struct blkfront_opts o;
	struct blkfront *a = NULL, *b;
	struct counts before = { 0 }, after = { 0 };
	unsigned int dev_a = 0, dev_b = 0, dev_c = 0;
	pid_t splitpvd, worker;
	int rc, pfd[2], gofd[2], shim_fd_base;

	rc = shim_harness_start(&shim, argv[0]);
	if (rc) {
		printf("SKIP: can't start splitpv-shim: %s\n", strerror(-rc));
		return rc == -ENOENT ? 77 : 1;
	}
	for (int i = 0; i < 3; i++) {
		int fd;

		snprintf(rundir_disk[i], sizeof(rundir_disk[i]), "%s/disk%d.img", shim.rundir, i);
		fd = open(rundir_disk[i], O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || ftruncate(fd, 16 << 20) != 0)
			return 1;
		close(fd);
	}
	splitpvd = lc_start_splitpvd(wopts);
	if (splitpvd < 0)
		return 1;
	cfg.rundir = shim.rundir;
	cfg.script_dir = "tools/hotplug";
	rc = shim_ts_open(&ts, &cfg);
	rc = rc ?: shim_ts_domain_create(ts, DOM_A, NULL);
	rc = rc ?: shim_guest_create(&g, shim.rundir, DOM_A, 32768, 16384);
	rc = rc ?: attach(DOM_A, "xvda", rundir_disk[0], &dev_a);
	CHECK(rc == 0, "guest A with a disk: %s", strerror(-rc));
	if (rc)
		goto out;
	blkfront_opts_default(&o);
	o.queues = 2;
	rc = blkfront_open(&a, g, dev_a, &o);
	CHECK(rc == 0, "open A: %s", strerror(-rc));
	if (rc)
		goto out;
	rw_check(a, 1, 1, "disk a");
	worker = one_worker(splitpvd);
	CHECK(worker > 0, "one worker for guest A");

	/* 1+2: a second disk of the same guest, cycled; the first stays. One warm-up
	 * cycle first (lazily created things: libev internals, pools). */
	for (int i = 0; i <= cycles; i++) {
		char what[32];

		if (i == 1)
			count(worker, splitpvd, &before);
		snprintf(what, sizeof(what), "cycle %d", i);
		rc = attach(DOM_A, "xvdb", rundir_disk[1], &dev_b);
		CHECK(rc == 0, "%s: attach: %s", what, strerror(-rc));
		if (rc)
			break;
		rc = blkfront_open(&b, g, dev_b, &o);
		CHECK(rc == 0, "%s: open: %s", what, strerror(-rc));
		if (rc)
			break;
		CHECK(one_worker(splitpvd) == worker, "%s: served by guest A's worker", what);
		rw_check(b, (uint64_t)i, (uint64_t)i, what);
		blkfront_close(b);
		rc = shim_ts_device_detach(ts, DOM_A, SHIM_TS_VBD, dev_b);
		CHECK(rc == 0, "%s: detach: %s", what, strerror(-rc));
		if (lc_failures)
			break;
	}
	/* The worker's thread for the detached disk ends a moment after Closed. */
	for (int i = 0; i < 50; i++) {
		count(worker, splitpvd, &after);
		if (after.w_task == before.w_task && after.w_fd == before.w_fd)
			break;
		usleep(20000);
	}
	CHECK(after.w_fd == before.w_fd, "worker fds %d -> %d", before.w_fd, after.w_fd);
	CHECK(after.w_task == before.w_task, "worker threads %d -> %d", before.w_task, after.w_task);
	CHECK(after.w_maps == before.w_maps, "worker mappings %d -> %d", before.w_maps, after.w_maps);
	CHECK(after.d_fd == before.d_fd, "splitpvd fds %d -> %d", before.d_fd, after.d_fd);
	CHECK(after.s_fd == before.s_fd, "shim fds %d -> %d", before.s_fd, after.s_fd);
	CHECK(nworkers(splitpvd) == 1, "one worker process (%d)", nworkers(splitpvd));
	printf("%d attach/IO/detach cycles: worker fds %d->%d threads %d->%d maps %d->%d, "
	       "splitpvd fds %d->%d, shim fds %d->%d\n",
	       cycles, before.w_fd, after.w_fd, before.w_task, after.w_task, before.w_maps,
	       after.w_maps, before.d_fd, after.d_fd, before.s_fd, after.s_fd);

	/* 3: guest reboot on disk a: close, come back through Initialising. */
	{
		struct xs_handle *gx = shim_guest_xs_open(g);
		char fe[96];

		rw_check(a, 7, 100, "before reboot");
		blkfront_close(a);
		a = NULL;
		snprintf(fe, sizeof(fe), "/local/domain/%u/device/vbd/%u", DOM_A, dev_a);
		CHECK(gx && xenbus_switch_state(gx, XBT_NULL, fe, XenbusStateInitialising) == 0,
		      "frontend back to Initialising");
		if (gx)
			xs_close(gx);
		rc = blkfront_open(&a, g, dev_a, &o);
		CHECK(rc == 0, "reopen after reboot: %s", strerror(-rc));
		if (rc)
			goto out;
		{
			uint8_t w[8192], r[8192];

			lc_pattern(w, sizeof(w), 7, 100);
			CHECK(blkfront_read(a, 7 * 16, r, sizeof(r)) == 0 &&
			      memcmp(w, r, sizeof(r)) == 0, "data written before the reboot");
		}
		rw_check(a, 9, 101, "after reboot");
		printf("guest reboot: reconnected, data before and after verified\n");
	}

	/* 4: guest B, killed with I/O in flight, then destroyed. */
	shim_fd_base = lc_count_dir(shim.pid, "fd");
	rc = shim_ts_domain_create(ts, DOM_B, NULL);
	CHECK(rc == 0, "create B: %s", strerror(-rc));
	if (pipe(pfd) < 0 || pipe(gofd) < 0)
		goto out;
	{
		pid_t child = fork();
		char c;
		double t0, gone = -1;

		if (child == 0) {
			struct shim_guest *gb = NULL;
			struct blkfront *fb = NULL;
			static uint8_t buf[16][65536];
			static struct blkfront_io ios[16];

			close(pfd[0]);
			if (shim_guest_create(&gb, shim.rundir, DOM_B, 32768, 16384) != 0)
				_exit(1);
			if (write(pfd[1], "g", 1) != 1)
				_exit(1);
			/* The parent has attached the disk. */
			close(gofd[1]);
			if (read(gofd[0], &c, 1) != 1 || blkfront_open(&fb, gb, 51712, &o) != 0)
				_exit(2);
			for (int i = 0; i < 16; i++) {
				ios[i] = (struct blkfront_io){ .op = i & 1 ? BF_READ : BF_WRITE,
							       .sector = (uint64_t)i * 128,
							       .buf = buf[i], .len = 65536,
							       .queue = (unsigned int)i };
				blkfront_submit(fb, &ios[i]);
			}
			blkfront_kick(fb);
			if (write(pfd[1], "i", 1) != 1)
				_exit(1);
			pause();
			_exit(0);
		}
		close(pfd[1]);
		close(gofd[0]);
		CHECK(read(pfd[0], &c, 1) == 1 && c == 'g', "guest B created");
		rc = attach(DOM_B, "xvda", rundir_disk[2], &dev_c);
		CHECK(rc == 0 && dev_c == 51712, "attach to B: %s", strerror(-rc));
		CHECK(write(gofd[1], "a", 1) == 1, "tell B");
		close(gofd[1]);
		CHECK(read(pfd[0], &c, 1) == 1 && c == 'i', "guest B has I/O in flight");
		close(pfd[0]);
		CHECK(nworkers(splitpvd) == 2, "a worker per guest (%d)", nworkers(splitpvd));
		t0 = lc_now();
		kill(child, SIGKILL); /* the guest dies: its domain goes with its process */
		waitpid(child, NULL, 0);
		rc = shim_ts_domain_destroy(ts, DOM_B);
		CHECK(rc == 0, "destroy B: %s", strerror(-rc));
		while (lc_now() - t0 < 3) {
			if (nworkers(splitpvd) == 1 && lc_count_dir(shim.pid, "fd") == shim_fd_base) {
				gone = lc_now() - t0;
				break;
			}
			usleep(5000);
		}
		CHECK(gone >= 0 && gone < 1.0, "guest B's worker and shim resources released in %.3f s",
		      gone);
		CHECK(one_worker(splitpvd) == worker, "guest A's worker untouched");
		rw_check(a, 11, 102, "guest A after B died");
		printf("guest destroyed mid-I/O: released in %.1f ms; guest A unaffected\n",
		       gone * 1000);
	}

	/* What the operator sees. */
	{
		char sock[108], *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);

		xenbus_supervisor_socket_path(sock, sizeof(sock));
		rc = xenbus_supervisor_request(sock, "status", f);
		fclose(f);
		CHECK(rc == 0 && text && strstr(text, "vbd/4/51712") && strstr(text, "Connected"),
		      "status lists guest A's disk Connected:\n%s", text ? text : "");
		CHECK(text && !strstr(text, "vbd/5/"), "status no longer lists guest B:\n%s",
		      text ? text : "");
		free(text);
	}
out:
	blkfront_close(a);
	shim_guest_destroy(g);
	shim_ts_close(ts);
	kill(splitpvd, SIGTERM);
	waitpid(splitpvd, NULL, 0);
	shim_harness_stop(&shim);
	printf("%s: %d failure(s)\n", lc_failures ? "FAIL" : "PASS", lc_failures);
	return lc_failures ? 1 : 0;
}
