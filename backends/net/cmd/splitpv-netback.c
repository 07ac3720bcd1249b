/*
 * splitpv-netback — serve netif devices given their backend xenstore paths, one thread
 * and libev loop per device. Runs by hand (on Xen or, with SPLITPV_SHIM set, on the
 * frontend shim) and is what splitpvd spawns per vif.
 *
 *   splitpv-netback [options] /local/domain/0/backend/vif/<fe>/<devid> ...
 */
#include "backends/net/netback.h"

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
	struct net_dev dev;
	const char *path;
	int rc;
	bool running;
	bool joined;
};

static void removed_cb(struct xenbus_device *xb, void *opaque)
{
	struct worker *w = opaque;

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

	w->rc = xenbus_device_start(&w->dev.xb, w->loop, w->path, &net_xenbus_ops, &w->dev,
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
		"usage: splitpv-netback [options] BACKEND_PATH...\n"
		"  Serve each netif backend directory (e.g. /local/domain/0/backend/vif/5/0)\n"
		"  with a tap device vif<domid>.<devid>.\n"
		"  --max-queues N        multi-queue-max-queues (default: CPUs, at most 4; max %u)\n"
		"  --rx-queue-pkts N     frames waiting for guest buffers, per queue (1024)\n"
		"  --rx-queue-bytes N    ... and their bytes (4 MiB)\n"
		"  --rx-stall-ms N       no guest RX buffers this long: carrier off (60000)\n"
		"  --rx-drain-ms N       drop frames waiting longer than this (10000)\n"
		"  --no-ctrl-ring        don't offer feature-ctrl-ring\n"
		"  --no-split-evtchn     don't offer feature-split-event-channels\n"
		"  --syslog              log to syslog instead of stderr\n"
		"Options of splitpv-blkback that splitpvd passes to every worker are ignored.\n"
		"Environment: SPLITPV_SHIM=<rundir> runs on the frontend shim instead of Xen.\n",
		NET_MAX_QUEUES);
}

static unsigned long num(const char *s, bool *ok)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end)
		*ok = false;
	return v;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "max-queues", required_argument, NULL, 'q' },
		{ "rx-queue-pkts", required_argument, NULL, 'p' },
		{ "rx-queue-bytes", required_argument, NULL, 'b' },
		{ "rx-stall-ms", required_argument, NULL, 's' },
		{ "rx-drain-ms", required_argument, NULL, 'd' },
		{ "no-ctrl-ring", no_argument, NULL, 'C' },
		{ "no-split-evtchn", no_argument, NULL, 'S' },
		{ "syslog", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		/* splitpv-blkback's, passed through by splitpvd */
		{ "max-ring-order", required_argument, NULL, 'x' },
		{ "max-indirect", required_argument, NULL, 'x' },
		{ "no-persistent", no_argument, NULL, 'X' },
		{ "sector-size", required_argument, NULL, 'x' },
		{ "direct", no_argument, NULL, 'X' },
		{ NULL, 0, NULL, 0 },
	};
	struct net_config cfg;
	struct worker *workers;
	sigset_t set;
	bool ok = true;
	int c, n, sig, rc = 0;

	net_config_default(&cfg);
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			cfg.max_queues = (unsigned int)num(optarg, &ok);
			break;
		case 'p':
			cfg.rx_queue_max_pkts = (unsigned int)num(optarg, &ok);
			break;
		case 'b':
			cfg.rx_queue_max_bytes = num(optarg, &ok);
			break;
		case 's':
			cfg.rx_stall_ms = (unsigned int)num(optarg, &ok);
			break;
		case 'd':
			cfg.rx_drain_ms = (unsigned int)num(optarg, &ok);
			break;
		case 'C':
			cfg.ctrl_ring = false;
			break;
		case 'S':
			cfg.split_evtchn = false;
			break;
		case 'l':
			log_use_syslog("splitpv-netback");
			break;
		case 'x':
		case 'X':
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!ok || cfg.max_queues < 1 || cfg.max_queues > NET_MAX_QUEUES ||
	    cfg.rx_queue_max_pkts < 1 || cfg.rx_queue_max_bytes < 65536 || cfg.rx_stall_ms < 1 ||
	    cfg.rx_drain_ms < 1) {
		fprintf(stderr, "splitpv-netback: option out of range\n");
		return 2;
	}
	n = argc - optind;
	if (n < 1) {
		usage(stderr);
		return 2;
	}

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
		net_dev_init(&w->dev, &cfg);
		w->loop = ev_loop_new(EVFLAG_AUTO);
		ev_async_init(&w->stop, stop_cb);
		w->stop.data = w;
		ev_async_start(w->loop, &w->stop);
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			fprintf(stderr, "splitpv-netback: pthread_create failed\n");
			return 1;
		}
	}
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
