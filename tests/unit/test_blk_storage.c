/* Unit tests for the block storage drivers (backends/blk/storage*.c) on temp files. */
#include "tests/unit/unit.h"
#include "backends/blk/storage.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BS 4096u
#define FILE_BLOCKS 256u /* 1 MiB test files */

struct tio {
	struct blk_io io;
	struct iovec iov[4];
	int res;
	int calls;
};

static struct ev_loop *loop;
static int completed;
static bool in_submit;
static int cb_during_submit;

static void tio_done(struct blk_io *io, int res)
{
	struct tio *t = io->opaque;

	t->res = res;
	t->calls++;
	completed++;
	if (in_submit)
		cb_during_submit++;
}

static void tio_init(struct tio *t, enum blk_io_op op, uint64_t off, void *buf, uint64_t len)
{
	memset(t, 0, sizeof(*t));
	t->io.op = op;
	t->io.offset = off;
	t->io.len = len;
	t->io.done_cb = tio_done;
	t->io.opaque = t;
	t->res = 1;
	if (buf) {
		t->iov[0].iov_base = buf;
		t->iov[0].iov_len = len;
		t->io.iov = t->iov;
		t->io.iovcnt = 1;
	}
}

static void timeout_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	*(bool *)w->data = true;
	ev_break(l, EVBREAK_ALL);
}

/* Run the loop until `target` completions in total (or 10 s). Returns true if reached. */
static bool run_until(int target)
{
	ev_timer t;
	bool expired = false;

	ev_timer_init(&t, timeout_cb, 10.0, 0);
	t.data = &expired;
	ev_timer_start(loop, &t);
	while (completed < target && !expired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
	return completed >= target;
}

/* A few non-blocking loop iterations. */
static void spin(void)
{
	for (int i = 0; i < 10; i++)
		ev_run(loop, EVRUN_NOWAIT);
}

static int submit(struct blk_storage *s, struct tio **t, unsigned n)
{
	struct blk_io *ios[128];
	int rc;

	for (unsigned i = 0; i < n; i++)
		ios[i] = &t[i]->io;
	in_submit = true;
	rc = blk_storage_submit(s, ios, n);
	in_submit = false;
	return rc;
}

/* Submit one and wait for it; returns its result (or 99 on timeout). */
static int do_io(struct blk_storage *s, struct tio *t)
{
	int target = completed + 1;

	if (submit(s, &t, 1) != 0)
		return 98;
	return run_until(target) ? t->res : 99;
}

static char tmpdir[64];

static void env_cleanup(void)
{
	rmdir(tmpdir);
	ev_loop_destroy(loop);
}

/* The loop and a scratch directory in /tmp, shared by the suite (CUnit runs it in order). */
static void env(void)
{
	if (loop)
		return;
	loop = ev_loop_new(EVFLAG_AUTO);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/splitpv-storage-XXXXXX");
	CU_ASSERT_FATAL(loop != NULL && mkdtemp(tmpdir) != NULL);
	atexit(env_cleanup);
}

/* A 1 MiB file filled with byte (block index & 0xff) per 4 KiB block; returns its path. */
static char *make_file(const char *dir, const char *name, uint64_t size)
{
	static char path[128];
	char *blk = malloc(BS);
	int fd;

	env();
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	for (uint64_t off = 0; off < size; off += BS) {
		memset(blk, (int)(off / BS) & 0xff, BS);
		CU_ASSERT_FATAL(pwrite(fd, blk, BS, (off_t)off) == BS);
	}
	close(fd);
	free(blk);
	return path;
}

static struct blk_storage *open_file(const char *path, bool sync, bool direct, unsigned qd)
{
	struct blk_storage_opts o = { .readonly = false, .direct = direct, .queue_depth = qd,
				      .force_sync = sync };
	struct blk_storage *s = NULL;

	CU_ASSERT_EQUAL_FATAL(blk_storage_open(&s, path, &o, loop), 0);
	return s;
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* ---- params ---- */

static void blk_storage_params_select_drivers_by_prefix(void)
{
	const struct blk_storage_ops *ops;
	const char *arg;

	CU_ASSERT_EQUAL(blk_storage_parse_params("/dev/vg/disk", &ops, &arg), 0);
	CU_ASSERT_PTR_EQUAL(ops, &blk_storage_file_ops);
	CU_ASSERT_STRING_EQUAL(arg, "/dev/vg/disk");
	CU_ASSERT_EQUAL(blk_storage_parse_params("aio:/img/a.raw", &ops, &arg), 0);
	CU_ASSERT_PTR_EQUAL(ops, &blk_storage_file_ops);
	CU_ASSERT_STRING_EQUAL(arg, "/img/a.raw");
	CU_ASSERT_EQUAL(blk_storage_parse_params("file:/img/b", &ops, &arg), 0);
	CU_ASSERT_STRING_EQUAL(arg, "/img/b");
	CU_ASSERT_EQUAL(blk_storage_parse_params("raw:/img/c", &ops, &arg), 0);
	CU_ASSERT_STRING_EQUAL(arg, "/img/c");
	CU_ASSERT_EQUAL(blk_storage_parse_params("null:1G", &ops, &arg), 0);
	CU_ASSERT_PTR_EQUAL(ops, &blk_storage_null_ops);
	CU_ASSERT_STRING_EQUAL(arg, "1G");
	CU_ASSERT_EQUAL(blk_storage_parse_params("disk.img", &ops, &arg), 0);
	CU_ASSERT_PTR_EQUAL(ops, &blk_storage_file_ops);
	CU_ASSERT_EQUAL(blk_storage_parse_params("/srv/a:b", &ops, &arg), 0);
	CU_ASSERT_STRING_EQUAL(arg, "/srv/a:b");
}

static void blk_storage_params_reject_unknown_formats_and_empty(void)
{
	const struct blk_storage_ops *ops;
	const char *arg;

	CU_ASSERT_EQUAL(blk_storage_parse_params("qcow2:/img/a.qcow2", &ops, &arg),
			-EPROTONOSUPPORT);
	CU_ASSERT_EQUAL(blk_storage_parse_params("vhd:/img/a.vhd", &ops, &arg), -EPROTONOSUPPORT);
	CU_ASSERT_EQUAL(blk_storage_parse_params("iscsi://host/export", &ops, &arg),
			-EPROTONOSUPPORT);
	CU_ASSERT_PTR_NULL(ops);
	CU_ASSERT_EQUAL(blk_storage_parse_params("", &ops, &arg), -EINVAL);
	CU_ASSERT_EQUAL(blk_storage_parse_params("file:", &ops, &arg), -EINVAL);
	CU_ASSERT_EQUAL(blk_storage_parse_params("null:", &ops, &arg), -EINVAL);
}

static void blk_storage_parse_size_handles_units_and_overflow(void)
{
	uint64_t v = 42;

	CU_ASSERT_EQUAL(blk_storage_parse_size("4096", &v), 0);
	CU_ASSERT_EQUAL(v, 4096);
	CU_ASSERT_EQUAL(blk_storage_parse_size("64K", &v), 0);
	CU_ASSERT_EQUAL(v, 65536);
	CU_ASSERT_EQUAL(blk_storage_parse_size("1G", &v), 0);
	CU_ASSERT_EQUAL(v, 1ull << 30);
	CU_ASSERT_EQUAL(blk_storage_parse_size("2t", &v), 0);
	CU_ASSERT_EQUAL(v, 2ull << 40);
	v = 42;
	CU_ASSERT_EQUAL(blk_storage_parse_size("0", &v), -EINVAL);
	CU_ASSERT_EQUAL(blk_storage_parse_size("1X", &v), -EINVAL);
	CU_ASSERT_EQUAL(blk_storage_parse_size("1GB", &v), -EINVAL);
	CU_ASSERT_EQUAL(blk_storage_parse_size("-1", &v), -EINVAL);
	CU_ASSERT_EQUAL(blk_storage_parse_size("18446744073709551616", &v), -EINVAL);
	CU_ASSERT_EQUAL(blk_storage_parse_size("16777216T", &v), -EINVAL);
	CU_ASSERT_EQUAL(v, 42);
}

static void blk_io_build_rest_skips_transferred_bytes(void)
{
	static uint8_t a[100], b[200], c[300];
	struct iovec iov[3] = { { a, 100 }, { b, 200 }, { c, 300 } };
	struct blk_io io;

	memset(&io, 0, sizeof(io));
	io.iov = iov;
	io.iovcnt = 3;
	io.len = 600;
	io.priv.done = 150; /* half-way through b */
	CU_ASSERT_EQUAL_FATAL(blk_io_build_rest(&io), 0);
	CU_ASSERT_EQUAL(io.priv.restcnt, 2);
	CU_ASSERT_PTR_EQUAL(io.priv.rest[0].iov_base, b + 50);
	CU_ASSERT_EQUAL(io.priv.rest[0].iov_len, 150);
	CU_ASSERT_PTR_EQUAL(io.priv.rest[1].iov_base, c);
	CU_ASSERT_EQUAL(io.priv.rest[1].iov_len, 300);
	io.priv.done = 300; /* exactly at c: a boundary */
	CU_ASSERT_EQUAL(blk_io_build_rest(&io), 0);
	CU_ASSERT_EQUAL(io.priv.restcnt, 1);
	CU_ASSERT_PTR_EQUAL(io.priv.rest[0].iov_base, c);
	CU_ASSERT_EQUAL(io.priv.rest[0].iov_len, 300);
	io.priv.done = 599;
	CU_ASSERT_EQUAL(blk_io_build_rest(&io), 0);
	CU_ASSERT_EQUAL(io.priv.restcnt, 1);
	CU_ASSERT_PTR_EQUAL(io.priv.rest[0].iov_base, c + 299);
	CU_ASSERT_EQUAL(io.priv.rest[0].iov_len, 1);
	CU_ASSERT_PTR_EQUAL(iov[1].iov_base, b); /* the caller's iov untouched */
	CU_ASSERT_EQUAL(iov[1].iov_len, 200);
	free(io.priv.rest);
}

/* ---- null ---- */

static void blk_storage_null_reads_zeros_and_completes_from_loop(void)
{
	struct blk_storage *s = NULL;
	struct blk_storage_info info;
	static uint8_t buf[8192];
	struct tio r, w, f, past;
	struct tio *batch[] = { &r, &w, &f, &past };
	int base = completed;

	env();
	CU_ASSERT_EQUAL_FATAL(blk_storage_open(&s, "null:1M", NULL, loop), 0);
	CU_ASSERT_EQUAL(blk_storage_info(s, &info), 0);
	CU_ASSERT_EQUAL(info.size_bytes, 1u << 20);
	memset(buf, 0xff, sizeof(buf));
	tio_init(&r, BLK_IO_READ, 4096, buf, 4096);
	tio_init(&w, BLK_IO_WRITE, 0, buf + 4096, 4096);
	tio_init(&f, BLK_IO_FLUSH, 0, NULL, 0);
	tio_init(&past, BLK_IO_READ, (1u << 20) - 512, buf + 4096, 1024);
	CU_ASSERT_EQUAL(submit(s, batch, 4), 0);
	CU_ASSERT_EQUAL(completed, base); /* never from inside submit */
	CU_ASSERT_TRUE(run_until(base + 4));
	CU_ASSERT_EQUAL(cb_during_submit, 0);
	CU_ASSERT_EQUAL(r.res, 0);
	CU_ASSERT_TRUE(all_bytes(buf, 4096, 0));
	CU_ASSERT_EQUAL(w.res, 0);
	CU_ASSERT_EQUAL(f.res, 0);
	CU_ASSERT_EQUAL(past.res, -EINVAL);
	CU_ASSERT_EQUAL(r.calls + w.calls + f.calls + past.calls, 4);
	blk_storage_close(s);
	CU_ASSERT_EQUAL(blk_storage_open(&s, "null:1000", NULL, loop), -EINVAL); /* not 512-aligned */
	CU_ASSERT_PTR_NULL(s);
}

/* ---- file ---- */

static void write_read_back(bool sync)
{
	char *path = make_file(tmpdir, sync ? "rw-sync" : "rw-uring", FILE_BLOCKS * BS);
	struct blk_storage *s = open_file(path, sync, false, 0);
	struct blk_storage_info info;
	uint8_t *a = malloc(3 * BS), *b = calloc(3, BS);
	struct tio w, r;

	CU_ASSERT_EQUAL(blk_storage_info(s, &info), 0);
	CU_ASSERT_EQUAL(info.size_bytes, FILE_BLOCKS * BS);
	CU_ASSERT_EQUAL(info.logical_block, 512);
	CU_ASSERT_FALSE(info.readonly);
	for (unsigned i = 0; i < 3 * BS; i++)
		a[i] = (uint8_t)(i * 7 + 3);
	/* a scattered write: three iovecs of unequal length */
	tio_init(&w, BLK_IO_WRITE, 10 * BS + 512, NULL, 3 * BS);
	w.iov[0] = (struct iovec){ a, 512 };
	w.iov[1] = (struct iovec){ a + 512, 2 * BS };
	w.iov[2] = (struct iovec){ a + 512 + 2 * BS, BS - 512 };
	w.io.iov = w.iov;
	w.io.iovcnt = 3;
	CU_ASSERT_EQUAL(do_io(s, &w), 0);
	tio_init(&r, BLK_IO_READ, 10 * BS + 512, b, 3 * BS);
	CU_ASSERT_EQUAL(do_io(s, &r), 0);
	CU_ASSERT_EQUAL(memcmp(a, b, 3 * BS), 0);
	/* the block before is untouched */
	tio_init(&r, BLK_IO_READ, 9 * BS, b, BS);
	CU_ASSERT_EQUAL(do_io(s, &r), 0);
	CU_ASSERT_TRUE(all_bytes(b, BS, 9));
	CU_ASSERT_EQUAL(cb_during_submit, 0);
	blk_storage_close(s);
	unlink(path);
	free(a);
	free(b);
}

static void blk_storage_file_writes_and_reads_back_io_uring(void)
{
	write_read_back(false);
}

static void blk_storage_file_writes_and_reads_back_sync_fallback(void)
{
	write_read_back(true);
}

static void batch64(bool sync)
{
	char *path = make_file(tmpdir, "batch", FILE_BLOCKS * BS);
	struct blk_storage *s = open_file(path, sync, false, 8); /* qd 8 < 64: overflow list */
	static struct tio t[64];
	struct tio *p[64];
	uint8_t *bufs = malloc(64 * BS);
	int base = completed;

	/* 40 writes to blocks 0..39, 20 reads of blocks 100..119, 4 flushes, interleaved */
	for (unsigned i = 0, wi = 0, ri = 0; i < 64; i++) {
		uint8_t *b = bufs + i * BS;

		if (i % 16 == 15) {
			tio_init(&t[i], BLK_IO_FLUSH, 0, NULL, 0);
		} else if (i % 3 == 2 && ri < 20) {
			memset(b, 0xee, BS);
			tio_init(&t[i], BLK_IO_READ, (100 + ri++) * BS, b, BS);
		} else {
			memset(b, 0x80 + (int)wi, BS);
			tio_init(&t[i], BLK_IO_WRITE, wi++ * BS, b, BS);
		}
		p[i] = &t[i];
	}
	CU_ASSERT_EQUAL(submit(s, p, 64), 0);
	CU_ASSERT_TRUE(run_until(base + 64));
	for (unsigned i = 0; i < 64; i++) {
		CU_ASSERT_EQUAL(t[i].calls, 1);
		CU_ASSERT_EQUAL(t[i].res, 0);
		if (t[i].io.op == BLK_IO_READ)
			CU_ASSERT_TRUE(all_bytes(t[i].iov[0].iov_base, BS,
						 (uint8_t)(t[i].io.offset / BS)));
	}
	/* every write landed: read back the whole written range in one I/O */
	{
		uint8_t *all = malloc(64 * BS);
		struct tio r;
		unsigned nw = 0;

		for (unsigned i = 0; i < 64; i++)
			nw += t[i].io.op == BLK_IO_WRITE;
		tio_init(&r, BLK_IO_READ, 0, all, nw * BS);
		CU_ASSERT_EQUAL(do_io(s, &r), 0);
		for (unsigned i = 0; i < nw; i++)
			CU_ASSERT_TRUE(all_bytes(all + i * BS, BS, (uint8_t)(0x80 + i)));
		free(all);
	}
	blk_storage_close(s);
	unlink(path);
	free(bufs);
}

static void blk_storage_file_completes_batch_of_64_mixed_past_queue_depth(void)
{
	batch64(false);
}

static void blk_storage_file_completes_batch_of_64_mixed_sync_fallback(void)
{
	batch64(true);
}

static void blk_storage_file_flush_and_fua_write_succeed(void)
{
	char *path = make_file(tmpdir, "flush", FILE_BLOCKS * BS);
	struct blk_storage *s = open_file(path, false, false, 0);
	static uint8_t buf[BS], back[BS];
	struct tio f, w, r;

	memset(buf, 0x5c, BS);
	tio_init(&w, BLK_IO_WRITE, 3 * BS, buf, BS);
	w.io.fua = true;
	CU_ASSERT_EQUAL(do_io(s, &w), 0);
	tio_init(&f, BLK_IO_FLUSH, 0, NULL, 0);
	CU_ASSERT_EQUAL(do_io(s, &f), 0);
	CU_ASSERT_EQUAL(f.calls, 1);
	blk_storage_close(s);
	/* reopened: the data is in the file */
	s = open_file(path, true, false, 0);
	tio_init(&r, BLK_IO_READ, 3 * BS, back, BS);
	CU_ASSERT_EQUAL(do_io(s, &r), 0);
	CU_ASSERT_TRUE(all_bytes(back, BS, 0x5c));
	blk_storage_close(s);
	unlink(path);
}

static void discard_in(const char *dir, const char *what)
{
	char *path = make_file(dir, "discard", FILE_BLOCKS * BS);
	struct blk_storage *s = open_file(path, false, false, 0);
	struct blk_storage_info info;
	static uint8_t back[4 * BS];
	struct tio d, z, r;
	struct stat st;
	int res;

	CU_ASSERT_EQUAL(blk_storage_info(s, &info), 0);
	CU_ASSERT_TRUE(info.can_discard);
	tio_init(&d, BLK_IO_DISCARD, 20 * BS, NULL, 2 * BS);
	res = do_io(s, &d);
	if (res == -EOPNOTSUPP) {
		printf("\n  [%s lacks punch-hole: discard zero-read assertion skipped] ", what);
	} else {
		CU_ASSERT_EQUAL(res, 0);
		tio_init(&r, BLK_IO_READ, 19 * BS, back, 4 * BS);
		CU_ASSERT_EQUAL(do_io(s, &r), 0);
		CU_ASSERT_TRUE(all_bytes(back, BS, 19));
		CU_ASSERT_TRUE(all_bytes(back + BS, 2 * BS, 0));
		CU_ASSERT_TRUE(all_bytes(back + 3 * BS, BS, 22));
	}
	tio_init(&z, BLK_IO_WRITE_ZEROES, 30 * BS + 512, NULL, BS);
	res = do_io(s, &z);
	if (res == -EOPNOTSUPP) {
		printf("\n  [%s lacks zero-range and punch-hole: write-zeroes skipped] ", what);
	} else {
		CU_ASSERT_EQUAL(res, 0);
		tio_init(&r, BLK_IO_READ, 30 * BS, back, 2 * BS);
		CU_ASSERT_EQUAL(do_io(s, &r), 0);
		CU_ASSERT_TRUE(all_bytes(back, 512, 30));
		CU_ASSERT_TRUE(all_bytes(back + 512, BS, 0));
		CU_ASSERT_TRUE(all_bytes(back + 512 + BS, BS - 512, 31));
	}
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_size, FILE_BLOCKS * BS); /* KEEP_SIZE */
	blk_storage_close(s);
	unlink(path);
}

static void blk_storage_file_discard_reads_back_zeros_on_ext4_or_tmp(void)
{
	discard_in(tmpdir, "/tmp's filesystem");
}

static void blk_storage_file_discard_reads_back_zeros_on_tmpfs(void)
{
	char dir[64] = "/dev/shm/splitpv-storage-XXXXXX";

	if (!mkdtemp(dir)) {
		printf("\n  [no /dev/shm: tmpfs discard test skipped] ");
		return;
	}
	discard_in(dir, "tmpfs");
	rmdir(dir);
}

static void blk_storage_file_refuses_io_past_end(void)
{
	char *path = make_file(tmpdir, "range", FILE_BLOCKS * BS);
	struct blk_storage *s = open_file(path, false, false, 0);
	static uint8_t buf[2 * BS];
	struct tio a, b, c;
	struct tio *batch[] = { &a, &b, &c };
	struct stat st;
	int base = completed;

	tio_init(&a, BLK_IO_WRITE, FILE_BLOCKS * BS, buf, BS);           /* at the end */
	tio_init(&b, BLK_IO_WRITE, FILE_BLOCKS * BS - BS, buf, 2 * BS);  /* straddles it */
	tio_init(&c, BLK_IO_READ, FILE_BLOCKS * BS - BS, buf, BS);       /* last block: fine */
	CU_ASSERT_EQUAL(submit(s, batch, 3), 0);
	CU_ASSERT_TRUE(run_until(base + 3));
	CU_ASSERT_EQUAL(cb_during_submit, 0);
	CU_ASSERT_EQUAL(a.res, -EINVAL);
	CU_ASSERT_EQUAL(b.res, -EINVAL);
	CU_ASSERT_EQUAL(c.res, 0);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_size, FILE_BLOCKS * BS); /* never grown */
	tio_init(&a, BLK_IO_DISCARD, FILE_BLOCKS * BS - 512, NULL, 1024);
	CU_ASSERT_EQUAL(do_io(s, &a), -EINVAL);
	blk_storage_close(s);
	unlink(path);
}

static void short_file(bool sync)
{
	char *path = make_file(tmpdir, "short", FILE_BLOCKS * BS);
	struct blk_storage *s = open_file(path, sync, false, 0);
	static uint8_t buf[4 * BS];
	uint64_t size = 0;
	struct tio r;

	/* Someone shrinks the image under us: a read crossing the new end gets a short
	 * transfer, then end of file, and must fail rather than spin or return garbage. */
	CU_ASSERT_EQUAL(truncate(path, 10 * BS + 1000), 0);
	tio_init(&r, BLK_IO_READ, 8 * BS, buf, 4 * BS);
	CU_ASSERT_EQUAL(do_io(s, &r), -EIO);
	tio_init(&r, BLK_IO_READ, 8 * BS, buf, 2 * BS);
	CU_ASSERT_EQUAL(do_io(s, &r), 0);
	CU_ASSERT_TRUE(all_bytes(buf + BS, BS, 9));
	/* online resize: the new size is picked up and enforced */
	CU_ASSERT_EQUAL(blk_storage_refresh_size(s, &size), 0);
	CU_ASSERT_EQUAL(size, 10 * BS + 1000);
	tio_init(&r, BLK_IO_READ, 10 * BS, buf, BS);
	CU_ASSERT_EQUAL(do_io(s, &r), -EINVAL);
	tio_init(&r, BLK_IO_READ, 10 * BS, buf, 512);
	CU_ASSERT_EQUAL(do_io(s, &r), 0);
	blk_storage_close(s);
	unlink(path);
}

static void blk_storage_file_short_read_after_truncate_fails_eio(void)
{
	short_file(false);
}

static void blk_storage_file_short_read_after_truncate_fails_eio_sync(void)
{
	short_file(true);
}

static void blk_storage_file_readonly_refuses_writes_at_submit(void)
{
	char *path = make_file(tmpdir, "ro", FILE_BLOCKS * BS);
	struct blk_storage_opts o = { .readonly = true };
	struct blk_storage *s = NULL;
	struct blk_storage_info info;
	static uint8_t buf[BS];
	struct tio r, w;
	struct tio *batch[] = { &r, &w };
	int base = completed;

	CU_ASSERT_EQUAL_FATAL(blk_storage_open(&s, path, &o, loop), 0);
	CU_ASSERT_EQUAL(blk_storage_info(s, &info), 0);
	CU_ASSERT_TRUE(info.readonly);
	tio_init(&r, BLK_IO_READ, 0, buf, BS);
	tio_init(&w, BLK_IO_WRITE, 0, buf, BS);
	CU_ASSERT_EQUAL(submit(s, batch, 2), -EROFS);
	spin();
	CU_ASSERT_EQUAL(completed, base); /* nothing was queued */
	CU_ASSERT_EQUAL(r.calls, 0);
	tio_init(&w, BLK_IO_DISCARD, 0, NULL, BS);
	CU_ASSERT_EQUAL(submit(s, batch + 1, 1), -EROFS);
	CU_ASSERT_EQUAL(do_io(s, &r), 0);
	blk_storage_close(s);
	unlink(path);
}

static void blk_storage_submit_rejects_malformed_batch_whole(void)
{
	struct blk_storage *s = NULL;
	static uint8_t buf[2 * BS];
	struct tio good, bad;
	struct tio *batch[] = { &good, &bad };

	env();
	CU_ASSERT_EQUAL_FATAL(blk_storage_open(&s, "null:1M", NULL, loop), 0);
	tio_init(&good, BLK_IO_READ, 0, buf, BS);
	tio_init(&bad, BLK_IO_READ, 0, buf, BS);
	bad.io.len = 2 * BS; /* iov sums to BS */
	CU_ASSERT_EQUAL(submit(s, batch, 2), -EINVAL);
	tio_init(&bad, BLK_IO_READ, UINT64_MAX - 100, buf, BS); /* wraps */
	CU_ASSERT_EQUAL(submit(s, batch, 2), -EINVAL);
	tio_init(&bad, BLK_IO_WRITE, 0, buf, 0); /* empty */
	CU_ASSERT_EQUAL(submit(s, batch, 2), -EINVAL);
	tio_init(&bad, (enum blk_io_op)17, 0, buf, BS);
	CU_ASSERT_EQUAL(submit(s, batch, 2), -EINVAL);
	tio_init(&bad, BLK_IO_READ, 0, buf, BS);
	bad.io.done_cb = NULL;
	CU_ASSERT_EQUAL(submit(s, batch, 2), -EINVAL);
	spin(); /* give the loop a chance: nothing may complete */
	CU_ASSERT_EQUAL(good.calls, 0);
	blk_storage_close(s);
}

static void blk_storage_file_direct_io_serves_unaligned_buffers(void)
{
	char *path = make_file(tmpdir, "direct", FILE_BLOCKS * BS);
	struct blk_storage *s = open_file(path, false, true, 0);
	uint8_t *mem = aligned_alloc(BS, 4 * BS);
	struct tio w, r;

	/* aligned buffer: the O_DIRECT descriptor; misaligned: the buffered twin */
	memset(mem, 0x11, 2 * BS);
	tio_init(&w, BLK_IO_WRITE, 4 * BS, mem, 2 * BS);
	CU_ASSERT_EQUAL(do_io(s, &w), 0);
	memset(mem + 2 * BS + 1, 0x22, BS);
	tio_init(&w, BLK_IO_WRITE, 5 * BS + 512, mem + 2 * BS + 1, BS);
	CU_ASSERT_EQUAL(do_io(s, &w), 0);
	memset(mem, 0, 4 * BS);
	tio_init(&r, BLK_IO_READ, 4 * BS, mem, 2 * BS);
	CU_ASSERT_EQUAL(do_io(s, &r), 0);
	CU_ASSERT_TRUE(all_bytes(mem, BS + 512, 0x11));
	CU_ASSERT_TRUE(all_bytes(mem + BS + 512, BS - 512, 0x22));
	tio_init(&r, BLK_IO_READ, 6 * BS, mem + 3, 512);
	CU_ASSERT_EQUAL(do_io(s, &r), 0);
	CU_ASSERT_TRUE(all_bytes(mem + 3, 512, 0x22));
	blk_storage_close(s);
	unlink(path);
	free(mem);
}

static void blk_storage_open_fails_cleanly_on_missing_file_and_directory(void)
{
	struct blk_storage *s = (struct blk_storage *)&s;

	env();
	CU_ASSERT_EQUAL(blk_storage_open(&s, "/nonexistent/splitpv/disk", NULL, loop), -ENOENT);
	CU_ASSERT_PTR_NULL(s);
	CU_ASSERT_EQUAL(blk_storage_open(&s, tmpdir, NULL, loop), -EISDIR);
	CU_ASSERT_EQUAL(blk_storage_open(&s, "qcow2:/x.qcow2", NULL, loop), -EPROTONOSUPPORT);
	blk_storage_close(NULL);
}

static void blk_storage_close_completes_io_in_flight(void)
{
	char *path = make_file(tmpdir, "close", FILE_BLOCKS * BS);
	struct blk_storage *s = open_file(path, false, false, 2);
	static uint8_t bufs[8][BS];
	struct tio t[8];
	struct tio *p[8];
	int base = completed;

	for (unsigned i = 0; i < 8; i++) {
		tio_init(&t[i], BLK_IO_READ, i * BS, bufs[i], BS);
		p[i] = &t[i];
	}
	CU_ASSERT_EQUAL(submit(s, p, 8), 0);
	blk_storage_close(s); /* without running the loop */
	CU_ASSERT_EQUAL(completed, base + 8);
	for (unsigned i = 0; i < 8; i++) {
		CU_ASSERT_EQUAL(t[i].calls, 1);
		CU_ASSERT_TRUE(t[i].res == 0 || t[i].res == -ECANCELED);
	}
	unlink(path);
}

#define T(fn) { #fn, fn }

static const struct unit_test tests[] = {
	T(blk_storage_params_select_drivers_by_prefix),
	T(blk_storage_params_reject_unknown_formats_and_empty),
	T(blk_storage_parse_size_handles_units_and_overflow),
	T(blk_io_build_rest_skips_transferred_bytes),
	T(blk_storage_null_reads_zeros_and_completes_from_loop),
	T(blk_storage_submit_rejects_malformed_batch_whole),
	T(blk_storage_file_writes_and_reads_back_io_uring),
	T(blk_storage_file_writes_and_reads_back_sync_fallback),
	T(blk_storage_file_completes_batch_of_64_mixed_past_queue_depth),
	T(blk_storage_file_completes_batch_of_64_mixed_sync_fallback),
	T(blk_storage_file_flush_and_fua_write_succeed),
	T(blk_storage_file_discard_reads_back_zeros_on_ext4_or_tmp),
	T(blk_storage_file_discard_reads_back_zeros_on_tmpfs),
	T(blk_storage_file_refuses_io_past_end),
	T(blk_storage_file_short_read_after_truncate_fails_eio),
	T(blk_storage_file_short_read_after_truncate_fails_eio_sync),
	T(blk_storage_file_readonly_refuses_writes_at_submit),
	T(blk_storage_file_direct_io_serves_unaligned_buffers),
	T(blk_storage_open_fails_cleanly_on_missing_file_and_directory),
	T(blk_storage_close_completes_io_in_flight),
	{ NULL, NULL },
};
UNIT_SUITE(blk_storage, tests)
