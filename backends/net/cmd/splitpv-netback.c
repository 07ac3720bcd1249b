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
#include <sys/socket.h>
#include <unistd.h>

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

static void stop_cb(struct ev_loop *loop, ev_async *a, int revents);
static void *worker_main(void *arg);

#define MAX_WORKERS 64

static struct worker *workers[MAX_WORKERS];
static int nworkers;
static int control_fd = -1;
static struct net_config cfg;

static int start_worker(const char *path)
{
	struct worker *w;

	if (nworkers >= MAX_WORKERS)
		return -ENOSPC;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->path = strdup(path);
	net_dev_init(&w->dev, &cfg);
	w->loop = ev_loop_new(EVFLAG_AUTO);
	ev_async_init(&w->stop, stop_cb);
	w->stop.data = w;
	ev_async_start(w->loop, &w->stop);
	if (!w->path || !w->loop || pthread_create(&w->thread, NULL, worker_main, w) != 0)
		return -EAGAIN;
	workers[nworkers++] = w;
	return 0;
}

/* Tell the supervisor a device is no longer ours ("gone PATH RC"). */
static void control_gone(const char *path, int rc)
{
	char msg[XENBUS_PATH_MAX + 32];
	int n = snprintf(msg, sizeof(msg), "gone %s %d", path, rc);

	if (control_fd >= 0 && n > 0 && (size_t)n < sizeof(msg))
		send(control_fd, msg, (size_t)n, MSG_NOSIGNAL);
}

/* splitpvd's channel: "add PATH" (a journal fd may ride along: unused here, closed),
 * "gone PATH" when the guest died. EOF: the supervisor is gone; keep serving. */
static void control_poll(void)
{
	char buf[XENBUS_PATH_MAX + 16], cbuf[CMSG_SPACE(sizeof(int))];

	while (control_fd >= 0) {
		struct iovec iov = { buf, sizeof(buf) - 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		ssize_t n = recvmsg(control_fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			close(control_fd);
			control_fd = -1;
			return;
		}
		buf[n] = '\0';
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				int fd;

				memcpy(&fd, CMSG_DATA(c), sizeof(int));
				close(fd);
			}
		if (strncmp(buf, "add ", 4) == 0) {
			int rc = start_worker(buf + 4);

			if (rc)
				control_gone(buf + 4, rc);
		} else if (strncmp(buf, "gone ", 5) == 0) {
			for (int i = 0; i < nworkers; i++)
				if (!workers[i]->joined && strcmp(workers[i]->path, buf + 5) == 0)
					ev_async_send(workers[i]->loop, &workers[i]->stop);
		}
	}
}

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
		"  --control-fd FD       supervisor channel (splitpvd): more devices come on it\n"
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
		{ "control-fd", required_argument, NULL, 'c' },
		{ "journal", required_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		/* splitpv-blkback's, passed through by splitpvd */
		{ "max-ring-order", required_argument, NULL, 'x' },
		{ "max-indirect", required_argument, NULL, 'x' },
		{ "no-persistent", no_argument, NULL, 'X' },
		{ "sector-size", required_argument, NULL, 'x' },
		{ "direct", no_argument, NULL, 'X' },
		{ NULL, 0, NULL, 0 },
	};
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
		case 'c':
			control_fd = (int)num(optarg, &ok);
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
	if (n < 1 && control_fd < 0) {
		usage(stderr);
		return 2;
	}

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (int i = 0; i < n; i++) {
		if (start_worker(argv[optind + i]) != 0) {
			fprintf(stderr, "splitpv-netback: can't start a worker\n");
			return 1;
		}
	}
	/* Wait for a signal, or for every device to be gone and no supervisor to add more. */
	for (;;) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		bool any = false;

		control_poll();
		for (int i = 0; i < nworkers; i++) {
			struct worker *w = workers[i];

			if (w->joined)
				continue;
			if (pthread_tryjoin_np(w->thread, NULL) == 0) {
				w->joined = true;
				if (w->rc)
					rc = 1;
				control_gone(w->path, w->rc);
			} else {
				any = true;
			}
		}
		if (!any && control_fd < 0)
			break;
		sig = sigtimedwait(&set, NULL, &ts);
		if (sig > 0) {
			log_info(NULL, "signal %d: removing devices", sig);
			for (int i = 0; i < nworkers; i++)
				if (!workers[i]->joined)
					ev_async_send(workers[i]->loop, &workers[i]->stop);
			if (control_fd >= 0)
				close(control_fd);
			control_fd = -1;
		}
	}
	for (int i = 0; i < nworkers; i++) {
		ev_loop_destroy(workers[i]->loop);
		free((char *)workers[i]->path);
		free(workers[i]);
	}
	return rc;
}
