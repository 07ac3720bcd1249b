/* worker_host — the shared backend worker process (see worker_host.h). */
#include "xenbus/worker_host.h"

#include "xenbus/log.h"
#include "xenbus/sandbox.h"

#include <errno.h>
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
	void *dev;
	char path[XENBUS_PATH_MAX];
	int journal_fd;                     /* the supervisor's memfd, or -1 */
	int rc;
	bool running;
	bool frontend_gone;                 /* stop means the guest died (atomic) */
	bool finished;                      /* thread done (atomic): main joins it */
};

static const struct worker_class *wc;
static const void *wcfg;
static struct worker *workers;
static struct ev_loop *main_loop;
static ev_async thread_done;
static int control_fd = -1;
static ev_io control_io;
static bool any_failed;

static void removed_cb(struct xenbus_device *xb, void *opaque)
{
	struct worker *w = opaque;

	if (wc->dev_done)
		wc->dev_done(w->dev, true);
	w->running = false;
	ev_break(w->loop, EVBREAK_ALL);
}

static void stop_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct worker *w = a->data;
	struct xenbus_device *xb = wc->dev_xb(w->dev);

	if (!w->running)
		return;
	if (__atomic_load_n(&w->frontend_gone, __ATOMIC_ACQUIRE))
		xenbus_device_frontend_gone(xb);
	else
		xenbus_device_remove(xb);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct xenbus_device *xb = wc->dev_xb(w->dev);
	bool resume = wc->dev_journal ? wc->dev_journal(w->dev, w->journal_fd) : false;

	if (resume)
		w->rc = xenbus_device_resume(xb, w->loop, w->path, wc->ops, w->dev, removed_cb, w);
	else
		w->rc = xenbus_device_start(xb, w->loop, w->path, wc->ops, w->dev, removed_cb, w);
	if (w->rc) {
		log_err(w->path, "can't serve: %s", strerror(-w->rc));
		if (wc->dev_done)
			wc->dev_done(w->dev, false);
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
	w->dev = wc->dev_new(wcfg);
	w->loop = ev_loop_new(EVFLAG_AUTO);
	if (!w->dev || !w->loop)
		goto fail;
	ev_async_init(&w->stop, stop_cb);
	w->stop.data = w;
	ev_async_start(w->loop, &w->stop);
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		goto fail;
	w->next = workers;
	workers = w;
	return 0;
fail:
	if (w->loop)
		ev_loop_destroy(w->loop);
	if (w->dev)
		wc->dev_free(w->dev);
	free(w);
	return -ENOMEM;
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
		wc->dev_free(w->dev);
		*pp = w->next;
		free(w);
	}
	if (!workers)
		ev_break(loop, EVBREAK_ALL);
}

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

/* "--journal PATH=FD": the fd of that path, or -1. */
static int journal_for(char **journals, int nj, const char *path)
{
	size_t len = strlen(path);

	for (int i = 0; i < nj; i++)
		if (strncmp(journals[i], path, len) == 0 && journals[i][len] == '=')
			return atoi(journals[i] + len + 1);
	return -1;
}

static void block_signals(int how)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(how, &set, NULL);
}

int worker_host_run(const struct worker_class *cls, const void *cfg, char **paths, int npaths,
		    char **journals, int nj, int cfd)
{
	ev_signal sigterm, sigint, sighup;

	wc = cls;
	wcfg = cfg;
	control_fd = cfd;
	/* Before any thread exists: they all inherit it. */
	if (!getenv("SPLITPV_NO_SANDBOX") && sandbox_enter(cls->prog) != 0)
		return 1;
	/* Device threads take no signals (they inherit this mask); the main loop does. */
	block_signals(SIG_BLOCK);
	signal(SIGPIPE, SIG_IGN);
	main_loop = EV_DEFAULT;
	ev_async_init(&thread_done, thread_done_cb);
	ev_async_start(main_loop, &thread_done);
	for (int i = 0; i < npaths; i++) {
		if (add_device(paths[i], journal_for(journals, nj, paths[i])) != 0) {
			log_err(paths[i], "%s: can't start a thread", cls->prog);
			return 1;
		}
	}
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
	block_signals(SIG_UNBLOCK);
	/* Until every device is gone (a supervised worker with no device left exits too:
	 * the supervisor starts a new one for the guest's next device). */
	if (workers)
		ev_run(main_loop, 0);
	return any_failed ? 1 : 0;
}
