/* worker_host — the shared backend worker process (see worker_host.h). */
#include "xenbus/worker_host.h"

#include "xenbus/hv.h"
#include "xenbus/log.h"
#include "xenbus/sandbox.h"
#include "xenbus/xs_mux.h"

#include <errno.h>
#include <linux/capability.h>
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
	int storage_fd;                     /* backing storage splitpvd opened, or -1 */
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
static struct xenbus_xs_mux *xs_mux;
static __thread int thread_storage_fd = -1;

int worker_host_storage_fd(void)
{
	return thread_storage_fd;
}

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

	thread_storage_fd = w->storage_fd;

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

/* Serve one more device on its own thread. The journal and storage fds (or -1) become
 * ours once this succeeds. */
static int add_device(const char *path, int journal_fd, int storage_fd)
{
	struct worker *w;

	if (strlen(path) >= XENBUS_PATH_MAX || find_worker(path))
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	strcpy(w->path, path);
	w->journal_fd = journal_fd;
	w->storage_fd = storage_fd;
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
		if (w->storage_fd >= 0)
			close(w->storage_fd);
		wc->dev_free(w->dev);
		*pp = w->next;
		free(w);
	}
	if (!workers)
		ev_break(loop, EVBREAK_ALL);
}

/* "add PATH [fds=LETTERS]": the fds attached, in order, are j = journal, s = storage. */
static void control_add(char *arg, const int *fds, int nfds)
{
	char *sp = strchr(arg, ' ');
	int jfd = -1, sfd = -1, rc;

	if (sp && strncmp(sp, " fds=", 5) == 0) {
		const char *l = sp + 5;

		*sp = '\0';
		for (int i = 0; l[i] && i < nfds; i++) {
			if (l[i] == 'j' && jfd < 0)
				jfd = fds[i];
			else if (l[i] == 's' && sfd < 0)
				sfd = fds[i];
		}
	} else if (nfds > 0) {
		jfd = fds[0]; /* an older splitpvd: the journal only */
	}
	for (int i = 0; i < nfds; i++)
		if (fds[i] != jfd && fds[i] != sfd)
			close(fds[i]);
	rc = add_device(arg, jfd, sfd);
	if (rc) {
		log_err(arg, "can't add: %s", strerror(-rc));
		if (jfd >= 0)
			close(jfd);
		if (sfd >= 0)
			close(sfd);
		control_gone(arg, rc);
	}
}

static void control_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	char buf[XENBUS_PATH_MAX + 32];
	union {
		char buf[CMSG_SPACE(sizeof(int) * WORKER_HOST_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { buf, sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
			     .msg_controllen = sizeof(cbuf.buf) };
	struct cmsghdr *c;
	ssize_t n = recvmsg(control_fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	int fds[WORKER_HOST_MAX_FDS], nfds = 0;

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
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (nfds < WORKER_HOST_MAX_FDS)
				fds[nfds++] = fd;
			else
				close(fd);
		}
	}
	if (strncmp(buf, "add ", 4) == 0) {
		control_add(buf + 4, fds, nfds);
		return;
	}
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
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

/* "--journal PATH=JFD[,SFD]": that path's journal and storage fds (-1: none). */
static void journal_for(char **journals, int nj, const char *path, int *jfd, int *sfd)
{
	size_t len = strlen(path);

	*jfd = *sfd = -1;
	for (int i = 0; i < nj; i++) {
		const char *comma;

		if (strncmp(journals[i], path, len) != 0 || journals[i][len] != '=')
			continue;
		*jfd = atoi(journals[i] + len + 1);
		comma = strchr(journals[i] + len + 1, ',');
		if (comma)
			*sfd = atoi(comma + 1);
		return;
	}
}

/* SPLITPV_WORKER_* (set by splitpvd) as an unsigned number; def if unset. */
static int env_uint(const char *name, unsigned long max, unsigned long def, unsigned long *out)
{
	const char *v = getenv(name);
	char *end;

	*out = def;
	if (!v || !*v)
		return 0;
	errno = 0;
	*out = strtoul(v, &end, 0);
	if (errno || *end || *out > max) {
		log_err(NULL, "%s=%s: not a number up to %lu", name, v, max);
		return -EINVAL;
	}
	return 0;
}

/*
 * Least privilege (splitpvd sets SPLITPV_WORKER_UID, _DOMID, _CAPS, _EVTCHNS, _RUNDIR):
 * open, as root, everything the devices will need from root-only places: one
 * xenstore connection (the mux), one grant-table handle, a pool of event-channel
 * handles restricted to the guest. Then become the guest's uid with the sandbox.
 */
static int enter_sandbox(const struct worker_class *cls)
{
	unsigned long uid, domid, pool;
	const char *caps = getenv("SPLITPV_WORKER_CAPS"), *dir = getenv("SPLITPV_WORKER_RUNDIR");
	uint64_t keep = 0;
	char sock[108];
	int rc;

	if (getenv("SPLITPV_NO_SANDBOX")) {
		log_warn(NULL, "%s: SPLITPV_NO_SANDBOX: running unsandboxed, as uid %u", cls->prog,
			 (unsigned int)getuid());
		return 0;
	}
	if (env_uint("SPLITPV_WORKER_UID", 0xfffffffeul, 0, &uid) ||
	    env_uint("SPLITPV_WORKER_DOMID", 0x7FEF, 0, &domid) ||
	    env_uint("SPLITPV_WORKER_EVTCHNS", 4096, WORKER_HOST_EVTCHNS, &pool))
		return -EINVAL;
	if (uid == 0)
		return sandbox_enter(cls->prog);
	if (domid == 0) {
		log_err(NULL, "SPLITPV_WORKER_UID without SPLITPV_WORKER_DOMID");
		return -EINVAL;
	}
	if (caps && strcmp(caps, "net_admin") == 0)
		keep = 1ull << CAP_NET_ADMIN;
	else if (caps && *caps) {
		log_err(NULL, "SPLITPV_WORKER_CAPS=%s: only net_admin may be kept", caps);
		return -EINVAL;
	}
	if (!dir || !*dir)
		dir = "/run/splitpv-workers";
	if (snprintf(sock, sizeof(sock), "%s/xs-%d.sock", dir, (int)getpid()) >= (int)sizeof(sock))
		return -ENAMETOOLONG;
	rc = xenbus_xs_mux_open(&xs_mux, main_loop, sock, (uid_t)uid, (gid_t)uid);
	if (rc) {
		log_err(NULL, "xenstore connection for the devices (%s): %s", sock, strerror(-rc));
		return rc;
	}
	rc = hv_worker_init((uint32_t)domid, (unsigned int)pool);
	if (rc) {
		log_err(NULL, "grant table and %lu event channels for dom%lu: %s", pool, domid,
			strerror(-rc));
		return rc;
	}
	rc = sandbox_enter_as(cls->prog, (unsigned int)uid, (unsigned int)uid, keep);
	if (rc)
		return rc;
	log_info(NULL, "%s for dom%lu: uid/gid %lu, %s, %lu event-channel handles", cls->prog,
		 domid, uid, keep ? "CAP_NET_ADMIN kept" : "no capabilities", pool);
	return 0;
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
	signal(SIGPIPE, SIG_IGN);
	main_loop = EV_DEFAULT;
	/* Before any thread exists: they all inherit it. */
	if (enter_sandbox(cls) != 0)
		return 1;
	/* Device threads take no signals (they inherit this mask); the main loop does. */
	block_signals(SIG_BLOCK);
	ev_async_init(&thread_done, thread_done_cb);
	ev_async_start(main_loop, &thread_done);
	for (int i = 0; i < npaths; i++) {
		int jfd, sfd;

		journal_for(journals, nj, paths[i], &jfd, &sfd);
		if (add_device(paths[i], jfd, sfd) != 0) {
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
	xenbus_xs_mux_close(xs_mux);
	xs_mux = NULL;
	return any_failed ? 1 : 0;
}
