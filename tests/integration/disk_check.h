/*
 * disk_check — what the disk tests on the shim share (blk_shim, nbd_shim, rbd_shim):
 * a CHECK that counts failures, a seeded pattern, and the data-verification and
 * protocol-semantics workloads run through the userspace blkfront. Header-only: each
 * test is one binary.
 */
#ifndef SPLITPV_TESTS_DISK_CHECK_H
#define SPLITPV_TESTS_DISK_CHECK_H

#include "frontend-shim/blkfront.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static inline uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static inline void fill(uint8_t *buf, size_t len, uint64_t seed)
{
	uint64_t s = seed | 1;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t v = xorshift(&s);

		memcpy(buf + i, &v, 8);
	}
}

/* Read the whole disk back against shadow. */
static inline void verify_all(struct blkfront *bf, const uint8_t *shadow, size_t disk_bytes,
		       const char *what)
{
	size_t maxio = blkfront_max_io(bf);
	uint8_t *rd = malloc(maxio);

	for (size_t off = 0; off < disk_bytes; off += maxio) {
		size_t n = disk_bytes - off < maxio ? disk_bytes - off : maxio;
		int rc = blkfront_read(bf, off / 512, rd, n);

		CHECK(rc == 0, "%s: read at %zu: %d", what, off, rc);
		if (rc)
			break;
		if (memcmp(rd, shadow + off, n) != 0) {
			CHECK(0, "%s: data mismatch in [%zu, %zu)", what, off, off + n);
			break;
		}
	}
	free(rd);
}

/* Concurrent random writes, a sequential replay of them, a full read-back, flush. */
static inline void verify_data(struct blkfront *bf, const char *what)
{
	const struct blkfront_info *in = blkfront_info(bf);
	size_t disk_bytes = (size_t)in->sectors * in->sector_size;
	size_t maxio = blkfront_max_io(bf);
	uint8_t *shadow = calloc(1, disk_bytes), *zero = calloc(1, maxio);
	uint64_t seed = 0x5eed + (uint64_t)time(NULL);
	struct blkfront_io ios[48];
	uint8_t *bufs[48] = { 0 };
	int rc;

	for (size_t off = 0; off < disk_bytes; off += maxio) {
		rc = blkfront_write(bf, off / 512, zero,
				    disk_bytes - off < maxio ? disk_bytes - off : maxio);
		CHECK(rc == 0, "%s: zeroing at %zu: %d", what, off, rc);
		if (rc)
			goto out;
	}
	for (int i = 0; i < 48; i++) {
		size_t len = ((xorshift(&seed) % (maxio / 512)) + 1) * 512;
		uint64_t sector = xorshift(&seed) % ((disk_bytes - len) / 512);

		bufs[i] = malloc(len);
		fill(bufs[i], len, seed);
		ios[i] = (struct blkfront_io){ .op = BF_WRITE, .sector = sector, .buf = bufs[i],
					       .len = len, .queue = (unsigned int)i,
					       .status = 99 };
	}
	for (int i = 0; i < 48;) {
		rc = blkfront_submit(bf, &ios[i]);
		if (rc == -EAGAIN) {
			blkfront_kick(bf);
			blkfront_poll(bf, 100);
			continue;
		}
		CHECK(rc == 0, "%s: submit: %d", what, rc);
		if (rc)
			goto out;
		i++;
	}
	blkfront_kick(bf);
	for (int spins = 0; blkfront_inflight(bf) && spins < 300; spins++)
		blkfront_poll(bf, 100);
	CHECK(blkfront_inflight(bf) == 0, "%s: requests never answered", what);
	for (int i = 0; i < 48; i++)
		CHECK(ios[i].status == BLKIF_RSP_OKAY, "%s: write %d status %d", what, i,
		      ios[i].status);
	for (int i = 0; i < 48; i++) {
		rc = blkfront_write(bf, ios[i].sector, bufs[i], ios[i].len);
		CHECK(rc == 0, "%s: sequential write %d: %d", what, i, rc);
		memcpy(shadow + ios[i].sector * 512, bufs[i], ios[i].len);
	}
	verify_all(bf, shadow, disk_bytes, what);
	CHECK(blkfront_flush(bf) == 0, "%s: flush", what);
out:
	for (int i = 0; i < 48; i++)
		free(bufs[i]);
	free(shadow);
	free(zero);
}

/* Flush, barrier, discard, an out-of-range read answered with an error while serving.
 * disk_sectors: the disk's size in 512-byte sectors. */
static inline void semantics(struct blkfront *bf, uint64_t disk_sectors, const char *what)
{
	const struct blkfront_info *in = blkfront_info(bf);
	uint8_t buf[8192], rd[8192];
	int rc;

	CHECK(in->flush, "%s: flush advertised", what);
	CHECK(in->discard, "%s: discard advertised", what);
	fill(buf, sizeof(buf), 99);
	CHECK(blkfront_barrier_write(bf, 100, buf, sizeof(buf)) == 0, "%s: barrier write", what);
	CHECK(blkfront_read(bf, 100, rd, sizeof(rd)) == 0 && !memcmp(buf, rd, sizeof(rd)),
	      "%s: barrier data reads back", what);
	rc = blkfront_discard(bf, 2048, 2048, false);
	CHECK(rc == 0, "%s: discard: %d", what, rc);
	rc = blkfront_read(bf, disk_sectors - 4, rd, 4096);
	CHECK(rc == -EIO, "%s: read past the end answered with an error (%d)", what, rc);
	CHECK(blkfront_read(bf, 0, rd, 4096) == 0, "%s: still serving after errors", what);
}

#endif
