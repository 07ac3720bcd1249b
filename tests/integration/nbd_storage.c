/*
 * nbd_storage — the nbd storage driver (backends/blk/storage_nbd.c) on a libev loop of
 * its own, against real nbdkit servers on UNIX sockets: geometry and capabilities from
 * the server, scattered and large I/O with data checked, errors, read-only exports,
 * completions only from the loop, I/O held across a server restart and re-issued, held
 * I/O failed with EIO once the hold time runs out, a dead server refused at open.
 * Skips (77) when nbdkit is not installed.
 */
#include "backends/blk/storage.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

static struct ev_loop *loop;
static char dir[256], sock[300], uri[400];
static int completed;
static bool in_submit;
static int cb_during_submit;

struct tio {
	struct blk_io io;
	struct iovec iov[8];
	int res;
};

static void tio_done(struct blk_io *io, int res)
{
	struct tio *t = io->opaque;

	t->res = res;
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

static bool run_until(int target, double secs)
{
	ev_timer t;
	bool expired = false;

	ev_timer_init(&t, timeout_cb, secs, 0);
	t.data = &expired;
	ev_timer_start(loop, &t);
	while (completed < target && !expired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
	return completed >= target;
}

static void run_for(double secs)
{
	ev_timer t;
	bool expired = false;

	ev_timer_init(&t, timeout_cb, secs, 0);
	t.data = &expired;
	ev_timer_start(loop, &t);
	while (!expired)
		ev_run(loop, EVRUN_ONCE);
}

static int submit(struct blk_storage *s, struct tio **ts, unsigned n)
{
	struct blk_io *ios[16];
	int rc;

	for (unsigned i = 0; i < n; i++)
		ios[i] = &ts[i]->io;
	in_submit = true;
	rc = blk_storage_submit(s, ios, n);
	in_submit = false;
	return rc;
}

/* Submit one and wait (5 s); returns its result (99: never completed). */
static int one(struct blk_storage *s, struct tio *t)
{
	int target = completed + 1;

	if (submit(s, &t, 1) != 0)
		return 98;
	return run_until(target, 5.0) ? t->res : 99;
}

static void fill(uint8_t *b, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

/* ---- nbdkit ---- */

static pid_t server = -1;

/* Start nbdkit on sock with args; wait for the socket. 0, -ENOENT (no nbdkit), -EIO. */
static int start_nbdkit(const char *const *args)
{
	const char *argv[16] = { "nbdkit", "-f", "-U", sock };
	unsigned n = 4;

	while (*args && n < 15)
		argv[n++] = *args++;
	argv[n] = NULL;
	unlink(sock);
	server = fork();
	if (server < 0)
		return -errno;
	if (server == 0) {
		execvp("nbdkit", (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		int st;

		if (access(sock, F_OK) == 0)
			return 0;
		if (waitpid(server, &st, WNOHANG) == server) {
			server = -1;
			return WIFEXITED(st) && WEXITSTATUS(st) == 127 ? -ENOENT : -EIO;
		}
		usleep(10000);
	}
	return -EIO;
}

static void stop_nbdkit(int sig)
{
	if (server <= 0)
		return;
	kill(server, sig);
	waitpid(server, NULL, 0);
	server = -1;
}

static struct blk_storage *open_nbd(bool ro)
{
	struct blk_storage_opts o = { .readonly = ro };
	struct blk_storage *s = NULL;
	int rc = blk_storage_open(&s, uri, &o, loop);

	CHECK(rc == 0, "open %s: %s", uri, strerror(-rc));
	return s;
}

/* ---- cases ---- */

static void info_and_basic_io(void)
{
	const char *args[] = { "memory", "size=64M", NULL };
	struct blk_storage_info in;
	struct blk_storage *s;
	struct tio t, *tp = &t;
	static uint8_t wbuf[1 << 20], rbuf[1 << 20];

	CHECK(start_nbdkit(args) == 0, "nbdkit memory");
	s = open_nbd(false);
	if (!s)
		goto out;
	CHECK(blk_storage_info(s, &in) == 0, "info");
	CHECK(in.size_bytes == 64u << 20, "size %llu", (unsigned long long)in.size_bytes);
	CHECK(in.logical_block == 512, "logical block %u", in.logical_block);
	CHECK(in.can_flush && in.can_discard && !in.readonly, "flush %d discard %d ro %d",
	      in.can_flush, in.can_discard, in.readonly);

	/* 1 MiB write in one iov, read back scattered over 8 pieces (bounce buffer). */
	fill(wbuf, sizeof(wbuf), 1);
	tio_init(&t, BLK_IO_WRITE, 3 << 20, wbuf, sizeof(wbuf));
	t.io.fua = true;
	CHECK(one(s, &t) == 0, "write 1 MiB FUA: %d", t.res);
	tio_init(&t, BLK_IO_READ, 3 << 20, NULL, sizeof(rbuf));
	for (unsigned i = 0; i < 8; i++) {
		/* Reverse order in memory: never contiguous. */
		t.iov[i].iov_base = rbuf + (7 - i) * (sizeof(rbuf) / 8);
		t.iov[i].iov_len = sizeof(rbuf) / 8;
	}
	t.io.iov = t.iov;
	t.io.iovcnt = 8;
	memset(rbuf, 0, sizeof(rbuf));
	CHECK(one(s, &t) == 0, "scattered read: %d", t.res);
	for (unsigned i = 0; i < 8; i++)
		CHECK(memcmp(rbuf + (7 - i) * (sizeof(rbuf) / 8), wbuf + i * (sizeof(rbuf) / 8),
			     sizeof(rbuf) / 8) == 0, "piece %u reads back", i);
	CHECK(cb_during_submit == 0, "done_cb ran inside submit");

	/* Flush, trim, zero. */
	tio_init(&t, BLK_IO_FLUSH, 0, NULL, 0);
	CHECK(one(s, &t) == 0, "flush: %d", t.res);
	tio_init(&t, BLK_IO_WRITE_ZEROES, 3 << 20, NULL, 65536);
	CHECK(one(s, &t) == 0, "write zeroes: %d", t.res);
	tio_init(&t, BLK_IO_READ, 3 << 20, rbuf, 65536 + 4096);
	CHECK(one(s, &t) == 0, "read after zero");
	for (size_t i = 0; i < 65536; i++)
		if (rbuf[i]) {
			CHECK(0, "zeroed range not zero at %zu", i);
			break;
		}
	CHECK(memcmp(rbuf + 65536, wbuf + 65536, 4096) == 0, "data after the zeroed range kept");
	tio_init(&t, BLK_IO_DISCARD, 4 << 20, NULL, 1 << 20);
	CHECK(one(s, &t) == 0, "discard: %d", t.res);

	/* Past the end: -EINVAL from the loop, device keeps serving. */
	tio_init(&t, BLK_IO_READ, (64u << 20) - 512, rbuf, 4096);
	CHECK(one(s, &t) == -EINVAL, "read past the end: %d", t.res);
	tio_init(&t, BLK_IO_READ, 0, rbuf, 4096);
	CHECK(one(s, &t) == 0, "read after error: %d", t.res);

	/* A batch of 64 concurrent 4 KiB writes then reads, data checked. */
	{
		static struct tio ts[64];
		static uint8_t bufs[64][4096], rd[64][4096];
		struct tio *p[16];
		int target = completed + 64;

		for (unsigned i = 0; i < 64; i++) {
			fill(bufs[i], 4096, 100 + i);
			tio_init(&ts[i], BLK_IO_WRITE, (uint64_t)i * 8192, bufs[i], 4096);
		}
		for (unsigned i = 0; i < 64; i += 16) {
			for (unsigned j = 0; j < 16; j++)
				p[j] = &ts[i + j];
			CHECK(submit(s, p, 16) == 0, "batch submit");
		}
		CHECK(run_until(target, 5.0), "64 writes complete");
		target = completed + 64;
		for (unsigned i = 0; i < 64; i++) {
			CHECK(ts[i].res == 0, "write %u: %d", i, ts[i].res);
			tio_init(&ts[i], BLK_IO_READ, (uint64_t)i * 8192, rd[i], 4096);
			tp = &ts[i];
			CHECK(submit(s, &tp, 1) == 0, "submit read");
		}
		CHECK(run_until(target, 5.0), "64 reads complete");
		for (unsigned i = 0; i < 64; i++)
			CHECK(ts[i].res == 0 && memcmp(rd[i], bufs[i], 4096) == 0,
			      "read %u: %d / data", i, ts[i].res);
	}
	CHECK(cb_during_submit == 0, "done_cb ran inside submit");
	blk_storage_close(s);
out:
	stop_nbdkit(SIGTERM);
	printf("ok   info, io, flush/trim/zero, errors, batches\n");
}

static void block_sizes_and_readonly(void)
{
	const char *args[] = { "-r", "--filter=blocksize-policy", "memory", "size=8M",
			       "blocksize-minimum=4096", "blocksize-preferred=4096",
			       "blocksize-maximum=65536", NULL };
	struct blk_storage_info in;
	struct blk_storage *s;
	static uint8_t buf[256 << 10];
	struct tio t;

	if (start_nbdkit(args) != 0) {
		printf("skip block sizes: nbdkit has no blocksize-policy filter\n");
		return;
	}
	s = open_nbd(false);
	if (!s)
		goto out;
	CHECK(blk_storage_info(s, &in) == 0, "info");
	CHECK(in.logical_block == 4096 && in.physical_block == 4096, "block sizes %u/%u",
	      in.logical_block, in.physical_block);
	CHECK(in.readonly, "read-only export reported read-only");
	tio_init(&t, BLK_IO_WRITE, 0, buf, 4096);
	CHECK(blk_storage_submit(s, (struct blk_io *[]){ &t.io }, 1) == -EROFS,
	      "write to a read-only export refused");
	/* 256 KiB read with a 64 KiB maximum payload: split in four commands. */
	tio_init(&t, BLK_IO_READ, 0, buf, sizeof(buf));
	CHECK(one(s, &t) == 0, "read over max payload: %d", t.res);
	blk_storage_close(s);
out:
	stop_nbdkit(SIGTERM);
	printf("ok   block sizes from the server, read-only export\n");
}

/* Server killed with I/O in flight, restarted 1 s later: everything completes, data ok. */
static void restart_holds_and_reissues(void)
{
	char file[320], farg[340];
	const char *args[] = { "file", farg, NULL };
	static struct tio ts[32];
	static uint8_t bufs[32][65536], rd[65536];
	struct blk_storage *s;
	struct tio t, *tp;
	int fd, target;

	snprintf(file, sizeof(file), "%s/restart.raw", dir);
	snprintf(farg, sizeof(farg), "file=%s", file);
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && ftruncate(fd, 16 << 20) == 0, "image file");
	if (fd >= 0)
		close(fd);
	CHECK(start_nbdkit(args) == 0, "nbdkit file");
	s = open_nbd(false);
	if (!s)
		goto out;
	stop_nbdkit(SIGKILL);
	/* Writes submitted while the server is away are held. */
	target = completed + 32;
	for (unsigned i = 0; i < 32; i++) {
		fill(bufs[i], sizeof(bufs[i]), 500 + i);
		tio_init(&ts[i], BLK_IO_WRITE, (uint64_t)i * sizeof(bufs[i]), bufs[i],
			 sizeof(bufs[i]));
		tp = &ts[i];
		CHECK(submit(s, &tp, 1) == 0, "submit while away");
	}
	run_for(1.0);
	CHECK(completed < target, "held I/O did not fail while the server was away");
	CHECK(start_nbdkit(args) == 0, "nbdkit file restarted");
	CHECK(run_until(target, 10.0), "held I/O completed after the restart");
	for (unsigned i = 0; i < 32; i++)
		CHECK(ts[i].res == 0, "held write %u: %d", i, ts[i].res);
	/* Kill it again with reads in flight. */
	target = completed + 32;
	for (unsigned i = 0; i < 32; i++) {
		tio_init(&ts[i], BLK_IO_READ, (uint64_t)i * sizeof(bufs[i]), bufs[i],
			 sizeof(bufs[i]));
		tp = &ts[i];
		CHECK(submit(s, &tp, 1) == 0, "submit reads");
	}
	stop_nbdkit(SIGKILL);
	run_for(0.5);
	CHECK(start_nbdkit(args) == 0, "nbdkit file restarted");
	CHECK(run_until(target, 10.0), "reads completed after the second restart");
	for (unsigned i = 0; i < 32; i++) {
		fill(rd, sizeof(rd), 500 + i);
		CHECK(ts[i].res == 0 && memcmp(rd, bufs[i], sizeof(rd)) == 0,
		      "read %u after restart: %d / data", i, ts[i].res);
	}
	tio_init(&t, BLK_IO_FLUSH, 0, NULL, 0);
	CHECK(one(s, &t) == 0, "flush after restarts: %d", t.res);
	blk_storage_close(s);
out:
	stop_nbdkit(SIGTERM);
	printf("ok   server restart: I/O held and re-issued\n");
}

/* Hold time 700 ms (SPLITPV_NBD_HOLD_MS): held I/O fails with EIO, then fast fail. */
static void hold_time_expires(void)
{
	const char *args[] = { "memory", "size=8M", NULL };
	struct blk_storage *s;
	static uint8_t buf[4096];
	struct tio t;
	struct timespec a, b;
	double el;

	setenv("SPLITPV_NBD_HOLD_MS", "700", 1);
	CHECK(start_nbdkit(args) == 0, "nbdkit memory");
	s = open_nbd(false);
	unsetenv("SPLITPV_NBD_HOLD_MS");
	if (!s)
		goto out;
	stop_nbdkit(SIGKILL);
	clock_gettime(CLOCK_MONOTONIC, &a);
	tio_init(&t, BLK_IO_READ, 0, buf, sizeof(buf));
	CHECK(one(s, &t) == -EIO, "held read fails with EIO: %d", t.res);
	clock_gettime(CLOCK_MONOTONIC, &b);
	el = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	CHECK(el > 0.5 && el < 3.0, "failed after the hold time (%.2f s)", el);
	tio_init(&t, BLK_IO_READ, 0, buf, sizeof(buf));
	clock_gettime(CLOCK_MONOTONIC, &a);
	CHECK(one(s, &t) == -EIO, "new I/O fails at once while still away: %d", t.res);
	clock_gettime(CLOCK_MONOTONIC, &b);
	el = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	CHECK(el < 0.3, "fast failure (%.2f s)", el);
	/* Back: served again. */
	CHECK(start_nbdkit(args) == 0, "nbdkit memory restarted");
	run_for(2.5); /* the backoff is at most 2 s */
	tio_init(&t, BLK_IO_READ, 0, buf, sizeof(buf));
	CHECK(one(s, &t) == 0, "served again after the server returned: %d", t.res);
	blk_storage_close(s);
out:
	stop_nbdkit(SIGTERM);
	printf("ok   hold time: EIO after it, service after the server returns\n");
}

static void dead_server_refused(void)
{
	struct blk_storage *s = NULL;
	struct timespec a, b;
	int rc;

	unlink(sock);
	clock_gettime(CLOCK_MONOTONIC, &a);
	rc = blk_storage_open(&s, uri, NULL, loop);
	clock_gettime(CLOCK_MONOTONIC, &b);
	CHECK(rc < 0 && !s, "open without a server fails (%d)", rc);
	CHECK(b.tv_sec - a.tv_sec < 6, "and quickly");
	rc = blk_storage_open(&s, "nbd://", NULL, loop);
	CHECK(rc < 0 && !s, "malformed URI refused (%d)", rc);
	printf("ok   no server / bad URI refused at open\n");
}

int main(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	signal(SIGPIPE, SIG_IGN);
	if (system("nbdkit --version >/dev/null 2>&1") != 0) {
		printf("SKIP: nbdkit is not installed (apt-get install nbdkit)\n");
		return 77;
	}
	snprintf(dir, sizeof(dir), "%s/nbd-storage-XXXXXX", tmp);
	if (!mkdtemp(dir))
		return 1;
	snprintf(sock, sizeof(sock), "%s/nbd.sock", dir);
	snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
	loop = ev_loop_new(EVFLAG_AUTO);

	info_and_basic_io();
	block_sizes_and_readonly();
	restart_holds_and_reissues();
	hold_time_expires();
	dead_server_refused();

	ev_loop_destroy(loop);
	{
		char cmd[400];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		(void)system(cmd);
	}
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
