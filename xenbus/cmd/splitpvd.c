/*
 * splitpvd — the supervisor: watches backend/vbd and backend/vif of its own domain and
 * runs ONE WORKER PROCESS PER GUEST and backend type (splitpv-blkback for a guest's
 * disks, splitpv-netback for its NICs); a guest's later devices are handed to its
 * running worker over a control channel. It keeps a crash journal (memfd) per device
 * across worker restarts: a worker that dies is restarted with the journals and takes
 * over the live rings without the guest noticing. @releaseDomain tells the workers of a
 * dead guest to let go. A control socket serves `splitpv status|stats|top`; SIGHUP (or
 * `splitpv upgrade`) re-executes the binary keeping every journal (an upgrade without
 * detaching guests). Same binary on Xen and on the shim (SPLITPV_SHIM).
 * Counterparts: QEMU hw/xen/xen-bus.c discovery, `xl devd`.
 *
 * Least privilege: each worker runs as uid = gid = BASE + guest domid (BASE from
 * --worker-uid-base, default DEFAULT_UID_BASE; 0 keeps workers root, loudly), with the
 * guest's disk images opened here and handed over (see xenbus/worker_host.h and
 * docs/SECURITY.md, "Privilege model").
 *
 *   splitpvd [--worker-dir DIR] [--socket PATH] [--syslog] [--worker-uid-base N]
 *            [--worker-evtchns N] [-- worker options...]
 */
#include "backends/blk/storage.h"
#include "xenbus/journal.h"
#include "xenbus/log.h"
#include "xenbus/supervisor.h"
#include "xenbus/xs.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xen/io/xenbus.h>

#define MAX_DEVICES 1024
#define MAX_WORKERS 512
#define MAX_RESTARTS 1000
/*
 * Crash-loop control: a worker that dies within RAPID_S of starting, again and again,
 * is probably killed by what its journal replays. Restarts back off exponentially
 * (BACKOFF_MIN_S doubling up to BACKOFF_MAX_S); after MAX_RAPID such crashes in a row
 * its devices are given up: set Closing so the frontend sees a failed device instead
 * of a hang.
 */
#define RAPID_S 2.0
#define BACKOFF_MIN_S 0.05
#define BACKOFF_MAX_S 5.0
#define MAX_RAPID 6

#define DEFAULT_UID_BASE 0x7ff00000u
/* Devices of one type a guest is expected to have connected at once: sizes each
 * worker's pool of event-channel handles (per device: its queues, + 1 for a vif's
 * control ring). */
#define POOL_DEVICES 8u

/* One worker process: every device of one guest of one backend type. */
struct worker {
	bool used;
	char type[16];
	unsigned int domid;
	pid_t pid;
	int ctl;                      /* our end of the SOCK_SEQPACKET channel */
	ev_io ctl_io;
	unsigned int restarts;
	unsigned int rapid;           /* crashes in a row, each within RAPID_S of its start */
	double started;
	ev_timer restart_timer;       /* back-off before the next start after a crash */
};

struct dev {
	bool used;
	char path[XENBUS_PATH_MAX];
	char type[16];
	unsigned int domid;
	int jfd;                      /* crash journal memfd: kept across worker restarts */
	int sfd;                      /* vbd file/phy: the image, opened here for the worker */
	struct worker *w;             /* serving it, or NULL */
	bool failed;                  /* its worker couldn't serve it: leave it alone */
};

static struct dev devs[MAX_DEVICES];
static struct worker workers[MAX_WORKERS];
static char worker_dir[PATH_MAX], self_exe[PATH_MAX], sock_path[108];
static char **worker_args, **saved_argv;
static int nworker_args, saved_argc;
static struct xs_handle *xs;
static char self_path[64];
static bool logging_syslog;
static struct ev_loop *loop;
static int listen_fd = -1;
static bool upgrade_requested;
static unsigned long uid_base = DEFAULT_UID_BASE;
static unsigned long worker_evtchns; /* --worker-evtchns; 0: derived per type */
static char worker_rundir[PATH_MAX];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

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

static struct worker *find_worker(const char *type, unsigned int domid)
{
	for (int i = 0; i < MAX_WORKERS; i++)
		if (workers[i].used && workers[i].domid == domid &&
		    strcmp(workers[i].type, type) == 0)
			return &workers[i];
	return NULL;
}

/*
 * A vif's tap is persistent while its device lives (TUNSETPERSIST: it survives a worker
 * that dies). A worker that lets a device go clears that itself; one that died for good
 * (the guest was destroyed while no worker ran, or we gave up on it) leaves the tap
 * behind: take it down here. Attaching needs its own flags (IFF_MULTI_QUEUE must match);
 * EBUSY means someone still has it open, and then it stays.
 */
static void vif_tap_release(const struct dev *d)
{
	const char *devid = strrchr(d->path, '/');
	char path[96], buf[32];
	struct ifreq ifr;
	unsigned long flags;
	FILE *f;
	int fd;

	memset(&ifr, 0, sizeof(ifr));
	if (!devid || snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "vif%u.%s", d->domid,
			       devid + 1) >= (int)sizeof(ifr.ifr_name))
		return;
	snprintf(path, sizeof(path), "/sys/class/net/%s/tun_flags", ifr.ifr_name);
	f = fopen(path, "re");
	if (!f)
		return; /* gone already (or not a tap) */
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return;
	}
	fclose(f);
	flags = strtoul(buf, NULL, 16);
	ifr.ifr_flags = (short)(flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE));
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	if (ioctl(fd, TUNSETIFF, &ifr) == 0 && ioctl(fd, TUNSETPERSIST, 0UL) == 0)
		log_info(d->path, "removed the tap %s its dead worker left", ifr.ifr_name);
	close(fd); /* the last fd of a non-persistent tap: the kernel deletes it */
}

static void dev_drop(struct dev *d)
{
	if (strcmp(d->type, "vif") == 0 && (!d->w || d->w->pid <= 0))
		vif_tap_release(d);
	if (d->jfd >= 0)
		close(d->jfd);
	d->jfd = -1;
	if (d->sfd >= 0)
		close(d->sfd);
	d->sfd = -1;
	d->used = false;
	d->w = NULL;
}

static void ctl_cb(struct ev_loop *l, ev_io *io, int revents);

/* Queues per device the workers offer: their --max-queues, else as they default. */
static unsigned long worker_max_queues(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned long q = cpus < 1 ? 1 : cpus > 4 ? 4 : (unsigned long)cpus;

	for (int k = 0; k < nworker_args; k++) {
		if (strcmp(worker_args[k], "--max-queues") == 0 && k + 1 < nworker_args)
			q = strtoul(worker_args[k + 1], NULL, 10);
		else if (strncmp(worker_args[k], "--max-queues=", 13) == 0)
			q = strtoul(worker_args[k] + 13, NULL, 10);
	}
	return q < 1 ? 1 : q > 64 ? 64 : q;
}

/*
 * A vbd on network storage (nbd:, rbd:): its driver connects by itself, again after
 * every server restart, with the worker's credentials (socket path, ceph.conf and
 * keyring). Such a worker keeps root (capability-reduced, as with --worker-uid-base 0)
 * unless SPLITPV_NETSTORE_DROP=1 says those are reachable by the guest's uid/gid.
 */
static const char *network_storage(const struct worker *w)
{
	static char params[128];

	if (strcmp(w->type, "vbd") != 0 || getenv("SPLITPV_NETSTORE_DROP"))
		return NULL;
	for (int k = 0; k < MAX_DEVICES; k++) {
		const struct blk_storage_ops *ops;
		const char *arg;
		char *p = NULL;
		bool net;

		if (!devs[k].used || devs[k].w != w ||
		    xenbus_read_str(xs, XBT_NULL, devs[k].path, "params", &p) != 0)
			continue;
		net = blk_storage_parse_params(p, &ops, &arg) == 0 &&
		      ops != &blk_storage_file_ops && ops != &blk_storage_null_ops;
		if (net)
			snprintf(params, sizeof(params), "%s", p);
		free(p);
		if (net)
			return params;
	}
	return NULL;
}

/* In the child, before exec: what the worker needs to drop privileges (see
 * xenbus/worker_host.h). */
static void worker_env(const struct worker *w, bool keep_root)
{
	char v[32];
	bool vif = strcmp(w->type, "vif") == 0;
	unsigned long per_dev = worker_max_queues() + (vif ? 1 : 0);

	if (uid_base == 0 || keep_root)
		return; /* stays root (logged) */
	snprintf(v, sizeof(v), "%lu", uid_base + w->domid);
	setenv("SPLITPV_WORKER_UID", v, 1);
	snprintf(v, sizeof(v), "%u", w->domid);
	setenv("SPLITPV_WORKER_DOMID", v, 1);
	/* blk: nothing (its images come from us, io_uring needs no privilege since 5.12's
	 * memcg accounting); net: CAP_NET_ADMIN to create and configure its taps. */
	setenv("SPLITPV_WORKER_CAPS", vif ? "net_admin" : "", 1);
	snprintf(v, sizeof(v), "%lu", worker_evtchns ? worker_evtchns : per_dev * POOL_DEVICES);
	setenv("SPLITPV_WORKER_EVTCHNS", v, 1);
	setenv("SPLITPV_WORKER_RUNDIR", worker_rundir, 1);
}

/*
 * A vbd whose params name a file or block device: open it here, with the device's mode,
 * for a worker that can't (it runs as the guest's uid). -1 for anything else (network
 * targets, null:, an empty cdrom) or on failure (the worker then reports it).
 */
static int open_storage(const struct dev *d)
{
	const struct blk_storage_ops *ops;
	char *params = NULL, *mode = NULL, *devtype = NULL;
	const char *arg;
	bool ro = false;
	int fd = -1;

	if (strcmp(d->type, "vbd") != 0 || uid_base == 0)
		return -1;
	if (xenbus_read_str(xs, XBT_NULL, d->path, "params", &params) != 0)
		return -1;
	if (blk_storage_parse_params(params, &ops, &arg) != 0 || ops != &blk_storage_file_ops)
		goto out;
	if (xenbus_read_str(xs, XBT_NULL, d->path, "mode", &mode) == 0)
		ro = strcmp(mode, "w") != 0 && strcmp(mode, "w!") != 0;
	if (xenbus_read_str(xs, XBT_NULL, d->path, "device-type", &devtype) == 0 &&
	    strcmp(devtype, "cdrom") == 0)
		ro = true;
	/* Not CLOEXEC: an upgrade re-exec passes it on (spawn sets it per worker). */
	fd = open(arg, (ro ? O_RDONLY : O_RDWR) | O_NOCTTY);
	if (fd < 0 && errno == EROFS && !ro)
		fd = open(arg, O_RDONLY | O_NOCTTY); /* read-only media: the worker sees it */
	if (fd < 0)
		log_warn(d->path, "opening %s for the worker: %s", arg, strerror(errno));
out:
	free(params);
	free(mode);
	free(devtype);
	return fd;
}

/* Fork and exec the worker for w with every device assigned to it. */
static int spawn(struct worker *w)
{
	char bin[PATH_MAX + 32], ctlarg[16];
	char **argv, (*jargs)[XENBUS_PATH_MAX + 16];
	const char *netstore;
	int sv[2], i = 0, nj = 0;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/%s", worker_dir, worker_for(w->type));
	if (access(bin, X_OK) != 0) {
		log_err(NULL, "dom%u: no worker %s for %s devices", w->domid, bin, w->type);
		return -ENOENT;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	argv = calloc((size_t)nworker_args + 2 * MAX_DEVICES + 8, sizeof(char *));
	jargs = calloc(MAX_DEVICES, sizeof(*jargs));
	if (!argv || !jargs) {
		free(argv);
		free(jargs);
		close(sv[0]);
		close(sv[1]);
		return -ENOMEM;
	}
	snprintf(ctlarg, sizeof(ctlarg), "%d", sv[1]);
	argv[i++] = bin;
	if (logging_syslog)
		argv[i++] = "--syslog";
	for (int k = 0; k < nworker_args; k++)
		argv[i++] = worker_args[k];
	argv[i++] = "--control-fd";
	argv[i++] = ctlarg;
	for (int k = 0; k < MAX_DEVICES; k++) {
		if (!devs[k].used || devs[k].w != w || (devs[k].jfd < 0 && devs[k].sfd < 0))
			continue;
		if (devs[k].sfd >= 0)
			snprintf(jargs[nj], sizeof(jargs[nj]), "%s=%d,%d", devs[k].path, devs[k].jfd,
				 devs[k].sfd);
		else
			snprintf(jargs[nj], sizeof(jargs[nj]), "%s=%d", devs[k].path, devs[k].jfd);
		argv[i++] = "--journal";
		argv[i++] = jargs[nj++];
	}
	for (int k = 0; k < MAX_DEVICES; k++)
		if (devs[k].used && devs[k].w == w)
			argv[i++] = devs[k].path;
	argv[i] = NULL;
	netstore = uid_base ? network_storage(w) : NULL;
	if (netstore)
		log_warn(NULL, "dom%u: network storage %s: its blk worker keeps running as root "
			 "(capability-reduced); see docs/OPERATIONS.md", w->domid, netstore);
	pid = fork();
	if (pid == 0) {
		/* Least privilege: the worker inherits its own guest's journals and images
		 * only, and becomes the guest's uid once it has opened what it needs. */
		for (int k = 0; k < MAX_DEVICES; k++) {
			if (devs[k].used && devs[k].jfd >= 0)
				fcntl(devs[k].jfd, F_SETFD, devs[k].w == w ? 0 : FD_CLOEXEC);
			if (devs[k].used && devs[k].sfd >= 0)
				fcntl(devs[k].sfd, F_SETFD, devs[k].w == w ? 0 : FD_CLOEXEC);
		}
		fcntl(sv[1], F_SETFD, 0);
		worker_env(w, netstore != NULL);
		signal(SIGPIPE, SIG_DFL);
		execv(bin, argv);
		_exit(127);
	}
	free(argv);
	free(jargs);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return -errno;
	}
	w->pid = pid;
	w->ctl = sv[0];
	w->started = now_s();
	ev_io_init(&w->ctl_io, ctl_cb, w->ctl, EV_READ);
	w->ctl_io.data = w;
	ev_io_start(loop, &w->ctl_io);
	log_info(NULL, "dom%u: %s worker %d started", w->domid, w->type, (int)pid);
	return 0;
}

/* Hand a device to the running worker of its guest: "add PATH" + its journal fd. */
static int hand_over(struct worker *w, struct dev *d)
{
	char msg[XENBUS_PATH_MAX + 16], letters[4] = "";
	union {
		char buf[CMSG_SPACE(sizeof(int) * 2)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { msg, 0 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[2], nfds = 0;

	if (d->jfd >= 0) {
		fds[nfds] = d->jfd;
		letters[nfds++] = 'j';
	}
	if (d->sfd >= 0) {
		fds[nfds] = d->sfd;
		letters[nfds++] = 's';
	}
	iov.iov_len = (size_t)snprintf(msg, sizeof(msg), "add %s fds=%s", d->path, letters);
	if (nfds) {
		struct cmsghdr *c;

		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	if (sendmsg(w->ctl, &mh, MSG_NOSIGNAL) < 0)
		return -errno;
	log_info(d->path, "handed to dom%u's worker %d", w->domid, (int)w->pid);
	return 0;
}

static void drop_worker(struct worker *w)
{
	for (int i = 0; i < MAX_DEVICES; i++)
		if (devs[i].used && devs[i].w == w)
			dev_drop(&devs[i]);
	w->used = false;
}

/* The back-off after a crash is over: start the guest's worker again. */
static void restart_cb(struct ev_loop *l, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	if (spawn(w) != 0)
		drop_worker(w);
}

static void assign(struct dev *d)
{
	struct worker *w = find_worker(d->type, d->domid);

	if (d->sfd < 0)
		d->sfd = open_storage(d);

	if (w && w->pid > 0) {
		d->w = w;
		if (hand_over(w, d) == 0)
			return;
		/* The worker is going away: its reaping starts a new one with d. */
		return;
	}
	if (w && ev_is_active(&w->restart_timer)) {
		d->w = w; /* backing off after crashes: the delayed start takes d too */
		return;
	}
	if (!w) {
		for (int i = 0; i < MAX_WORKERS && !w; i++)
			if (!workers[i].used)
				w = &workers[i];
		if (!w) {
			log_err(d->path, "too many workers");
			dev_drop(d);
			return;
		}
		memset(w, 0, sizeof(*w));
		w->used = true;
		w->ctl = -1;
		ev_timer_init(&w->restart_timer, restart_cb, 0., 0.);
		w->restart_timer.data = w;
		snprintf(w->type, sizeof(w->type), "%s", d->type);
		w->domid = d->domid;
	}
	d->w = w;
	if (spawn(w) != 0)
		drop_worker(w);
}

/* Present and online: a restarted worker takes it over whatever its state. */
static bool online(const char *path)
{
	bool on = false;

	return xenbus_read_bool(xs, XBT_NULL, path, "online", false, &on) == 0 && on;
}

/* A device we should start serving: online and not being torn down. */
static bool claimable(const char *path)
{
	int state = -1;

	if (!online(path) || xenbus_read_state(xs, XBT_NULL, path, &state))
		return false;
	return state == XenbusStateInitialising || state == XenbusStateInitWait ||
	       state == XenbusStateConnected || state == XenbusStateInitialised;
}

static void scan_type(const char *type)
{
	char base[128];
	unsigned int nfe = 0;
	char **fes;

	if (!worker_for(type))
		return;
	snprintf(base, sizeof(base), "%s/backend/%s", self_path, type);
	fes = xs_directory(xs, XBT_NULL, base, &nfe);
	for (unsigned int i = 0; fes && i < nfe; i++) {
		char fedir[XENBUS_PATH_MAX];
		unsigned int ndev = 0, domid;
		char **ids, *end;

		domid = (unsigned int)strtoul(fes[i], &end, 10);
		if (*end || end == fes[i] || domid > 0x7FEF)
			continue;
		if (snprintf(fedir, sizeof(fedir), "%s/%s", base, fes[i]) >= (int)sizeof(fedir))
			continue;
		ids = xs_directory(xs, XBT_NULL, fedir, &ndev);
		for (unsigned int j = 0; ids && j < ndev; j++) {
			char path[XENBUS_PATH_MAX];
			struct dev *d;

			if (snprintf(path, sizeof(path), "%s/%s", fedir, ids[j]) >= (int)sizeof(path))
				continue;
			d = find_dev(path);
			if (d && d->w)
				continue;
			if (d && d->failed)
				continue; /* until the toolstack removes it (pruned below) */
			if (!d) {
				if (!claimable(path))
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
				d->domid = domid;
				d->sfd = -1;
				/* Not CLOEXEC: an upgrade re-exec passes it on. */
				d->jfd = memfd_create("splitpv-journal", 0);
				if (d->jfd < 0)
					log_warn(path, "no crash journal: %s", strerror(errno));
			} else if (!online(path)) {
				continue; /* adopted journal of a device that went away meanwhile */
			}
			assign(d);
		}
		free(ids);
	}
	free(fes);
	/* Forget devices whose directory is gone (failed ones, adopted leftovers). */
	for (int k = 0; k < MAX_DEVICES; k++) {
		struct dev *d = &devs[k];
		char *v;

		if (!d->used || d->w || strcmp(d->type, type) != 0)
			continue;
		v = xs_read(xs, XBT_NULL, d->path, NULL);
		if (!v)
			dev_drop(d);
		free(v);
	}
}

static void scan_all(void)
{
	scan_type("vbd");
	scan_type("vif");
}

/* "gone PATH RC" from a worker: that device has left it. */
static void ctl_message(struct worker *w, const char *msg)
{
	char path[XENBUS_PATH_MAX];
	int rc = 0;
	struct dev *d;

	if (sscanf(msg, "gone %255s %d", path, &rc) < 1)
		return;
	d = find_dev(path);
	if (!d || d->w != w)
		return;
	if (rc) {
		log_warn(path, "dom%u's worker could not serve it: %s", w->domid, strerror(-rc));
		d->failed = true;
		d->w = NULL;
		if (d->jfd >= 0)
			close(d->jfd);
		d->jfd = -1;
		if (d->sfd >= 0)
			close(d->sfd);
		d->sfd = -1;
		return;
	}
	log_info(path, "released by dom%u's worker", w->domid);
	dev_drop(d);
}

static void ctl_drain(struct worker *w)
{
	char buf[XENBUS_PATH_MAX + 32];
	ssize_t n;

	while (w->ctl >= 0 && (n = recv(w->ctl, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
		buf[n] = '\0';
		ctl_message(w, buf);
	}
}

static void ctl_cb(struct ev_loop *l, ev_io *io, int revents)
{
	struct worker *w = io->data;
	char buf[XENBUS_PATH_MAX + 32];
	ssize_t n = recv(w->ctl, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	if (n > 0) {
		buf[n] = '\0';
		ctl_message(w, buf);
		/* The toolstack may have offered the same path again while its previous
		 * incarnation was still leaving. */
		scan_all();
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		ev_io_stop(l, io); /* the worker is exiting: its reaping follows */
	}
}

/* A dead worker's xenstore mux socket (xenbus/xs_mux.h): in our directory, it can't
 * remove it itself. */
static void worker_sock_unlink(pid_t pid)
{
	char sock[PATH_MAX + 32];

	if (!worker_rundir[0])
		return;
	snprintf(sock, sizeof(sock), "%s/xs-%d.sock", worker_rundir, (int)pid);
	unlink(sock);
}

/* libev has reaped the child already (ev_child): act on its pid and status. */
static void reaped(pid_t pid, int status)
{
	struct worker *w = NULL;
	bool crashed, again = false;

	for (int i = 0; i < MAX_WORKERS && !w; i++)
		if (workers[i].used && workers[i].pid == pid)
			w = &workers[i];
	if (!w)
		return;
	ctl_drain(w);
	worker_sock_unlink(pid);
	ev_io_stop(loop, &w->ctl_io);
	close(w->ctl);
	w->ctl = -1;
	w->pid = 0;
	crashed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (int i = 0; i < MAX_DEVICES; i++) {
		struct dev *d = &devs[i];

		if (!d->used || d->w != w)
			continue;
		/* After a crash every online device is taken over (the journal says how);
		 * after a clean exit only devices it never got to (handed over late). */
		if (crashed ? online(d->path) : claimable(d->path))
			again = true;
		else
			dev_drop(d);
	}
	if (crashed)
		log_warn(NULL, "dom%u: %s worker %d died (status %#x) after %.3f s", w->domid,
			 w->type, (int)pid, status, now_s() - w->started);
	/* Only the worker's own faults count (a bug, or what its journal replays): being
	 * killed from outside (SIGKILL, SIGTERM: an admin, the OOM killer, a test) is
	 * not a crash loop. */
	if (crashed && now_s() - w->started < RAPID_S &&
	    (!WIFSIGNALED(status) ||
	     (WTERMSIG(status) != SIGKILL && WTERMSIG(status) != SIGTERM)))
		w->rapid++;
	else
		w->rapid = 0;
	if (again && w->rapid > MAX_RAPID) {
		log_err(NULL, "dom%u: %s worker crashed %u times in a row within %.0f s of "
			"starting: giving up its devices", w->domid, w->type, w->rapid, RAPID_S);
		for (int i = 0; i < MAX_DEVICES; i++)
			if (devs[i].used && devs[i].w == w)
				xenbus_switch_state(xs, XBT_NULL, devs[i].path, XenbusStateClosing);
		again = false;
	}
	if (again && w->restarts < MAX_RESTARTS) {
		w->restarts += crashed;
		if (w->rapid) {
			double delay = BACKOFF_MIN_S * (double)(1u << (w->rapid - 1));

			if (delay > BACKOFF_MAX_S)
				delay = BACKOFF_MAX_S;
			ev_timer_set(&w->restart_timer, delay, 0.);
			ev_timer_start(loop, &w->restart_timer);
			return;
		}
		if (spawn(w) == 0)
			return;
	}
	for (int i = 0; i < MAX_DEVICES; i++)
		if (devs[i].used && devs[i].w == w)
			dev_drop(&devs[i]);
	w->used = false;
}

static void child_cb(struct ev_loop *l, ev_child *c, int revents)
{
	reaped(c->rpid, c->rstatus);
	scan_all(); /* a device may have been re-offered while its worker was exiting */
}

/* @releaseDomain: tell the workers of guests that are gone to let go now. */
static void release_domains(void)
{
	for (int i = 0; i < MAX_WORKERS; i++) {
		struct worker *w = &workers[i];

		if (!w->used || w->pid <= 0 || xs_is_domain_introduced(xs, w->domid))
			continue;
		log_info(NULL, "dom%u is gone: releasing its %s devices", w->domid, w->type);
		for (int k = 0; k < MAX_DEVICES; k++) {
			char msg[XENBUS_PATH_MAX + 8];
			int n;

			if (!devs[k].used || devs[k].w != w)
				continue;
			n = snprintf(msg, sizeof(msg), "gone %s", devs[k].path);
			send(w->ctl, msg, (size_t)n, MSG_NOSIGNAL);
		}
	}
}

/*
 * Scans run at most once per loop iteration, whatever the number of events: a worker
 * or toolstack writing many keys (carrier, statistics, features) must not make the
 * supervisor fall behind its xenstore connection.
 */
static ev_prepare scan_prep;
static bool scan_vbd, scan_vif, scan_release;

static void scan_prepare_cb(struct ev_loop *l, ev_prepare *p, int revents)
{
	if (scan_release) {
		scan_release = false;
		release_domains();
	}
	if (scan_vbd) {
		scan_vbd = false;
		scan_type("vbd");
	}
	if (scan_vif) {
		scan_vif = false;
		scan_type("vif");
	}
}

/* Events that can change what we serve: the type directory itself, a frontend's or a
 * device's directory, and a device's online or state key. */
static bool relevant(const char *path, const char *type)
{
	char base[160];
	const char *rest, *key;
	size_t n;
	int slashes = 0;

	n = (size_t)snprintf(base, sizeof(base), "%s/backend/%s", self_path, type);
	if (strncmp(path, base, n) != 0)
		return false;
	rest = path + n;
	for (const char *c = rest; *c; c++)
		slashes += *c == '/';
	if (slashes <= 2)
		return true; /* backend/<type>, /<fe> or /<fe>/<devid> */
	if (slashes > 3)
		return false;
	key = strrchr(rest, '/') + 1;
	return strcmp(key, "online") == 0 || strcmp(key, "state") == 0;
}

static void watch_cb(struct xenbus_watcher *wt, const char *path, const char *token)
{
	if (strcmp(token, "release") == 0)
		scan_release = true;
	else if (strcmp(token, "vbd") == 0 && relevant(path, "vbd"))
		scan_vbd = true;
	else if (strcmp(token, "vif") == 0 && relevant(path, "vif"))
		scan_vif = true;
}

static struct xenbus_watcher watcher;
static ev_timer reconnect_timer;

static int watch_all(void)
{
	char p[128];

	xenbus_watcher_init(&watcher, loop, xs, watch_cb, NULL);
	watcher.error_cb = NULL; /* set by the caller once everything is watched */
	snprintf(p, sizeof(p), "%s/backend/vbd", self_path);
	if (xenbus_watch(&watcher, p, "vbd"))
		return -1;
	snprintf(p, sizeof(p), "%s/backend/vif", self_path);
	if (xenbus_watch(&watcher, p, "vif"))
		return -1;
	if (xenbus_watch(&watcher, "@releaseDomain", "release"))
		return -1;
	return 0;
}

static void watch_error_cb(struct xenbus_watcher *w, int err);

/* Lost xenstore (xenstored restarted, or dropped us): reconnect and rescan. The devices
 * we know keep their workers; the rescan picks up what changed meanwhile. */
static void reconnect_cb(struct ev_loop *l, ev_timer *t, int revents)
{
	struct xs_handle *nxs = xenbus_xs_open();

	if (!nxs) {
		log_warn(NULL, "xenstore still unreachable: %s", strerror(errno));
		return; /* the repeating timer tries again */
	}
	xenbus_watcher_deinit(&watcher);
	xs_close(xs);
	xs = nxs;
	if (watch_all() != 0) {
		log_warn(NULL, "re-watching xenstore failed: %s", strerror(errno));
		return;
	}
	watcher.error_cb = watch_error_cb;
	ev_timer_stop(l, t);
	log_info(NULL, "xenstore connection restored");
	scan_vbd = scan_vif = scan_release = true;
}

static void watch_error_cb(struct xenbus_watcher *w, int err)
{
	log_err(NULL, "lost the xenstore connection (%s): reconnecting", strerror(-err));
	ev_timer_again(loop, &reconnect_timer);
}

/* ---- operations: the control socket ---- */

static void read_key(const char *dir, const char *key, char *out, size_t len)
{
	char *v = NULL;

	if (xenbus_read_str(xs, XBT_NULL, dir, key, &v) == 0) {
		snprintf(out, len, "%s", v);
		free(v);
	} else {
		snprintf(out, len, "-");
	}
}

static void report_status(FILE *f)
{
	fprintf(f, "%-40s %5s %7s %8s %-12s %-12s %6s %5s %4s %-10s %s\n", "DEVICE", "DOMID",
		"WORKER", "RESTARTS", "STATE", "FRONTEND", "QUEUES", "ORDER", "PERS", "PROTOCOL",
		"PARAMS");
	for (int i = 0; i < MAX_DEVICES; i++) {
		struct dev *d = &devs[i];
		char fe[XENBUS_PATH_MAX], nq[16], order[16], pers[16], proto[32], params[128];
		int be_state = -1, fe_state = -1;
		const char *p = d->path;

		if (!d->used)
			continue;
		xenbus_read_state(xs, XBT_NULL, d->path, &be_state);
		read_key(d->path, "frontend", fe, sizeof(fe));
		xenbus_read_state(xs, XBT_NULL, fe, &fe_state);
		read_key(fe, "multi-queue-num-queues", nq, sizeof(nq));
		if (strcmp(nq, "-") == 0)
			snprintf(nq, sizeof(nq), "1");
		read_key(fe, "ring-page-order", order, sizeof(order));
		if (strcmp(order, "-") == 0)
			snprintf(order, sizeof(order), "0");
		read_key(d->path, "feature-persistent", pers, sizeof(pers));
		read_key(fe, "protocol", proto, sizeof(proto));
		read_key(d->path, strcmp(d->type, "vbd") == 0 ? "params" : "mac", params,
			 sizeof(params));
		if (strncmp(p, self_path, strlen(self_path)) == 0)
			p += strlen(self_path) + 1;
		fprintf(f, "%-40s %5u %7d %8u %-12s %-12s %6s %5s %4s %-10s %s%s\n", p, d->domid,
			d->w ? (int)d->w->pid : 0, d->w ? d->w->restarts : 0,
			xenbus_state_name(be_state), xenbus_state_name(fe_state), nq, order, pers,
			proto, params, d->failed ? " (failed)" : "");
	}
}

static void report_stats(FILE *f)
{
	for (int i = 0; i < MAX_DEVICES; i++) {
		struct dev *d = &devs[i];
		struct xenbus_journal j;
		char text[XENBUS_JOURNAL_STATS + 1];
		int n;

		if (!d->used || d->jfd < 0)
			continue;
		xenbus_journal_init(&j, d->jfd);
		if (xenbus_journal_map(&j) != 0 || !j.hdr) {
			fprintf(f, "%s\n  (no statistics yet)\n", d->path);
			continue;
		}
		fprintf(f, "%s dom%u restarts %u connected %u\n", d->path, d->domid,
			j.hdr->restarts, j.hdr->active);
		n = xenbus_journal_stats_read(&j, text, sizeof(text) - 1);
		if (n > 0) {
			text[n] = '\0';
			for (char *l = text, *e; *l; l = e + 1) {
				e = strchr(l, '\n');
				if (!e)
					break;
				fprintf(f, "  %.*s\n", (int)(e - l), l);
			}
		}
		if (j.hdr->magic == XENBUS_JOURNAL_MAGIC && j.hdr->nr_queues <= XENBUS_JOURNAL_MAX_QUEUES &&
		    j.size >= xenbus_journal_bytes(j.hdr->nr_queues, 0)) {
			for (unsigned int q = 0; q < j.hdr->nr_queues; q++) {
				struct xenbus_journal_queue *jq = xenbus_journal_queue(&j, q);
				uint32_t rc = jq->req_cons, rp = jq->rsp_prod;

				fprintf(f, "  queue %u: requests %u responses %u in-flight %u\n", q, rc,
					rp, rc - rp);
			}
		}
		xenbus_journal_unmap(&j);
	}
}

static void listen_cb(struct ev_loop *l, ev_io *io, int revents)
{
	char cmd[64] = "";
	ssize_t n;
	FILE *f;
	int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	/* Short commands from local administrators: a bounded blocking read. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ 1, 0 }, sizeof(struct timeval));
	n = read(fd, cmd, sizeof(cmd) - 1);
	cmd[n > 0 ? n : 0] = '\0';
	cmd[strcspn(cmd, "\r\n")] = '\0';
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return;
	}
	if (strcmp(cmd, "status") == 0) {
		report_status(f);
	} else if (strcmp(cmd, "stats") == 0) {
		report_stats(f);
	} else if (strcmp(cmd, "upgrade") == 0) {
		fprintf(f, "re-executing %s\n", self_exe);
		upgrade_requested = true;
		ev_break(l, EVBREAK_ALL);
	} else {
		fprintf(f, "unknown command '%s' (status, stats, upgrade)\n", cmd);
	}
	fclose(f);
}

static int open_listen(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(sock_path)];

	if (strlen(sock_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	snprintf(dir, sizeof(dir), "%s", sock_path);
	if (strrchr(dir, '/')) {
		*strrchr(dir, '/') = '\0';
		mkdir(dir, 0750);
	}
	strcpy(sa.sun_path, sock_path);
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0)
		return -errno;
	unlink(sock_path);
	if (bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(listen_fd, 8) < 0) {
		int rc = -errno;

		close(listen_fd);
		listen_fd = -1;
		return rc;
	}
	chmod(sock_path, 0600);
	return 0;
}

/* Upgrade: the workers are killed (as in a crash: their journals are consistent at
 * every instruction) and the new binary takes every journal over on its argv. */
static void reexec(void)
{
	char **argv = calloc((size_t)saved_argc + 2 * MAX_DEVICES + 2, sizeof(char *));
	char (*jargs)[XENBUS_PATH_MAX + 16] = calloc(MAX_DEVICES, sizeof(*jargs));
	int i = 0, nj = 0, dashdash = saved_argc;

	if (!argv || !jargs) {
		log_err(NULL, "upgrade: out of memory");
		free(argv);
		free(jargs);
		return;
	}
	for (int k = 0; k < MAX_WORKERS; k++)
		if (workers[k].used && workers[k].pid > 0)
			kill(workers[k].pid, SIGKILL);
	for (int k = 0; k < MAX_WORKERS; k++) {
		if (workers[k].used && workers[k].pid > 0) {
			waitpid(workers[k].pid, NULL, 0);
			worker_sock_unlink(workers[k].pid);
		}
	}
	argv[i++] = saved_argv[0];
	for (int k = 1; k < saved_argc; k++) {
		if (strcmp(saved_argv[k], "--") == 0) {
			dashdash = k;
			break;
		}
		if (strcmp(saved_argv[k], "--adopt-journal") == 0) {
			k++;
			continue;
		}
		argv[i++] = saved_argv[k];
	}
	for (int k = 0; k < MAX_DEVICES; k++) {
		if (!devs[k].used || devs[k].jfd < 0)
			continue;
		snprintf(jargs[nj], sizeof(jargs[nj]), "%s=%d", devs[k].path, devs[k].jfd);
		argv[i++] = "--adopt-journal";
		argv[i++] = jargs[nj++];
	}
	for (int k = dashdash; k < saved_argc; k++)
		argv[i++] = saved_argv[k];
	argv[i] = NULL;
	log_info(NULL, "upgrade: re-executing %s with %d journal(s)", self_exe, nj);
	if (listen_fd >= 0)
		close(listen_fd);
	unlink(sock_path);
	execv(self_exe, argv);
	log_err(NULL, "upgrade: exec %s: %s", self_exe, strerror(errno));
	exit(1);
}

/* --adopt-journal PATH=FD (from an upgrade): the device keeps its journal. */
static void adopt(const char *arg)
{
	const char *eq = strrchr(arg, '=');
	unsigned int bdom, domid, devid;
	char type[16];
	const char *rest;
	struct dev *d = NULL;
	char path[XENBUS_PATH_MAX];

	if (!eq || (size_t)(eq - arg) >= sizeof(path))
		return;
	memcpy(path, arg, (size_t)(eq - arg));
	path[eq - arg] = '\0';
	if (xenbus_parse_backend_path(path, &bdom, type, sizeof(type), &domid, &devid, &rest) ||
	    *rest)
		return;
	for (int k = 0; k < MAX_DEVICES && !d; k++)
		if (!devs[k].used)
			d = &devs[k];
	if (!d)
		return;
	memset(d, 0, sizeof(*d));
	d->used = true;
	snprintf(d->path, sizeof(d->path), "%s", path);
	snprintf(d->type, sizeof(d->type), "%s", type);
	d->domid = domid;
	d->jfd = atoi(eq + 1);
	d->sfd = -1; /* opened again when it is assigned */
}

/* Where workers put their xenstore mux sockets: root's, searchable by all (0711), so a
 * worker reaches its own socket (0600, its uid) and no other's. */
static int open_worker_rundir(void)
{
	const char *env = getenv("SPLITPV_WORKER_RUNDIR"), *shim = getenv("SPLITPV_SHIM");
	struct stat st;

	if (env && *env)
		snprintf(worker_rundir, sizeof(worker_rundir), "%s", env);
	else if (shim && *shim)
		snprintf(worker_rundir, sizeof(worker_rundir), "/tmp/splitpv-workers");
	else
		snprintf(worker_rundir, sizeof(worker_rundir), "/run/splitpv-workers");
	if ((mkdir(worker_rundir, 0711) != 0 && errno != EEXIST) ||
	    lstat(worker_rundir, &st) != 0) {
		log_err(NULL, "worker directory %s: %s", worker_rundir, strerror(errno));
		return -1;
	}
	/* In /tmp someone else could have made it first: ours, or refuse. */
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || chmod(worker_rundir, 0711) != 0) {
		log_err(NULL, "worker directory %s: not a directory of root's", worker_rundir);
		return -1;
	}
	return 0;
}

static void stop_cb(struct ev_loop *l, ev_signal *s, int revents)
{
	if (s->signum == SIGHUP)
		upgrade_requested = true;
	ev_break(l, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "worker-dir", required_argument, NULL, 'w' },
		{ "socket", required_argument, NULL, 'S' },
		{ "syslog", no_argument, NULL, 's' },
		{ "adopt-journal", required_argument, NULL, 'A' },
		{ "worker-uid-base", required_argument, NULL, 'U' },
		{ "worker-evtchns", required_argument, NULL, 'E' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	ev_signal sigterm, sigint, sighup;
	ev_child child;
	ev_io listen_io;
	char *domid = NULL;
	ssize_t n;
	int c;

	saved_argc = argc;
	saved_argv = argv;
	loop = EV_DEFAULT;
	xenbus_supervisor_socket_path(sock_path, sizeof(sock_path));
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			snprintf(worker_dir, sizeof(worker_dir), "%s", optarg);
			break;
		case 'S':
			snprintf(sock_path, sizeof(sock_path), "%s", optarg);
			break;
		case 's':
			log_use_syslog("splitpvd");
			logging_syslog = true;
			break;
		case 'A':
			adopt(optarg);
			break;
		case 'U': {
			char *end;

			errno = 0;
			uid_base = strtoul(optarg, &end, 0);
			if (errno || *end || uid_base > 0xfffffffeul - 0x7FEF) {
				fprintf(stderr, "splitpvd: --worker-uid-base: 0..%#lx\n",
					0xfffffffeul - 0x7FEF);
				return 2;
			}
			break;
		}
		case 'E': {
			char *end;

			errno = 0;
			worker_evtchns = strtoul(optarg, &end, 0);
			if (errno || *end || worker_evtchns < 1 || worker_evtchns > 4096) {
				fprintf(stderr, "splitpvd: --worker-evtchns: 1..4096\n");
				return 2;
			}
			break;
		}
		default:
			printf("usage: splitpvd [--worker-dir DIR] [--socket PATH] [--syslog] "
			       "[--worker-uid-base N] [--worker-evtchns N] [-- worker options]\n"
			       "  workers run as uid/gid N + guest domid (default %#x; 0: as root)\n"
			       "  --worker-evtchns: event-channel handles each worker opens before it\n"
			       "  drops root (default: 8 devices' worth of --max-queues, +1 per vif)\n"
			       "  SIGHUP or `splitpv upgrade`: re-execute, keeping every guest attached\n",
			       DEFAULT_UID_BASE);
			return c == 'h' ? 0 : 2;
		}
	}
	worker_args = argv + optind;
	nworker_args = argc - optind;
	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n <= 0)
		return 1;
	self_exe[n] = '\0';
	if (strstr(self_exe, " (deleted)"))
		*strstr(self_exe, " (deleted)") = '\0';
	if (!worker_dir[0]) {
		snprintf(worker_dir, sizeof(worker_dir), "%s", self_exe);
		*strrchr(worker_dir, '/') = '\0';
	}
	signal(SIGPIPE, SIG_IGN);
	if (uid_base && (getenv("SPLITPV_NO_SANDBOX") || geteuid() != 0)) {
		log_warn(NULL, "%s: workers keep running as uid %u, NOT as their guest's uid",
			 geteuid() ? "not root" : "SPLITPV_NO_SANDBOX is set", (unsigned)geteuid());
		uid_base = 0;
	} else if (uid_base == 0) {
		log_warn(NULL, "--worker-uid-base 0: workers run as ROOT (capability-reduced "
			 "sandbox only); a compromised worker can reach other guests");
	}
	if (uid_base && open_worker_rundir() != 0)
		return 1;
	xs = xenbus_xs_open();
	if (!xs) {
		log_err(NULL, "xenstore: %s", strerror(errno));
		return 1;
	}
	/* Our own domain: "domid" relative to our home (0 in dom0 and on the shim). */
	domid = xs_read(xs, XBT_NULL, "domid", NULL);
	snprintf(self_path, sizeof(self_path), "/local/domain/%s", domid ? domid : "0");
	free(domid);

	ev_child_init(&child, child_cb, 0, 0);
	ev_child_start(loop, &child);
	ev_prepare_init(&scan_prep, scan_prepare_cb);
	ev_prepare_start(loop, &scan_prep);
	ev_init(&reconnect_timer, reconnect_cb);
	reconnect_timer.repeat = 0.5;
	if (watch_all() != 0) {
		log_err(NULL, "watching xenstore: %s", strerror(errno));
		return 1;
	}
	watcher.error_cb = watch_error_cb;
	if (open_listen() != 0)
		log_warn(NULL, "control socket %s: %s", sock_path, strerror(errno));
	else {
		ev_io_init(&listen_io, listen_cb, listen_fd, EV_READ);
		ev_io_start(loop, &listen_io);
	}
	ev_signal_init(&sigterm, stop_cb, SIGTERM);
	ev_signal_start(loop, &sigterm);
	ev_signal_init(&sigint, stop_cb, SIGINT);
	ev_signal_start(loop, &sigint);
	ev_signal_init(&sighup, stop_cb, SIGHUP);
	ev_signal_start(loop, &sighup);
	log_info(NULL, "splitpvd: watching %s/backend/{vbd,vif}, workers in %s, control %s",
		 self_path, worker_dir, sock_path);
	ev_run(loop, 0);

	if (upgrade_requested) {
		xenbus_watcher_deinit(&watcher);
		xs_close(xs);
		reexec();
	}
	for (int i = 0; i < MAX_WORKERS; i++)
		if (workers[i].used && workers[i].pid > 0)
			kill(workers[i].pid, SIGTERM);
	for (int i = 0; i < MAX_WORKERS; i++) {
		if (workers[i].used && workers[i].pid > 0) {
			waitpid(workers[i].pid, NULL, 0);
			worker_sock_unlink(workers[i].pid);
		}
	}
	xenbus_watcher_deinit(&watcher);
	xs_close(xs);
	if (listen_fd >= 0) {
		close(listen_fd);
		unlink(sock_path);
	}
	return 0;
}
