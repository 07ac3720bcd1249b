/*
 * blk_shim — the block backend end to end on the frontend shim: splitpv-shim,
 * splitpvd spawning splitpv-blkback, the libxl-like toolstack attaching a file disk,
 * and the userspace blkfront in this process as the guest. Data integrity across
 * queues × ring order × indirect × persistent × ABI; flush, barrier, discard, read-only
 * refusal, malformed requests answered with errors, resize seen by the frontend.
 *
 *   blk_shim [quick]      (quick: one configuration only)
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

#define DISK_MB 64
#define DOMID 1

static struct shim_harness shim;
static pid_t splitpvd = -1;
static char disk[300];

static int start_splitpvd(void)
{
	static const char *const opts[] = { "--max-queues", "4", NULL };

	splitpvd = shim_harness_splitpvd(opts, NULL);
	return splitpvd < 0 ? (int)splitpvd : 0;
}

struct combo {
	unsigned int queues, order, indirect;
	bool persistent;
	enum blkif_abi abi;
};

static struct blkfront *attach_and_open(struct shim_ts *ts, struct shim_guest *g,
					const char *spec_str, const struct blkfront_opts *o,
					unsigned int *devid)
{
	struct shim_disk_spec spec;
	struct blkfront *bf = NULL;
	char err[256];
	int rc;

	rc = shim_disk_spec_parse(spec_str, &spec, err, sizeof(err));
	CHECK(rc == 0, "disk spec '%s': %s", spec_str, err);
	if (rc)
		return NULL;
	rc = shim_ts_disk_attach(ts, DOMID, &spec, devid);
	CHECK(rc == 0, "attach '%s': %s", spec_str, strerror(-rc));
	if (rc)
		return NULL;
	rc = blkfront_open(&bf, g, *devid, o);
	CHECK(rc == 0, "blkfront_open: %s", strerror(-rc));
	return rc ? NULL : bf;
}

static void detach(struct shim_ts *ts, unsigned int devid)
{
	int rc = shim_ts_device_detach(ts, DOMID, SHIM_TS_VBD, devid);

	CHECK(rc == 0, "detach %u: %s", devid, strerror(-rc));
}

static void run_combo(struct shim_ts *ts, struct shim_guest *g, const struct combo *c)
{
	struct blkfront_opts o;
	struct blkfront *bf;
	unsigned int devid;
	char what[128], spec[400];

	snprintf(what, sizeof(what), "q%u order%u ind%u %s %s", c->queues, c->order, c->indirect,
		 c->persistent ? "persistent" : "copy",
		 c->abi == BLKIF_ABI_X86_32 ? "x86_32" : "x86_64");
	blkfront_opts_default(&o);
	o.queues = c->queues;
	o.ring_order = c->order;
	o.max_indirect = c->indirect;
	o.persistent = c->persistent;
	o.abi = c->abi;
	o.max_inflight = 48; /* > 32: an order-0 ring fills up, an order-4 one goes past a page */
	snprintf(spec, sizeof(spec), "vdev=xvda,access=rw,target=%s", disk);
	bf = attach_and_open(ts, g, spec, &o, &devid);
	if (!bf)
		return;
	{
		const struct blkfront_info *in = blkfront_info(bf);

		CHECK(in->queues == c->queues, "%s: queues %u", what, in->queues);
		CHECK(in->ring_order == c->order, "%s: order %u", what, in->ring_order);
		CHECK(in->persistent == c->persistent, "%s: persistent %d", what, in->persistent);
		CHECK(in->max_indirect == c->indirect, "%s: indirect %u", what, in->max_indirect);
		CHECK(in->sectors == DISK_MB * 2048ull, "%s: sectors %llu", what,
		      (unsigned long long)in->sectors);
	}
	verify_data(bf, what);
	blkfront_close(bf);
	detach(ts, devid);
	printf("ok   %s\n", what);
}

/* Flush, barrier, discard, read-only refusal, resize. */
static void run_semantics(struct shim_ts *ts, struct shim_guest *g)
{
	struct blkfront_opts o;
	struct blkfront *bf;
	unsigned int devid;
	char spec[400];
	uint8_t buf[8192], rd[8192];
	struct stat st;
	int rc;

	blkfront_opts_default(&o);
	snprintf(spec, sizeof(spec), "vdev=xvdb,access=rw,discard,target=%s", disk);
	bf = attach_and_open(ts, g, spec, &o, &devid);
	if (!bf)
		return;
	CHECK(blkfront_info(bf)->flush && blkfront_info(bf)->barrier, "flush/barrier advertised");
	CHECK(blkfront_info(bf)->discard, "discard advertised");
	fill(buf, sizeof(buf), 77);
	CHECK(blkfront_barrier_write(bf, 100, buf, sizeof(buf)) == 0, "barrier write");
	CHECK(blkfront_read(bf, 100, rd, sizeof(rd)) == 0 && memcmp(buf, rd, sizeof(rd)) == 0,
	      "barrier data reads back");
	CHECK(blkfront_flush(bf) == 0, "flush");
	/* Discard a 1 MiB aligned range and read zeros back. */
	fill(buf, sizeof(buf), 78);
	CHECK(blkfront_write(bf, 4096, buf, sizeof(buf)) == 0, "write before discard");
	rc = blkfront_discard(bf, 2048, 4096, false);
	CHECK(rc == 0, "discard: %d", rc);
	CHECK(blkfront_read(bf, 4096, rd, sizeof(rd)) == 0, "read after discard");
	memset(buf, 0, sizeof(buf));
	CHECK(memcmp(rd, buf, sizeof(rd)) == 0, "discarded range reads back zeros");
	/* Out of range: the backend answers an error and keeps serving. */
	rc = blkfront_read(bf, DISK_MB * 2048ull - 4, rd, 4096);
	CHECK(rc == -EIO, "read past the end answered with an error (%d)", rc);
	rc = blkfront_discard(bf, 0, 8, true);
	CHECK(rc == -EOPNOTSUPP, "secure discard refused when not advertised (%d)", rc);
	CHECK(blkfront_read(bf, 0, rd, 4096) == 0, "device still serves after errors");

	/* Online resize: grow the file, the backend publishes the new size. */
	CHECK(stat(disk, &st) == 0, "stat");
	CHECK(truncate(disk, st.st_size + 8 * 1024 * 1024) == 0, "grow the file");
	for (int i = 0; i < 50; i++) {
		blkfront_refresh(bf);
		if (blkfront_info(bf)->sectors == (uint64_t)(DISK_MB + 8) * 2048)
			break;
		usleep(100000);
	}
	CHECK(blkfront_info(bf)->sectors == (uint64_t)(DISK_MB + 8) * 2048,
	      "resize seen by the frontend (sectors %llu)",
	      (unsigned long long)blkfront_info(bf)->sectors);
	CHECK(truncate(disk, st.st_size) == 0, "shrink back");
	blkfront_close(bf);
	detach(ts, devid);
	printf("ok   flush, barrier, discard, errors, resize\n");

	/* Read-only disk: writes and discards refused, reads work. */
	snprintf(spec, sizeof(spec), "vdev=xvdc,access=ro,target=%s", disk);
	bf = attach_and_open(ts, g, spec, &o, &devid);
	if (!bf)
		return;
	CHECK(blkfront_info(bf)->readonly, "info has VDISK_READONLY");
	CHECK(blkfront_write(bf, 0, buf, 4096) == -EIO, "write to a read-only disk refused");
	CHECK(blkfront_read(bf, 0, rd, 4096) == 0, "read from a read-only disk works");
	blkfront_close(bf);
	detach(ts, devid);
	printf("ok   read-only\n");
}

int main(int argc, char **argv)
{
	bool quick = argc > 1 && strcmp(argv[1], "quick") == 0;
	struct shim_ts_config cfg = { 0 };
	struct shim_ts *ts = NULL;
	struct shim_guest *g = NULL;
	int fd, rc;

	rc = shim_harness_start(&shim, argv[0]);
	if (rc) {
		printf("SKIP: can't start splitpv-shim: %s\n", strerror(-rc));
		return rc == -ENOENT ? 77 : 1;
	}
	snprintf(disk, sizeof(disk), "%s/disk.img", shim.rundir);
	fd = open(disk, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, DISK_MB * 1024 * 1024) != 0)
		return 1;
	close(fd);
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

	if (quick) {
		struct combo c = { 2, 1, 64, true, BLKIF_ABI_NATIVE };

		run_combo(ts, g, &c);
	} else {
		for (unsigned int mask = 0; mask < 32; mask++) {
			struct combo c = {
				.queues = (mask & 1) ? 4 : 1,
				.order = (mask & 2) ? 4 : 0,
				.indirect = (mask & 4) ? 256 : 0,
				.persistent = mask & 8,
				.abi = (mask & 16) ? BLKIF_ABI_X86_32 : BLKIF_ABI_NATIVE,
			};

			run_combo(ts, g, &c);
			if (failures)
				break;
		}
	}
	if (!failures)
		run_semantics(ts, g);
out:
	shim_guest_destroy(g);
	shim_ts_close(ts);
	if (splitpvd > 0) {
		kill(splitpvd, SIGTERM);
		waitpid(splitpvd, NULL, 0);
	}
	shim_harness_stop(&shim);
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
