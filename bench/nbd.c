/*
 * bench/nbd — the nbd storage driver end to end on the frontend shim against
 * `nbdkit memory` on a UNIX socket: a guest (userspace blkfront in this process) reading
 * and writing through splitpv-blkback, versus a plain libnbd client loop talking to the
 * same server at the same depth and size, in the same run. Rounds alternate A B A B ...;
 * medians and their ratio (splitpv / libnbd) are printed.
 *
 *   build/default/bench/nbd [-t seconds-per-run] [-r rounds]   (defaults 1 s, 5 rounds)
 */
#include "frontend-shim/blkfront.h"
#include "frontend-shim/guest.h"
#include "frontend-shim/toolstack.h"
#include "tests/integration/shim_harness.h"

#include <getopt.h>
#include <libnbd.h>
#include <sys/stat.h>
#include <time.h>

#define DOMID 1
#define DISK_BYTES (1ull << 30)
#define MAX_QD 64u
#define MAX_ROUNDS 21

static struct shim_harness shim;
static pid_t splitpvd = -1, server = -1;
static char sock[300], script[300], uri[400];
static double run_s = 1.0;
static int rounds = 5;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct load {
	const char *name;
	size_t bs;
	unsigned qd;
	bool write;
};

/* ---- baseline: libnbd client loop ---- */

struct nslot {
	unsigned long *done;
	bool busy;
};

static int nbd_done_cb(void *user_data, int *error)
{
	struct nslot *s = user_data;

	s->busy = false;
	(*s->done)++;
	return 1;
}

/* I/O per second, or -1. */
static double run_libnbd(struct nbd_handle *h, const struct load *l)
{
	static char *bufs[MAX_QD];
	struct nslot slots[MAX_QD];
	unsigned long done = 0;
	uint64_t seed = 88172645463325252ull;
	double t0, t;

	for (unsigned i = 0; i < l->qd; i++) {
		if (!bufs[i] && posix_memalign((void **)&bufs[i], 4096, 1 << 20))
			return -1;
		memset(bufs[i], 0x5a, l->bs);
		slots[i] = (struct nslot){ &done, false };
	}
	t0 = now();
	do {
		for (unsigned i = 0; i < l->qd; i++) {
			nbd_completion_callback cb = { .callback = nbd_done_cb, .user_data = &slots[i] };
			uint64_t off = rnd(&seed) % (DISK_BYTES / l->bs) * l->bs;
			int64_t c;

			if (slots[i].busy)
				continue;
			c = l->write ? nbd_aio_pwrite(h, bufs[i], l->bs, off, cb, 0)
				     : nbd_aio_pread(h, bufs[i], l->bs, off, cb, 0);
			if (c < 0)
				return -1;
			slots[i].busy = true;
		}
		if (nbd_poll(h, 1000) < 0)
			return -1;
		t = now();
	} while (t - t0 < run_s);
	while (nbd_aio_in_flight(h) > 0)
		if (nbd_poll(h, 1000) < 0)
			return -1;
	return (double)done / (t - t0);
}

/* ---- splitpv: blkfront through the shim ---- */

struct bslot {
	struct blkfront_io io;
	unsigned long *done;
};

static void bf_done(struct blkfront_io *io)
{
	struct bslot *s = io->opaque;

	(*s->done)++;
}

static double run_splitpv(struct blkfront *bf, const struct load *l)
{
	static char *bufs[MAX_QD];
	struct bslot slots[MAX_QD];
	unsigned long done = 0, errors = 0;
	uint64_t seed = 88172645463325252ull;
	double t0, t;

	for (unsigned i = 0; i < l->qd; i++) {
		if (!bufs[i] && posix_memalign((void **)&bufs[i], 4096, 1 << 20))
			return -1;
		memset(bufs[i], 0x5a, l->bs);
		slots[i].done = &done;
		slots[i].io.status = -100; /* idle */
	}
	t0 = now();
	do {
		for (unsigned i = 0; i < l->qd; i++) {
			struct bslot *s = &slots[i];

			if (s->io.status == 99)
				continue; /* in flight */
			if (s->io.status != -100 && s->io.status != BLKIF_RSP_OKAY)
				errors++;
			s->io = (struct blkfront_io){
				.op = l->write ? BF_WRITE : BF_READ,
				.sector = rnd(&seed) % (DISK_BYTES / l->bs) * l->bs / 512,
				.buf = bufs[i], .len = l->bs, .queue = i, .status = 99,
				.done = bf_done, .opaque = s };
			if (blkfront_submit(bf, &s->io) != 0)
				s->io.status = -100;
		}
		blkfront_kick(bf);
		blkfront_poll(bf, 1000);
		t = now();
	} while (t - t0 < run_s);
	for (int spins = 0; blkfront_inflight(bf) && spins < 100; spins++)
		blkfront_poll(bf, 100);
	if (errors)
		fprintf(stderr, "splitpv: %lu I/O errors\n", errors);
	return errors ? -1 : (double)done / (t - t0);
}

/* ---- setup ---- */

static int start_server(void)
{
	const char *argv[] = { "nbdkit", "-f", "-U", sock, "memory", "size=1G", NULL };

	server = fork();
	if (server < 0)
		return -errno;
	if (server == 0) {
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		if (access(sock, F_OK) == 0)
			return 0;
		if (waitpid(server, NULL, WNOHANG) == server) {
			server = -1;
			return -ENOENT;
		}
		usleep(10000);
	}
	return -ETIMEDOUT;
}

static int start_splitpvd(void)
{
	static const char *const opts[] = { "--max-queues", "4", NULL };

	splitpvd = shim_harness_splitpvd(opts, NULL);
	return splitpvd < 0 ? (int)splitpvd : 0;
}

static int write_script(void)
{
	FILE *f = fopen(script, "w");

	if (!f)
		return -errno;
	fprintf(f, "#!/bin/sh\n[ \"$1\" = add ] && xenstore-write \"$XENBUS_PATH/hotplug-status\" "
		   "connected\nexit 0\n");
	fclose(f);
	return chmod(script, 0755) < 0 ? -errno : 0;
}

int main(int argc, char **argv)
{
	static const struct load loads[] = {
		{ "4 KiB random read QD32", 4096, 32, false },
		{ "4 KiB random write QD32", 4096, 32, true },
		{ "1 MiB random read QD8", 1 << 20, 8, false },
		{ "1 MiB random write QD8", 1 << 20, 8, true },
	};
	struct shim_ts_config cfg = { 0 };
	struct shim_ts *ts = NULL;
	struct shim_guest *g = NULL;
	struct shim_disk_spec spec;
	struct blkfront_opts o;
	struct blkfront *bf = NULL;
	struct nbd_handle *h = NULL;
	unsigned int devid;
	char spec_str[800], err[256];
	int opt, rc, status = 1;

	while ((opt = getopt(argc, argv, "t:r:")) != -1) {
		if (opt == 't')
			run_s = atof(optarg);
		else if (opt == 'r')
			rounds = atoi(optarg);
	}
	if (rounds < 1 || rounds > MAX_ROUNDS || run_s <= 0) {
		fprintf(stderr, "usage: nbd [-t seconds] [-r rounds (1..%d)]\n", MAX_ROUNDS);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	rc = shim_harness_start(&shim, argv[0]);
	if (rc) {
		printf("SKIP: can't start splitpv-shim: %s\n", strerror(-rc));
		return 77;
	}
	snprintf(sock, sizeof(sock), "%s/nbd.sock", shim.rundir);
	snprintf(script, sizeof(script), "%s/netdisk", shim.rundir);
	snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
	if (start_server() != 0) {
		printf("SKIP: nbdkit not installed\n");
		status = 77;
		goto out;
	}
	if (write_script() || start_splitpvd())
		goto out;
	cfg.rundir = shim.rundir;
	cfg.script_dir = "tools/hotplug";
	if (shim_ts_open(&ts, &cfg) || shim_ts_domain_create(ts, DOMID, NULL) ||
	    shim_guest_create(&g, shim.rundir, DOMID, 256 * 1024, 65536)) {
		fprintf(stderr, "shim setup failed\n");
		goto out;
	}
	snprintf(spec_str, sizeof(spec_str), "vdev=xvda,access=rw,script=%s,target=%s", script,
		 uri);
	if (shim_disk_spec_parse(spec_str, &spec, err, sizeof(err)) ||
	    shim_ts_disk_attach(ts, DOMID, &spec, &devid)) {
		fprintf(stderr, "attach failed: %s\n", err);
		goto out;
	}
	blkfront_opts_default(&o);
	o.queues = 1;
	o.ring_order = 2;
	o.max_indirect = 256;
	o.persistent = true;
	o.max_inflight = 64;
	if (blkfront_open(&bf, g, devid, &o)) {
		fprintf(stderr, "blkfront_open failed\n");
		goto out;
	}
	h = nbd_create();
	if (!h || nbd_connect_uri(h, uri) < 0) {
		fprintf(stderr, "libnbd: %s\n", nbd_get_error());
		goto out;
	}
	printf("nbd over a UNIX socket to nbdkit memory (1 GiB); %d rounds x %.1f s, A/B "
	       "alternated, medians\n", rounds, run_s);
	printf("%-26s %14s %14s %8s\n", "load", "splitpv IOPS", "libnbd IOPS", "ratio");
	for (size_t li = 0; li < sizeof(loads) / sizeof(loads[0]); li++) {
		const struct load *l = &loads[li];
		double a[MAX_ROUNDS], b[MAX_ROUNDS], ma, mb;

		for (int r = 0; r < rounds; r++) {
			a[r] = run_splitpv(bf, l);
			b[r] = run_libnbd(h, l);
			if (a[r] < 0 || b[r] < 0) {
				fprintf(stderr, "%s: run failed\n", l->name);
				goto out;
			}
		}
		ma = median(a, rounds);
		mb = median(b, rounds);
		printf("%-26s %14.0f %14.0f %8.2f", l->name, ma, mb, ma / mb);
		if (l->bs >= (1u << 20))
			printf("   (%.0f vs %.0f MiB/s)", ma * l->bs / 1048576.0,
			       mb * l->bs / 1048576.0);
		printf("\n");
		fflush(stdout);
	}
	status = 0;
out:
	if (h)
		nbd_close(h);
	blkfront_close(bf);
	shim_guest_destroy(g);
	shim_ts_close(ts);
	if (splitpvd > 0) {
		kill(splitpvd, SIGTERM);
		waitpid(splitpvd, NULL, 0);
	}
	if (server > 0) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
	}
	unlink(script);
	unlink(sock);
	shim_harness_stop(&shim);
	return status;
}
