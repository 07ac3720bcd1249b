/*
 * bench/blk_storage — 4 KiB random reads at queue depth 32 from a tmpfs file:
 * a bare liburing loop (the baseline) versus the same reads through the block storage
 * interface (blk_storage_submit, file driver, completions via eventfd + libev).
 * Runs A B A B ..., prints both medians (IOPS) and the ratio driver/raw.
 *
 *   build/default/bench/blk_storage [-s]     (-s: short run, for smoke tests)
 */
#include "backends/blk/storage.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QD 32u
#define BS 4096u
#define FILE_SIZE (64u << 20)
#define BLOCKS (FILE_SIZE / BS)

static uint64_t ops_per_run = 400000;
static uint32_t rng = 2463534242u;

static uint64_t next_offset(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return (uint64_t)(rng % BLOCKS) * BS;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint8_t *bufs;

/* ---- A: bare io_uring ---- */

static double run_raw(const char *path)
{
	struct io_uring ring;
	struct iovec iov[QD];
	uint64_t issued = 0, done = 0;
	double t0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || io_uring_queue_init(QD, &ring, 0) < 0) {
		perror("raw setup");
		exit(1);
	}
	t0 = now();
	for (unsigned i = 0; i < QD; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		iov[i] = (struct iovec){ bufs + i * BS, BS };
		io_uring_prep_readv(sqe, fd, &iov[i], 1, next_offset());
		io_uring_sqe_set_data(sqe, &iov[i]);
		issued++;
	}
	io_uring_submit(&ring);
	while (done < ops_per_run) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		if (io_uring_wait_cqe(&ring, &cqe) < 0)
			exit(1);
		io_uring_for_each_cqe(&ring, head, cqe) {
			struct iovec *v = io_uring_cqe_get_data(cqe);

			if (cqe->res != (int)BS) {
				fprintf(stderr, "raw read: %d\n", cqe->res);
				exit(1);
			}
			n++;
			done++;
			if (issued < ops_per_run) {
				struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

				io_uring_prep_readv(sqe, fd, v, 1, next_offset());
				io_uring_sqe_set_data(sqe, v);
				issued++;
			}
		}
		io_uring_cq_advance(&ring, n);
		io_uring_submit(&ring);
	}
	t0 = now() - t0;
	io_uring_queue_exit(&ring);
	close(fd);
	return (double)done / t0;
}

/* ---- B: through blk_storage ---- */

struct bio_slot {
	struct blk_io io;
	struct iovec iov;
};

static struct blk_storage *bs;
static uint64_t b_issued, b_done;
static struct ev_loop *loop;

static void b_done_cb(struct blk_io *io, int res)
{
	if (res) {
		fprintf(stderr, "driver read: %d\n", res);
		exit(1);
	}
	b_done++;
	if (b_issued < ops_per_run) {
		struct blk_io *ios[1] = { io };

		io->offset = next_offset();
		b_issued++;
		if (blk_storage_submit(bs, ios, 1)) {
			fprintf(stderr, "resubmit failed\n");
			exit(1);
		}
	} else if (b_done == ops_per_run) {
		ev_break(loop, EVBREAK_ALL);
	}
}

static double run_driver(const char *path)
{
	struct blk_storage_opts o = { .readonly = true, .queue_depth = QD };
	static struct bio_slot slot[QD];
	struct blk_io *ios[QD];
	double t0;
	int rc;

	rc = blk_storage_open(&bs, path, &o, loop);
	if (rc) {
		fprintf(stderr, "blk_storage_open: %s\n", strerror(-rc));
		exit(1);
	}
	b_issued = b_done = 0;
	t0 = now();
	for (unsigned i = 0; i < QD; i++) {
		slot[i].iov = (struct iovec){ bufs + i * BS, BS };
		memset(&slot[i].io, 0, sizeof(slot[i].io));
		slot[i].io.op = BLK_IO_READ;
		slot[i].io.offset = next_offset();
		slot[i].io.len = BS;
		slot[i].io.iov = &slot[i].iov;
		slot[i].io.iovcnt = 1;
		slot[i].io.done_cb = b_done_cb;
		ios[i] = &slot[i].io;
		b_issued++;
	}
	if (blk_storage_submit(bs, ios, QD))
		exit(1);
	ev_run(loop, 0);
	t0 = now() - t0;
	blk_storage_close(bs);
	return (double)b_done / t0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	char path[] = "/dev/shm/splitpv-bench-XXXXXX";
	double a[5], b[5];
	unsigned rounds = 5;
	int fd;

	if (argc > 1 && strcmp(argv[1], "-s") == 0) {
		ops_per_run = 20000;
		rounds = 3;
	}
	fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, FILE_SIZE) < 0) {
		perror("tmpfs file");
		return 1;
	}
	/* Populate every page so reads hit memory, not the zero page. */
	bufs = aligned_alloc(BS, QD * BS);
	memset(bufs, 0xab, BS);
	for (uint64_t off = 0; off < FILE_SIZE; off += BS)
		if (pwrite(fd, bufs, BS, (off_t)off) != (ssize_t)BS)
			return 1;
	close(fd);
	loop = ev_loop_new(EVFLAG_AUTO);

	run_raw(path); /* warm-up */
	for (unsigned r = 0; r < rounds; r++) {
		a[r] = run_raw(path);
		b[r] = run_driver(path);
	}
	qsort(a, rounds, sizeof(a[0]), cmp);
	qsort(b, rounds, sizeof(b[0]), cmp);
	printf("4 KiB random read, QD%u, tmpfs, %llu ops/run, median of %u:\n", QD,
	       (unsigned long long)ops_per_run, rounds);
	printf("  raw io_uring:         %10.0f IOPS\n", a[rounds / 2]);
	printf("  blk_storage (file):   %10.0f IOPS\n", b[rounds / 2]);
	printf("  ratio driver/raw:     %10.2f\n", b[rounds / 2] / a[rounds / 2]);
	ev_loop_destroy(loop);
	unlink(path);
	free(bufs);
	return 0;
}
