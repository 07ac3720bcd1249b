/*
 * net_rx_bound — XSA-392 on the net backend: a guest that stops posting RX buffers
 * while the host floods its vif must not make the backend grow. In a private network
 * namespace: splitpv-shim, splitpvd spawning splitpv-netback with a small RX queue
 * bound (256 frames, 1 MiB), a userspace netfront that connects and then never looks
 * at its ring, and an AF_PACKET flood into vif1.0 (64 KiB GSO frames, which hit the
 * byte bound, then 1514-byte frames, which hit the frame bound). Checks: the worker's
 * RSS stays within the queue's bytes + 4 MiB of where it was, the tap's overflow is
 * counted as drops by the kernel, the backend counts its queue-full pauses and never
 * queued more than its bound, carrier goes off, and the guest gets traffic again once
 * it posts buffers.
 *
 *   net_rx_bound   (root; exits 77 if namespaces can't be made)
 */
#include "frontend-shim/guest.h"
#include "frontend-shim/netfront.h"
#include "frontend-shim/toolstack.h"
#include "tests/integration/shim_harness.h"
#include "xenbus/xs.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#define QUEUE_PKTS 256u
#define QUEUE_BYTES (1u << 20)
/* Allocator and mappings; under ASan also its quarantine (capped below) and redzones. */
#ifdef __SANITIZE_ADDRESS__
#define RSS_SLACK_KB (4096u + 12288u)
#else
#define RSS_SLACK_KB 4096u
#endif

static int failures;
#define CHECK(cond, ...)                                                                \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                   \
			fprintf(stderr, "\n");                                          \
			failures++;                                                     \
		}                                                                       \
	} while (0)

static struct shim_harness shim;
static pid_t splitpvd = -1;
static char worker_log[PATH_MAX];

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t sysfs_u64(const char *ifname, const char *stat)
{
	char p[256];
	unsigned long long v = 0;
	FILE *f;

	snprintf(p, sizeof(p), "/sys/class/net/%s/statistics/%s", ifname, stat);
	f = fopen(p, "r");
	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

/* The splitpv-netback child of our splitpvd. */
static pid_t find_worker(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = -1;

	while (d && (e = readdir(d)) != NULL && found < 0) {
		char p[300], buf[512], state;
		int ppid;
		size_t n;
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(p, sizeof(p), "/proc/%s/stat", e->d_name);
		f = fopen(p, "r");
		if (!f)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		if (strrchr(buf, ')') && sscanf(strrchr(buf, ')') + 1, " %c %d", &state, &ppid) == 2 &&
		    ppid == splitpvd && state != 'Z' && strstr(buf, "(splitpv-netback"))
			found = (pid_t)atoi(e->d_name);
	}
	if (d)
		closedir(d);
	return found;
}

static long rss_kb(pid_t pid)
{
	char p[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	f = fopen(p, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static uint16_t csum16(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Ethernet/IPv4/TCP to the guest's MAC, len bytes, checksum partial. */
static void build_frame(uint8_t *f, size_t len, bool gso, struct virtio_net_hdr *vh)
{
	static const uint8_t dst[6] = { 0x00, 0x16, 0x3e, 0x00, 0x00, 0x01 };
	static const uint8_t src[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x99 };
	uint16_t iplen = (uint16_t)(len - 14), c;

	memset(f, 0, len);
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x08;
	f[14] = 0x45;
	f[16] = (uint8_t)(iplen >> 8);
	f[17] = (uint8_t)iplen;
	f[22] = 64;
	f[23] = IPPROTO_TCP;
	f[26] = 10, f[27] = 97, f[28] = 0, f[29] = 1;
	f[30] = 10, f[31] = 97, f[32] = 0, f[33] = 2;
	c = csum16(f + 14, 20);
	f[24] = (uint8_t)(c >> 8);
	f[25] = (uint8_t)c;
	f[35] = 80;
	f[37] = 80;
	f[46] = 5 << 4;
	f[47] = 0x10;
	f[48] = 0xff;
	memset(vh, 0, sizeof(*vh));
	vh->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	vh->csum_start = 34;
	vh->csum_offset = 16;
	if (gso) {
		vh->gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
		vh->gso_size = 1448;
		vh->hdr_len = 54;
	}
}

/* Send frames of len bytes into ifname for secs, sampling pid's RSS; returns the peak. */
static long flood(const char *ifname, size_t len, bool gso, double secs, pid_t pid,
		  uint64_t *sent)
{
	static uint8_t frame[65535];
	struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	struct virtio_net_hdr vh;
	struct iovec iov[2] = { { &vh, sizeof(vh) }, { frame, len } };
	struct msghdr mh = { .msg_iov = gso ? iov : iov + 1, .msg_iovlen = gso ? 2 : 1 };
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0), one = 1;
	long peak = rss_kb(pid);
	double end = now() + secs, next_sample = 0;

	build_frame(frame, len, gso, &vh);
	a.sll_ifindex = (int)if_nametoindex(ifname);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) != 0 ||
	    (gso && setsockopt(s, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) != 0)) {
		CHECK(0, "packet socket on %s: %s", ifname, strerror(errno));
		if (s >= 0)
			close(s);
		return peak;
	}
	for (double t = now(); t < end; t = now()) {
		/* Offered, whether the full tap queue takes it or drops it. */
		for (int i = 0; i < 64; i++, (*sent)++)
			sendmsg(s, &mh, 0);
		if (t >= next_sample) {
			long r = rss_kb(pid);

			if (r > peak)
				peak = r;
			next_sample = t + 0.05;
		}
	}
	close(s);
	return peak;
}

/* The "peak N pkts" and "queue full N" the worker logged for vif1.0's queue 0. */
static int worker_stats(unsigned long long *full, unsigned long long *peak)
{
	char line[1024];
	FILE *f = fopen(worker_log, "r");
	int rc = -ENOENT;

	while (f && fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "vif/1/0/q0: stats: ");

		if (p && (p = strstr(p, "queue full ")) &&
		    sscanf(p, "queue full %llu, peak %llu pkts", full, peak) == 2)
			rc = 0;
	}
	if (f)
		fclose(f);
	return rc;
}

/* The guest posts buffers again: take what arrives for up to 1 s (until quiet). */
static int guest_back(struct netfront *nf)
{
	static uint8_t buf[70000];
	double end = now() + 1, quiet = now() + 0.2;
	int got = 0;

	while (now() < end && now() < quiet) {
		netfront_poll(nf, 20);
		while (netfront_recv(nf, buf, sizeof(buf), NULL, NULL) > 0) {
			got++;
			quiet = now() + 0.2;
		}
	}
	return got;
}

static int link_up(const char *ifname)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		rc = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (!rc && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		rc = -errno;
	if (s >= 0)
		close(s);
	return rc;
}

int main(int argc, char **argv)
{
	const char *be = "/local/domain/0/backend/vif/1/0";
	struct shim_ts_config cfg = { 0 };
	struct shim_ts *ts = NULL;
	struct shim_guest *g = NULL;
	struct netfront *nf = NULL;
	struct netfront_opts o;
	struct shim_nic_spec spec;
	static const char *const splitpvd_opts[] = { "--max-queues", "1", "--rx-queue-pkts", "256",
						     "--rx-queue-bytes", "1048576", "--rx-stall-ms",
						     "1000", "--rx-drain-ms", "60000", NULL };
	char err[128];
	unsigned long long full = 0, qpeak = 0;
	uint64_t sent_gso = 0, sent_small = 0, drop0, drops;
	unsigned int carrier = 9;
	long rss0, peak_gso, peak_small;
	pid_t worker;
	int rc, got = 0;

	if (geteuid() != 0) {
		printf("SKIP: needs root for network namespaces and tap devices\n");
		return 77;
	}
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("sysfs", "/sys", "sysfs", 0, NULL) != 0) {
		printf("SKIP: can't create network and mount namespaces: %s\n", strerror(errno));
		return 77;
	}
	link_up("lo");
	rc = shim_harness_start(&shim, argv[0]);
	if (rc) {
		printf("SKIP: can't start splitpv-shim: %s\n", strerror(-rc));
		return rc == -ENOENT ? 77 : 1;
	}
	snprintf(worker_log, sizeof(worker_log), "%s/splitpvd.log", shim.rundir);
#ifdef __SANITIZE_ADDRESS__
	{
		/* ASan holds freed memory back (256 MiB by default): cap it so RSS still
		 * shows whether the queue is bounded. */
		const char *cur = getenv("ASAN_OPTIONS");
		char opts[512];

		snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=4", cur ? cur : "",
			 cur && *cur ? ":" : "");
		setenv("ASAN_OPTIONS", opts, 1);
	}
#endif
	splitpvd = shim_harness_splitpvd(splitpvd_opts, worker_log);
	cfg.rundir = shim.rundir;
	cfg.script_dir = "tools/hotplug";
	rc = shim_ts_open(&ts, &cfg);
	rc = rc ?: shim_ts_domain_create(ts, 1, NULL);
	rc = rc ?: shim_guest_create(&g, shim.rundir, 1, 4096, 4096);
	/* No such bridge: the vif script only brings the tap up. */
	rc = rc ?: shim_nic_spec_parse("bridge=nobridge,mac=00:16:3e:00:00:01", &spec, err,
				       sizeof(err));
	rc = rc ?: shim_ts_nic_attach(ts, 1, &spec);
	netfront_opts_default(&o);
	rc = rc ?: netfront_open(&nf, g, 0, &o);
	CHECK(rc == 0, "setup, vif attach and netfront: %s", strerror(-rc));
	if (rc)
		goto out;
	worker = find_worker();
	CHECK(worker > 0, "splitpv-netback worker found");
	if (worker <= 0)
		goto out;
	usleep(300000);
	rss0 = rss_kb(worker);
	drop0 = sysfs_u64("vif1.0", "tx_dropped");

	/* The guest never polls during a flood: its 256 posted buffers fill, then nothing.
	 * 1514-byte frames hit the frame bound (256 x 1.5 KiB < 1 MiB); after the guest
	 * drained them, 64 KiB GSO frames hit the byte bound (17 frames). */
	peak_small = flood("vif1.0", 1514, false, 1.5, worker, &sent_small);
	xenbus_read_uint(shim_ts_xs(ts), XBT_NULL, be, "carrier", 0, 1, &carrier);
	CHECK(carrier == 0, "carrier off while the guest posts nothing (%u)", carrier);
	got = guest_back(nf);
	CHECK(got > 0, "frames delivered once the guest posts buffers (%d)", got);
	peak_gso = flood("vif1.0", 65535, true, 1.5, worker, &sent_gso);
	drops = sysfs_u64("vif1.0", "tx_dropped") - drop0;
	printf("     flood: %llu small + %llu GSO frames offered; worker RSS %ld kB before, peak "
	       "%ld kB (small) / %ld kB (GSO); kernel tap drops %llu\n",
	       (unsigned long long)sent_small, (unsigned long long)sent_gso, rss0, peak_small,
	       peak_gso, (unsigned long long)drops);
	CHECK(sent_gso > 2000 && sent_small > 2000, "the flood offered more than the bound");
	CHECK(peak_small - rss0 <= (long)(QUEUE_BYTES / 1024 + RSS_SLACK_KB),
	      "RSS grew %ld kB under 1514-byte frames (bound %u kB)", peak_small - rss0,
	      QUEUE_BYTES / 1024 + RSS_SLACK_KB);
	CHECK(peak_gso - rss0 <= (long)(QUEUE_BYTES / 1024 + RSS_SLACK_KB),
	      "RSS grew %ld kB under 64 KiB frames (bound %u kB)", peak_gso - rss0,
	      QUEUE_BYTES / 1024 + RSS_SLACK_KB);
	CHECK(drops > sent_small / 2, "the tap's overflow counted as drops (%llu)",
	      (unsigned long long)drops);
	got = guest_back(nf);
	CHECK(got > 0, "GSO frames delivered once the guest posts buffers (%d)", got);
	usleep(300000);
	xenbus_read_uint(shim_ts_xs(ts), XBT_NULL, be, "carrier", 0, 1, &carrier);
	CHECK(carrier == 1, "carrier back (%u)", carrier);
out:
	netfront_close(nf);
	nf = NULL;
	if (ts) {
		/* A fresh connection: shim_ts arms its wait timers from its loop's cached
		 * time, stale after the flood (see net_shim's ts_refresh). */
		struct shim_ts *fresh = NULL;

		if (shim_ts_open(&fresh, &cfg) == 0) {
			shim_ts_close(ts);
			ts = fresh;
		}
		shim_ts_device_detach(ts, 1, SHIM_TS_VIF, 0);
	}
	shim_guest_destroy(g);
	shim_ts_close(ts);
	if (splitpvd > 0) {
		kill(splitpvd, SIGTERM);
		waitpid(splitpvd, NULL, 0);
	}
	if (!failures) {
		CHECK(worker_stats(&full, &qpeak) == 0, "the worker's stats line");
		CHECK(full > 0, "the backend counted queue-full pauses (%llu)", full);
		CHECK(qpeak <= QUEUE_PKTS, "never more than %u frames queued (peak %llu)", QUEUE_PKTS,
		      qpeak);
		printf("     backend: queue full %llu times, peak %llu frames queued\n", full, qpeak);
	}
	if (failures) {
		FILE *f = fopen(worker_log, "r");
		char line[1024];

		while (f && fgets(line, sizeof(line), f))
			fputs(line, stderr);
		if (f)
			fclose(f);
	}
	unlink(worker_log);
	shim_harness_stop(&shim);
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
