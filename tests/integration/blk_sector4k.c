/*
 * blk_sector4k — 4096-byte logical sectors end to end on the frontend shim: the worker
 * runs with --sector-size 4096 (via splitpvd); a frontend that writes
 * feature-large-sector-size=1 sees sector-size 4096 and the size in 4096-byte units,
 * and its data lands where the 512-byte ring sectors say; a frontend without the
 * feature is refused (the backend goes Closing, the open times out); misaligned I/O
 * is answered with an error and changes nothing, while the device keeps serving.
 * Counterpart: tests/integration/blk_shim.c (512-byte sectors).
 */
#include "frontend-shim/blkfront.h"
#include "frontend-shim/guest.h"
#include "frontend-shim/toolstack.h"
#include "tests/integration/shim_harness.h"
#include "xenbus/xs.h"

#include <fcntl.h>
#include <time.h>
#include <xen/io/xenbus.h>

#define DISK_BYTES (16u << 20)
#define DOMID 1
#define LSS 4096u /* logical sector size under test */

static int failures;
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
static char disk[300];

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void fill(uint8_t *buf, size_t len, uint64_t seed)
{
	uint64_t s = seed | 1;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		memcpy(buf + i, &s, 8);
	}
}

static int start_splitpvd(void)
{
	static const char *const opts[] = { "--sector-size", "4096", NULL };

	splitpvd = shim_harness_splitpvd(opts, NULL);
	return splitpvd < 0 ? (int)splitpvd : 0;
}

/* The backing file's bytes at off, read behind the backend's back. */
static int file_read(uint64_t off, void *buf, size_t len)
{
	int fd = open(disk, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = pread(fd, buf, len, (off_t)off);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

static int attach(struct shim_ts *ts, const char *vdev, unsigned int *devid)
{
	struct shim_disk_spec spec;
	char s[400], err[256];
	int rc;

	snprintf(s, sizeof(s), "vdev=%s,access=rw,target=%s", vdev, disk);
	rc = shim_disk_spec_parse(s, &spec, err, sizeof(err));
	CHECK(rc == 0, "disk spec: %s", err);
	rc = rc ?: shim_ts_disk_attach(ts, DOMID, &spec, devid);
	CHECK(rc == 0, "attach %s: %s", vdev, strerror(-rc));
	return rc;
}

static void detach(struct shim_ts *ts, unsigned int devid)
{
	int rc = shim_ts_device_detach(ts, DOMID, SHIM_TS_VBD, devid);

	CHECK(rc == 0, "detach %u: %s", devid, strerror(-rc));
}

/* A frontend that asks for large sectors: geometry, data placement, alignment errors. */
static void run_large_sector(struct shim_ts *ts, struct shim_guest *g)
{
	struct blkfront_opts o;
	struct blkfront *bf = NULL;
	const struct blkfront_info *in;
	unsigned int devid;
	size_t big = 256u << 10;
	uint8_t *wr = malloc(big), *rd = malloc(big), *before = malloc(2 * LSS);
	uint8_t *after = malloc(2 * LSS), small[512];
	int rc;

	if (!wr || !rd || !before || !after || attach(ts, "xvda", &devid))
		goto out;
	blkfront_opts_default(&o);
	o.large_sector = true;
	o.max_indirect = 64;
	o.timeout_ms = 5000;
	rc = blkfront_open(&bf, g, devid, &o);
	CHECK(rc == 0, "open with feature-large-sector-size: %s", strerror(-rc));
	if (rc)
		goto detach;
	in = blkfront_info(bf);
	CHECK(in->sector_size == LSS, "sector-size %u", in->sector_size);
	CHECK(in->sectors == DISK_BYTES / LSS, "sectors %llu, want %u (4096-byte units)",
	      (unsigned long long)in->sectors, DISK_BYTES / LSS);
	CHECK(in->physical_sector_size >= LSS && in->physical_sector_size % LSS == 0,
	      "physical-sector-size %u", in->physical_sector_size);

	/* Aligned I/O in 512-byte ring units (sector 8 = byte 4096): a direct request, an
	 * indirect one, and one at the very end of the disk. */
	fill(wr, big, 1);
	rc = blkfront_write(bf, 8, wr, LSS);
	CHECK(rc == 0, "4 KiB write at sector 8: %d", rc);
	rc = blkfront_write(bf, 1024, wr + LSS, big - LSS);
	CHECK(rc == 0, "%zu-byte write at sector 1024: %d", big - LSS, rc);
	rc = blkfront_write(bf, DISK_BYTES / 512 - 16, wr, 2 * LSS);
	CHECK(rc == 0, "8 KiB write ending at the last sector: %d", rc);
	memset(rd, 0, big);
	rc = blkfront_read(bf, 8, rd, LSS);
	rc = rc ?: blkfront_read(bf, 1024, rd + LSS, big - LSS);
	CHECK(rc == 0 && memcmp(rd, wr, big) == 0, "data reads back (rc %d)", rc);
	rc = blkfront_read(bf, DISK_BYTES / 512 - 16, rd, 2 * LSS);
	CHECK(rc == 0 && memcmp(rd, wr, 2 * LSS) == 0, "last sectors read back (rc %d)", rc);
	/* Ring sectors stay 512-byte units whatever sector-size says: the bytes are in the
	 * file at sector * 512. */
	rc = file_read(8 * 512, rd, LSS);
	CHECK(rc == 0 && memcmp(rd, wr, LSS) == 0, "sector 8 is byte 4096 of the file");
	rc = file_read(1024 * 512, rd + LSS, big - LSS);
	CHECK(rc == 0 && memcmp(rd + LSS, wr + LSS, big - LSS) == 0,
	      "sector 1024 is byte 512 KiB of the file");

	/* Misaligned requests: each rule on its own, each answered with an error. */
	CHECK(file_read(0, before, 2 * LSS) == 0, "file read");
	memset(small, 0x5a, sizeof(small));
	rc = blkfront_write(bf, 1, small, 512);
	CHECK(rc == -EIO, "512-byte write at sector 1 refused (%d)", rc);
	rc = blkfront_write(bf, 1, wr, LSS);
	CHECK(rc == -EIO, "4 KiB write at sector 1 (misaligned start) refused (%d)", rc);
	rc = blkfront_write(bf, 0, small, 512);
	CHECK(rc == -EIO, "512-byte write at sector 0 (misaligned length) refused (%d)", rc);
	rc = blkfront_write(bf, 0, wr, LSS + 512);
	CHECK(rc == -EIO, "4.5 KiB write at sector 0 refused (%d)", rc);
	rc = blkfront_read(bf, 4, rd, LSS);
	CHECK(rc == -EIO, "4 KiB read at sector 4 refused (%d)", rc);
	rc = blkfront_write(bf, DISK_BYTES / 512 - 8, wr, 2 * LSS);
	CHECK(rc == -EIO, "aligned write past the end refused (%d)", rc);
	CHECK(file_read(0, after, 2 * LSS) == 0 && memcmp(before, after, 2 * LSS) == 0,
	      "refused writes changed nothing");
	if (in->discard) {
		rc = blkfront_discard(bf, 1, 8, false);
		CHECK(rc == -EIO, "misaligned discard refused (%d)", rc);
	}

	/* And the device keeps serving. */
	rc = blkfront_read(bf, 8, rd, LSS);
	CHECK(rc == 0 && memcmp(rd, wr, LSS) == 0, "aligned read after the errors (rc %d)", rc);
	fill(wr, LSS, 2);
	rc = blkfront_write(bf, 16, wr, LSS);
	rc = rc ?: blkfront_read(bf, 16, rd, LSS);
	CHECK(rc == 0 && memcmp(rd, wr, LSS) == 0, "aligned write after the errors (rc %d)", rc);
	CHECK(blkfront_flush(bf) == 0 || !in->flush, "flush");
	blkfront_close(bf);
	printf("ok   large-sector frontend: geometry, data, misaligned I/O refused\n");
detach:
	detach(ts, devid);
out:
	free(wr);
	free(rd);
	free(before);
	free(after);
}

/* A frontend that doesn't know large sectors must not get the disk. */
static void run_refused(struct shim_ts *ts, struct shim_guest *g)
{
	struct blkfront_opts o;
	struct blkfront *bf = NULL;
	char be[XENBUS_PATH_MAX];
	unsigned int devid;
	uint64_t t0, took;
	int rc, state = -1;

	if (attach(ts, "xvdb", &devid))
		return;
	blkfront_opts_default(&o);
	o.large_sector = false;
	o.timeout_ms = 1500;
	t0 = now_ms();
	rc = blkfront_open(&bf, g, devid, &o);
	took = now_ms() - t0;
	CHECK(rc != 0, "a frontend without feature-large-sector-size was connected");
	if (rc == 0)
		blkfront_close(bf);
	CHECK(rc == -ETIMEDOUT, "open failed with %d, want -ETIMEDOUT", rc);
	CHECK(took < 6000, "refusal took %llu ms", (unsigned long long)took);
	snprintf(be, sizeof(be), "/local/domain/0/backend/vbd/%u/%u", DOMID, devid);
	rc = xenbus_read_state(shim_ts_xs(ts), XBT_NULL, be, &state);
	CHECK(rc == 0 && (state == XenbusStateClosing || state == XenbusStateClosed),
	      "backend state %d after the refusal (rc %d), want Closing or Closed", state, rc);
	detach(ts, devid);
	printf("ok   frontend without feature-large-sector-size refused (%llu ms, state %d)\n",
	       (unsigned long long)took, state);
}

int main(int argc, char **argv)
{
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
	if (fd < 0 || ftruncate(fd, DISK_BYTES) != 0) {
		perror(disk);
		shim_harness_stop(&shim);
		return 1;
	}
	close(fd);
	rc = start_splitpvd();
	CHECK(rc == 0, "splitpvd: %s", strerror(-rc));
	cfg.rundir = shim.rundir;
	cfg.script_dir = "tools/hotplug";
	rc = rc ?: shim_ts_open(&ts, &cfg);
	CHECK(rc == 0, "toolstack: %s", strerror(-rc));
	rc = rc ?: shim_ts_domain_create(ts, DOMID, NULL);
	CHECK(rc == 0, "domain create: %s", strerror(-rc));
	rc = rc ?: shim_guest_create(&g, shim.rundir, DOMID, 32 * 1024, 16384);
	CHECK(rc == 0, "guest create: %s", strerror(-rc));
	if (rc == 0) {
		run_large_sector(ts, g);
		run_refused(ts, g);
	}
	shim_guest_destroy(g);
	shim_ts_close(ts);
	if (splitpvd > 0) {
		kill(splitpvd, SIGTERM);
		waitpid(splitpvd, NULL, 0);
	}
	unlink(disk);
	shim_harness_stop(&shim);
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
