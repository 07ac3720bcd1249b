/*
 * nbd_shim — NBD disks end to end on the frontend shim: splitpv-shim, splitpvd spawning
 * splitpv-blkback, the toolstack attaching a disk whose target (xenstore params) is an
 * NBD URI, and the userspace blkfront as the guest. Servers run on UNIX sockets in the
 * test's directory:
 *   1. nbdkit memory: data verification (concurrent random writes, full read-back),
 *      flush, discard, out-of-range error;
 *   2. qemu-nbd on a qcow2 image (qemu-img create -f qcow2): the same verification;
 *   3. nbdkit file plugin: a verification workload with 16 requests in flight while the
 *      server is killed (SIGKILL) and restarted on the same socket: 0 errors seen by
 *      the frontend, the whole disk verified afterwards.
 * A case whose server binary is missing is skipped (77 when none can run).
 *
 *   nbd_shim [quick]      (quick: no qcow2 case)
 */
#include "frontend-shim/blkfront.h"
#include "frontend-shim/guest.h"
#include "frontend-shim/toolstack.h"
#include "tests/integration/disk_check.h"
#include "tests/integration/shim_harness.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#define DISK_MB 32
#define DOMID 1

static struct shim_harness shim;
static pid_t splitpvd = -1, server = -1;
static char sock[300], script[300], uri[400];

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static bool have(const char *prog)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

/* ---- servers ---- */

static int start_server(const char *const *argv)
{
	unlink(sock);
	server = fork();
	if (server < 0)
		return -errno;
	if (server == 0) {
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		if (access(sock, F_OK) == 0)
			return 0;
		if (waitpid(server, NULL, WNOHANG) == server) {
			server = -1;
			return -EIO;
		}
		usleep(10000);
	}
	return -ETIMEDOUT;
}

static void stop_server(int sig)
{
	if (server <= 0)
		return;
	kill(server, sig);
	waitpid(server, NULL, 0);
	server = -1;
}

static int run_cmd(const char *const *argv)
{
	int st;
	pid_t p = fork();

	if (p < 0)
		return -errno;
	if (p == 0) {
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (waitpid(p, &st, 0) < 0)
		return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* ---- the shim side ---- */

static int start_splitpvd(void)
{
	static const char *const opts[] = { "--max-queues", "4", NULL };

	splitpvd = shim_harness_splitpvd(opts, NULL);
	return splitpvd < 0 ? (int)splitpvd : 0;
}

/*
 * The hotplug script for network targets: nothing local to check or set up, so it
 * only says the device is ready (splitpvd waits for hotplug-status=connected).
 */
static int write_script(void)
{
	FILE *f = fopen(script, "w");

	if (!f)
		return -errno;
	fprintf(f, "#!/bin/sh\n"
		   "case \"$1\" in\n"
		   "add) xenstore-write \"$XENBUS_PATH/hotplug-status\" connected ;;\n"
		   "remove) xenstore-rm \"$XENBUS_PATH/hotplug-status\" 2>/dev/null ;;\n"
		   "esac\nexit 0\n");
	fclose(f);
	return chmod(script, 0755) < 0 ? -errno : 0;
}

static struct blkfront *attach(struct shim_ts *ts, struct shim_guest *g, const char *vdev,
			       unsigned int *devid)
{
	struct shim_disk_spec spec;
	struct blkfront_opts o;
	struct blkfront *bf = NULL;
	char spec_str[800], err[256];
	int rc;

	snprintf(spec_str, sizeof(spec_str), "vdev=%s,access=rw,discard,script=%s,target=%s",
		 vdev, script, uri);
	rc = shim_disk_spec_parse(spec_str, &spec, err, sizeof(err));
	CHECK(rc == 0, "disk spec '%s': %s", spec_str, err);
	if (rc)
		return NULL;
	rc = shim_ts_disk_attach(ts, DOMID, &spec, devid);
	CHECK(rc == 0, "attach '%s': %s", spec_str, strerror(-rc));
	if (rc)
		return NULL;
	blkfront_opts_default(&o);
	o.queues = 2;
	o.ring_order = 1;
	o.max_indirect = 64;
	o.persistent = true;
	o.max_inflight = 32;
	rc = blkfront_open(&bf, g, *devid, &o);
	CHECK(rc == 0, "blkfront_open: %s", strerror(-rc));
	return rc ? NULL : bf;
}

static void detach(struct shim_ts *ts, struct blkfront *bf, unsigned int devid)
{
	int rc;

	blkfront_close(bf);
	rc = shim_ts_device_detach(ts, DOMID, SHIM_TS_VBD, devid);
	CHECK(rc == 0, "detach %u: %s", devid, strerror(-rc));
}

static void case_verify(struct shim_ts *ts, struct shim_guest *g, const char *vdev,
			const char *what)
{
	struct blkfront *bf;
	unsigned int devid;

	bf = attach(ts, g, vdev, &devid);
	if (!bf)
		return;
	CHECK(blkfront_info(bf)->sectors == DISK_MB * 2048ull, "%s: sectors %llu", what,
	      (unsigned long long)blkfront_info(bf)->sectors);
	verify_data(bf, what);
	semantics(bf, DISK_MB * 2048ull, what);
	detach(ts, bf, devid);
	printf("ok   %s: data verified, flush, barrier, discard, errors\n", what);
}

/* ---- the restart scenario ---- */

#define LANES 16
#define LANE_IO_MAX 65536

struct lane {
	struct blkfront_io io;
	uint8_t *buf, *shadow_copy;
	uint64_t base, sectors; /* the lane's own area: no overlap between lanes */
	uint64_t seed;
	bool writing;
	unsigned long done, errors, mismatches;
	uint8_t *shadow;        /* the whole disk's */
};

static void lane_next(struct lane *l);

static void lane_done(struct blkfront_io *io)
{
	struct lane *l = io->opaque;

	l->done++;
	if (io->status != BLKIF_RSP_OKAY) {
		l->errors++;
	} else if (l->writing) {
		memcpy(l->shadow + io->sector * 512, io->buf, io->len);
	} else if (memcmp(io->buf, l->shadow + io->sector * 512, io->len) != 0) {
		l->mismatches++;
	}
}

/* Alternate: write random data somewhere in the lane, then read somewhere and check. */
static void lane_next(struct lane *l)
{
	size_t len = ((xorshift(&l->seed) % (LANE_IO_MAX / 512)) + 1) * 512;
	uint64_t sector = l->base + xorshift(&l->seed) % (l->sectors - len / 512);

	l->writing = !l->writing;
	if (l->writing)
		fill(l->buf, len, l->seed);
	l->io = (struct blkfront_io){ .op = l->writing ? BF_WRITE : BF_READ, .sector = sector,
				      .buf = l->buf, .len = len, .status = 99, .done = lane_done, .opaque = l };
}

static void case_restart(struct shim_ts *ts, struct shim_guest *g, const char *const *srv)
{
	struct lane lanes[LANES];
	struct blkfront *bf;
	unsigned int devid;
	size_t disk_bytes;
	uint8_t *shadow, *zero;
	unsigned long total = 0, errors = 0, mism = 0, before_kill = 0, after_restart = 0;
	double t0, killed_at = 0, restarted_at = 0;
	bool killed = false, restarted = false;
	int rc;

	bf = attach(ts, g, "xvdc", &devid);
	if (!bf)
		return;
	disk_bytes = (size_t)blkfront_info(bf)->sectors * 512;
	shadow = calloc(1, disk_bytes);
	zero = calloc(1, 1 << 20);
	for (size_t off = 0; off < disk_bytes; off += 1 << 20) {
		rc = blkfront_write(bf, off / 512, zero, 1 << 20);
		CHECK(rc == 0, "restart: zeroing: %d", rc);
	}
	for (unsigned i = 0; i < LANES; i++) {
		lanes[i] = (struct lane){ .buf = malloc(LANE_IO_MAX),
					  .base = i * (disk_bytes / 512 / LANES),
					  .sectors = disk_bytes / 512 / LANES,
					  .seed = 0x9e3779b97f4a7c15ull * (i + 1), .shadow = shadow };
		lane_next(&lanes[i]);
		lanes[i].io.queue = i;
		rc = blkfront_submit(bf, &lanes[i].io);
		CHECK(rc == 0, "restart: submit lane %u: %d", i, rc);
	}
	blkfront_kick(bf);
	t0 = now();
	/* 6 s: kill the server at 1.5 s (I/O in flight), restart it 1 s later. */
	while (now() - t0 < 6.0) {
		blkfront_poll(bf, 50);
		for (unsigned i = 0; i < LANES; i++) {
			struct lane *l = &lanes[i];

			if (l->io.status == 99)
				continue;
			total++;
			if (restarted)
				after_restart++;
			else if (!killed)
				before_kill++;
			lane_next(l);
			l->io.queue = i;
			rc = blkfront_submit(bf, &l->io);
			CHECK(rc == 0, "restart: resubmit lane %u: %d", i, rc);
		}
		blkfront_kick(bf);
		if (!killed && now() - t0 > 1.5) {
			CHECK(blkfront_inflight(bf) > 0, "requests in flight at the kill");
			stop_server(SIGKILL);
			killed = true;
			killed_at = now();
		}
		if (killed && !restarted && now() - killed_at > 1.0) {
			rc = start_server(srv);
			CHECK(rc == 0, "server restart: %d", rc);
			restarted = true;
			restarted_at = now();
		}
	}
	for (int spins = 0; blkfront_inflight(bf) && spins < 200; spins++)
		blkfront_poll(bf, 100);
	CHECK(blkfront_inflight(bf) == 0, "restart: requests never answered");
	for (unsigned i = 0; i < LANES; i++) {
		errors += lanes[i].errors;
		mism += lanes[i].mismatches;
		free(lanes[i].buf);
	}
	CHECK(errors == 0, "restart: %lu errors seen by the frontend", errors);
	CHECK(mism == 0, "restart: %lu reads returned wrong data", mism);
	CHECK(before_kill > 100, "restart: workload ran before the kill (%lu)", before_kill);
	CHECK(after_restart > 100, "restart: workload ran after the restart (%lu)",
	      after_restart);
	verify_all(bf, shadow, disk_bytes, "restart: full read-back");
	printf("ok   nbdkit killed and restarted under load: %lu requests (%lu before the kill, "
	       "%lu after the restart %.1f s later), %lu errors, %lu bad reads\n",
	       total, before_kill, after_restart, restarted_at - killed_at, errors, mism);
	free(shadow);
	free(zero);
	detach(ts, bf, devid);
}

int main(int argc, char **argv)
{
	bool quick = argc > 1 && strcmp(argv[1], "quick") == 0;
	struct shim_ts_config cfg = { 0 };
	struct shim_ts *ts = NULL;
	struct shim_guest *g = NULL;
	char img[320], farg[340], size[32];
	unsigned ran = 0;
	int fd, rc;

	signal(SIGPIPE, SIG_IGN);
	if (!have("nbdkit") && !have("qemu-nbd")) {
		printf("SKIP: neither nbdkit nor qemu-nbd is installed (apt-get install nbdkit "
		       "qemu-utils)\n");
		return 77;
	}
	rc = shim_harness_start(&shim, argv[0]);
	if (rc) {
		printf("SKIP: can't start splitpv-shim: %s\n", strerror(-rc));
		return rc == -ENOENT ? 77 : 1;
	}
	snprintf(sock, sizeof(sock), "%s/nbd.sock", shim.rundir);
	snprintf(script, sizeof(script), "%s/netdisk", shim.rundir);
	snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
	snprintf(size, sizeof(size), "size=%uM", DISK_MB);
	CHECK(write_script() == 0, "hotplug script");
	if (start_splitpvd() != 0) {
		printf("splitpvd not built\n");
		return 1;
	}
	cfg.rundir = shim.rundir;
	cfg.script_dir = "tools/hotplug";
	rc = shim_ts_open(&ts, &cfg);
	CHECK(rc == 0, "toolstack: %s", strerror(-rc));
	rc = rc ?: shim_ts_domain_create(ts, DOMID, NULL);
	CHECK(rc == 0, "domain create: %s", strerror(-rc));
	rc = rc ?: shim_guest_create(&g, shim.rundir, DOMID, 96 * 1024, 65536);
	CHECK(rc == 0, "guest create: %s", strerror(-rc));
	if (rc)
		goto out;

	if (have("nbdkit")) {
		const char *srv[] = { "nbdkit", "-f", "-U", sock, "memory", size, NULL };

		rc = start_server(srv);
		CHECK(rc == 0, "nbdkit memory: %d", rc);
		if (!rc)
			case_verify(ts, g, "xvda", "nbdkit memory");
		stop_server(SIGTERM);
		ran++;
	} else {
		printf("skip nbdkit cases: nbdkit is not installed\n");
	}
	if (!quick && have("qemu-nbd") && have("qemu-img")) {
		const char *mk[] = { "qemu-img", "create", "-q", "-f", "qcow2", img, size + 5, NULL };
		const char *srv[] = { "qemu-nbd", "-k", sock, "-t", "-f", "qcow2",
				      "--cache=writeback", img, NULL };

		snprintf(img, sizeof(img), "%s/disk.qcow2", shim.rundir);
		CHECK(run_cmd(mk) == 0, "qemu-img create");
		rc = start_server(srv);
		CHECK(rc == 0, "qemu-nbd: %d", rc);
		if (!rc)
			case_verify(ts, g, "xvdb", "qemu-nbd qcow2");
		stop_server(SIGTERM);
		unlink(img);
		ran++;
	} else if (!quick) {
		printf("skip qcow2 case: qemu-nbd/qemu-img not installed\n");
	}
	if (have("nbdkit")) {
		const char *srv[] = { "nbdkit", "-f", "-U", sock, "file", farg, NULL };

		snprintf(img, sizeof(img), "%s/disk.raw", shim.rundir);
		snprintf(farg, sizeof(farg), "file=%s", img);
		fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
		CHECK(fd >= 0 && ftruncate(fd, (off_t)DISK_MB << 20) == 0, "raw image");
		if (fd >= 0)
			close(fd);
		rc = start_server(srv);
		CHECK(rc == 0, "nbdkit file: %d", rc);
		if (!rc)
			case_restart(ts, g, srv);
		stop_server(SIGTERM);
		unlink(img);
	}
out:
	stop_server(SIGTERM);
	shim_guest_destroy(g);
	shim_ts_close(ts);
	if (splitpvd > 0) {
		kill(splitpvd, SIGTERM);
		waitpid(splitpvd, NULL, 0);
	}
	unlink(script);
	unlink(sock);
	shim_harness_stop(&shim);
	if (!ran && !failures) {
		printf("SKIP: no NBD server could run\n");
		return 77;
	}
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
