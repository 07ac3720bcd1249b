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
#include <sys/socket.h>
#include <unistd.h>

/* One device: its thread and loop. */
struct worker {
	struct worker *next;
	pthread_t thread;
	struct ev_loop *loop;
	ev_async stop;
	struct blk_dev dev;
	char path[XENBUS_PATH_MAX];
	int journal_fd;                     /* the supervisor's memfd, or -1 */
	int rc;
	bool running;
	bool frontend_gone;                 /* stop means the guest died */
	bool finished;                      /* thread done (atomic): main joins it */
};

static struct worker *workers;
static struct ev_loop *main_loop;
static ev_async thread_done;
static int control_fd = -1;
static ev_io control_io;
static struct blk_config cfg;
static bool any_failed;

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

	if (!w->running)
		return;
	if (__atomic_load_n(&w->frontend_gone, __ATOMIC_ACQUIRE))
		xenbus_device_frontend_gone(&w->dev.xb);
	else
		xenbus_device_remove(&w->dev.xb);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	blk_dev_journal_init(&w->dev, w->journal_fd);
	if (w->dev.resuming)
		w->rc = xenbus_device_resume(&w->dev.xb, w->loop, w->path, &blk_xenbus_ops,
					     &w->dev, removed_cb, w);
	else
		w->rc = xenbus_device_start(&w->dev.xb, w->loop, w->path, &blk_xenbus_ops,
					    &w->dev, removed_cb, w);
	if (w->rc) {
		log_err(w->path, "can't serve: %s", strerror(-w->rc));
		xenbus_journal_unmap(&w->dev.journal);
	} else {
		w->running = true;
		ev_run(w->loop, 0);
	}
	__atomic_store_n(&w->finished, true, __ATOMIC_RELEASE);
	ev_async_send(main_loop, &thread_done);
	return NULL;
}

static struct worker *find_worker(const char *path)
{
	for (struct worker *w = workers; w; w = w->next)
		if (strcmp(w->path, path) == 0)
			return w;
	return NULL;
}

/* Serve one more device on its own thread. The journal fd (or -1) becomes ours. */
static int add_device(const char *path, int journal_fd)
{
	struct worker *w;

	if (strlen(path) >= XENBUS_PATH_MAX || find_worker(path))
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	strcpy(w->path, path);
	w->journal_fd = journal_fd;
	w->dev.cfg = cfg;
	w->loop = ev_loop_new(EVFLAG_AUTO);
	if (!w->loop) {
		free(w);
		return -ENOMEM;
	}
	ev_async_init(&w->stop, stop_cb);
	w->stop.data = w;
	ev_async_start(w->loop, &w->stop);
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
		ev_loop_destroy(w->loop);
		free(w);
		return -EAGAIN;
	}
	w->next = workers;
	workers = w;
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

/* Join finished device threads; leave when none is left. */
static void thread_done_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct worker **pp = &workers;

	while (*pp) {
		struct worker *w = *pp;

		if (!__atomic_load_n(&w->finished, __ATOMIC_ACQUIRE)) {
			pp = &w->next;
			continue;
		}
		pthread_join(w->thread, NULL);
		if (w->rc)
			any_failed = true;
		ev_loop_destroy(w->loop);
		control_gone(w->path, w->rc);
		if (w->journal_fd >= 0)
			close(w->journal_fd);
		*pp = w->next;
		free(w);
	}
	if (!workers)
		ev_break(loop, EVBREAK_ALL);
}

/*
 * The supervisor's channel (SOCK_SEQPACKET): "add PATH" with the device's journal memfd
 * attached (SCM_RIGHTS), "gone PATH" when its guest died. We answer "gone PATH RC" when
 * a device's thread has ended. EOF: the supervisor is gone; we keep serving.
 */
static void control_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	char buf[XENBUS_PATH_MAX + 16], cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { buf, sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	ssize_t n = recvmsg(control_fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	int fd = -1;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		log_info(NULL, "supervisor channel closed");
		ev_io_stop(loop, io);
		close(control_fd);
		control_fd = -1;
		return;
	}
	buf[n] = '\0';
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (strncmp(buf, "add ", 4) == 0) {
		int rc = add_device(buf + 4, fd);

		if (rc) {
			log_err(buf + 4, "can't add: %s", strerror(-rc));
			if (fd >= 0)
				close(fd);
			control_gone(buf + 4, rc);
		}
		return;
	}
	if (fd >= 0)
		close(fd);
	if (strncmp(buf, "gone ", 5) == 0) {
		struct worker *w = find_worker(buf + 5);

		if (w) {
			__atomic_store_n(&w->frontend_gone, true, __ATOMIC_RELEASE);
			ev_async_send(w->loop, &w->stop);
		}
	}
}

static void signal_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
	log_info(NULL, "signal %d: removing devices", s->signum);
	for (struct worker *w = workers; w; w = w->next)
		ev_async_send(w->loop, &w->stop);
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
		"  --journal PATH=FD     crash journal (inherited memfd) of device PATH\n"
		"  --control-fd FD       supervisor channel (splitpvd): more devices come on it\n"
		"Environment: SPLITPV_SHIM=<rundir> runs on the frontend shim instead of Xen.\n");
}

/* --journal PATH=FD: the fd of that path, or -1. */
static int journal_for(char **journals, int nj, const char *path)
{
	size_t len = strlen(path);

	for (int i = 0; i < nj; i++)
		if (strncmp(journals[i], path, len) == 0 && journals[i][len] == '=')
			return atoi(journals[i] + len + 1);
	return -1;
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
		{ "journal", required_argument, NULL, 'j' },
		{ "control-fd", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	ev_signal sigterm, sigint, sighup;
	char **journals;
	int c, n, nj = 0;

	journals = calloc((size_t)argc, sizeof(char *));
	if (!journals)
		return 1;
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
		case 'j':
			journals[nj++] = optarg;
			break;
		case 'c':
			control_fd = atoi(optarg);
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
	if (n < 1 && control_fd < 0) {
		usage(stderr);
		return 2;
	}

	/* Device threads take no signals; the main loop does. */
	{
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGHUP);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
	}
	signal(SIGPIPE, SIG_IGN);
	main_loop = EV_DEFAULT;
	ev_async_init(&thread_done, thread_done_cb);
	ev_async_start(main_loop, &thread_done);
	for (int i = 0; i < n; i++) {
		const char *path = argv[optind + i];

		if (add_device(path, journal_for(journals, nj, path)) != 0) {
			fprintf(stderr, "splitpv-blkback: can't start a thread for %s\n", path);
			return 1;
		}
	}
	free(journals);
	if (control_fd >= 0) {
		ev_io_init(&control_io, control_cb, control_fd, EV_READ);
		ev_io_start(main_loop, &control_io);
	}
	ev_signal_init(&sigterm, signal_cb, SIGTERM);
	ev_signal_start(main_loop, &sigterm);
	ev_signal_init(&sigint, signal_cb, SIGINT);
	ev_signal_start(main_loop, &sigint);
	ev_signal_init(&sighup, signal_cb, SIGHUP);
	ev_signal_start(main_loop, &sighup);
	{
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGHUP);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	}
	/* Until every device is gone (a supervised worker with no device left exits too:
	 * the supervisor starts a new one for the guest's next device). */
	if (workers)
		ev_run(main_loop, 0);
	return any_failed ? 1 : 0;
}
