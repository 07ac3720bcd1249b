/*
 * splitpv-guest — a simulated guest: creates domain DOMID in the shim (its memory,
 * grant table and event channels live as long as this process) and drives its
 * frontends. Used by `make demo` and by hand.
 *
 *   splitpv-guest [--rundir DIR] --domid N [options] disk VDEV
 *     connects the userspace blkfront to device/vbd/<VDEV>, prints what was negotiated,
 *     writes and verifies data, and measures throughput.
 */
#include "frontend-shim/blkfront.h"
#include "frontend-shim/guest.h"
#include "frontend-shim/toolstack.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void pattern(uint8_t *buf, size_t len, uint64_t block)
{
	uint64_t s = block * 0x9E3779B97F4A7C15ull + 1;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t v = rnd(&s);

		memcpy(buf + i, &v, 8);
	}
}

struct qd_state {
	unsigned int done;
	unsigned int errors;
};

static void qd_done(struct blkfront_io *io)
{
	struct qd_state *st = io->opaque;

	st->done++;
	if (io->status != BLKIF_RSP_OKAY)
		st->errors++;
}

/* Random 4 KiB reads at queue depth qd for secs seconds; returns IOPS. */
static double random_read_iops(struct blkfront *bf, uint64_t span_sectors, unsigned int qd,
			       double secs, unsigned int *errors)
{
	struct blkfront_io *ios = calloc(qd, sizeof(*ios));
	uint8_t *bufs = malloc((size_t)qd * 4096);
	struct qd_state st = { 0, 0 };
	uint64_t seed = 42, submitted = 0;
	double t0 = now_s(), t;

	for (unsigned int i = 0; i < qd; i++) {
		ios[i] = (struct blkfront_io){ .op = BF_READ, .len = 4096, .buf = bufs + i * 4096,
					       .done = qd_done, .opaque = &st, .queue = i,
					       .status = 99 /* in flight */ };
		ios[i].sector = (rnd(&seed) % (span_sectors / 8)) * 8;
		if (blkfront_submit(bf, &ios[i]) == 0)
			submitted++;
	}
	blkfront_kick(bf);
	while ((t = now_s()) - t0 < secs) {
		unsigned int before = st.done;

		if (blkfront_poll(bf, 100) < 0)
			break;
		/* resubmit the ones that completed (their slots are free again) */
		for (unsigned int i = 0; i < qd && st.done != before; i++) {
			if (ios[i].status != 99) { /* completed: reuse it */
				ios[i].status = 99;
				ios[i].sector = (rnd(&seed) % (span_sectors / 8)) * 8;
				if (blkfront_submit(bf, &ios[i]) == 0)
					submitted++;
			}
		}
		blkfront_kick(bf);
	}
	while (blkfront_inflight(bf))
		blkfront_poll(bf, 100);
	*errors = st.errors;
	free(ios);
	free(bufs);
	return st.done / (now_s() - t0);
}

static int disk_demo(struct shim_guest *g, const char *vdev, const struct blkfront_opts *o,
		     unsigned int size_mb)
{
	const struct blkfront_info *in;
	struct blkfront *bf;
	unsigned int devid, errors = 0;
	size_t chunk, bytes;
	uint8_t *buf, *rd;
	double t, wr_mbs, rd_mbs, iops;
	uint64_t mismatches = 0;
	int rc;

	if (shim_vdev_to_devid(vdev, &devid) != 0) {
		fprintf(stderr, "splitpv-guest: bad vdev '%s'\n", vdev);
		return 2;
	}
	rc = blkfront_open(&bf, g, devid, o);
	if (rc) {
		fprintf(stderr, "splitpv-guest: connecting %s: %s\n", vdev, strerror(-rc));
		return 1;
	}
	in = blkfront_info(bf);
	printf("guest %u: %s connected: %llu sectors of %u bytes (%.0f MiB)%s\n",
	       shim_guest_domid(g), vdev, (unsigned long long)in->sectors, in->sector_size,
	       (double)in->sectors * in->sector_size / 1048576.0, in->readonly ? ", read-only" : "");
	printf("  negotiated: %u queue(s), ring-page-order %u, indirect segments %u, "
	       "persistent grants %s, protocol %s\n",
	       in->queues, in->ring_order, in->max_indirect, in->persistent ? "yes" : "no",
	       o->abi == BLKIF_ABI_X86_32 ? "x86_32-abi" : "x86_64-abi");
	printf("  backend offers: flush %s, barrier %s, discard %s (granularity %u)\n",
	       in->flush ? "yes" : "no", in->barrier ? "yes" : "no", in->discard ? "yes" : "no",
	       in->discard_granularity);

	bytes = (size_t)size_mb << 20;
	if (bytes > in->sectors * in->sector_size)
		bytes = in->sectors * in->sector_size;
	chunk = blkfront_max_io(bf) / 4096 * 4096;
	buf = malloc(chunk);
	rd = malloc(chunk);

	t = now_s();
	for (size_t off = 0; off < bytes; off += chunk) {
		size_t n = bytes - off < chunk ? bytes - off : chunk;

		pattern(buf, n, off);
		if ((rc = blkfront_write(bf, off / 512, buf, n)) != 0)
			break;
	}
	rc = rc ?: blkfront_flush(bf);
	wr_mbs = bytes / 1048576.0 / (now_s() - t);
	t = now_s();
	for (size_t off = 0; off < bytes && !rc; off += chunk) {
		size_t n = bytes - off < chunk ? bytes - off : chunk;

		if ((rc = blkfront_read(bf, off / 512, rd, n)) != 0)
			break;
		pattern(buf, n, off);
		if (memcmp(buf, rd, n) != 0)
			mismatches++;
	}
	rd_mbs = bytes / 1048576.0 / (now_s() - t);
	if (rc) {
		fprintf(stderr, "splitpv-guest: I/O error: %s\n", strerror(-rc));
		blkfront_close(bf);
		return 1;
	}
	printf("  wrote and verified %zu MiB in %zu KiB requests: %s\n", bytes >> 20, chunk >> 10,
	       mismatches ? "MISMATCH" : "all data correct");
	printf("  sequential write %.0f MiB/s, sequential read %.0f MiB/s\n", wr_mbs, rd_mbs);
	iops = random_read_iops(bf, bytes / 512, 32, 2.0, &errors);
	printf("  random 4 KiB reads at queue depth 32: %.0f IOPS (%u errors)\n", iops, errors);
	blkfront_close(bf);
	return mismatches || errors ? 1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: splitpv-guest [--rundir DIR] --domid N [--mem-mb M] [--queues N]\n"
		   "         [--ring-order N] [--indirect N] [--no-persistent] [--x86-32]\n"
		   "         [--size-mb M] disk VDEV\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "rundir", required_argument, NULL, 'r' },
		{ "domid", required_argument, NULL, 'd' },
		{ "mem-mb", required_argument, NULL, 'm' },
		{ "queues", required_argument, NULL, 'q' },
		{ "ring-order", required_argument, NULL, 'o' },
		{ "indirect", required_argument, NULL, 'i' },
		{ "no-persistent", no_argument, NULL, 'P' },
		{ "x86-32", no_argument, NULL, '3' },
		{ "size-mb", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *rundir = getenv("SPLITPV_SHIM");
	unsigned int domid = 0, mem_mb = 256, size_mb = 64;
	struct blkfront_opts o;
	struct shim_guest *g;
	int c, rc;

	blkfront_opts_default(&o);
	o.queues = 2;
	o.ring_order = 4;
	o.max_indirect = 256;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r': rundir = optarg; break;
		case 'd': domid = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'm': mem_mb = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'q': o.queues = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'o': o.ring_order = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'i': o.max_indirect = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'P': o.persistent = false; break;
		case '3': o.abi = BLKIF_ABI_X86_32; break;
		case 's': size_mb = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!rundir || !domid || argc - optind != 2 || strcmp(argv[optind], "disk") != 0) {
		usage(stderr);
		return 2;
	}
	rc = shim_guest_create(&g, rundir, domid, mem_mb * 256, 65536);
	if (rc) {
		fprintf(stderr, "splitpv-guest: creating domain %u: %s\n", domid, strerror(-rc));
		return 1;
	}
	rc = disk_demo(g, argv[optind + 1], &o, size_mb);
	shim_guest_destroy(g);
	return rc;
}
