/*
 * splitpv-blkback — serve blkif devices given their backend xenstore paths, one thread
 * and libev loop per device. Runs by hand (on Xen or, with SPLITPV_SHIM set, on the
 * frontend shim) and is what the supervisor spawns per guest.
 *
 *   splitpv-blkback [options] /local/domain/0/backend/vbd/<fe>/<devid> ...
 */
#include "backends/blk/blkback.h"

#include "xenbus/log.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct worker {
	pthread_t thread;
	struct ev_loop *loop;
	ev_async stop;
	struct blk_dev dev;
	const char *path;
	int rc;
	bool running;
	bool joined;
};

static void print_stats(const struct blk_dev *dev)
{
	const struct blk_stats *s = &dev->stats;

	log_info(dev->xb.name,
		 "stats: rd_req %llu wr_req %llu flush %llu barrier %llu discard %llu "
		 "indirect %llu rd_sect %llu wr_sect %llu errors %llu eopnotsupp %llu "
		 "oo_req %llu notify in/out %llu/%llu reconnects %lu",
		 (unsigned long long)s->rd_req, (unsigned long long)s->wr_req,
		 (unsigned long long)s->flush_req, (unsigned long long)s->barrier_req,
		 (unsigned long long)s->discard_req, (unsigned long long)s->indirect_req,
		 (unsigned long long)s->rd_sect, (unsigned long long)s->wr_sect,
		 (unsigned long long)s->errors, (unsigned long long)s->eopnotsupp,
		 (unsigned long long)s->oo_req, (unsigned long long)s->notify_in,
		 (unsigned long long)s->notify_out, dev->xb.reconnects);
}

static void removed_cb(struct xenbus_device *xb, void *opaque)
{
	struct worker *w = opaque;

	print_stats(&w->dev);
	hv_gnt_close(w->dev.gnt);
	w->dev.gnt = NULL;
	w->running = false;
	ev_break(w->loop, EVBREAK_ALL);
}

static void stop_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct worker *w = a->data;

	if (w->running)
		xenbus_device_remove(&w->dev.xb);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	w->rc = xenbus_device_start(&w->dev.xb, w->loop, w->path, &blk_xenbus_ops, &w->dev,
				    removed_cb, w);
	if (w->rc) {
		log_err(w->path, "can't serve: %s", strerror(-w->rc));
		return NULL;
	}
	w->running = true;
	ev_run(w->loop, 0);
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: splitpv-blkback [options] BACKEND_PATH...\n"
		"  Serve each blkif backend directory (e.g. /local/domain/0/backend/vbd/5/51712).\n"
		"  --max-queues N        multi-queue-max-queues (default: CPUs, at most 4)\n"
		"  --max-ring-order N    max-ring-page-order (default 4)\n"
		"  --max-indirect N      feature-max-indirect-segments (default 256, 0 = off)\n"
		"  --no-persistent       don't offer feature-persistent\n"
		"  --sector-size N       present N-byte logical sectors (512 or 4096)\n"
		"  --direct              O_DIRECT on the backing file where aligned\n"
		"  --syslog              log to syslog instead of stderr\n"
		"Environment: SPLITPV_SHIM=<rundir> runs on the frontend shim instead of Xen.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "max-queues", required_argument, NULL, 'q' },
		{ "max-ring-order", required_argument, NULL, 'o' },
		{ "max-indirect", required_argument, NULL, 'i' },
		{ "no-persistent", no_argument, NULL, 'P' },
		{ "sector-size", required_argument, NULL, 's' },
		{ "direct", no_argument, NULL, 'd' },
		{ "syslog", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct blk_config cfg;
	struct worker *workers;
	sigset_t set;
	int c, n, sig, rc = 0;

	blk_config_default(&cfg);
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			cfg.max_queues = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'o':
			cfg.max_ring_order = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'i':
			cfg.max_indirect_segments = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'P':
			cfg.persistent = false;
			break;
		case 's':
			cfg.sector_size = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'd':
			cfg.direct = true;
			break;
		case 'l':
			log_use_syslog("splitpv-blkback");
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (cfg.max_queues < 1 || cfg.max_queues > 64 || cfg.max_ring_order > RING_MAX_ORDER ||
	    cfg.max_indirect_segments > BLK_MAX_INDIRECT_SEGMENTS ||
	    (cfg.sector_size && cfg.sector_size != 512 && cfg.sector_size != 4096)) {
		fprintf(stderr, "splitpv-blkback: option out of range\n");
		return 2;
	}
	n = argc - optind;
	if (n < 1) {
		usage(stderr);
		return 2;
	}

	/* Signals are taken by the main thread only. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	workers = calloc((size_t)n, sizeof(*workers));
	if (!workers)
		return 1;
	for (int i = 0; i < n; i++) {
		struct worker *w = &workers[i];

		w->path = argv[optind + i];
		w->dev.cfg = cfg;
		w->loop = ev_loop_new(EVFLAG_AUTO);
		ev_async_init(&w->stop, stop_cb);
		w->stop.data = w;
		ev_async_start(w->loop, &w->stop);
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			fprintf(stderr, "splitpv-blkback: pthread_create failed\n");
			return 1;
		}
	}
	/* Wait for a signal, or for every device to be gone. */
	for (;;) {
		struct timespec ts = { 0, 200 * 1000 * 1000 };
		bool any = false;

		for (int i = 0; i < n; i++) {
			if (workers[i].joined)
				continue;
			if (pthread_tryjoin_np(workers[i].thread, NULL) == 0)
				workers[i].joined = true;
			else
				any = true;
		}
		if (!any)
			break;
		sig = sigtimedwait(&set, NULL, &ts);
		if (sig > 0) {
			log_info(NULL, "signal %d: removing devices", sig);
			for (int i = 0; i < n; i++)
				ev_async_send(workers[i].loop, &workers[i].stop);
		}
	}
	for (int i = 0; i < n; i++) {
		if (workers[i].rc)
			rc = 1;
		ev_loop_destroy(workers[i].loop);
	}
	free(workers);
	return rc;
}
