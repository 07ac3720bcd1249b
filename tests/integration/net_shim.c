/*
 * net_shim — the net backend end to end on the frontend shim, inside network
 * namespaces this test creates: splitpv-shim, splitpvd spawning splitpv-netback, the
 * libxl-like toolstack attaching vifs (the vif hotplug script enslaves the tap to a
 * bridge), and the userspace netfront in this process as the guest, its frames pumped
 * into a tap inside a guest namespace. Covers: Toeplitz steering over two queues via
 * the ctrl ring, the multicast filter, RX stall detection, ping both ways, a TCP
 * transfer verified both ways with GSO frames, the rate limit, and hostile TX chains
 * answered as Linux netback does while the other device keeps working.
 *
 *   net_shim      (root; exits 77 if namespaces can't be made)
 */
#include "backends/net/parse.h"
#include "frontend-shim/guest.h"
#include "frontend-shim/netfront.h"
#include "frontend-shim/toolstack.h"
#include "tests/integration/net_guest.h"
#include "tests/integration/shim_harness.h"
#include "xenbus/xs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <netinet/ip_icmp.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <time.h>

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

#define HOST_IP "10.99.0.1"
#define GUEST_IP "10.99.0.2"
#define GUEST_MAC "00:16:3e:00:00:01"

static struct shim_harness shim;
static pid_t splitpvd = -1;
static char gns[64];
static int gns_fd = -1;

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
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

/* ---- ping (ICMP echo over a raw socket; no ping binary needed) ---- */

struct ping_job {
	int nsfd;
	const char *dst;
	int count, replies;
};

static uint16_t icmp_csum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(b[i] << 8 | b[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

static void *ping_main(void *arg)
{
	struct ping_job *j = arg;
	struct sockaddr_in a = { .sin_family = AF_INET };
	int s;

	if (j->nsfd >= 0 && setns(j->nsfd, CLONE_NEWNET) != 0)
		return NULL;
	s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	if (s < 0)
		return NULL;
	inet_pton(AF_INET, j->dst, &a.sin_addr);
	for (int i = 0; i < j->count; i++) {
		uint8_t pkt[64], in[1500];
		struct icmphdr *h = (struct icmphdr *)pkt;
		uint64_t end = now_us() + 2000000;

		memset(pkt, 0x5a, sizeof(pkt));
		h->type = ICMP_ECHO;
		h->code = 0;
		h->checksum = 0;
		h->un.echo.id = htons(0x5170);
		h->un.echo.sequence = htons((uint16_t)i);
		h->checksum = icmp_csum(pkt, sizeof(pkt));
		sendto(s, pkt, sizeof(pkt), 0, (struct sockaddr *)&a, sizeof(a));
		while (now_us() < end) {
			struct pollfd pfd = { .fd = s, .events = POLLIN };
			ssize_t n;

			if (poll(&pfd, 1, 100) <= 0)
				continue;
			n = recv(s, in, sizeof(in), 0);
			if (n >= 28) {
				const struct icmphdr *r = (const void *)(in + (in[0] & 15) * 4);

				if (r->type == ICMP_ECHOREPLY && r->un.echo.id == htons(0x5170) &&
				    r->un.echo.sequence == htons((uint16_t)i)) {
					j->replies++;
					break;
				}
			}
		}
	}
	close(s);
	return NULL;
}

/* Echo requests from the namespace nsfd (-1: ours) to dst; returns the replies. */
static int ping(int nsfd, const char *dst, int count)
{
	struct ping_job j = { .nsfd = nsfd, .dst = dst, .count = count };
	pthread_t th;

	pthread_create(&th, NULL, ping_main, &j);
	pthread_join(th, NULL);
	return j.replies;
}

/* ---- TCP both ways with a verified payload ---- */

static uint8_t pattern(uint64_t i, uint32_t seed)
{
	uint64_t x = (i / 8) * 0x9E3779B97F4A7C15ull + seed;

	x ^= x >> 29;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 32;
	return (uint8_t)(x >> ((i % 8) * 8));
}

struct tcp_job {
	uint64_t bytes;         /* to send then receive (0: stream until stop) */
	volatile bool *stop;
	int rc;
	uint64_t sent;
};

static int send_pattern(int s, uint64_t n, uint32_t seed, volatile bool *stop, uint64_t *sent)
{
	static __thread uint8_t buf[65536];
	uint64_t off = 0;

	while (n == 0 ? !*stop : off < n) {
		size_t chunk = sizeof(buf);
		ssize_t w;

		if (n && n - off < chunk)
			chunk = (size_t)(n - off);
		for (size_t i = 0; i < chunk; i++)
			buf[i] = pattern(off + i, seed);
		w = send(s, buf, chunk, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		off += (uint64_t)w;
		if (sent)
			*sent = off;
	}
	return 0;
}

static int recv_pattern(int s, uint64_t n, uint32_t seed)
{
	static __thread uint8_t buf[65536];
	uint64_t off = 0;

	while (off < n) {
		ssize_t r = recv(s, buf, sizeof(buf), 0);

		if (r <= 0)
			return -1;
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != pattern(off + (uint64_t)i, seed))
				return -2;
		off += (uint64_t)r;
	}
	return 0;
}

/* In the guest namespace: connect to the host, send, then receive and verify. */
static void *guest_tcp(void *arg)
{
	struct tcp_job *j = arg;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(5001) };
	struct timeval tv = { 20, 0 };
	int s;

	j->rc = -1;
	if (setns(gns_fd, CLONE_NEWNET) != 0)
		return NULL;
	s = socket(AF_INET, SOCK_STREAM, 0);
	inet_pton(AF_INET, HOST_IP, &a.sin_addr);
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(s);
		return NULL;
	}
	j->rc = send_pattern(s, j->bytes, 1, j->stop, &j->sent);
	if (j->rc == 0 && j->bytes)
		j->rc = recv_pattern(s, j->bytes, 2);
	close(s);
	return NULL;
}

static int host_listen(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(5001) };
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	inet_pton(AF_INET, HOST_IP, &a.sin_addr);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s, 4) != 0) {
		close(s);
		return -1;
	}
	return s;
}

static void test_tcp(void)
{
	const uint64_t n = 32u << 20;
	struct tcp_job j = { .bytes = n };
	struct timeval tv = { 20, 0 };
	pthread_t th;
	uint64_t rxp0 = sysfs_u64("vif1.0", "rx_packets"), rxb0 = sysfs_u64("vif1.0", "rx_bytes");
	uint64_t txp0 = sysfs_u64("vif1.0", "tx_packets"), txb0 = sysfs_u64("vif1.0", "tx_bytes");
	uint64_t t0 = now_us(), rxp, rxb, txp, txb;
	int ls = host_listen(), s;

	CHECK(ls >= 0, "listen on " HOST_IP);
	if (ls < 0)
		return;
	pthread_create(&th, NULL, guest_tcp, &j);
	s = accept(ls, NULL, NULL);
	CHECK(s >= 0, "accept");
	if (s >= 0) {
		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		CHECK(recv_pattern(s, n, 1) == 0, "guest -> host payload verified");
		CHECK(send_pattern(s, n, 2, NULL, NULL) == 0, "host -> guest send");
	}
	pthread_join(th, NULL);
	CHECK(j.rc == 0, "guest side of the transfer: %d (host -> guest payload verified)", j.rc);
	if (s >= 0)
		close(s);
	close(ls);
	/* GSO: the vif tap saw frames bigger than the MTU in both directions. */
	rxp = sysfs_u64("vif1.0", "rx_packets") - rxp0;
	rxb = sysfs_u64("vif1.0", "rx_bytes") - rxb0;
	txp = sysfs_u64("vif1.0", "tx_packets") - txp0;
	txb = sysfs_u64("vif1.0", "tx_bytes") - txb0;
	CHECK(rxp && rxb / rxp > 1514, "guest -> host went as GSO frames (avg %llu bytes)",
	      (unsigned long long)(rxp ? rxb / rxp : 0));
	CHECK(txp && txb / txp > 1514, "host -> guest went as GSO frames (avg %llu bytes)",
	      (unsigned long long)(txp ? txb / txp : 0));
	printf("ok   TCP 32 MiB each way verified in %.2f s; GSO avg frame %llu / %llu bytes\n",
	       (double)(now_us() - t0) / 1e6, (unsigned long long)(rxp ? rxb / rxp : 0),
	       (unsigned long long)(txp ? txb / txp : 0));
}

/* In the guest namespace: UDP datagrams to the host as fast as they go, until stop. */
static void *guest_udp_blast(void *arg)
{
	volatile bool *stop = arg;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(5002) };
	static uint8_t payload[1400];
	int s;

	if (setns(gns_fd, CLONE_NEWNET) != 0)
		return NULL;
	s = socket(AF_INET, SOCK_DGRAM, 0);
	inet_pton(AF_INET, HOST_IP, &a.sin_addr);
	while (!*stop)
		if (sendto(s, payload, sizeof(payload), 0, (struct sockaddr *)&a, sizeof(a)) < 0)
			usleep(100);
	close(s);
	return NULL;
}

static double loadavg_per_cpu(void)
{
	return shim_harness_load() / (double)sysconf(_SC_NPROCESSORS_ONLN);
}

/* Rate limit: 4 MB/s as 200000 bytes per 50 ms; measured on the host tap while the
 * guest offers more than that. */
static void test_rate(struct xs_handle *xs)
{
	const char *be = "/local/domain/0/backend/vif/1/0";
	const double want = 200000.0 / 0.05;
	volatile bool stop = false;
	pthread_t th;
	uint64_t b0, b1, t0, t1;
	double got;

	CHECK(xenbus_write(xs, XBT_NULL, be, "rate", "200000,50000") == 0, "write rate");
	usleep(200000);
	pthread_create(&th, NULL, guest_udp_blast, (void *)&stop);
	/* Warm up 1 s, then measure 3 s. */
	t0 = now_us();
	b0 = 0;
	for (bool measuring = false;;) {
		uint64_t t = now_us();

		if (!measuring && t - t0 >= 1000000) {
			measuring = true;
			t0 = t;
			b0 = sysfs_u64("vif1.0", "rx_bytes");
		}
		if (measuring && t - t0 >= 3000000)
			break;
		usleep(20000);
	}
	b1 = sysfs_u64("vif1.0", "rx_bytes");
	t1 = now_us();
	got = (double)(b1 - b0) / ((double)(t1 - t0) / 1e6);
	stop = true;
	xenbus_rm(xs, XBT_NULL, be, "rate");
	usleep(200000);
	pthread_join(th, NULL);
	/* The limit holding (never more than 10 % over) is asserted always. Reaching 90 % of
	 * it needs the guest's pump, the blaster and the backend to get CPU in time, which
	 * an overloaded machine (other builds, sanitizers) doesn't give: asserted only
	 * when the load average is below 1.5 per CPU. */
	CHECK(got < want * 1.1, "rate %.0f B/s over the limit %.0f B/s", got, want);
	if (loadavg_per_cpu() < 1.5)
		CHECK(got > want * 0.9, "rate %.0f B/s vs limit %.0f B/s", got, want);
	else if (got <= want * 0.9)
		printf("     rate under 90 %% of the limit on a machine at load %.1f per CPU: "
		       "lower bound not asserted\n", loadavg_per_cpu());
	printf("ok   rate limit: %.0f B/s measured for a %.0f B/s limit (%.1f %%)\n", got, want,
	       100.0 * got / want);
}

/* ---- API-level tests (no pump running) ---- */

static int udp_to(const char *ip, uint16_t sport, uint16_t dport, const char *via)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(dport) };
	struct sockaddr_in b = { .sin_family = AF_INET, .sin_port = htons(sport) };
	int s = socket(AF_INET, SOCK_DGRAM, 0), rc;
	struct in_addr ifa;

	inet_pton(AF_INET, ip, &a.sin_addr);
	inet_pton(AF_INET, HOST_IP, &b.sin_addr);
	bind(s, (struct sockaddr *)&b, sizeof(b));
	if (via) {
		inet_pton(AF_INET, via, &ifa);
		setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &ifa, sizeof(ifa));
	}
	rc = sendto(s, "splitpv", 7, 0, (struct sockaddr *)&a, sizeof(a)) == 7 ? 0 : -1;
	close(s);
	return rc;
}

/* Collect frames for ms; count UDP frames to dport (and their queues). */
static unsigned int drain(struct netfront *nf, int ms, uint16_t dport, unsigned int *per_q,
			  const struct net_hash *h, unsigned int *misrouted)
{
	static uint8_t buf[70000];
	uint64_t end = now_us() + (uint64_t)ms * 1000;
	unsigned int n = 0, q;

	while (now_us() < end) {
		int len;

		netfront_poll(nf, 10);
		while ((len = netfront_recv(nf, buf, sizeof(buf), NULL, &q)) > 0) {
			struct net_l4 l4;

			if (net_l4_find(buf, (size_t)len, &l4) != 0)
				continue;
			if (h && l4.proto == IPPROTO_TCP) {
				uint32_t hash;
				uint8_t ht;

				if (net_hash_frame(h, buf, (size_t)len, &hash, &ht)) {
					if (net_hash_queue(h, hash, 2) != q)
						(*misrouted)++;
					per_q[q < 2 ? q : 1]++;
					n++;
				}
				continue;
			}
			if (l4.proto == IPPROTO_UDP && (buf[l4.l4_off + 2] << 8 | buf[l4.l4_off + 3]) == dport)
				n++;
		}
	}
	return n;
}

static void test_hash(struct netfront *nf)
{
	static const uint8_t key[40] = {
		0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
		0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
		0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
	};
	struct net_hash h = { .alg = XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ,
			      .flags = XEN_NETIF_CTRL_HASH_TYPE_IPV4 | XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP,
			      .mapping_size = 64 };
	uint32_t map[64], st = 99, data = 0;
	unsigned int per_q[2] = { 0, 0 }, mis = 0, n;
	int socks[32], gref;

	CHECK(netfront_queues(nf) == 2, "two queues negotiated (%u)", netfront_queues(nf));
	CHECK(netfront_has_ctrl(nf), "ctrl ring negotiated");
	if (netfront_queues(nf) != 2 || !netfront_has_ctrl(nf))
		return;
	memcpy(h.key, key, sizeof(key));
	for (unsigned int i = 0; i < 64; i++)
		h.mapping[i] = map[i] = (i * 7 / 3) % 2;
	CHECK(netfront_ctrl(nf, XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM,
			    XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ, 0, 0, &st, NULL) == 0 && st == 0,
	      "set algorithm: %u", st);
	CHECK(netfront_ctrl(nf, XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS, 0, 0, 0, &st, &data) == 0 &&
		      st == 0 && (data & h.flags) == h.flags,
	      "get flags: %u %#x", st, data);
	CHECK(netfront_ctrl(nf, XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, h.flags, 0, 0, &st, NULL) == 0 &&
		      st == 0,
	      "set flags: %u", st);
	gref = netfront_ctrl_buf(nf, key, sizeof(key));
	CHECK(netfront_ctrl(nf, XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, (uint32_t)gref, 40, 0, &st, NULL) ==
			      0 && st == 0,
	      "set key: %u", st);
	CHECK(netfront_ctrl(nf, XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, (uint32_t)gref, 41, 0, &st, NULL) ==
			      0 && st == XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW,
	      "oversized key refused: %u", st);
	CHECK(netfront_ctrl(nf, XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, 64, 0, 0, &st, NULL) == 0 &&
		      st == 0,
	      "set mapping size: %u", st);
	gref = netfront_ctrl_buf(nf, map, sizeof(map));
	CHECK(netfront_ctrl(nf, XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, (uint32_t)gref, 64, 0, &st,
			    NULL) == 0 && st == 0,
	      "set mapping: %u", st);
	CHECK(netfront_ctrl(nf, XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, (uint32_t)gref, 64, 1, &st,
			    NULL) == 0 && st == XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER,
	      "mapping past the table refused: %u", st);
	/* 32 TCP flows from the host: SYNs to the guest from distinct source ports. */
	for (int i = 0; i < 32; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)(6000 + i)) };

		socks[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		inet_pton(AF_INET, GUEST_IP, &a.sin_addr);
		connect(socks[i], (struct sockaddr *)&a, sizeof(a));
	}
	n = drain(nf, 700, 0, per_q, &h, &mis);
	for (int i = 0; i < 32; i++)
		close(socks[i]);
	CHECK(n >= 32, "SYNs received: %u", n);
	CHECK(mis == 0, "%u frames on a queue other than the mapping's", mis);
	CHECK(per_q[0] > 0 && per_q[1] > 0, "flows spread over both queues (%u / %u)", per_q[0],
	      per_q[1]);
	printf("ok   toeplitz steering: %u frames, %u on q0, %u on q1, %u misrouted\n", n, per_q[0],
	       per_q[1], mis);
	/* Back to the default for the rest of the run. */
	netfront_ctrl(nf, XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM, 0, 0, 0, &st, NULL);
}

static void test_mcast(struct netfront *nf, struct xs_handle *xs)
{
	const char *fe = "/local/domain/1/device/vif/0";
	static const uint8_t grp[6] = { 0x01, 0x00, 0x5e, 0x01, 0x01, 0x01 };
	unsigned int n;

	udp_to("239.1.1.1", 7000, 7000, HOST_IP);
	n = drain(nf, 300, 7000, NULL, NULL, NULL);
	CHECK(n == 0, "multicast to an unsubscribed group filtered (%u arrived)", n);
	CHECK(netfront_mcast(nf, true, grp) == NETIF_RSP_OKAY, "mcast add answered OKAY");
	udp_to("239.1.1.1", 7000, 7000, HOST_IP);
	n = drain(nf, 300, 7000, NULL, NULL, NULL);
	CHECK(n == 1, "multicast to a subscribed group delivered (%u)", n);
	CHECK(netfront_mcast(nf, false, grp) == NETIF_RSP_OKAY, "mcast del answered OKAY");
	udp_to("239.1.1.1", 7000, 7000, HOST_IP);
	n = drain(nf, 300, 7000, NULL, NULL, NULL);
	CHECK(n == 0, "multicast filtered again after del (%u)", n);
	udp_to(GUEST_IP, 7001, 7001, NULL);
	n = drain(nf, 300, 7001, NULL, NULL, NULL);
	CHECK(n == 1, "unicast still delivered (%u)", n);
	/* Dynamic: the frontend drops request-multicast-control while connected (as Linux
	 * netfront does for IFF_ALLMULTI); the backend's watch stops filtering, then
	 * filters again once it is back. */
	CHECK(xenbus_write(xs, XBT_NULL, fe, "request-multicast-control", "0") == 0,
	      "frontend turns multicast control off");
	usleep(200000);
	udp_to("239.1.1.1", 7000, 7000, HOST_IP);
	n = drain(nf, 300, 7000, NULL, NULL, NULL);
	CHECK(n == 1, "multicast control off: unsubscribed group delivered (%u)", n);
	CHECK(xenbus_write(xs, XBT_NULL, fe, "request-multicast-control", "1") == 0,
	      "frontend turns multicast control on");
	usleep(200000);
	udp_to("239.1.1.1", 7000, 7000, HOST_IP);
	n = drain(nf, 300, 7000, NULL, NULL, NULL);
	CHECK(n == 0, "multicast control back on: filtered again (%u)", n);
	printf("ok   multicast filter (request-multicast-control static and watched, add/del)\n");
}

/* The guest stops taking frames: after rx-stall-ms the backend drops carrier; it comes
 * back once buffers are posted again. */
static void test_stall(struct netfront *nf, struct xs_handle *xs)
{
	const char *be = "/local/domain/0/backend/vif/1/0";
	unsigned int carrier = 9;

	for (int i = 0; i < 1500; i++)
		udp_to(GUEST_IP, (uint16_t)(7100 + i % 64), 7002, NULL);
	usleep(1800000); /* stall 1000 ms + a timer period */
	xenbus_read_uint(xs, XBT_NULL, be, "carrier", 0, 1, &carrier);
	CHECK(carrier == 0, "carrier off after the guest stalled (%u)", carrier);
	drain(nf, 300, 7002, NULL, NULL, NULL);
	udp_to(GUEST_IP, 7002, 7002, NULL);
	drain(nf, 300, 7002, NULL, NULL, NULL);
	xenbus_read_uint(xs, XBT_NULL, be, "carrier", 0, 1, &carrier);
	CHECK(carrier == 1, "carrier back once the guest posts buffers (%u)", carrier);
	printf("ok   rx stall detection and recovery\n");
}

/* ---- hostile chains on a second guest's vif ---- */

/* The second guest and its vif, attached early (before the load of the other tests). */
static int hostile_attach(struct shim_ts *ts, struct shim_guest **g2, struct netfront **nf)
{
	struct netfront_opts o;
	struct shim_nic_spec spec;
	char err[128];
	int rc;

	rc = shim_ts_domain_create(ts, 2, NULL);
	rc = rc ?: shim_guest_create(g2, shim.rundir, 2, 4096, 4096);
	rc = rc ?: shim_nic_spec_parse("bridge=xenbr0,mac=00:16:3e:00:00:02", &spec, err, sizeof(err));
	rc = rc ?: shim_ts_nic_attach(ts, 2, &spec);
	CHECK(rc == 0, "second guest and vif: %s", strerror(-rc));
	netfront_opts_default(&o);
	rc = rc ?: netfront_open(nf, *g2, 0, &o);
	CHECK(rc == 0, "second netfront: %s", strerror(-rc));
	return rc;
}

/* Until the backend has written Closed (after our frontend closed): detaching while it is
 * still on its way there races the toolstack's state=5 with its own state=6, and the
 * toolstack may then wait out its timeout (reported to the xenbus/toolstack owners). */
static void wait_backend_closed(struct xs_handle *xs, const char *be)
{
	for (int i = 0; i < 100; i++) {
		int st = -1;

		if (xenbus_read_state(xs, XBT_NULL, be, &st) != 0 || st == XenbusStateClosed)
			return;
		usleep(20000);
	}
}

static void hostile_detach(struct shim_ts *ts, struct shim_guest *g2, struct netfront *nf)
{
	netfront_close(nf);
	if (nf)
		wait_backend_closed(shim_ts_xs(ts), "/local/domain/0/backend/vif/2/0");
	if (g2)
		shim_ts_device_detach(ts, 2, SHIM_TS_VIF, 0);
	shim_guest_destroy(g2);
	shim_ts_domain_destroy(ts, 2);
}

/* Wait up to ms for events; drop what this idle guest received (bridge floods), so
 * the next poll waits again. */
static void discard_rx(struct netfront *nf, int ms)
{
	static uint8_t buf[70000];

	netfront_poll(nf, ms);
	while (netfront_recv(nf, buf, sizeof(buf), NULL, NULL) > 0)
		;
}

static void hostile(struct netfront *nf)
{
	struct netif_tx_request r[24];
	const struct netfront_stats *st;
	uint8_t frame[128];
	int gref;
	uint64_t ok0, er0;

	if (!nf)
		return;
	st = netfront_stats(nf);
	memset(frame, 0xab, sizeof(frame));
	gref = netfront_raw_grant(nf, frame, sizeof(frame));

#define SEND_AND_WAIT(nreq)                                                                   \
	do {                                                                                  \
		ok0 = st->tx_rsp_okay;                                                        \
		er0 = st->tx_rsp_error;                                                       \
		CHECK(netfront_raw_tx(nf, 0, r, (nreq)) == 0, "raw tx");                      \
		for (int w = 0; w < 50 && st->tx_rsp_okay + st->tx_rsp_error - ok0 - er0 < (nreq); w++) \
			discard_rx(nf, 20);                                                   \
	} while (0)

	/* 19 frags (20 data slots): over XEN_NETBK_LEGACY_SLOTS_MAX, every slot an error. */
	memset(r, 0, sizeof(r));
	for (int i = 0; i < 20; i++)
		r[i] = (struct netif_tx_request){ .gref = (grant_ref_t)gref, .id = (uint16_t)(1024 + i),
						  .size = (uint16_t)(i == 0 ? 20 * 60 : 60),
						  .flags = i < 19 ? NETTXF_more_data : 0 };
	SEND_AND_WAIT(20);
	CHECK(st->tx_rsp_error - er0 == 20 && st->tx_rsp_okay == ok0,
	      "too many slots: %llu errors", (unsigned long long)(st->tx_rsp_error - er0));
	/* A frag bigger than what remains of the packet. */
	r[0] = (struct netif_tx_request){ .gref = (grant_ref_t)gref, .id = 1100, .size = 100,
					  .flags = NETTXF_more_data };
	r[1] = (struct netif_tx_request){ .gref = (grant_ref_t)gref, .id = 1101, .size = 200 };
	SEND_AND_WAIT(2);
	CHECK(st->tx_rsp_error - er0 == 2, "sizes that don't add up: 2 errors (%llu)",
	      (unsigned long long)(st->tx_rsp_error - er0));
	/* Shorter than an Ethernet header. */
	r[0] = (struct netif_tx_request){ .gref = (grant_ref_t)gref, .id = 1102, .size = 10 };
	SEND_AND_WAIT(1);
	CHECK(st->tx_rsp_error - er0 == 1, "runt frame answered with an error");
	/* A grant that doesn't exist. */
	r[0] = (struct netif_tx_request){ .gref = 4000, .id = 1103, .size = 60 };
	SEND_AND_WAIT(1);
	CHECK(st->tx_rsp_error - er0 == 1, "bad grant answered with an error");
	/* A good frame still goes through. */
	r[0] = (struct netif_tx_request){ .gref = (grant_ref_t)gref, .id = 1104, .size = 60 };
	SEND_AND_WAIT(1);
	CHECK(st->tx_rsp_okay - ok0 == 1, "a valid frame after the errors is answered OKAY");
	CHECK(netfront_backend_connected(nf), "still connected after recoverable errors");
	/* Malformed extra info: fatal, the backend disconnects this frontend only. */
	r[0] = (struct netif_tx_request){ .gref = (grant_ref_t)gref, .id = 1105, .size = 60,
					  .flags = NETTXF_extra_info };
	memset(&r[1], 0, sizeof(r[1]));
	((struct netif_extra_info *)&r[1])->type = 9;
	CHECK(netfront_raw_tx(nf, 0, r, 2) == 0, "raw tx");
	for (int w = 0; w < 100 && netfront_backend_connected(nf); w++)
		usleep(20000);
	CHECK(!netfront_backend_connected(nf), "malformed extra info disconnects the frontend");
	printf("ok   hostile chains: errors as Linux netback, fatal ones disconnect\n");
}

/*
 * A fresh toolstack connection before an operation that waits. Workaround: shim_ts's
 * waits arm their timer from its loop's cached time, which is stale by however long
 * the loop sat idle, so a detach (or attach) long after the previous one times out
 * early (seen as "backend did not reach InitWait in time" and as forced removes).
 * Reported to the toolstack's owners (ev_now_update before the timer starts).
 */
static void ts_refresh(struct shim_ts **ts, const struct shim_ts_config *cfg)
{
	struct shim_ts *fresh = NULL;

	if (*ts && shim_ts_open(&fresh, cfg) == 0) {
		shim_ts_close(*ts);
		*ts = fresh;
	}
}

static void cleanup_ns(void)
{
	if (gns[0])
		sh("ip netns del %s 2>/dev/null", gns);
}

int main(int argc, char **argv)
{
	struct shim_ts_config cfg = { 0 };
	struct shim_ts *ts = NULL;
	struct shim_guest *g = NULL;
	struct netfront *nf = NULL, *nf2 = NULL;
	struct shim_guest *g2 = NULL;
	struct netfront_opts o;
	struct shim_nic_spec spec;
	struct net_guest_pump pump = { 0 };
	static const char *const splitpvd_opts[] = { "--max-queues", "2", "--rx-stall-ms", "1000",
						     "--rx-drain-ms", "500", NULL };
	char err[128], path[128];
	int rc;

	if (geteuid() != 0) {
		printf("SKIP: needs root for network namespaces and tap devices\n");
		return 77;
	}
	/* Our own network namespace (the host side) with its own /sys, so sysfs and the
	 * hotplug script see our interfaces. */
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("sysfs", "/sys", "sysfs", 0, NULL) != 0) {
		printf("SKIP: can't create network and mount namespaces: %s\n", strerror(errno));
		return 77;
	}
	snprintf(gns, sizeof(gns), "splitpv-g%d", (int)getpid());
	if (sh("ip link set lo up && ip link add xenbr0 type bridge mcast_snooping 0 && "
	       "ip addr add " HOST_IP "/24 dev xenbr0 && ip link set xenbr0 up") != 0 ||
	    sh("ip netns add %s", gns) != 0) {
		gns[0] = 0;
		printf("SKIP: can't set up the bridge and the guest namespace (ip netns)\n");
		return 77;
	}
	snprintf(path, sizeof(path), "/var/run/netns/%s", gns);
	gns_fd = open(path, O_RDONLY);
	rc = shim_harness_start(&shim, argv[0]);
	if (rc) {
		cleanup_ns();
		printf("SKIP: can't start splitpv-shim: %s\n", strerror(-rc));
		return rc == -ENOENT ? 77 : 1;
	}
	splitpvd = shim_harness_splitpvd(splitpvd_opts, NULL);
	cfg.rundir = shim.rundir;
	cfg.script_dir = "tools/hotplug";
	rc = shim_ts_open(&ts, &cfg);
	rc = rc ?: shim_ts_domain_create(ts, 1, NULL);
	rc = rc ?: shim_guest_create(&g, shim.rundir, 1, 8192, 8192);
	rc = rc ?: shim_nic_spec_parse("bridge=xenbr0,mac=" GUEST_MAC, &spec, err, sizeof(err));
	rc = rc ?: shim_ts_nic_attach(ts, 1, &spec);
	CHECK(rc == 0, "setup and vif attach: %s", strerror(-rc));
	netfront_opts_default(&o);
	o.queues = 2;
	o.mcast_ctrl = true;
	rc = rc ?: netfront_open(&nf, g, 0, &o);
	CHECK(rc == 0, "netfront_open: %s", strerror(-rc));
	if (rc)
		goto out;
	CHECK(access("/sys/class/net/vif1.0/brport", F_OK) == 0, "vif1.0 enslaved to xenbr0");
	sh("ip neigh replace " GUEST_IP " lladdr " GUEST_MAC " dev xenbr0");
	hostile_attach(ts, &g2, &nf2);

	test_hash(nf);
	test_mcast(nf, shim_ts_xs(ts));
	test_stall(nf, shim_ts_xs(ts));

	/* The guest's NIC as a tap in its namespace, with the kernel's TCP/IP on top. */
	sh("ip neigh del " GUEST_IP " dev xenbr0 2>/dev/null");
	pump.nf = nf;
	pump.tapfd = net_guest_tap_open(gns_fd);
	CHECK(pump.tapfd >= 0, "guest tap");
	if (pump.tapfd < 0)
		goto out;
	sh("ip netns exec %s sh -c 'ip link set lo up && ip link set eth0 address " GUEST_MAC
	   " && ip addr add " GUEST_IP "/24 dev eth0 && ip link set eth0 up'",
	   gns);
	pthread_create(&pump.th, NULL, net_guest_pump_main, &pump);
	rc = ping(gns_fd, HOST_IP, 3);
	CHECK(rc == 3, "guest pings the host: %d/3 replies", rc);
	rc = ping(-1, GUEST_IP, 3);
	CHECK(rc == 3, "host pings the guest: %d/3 replies", rc);
	if (!failures)
		printf("ok   ping both ways\n");
	test_tcp();
	test_rate(shim_ts_xs(ts));
	hostile(nf2);
	ts_refresh(&ts, &cfg);
	hostile_detach(ts, g2, nf2);
	g2 = NULL;
	nf2 = NULL;
	rc = ping(gns_fd, HOST_IP, 2);
	CHECK(rc == 2, "the first guest still works after the hostile one was disconnected (%d)",
	      rc);
	pump.stop = true;
	pthread_join(pump.th, NULL);
	CHECK(pump.rc == 0, "pump: %d", pump.rc);
	CHECK(netfront_stats(nf)->rx_slot_mismatch == 0, "every RX response in its request's slot");
	close(pump.tapfd);
out:
	ts_refresh(&ts, &cfg);
	if (ts && (g2 || nf2))
		hostile_detach(ts, g2, nf2);
	netfront_close(nf);
	if (ts && nf)
		wait_backend_closed(shim_ts_xs(ts), "/local/domain/0/backend/vif/1/0");
	if (ts)
		shim_ts_device_detach(ts, 1, SHIM_TS_VIF, 0);
	shim_guest_destroy(g);
	shim_ts_close(ts);
	if (splitpvd > 0) {
		kill(splitpvd, SIGTERM);
		waitpid(splitpvd, NULL, 0);
	}
	shim_harness_stop(&shim);
	cleanup_ns();
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
