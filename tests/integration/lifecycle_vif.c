/*
 * lifecycle_vif — NIC lifecycle under splitpvd on the shim, counted (the vif half of
 * lifecycle_blk), in private network and mount namespaces:
 *  1. attach -> netfront_open -> frames both ways -> netfront_close -> detach of a
 *     second vif 50 times while the guest's first vif stays attached: the worker (the
 *     same one throughout) keeps its fds, threads and file-backed mappings, splitpvd
 *     and the shim daemon keep their fds, the vif taps and the splitpv processes are
 *     as many as before;
 *  2. a guest destroyed mid-traffic (shim_guest_destroy + xl destroy): its worker and
 *     its tap are gone within 1 s; the other guest's vif keeps working.
 * The host side of each vif is an AF_PACKET socket on its tap (vif<domid>.<devid>).
 *
 *   lifecycle_vif [cycles]      (root and /dev/net/tun; default 50 cycles)
 */
#include "frontend-shim/guest.h"
#include "frontend-shim/netfront.h"
#include "frontend-shim/toolstack.h"
#include "tests/integration/lifecycle_util.h"
#include "tests/integration/shim_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>

#define DOM_A 4
#define DOM_B 5
#define ETH_TEST 0x88b5 /* IEEE 802 local experimental ethertype: nothing else sends it */
#define FRAMES 8        /* per direction per exchange */

static struct shim_harness shim;
static struct shim_ts *ts;
static const uint8_t host_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };

/* ---- counting ---- */

static int nworkers(pid_t splitpvd)
{
	pid_t p[8];

	return lc_children(splitpvd, "splitpv-netback", p, 8);
}

static pid_t one_worker(pid_t splitpvd)
{
	pid_t p[8];

	return lc_children(splitpvd, "splitpv-netback", p, 8) == 1 ? p[0] : -1;
}

/* Our descendants whose command name starts with "splitpv" (the shim and its
 * xenstored, splitpvd, its workers): other runs on this machine don't count. */
static int splitpv_procs(void)
{
	pid_t self = getpid();
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		int pid = atoi(e->d_name), hops = 0;
		char comm[64] = "";
		bool mine = false;

		if (pid <= 0 || pid == self)
			continue;
		for (int p = pid; p > 1 && hops < 64 && !mine; hops++) {
			char path[64], buf[512], *rp;
			FILE *f;
			int ppid = 0;

			snprintf(path, sizeof(path), "/proc/%d/stat", p);
			f = fopen(path, "r");
			if (!f)
				break;
			if (!fgets(buf, sizeof(buf), f))
				buf[0] = 0;
			fclose(f);
			rp = strrchr(buf, ')');
			if (!rp || sscanf(rp + 2, "%*c %d", &ppid) != 1)
				break;
			if (p == pid) {
				char *lp = strchr(buf, '(');

				if (lp)
					snprintf(comm, sizeof(comm), "%.*s", (int)(rp - lp - 1), lp + 1);
			}
			mine = ppid == self;
			p = ppid;
		}
		if (mine && strncmp(comm, "splitpv", 7) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* Network interfaces named vif* (the backends' taps) in our namespace. */
static int ntaps(void)
{
	DIR *d = opendir("/sys/class/net");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, "vif", 3) == 0)
			n++;
	closedir(d);
	return n;
}

static bool tap_exists(unsigned int domid, unsigned int devid)
{
	char path[96];

	snprintf(path, sizeof(path), "/sys/class/net/vif%u.%u", domid, devid);
	return access(path, F_OK) == 0;
}

struct counts {
	int w_fd, w_task, w_maps, d_fd, s_fd, taps, procs;
};

static void count(pid_t worker, pid_t splitpvd, struct counts *c)
{
	c->w_fd = lc_count_dir(worker, "fd");
	c->w_task = lc_count_dir(worker, "task");
	c->w_maps = lc_count_maps(worker);
	c->d_fd = lc_count_dir(splitpvd, "fd");
	c->s_fd = lc_count_dir(shim.pid, "fd");
	c->taps = ntaps();
	c->procs = splitpv_procs();
}

static bool counts_equal(const struct counts *a, const struct counts *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

/* ---- frames ---- */

/* A test frame: dst, src, ETH_TEST, then tag and seq, then a pattern of both. */
static size_t make_frame(uint8_t *buf, const uint8_t dst[6], const uint8_t src[6],
			 uint32_t tag, uint32_t seq)
{
	size_t len = 60 + (seq * 211) % 1455; /* 60..1514 */
	uint16_t et = htons(ETH_TEST);
	uint64_t s = ((uint64_t)tag << 32 | seq) ^ 0x2545F4914F6CDD1Dull;

	memcpy(buf, dst, 6);
	memcpy(buf + 6, src, 6);
	memcpy(buf + 12, &et, 2);
	memcpy(buf + 14, &tag, 4);
	memcpy(buf + 18, &seq, 4);
	for (size_t i = 22; i < len; i++)
		buf[i] = (uint8_t)lc_xorshift(&s);
	return len;
}

/* If buf is an intact test frame with this tag: its seq, else -1. */
static int check_frame(const uint8_t *buf, size_t len, const uint8_t dst[6],
		       const uint8_t src[6], uint32_t tag)
{
	uint8_t want[1514];
	uint32_t seq;

	if (len < 22 || buf[12] != (ETH_TEST >> 8) || buf[13] != (ETH_TEST & 0xff))
		return -1;
	memcpy(&seq, buf + 18, 4);
	if (seq >= FRAMES || len != make_frame(want, dst, src, tag, seq) ||
	    memcmp(buf, want, len) != 0)
		return -1;
	return (int)seq;
}

/* A packet socket on the tap vif<domid>.<devid>, or -errno. */
static int host_sock(unsigned int domid, unsigned int devid)
{
	struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	char ifname[IFNAMSIZ];
	int s, rc, one = 1;

	snprintf(ifname, sizeof(ifname), "vif%u.%u", domid, devid);
	a.sll_ifindex = (int)if_nametoindex(ifname);
	if (a.sll_ifindex == 0)
		return -ENODEV;
	s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
	if (s < 0)
		return -errno;
	/* Past the qdisc: the backend turns the carrier on just before Connected, but the
	 * kernel's link watch activates the tap's qdisc some time later, and frames sent
	 * in between are dropped. The direct path only needs the carrier. */
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) != 0) {
		rc = -errno;
		close(s);
		return rc;
	}
	return s;
}

static int host_send(int s, const uint8_t guest_mac[6], uint32_t tag, uint32_t seq)
{
	uint8_t f[1514];
	size_t len = make_frame(f, guest_mac, host_mac, tag, seq);

	return send(s, f, len, 0) == (ssize_t)len ? 0 : -errno;
}

/* Frames the guest sent with this tag that reached the host socket, as a bit mask. */
static void host_collect(int s, const uint8_t guest_mac[6], uint32_t tag, unsigned int *seen)
{
	uint8_t buf[2048];
	struct sockaddr_ll from;
	socklen_t fl = sizeof(from);
	ssize_t n;

	while ((n = recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl)) > 0) {
		int seq;

		fl = sizeof(from);
		if (from.sll_pkttype == PACKET_OUTGOING)
			continue;
		seq = check_frame(buf, (size_t)n, host_mac, guest_mac, tag);
		if (seq >= 0)
			*seen |= 1u << seq;
	}
}

static void guest_collect(struct netfront *nf, const uint8_t guest_mac[6], uint32_t tag,
			  unsigned int *seen)
{
	uint8_t buf[70000];
	int len;

	while ((len = netfront_recv(nf, buf, sizeof(buf), NULL, NULL)) > 0) {
		int seq = check_frame(buf, (size_t)len > sizeof(buf) ? sizeof(buf) : (size_t)len,
				      guest_mac, host_mac, tag);

		if (seq >= 0)
			*seen |= 1u << seq;
	}
}

/*
 * FRAMES frames each way between netfront nf and the host socket on its tap, every
 * one checked byte for byte. 0, or -EIO with what went missing printed.
 */
static int exchange(struct netfront *nf, int hs, const uint8_t guest_mac[6], uint32_t tag,
		    const char *what)
{
	const unsigned int all = (1u << FRAMES) - 1;
	unsigned int to_guest = 0, to_host = 0, queues = netfront_queues(nf);
	double end;

	for (uint32_t i = 0; i < FRAMES; i++) {
		uint8_t f[1514];
		size_t len = make_frame(f, host_mac, guest_mac, tag, i);
		int rc;

		CHECK(host_send(hs, guest_mac, tag, i) == 0, "%s: host send %u", what, i);
		while ((rc = netfront_send(nf, i % (queues ?: 1), f, len, NULL)) == -EAGAIN)
			netfront_poll(nf, 10);
		CHECK(rc == 0, "%s: guest send %u: %s", what, i, strerror(-rc));
	}
	end = lc_now() + 3;
	while ((to_guest != all || to_host != all) && lc_now() < end) {
		struct pollfd p = { .fd = hs, .events = POLLIN };
		int rc = netfront_poll(nf, 5);

		if (rc < 0) {
			CHECK(0, "%s: netfront_poll: %s", what, strerror(-rc));
			break;
		}
		guest_collect(nf, guest_mac, tag, &to_guest);
		poll(&p, 1, 0);
		host_collect(hs, guest_mac, tag, &to_host);
	}
	CHECK(to_guest == all, "%s: host -> guest frames %#x of %#x", what, to_guest, all);
	CHECK(to_host == all, "%s: guest -> host frames %#x of %#x", what, to_host, all);
	return to_guest == all && to_host == all ? 0 : -EIO;
}

/* ---- devices ---- */

static int nic_attach(unsigned int domid, unsigned int devid, const uint8_t mac[6])
{
	struct shim_nic_spec spec;
	char s[160], m[18], err[128];
	int rc;

	shim_mac_format(mac, m);
	/* No such bridge: the vif script only brings the tap up. */
	snprintf(s, sizeof(s), "bridge=nobridge,mac=%s,devid=%u", m, devid);
	rc = shim_nic_spec_parse(s, &spec, err, sizeof(err));
	return rc ?: shim_ts_nic_attach(ts, domid, &spec);
}

/* Wait up to 1 s for the count to equal want (threads end a moment after Closed). */
static void settle(pid_t worker, pid_t splitpvd, const struct counts *want, struct counts *c)
{
	for (int i = 0; i < 50; i++) {
		count(worker, splitpvd, c);
		if (counts_equal(c, want))
			return;
		usleep(20000);
	}
}

/* The baseline: the cycled vif's tap gone and two counts 50 ms apart alike (up to 1 s). */
static void baseline(pid_t worker, pid_t splitpvd, struct counts *c)
{
	struct counts prev;

	count(worker, splitpvd, &prev);
	for (int i = 0; i < 20; i++) {
		usleep(50000);
		count(worker, splitpvd, c);
		if (counts_equal(c, &prev) && !tap_exists(DOM_A, 1))
			return;
		prev = *c;
	}
}

/* ---- guest B: a child process, traffic until told to die ---- */

static void guest_b(int to_parent, int from_parent, const uint8_t mac[6])
{
	struct shim_guest *gb = NULL;
	struct netfront *nf = NULL;
	struct netfront_opts o;
	uint8_t f[1514];
	char c;
	uint32_t seq = 0;

	if (shim_guest_create(&gb, shim.rundir, DOM_B, 8192, 8192) != 0 ||
	    write(to_parent, "g", 1) != 1)
		_exit(1);
	if (read(from_parent, &c, 1) != 1 || c != 'a')
		_exit(2);
	netfront_opts_default(&o);
	if (netfront_open(&nf, gb, 0, &o) != 0 || write(to_parent, "c", 1) != 1)
		_exit(3);
	fcntl(from_parent, F_SETFL, O_NONBLOCK);
	for (;;) {
		/* Frames out as fast as the ring takes them; what comes in is left posted. */
		size_t len = make_frame(f, host_mac, mac, 0xb, seq++ % FRAMES);

		netfront_send(nf, 0, f, len, NULL);
		if (seq % 16 == 0)
			netfront_poll(nf, 0);
		if (read(from_parent, &c, 1) == 1) {
			/* The guest dies with requests in flight: no netfront_close. */
			shim_guest_destroy(gb);
			_exit(0);
		}
	}
}

static void destroy_mid_traffic(pid_t splitpvd, pid_t worker_a, struct netfront *nf_a,
				const uint8_t mac_a[6])
{
	static const uint8_t mac_b[6] = { 0x00, 0x16, 0x3e, 0x00, 0x05, 0x00 };
	int up[2], down[2], hs = -1, rc;
	unsigned int seen = 0;
	double t0, gone = -1;
	pid_t child;
	char c;

	rc = shim_ts_domain_create(ts, DOM_B, NULL);
	CHECK(rc == 0, "create B: %s", strerror(-rc));
	if (rc || pipe(up) < 0 || pipe(down) < 0)
		return;
	child = fork();
	if (child == 0) {
		close(up[0]);
		close(down[1]);
		guest_b(up[1], down[0], mac_b);
	}
	close(up[1]);
	close(down[0]);
	CHECK(read(up[0], &c, 1) == 1 && c == 'g', "guest B created");
	rc = nic_attach(DOM_B, 0, mac_b);
	CHECK(rc == 0, "attach a vif to B: %s", strerror(-rc));
	CHECK(write(down[1], "a", 1) == 1, "tell B");
	CHECK(read(up[0], &c, 1) == 1 && c == 'c', "guest B's netfront connected");
	CHECK(nworkers(splitpvd) == 2, "a worker per guest (%d)", nworkers(splitpvd));
	CHECK(tap_exists(DOM_B, 0), "guest B's tap vif%u.0", DOM_B);
	hs = host_sock(DOM_B, 0);
	CHECK(hs >= 0, "packet socket on vif%u.0: %s", DOM_B, strerror(-hs));
	/* Traffic both ways: B's frames reach the host, the host floods B's tap. */
	t0 = lc_now();
	while (hs >= 0 && seen == 0 && lc_now() - t0 < 3) {
		struct pollfd p = { .fd = hs, .events = POLLIN };

		poll(&p, 1, 10);
		host_collect(hs, mac_b, 0xb, &seen);
	}
	CHECK(seen != 0, "guest B's frames reach the host");
	for (uint32_t i = 0; hs >= 0 && i < 256; i++)
		host_send(hs, mac_b, 0xb0, i % FRAMES);
	if (hs >= 0)
		close(hs);
	t0 = lc_now();
	CHECK(write(down[1], "x", 1) == 1, "tell B to die");
	waitpid(child, NULL, 0);
	close(up[0]);
	close(down[1]);
	rc = shim_ts_domain_destroy(ts, DOM_B);
	CHECK(rc == 0, "destroy B: %s", strerror(-rc));
	while (lc_now() - t0 < 3) {
		if (nworkers(splitpvd) == 1 && !tap_exists(DOM_B, 0)) {
			gone = lc_now() - t0;
			break;
		}
		usleep(5000);
	}
	CHECK(gone >= 0 && gone < 1.0, "guest B's worker and tap gone in %.3f s (workers %d, tap %s)",
	      gone, nworkers(splitpvd), tap_exists(DOM_B, 0) ? "still there" : "gone");
	CHECK(one_worker(splitpvd) == worker_a, "guest A's worker untouched");
	hs = host_sock(DOM_A, 0);
	CHECK(hs >= 0, "packet socket on vif%u.0: %s", DOM_A, strerror(-hs));
	if (hs >= 0) {
		CHECK(exchange(nf_a, hs, mac_a, 0xa11, "guest A after B died") == 0,
		      "guest A's vif still works");
		close(hs);
	}
	if (gone >= 0)
		printf("guest destroyed mid-traffic: worker and tap gone in %.1f ms; guest A "
		       "unaffected\n", gone * 1000);
}

int main(int argc, char **argv)
{
	static const char *const wopts[] = { "--max-queues", "2", NULL };
	static const uint8_t mac_a0[6] = { 0x00, 0x16, 0x3e, 0x00, 0x04, 0x00 };
	static const uint8_t mac_a1[6] = { 0x00, 0x16, 0x3e, 0x00, 0x04, 0x01 };
	int cycles = argc > 1 ? atoi(argv[1]) : 50;
	struct shim_ts_config cfg = { 0 };
	struct shim_guest *g = NULL;
	struct netfront_opts o;
	struct netfront *a = NULL, *b = NULL;
	struct counts before = { 0 }, after = { 0 };
	pid_t splitpvd = -1, worker = -1;
	double t_start = lc_now();
	int rc, hs;

	if (geteuid() != 0) {
		printf("SKIP: needs root for network namespaces and tap devices\n");
		return 77;
	}
	if (access("/dev/net/tun", R_OK | W_OK) != 0) {
		printf("SKIP: no /dev/net/tun (%s): the net backend can't create taps\n",
		       strerror(errno));
		return 77;
	}
	/* Our own network namespace with its own /sys: the taps we count are ours, and the
	 * hotplug script sees them. */
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
	splitpvd = lc_start_splitpvd(wopts);
	CHECK(splitpvd > 0, "start splitpvd: %s", strerror(-splitpvd));
	if (splitpvd <= 0)
		goto out;
	cfg.rundir = shim.rundir;
	cfg.script_dir = "tools/hotplug";
	rc = shim_ts_open(&ts, &cfg);
	rc = rc ?: shim_ts_domain_create(ts, DOM_A, NULL);
	rc = rc ?: shim_guest_create(&g, shim.rundir, DOM_A, 16384, 16384);
	rc = rc ?: nic_attach(DOM_A, 0, mac_a0);
	CHECK(rc == 0, "guest A with a vif: %s", strerror(-rc));
	if (rc)
		goto out;
	netfront_opts_default(&o);
	o.queues = 2;
	rc = netfront_open(&a, g, 0, &o);
	CHECK(rc == 0, "open vif A.0: %s", strerror(-rc));
	if (rc)
		goto out;
	hs = host_sock(DOM_A, 0);
	CHECK(hs >= 0, "packet socket on vif%u.0: %s", DOM_A, strerror(-hs));
	if (hs < 0)
		goto out;
	rc = exchange(a, hs, mac_a0, 0xa0, "vif A.0");
	close(hs);
	worker = one_worker(splitpvd);
	CHECK(worker > 0, "one worker for guest A");
	if (rc || worker <= 0)
		goto out;

	/* 1: a second vif of the same guest, cycled; the first stays. Cycle 0 warms up
	 * what is created lazily (libev internals, allocator pools). */
	for (int i = 0; i <= cycles; i++) {
		char what[32];

		if (i == 1)
			baseline(worker, splitpvd, &before);
		snprintf(what, sizeof(what), "cycle %d", i);
		rc = nic_attach(DOM_A, 1, mac_a1);
		CHECK(rc == 0, "%s: attach: %s", what, strerror(-rc));
		if (rc)
			break;
		CHECK(tap_exists(DOM_A, 1) && ntaps() == 2, "%s: tap vif%u.1 created (%d taps)",
		      what, DOM_A, ntaps());
		rc = netfront_open(&b, g, 1, &o);
		CHECK(rc == 0, "%s: open: %s", what, strerror(-rc));
		if (rc)
			break;
		CHECK(one_worker(splitpvd) == worker, "%s: served by guest A's worker", what);
		hs = host_sock(DOM_A, 1);
		CHECK(hs >= 0, "%s: packet socket on vif%u.1: %s", what, DOM_A, strerror(-hs));
		if (hs >= 0) {
			exchange(b, hs, mac_a1, 0x100u + (uint32_t)i, what);
			close(hs);
		}
		netfront_close(b);
		b = NULL;
		rc = shim_ts_device_detach(ts, DOM_A, SHIM_TS_VIF, 1);
		CHECK(rc == 0, "%s: detach: %s", what, strerror(-rc));
		if (lc_failures)
			break;
	}
	settle(worker, splitpvd, &before, &after);
	CHECK(after.w_fd == before.w_fd, "worker fds %d -> %d", before.w_fd, after.w_fd);
	CHECK(after.w_task == before.w_task, "worker threads %d -> %d", before.w_task,
	      after.w_task);
	CHECK(after.w_maps == before.w_maps, "worker mappings %d -> %d", before.w_maps,
	      after.w_maps);
	CHECK(after.d_fd == before.d_fd, "splitpvd fds %d -> %d", before.d_fd, after.d_fd);
	CHECK(after.s_fd == before.s_fd, "shim fds %d -> %d", before.s_fd, after.s_fd);
	CHECK(after.taps == before.taps && after.taps == 1, "vif taps %d -> %d (want 1)",
	      before.taps, after.taps);
	CHECK(after.procs == before.procs, "splitpv processes %d -> %d", before.procs,
	      after.procs);
	CHECK(!tap_exists(DOM_A, 1), "vif%u.1's tap removed after the last detach", DOM_A);
	CHECK(nworkers(splitpvd) == 1, "one worker process (%d)", nworkers(splitpvd));
	CHECK(one_worker(splitpvd) == worker, "the same worker throughout");
	printf("%d vif attach/IO/detach cycles: worker fds %d->%d threads %d->%d maps %d->%d, "
	       "splitpvd fds %d->%d, shim fds %d->%d, taps %d->%d, splitpv processes %d->%d\n",
	       cycles, before.w_fd, after.w_fd, before.w_task, after.w_task, before.w_maps,
	       after.w_maps, before.d_fd, after.d_fd, before.s_fd, after.s_fd, before.taps,
	       after.taps, before.procs, after.procs);

	/* 2: another guest destroyed mid-traffic. */
	destroy_mid_traffic(splitpvd, worker, a, mac_a0);
out:
	netfront_close(b);
	netfront_close(a);
	shim_guest_destroy(g);
	shim_ts_close(ts);
	if (splitpvd > 0) {
		kill(splitpvd, SIGTERM);
		waitpid(splitpvd, NULL, 0);
	}
	shim_harness_stop(&shim);
	printf("%s: %d failure(s) in %.1f s\n", lc_failures ? "FAIL" : "PASS", lc_failures,
	       lc_now() - t_start);
	return lc_failures ? 1 : 0;
}
