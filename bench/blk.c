/*
 * bench/blk — the block backend measured end to end on the frontend shim: a private
 * splitpv-shim, splitpvd spawning one splitpv-blkback per disk, the toolstack replay
 * attaching disks, and the userspace blkfront in this process as the guest. Each
 * comparison runs its two sides A B A B ... for a fixed time per run and prints the
 * medians and their ratio, plus the CPU time of the backend worker (from
 * /proc/<pid>/task/<tid>/schedstat), of this process (the frontend) and of the shim.
 * Baselines: raw io_uring on the same tmpfs file at the same depth.
 *
 *   build/default/bench/blk [-t seconds-per-run] [-r rounds] [-s] [-o only-name]
 *     defaults: 0.5 s, 5 rounds (about 45 s in all); -s: 0.15 s x 3 (smoke)
 */
#include "frontend-shim/blkfront.h"
#include "frontend-shim/guest.h"
#include "frontend-shim/toolstack.h"
#include "ring/ring.h"
#include "bench/bench.h"
#include "tests/integration/shim_harness.h"

#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <liburing.h>
#include <sys/stat.h>
#include <time.h>

#define DOMID 1
#define FILE_BYTES (256ull << 20)
#define MAX_ROUNDS BENCH_MAX_ROUNDS
#define MAX_QD 128u

static struct bench_opts opt;

static struct shim_harness shim;
static pid_t splitpvd = -1;
static struct shim_ts *ts;
static struct shim_guest *guest;
static char file_path[64] = "/dev/shm/splitpv-bench-blk-XXXXXX";
static char null_script[PATH_MAX];
static char worker_log[PATH_MAX];

static double self_cpu(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/*
 * The splitpv-blkback process serving backend path be: a child of our splitpvd. The
 * supervisor runs one worker per guest and hands it later devices over a control
 * channel, so the path may not be on its command line: prefer a worker that names it,
 * else the most recently started live one. While one device is measured the guest's
 * other devices are idle, so the process's CPU time is that device's.
 */
static pid_t find_worker(const char *be)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t named = -1, newest = -1;
	unsigned long long newest_start = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		char p[300], buf[4096], state;
		unsigned long long start;
		bool is_blkback;
		int ppid;
		size_t n;
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(p, sizeof(p), "/proc/%s/stat", e->d_name);
		f = fopen(p, "r");
		if (!f)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		/* "pid (comm) S ppid ... starttime(22)": comm may hold spaces, so parse after
		 * the last ')'. */
		if (!strrchr(buf, ')') ||
		    sscanf(strrchr(buf, ')') + 1,
			   " %c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
			   "%*d %llu",
			   &state, &ppid, &start) != 3 ||
		    ppid != splitpvd || state == 'Z')
			continue;
		snprintf(p, sizeof(p), "/proc/%s/cmdline", e->d_name);
		f = fopen(p, "r");
		if (!f)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		is_blkback = strstr(buf, "splitpv-blkback") != NULL;
		if (!is_blkback)
			continue;
		/* NUL-separated arguments. */
		for (size_t i = 0; i < n;) {
			const char *arg = buf + i;

			if (strcmp(arg, be) == 0)
				named = (pid_t)atoi(e->d_name);
			i += strlen(arg) + 1;
		}
		if (newest < 0 || start >= newest_start) {
			newest = (pid_t)atoi(e->d_name);
			newest_start = start;
		}
	}
	closedir(d);
	return named > 0 ? named : newest;
}

/* ---- workloads ---- */

struct workload {
	const char *name;
	enum blkfront_op op;  /* BF_READ or BF_WRITE */
	bool sequential;
	size_t bs;            /* bytes per I/O */
	unsigned int qd;      /* I/Os in flight */
	uint64_t span;        /* bytes of the disk used */
	bool verify;          /* the file holds the block-number pattern */
};

struct result {
	double wall;
	uint64_t ios;
	unsigned int stalls;  /* waits of >= 0.5 s with requests in flight */
	double fe_cpu, be_cpu, shim_cpu;
};

static uint64_t rng_state = 88172645463325252ull;
static uint64_t seq_cursor;

static uint64_t next_offset(const struct workload *w)
{
	uint64_t off;

	if (w->sequential) {
		off = seq_cursor;
		seq_cursor += w->bs;
		if (seq_cursor + w->bs > w->span)
			seq_cursor = 0;
		return off;
	}
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state % (w->span / w->bs) * w->bs;
}

/* Every 4 KiB block of the file starts with its block number (written by the
 * benchmark itself, for reads and writes alike), so each read checks one word a page. */
static void stamp(uint8_t *buf, size_t len, uint64_t off)
{
	for (size_t k = 0; k < len; k += 4096) {
		uint64_t blk = (off + k) / 4096;

		memcpy(buf + k, &blk, sizeof(blk));
	}
}

static int check_stamp(const uint8_t *buf, size_t len, uint64_t off)
{
	for (size_t k = 0; k < len; k += 4096) {
		uint64_t blk;

		memcpy(&blk, buf + k, sizeof(blk));
		if (blk != (off + k) / 4096) {
			fprintf(stderr, "bench/blk: wrong data at byte %llu: block %llu\n",
				(unsigned long long)(off + k), (unsigned long long)blk);
			return -EIO;
		}
	}
	return 0;
}

/* ---- A: raw io_uring on the file ---- */

static int run_raw(const struct workload *w, struct result *r)
{
	struct io_uring ring;
	struct iovec iov[MAX_QD];
	uint64_t offs[MAX_QD];
	unsigned int inflight = 0;
	double t0, c0, deadline;
	int rc, fd = open(file_path, (w->op == BF_WRITE ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	uint8_t *mem;

	if (fd < 0)
		return -errno;
	mem = aligned_alloc(4096, w->bs * w->qd);
	rc = mem ? io_uring_queue_init(w->qd, &ring, 0) : -ENOMEM;
	if (rc) {
		free(mem);
		close(fd);
		return rc;
	}
	memset(r, 0, sizeof(*r));
	t0 = bench_now();
	c0 = self_cpu();
	deadline = t0 + opt.run_seconds;
	for (unsigned int i = 0; i < w->qd; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		iov[i] = (struct iovec){ mem + i * w->bs, w->bs };
		offs[i] = next_offset(w);
		if (w->op == BF_WRITE) {
			stamp(iov[i].iov_base, w->bs, offs[i]);
			io_uring_prep_writev(sqe, fd, &iov[i], 1, offs[i]);
		} else {
			io_uring_prep_readv(sqe, fd, &iov[i], 1, offs[i]);
		}
		io_uring_sqe_set_data(sqe, (void *)(uintptr_t)i);
		inflight++;
	}
	io_uring_submit(&ring);
	while (inflight) {
		struct io_uring_cqe *cqe;
		unsigned int head, n = 0;
		bool stop = bench_now() >= deadline;

		rc = io_uring_wait_cqe(&ring, &cqe);
		if (rc)
			break;
		io_uring_for_each_cqe(&ring, head, cqe) {
			unsigned int i = (unsigned int)(uintptr_t)io_uring_cqe_get_data(cqe);

			n++;
			inflight--;
			if (cqe->res != (int)w->bs) {
				fprintf(stderr, "bench/blk: raw I/O: %d\n", cqe->res);
				rc = -EIO;
				continue;
			}
			if (w->op == BF_READ && w->verify && check_stamp(iov[i].iov_base, w->bs, offs[i]))
				rc = -EIO;
			r->ios++;
			if (!stop && !rc) {
				struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

				offs[i] = next_offset(w);
				if (w->op == BF_WRITE) {
					stamp(iov[i].iov_base, w->bs, offs[i]);
					io_uring_prep_writev(sqe, fd, &iov[i], 1, offs[i]);
				} else {
					io_uring_prep_readv(sqe, fd, &iov[i], 1, offs[i]);
				}
				io_uring_sqe_set_data(sqe, (void *)(uintptr_t)i);
				inflight++;
			}
		}
		io_uring_cq_advance(&ring, n);
		if (rc)
			break;
		io_uring_submit(&ring);
	}
	r->wall = bench_now() - t0;
	r->fe_cpu = self_cpu() - c0;
	io_uring_queue_exit(&ring);
	close(fd);
	free(mem);
	return rc;
}

/* ---- B: splitpv through the shim ---- */

struct dev {
	const char *label;
	struct blkfront *bf;
	unsigned int devid;
	pid_t worker;
	bool attached;
};

static void print_worker_stats(const struct dev *d);

/* One I/O of the workload; split in chunks when it is larger than a request. */
struct job {
	struct dev *d;
	const struct workload *w;
	uint8_t *buf;
	uint64_t off;
	unsigned int queue;   /* the blkfront queue this job uses */
	unsigned int nchunks, next, pending;
	int status;
	struct blkfront_io chunk[32];
	struct job *next_ready;
};

struct run_state {
	struct result *r;
	struct job *ready, *ready_tail;
	bool stop;
	int rc;
};

static struct run_state *cur;

static void ready_push(struct job *j)
{
	j->next_ready = NULL;
	if (cur->ready_tail)
		cur->ready_tail->next_ready = j;
	else
		cur->ready = j;
	cur->ready_tail = j;
}

static void job_arm(struct job *j)
{
	const struct workload *w = j->w;
	size_t max = blkfront_max_io(j->d->bf);

	j->off = next_offset(w);
	j->nchunks = (unsigned int)((w->bs + max - 1) / max);
	assert(j->nchunks <= sizeof(j->chunk) / sizeof(j->chunk[0]));
	j->next = 0;
	j->pending = 0;
	j->status = BLKIF_RSP_OKAY;
	if (w->op == BF_WRITE)
		stamp(j->buf, w->bs, j->off);
	for (unsigned int c = 0; c < j->nchunks; c++) {
		size_t at = (size_t)c * max, len = w->bs - at > max ? max : w->bs - at;

		j->chunk[c] = (struct blkfront_io){ .op = w->op, .sector = (j->off + at) / 512,
						    .buf = j->buf + at, .len = len,
						    .queue = j->queue,
						    .opaque = j };
	}
}

static void chunk_done(struct blkfront_io *io)
{
	struct job *j = io->opaque;

	if (io->status != BLKIF_RSP_OKAY)
		j->status = io->status;
	if (--j->pending || j->next < j->nchunks)
		return;
	if (j->status != BLKIF_RSP_OKAY) {
		fprintf(stderr, "bench/blk: %s: I/O at %llu: status %d\n", j->d->label,
			(unsigned long long)j->off, j->status);
		cur->rc = -EIO;
		return;
	}
	if (j->w->op == BF_READ && j->w->verify && check_stamp(j->buf, j->w->bs, j->off)) {
		cur->rc = -EIO;
		return;
	}
	cur->r->ios++;
	if (!cur->stop) {
		job_arm(j);
		ready_push(j);
	}
}

/* Submit what is ready; a job whose chunks don't all fit waits at the head. */
static void submit_ready(struct dev *d)
{
	while (cur->ready) {
		struct job *j = cur->ready;

		while (j->next < j->nchunks) {
			struct blkfront_io *io = &j->chunk[j->next];
			int rc;

			io->done = chunk_done;
			rc = blkfront_submit(d->bf, io);
			if (rc == -EAGAIN)
				goto out;
			if (rc) {
				fprintf(stderr, "bench/blk: submit: %s\n", strerror(-rc));
				cur->rc = rc;
				goto out;
			}
			j->next++;
			j->pending++;
		}
		cur->ready = j->next_ready;
		if (!cur->ready)
			cur->ready_tail = NULL;
	}
out:
	blkfront_kick(d->bf);
}

/* Nothing came back for a long time although requests are in flight: show where each
 * ring stands (a response published without a notification, or requests the backend
 * has not looked at). */
static void note_stall(struct dev *d, struct result *r, double waited)
{
	const struct blkfront_info *in = blkfront_info(d->bf);

	r->stalls++;
	for (unsigned int q = 0; q < in->queues; q++) {
		const volatile struct ring_sring_hdr *h = blkfront_raw_sring(d->bf, q);

		fprintf(stderr,
			"bench/blk: %s: stall of %.0f ms, %u in flight; queue %u: req_prod %u "
			"req_event %u rsp_prod %u rsp_event %u\n",
			d->label, waited * 1e3, blkfront_inflight(d->bf), q, h->req_prod,
			h->req_event, h->rsp_prod, h->rsp_event);
	}
}

static int run_splitpv(struct dev *d, const struct workload *w, struct result *r)
{
	struct job *jobs = calloc(w->qd, sizeof(*jobs));
	struct run_state st = { .r = r };
	unsigned int nq = blkfront_info(d->bf)->queues;
	double t0, c0, b0, s0, deadline, last;

	if (!jobs)
		return -ENOMEM;
	memset(r, 0, sizeof(*r));
	cur = &st;
	for (unsigned int i = 0; i < w->qd; i++) {
		jobs[i].d = d;
		jobs[i].w = w;
		jobs[i].queue = i % nq; /* spread jobs over the queues */
		jobs[i].buf = aligned_alloc(4096, w->bs);
		if (!jobs[i].buf) {
			st.rc = -ENOMEM;
			goto out;
		}
	}
	t0 = bench_now();
	c0 = self_cpu();
	b0 = bench_proc_cpu(d->worker);
	s0 = bench_proc_cpu(shim.pid);
	deadline = t0 + opt.run_seconds;
	for (unsigned int i = 0; i < w->qd; i++) {
		job_arm(&jobs[i]);
		ready_push(&jobs[i]);
	}
	submit_ready(d);
	last = t0;
	while (!st.rc && (blkfront_inflight(d->bf) || st.ready)) {
		double t_poll = bench_now();
		int n = blkfront_poll(d->bf, 1000);
		double t = bench_now();

		if (n < 0) {
			st.rc = n;
			break;
		}
		/* A wakeup may bring no response (a notification for nothing new). */
		if (n == 0 && t - t_poll >= 0.5)
			note_stall(d, r, t - t_poll);
		if (n > 0)
			last = t;
		else if (t - last > 5) {
			fprintf(stderr, "bench/blk: %s: no response for 5 s\n", d->label);
			st.rc = -ETIMEDOUT;
			break;
		}
		st.stop = t >= deadline;
		submit_ready(d);
	}
	r->wall = bench_now() - t0;
	r->fe_cpu = self_cpu() - c0;
	r->be_cpu = bench_proc_cpu(d->worker) - b0;
	r->shim_cpu = bench_proc_cpu(shim.pid) - s0;
	/* On an error, let what is in flight come back before the buffers go. */
	for (int i = 0; i < 50 && blkfront_inflight(d->bf); i++)
		blkfront_poll(d->bf, 100);
out:
	for (unsigned int i = 0; i < w->qd; i++)
		free(jobs[i].buf);
	free(jobs);
	cur = NULL;
	return st.rc;
}

/* ---- devices ---- */

static int dev_open(struct dev *d, const char *label, const char *vdev, const char *target,
		    const char *script, const struct blkfront_opts *o)
{
	struct shim_disk_spec spec;
	char s[PATH_MAX * 2 + 64], err[256], be[128];
	int rc;

	memset(d, 0, sizeof(*d));
	d->label = label;
	d->worker = -1;
	snprintf(s, sizeof(s), "vdev=%s,access=rw%s%s,target=%s", vdev, script ? ",script=" : "",
		 script ? script : "", target);
	rc = shim_disk_spec_parse(s, &spec, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "bench/blk: disk spec: %s\n", err);
		return rc;
	}
	rc = shim_ts_disk_attach(ts, DOMID, &spec, &d->devid);
	if (rc) {
		fprintf(stderr, "bench/blk: attach %s: %s\n", s, strerror(-rc));
		return rc;
	}
	d->attached = true;
	rc = blkfront_open(&d->bf, guest, d->devid, o);
	if (rc) {
		fprintf(stderr, "bench/blk: blkfront_open %s: %s\n", vdev, strerror(-rc));
		return rc;
	}
	snprintf(be, sizeof(be), "/local/domain/0/backend/vbd/%u/%u", DOMID, d->devid);
	d->worker = find_worker(be);
	if (d->worker < 0)
		fprintf(stderr, "bench/blk: can't find the worker of %s: no backend CPU figures\n",
			be);
	return 0;
}

static void dev_close(struct dev *d)
{
	blkfront_close(d->bf);
	d->bf = NULL;
	if (d->attached)
		shim_ts_device_detach(ts, DOMID, SHIM_TS_VBD, d->devid);
	d->attached = false;
}

/* ---- comparisons ---- */

/* A side: raw (d == NULL) or a splitpv device. */
struct side {
	const char *label;
	struct dev *d;
	const struct workload *w;
	double rate[MAX_ROUNDS], be_util[MAX_ROUNDS], fe_util[MAX_ROUNDS],
		shim_util[MAX_ROUNDS], be_us[MAX_ROUNDS], fe_us[MAX_ROUNDS];
	unsigned int stalls;
};

static int run_side(struct side *s, unsigned int round)
{
	struct result r;
	int rc = s->d ? run_splitpv(s->d, s->w, &r) : run_raw(s->w, &r);

	if (rc) {
		fprintf(stderr, "bench/blk: %s: %s\n", s->label, strerror(-rc));
		return rc;
	}
	s->stalls += r.stalls;
	s->rate[round] = (double)r.ios / r.wall;
	s->be_util[round] = r.be_cpu / r.wall;
	s->fe_util[round] = r.fe_cpu / r.wall;
	s->shim_util[round] = r.shim_cpu / r.wall;
	s->be_us[round] = r.ios ? r.be_cpu * 1e6 / (double)r.ios : 0;
	s->fe_us[round] = r.ios ? r.fe_cpu * 1e6 / (double)r.ios : 0;
	return 0;
}

static void print_side(struct side *s, bool bandwidth)
{
	double rate = bench_median(s->rate, opt.rounds);

	if (bandwidth)
		printf("  %-34s %9.0f MiB/s", s->label, rate * (double)s->w->bs / (1 << 20));
	else
		printf("  %-34s %9.0f IOPS ", s->label, rate);
	printf("  %s CPU %3.0f%% (%.2f us/IO)", s->d ? "frontend" : "process ",
	       100 * bench_median(s->fe_util, opt.rounds), bench_median(s->fe_us, opt.rounds));
	if (s->d)
		printf("  backend CPU %3.0f%% (%.2f us/IO)  shim %2.0f%%",
		       100 * bench_median(s->be_util, opt.rounds), bench_median(s->be_us, opt.rounds),
		       100 * bench_median(s->shim_util, opt.rounds));
	if (s->stalls)
		printf("  STALLS %u", s->stalls);
	printf("\n");
}

/* Run A and B alternately; print both and B/A. Returns B/A (or -1 on error). */
static double compare(const char *title, struct side *a, struct side *b, bool bandwidth,
		      const char *target)
{
	double ra, rb;

	printf("%s\n", title);
	fflush(stdout);
	for (unsigned int i = 0; i < opt.rounds; i++) {
		seq_cursor = 0;
		if (run_side(a, i))
			return -1;
		seq_cursor = 0;
		if (run_side(b, i))
			return -1;
	}
	ra = bench_median(a->rate, opt.rounds);
	rb = bench_median(b->rate, opt.rounds);
	print_side(a, bandwidth);
	print_side(b, bandwidth);
	printf("  ratio %s / %s: %.2f%s%s\n", b->label, a->label, rb / ra,
	       target ? "   target " : "", target ? target : "");
	/* On a loaded machine throughput depends on what else runs; CPU time per I/O
	 * much less. Raw io_uring's whole cost is this process's CPU time. */
	if (!a->d && b->d)
		printf("  CPU per I/O: raw %.2f us, splitpv backend %.2f us (raw/backend %.2f), "
		       "blkfront %.2f us\n",
		       bench_median(a->fe_us, opt.rounds), bench_median(b->be_us, opt.rounds),
		       bench_median(a->fe_us, opt.rounds) / bench_median(b->be_us, opt.rounds),
		       bench_median(b->fe_us, opt.rounds));
	else if (a->d && b->d)
		printf("  backend CPU per I/O B/A: %.2f\n",
		       bench_median(b->be_us, opt.rounds) / bench_median(a->be_us, opt.rounds));
	fflush(stdout);
	fflush(stdout);
	return rb / ra;
}

static void opts_base(struct blkfront_opts *o, unsigned int queues, unsigned int order,
		      unsigned int indirect, bool persistent, unsigned int inflight)
{
	blkfront_opts_default(o);
	o->queues = queues;
	o->ring_order = order;
	o->max_indirect = indirect;
	o->persistent = persistent;
	o->max_inflight = inflight;
}

/* raw io_uring vs one splitpv device on the file, for workload w. */
static int bench_vs_raw(const char *title, const struct workload *w,
			const struct blkfront_opts *o, const char *target)
{
	struct dev d;
	struct side a = { .label = "raw io_uring", .w = w };
	struct side b = { .label = "splitpv (shim, 1 queue)", .d = &d, .w = w };
	int rc = dev_open(&d, "splitpv", "xvda", file_path, NULL, o);

	if (rc == 0)
		rc = compare(title, &a, &b, w->bs >= (64u << 10), target) < 0 ? -EIO : 0;
	dev_close(&d);
	print_worker_stats(&d);
	printf("\n");
	return rc;
}

/* Two splitpv devices, A and B, on the same target. */
static int bench_pair(const char *title, const struct workload *wa, const struct workload *wb,
		      const char *la, const struct blkfront_opts *oa, const char *lb,
		      const struct blkfront_opts *ob, const char *target, const char *script)
{
	struct dev da, db;
	struct side a = { .label = la, .d = &da, .w = wa };
	struct side b = { .label = lb, .d = &db, .w = wb };
	int rc = dev_open(&da, la, "xvda", target, script, oa);

	rc = rc ?: dev_open(&db, lb, "xvdb", target, script, ob);
	if (rc == 0)
		rc = compare(title, &a, &b, wa->bs >= (64u << 10), NULL) < 0 ? -EIO : 0;
	dev_close(&db);
	dev_close(&da);
	print_worker_stats(&da);
	print_worker_stats(&db);
	printf("\n");
	return rc;
}

static int run_all(void)
{
	struct blkfront_opts o, o2;
	int rc = 0;

	/* 1. 4 KiB random read, QD32, tmpfs: splitpv vs raw. Ring order 0 has exactly 32
	 * slots, Linux blkfront's default. */
	if (bench_selected(&opt, "randread4k")) {
		static const struct workload w = { "randread4k", BF_READ, false, 4096, 32,
						   FILE_BYTES, true };

		opts_base(&o, 1, 0, 32, true, 32);
		rc = rc ?: bench_vs_raw("[randread4k] 4 KiB random read, QD32, file on tmpfs "
					"(persistent grants, ring order 0)",
					&w, &o, ">= 0.6");
	}
	/* 2. 1 MiB sequential read and write: one indirect request per MiB (256 segments),
	 * QD4 (4 x 256 persistent grants fit the backend's 1056-grant pool). */
	opts_base(&o, 1, 0, 256, true, 4);
	if (bench_selected(&opt, "seqread1m")) {
		static const struct workload w = { "seqread1m", BF_READ, true, 1u << 20, 4,
						   FILE_BYTES, true };

		rc = rc ?: bench_vs_raw("[seqread1m] 1 MiB sequential read, QD4, file on tmpfs "
					"(indirect 256, persistent)",
					&w, &o, ">= 0.8");
	}
	if (bench_selected(&opt, "seqwrite1m")) {
		static const struct workload w = { "seqwrite1m", BF_WRITE, true, 1u << 20, 4,
						   FILE_BYTES, true };

		rc = rc ?: bench_vs_raw("[seqwrite1m] 1 MiB sequential write, QD4, file on tmpfs "
					"(indirect 256, persistent)",
					&w, &o, ">= 0.8");
	}
	/* 3. null driver: the backend's own cost; 1 queue vs 2 queues, QD32 per queue. */
	if (bench_selected(&opt, "null")) {
		static const struct workload w1 = { "null-1q", BF_READ, false, 4096, 32,
						    1ull << 30, false };
		static const struct workload w2 = { "null-2q", BF_READ, false, 4096, 64,
						    1ull << 30, false };

		opts_base(&o, 1, 0, 32, true, 32);
		opts_base(&o2, 2, 0, 32, true, 32);
		rc = rc ?: bench_pair("[null] null:1G, 4 KiB random read, QD32 per queue "
				      "(persistent): 1 queue vs 2 queues",
				      &w1, &w2, "null, 1 queue, QD32", &o, "null, 2 queues, QD64",
				      &o2, "null:1G", null_script);
	}
	/* 4. indirect vs no indirect at 1 MiB: without indirect each MiB is 24 requests of
	 * <= 11 segments; ring order 2 (128 slots) so both keep 4 MiB in flight. */
	if (bench_selected(&opt, "indirect")) {
		static const struct workload w = { "indirect", BF_READ, true, 1u << 20, 4,
						   FILE_BYTES, true };

		opts_base(&o, 1, 2, 256, true, 4);
		opts_base(&o2, 1, 2, 0, true, 96);
		rc = rc ?: bench_pair("[indirect] 1 MiB sequential read, QD4, tmpfs, ring order 2 "
				      "(persistent): indirect vs none",
				      &w, &w, "indirect (256 segments)", &o,
				      "no indirect (24 x 11 segments)", &o2, file_path, NULL);
	}
	/* 5. persistent grants vs grant copy at 4 KiB and 64 KiB (random read, QD32). */
	if (bench_selected(&opt, "persistent4k")) {
		static const struct workload w = { "persistent4k", BF_READ, false, 4096, 32,
						   FILE_BYTES, true };

		opts_base(&o, 1, 0, 32, true, 32);
		opts_base(&o2, 1, 0, 32, false, 32);
		rc = rc ?: bench_pair("[persistent4k] 4 KiB random read, QD32, tmpfs: "
				      "persistent grants vs grant copy",
				      &w, &w, "persistent", &o, "grant copy", &o2, file_path, NULL);
	}
	if (bench_selected(&opt, "persistent64k")) {
		static const struct workload w = { "persistent64k", BF_READ, false, 64u << 10, 32,
						   FILE_BYTES, true };

		opts_base(&o, 1, 0, 16, true, 32);
		opts_base(&o2, 1, 0, 16, false, 32);
		rc = rc ?: bench_pair("[persistent64k] 64 KiB random read, QD32, tmpfs (indirect "
				      "16): persistent grants vs grant copy",
				      &w, &w, "persistent", &o, "grant copy", &o2, file_path, NULL);
	}
	return rc;
}

/* ---- setup ---- */

static int make_file(void)
{
	int fd = mkstemp(file_path);
	uint8_t *buf = malloc(1u << 20);
	int rc = 0;

	if (fd < 0 || !buf) {
		rc = fd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	memset(buf, 0xa5, 1u << 20);
	for (uint64_t off = 0; off < FILE_BYTES && !rc; off += 1u << 20) {
		stamp(buf, 1u << 20, off);
		if (pwrite(fd, buf, 1u << 20, (off_t)off) != (ssize_t)(1u << 20))
			rc = -EIO;
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

/* The null driver has no file for the default "block" hotplug script to check. */
static int make_null_script(void)
{
	FILE *f;

	snprintf(null_script, sizeof(null_script), "%s/null-hotplug", shim.rundir);
	f = fopen(null_script, "w");
	if (!f)
		return -errno;
	fprintf(f, "#!/bin/sh\n[ \"$1\" = add ] && xenstore-write \"$XENBUS_PATH/hotplug-status\" "
		   "connected\nexit 0\n");
	fclose(f);
	return chmod(null_script, 0755) ? -errno : 0;
}

static int start_splitpvd(void)
{
	static const char *const opts[] = { "--max-queues", "2", NULL };

	splitpvd = shim_harness_splitpvd(opts, worker_log);
	return splitpvd < 0 ? (int)splitpvd : 0;
}

/* The counters the worker of devid logged when its device went away (the last such
 * line: devids are reused by later comparisons). */
static void print_worker_stats(const struct dev *d)
{
	char key[64], line[1024], last[1024] = "";
	unsigned long long rd = 0, wr = 0, fl, ba, di, ind, rs, ws, err = 0, eop, oo = 0, nin = 0,
			   nout = 0;
	const char *p;
	FILE *f = fopen(worker_log, "r");

	if (!f)
		return;
	snprintf(key, sizeof(key), "vbd/%u/%u: stats: ", DOMID, d->devid);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, key))
			snprintf(last, sizeof(last), "%s", line);
	fclose(f);
	p = strstr(last, key);
	if (!p || sscanf(p + strlen(key),
			 "rd_req %llu wr_req %llu flush %llu barrier %llu discard %llu indirect "
			 "%llu rd_sect %llu wr_sect %llu errors %llu eopnotsupp %llu oo_req %llu "
			 "notify in/out %llu/%llu",
			 &rd, &wr, &fl, &ba, &di, &ind, &rs, &ws, &err, &eop, &oo, &nin,
			 &nout) != 13 || rd + wr == 0)
		return;
	printf("  %s: backend saw %llu requests, %.3f notifications in and %.3f out per "
	       "request, %llu out-of-resource stalls, %llu errors\n",
	       d->label, rd + wr, (double)nin / (double)(rd + wr), (double)nout / (double)(rd + wr),
	       oo, err);
}

int main(int argc, char **argv)
{
	struct shim_ts_config cfg = { 0 };
	int rc;

	rc = bench_parse_opts(argc, argv, "bench/blk", "randread4k|seqread1m|seqwrite1m|null|indirect|persistent", &opt);
	if (rc >= 0)
		return rc;
	signal(SIGPIPE, SIG_IGN);
	rc = shim_harness_start(&shim, argv[0]);
	if (rc) {
		fprintf(stderr, "bench/blk: can't start splitpv-shim: %s\n", strerror(-rc));
		return 1;
	}
	snprintf(worker_log, sizeof(worker_log), "%s/splitpvd.log", shim.rundir);
	rc = make_file();
	rc = rc ?: make_null_script();
	rc = rc ?: start_splitpvd();
	if (rc) {
		fprintf(stderr, "bench/blk: setup: %s\n", strerror(-rc));
		goto out;
	}
	cfg.rundir = shim.rundir;
	cfg.script_dir = "tools/hotplug";
	rc = shim_ts_open(&ts, &cfg);
	rc = rc ?: shim_ts_domain_create(ts, DOMID, NULL);
	rc = rc ?: shim_guest_create(&guest, shim.rundir, DOMID, 64 * 1024, 65536);
	if (rc) {
		fprintf(stderr, "bench/blk: toolstack/guest: %s\n", strerror(-rc));
		goto out;
	}
	bench_print_machine("bench/blk", &opt);
	rc = run_all();
out:
	shim_guest_destroy(guest);
	shim_ts_close(ts);
	if (splitpvd > 0) {
		kill(splitpvd, SIGTERM);
		waitpid(splitpvd, NULL, 0);
	}
	unlink(null_script);
	unlink(worker_log);
	unlink(file_path);
	shim_harness_stop(&shim);
	return rc ? 1 : 0;
}
