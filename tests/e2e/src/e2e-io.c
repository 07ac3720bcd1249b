/*
 * e2e-io — the guest-side block workload of the real-Xen end-to-end tests: writes and
 * verifies self-describing 4 KiB blocks with O_DIRECT, and measures IOPS/bandwidth with
 * one thread per outstanding request. Built by tests/e2e/build.sh against glibc only, so
 * the domU initramfs needs no fio library closure (docs/E2E.md).
 *
 *   e2e-io verify DEV [-t THREADS] [-n OPS] [-b MAXBS] [-s SEED] [-r MiB]
 *   e2e-io stress DEV -T SECS [-t THREADS] [-b MAXBS] [-s SEED]
 *   e2e-io fill   DEV [-s SEED]
 *   e2e-io bench  DEV -m randread|randwrite|read|write [-b BS] [-q QD] [-T SECS]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLK 4096u
#define MAGIC UINT64_C(0x73706c6974707621) /* "splitpv!" */

static const char *dev_path;
static uint64_t dev_bytes;   /* usable size, multiple of 1 MiB */
static unsigned int nthreads = 4;
static unsigned long nops = 400;
static unsigned int max_bs = 1u << 20;
static uint64_t seed = 1;
static double seconds = 10;
static uint64_t region_bytes;   /* 0: the whole device */
static const char *mode = "randread";
static unsigned int bench_bs = BLK;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64*: the state never reaches 0 from a non-zero seed */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* The content of 4 KiB block `blk` at generation `gen`: a header naming it, then noise. */
static void pattern(uint64_t *w, uint64_t blk, uint32_t gen)
{
	uint64_t s = mix(blk * 0x9e3779b97f4a7c15ull ^ ((uint64_t)gen << 40) ^ seed) | 1;

	w[0] = MAGIC ^ blk;
	w[1] = gen;
	w[2] = seed;
	for (unsigned int i = 3; i < BLK / 8; i++)
		w[i] = rnd(&s);
}

/* 0 if the block holds exactly pattern(blk, gen); else describes what it holds. */
static int check(const uint64_t *w, uint64_t blk, uint32_t gen, char *why, size_t len)
{
	static __thread uint64_t want[BLK / 8];

	pattern(want, blk, gen);
	if (memcmp(w, want, BLK) == 0)
		return 0;
	if (w[0] != (MAGIC ^ blk))
		snprintf(why, len, "block %" PRIu64 ": header names block %" PRIu64 " (or none)",
			 blk, w[0] ^ MAGIC);
	else if (w[1] != gen)
		snprintf(why, len, "block %" PRIu64 ": generation %" PRIu64 ", expected %u", blk,
			 w[1], gen);
	else
		snprintf(why, len, "block %" PRIu64 ": header ok, data differs", blk);
	return -1;
}

static int open_dev(int flags)
{
	int fd = open(dev_path, flags | O_DIRECT);

	if (fd < 0)
		fprintf(stderr, "e2e-io: open %s: %s\n", dev_path, strerror(errno));
	return fd;
}

static int dev_size(void)
{
	struct stat st;
	int fd = open_dev(O_RDONLY);
	uint64_t sz = 0;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) == 0 && S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &sz) != 0)
			sz = 0;
	} else {
		off_t end = lseek(fd, 0, SEEK_END);

		sz = end > 0 ? (uint64_t)end : 0;
	}
	close(fd);
	dev_bytes = sz & ~((1ull << 20) - 1);
	if (region_bytes && region_bytes < dev_bytes)
		dev_bytes = region_bytes;
	if (dev_bytes < (uint64_t)nthreads << 20) {
		fprintf(stderr, "e2e-io: %s too small (%" PRIu64 " bytes)\n", dev_path, sz);
		return -1;
	}
	return 0;
}

/* Full-length transfer or an error (errno set, or EIO-like -1 with errno 0 on a short one). */
static int xfer(int fd, bool wr, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = wr ? pwrite(fd, (char *)buf + done, len - done, (off_t)(off + done))
			       : pread(fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC;
			return -1;
		}
		done += (size_t)n;
	}
	return 0;
}

/* ---- verify / stress: each thread owns a slice and a generation per block ---- */

struct vthread {
	pthread_t th;
	unsigned int idx;
	uint64_t first_blk, nblk;
	uint32_t *gen;
	uint64_t rs;
	/* results */
	uint64_t ops, bytes_w, bytes_r, io_errors, mismatches;
	int first_errno;
	double first_err_t, max_lat;
	unsigned int stalls;
	char why[160];
};

static double t_start;
static bool stress_mode;

static void note_err(struct vthread *v, int err)
{
	if (!v->io_errors++) {
		v->first_errno = err;
		v->first_err_t = now_s() - t_start;
	}
}

static void note_mismatch(struct vthread *v, const char *why)
{
	if (!v->mismatches++)
		snprintf(v->why, sizeof(v->why), "%s", why);
}

static void lat(struct vthread *v, double t0)
{
	double d = now_s() - t0;

	if (d > v->max_lat)
		v->max_lat = d;
	if (d > 1.0)
		v->stalls++;
}

/* Write one random extent of the slice, optionally read it straight back. */
static int one_extent(struct vthread *v, int fd, uint64_t *buf, bool readback)
{
	uint64_t nb = 1 + rnd(&v->rs) % (max_bs / BLK);
	uint64_t b0, off;
	char why[160];
	double t0;

	if (nb > v->nblk)
		nb = v->nblk;
	b0 = v->first_blk + rnd(&v->rs) % (v->nblk - nb + 1);
	off = b0 * BLK;
	for (uint64_t i = 0; i < nb; i++) {
		uint32_t g = ++v->gen[b0 - v->first_blk + i];

		pattern(buf + i * (BLK / 8), b0 + i, g);
	}
	t0 = now_s();
	if (xfer(fd, true, buf, nb * BLK, off)) {
		note_err(v, errno);
		lat(v, t0);
		/* the content of a failed write is undefined: stop checking those blocks */
		for (uint64_t i = 0; i < nb; i++)
			v->gen[b0 - v->first_blk + i] = 0;
		return -1;
	}
	lat(v, t0);
	v->ops++;
	v->bytes_w += nb * BLK;
	if (!readback)
		return 0;
	memset(buf, 0, nb * BLK);
	t0 = now_s();
	if (xfer(fd, false, buf, nb * BLK, off)) {
		note_err(v, errno);
		lat(v, t0);
		return -1;
	}
	lat(v, t0);
	v->bytes_r += nb * BLK;
	for (uint64_t i = 0; i < nb; i++)
		if (check(buf + i * (BLK / 8), b0 + i, v->gen[b0 - v->first_blk + i], why,
			  sizeof(why)))
			note_mismatch(v, why);
	return 0;
}

/* Read the whole slice back in random-sized chunks and check every written block. */
static void verify_slice(struct vthread *v, int fd, uint64_t *buf)
{
	uint64_t b = 0;
	char why[160];

	while (b < v->nblk) {
		uint64_t nb = 1 + rnd(&v->rs) % (max_bs / BLK);

		if (nb > v->nblk - b)
			nb = v->nblk - b;
		if (xfer(fd, false, buf, nb * BLK, (v->first_blk + b) * BLK)) {
			note_err(v, errno);
			b += nb;
			continue;
		}
		v->bytes_r += nb * BLK;
		for (uint64_t i = 0; i < nb; i++) {
			uint32_t g = v->gen[b + i];

			if (g && check(buf + i * (BLK / 8), v->first_blk + b + i, g, why,
				       sizeof(why)))
				note_mismatch(v, why);
		}
		b += nb;
	}
}

static void *vthread_main(void *arg)
{
	struct vthread *v = arg;
	uint64_t *buf = NULL;
	int fd = open_dev(O_RDWR);

	if (fd < 0 || posix_memalign((void **)&buf, BLK, max_bs)) {
		note_err(v, fd < 0 ? errno : ENOMEM);
		goto out;
	}
	if (stress_mode) {
		while (now_s() - t_start < seconds)
			one_extent(v, fd, buf, true);
	} else {
		for (unsigned long i = 0; i < nops; i++)
			one_extent(v, fd, buf, (i & 3) == 0);
	}
	/* flush, then everything must read back (also what a remount would see) */
	if (fdatasync(fd))
		note_err(v, errno);
	verify_slice(v, fd, buf);
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int run_verify(bool stress)
{
	struct vthread *v = calloc(nthreads, sizeof(*v));
	uint64_t per = dev_bytes / nthreads / BLK;
	uint64_t ops = 0, bw = 0, br = 0, errs = 0, mism = 0;
	unsigned int stalls = 0;
	double max_lat = 0, el;
	int rc = 0;

	if (!v)
		return 1;
	stress_mode = stress;
	t_start = now_s();
	for (unsigned int i = 0; i < nthreads; i++) {
		v[i].idx = i;
		v[i].first_blk = per * i;
		v[i].nblk = per;
		v[i].rs = mix(seed + i + 1) | 1;
		v[i].gen = calloc(per, sizeof(uint32_t));
		if (!v[i].gen || pthread_create(&v[i].th, NULL, vthread_main, &v[i])) {
			fprintf(stderr, "e2e-io: out of memory/threads\n");
			return 1;
		}
	}
	for (unsigned int i = 0; i < nthreads; i++) {
		pthread_join(v[i].th, NULL);
		ops += v[i].ops;
		bw += v[i].bytes_w;
		br += v[i].bytes_r;
		errs += v[i].io_errors;
		mism += v[i].mismatches;
		stalls += v[i].stalls;
		if (v[i].max_lat > max_lat)
			max_lat = v[i].max_lat;
	}
	el = now_s() - t_start;
	printf("%s: %s %" PRIu64 " MiB, %u threads, max %u KiB: %" PRIu64
	       " writes, %.1f MiB written, %.1f MiB read in %.1fs; io_errors %" PRIu64
	       " mismatches %" PRIu64 " max_latency %.3fs stalls(>1s) %u\n",
	       stress ? "stress" : "verify", dev_path, dev_bytes >> 20, nthreads, max_bs / 1024,
	       ops, bw / 1048576.0, br / 1048576.0, el, errs, mism, max_lat, stalls);
	for (unsigned int i = 0; i < nthreads; i++) {
		if (v[i].io_errors)
			printf("  thread %u: %" PRIu64 " I/O errors, first %s at %.2fs\n", i,
			       v[i].io_errors, strerror(v[i].first_errno), v[i].first_err_t);
		if (v[i].mismatches)
			printf("  thread %u: %" PRIu64 " mismatches, first: %s\n", i,
			       v[i].mismatches, v[i].why);
		free(v[i].gen);
	}
	if (errs || mism || ops == 0)
		rc = 1;
	printf("%s %s\n", stress ? "STRESS" : "VERIFY", rc ? "FAIL" : "OK");
	free(v);
	return rc;
}

/* ---- fill: the whole device, sequential 1 MiB, then flush ---- */

static int run_fill(void)
{
	uint64_t *buf = NULL;
	int fd = open_dev(O_WRONLY);
	double t0 = now_s();
	int rc = 1;

	if (fd < 0 || posix_memalign((void **)&buf, BLK, 1u << 20))
		goto out;
	for (uint64_t off = 0; off < dev_bytes; off += 1u << 20) {
		for (unsigned int i = 0; i < (1u << 20) / BLK; i++)
			pattern(buf + i * (BLK / 8), off / BLK + i, 1);
		if (xfer(fd, true, buf, 1u << 20, off)) {
			fprintf(stderr, "e2e-io: write at %" PRIu64 ": %s\n", off, strerror(errno));
			goto out;
		}
	}
	if (fdatasync(fd)) {
		fprintf(stderr, "e2e-io: fdatasync: %s\n", strerror(errno));
		goto out;
	}
	rc = 0;
	printf("fill: %s %" PRIu64 " MiB in %.1fs\n", dev_path, dev_bytes >> 20, now_s() - t0);
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	printf("FILL %s\n", rc ? "FAIL" : "OK");
	return rc;
}

/* ---- bench: QD threads, one synchronous O_DIRECT request each ---- */

struct bthread {
	pthread_t th;
	unsigned int idx;
	uint64_t ops, errors;
	double t_end;
};

static void *bthread_main(void *arg)
{
	struct bthread *b = arg;
	bool wr = strstr(mode, "write") != NULL;
	bool rand_io = strncmp(mode, "rand", 4) == 0;
	uint64_t nslots = dev_bytes / bench_bs;
	/* sequential: each thread streams through its own stripe */
	uint64_t per = nslots / nthreads, pos = 0;
	uint64_t rs = mix(seed + b->idx + 7) | 1;
	void *buf = NULL;
	int fd = open_dev(wr ? O_RDWR : O_RDONLY);

	if (fd < 0 || posix_memalign(&buf, BLK, bench_bs) || per == 0)
		goto out;
	memset(buf, 0x5a, bench_bs);
	while (now_s() < b->t_end) {
		uint64_t slot = rand_io ? rnd(&rs) % nslots : per * b->idx + pos++ % per;

		if (xfer(fd, wr, buf, bench_bs, slot * bench_bs))
			b->errors++;
		else
			b->ops++;
	}
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int run_bench(void)
{
	struct bthread *b = calloc(nthreads, sizeof(*b));
	uint64_t ops = 0, errs = 0;
	double t0 = now_s(), el;

	if (!b)
		return 1;
	for (unsigned int i = 0; i < nthreads; i++) {
		b[i].idx = i;
		b[i].t_end = t0 + seconds;
		if (pthread_create(&b[i].th, NULL, bthread_main, &b[i]))
			return 1;
	}
	for (unsigned int i = 0; i < nthreads; i++) {
		pthread_join(b[i].th, NULL);
		ops += b[i].ops;
		errs += b[i].errors;
	}
	el = now_s() - t0;
	printf("bench: %s bs %u qd %u on %s: %.1fs, %" PRIu64 " ops, %.0f IOPS, %.1f MiB/s, "
	       "errors %" PRIu64 "\n",
	       mode, bench_bs, nthreads, dev_path, el, ops, (double)ops / el,
	       (double)ops * bench_bs / el / 1048576.0, errs);
	free(b);
	return errs || !ops;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: e2e-io verify DEV [-t THREADS] [-n OPS/THREAD] [-b MAXBS] [-s SEED] [-r MiB]\n"
		"       e2e-io stress DEV -T SECS [-t THREADS] [-b MAXBS] [-s SEED] [-r MiB]\n"
		"       e2e-io fill   DEV [-s SEED] [-r MiB]\n"
		"       e2e-io bench  DEV -m randread|randwrite|read|write [-b BS] [-q QD] [-T SECS]\n"
		"Exit 0 only if every transfer succeeded and every block read back as written.\n");
}

int main(int argc, char **argv)
{
	const char *cmd;
	int c;

	if (argc < 3) {
		usage();
		return 2;
	}
	cmd = argv[1];
	dev_path = argv[2];
	optind = 3;
	while ((c = getopt(argc, argv, "t:n:b:s:r:T:m:q:")) != -1) {
		switch (c) {
		case 't':
		case 'q':
			nthreads = (unsigned int)strtoul(optarg, NULL, 0);
			break;
		case 'n':
			nops = strtoul(optarg, NULL, 0);
			break;
		case 'b':
			max_bs = bench_bs = (unsigned int)strtoul(optarg, NULL, 0);
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'r':
			region_bytes = strtoull(optarg, NULL, 0) << 20;
			break;
		case 'T':
			seconds = strtod(optarg, NULL);
			break;
		case 'm':
			mode = optarg;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (nthreads < 1 || nthreads > 256 || max_bs < BLK || max_bs % BLK ||
	    max_bs > (16u << 20) || seconds <= 0) {
		usage();
		return 2;
	}
	if (strcmp(cmd, "fill") == 0)
		nthreads = 1;
	if (dev_size())
		return 1;
	if (strcmp(cmd, "verify") == 0)
		return run_verify(false);
	if (strcmp(cmd, "stress") == 0)
		return run_verify(true);
	if (strcmp(cmd, "fill") == 0)
		return run_fill();
	if (strcmp(cmd, "bench") == 0)
		return run_bench();
	usage();
	return 2;
}
