/*
 * splitpvd — the supervisor: watches backend/vbd and backend/vif of its own domain,
 * and for each new device (online=1, state=1 as libxl writes it) starts a worker
 * (splitpv-blkback / splitpv-netback) for it; a worker that dies while its device is
 * still online is restarted. Same binary on Xen and on the shim (SPLITPV_SHIM).
 * Counterparts: QEMU hw/xen/xen-bus.c discovery, `xl devd`.
 *
 *   splitpvd [--worker-dir DIR] [--syslog] [-- worker options...]
 */
#include "xenbus/log.h"
#include "xenbus/xs.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xen/io/xenbus.h>

#define MAX_DEVICES 1024

struct dev {
	char path[XENBUS_PATH_MAX];
	char type[16];
	pid_t pid;
	unsigned int restarts;
	bool used;
};

static struct dev devs[MAX_DEVICES];
static char worker_dir[PATH_MAX];
static char **worker_args;
static int nworker_args;
static struct xs_handle *xs;
static char self_path[64];
static bool logging_syslog;

static const char *worker_for(const char *type)
{
	if (strcmp(type, "vbd") == 0)
		return "splitpv-blkback";
	if (strcmp(type, "vif") == 0)
		return "splitpv-netback";
	return NULL;
}

static struct dev *find_dev(const char *path)
{
	for (int i = 0; i < MAX_DEVICES; i++)
		if (devs[i].used && strcmp(devs[i].path, path) == 0)
			return &devs[i];
	return NULL;
}

static void spawn(struct dev *d)
{
	char bin[PATH_MAX + 32];
	char **argv;
	pid_t pid;
	int i = 0;

	snprintf(bin, sizeof(bin), "%s/%s", worker_dir, worker_for(d->type));
	if (access(bin, X_OK) != 0) {
		log_err(d->path, "no worker %s for %s devices", bin, d->type);
		return;
	}
	argv = calloc((size_t)nworker_args + 4, sizeof(char *));
	if (!argv)
		return;
	argv[i++] = bin;
	if (logging_syslog)
		argv[i++] = "--syslog";
	for (int k = 0; k < nworker_args; k++)
		argv[i++] = worker_args[k];
	argv[i++] = d->path;
	argv[i] = NULL;
	pid = fork();
	if (pid == 0) {
		execv(bin, argv);
		_exit(127);
	}
	free(argv);
	if (pid < 0) {
		log_err(d->path, "fork: %s", strerror(errno));
		return;
	}
	d->pid = pid;
	log_info(d->path, "worker %d started", (int)pid);
}

/* A device we should serve: present, online, and not yet claimed or being torn down. */
static bool claimable(const char *path)
{
	bool online = false;
	int state = -1;

	if (xenbus_read_bool(xs, XBT_NULL, path, "online", false, &online) || !online)
		return false;
	if (xenbus_read_state(xs, XBT_NULL, path, &state))
		return false;
	return state == XenbusStateInitialising || state == XenbusStateInitWait ||
	       state == XenbusStateConnected || state == XenbusStateInitialised;
}

static void scan_type(const char *type)
{
	char base[128];
	unsigned int nfe = 0;
	char **fes;

	snprintf(base, sizeof(base), "%s/backend/%s", self_path, type);
	fes = xs_directory(xs, XBT_NULL, base, &nfe);
	for (unsigned int i = 0; fes && i < nfe; i++) {
		char fedir[XENBUS_PATH_MAX];
		unsigned int ndev = 0;
		char **ids;

		if (snprintf(fedir, sizeof(fedir), "%s/%s", base, fes[i]) >= (int)sizeof(fedir))
			continue;
		ids = xs_directory(xs, XBT_NULL, fedir, &ndev);
		for (unsigned int j = 0; ids && j < ndev; j++) {
			char path[XENBUS_PATH_MAX];
			struct dev *d;

			if (snprintf(path, sizeof(path), "%s/%s", fedir, ids[j]) >= (int)sizeof(path))
				continue;
			d = find_dev(path);
			if (d || !claimable(path))
				continue;
			for (int k = 0; k < MAX_DEVICES && !d; k++)
				if (!devs[k].used)
					d = &devs[k];
			if (!d) {
				log_err(path, "too many devices");
				continue;
			}
			memset(d, 0, sizeof(*d));
			d->used = true;
			snprintf(d->path, sizeof(d->path), "%s", path);
			snprintf(d->type, sizeof(d->type), "%s", type);
			spawn(d);
		}
		free(ids);
	}
	free(fes);
}

/* libev has reaped the child already (ev_child): act on its pid and status. */
static void reaped(pid_t pid, int status)
{
	{
		for (int i = 0; i < MAX_DEVICES; i++) {
			struct dev *d = &devs[i];

			if (!d->used || d->pid != pid)
				continue;
			d->pid = 0;
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
				log_info(d->path, "worker done");
				d->used = false;
			} else if (claimable(d->path) && d->restarts < 100) {
				d->restarts++;
				log_warn(d->path, "worker died (status %#x): restart %u", status,
					 d->restarts);
				spawn(d);
			} else {
				log_warn(d->path, "worker died (status %#x)", status);
				d->used = false;
			}
		}
	}
}

static void watch_cb(struct xenbus_watcher *w, const char *path, const char *token)
{
	scan_type(token);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	reaped(w->rpid, w->rstatus);
	/* A device may have been re-offered while its worker was exiting. */
	scan_type("vbd");
	scan_type("vif");
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "worker-dir", required_argument, NULL, 'w' },
		{ "syslog", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ev_loop *loop = EV_DEFAULT;
	struct xenbus_watcher watcher;
	ev_signal sigterm, sigint;
	ev_child child;
	char *domid = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			snprintf(worker_dir, sizeof(worker_dir), "%s", optarg);
			break;
		case 's':
			log_use_syslog("splitpvd");
			logging_syslog = true;
			break;
		default:
			printf("usage: splitpvd [--worker-dir DIR] [--syslog] [-- worker options]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	worker_args = argv + optind;
	nworker_args = argc - optind;
	if (!worker_dir[0]) {
		ssize_t n = readlink("/proc/self/exe", worker_dir, sizeof(worker_dir) - 1);

		if (n <= 0)
			return 1;
		worker_dir[n] = '\0';
		*strrchr(worker_dir, '/') = '\0';
	}
	signal(SIGPIPE, SIG_IGN);
	xs = xenbus_xs_open();
	if (!xs) {
		log_err(NULL, "xenstore: %s", strerror(errno));
		return 1;
	}
	/* Our own domain: "domid" relative to our home (0 in dom0 and on the shim). */
	domid = xs_read(xs, XBT_NULL, "domid", NULL);
	snprintf(self_path, sizeof(self_path), "/local/domain/%s", domid ? domid : "0");
	free(domid);

	xenbus_watcher_init(&watcher, loop, xs, watch_cb, NULL);
	{
		char p[128];

		snprintf(p, sizeof(p), "%s/backend/vbd", self_path);
		if (xenbus_watch(&watcher, p, "vbd"))
			return 1;
		snprintf(p, sizeof(p), "%s/backend/vif", self_path);
		if (xenbus_watch(&watcher, p, "vif"))
			return 1;
	}
	ev_child_init(&child, child_cb, 0, 0);
	ev_child_start(loop, &child);
	ev_signal_init(&sigterm, stop_cb, SIGTERM);
	ev_signal_start(loop, &sigterm);
	ev_signal_init(&sigint, stop_cb, SIGINT);
	ev_signal_start(loop, &sigint);
	log_info(NULL, "splitpvd: watching %s/backend/{vbd,vif}, workers in %s", self_path,
		 worker_dir);
	ev_run(loop, 0);

	for (int i = 0; i < MAX_DEVICES; i++)
		if (devs[i].used && devs[i].pid > 0)
			kill(devs[i].pid, SIGTERM);
	for (int i = 0; i < MAX_DEVICES; i++)
		if (devs[i].used && devs[i].pid > 0)
			waitpid(devs[i].pid, NULL, 0);
	xenbus_watcher_deinit(&watcher);
	xs_close(xs);
	return 0;
}
