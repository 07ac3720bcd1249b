/*
 * privsep — issue 6 "least privilege" on the shim: workers drop root.
 * Two guests, each with a disk and a NIC, served by splitpvd's workers:
 *  1. every worker runs as uid = gid = 0x7ff00000 + its guest's domid (different per
 *     guest), CapEff exactly nothing (blk) / CAP_NET_ADMIN (net), NoNewPrivs 1,
 *     Seccomp 2; one guest's uid can't signal the other guest's workers;
 *  2. a blk worker holds its own guest's image open (splitpvd opened it) and not the
 *     other guest's; with its uid the image path can't be opened, directly or through
 *     /proc/<worker>/fd;
 *  3. with a worker's uid the shim's hv.sock and xenstored refuse the connection (as the
 *     root-only device nodes on Xen), and a worker-mode event-channel handle
 *     (hv_worker_init) binds its guest's ports but not the other guest's (-EACCES);
 *  4. a second disk hot-plugged into guest A's running (dropped) worker serves verified
 *     I/O; the frontend of disk A reconnects 50 times (the worker's pool of event-channel
 *     handles doesn't run out) with verified I/O.
 *
 *   privsep [reconnects]      (default 50)
 */
#include "frontend-shim/blkfront.h"
#include "frontend-shim/guest.h"
#include "frontend-shim/netfront.h"
#include "frontend-shim/shimhv.h"
#include "frontend-shim/toolstack.h"
#include "tests/integration/lifecycle_util.h"
#include "tests/integration/shim_harness.h"
#include "xenbus/hv.h"
#include "xenbus/xs.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <xen/io/xenbus.h>
#include <xenstore.h>

#define DOM_A 6
#define DOM_B 7
#define UID_BASE 0x7ff00000u

static struct shim_harness shim;
static struct shim_ts *ts;
static char img[3][300];

static int disk_attach(unsigned int domid, const char *vdev, const char *file,
		       unsigned int *devid)
{
	struct shim_disk_spec spec;
	char s[400], err[256];
	int rc;

	snprintf(s, sizeof(s), "vdev=%s,access=rw,target=%s", vdev, file);
	rc = shim_disk_spec_parse(s, &spec, err, sizeof(err));
	return rc ?: shim_ts_disk_attach(ts, domid, &spec, devid);
}

static int nic_attach(unsigned int domid, const uint8_t mac[6])
{
	struct shim_nic_spec spec;
	char s[160], m[18], err[128];
	int rc;

	shim_mac_format(mac, m);
	snprintf(s, sizeof(s), "bridge=nobridge,mac=%s,devid=0", m);
	rc = shim_nic_spec_parse(s, &spec, err, sizeof(err));
	return rc ?: shim_ts_nic_attach(ts, domid, &spec);
}

static void rw_check(struct blkfront *bf, uint64_t blk, uint64_t ver, const char *what)
{
	uint8_t w[8192], r[8192];

	lc_pattern(w, sizeof(w), blk, ver);
	CHECK(blkfront_write(bf, blk * 16, w, sizeof(w)) == 0, "%s: write", what);
	CHECK(blkfront_read(bf, blk * 16, r, sizeof(r)) == 0 && memcmp(w, r, sizeof(w)) == 0,
	      "%s: read back", what);
}

/* "Key:\tvalue..." of /proc/pid/status into out; 0 or -1. */
static int status_field(pid_t pid, const char *key, char *out, size_t len)
{
	char path[64], line[256];
	size_t n = strlen(key);
	FILE *f;
	int rc = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, n) == 0 && line[n] == ':') {
			char *v = line + n + 1;

			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = '\0';
			snprintf(out, len, "%s", v);
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

/* The worker of comm serving domid (by its uid), or -1. */
static pid_t worker_of(pid_t splitpvd, const char *comm, unsigned int domid)
{
	pid_t p[8];
	int n = lc_children(splitpvd, comm, p, 8);
	char want[64], uid[64];

	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", UID_BASE + domid, UID_BASE + domid,
		 UID_BASE + domid, UID_BASE + domid);
	for (int i = 0; i < n; i++)
		if (status_field(p[i], "Uid", uid, sizeof(uid)) == 0 && strcmp(uid, want) == 0)
			return p[i];
	return -1;
}

static void check_identity(pid_t w, unsigned int domid, const char *capeff, const char *what)
{
	char v[64], want[64];

	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", UID_BASE + domid, UID_BASE + domid,
		 UID_BASE + domid, UID_BASE + domid);
	CHECK(status_field(w, "Gid", v, sizeof(v)) == 0 && strcmp(v, want) == 0,
	      "%s: Gid '%s', want '%s'", what, v, want);
	CHECK(status_field(w, "Groups", v, sizeof(v)) != 0 || v[0] == '\0',
	      "%s: supplementary groups '%s'", what, v);
	CHECK(status_field(w, "CapEff", v, sizeof(v)) == 0 && strcmp(v, capeff) == 0,
	      "%s: CapEff %s, want %s", what, v, capeff);
	CHECK(status_field(w, "CapPrm", v, sizeof(v)) == 0 && strcmp(v, capeff) == 0,
	      "%s: CapPrm %s, want %s", what, v, capeff);
	CHECK(status_field(w, "NoNewPrivs", v, sizeof(v)) == 0 && strcmp(v, "1") == 0,
	      "%s: NoNewPrivs %s", what, v);
	CHECK(status_field(w, "Seccomp", v, sizeof(v)) == 0 && strcmp(v, "2") == 0,
	      "%s: Seccomp %s", what, v);
}

/* The fd number of worker w open on path, or -1. */
static int fd_on(pid_t w, const char *path)
{
	char dir[64], link[PATH_MAX + 64], target[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int found = -1;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)w);
	d = opendir(dir);
	if (!d)
		return -1;
	while ((e = readdir(d)) && found < 0) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, path) == 0)
			found = atoi(e->d_name);
	}
	closedir(d);
	return found;
}

/*
 * In a child that becomes uid (as the worker): open path and /proc/<w>/fd/<fd>.
 * Returns a bit mask of what it could open (0: nothing; what we want).
 */
static int child_opens(unsigned int uid, const char *path, pid_t w, int fd)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		char proc[96];
		int got = 0, f;

		if (setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
			_exit(100);
		f = open(path, O_RDONLY);
		if (f >= 0 || errno != EACCES)
			got |= 1;
		snprintf(proc, sizeof(proc), "/proc/%d/fd/%d", (int)w, fd);
		f = open(proc, O_RDONLY);
		if (f >= 0)
			got |= 2;
		_exit(got);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return 100;
	return WEXITSTATUS(st);
}

/* In a child with the worker's uid: can it reach hv.sock or xenstored? Bit mask. */
static int child_connects(unsigned int uid)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		struct shim_hv_req req = { .op = SHIM_HV_DOMAIN_ATTACH, .domid = DOM_A };
		struct shim_hv_rsp rsp;
		struct xs_handle *xs;
		int got = 0, fds[4], sock;

		if (setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
			_exit(100);
		/* The rundir is root's 0700: even reaching the sockets fails; make sure the
		 * daemons themselves refuse by trying through a descriptor of the directory
		 * the parent opened for us. */
		sock = shim_hv_connect(getenv("PRIVSEP_HV_DIR"));
		if (sock >= 0 && shim_hv_call(sock, &req, &rsp, fds, 4) == 0)
			got |= 1;
		xs = xs_open(XS_OPEN_SOCKETONLY);
		if (xs) {
			char *v = xs_read(xs, XBT_NULL, "/local/domain/0/name", NULL);

			if (v)
				got |= 2;
			free(v);
			xs_close(xs);
		}
		_exit(got);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return 100;
	return WEXITSTATUS(st);
}

/* With uid's identity: may it signal pid? (kill 0: the permission check only.) */
static bool can_signal(unsigned int uid, pid_t pid)
{
	pid_t child = fork();
	int st;

	if (child == 0) {
		if (setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
			_exit(100);
		_exit(kill(pid, 0) == 0 ? 0 : errno == EPERM ? 1 : 2);
	}
	if (child < 0 || waitpid(child, &st, 0) != child || !WIFEXITED(st))
		return true; /* can't tell: count it as a failure */
	return WEXITSTATUS(st) == 0;
}

/* hv_worker_init as a worker does it, in a child (it is process-wide): a restricted
 * handle binds guest A's port and not guest B's. 0 = as wanted, else a step number. */
static int child_restricted(int port_a, int port_b)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		struct hv_evt *e = NULL, *e2 = NULL, *e3 = NULL;
		int p;

		if (hv_worker_init(DOM_A, 2) != 0)
			_exit(1);
		if (hv_evt_open(&e) != 0)
			_exit(2);
		if (hv_evt_bind_interdomain(e, DOM_B, (uint32_t)port_b) != -EACCES)
			_exit(3);
		p = hv_evt_bind_interdomain(e, DOM_A, (uint32_t)port_a);
		if (p < 0)
			_exit(4);
		if (hv_evt_open(&e2) != 0 || hv_evt_open(&e3) != -EMFILE)
			_exit(5);
		hv_evt_close(e); /* unbinds, back to the pool */
		if (hv_worker_pool_free() != 1 || hv_evt_open(&e) != 0)
			_exit(6);
		/* A's port is free again after the pooled close: bind it once more. */
		if (hv_evt_bind_interdomain(e, DOM_A, (uint32_t)port_a) < 0)
			_exit(7);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return 100;
	return WEXITSTATUS(st);
}

int main(int argc, char **argv)
{
	static const char *const wopts[] = { "--max-queues", "2", NULL };
	static const uint8_t mac[2][6] = { { 0x00, 0x16, 0x3e, 0x00, 0x06, 0x00 },
					   { 0x00, 0x16, 0x3e, 0x00, 0x07, 0x00 } };
	int reconnects = argc > 1 ? atoi(argv[1]) : 50;
	struct shim_ts_config cfg = { 0 };
	struct shim_guest *ga = NULL, *gb = NULL;
	struct blkfront_opts bo;
	struct netfront_opts no;
	struct blkfront *da = NULL, *db = NULL, *dc = NULL;
	struct netfront *na = NULL, *nb = NULL;
	unsigned int dev_a = 0, dev_b = 0, dev_c = 0;
	pid_t splitpvd = -1, blk_a, blk_b, net_a, net_b;
	int rc;

	if (geteuid() != 0) {
		printf("SKIP: needs root (workers switch to per-guest uids)\n");
		return 77;
	}
	if (getenv("SPLITPV_NO_SANDBOX")) {
		printf("SKIP: SPLITPV_NO_SANDBOX is set: workers keep root by request\n");
		return 77;
	}
	if (access("/dev/net/tun", R_OK | W_OK) != 0) {
		printf("SKIP: no /dev/net/tun (%s): the net backend can't create taps\n",
		       strerror(errno));
		return 77;
	}
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("sysfs", "/sys", "sysfs", 0, NULL) != 0) {
		printf("SKIP: can't create network and mount namespaces: %s\n", strerror(errno));
		return 77;
	}
	rc = shim_harness_start(&shim, argv[0]);
	if (rc) {
		printf("SKIP: can't start splitpv-shim: %s\n", strerror(-rc));
		return rc == -ENOENT ? 77 : 1;
	}
	for (int i = 0; i < 3; i++) {
		int fd;

		snprintf(img[i], sizeof(img[i]), "%s/disk%d.img", shim.rundir, i);
		fd = open(img[i], O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || ftruncate(fd, 16 << 20) != 0)
			return 1;
		close(fd);
	}
	splitpvd = lc_start_splitpvd(wopts);
	CHECK(splitpvd > 0, "start splitpvd: %s", strerror(-splitpvd));
	if (splitpvd <= 0)
		goto out;
	cfg.rundir = shim.rundir;
	cfg.script_dir = "tools/hotplug";
	rc = shim_ts_open(&ts, &cfg);
	rc = rc ?: shim_ts_domain_create(ts, DOM_A, NULL);
	rc = rc ?: shim_ts_domain_create(ts, DOM_B, NULL);
	rc = rc ?: shim_guest_create(&ga, shim.rundir, DOM_A, 32768, 16384);
	rc = rc ?: shim_guest_create(&gb, shim.rundir, DOM_B, 32768, 16384);
	rc = rc ?: disk_attach(DOM_A, "xvda", img[0], &dev_a);
	rc = rc ?: disk_attach(DOM_B, "xvda", img[1], &dev_b);
	rc = rc ?: nic_attach(DOM_A, mac[0]);
	rc = rc ?: nic_attach(DOM_B, mac[1]);
	CHECK(rc == 0, "two guests with a disk and a NIC each: %s", strerror(-rc));
	if (rc)
		goto out;
	blkfront_opts_default(&bo);
	bo.queues = 2;
	netfront_opts_default(&no);
	no.queues = 2;
	rc = blkfront_open(&da, ga, dev_a, &bo);
	rc = rc ?: blkfront_open(&db, gb, dev_b, &bo);
	rc = rc ?: netfront_open(&na, ga, 0, &no);
	rc = rc ?: netfront_open(&nb, gb, 0, &no);
	CHECK(rc == 0, "frontends connected: %s", strerror(-rc));
	if (rc)
		goto out;
	rw_check(da, 1, 1, "disk A");
	rw_check(db, 1, 2, "disk B");

	/* 1: identities. */
	blk_a = worker_of(splitpvd, "splitpv-blkback", DOM_A);
	blk_b = worker_of(splitpvd, "splitpv-blkback", DOM_B);
	net_a = worker_of(splitpvd, "splitpv-netback", DOM_A);
	net_b = worker_of(splitpvd, "splitpv-netback", DOM_B);
	CHECK(blk_a > 0 && blk_b > 0 && net_a > 0 && net_b > 0,
	      "a blk and a net worker per guest, each with its guest's uid (%d %d %d %d)",
	      (int)blk_a, (int)blk_b, (int)net_a, (int)net_b);
	if (blk_a <= 0 || blk_b <= 0 || net_a <= 0 || net_b <= 0)
		goto out;
	check_identity(blk_a, DOM_A, "0000000000000000", "blk worker A");
	check_identity(blk_b, DOM_B, "0000000000000000", "blk worker B");
	check_identity(net_a, DOM_A, "0000000000001000", "net worker A");
	check_identity(net_b, DOM_B, "0000000000001000", "net worker B");
	CHECK(!can_signal(UID_BASE + DOM_A, blk_b) && !can_signal(UID_BASE + DOM_A, net_b) &&
	      !can_signal(UID_BASE + DOM_B, blk_a), "a guest's uid can't signal the other's workers");
	CHECK(can_signal(UID_BASE + DOM_A, net_a), "but its own (the check can pass)");
	printf("workers: blk A %d, blk B %d, net A %d, net B %d: uids %#x / %#x, CapEff 0 "
	       "(blk) and NET_ADMIN (net), NoNewPrivs 1, Seccomp 2\n", (int)blk_a, (int)blk_b,
	       (int)net_a, (int)net_b, UID_BASE + DOM_A, UID_BASE + DOM_B);

	/* 2: images. */
	{
		int fa = fd_on(blk_a, img[0]), fb = fd_on(blk_b, img[1]);

		CHECK(fa >= 0 && fb >= 0, "each blk worker holds its image open (%d, %d)", fa, fb);
		CHECK(fd_on(blk_a, img[1]) < 0 && fd_on(blk_b, img[0]) < 0,
		      "and not the other guest's");
		CHECK(fd_on(net_a, img[0]) < 0 && fd_on(net_a, img[1]) < 0,
		      "the net worker holds no image");
		if (fa >= 0) {
			int got = child_opens(UID_BASE + DOM_A, img[0], blk_a, fa);

			CHECK(got == 0, "with worker A's uid the image can't be reopened (%s%s)",
			      got & 1 ? "by path " : "", got & 2 ? "through /proc" : "");
		}
		printf("images: held open by their own guest's worker only, not reopenable\n");
	}

	/* 3: root-only endpoints and restricted event channels. */
	{
		int port_a = shim_guest_evtchn_alloc_unbound(ga, 0);
		int port_b = shim_guest_evtchn_alloc_unbound(gb, 0);
		int got, step;

		char hv[400], xsock[400];
		struct stat st_hv, st_xs;

		/* The rundir (0700) and the sockets' modes would stop the child before the
		 * daemons do: open them up for this check, so it is the daemons' own refusal
		 * (SO_PEERCRED) being tested. */
		snprintf(hv, sizeof(hv), "%s/hv.sock", shim.rundir);
		snprintf(xsock, sizeof(xsock), "%s/socket", shim.rundir);
		CHECK(stat(hv, &st_hv) == 0 && stat(xsock, &st_xs) == 0, "shim sockets exist");
		chmod(shim.rundir, 0755);
		chmod(hv, 0777);
		chmod(xsock, 0777);
		setenv("PRIVSEP_HV_DIR", shim.rundir, 1);
		setenv("XENSTORED_PATH", xsock, 1);
		got = child_connects(UID_BASE + DOM_A);
		chmod(hv, st_hv.st_mode & 07777);
		chmod(xsock, st_xs.st_mode & 07777);
		chmod(shim.rundir, 0700);
		CHECK(got == 0, "with a worker's uid hv.sock and xenstored refuse (%s%s)",
		      got & 1 ? "hv.sock served " : "", got & 2 ? "xenstored served" : "");
		CHECK(port_a > 0 && port_b > 0, "unbound ports in both guests (%d, %d)", port_a,
		      port_b);
		step = child_restricted(port_a, port_b);
		CHECK(step == 0, "worker-mode event channels restricted to guest A (step %d)", step);
		shim_guest_evtchn_close(ga, (unsigned)port_a);
		shim_guest_evtchn_close(gb, (unsigned)port_b);
		printf("hv.sock and xenstored refuse non-root; a restricted handle can't bind "
		       "the other guest's port (EACCES)\n");
	}

	/* 4: hot-plug into the dropped worker, then reconnects. */
	rc = disk_attach(DOM_A, "xvdb", img[2], &dev_c);
	rc = rc ?: blkfront_open(&dc, ga, dev_c, &bo);
	CHECK(rc == 0, "hot-plugged disk: %s", strerror(-rc));
	if (rc)
		goto out;
	CHECK(worker_of(splitpvd, "splitpv-blkback", DOM_A) == blk_a,
	      "served by guest A's running worker");
	CHECK(fd_on(blk_a, img[2]) >= 0, "whose image splitpvd opened for it");
	for (uint64_t b = 0; b < 64; b++)
		rw_check(dc, b, 3, "hot-plugged disk");
	printf("hot-plugged disk: verified I/O in the dropped worker\n");
	for (int i = 0; i < reconnects && !lc_failures; i++) {
		struct xs_handle *gx = shim_guest_xs_open(ga);
		char fe[96];

		blkfront_close(da);
		da = NULL;
		snprintf(fe, sizeof(fe), "/local/domain/%u/device/vbd/%u", DOM_A, dev_a);
		CHECK(gx && xenbus_switch_state(gx, XBT_NULL, fe, XenbusStateInitialising) == 0,
		      "reconnect %d: frontend back to Initialising", i);
		if (gx)
			xs_close(gx);
		rc = blkfront_open(&da, ga, dev_a, &bo);
		CHECK(rc == 0, "reconnect %d: %s", i, strerror(-rc));
		if (rc)
			goto out;
		rw_check(da, (uint64_t)(i % 64), (uint64_t)i + 10, "after a reconnect");
	}
	CHECK(worker_of(splitpvd, "splitpv-blkback", DOM_A) == blk_a, "same worker throughout");
	printf("%d reconnects of a 2-queue disk with verified I/O\n", reconnects);
out:
	blkfront_close(da);
	blkfront_close(db);
	blkfront_close(dc);
	netfront_close(na);
	netfront_close(nb);
	shim_guest_destroy(ga);
	shim_guest_destroy(gb);
	shim_ts_close(ts);
	if (splitpvd > 0) {
		kill(splitpvd, SIGTERM);
		waitpid(splitpvd, NULL, 0);
	}
	shim_harness_stop(&shim);
	printf("%s: %d failure(s)\n", lc_failures ? "FAIL" : "PASS", lc_failures);
	return lc_failures ? 1 : 0;
}
