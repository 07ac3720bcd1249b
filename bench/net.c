/*
 * bench/net — the net backend measured end to end on the frontend shim, in a private
 * network namespace: a private splitpv-shim, splitpvd spawning splitpv-netback, the
 * toolstack replay attaching two vifs (1 queue and 2 queues), and the userspace
 * netfront in this process as the guest. Each comparison runs its two sides A B A B
 * ... for a fixed time per run and prints the medians and their ratio, plus the CPU
 * time of the backend worker, of this process and of the shim.
 *
 * Baselines, in the same run, on a second tap ("bench0", vnet header, same offloads):
 *  - guest -> host: this process writes the same frames (virtio-net header + frame)
 *    straight into the tap; splitpv: netfront_send, the backend writes them into vif1.0.
 *    Both are counted by the kernel as the tap's rx_packets.
 *  - host -> guest: an AF_PACKET socket sends the same frames into the tap (window of
 *    1024 frames or 2 MiB in flight, so nothing is dropped and frames don't sit in the
 *    queue long enough to leave the cache); the baseline reads them from the tap
 *    fd, splitpv's guest takes them from its RX ring (netfront_poll/netfront_recv).
 *
 *   build/default/bench/net [-t seconds-per-run] [-r rounds] [-s] [-o only-name]
 *     defaults: 0.5 s, 5 rounds (about 50 s in all); -s: 0.15 s x 3 (smoke). Root.
 */
#include "frontend-shim/guest.h"
#include "frontend-shim/netfront.h"
#include "frontend-shim/toolstack.h"
#include "bench/bench.h"
#include "tests/integration/shim_harness.h"
#include "xenbus/xs.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>

#define DOMID 1
#define MAX_ROUNDS BENCH_MAX_ROUNDS
#define RX_WINDOW 1024u         /* host -> guest frames in flight, at most */
#define RX_WINDOW_BYTES (2u << 20) /* ... and bytes (as a TCP window would) */
#define TAP_QLEN 2048            /* the taps' txqueuelen: more than RX_WINDOW */
#define FRAME_MAX 65535u
#define GUEST_MAC { 0x00, 0x16, 0x3e, 0x00, 0x00, 0x01 }
#define GUEST2_MAC { 0x00, 0x16, 0x3e, 0x00, 0x00, 0x02 }
#define OTHER_MAC { 0x02, 0x00, 0x00, 0x00, 0x00, 0x99 }

static struct bench_opts opt;

static struct shim_harness shim;
static pid_t splitpvd = -1;
static struct shim_ts *ts;
static struct shim_guest *guest;
static struct netfront *nf1, *nf2;   /* vif1.0: 1 queue; vif1.1: 2 queues */
static int raw_fd = -1;               /* the baseline tap "bench0" */
static char worker_log[PATH_MAX];

/* CPU time of the calling thread: the guest (or the baseline's reader/writer); the
 * host-side injector thread is not counted. */
static double self_cpu(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The live splitpv-netback child of our splitpvd (one worker serves the guest's vifs). */
static pid_t find_worker(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = -1;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL && found < 0) {
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
		if (!strrchr(buf, ')') || sscanf(strrchr(buf, ')') + 1, " %c %d", &state, &ppid) != 2 ||
		    ppid != splitpvd || state == 'Z' || !strstr(buf, "(splitpv-netback"))
			continue;
		found = (pid_t)atoi(e->d_name);
	}
	closedir(d);
	return found;
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

/* ---- frames ---- */

static uint16_t csum16(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/*
 * An Ethernet/IPv4/TCP frame of len bytes (>= 54) from src to dst, flow sport, with a
 * valid IP header checksum and the TCP checksum left to the other side (partial, as a
 * guest's TCP stack sends it). Fills the matching virtio-net header.
 */
static void build_frame(uint8_t *f, size_t len, const uint8_t dst[6], const uint8_t src[6],
			uint16_t sport, bool gso, struct virtio_net_hdr *vh)
{
	uint16_t iplen = (uint16_t)(len - 14);
	uint16_t c;

	memset(f, 0, 54);
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	f[14] = 0x45;
	f[16] = (uint8_t)(iplen >> 8);
	f[17] = (uint8_t)iplen;
	f[22] = 64;
	f[23] = IPPROTO_TCP;
	f[26] = 10, f[27] = 98, f[28] = 0, f[29] = 2;  /* 10.98.0.2 -> 10.98.0.1 */
	f[30] = 10, f[31] = 98, f[32] = 0, f[33] = 1;
	c = csum16(f + 14, 20);
	f[24] = (uint8_t)(c >> 8);
	f[25] = (uint8_t)c;
	f[34] = (uint8_t)(sport >> 8);
	f[35] = (uint8_t)sport;
	f[36] = 0x13;
	f[37] = 0x89;
	f[46] = 5 << 4;
	f[47] = 0x10;          /* ACK */
	f[48] = 0xff;
	f[49] = 0xff;
	for (size_t i = 54; i < len; i++)
		f[i] = (uint8_t)(i * 7);
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

/* ---- workloads ---- */

enum dir { TX, RX };   /* TX: guest -> host, RX: host -> guest */

struct workload {
	enum dir dir;
	size_t len;           /* frame bytes */
	bool gso;
	unsigned int queues;  /* splitpv side: 1 = vif1.0, 2 = vif1.1 */
};

struct result {
	double wall;
	uint64_t frames, bytes;
	double fe_cpu, be_cpu, shim_cpu, inj_cpu;
};

struct side {
	const char *label;
	bool splitpv;
	const struct workload *w;
	double rate[MAX_ROUNDS], bw[MAX_ROUNDS];
	double be_util[MAX_ROUNDS], fe_util[MAX_ROUNDS], shim_util[MAX_ROUNDS];
	double be_us[MAX_ROUNDS], fe_us[MAX_ROUNDS], inj_util[MAX_ROUNDS];
};

static pid_t worker_pid = -1;

static const char *host_if(const struct side *s)
{
	if (!s->splitpv)
		return "bench0";
	return s->w->queues > 1 ? "vif1.1" : "vif1.0";
}

static struct netfront *side_nf(const struct side *s)
{
	return s->w->queues > 1 ? nf2 : nf1;
}

/* Free whatever the guest received meanwhile (IPv6 chatter of a tap coming up). */
static void nf_drain(struct netfront *nf)
{
	static uint8_t buf[FRAME_MAX + 64];

	netfront_poll(nf, 0);
	while (netfront_recv(nf, buf, sizeof(buf), NULL, NULL) > 0)
		;
}

/* Guest -> host. Frames handed over are counted by the host tap once the ring is
 * drained (the run ends when every request was answered). */
static int run_tx(struct side *s, struct result *r)
{
	static uint8_t frame[FRAME_MAX];
	static const uint8_t dst[6] = OTHER_MAC, src[6] = GUEST_MAC;
	const struct workload *w = s->w;
	struct netfront *nf = side_nf(s);
	struct virtio_net_hdr vh;
	struct netfront_meta m = { .csum_blank = true };
	const char *ifn = host_if(s);
	uint64_t p0, b0, q = 0;
	double t0, end;
	int rc = 0;

	build_frame(frame, w->len, dst, src, 4000, w->gso, &vh);
	if (w->gso) {
		m.gso_type = XEN_NETIF_GSO_TYPE_TCPV4;
		m.gso_size = vh.gso_size;
	}
	if (s->splitpv)
		nf_drain(nf);
	p0 = sysfs_u64(ifn, "rx_packets");
	b0 = sysfs_u64(ifn, "rx_bytes");
	t0 = bench_now();
	end = t0 + opt.run_seconds;
	if (!s->splitpv) {
		struct iovec iov[2] = { { &vh, sizeof(vh) }, { frame, w->len } };

		while (bench_now() < end)
			for (int i = 0; i < 64; i++)
				if (writev(raw_fd, iov, 2) < 0) {
					rc = -errno;
					goto out;
				}
	} else {
		const struct netfront_stats *st = netfront_stats(nf);

		while (bench_now() < end) {
			/* Spread flows over the queues the way a guest's XPS would. */
			for (int i = 0; i < 64; i++) {
				rc = netfront_send(nf, (unsigned int)(q % w->queues), frame, w->len, &m);
				if (rc == -EAGAIN) {
					rc = netfront_poll(nf, 5);
					rc = rc < 0 ? rc : 0;
					break;
				}
				if (rc)
					goto out;
				q++;
			}
			if (rc)
				goto out;
		}
		/* Drain: every frame answered, so every frame reached the tap. */
		for (double stop = bench_now() + 2;
		     st->tx_rsp_okay + st->tx_rsp_error < st->tx_frames && bench_now() < stop;)
			if ((rc = netfront_poll(nf, 5)) < 0)
				goto out;
		rc = 0;
	}
out:
	r->wall = bench_now() - t0;
	r->frames = sysfs_u64(ifn, "rx_packets") - p0;
	r->bytes = sysfs_u64(ifn, "rx_bytes") - b0;
	return rc;
}

/* Host -> guest: an injector thread sends frames into the host tap through a packet
 * socket, keeping at most RX_WINDOW of them in flight, until told to stop. */
struct injector {
	int sock;
	const uint8_t *frame;
	size_t len;
	struct virtio_net_hdr vh;
	bool vnet;
	atomic_bool stop;
	atomic_uint_fast64_t sent, received;
	uint64_t resyncs;
	double cpu;            /* this thread's CPU seconds, at the end */
};

static void *inject_main(void *arg)
{
	struct injector *in = arg;
	struct iovec iov[2] = { { &in->vh, sizeof(in->vh) }, { (void *)in->frame, in->len } };
	struct msghdr mh = { .msg_iov = in->vnet ? iov : iov + 1, .msg_iovlen = in->vnet ? 2 : 1 };
	uint64_t last_rcv = 0, window = RX_WINDOW_BYTES / in->len;
	double last_progress = bench_now();

	if (window > RX_WINDOW)
		window = RX_WINDOW;
	if (window < 16)
		window = 16;

	while (!atomic_load(&in->stop)) {
		uint64_t sent = atomic_load(&in->sent), rcv = atomic_load(&in->received);

		if (rcv != last_rcv) {
			last_rcv = rcv;
			last_progress = bench_now();
		}
		if (sent - rcv >= window) {
			/* Nothing arrived for 20 ms: frames were lost (the kernel's queue,
			 * a filter); give the window back rather than stall. */
			if (bench_now() - last_progress > 0.02) {
				atomic_store(&in->sent, rcv);
				in->resyncs++;
				last_progress = bench_now();
			}
			/* Sleep, don't spin: on a small machine the spin would take the
			 * receiver's CPU. 1024 frames last longer than 20 us. */
			nanosleep(&(struct timespec){ 0, 20000 }, NULL);
			continue;
		}
		if (sendmsg(in->sock, &mh, 0) < 0) {
			if (errno == ENOBUFS || errno == EAGAIN) {
				sched_yield();
				continue;
			}
			break;
		}
		atomic_fetch_add(&in->sent, 1);
	}
	in->cpu = self_cpu();
	return NULL;
}

static int packet_socket(const char *ifname, bool vnet)
{
	struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0), one = 1;

	if (s < 0)
		return -errno;
	a.sll_ifindex = (int)if_nametoindex(ifname);
	if (!a.sll_ifindex || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) != 0 ||
	    (vnet && setsockopt(s, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) != 0)) {
		int e = errno ? -errno : -ENODEV;

		close(s);
		return e;
	}
	return s;
}

static int run_rx(struct side *s, struct result *r)
{
	static uint8_t frame[FRAME_MAX], buf[FRAME_MAX + 64];
	static const uint8_t dst[6] = GUEST_MAC, src[6] = OTHER_MAC;
	const struct workload *w = s->w;
	struct netfront *nf = side_nf(s);
	struct injector in = { .frame = frame, .len = w->len, .vnet = w->gso };
	pthread_t th;
	double t0, end;
	int rc = 0;

	r->frames = r->bytes = 0;
	build_frame(frame, w->len, dst, src, 4000, w->gso, &in.vh);
	in.sock = packet_socket(host_if(s), w->gso);
	if (in.sock < 0)
		return in.sock;
	if (s->splitpv)
		nf_drain(nf);
	else
		while (read(raw_fd, buf, sizeof(buf)) > 0)
			;
	t0 = bench_now();
	end = t0 + opt.run_seconds;
	if (pthread_create(&th, NULL, inject_main, &in)) {
		close(in.sock);
		return -EAGAIN;
	}
	while (bench_now() < end) {
		ssize_t n;

		if (s->splitpv) {
			rc = netfront_poll(nf, 5);
			if (rc < 0)
				break;
			rc = 0;
			while ((n = netfront_recv(nf, buf, sizeof(buf), NULL, NULL)) > 0) {
				r->frames++;
				r->bytes += (uint64_t)n;
			}
		} else {
			struct pollfd pfd = { .fd = raw_fd, .events = POLLIN };

			poll(&pfd, 1, 5);
			while ((n = read(raw_fd, buf, sizeof(buf))) > 0) {
				r->frames++;
				r->bytes += (uint64_t)n - sizeof(struct virtio_net_hdr);
			}
		}
		atomic_store(&in.received, r->frames);
	}
	r->wall = bench_now() - t0;
	atomic_store(&in.stop, true);
	pthread_join(th, NULL);
	close(in.sock);
	r->inj_cpu = in.cpu;
	/* What is still in flight (up to RX_WINDOW frames in the tap and the backend's
	 * queue) must not count for the next run: take it until 100 ms pass quietly. */
	for (double quiet = bench_now() + 0.1, stop = bench_now() + 3; !rc && bench_now() < quiet && bench_now() < stop;) {
		ssize_t n;

		if (s->splitpv) {
			rc = netfront_poll(nf, 5);
			rc = rc < 0 ? rc : 0;
			while ((n = netfront_recv(nf, buf, sizeof(buf), NULL, NULL)) > 0)
				quiet = bench_now() + 0.1;
		} else {
			struct pollfd pfd = { .fd = raw_fd, .events = POLLIN };

			poll(&pfd, 1, 5);
			while ((n = read(raw_fd, buf, sizeof(buf))) > 0)
				quiet = bench_now() + 0.1;
		}
	}
	return rc;
}

static int run_side(struct side *s, unsigned int round)
{
	pid_t shim_pid = shim.pid;
	double fe0 = self_cpu(), be0 = bench_proc_cpu(worker_pid), sh0 = bench_proc_cpu(shim_pid);
	struct result r = { 0 };
	int rc = s->w->dir == TX ? run_tx(s, &r) : run_rx(s, &r);

	if (rc) {
		fprintf(stderr, "bench/net: %s: %s\n", s->label, strerror(-rc));
		return rc;
	}
	r.fe_cpu = self_cpu() - fe0;
	r.be_cpu = s->splitpv ? bench_proc_cpu(worker_pid) - be0 : 0;
	r.shim_cpu = s->splitpv ? bench_proc_cpu(shim_pid) - sh0 : 0;
	s->rate[round] = (double)r.frames / r.wall;
	s->bw[round] = (double)r.bytes * 8 / r.wall / 1e9;
	s->fe_util[round] = r.fe_cpu / r.wall;
	s->be_util[round] = r.be_cpu / r.wall;
	s->shim_util[round] = r.shim_cpu / r.wall;
	s->inj_util[round] = r.inj_cpu / r.wall;
	s->fe_us[round] = r.frames ? r.fe_cpu * 1e6 / (double)r.frames : 0;
	s->be_us[round] = r.frames ? r.be_cpu * 1e6 / (double)r.frames : 0;
	return 0;
}

static void print_side(const struct side *s)
{
	printf("  %-36s %9.0f frames/s %7.2f Gbit/s", s->label, bench_median(s->rate, opt.rounds),
	       bench_median(s->bw, opt.rounds));
	printf("  %s CPU %3.0f%% (%.2f us/frame)", s->splitpv ? "guest" : "process",
	       100 * bench_median(s->fe_util, opt.rounds), bench_median(s->fe_us, opt.rounds));
	if (s->splitpv)
		printf("  backend CPU %3.0f%% (%.2f us/frame)  shim %2.0f%%",
		       100 * bench_median(s->be_util, opt.rounds), bench_median(s->be_us, opt.rounds),
		       100 * bench_median(s->shim_util, opt.rounds));
	if (s->w->dir == RX)
		printf("  host injector CPU %3.0f%%", 100 * bench_median(s->inj_util, opt.rounds));
	printf("\n");
}

/* Run A and B alternately; print both and B/A of the metric (frames/s or bits/s). */
static int compare(const char *title, struct side *a, struct side *b, bool by_bytes,
		   const char *target)
{
	double ra, rb;

	printf("%s\n", title);
	fflush(stdout);
	for (unsigned int i = 0; i < opt.rounds; i++)
		if (run_side(a, i) || run_side(b, i))
			return -EIO;
	ra = by_bytes ? bench_median(a->bw, opt.rounds) : bench_median(a->rate, opt.rounds);
	rb = by_bytes ? bench_median(b->bw, opt.rounds) : bench_median(b->rate, opt.rounds);
	print_side(a);
	print_side(b);
	printf("  ratio %s / %s (%s): %.2f%s%s\n\n", b->label, a->label,
	       by_bytes ? "throughput" : "frames/s", ra > 0 ? rb / ra : 0,
	       target ? "   target " : "", target ? target : "");
	fflush(stdout);
	return 0;
}

static int run_all(void)
{
	static const struct workload tx1500 = { TX, 1514, false, 1 }, rx1500 = { RX, 1514, false, 1 };
	static const struct workload txgso = { TX, 65535, true, 1 }, rxgso = { RX, 65535, true, 1 };
	static const struct workload tx64 = { TX, 60, false, 1 }, rx64 = { RX, 60, false, 1 };
	static const struct workload tx64q2 = { TX, 60, false, 2 };
	static const struct workload tx1500q2 = { TX, 1514, false, 2 };
	int rc = 0;

	if (bench_selected(&opt, "tx1500")) {
		struct side a = { .label = "tap write (baseline)", .splitpv = false, .w = &tx1500 };
		struct side b = { .label = "splitpv guest -> host", .splitpv = true, .w = &tx1500 };

		rc = rc ?: compare("[tx1500] guest -> host, 1514-byte frames (MTU 1500), 1 queue",
				   &a, &b, true, ">= 0.6");
	}
	if (bench_selected(&opt, "rx1500")) {
		struct side a = { .label = "tap read (baseline)", .splitpv = false, .w = &rx1500 };
		struct side b = { .label = "splitpv host -> guest", .splitpv = true, .w = &rx1500 };

		rc = rc ?: compare("[rx1500] host -> guest, 1514-byte frames, 1 queue", &a, &b,
				   true, ">= 0.6");
	}
	if (bench_selected(&opt, "gsotx")) {
		struct side a = { .label = "splitpv 1514-byte frames", .splitpv = true, .w = &tx1500 };
		struct side b = { .label = "splitpv 64 KiB GSO frames", .splitpv = true, .w = &txgso };

		rc = rc ?: compare("[gsotx] guest -> host through splitpv: 64 KiB GSO (TCPv4, "
				   "mss 1448) vs 1514-byte frames",
				   &a, &b, true, ">= 3");
	}
	if (bench_selected(&opt, "gsorx")) {
		struct side a = { .label = "splitpv 1514-byte frames", .splitpv = true, .w = &rx1500 };
		struct side b = { .label = "splitpv 64 KiB GSO frames", .splitpv = true, .w = &rxgso };

		rc = rc ?: compare("[gsorx] host -> guest through splitpv: 64 KiB GSO vs 1514-byte "
				   "frames",
				   &a, &b, true, ">= 3");
	}
	if (bench_selected(&opt, "tx64")) {
		struct side a = { .label = "tap write (baseline)", .splitpv = false, .w = &tx64 };
		struct side b = { .label = "splitpv guest -> host", .splitpv = true, .w = &tx64 };

		rc = rc ?: compare("[tx64] guest -> host packets/s, 60-byte frames (64 on the wire)",
				   &a, &b, false, NULL);
	}
	if (bench_selected(&opt, "rx64")) {
		struct side a = { .label = "tap read (baseline)", .splitpv = false, .w = &rx64 };
		struct side b = { .label = "splitpv host -> guest", .splitpv = true, .w = &rx64 };

		rc = rc ?: compare("[rx64] host -> guest packets/s, 60-byte frames", &a, &b, false,
				   NULL);
	}
	if (bench_selected(&opt, "queues")) {
		struct side a = { .label = "splitpv 1 queue", .splitpv = true, .w = &tx64 };
		struct side b = { .label = "splitpv 2 queues", .splitpv = true, .w = &tx64q2 };
		struct side c = { .label = "splitpv 1 queue", .splitpv = true, .w = &tx1500 };
		struct side d = { .label = "splitpv 2 queues", .splitpv = true, .w = &tx1500q2 };

		rc = rc ?: compare("[queues64] guest -> host packets/s, 60-byte frames, flows "
				   "alternating over the queues: 1 vs 2 queues",
				   &a, &b, false, NULL);
		rc = rc ?: compare("[queues1500] guest -> host, 1514-byte frames: 1 vs 2 queues",
				   &c, &d, true, NULL);
	}
	return rc;
}

/* ---- setup ---- */

/* Up, with a queue longer than the injector's window (the tap's ring is that long). */
static int link_up(const char *ifname)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (s < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_qlen = TAP_QLEN;
	if (strcmp(ifname, "lo") != 0 && ioctl(s, SIOCSIFTXQLEN, &ifr) < 0)
		rc = -errno;
	if (!rc && ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		rc = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (!rc && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		rc = -errno;
	close(s);
	return rc;
}

/* The baseline tap: vnet header, the offloads netback sets for a guest taking them. */
static int raw_tap_open(void)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK), rc;

	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "bench0");
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 ||
	    ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	rc = link_up("bench0");
	if (rc) {
		close(fd);
		return rc;
	}
	raw_fd = fd;
	return 0;
}

static int start_splitpvd(void)
{
	static const char *const opts[] = { "--max-queues", "2", NULL };

	splitpvd = shim_harness_splitpvd(opts, worker_log);
	return splitpvd < 0 ? (int)splitpvd : 0;
}

static int attach_nic(unsigned int devid, const char *mac, unsigned int queues,
		      struct netfront **out)
{
	struct shim_nic_spec spec;
	struct netfront_opts o;
	char err[128], s[128];
	int rc;

	/* No such bridge: the vif script only brings the tap up. */
	snprintf(s, sizeof(s), "bridge=nobridge,mac=%s,devid=%u", mac, devid);
	rc = shim_nic_spec_parse(s, &spec, err, sizeof(err));
	rc = rc ?: shim_ts_nic_attach(ts, DOMID, &spec);
	if (rc)
		return rc;
	netfront_opts_default(&o);
	o.queues = queues;
	return netfront_open(out, guest, devid, &o);
}

/* The counters the worker logged for each vif when it went away. */
static void print_worker_stats(void)
{
	char line[1024];
	FILE *f = fopen(worker_log, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, ": stats: "))
			printf("  %s", strstr(line, "vif/") ? strstr(line, "vif/") : line);
	fclose(f);
}

int main(int argc, char **argv)
{
	struct shim_ts_config cfg = { 0 };
	int rc;

	rc = bench_parse_opts(argc, argv, "bench/net", "tx1500|rx1500|gsotx|gsorx|tx64|rx64|queues", &opt);
	if (rc >= 0)
		return rc;
	if (geteuid() != 0) {
		printf("bench/net: needs root (tap devices, a private network namespace)\n");
		return 77;
	}
	/* A private network namespace with its own /sys: our taps, nobody else's traffic. */
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("sysfs", "/sys", "sysfs", 0, NULL) != 0) {
		printf("bench/net: can't create network and mount namespaces: %s\n",
		       strerror(errno));
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	link_up("lo");
	rc = shim_harness_start(&shim, argv[0]);
	if (rc) {
		fprintf(stderr, "bench/net: can't start splitpv-shim: %s\n", strerror(-rc));
		return 1;
	}
	snprintf(worker_log, sizeof(worker_log), "%s/splitpvd.log", shim.rundir);
	rc = raw_tap_open();
	rc = rc ?: start_splitpvd();
	if (rc) {
		fprintf(stderr, "bench/net: setup: %s\n", strerror(-rc));
		goto out;
	}
	cfg.rundir = shim.rundir;
	cfg.script_dir = "tools/hotplug";
	rc = shim_ts_open(&ts, &cfg);
	rc = rc ?: shim_ts_domain_create(ts, DOMID, NULL);
	rc = rc ?: shim_guest_create(&guest, shim.rundir, DOMID, 16384, 16384);
	rc = rc ?: attach_nic(0, "00:16:3e:00:00:01", 1, &nf1);
	rc = rc ?: attach_nic(1, "00:16:3e:00:00:02", 2, &nf2);
	if (rc) {
		fprintf(stderr, "bench/net: toolstack/guest/netfront: %s\n", strerror(-rc));
		goto out;
	}
	rc = link_up("vif1.0");
	rc = rc ?: link_up("vif1.1");
	if (rc) {
		fprintf(stderr, "bench/net: host side of the vifs: %s\n", strerror(-rc));
		goto out;
	}
	worker_pid = find_worker();
	if (netfront_queues(nf2) != 2)
		printf("bench/net: vif1.1 got %u queue(s), not 2\n", netfront_queues(nf2));
	bench_print_machine("bench/net", &opt);
	rc = run_all();
out:
	netfront_close(nf2);
	netfront_close(nf1);
	if (ts) {
		/* A fresh connection: shim_ts arms its wait timers from its loop's cached
		 * time, which is as old as the attach (see net_shim's ts_refresh). */
		struct shim_ts *fresh = NULL;

		if (shim_ts_open(&fresh, &cfg) == 0) {
			shim_ts_close(ts);
			ts = fresh;
		}
		/* Detach once the backends have written Closed (see net_shim: a detach racing
		 * that write can leave the toolstack waiting out its timeout). */
		for (int i = 0; i < 100; i++) {
			int s0 = -1, s1 = -1;

			xenbus_read_state(shim_ts_xs(ts), XBT_NULL, "/local/domain/0/backend/vif/1/0", &s0);
			xenbus_read_state(shim_ts_xs(ts), XBT_NULL, "/local/domain/0/backend/vif/1/1", &s1);
			if ((s0 == XenbusStateClosed || s0 < 0) && (s1 == XenbusStateClosed || s1 < 0))
				break;
			usleep(20000);
		}
		shim_ts_device_detach(ts, DOMID, SHIM_TS_VIF, 1);
		shim_ts_device_detach(ts, DOMID, SHIM_TS_VIF, 0);
	}
	shim_guest_destroy(guest);
	shim_ts_close(ts);
	if (splitpvd > 0) {
		kill(splitpvd, SIGTERM);
		waitpid(splitpvd, NULL, 0);
	}
	if (!rc)
		print_worker_stats();
	if (raw_fd >= 0)
		close(raw_fd);
	unlink(worker_log);
	shim_harness_stop(&shim);
	return rc ? 1 : 0;
}
