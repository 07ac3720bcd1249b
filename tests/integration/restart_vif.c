/*
 * restart_vif — crash-proof restart of a NIC on the shim (the vif half of restart_blk),
 * in private network namespaces: the guest's NIC is a tap in a guest namespace pumped
 * by the userspace netfront (2 queues, ctrl ring), the host side is the vif tap on a
 * bridge. While two verified TCP streams (guest -> host and host -> guest, a known byte
 * pattern) and a sequenced UDP heartbeat each way run, the guest's splitpv-netback
 * worker is SIGKILLed 20 times; splitpvd restarts it with the device's crash journal. A
 * TX rate limit (16 MB/s, below what the stream offers) keeps TX slots taken and
 * waiting for credit much of the time, so kills land with TX work in flight.
 * Asserts: the backend state node is never written (no reconnect), every byte of both
 * streams arrives and matches, no error response reaches the frontend, every RX
 * response lands in its request's slot, no TX id is lost (a full ring's worth of
 * sends succeeds on each queue at the end), the tap keeps its ifindex and bridge port,
 * traffic flows again within 1 s of each kill both ways (mean/max printed); the same
 * through 2 upgrades (SIGHUP: splitpvd kills its workers and re-executes); the hash
 * mapping set through the ctrl ring before the kills still steers flows after them,
 * a clean detach removes the (persistent) tap, and so does splitpvd for a guest
 * destroyed while no worker ran.
 *
 * First, without root: the journal glue itself (net_journal_taken, net_ring_push,
 * net_journal_resume) between a frontend (this process) and backends that are SIGKILLed
 * every 0.05-1 ms at whatever instruction they are at (600 of them, or 8 s' worth):
 * every numbered request must be answered once and in order, and the journal's
 * rsp_prod never behind the ring's. (Seeded faults caught: journaling rsp_prod after publishing it, marking
 * responded after it, not journaling taken requests.)
 *
 *   restart_vif [kills]     (root, /dev/net/tun, ip; default 20 kills)
 */
#include "backends/net/netback.h"
#include "backends/net/parse.h"
#include "frontend-shim/guest.h"
#include "frontend-shim/netfront.h"
#include "frontend-shim/toolstack.h"
#include "tests/integration/lifecycle_util.h"
#include "tests/integration/net_guest.h"
#include "tests/integration/shim_harness.h"
#include "xenbus/supervisor.h"
#include "xenbus/xs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <xen/io/xenbus.h>
#include <xenstore.h>

#define DOMID 6
#define VIF "vif6.0"
#define BE "/local/domain/0/backend/vif/6/0"
#define HOST_IP "10.98.0.1"
#define GUEST_IP "10.98.0.2"
#define GUEST_MAC "00:16:3e:00:06:00"
#define PORT_UP 5101    /* guest -> host stream */
#define PORT_DOWN 5102  /* host -> guest stream */
#define PORT_HB_H 5103  /* heartbeat to the host */
#define PORT_HB_G 5104  /* heartbeat to the guest */
#define NF_RING 256u    /* netfront's TX ring and id count per queue */
#define ETH_TEST 0x88b5
#define UPGRADES 2      /* splitpvd re-executions (SIGHUP) after the kills */

static struct shim_harness shim;
static char gns[64];
static int gns_fd = -1;
static volatile bool stop_streams, stop_hb;

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

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- TCP streams with a verified byte pattern ---- */

static uint8_t pattern(uint64_t i, uint32_t seed)
{
	uint64_t x = (i / 8) * 0x9E3779B97F4A7C15ull + seed;

	x ^= x >> 29;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 32;
	return (uint8_t)(x >> ((i % 8) * 8));
}

struct stream {
	uint32_t seed;
	bool guest_sends;        /* direction: guest -> host */
	uint16_t port;
	int lsock;               /* host listener */
	/* results */
	uint64_t sent, received; /* written by one thread each, read after the joins */
	volatile uint64_t progress; /* bytes received so far (for the main thread) */
	int send_rc, recv_rc;    /* 0, or what went wrong */
	pthread_t send_th, recv_th;
};

static void timeouts(int s)
{
	struct timeval tv = { 30, 0 };

	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* The guest end: connect from the guest namespace. */
static int guest_connect(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int s;

	if (setns(gns_fd, CLONE_NEWNET) != 0)
		return -1;
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		return -1;
	timeouts(s);
	inet_pton(AF_INET, HOST_IP, &a.sin_addr);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(s);
		return -1;
	}
	return s;
}

static int host_accept(struct stream *st)
{
	int s = accept(st->lsock, NULL, NULL);

	if (s >= 0)
		timeouts(s);
	return s;
}

/* Send the pattern until told to stop (at most ~32 MB/s: the worker needs CPU to come
 * back quickly on this shared 2-core machine), then close the sending side. */
static void stream_send(struct stream *st, int s)
{
	static __thread uint8_t buf[65536];

	while (!stop_streams) {
		ssize_t w;

		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = pattern(st->sent + i, st->seed);
		w = send(s, buf, sizeof(buf), MSG_NOSIGNAL);
		if (w <= 0) {
			st->send_rc = w < 0 ? -errno : -EPIPE;
			break;
		}
		st->sent += (uint64_t)w;
		if ((size_t)w < sizeof(buf)) {
			/* The rest of this chunk goes with the next one: keep the offsets right. */
			continue;
		}
		usleep(2000);
	}
	shutdown(s, SHUT_WR);
}

/* Receive to EOF, checking every byte. */
static void stream_recv(struct stream *st, int s)
{
	static __thread uint8_t buf[65536];

	for (;;) {
		ssize_t r = recv(s, buf, sizeof(buf), 0);

		if (r == 0)
			break;
		if (r < 0) {
			st->recv_rc = -errno;
			break;
		}
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] != pattern(st->received + (uint64_t)i, st->seed)) {
				st->recv_rc = -EILSEQ;
				fprintf(stderr, "stream %u: byte %llu differs\n", st->port,
					(unsigned long long)(st->received + (uint64_t)i));
				return;
			}
		}
		st->received += (uint64_t)r;
		st->progress = st->received;
	}
}

static void *guest_side(void *arg)
{
	struct stream *st = arg;
	int s = guest_connect(st->port);

	if (s < 0) {
		if (st->guest_sends)
			st->send_rc = -ECONNREFUSED;
		else
			st->recv_rc = -ECONNREFUSED;
		return NULL;
	}
	if (st->guest_sends)
		stream_send(st, s);
	else
		stream_recv(st, s);
	close(s);
	return NULL;
}

static void *host_side(void *arg)
{
	struct stream *st = arg;
	int s = host_accept(st);

	if (s < 0) {
		if (st->guest_sends)
			st->recv_rc = -errno;
		else
			st->send_rc = -errno;
		return NULL;
	}
	if (st->guest_sends)
		stream_recv(st, s);
	else
		stream_send(st, s);
	close(s);
	return NULL;
}

static int host_listen(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	inet_pton(AF_INET, HOST_IP, &a.sin_addr);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s, 4) != 0) {
		close(s);
		return -1;
	}
	return s;
}

/* ---- heartbeats: sequenced UDP every 2 ms each way; measure re-attach ---- */

struct beat {
	uint64_t seq;
	int64_t sent_ns;
};

struct hb {
	bool guest;              /* runs in the guest namespace */
	const char *local_ip, *remote_ip;
	uint16_t local_port, remote_port;
	int rc;
	uint64_t sent, received;
	pthread_t th;
};

/* After a kill: arrival of the first heartbeat sent after it, per direction (0: none). */
static int64_t marker_ns;
static int64_t first_after[2];

static void *hb_main(void *arg)
{
	struct hb *h = arg;
	struct sockaddr_in me = { .sin_family = AF_INET, .sin_port = htons(h->local_port) };
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(h->remote_port) };
	int64_t next = now_ns();
	int s;

	h->rc = -1;
	if (h->guest && setns(gns_fd, CLONE_NEWNET) != 0)
		return NULL;
	s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	inet_pton(AF_INET, h->local_ip, &me.sin_addr);
	inet_pton(AF_INET, h->remote_ip, &to.sin_addr);
	if (s < 0 || bind(s, (struct sockaddr *)&me, sizeof(me)) != 0)
		return NULL;
	h->rc = 0;
	while (!stop_hb) {
		struct pollfd p = { .fd = s, .events = POLLIN };
		struct beat b;
		int64_t t = now_ns();

		if (t >= next) {
			b.seq = h->sent;
			b.sent_ns = t;
			/* Lost while no worker runs (host -> guest) is normal packet loss. */
			if (sendto(s, &b, sizeof(b), 0, (struct sockaddr *)&to, sizeof(to)) == sizeof(b))
				h->sent++;
			next = t + 2000000;
		}
		poll(&p, 1, 1);
		while (recv(s, &b, sizeof(b), 0) == sizeof(b)) {
			int64_t m = __atomic_load_n(&marker_ns, __ATOMIC_ACQUIRE);
			/* Direction of what we receive: the guest receives host -> guest (1). */
			int dir = h->guest ? 1 : 0;

			h->received++;
			if (m && b.sent_ns > m && __atomic_load_n(&first_after[dir], __ATOMIC_ACQUIRE) == 0)
				__atomic_store_n(&first_after[dir], now_ns(), __ATOMIC_RELEASE);
		}
	}
	close(s);
	return NULL;
}

/* ---- hash steering through the ctrl ring (no pump running: we own the netfront) ---- */

static const uint8_t hkey[40] = {
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
	0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
	0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

static void hash_expected(struct net_hash *h)
{
	memset(h, 0, sizeof(*h));
	h->alg = XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ;
	h->flags = XEN_NETIF_CTRL_HASH_TYPE_IPV4 | XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP;
	memcpy(h->key, hkey, sizeof(hkey));
	h->mapping_size = 64;
	for (unsigned int i = 0; i < 64; i++)
		h->mapping[i] = (i * 7 / 3 + i / 5) % 2; /* not the modulo default */
}

static int hash_set(struct netfront *nf)
{
	struct net_hash h;
	uint32_t st = 99;
	int gref, bad = 0;

	hash_expected(&h);
	bad |= netfront_ctrl(nf, XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM, h.alg, 0, 0, &st, NULL) ||
	       st;
	bad |= netfront_ctrl(nf, XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, h.flags, 0, 0, &st, NULL) ||
	       st;
	gref = netfront_ctrl_buf(nf, hkey, sizeof(hkey));
	bad |= gref < 0 ||
	       netfront_ctrl(nf, XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, (uint32_t)gref, 40, 0, &st, NULL) ||
	       st;
	bad |= netfront_ctrl(nf, XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, 64, 0, 0, &st, NULL) ||
	       st;
	gref = netfront_ctrl_buf(nf, h.mapping, 64 * sizeof(uint32_t));
	bad |= gref < 0 || netfront_ctrl(nf, XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, (uint32_t)gref,
					 64, 0, &st, NULL) ||
	       st;
	return bad ? -EIO : 0;
}

/* 32 TCP flows from the host (SYNs to the guest from distinct source ports): each must
 * arrive on the queue the mapping names, and both queues must be used. */
static void hash_check(struct netfront *nf, uint16_t port_base, const char *when)
{
	static uint8_t buf[70000];
	struct net_hash h;
	unsigned int per_q[2] = { 0, 0 }, mis = 0, n = 0, q;
	int socks[32];
	int64_t end;

	hash_expected(&h);
	sh("ip neigh replace " GUEST_IP " lladdr " GUEST_MAC " dev xenbr0");
	for (int i = 0; i < 32; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons((uint16_t)(port_base + i)) };

		socks[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		inet_pton(AF_INET, GUEST_IP, &a.sin_addr);
		connect(socks[i], (struct sockaddr *)&a, sizeof(a));
	}
	end = now_ns() + 700000000;
	while (now_ns() < end) {
		int len;

		netfront_poll(nf, 10);
		while ((len = netfront_recv(nf, buf, sizeof(buf), NULL, &q)) > 0) {
			struct net_l4 l4;
			uint32_t hash;
			uint8_t ht;

			if (net_l4_find(buf, (size_t)len, &l4) != 0 || l4.proto != IPPROTO_TCP ||
			    !net_hash_frame(&h, buf, (size_t)len, &hash, &ht))
				continue;
			if (net_hash_queue(&h, hash, 2) != q)
				mis++;
			per_q[q < 2 ? q : 1]++;
			n++;
		}
	}
	for (int i = 0; i < 32; i++)
		close(socks[i]);
	sh("ip neigh del " GUEST_IP " dev xenbr0 2>/dev/null");
	CHECK(n >= 32, "%s: SYNs received: %u", when, n);
	CHECK(mis == 0, "%s: %u frames on a queue other than the mapping's", when, mis);
	CHECK(per_q[0] > 0 && per_q[1] > 0, "%s: flows on both queues (%u / %u)", when, per_q[0],
	      per_q[1]);
	printf("hash steering %s: %u frames, %u on q0, %u on q1, %u misrouted\n", when, n,
	       per_q[0], per_q[1], mis);
}

/* After the traffic: every TX id came back. With everything answered, a full ring of
 * one-slot frames per queue goes in without taking a single response. */
static void tx_ids_check(struct netfront *nf)
{
	uint8_t f[60];
	uint16_t et = htons(ETH_TEST);
	unsigned int queued[2] = { 0, 0 };

	for (int i = 0; i < 100; i++) {
		int rc = netfront_poll(nf, 10);

		CHECK(rc >= 0, "tx ids: netfront_poll: %s", strerror(-rc));
		if (rc < 0)
			break;
	}
	memset(f, 0, sizeof(f));
	memcpy(f, "\x02\x00\x00\x00\x0f\x0f", 6); /* nobody's address */
	memcpy(f + 6, "\x00\x16\x3e\x00\x06\x00", 6);
	memcpy(f + 12, &et, 2);
	for (unsigned int q = 0; q < netfront_queues(nf) && q < 2; q++)
		while (queued[q] < NF_RING && netfront_send(nf, q, f, sizeof(f), NULL) == 0)
			queued[q]++;
	CHECK(queued[0] == NF_RING && queued[1] == NF_RING,
	      "a full ring of TX ids free at the end: %u / %u of %u", queued[0], queued[1],
	      NF_RING);
	for (int i = 0; i < 50; i++)
		netfront_poll(nf, 10);
	printf("tx ids: %u + %u sends with no response taken (all %u free on each queue)\n",
	       queued[0], queued[1], NF_RING);
}

/* ---- the journal glue under kills at random instructions (no root needed) ---- */

#define CRASH_KILLS 600u      /* backends killed (or as many as fit in 8 s) */

/* A backend that follows tx.c's discipline with the real journal glue: take over from
 * the journal, then forever: answer a random prefix of what it holds (in order), push,
 * take more (journaled). Killed at a random moment by the parent. */
static void crash_backend(struct net_dev *dev, void *ring, uint64_t seed)
{
	struct netif_tx_request reqs[NF_RING];
	struct ring_back rb;
	unsigned int have;
	int n;

	if (ring_back_attach(&rb, ring, NET_PAGE_SIZE, sizeof(union netif_tx_sring_entry), 0))
		_exit(2);
	n = net_journal_resume(dev, 0, &rb, reqs, sizeof(reqs[0]));
	if (n < 0)
		_exit(3);
	have = (unsigned int)n;
	for (;;) {
		/* A few answers per push whenever it holds any, most pushes publishing
		 * something: kills land inside the publishing steps often. */
		unsigned int k = have ? 1 + (unsigned int)(lc_xorshift(&seed) % (have < 4 ? have : 4))
				      : 0;

		for (unsigned int i = 0; i < k; i++) {
			struct netif_tx_response rsp = { .id = reqs[i].id, .status = NETIF_RSP_OKAY };

			ring_back_put(&rb, &rsp, sizeof(rsp));
		}
		memmove(reqs, reqs + k, (have - k) * sizeof(reqs[0]));
		have -= k;
		net_ring_push(dev, 0, &rb);
		n = ring_back_take(&rb, reqs + have, sizeof(reqs[0]), NF_RING - have);
		if (n < 0)
			_exit(4);
		net_journal_taken(dev, 0, &rb, reqs + have, sizeof(reqs[0]), (unsigned int)n);
		have += (unsigned int)n;
	}
}

/*
 * The parent is the frontend (it is never killed): it keeps the ring full of numbered
 * requests and checks that responses come back exactly once each, in order, while
 * backends are SIGKILLed every 0.05-1 ms and the next one takes over from the journal.
 * After each kill the journal's rsp_prod must not be behind the ring's.
 */
static void crash_points(void)
{
	struct net_config cfg;
	struct net_dev *dev = calloc(1, sizeof(*dev));
	void *ring = mmap(NULL, NET_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			  -1, 0);
	uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid(), bad = 0;
	uint32_t posted = 0, answered = 0;
	unsigned int kills = 0, behind = 0;
	struct ring_front rf;
	int64_t end = now_ns() + 20000000000, stop_killing = now_ns() + 8000000000, next_kill;
	int jfd = memfd_create("restart_vif-journal", MFD_CLOEXEC), st;
	pid_t child;

	CHECK(dev && ring != MAP_FAILED && jfd >= 0, "crash test setup");
	if (!dev || ring == MAP_FAILED || jfd < 0)
		return;
	net_config_default(&cfg);
	net_dev_init(dev, &cfg);
	xenbus_journal_init(&dev->journal, jfd);
	CHECK(xenbus_journal_format(&dev->journal, 1, NET_JOURNAL_ENTS) == 0, "journal format");
	xenbus_journal_set_active(&dev->journal, true);
	dev->journal_on = true;
	CHECK(ring_front_init(&rf, ring, NET_PAGE_SIZE, sizeof(union netif_tx_sring_entry)) == 0,
	      "ring");
	child = fork();
	if (child == 0)
		crash_backend(dev, ring, lc_xorshift(&seed));
	next_kill = now_ns() + 50000 + (int64_t)(lc_xorshift(&seed) % 950000);
	while (now_ns() < end) {
		bool killing = kills < CRASH_KILLS && now_ns() < stop_killing;
		struct netif_tx_response rsp[64];
		int n;

		/* Then the last backend, left alone, answers everything posted. */
		if (!killing && answered == posted)
			break;
		while (killing && ring_front_free(&rf) > 0) {
			struct netif_tx_request r = { .gref = posted, .id = (uint16_t)posted };

			ring_front_put(&rf, &r, sizeof(r));
			posted++;
		}
		ring_front_push(&rf);
		n = ring_front_take(&rf, rsp, sizeof(rsp[0]), 64);
		if (n < 0) {
			CHECK(0, "crash test: the frontend saw an impossible rsp_prod");
			break;
		}
		for (int i = 0; i < n; i++, answered++)
			if (rsp[i].id != (uint16_t)answered || rsp[i].status != NETIF_RSP_OKAY)
				bad++;
		if (waitpid(child, &st, WNOHANG) == child) {
			CHECK(0, "crash test: a backend exited by itself (status %#x)", st);
			child = -1;
			break;
		}
		if (killing && now_ns() >= next_kill) {
			const struct xenbus_journal_queue *jq = xenbus_journal_queue(&dev->journal, 0);
			uint32_t ring_rsp;

			kill(child, SIGKILL);
			waitpid(child, &st, 0);
			kills++;
			/* What the dead backend left: the journal never behind the ring. */
			ring_rsp = __atomic_load_n(&((struct ring_sring_hdr *)ring)->rsp_prod,
						   __ATOMIC_ACQUIRE);
			if ((int32_t)(jq->rsp_prod - ring_rsp) < 0 ||
			    jq->req_cons - jq->rsp_prod > NF_RING)
				behind++;
			child = fork();
			if (child == 0)
				crash_backend(dev, ring, lc_xorshift(&seed));
			next_kill = now_ns() + 50000 + (int64_t)(lc_xorshift(&seed) % 950000);
		}
	}
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	CHECK(answered == posted, "crash test: %u of %u requests answered", answered, posted);
	CHECK(bad == 0, "crash test: %llu responses out of order, doubled or wrong",
	      (unsigned long long)bad);
	CHECK(behind == 0, "crash test: %u kills left the journal behind the ring", behind);
	CHECK(kills >= 100, "crash test: only %u kills", kills);
	printf("journal under kills: %u backends SIGKILLed at random instructions, %u requests "
	       "each answered once and in order\n", kills, answered);
	xenbus_journal_unmap(&dev->journal);
	close(jfd);
	munmap(ring, NET_PAGE_SIZE);
	free(dev);
}

/* ---- the worker and the backend state ---- */

static pid_t the_worker(pid_t splitpvd)
{
	pid_t pids[4];

	return lc_children(splitpvd, "splitpv-netback", pids, 4) == 1 ? pids[0] : -1;
}

/* Writes to the backend's state node since the watch was set (its first event, fired at
 * registration, excluded). Any write is a reconnect the frontend would see. */
static int state_writes(struct xs_handle *xs, bool *first_seen)
{
	unsigned int n;
	char **ev;
	int writes = 0;

	while ((ev = xs_check_watch(xs)) != NULL) {
		if (!*first_seen) {
			*first_seen = true;
		} else {
			char *v = xs_read(xs, XBT_NULL, BE "/state", &n);

			fprintf(stderr, "backend state written (now %s)\n", v ? v : "gone");
			free(v);
			writes++;
		}
		free(ev);
	}
	return writes;
}

static bool brport(void)
{
	return access("/sys/class/net/" VIF "/brport", F_OK) == 0;
}

/* A guest destroyed while no worker runs (splitpvd stopped, the worker killed): the tap
 * the dead worker left persistent must not stay behind; splitpvd takes it down when it
 * drops the device. */
static void left_behind(struct shim_guest **g, const struct shim_ts_config *cfg0,
			struct shim_nic_spec *spec, pid_t splitpvd)
{
	struct shim_ts_config cfg = *cfg0;
	struct shim_ts *ts = NULL;
	struct netfront *nf = NULL;
	struct netfront_opts o;
	int64_t t0;
	pid_t w;
	int rc;

	cfg.destroy_timeout_ms = 300; /* nobody answers while splitpvd is stopped */
	rc = shim_ts_open(&ts, &cfg);
	rc = rc ?: shim_ts_nic_attach(ts, DOMID, spec);
	CHECK(rc == 0, "left behind: attach: %s", strerror(-rc));
	netfront_opts_default(&o);
	o.timeout_ms = 300;
	if (rc == 0)
		rc = netfront_open(&nf, *g, 0, &o);
	CHECK(rc == 0, "left behind: netfront_open: %s", strerror(-rc));
	w = the_worker(splitpvd);
	if (rc || w <= 0 || if_nametoindex(VIF) == 0) {
		CHECK(0, "left behind: no worker (%d) or no tap", (int)w);
		netfront_close(nf);
		shim_ts_close(ts);
		return;
	}
	kill(splitpvd, SIGSTOP);
	kill(w, SIGKILL);
	usleep(50000); /* dead (a zombie until splitpvd reaps it) */
	netfront_close(nf); /* waits at most 300 ms for a backend that isn't there */
	shim_guest_destroy(*g);
	*g = NULL;
	shim_ts_domain_destroy(ts, DOMID);
	CHECK(if_nametoindex(VIF) != 0, "left behind: the dead worker's tap persists");
	t0 = now_ns();
	kill(splitpvd, SIGCONT);
	/* Deleting a netdev takes the global RTNL lock: allow for other jobs' churn. */
	while (if_nametoindex(VIF) && now_ns() - t0 < 3000000000)
		usleep(5000);
	CHECK(if_nametoindex(VIF) == 0, "left behind: %s still there 3 s after splitpvd went on",
	      VIF);
	if (if_nametoindex(VIF) == 0)
		printf("guest destroyed while no worker ran: its tap removed %.1f ms after "
		       "splitpvd resumed\n", (double)(now_ns() - t0) / 1e6);
	shim_ts_close(ts);
}

static void cleanup_ns(void)
{
	if (gns[0])
		sh("ip netns del %s 2>/dev/null", gns);
}

int main(int argc, char **argv)
{
	int kills = argc > 1 ? atoi(argv[1]) : 20;
	static const char *const wopts[] = { "--max-queues", "2", NULL };
	struct shim_ts_config cfg = { 0 };
	struct shim_ts *ts = NULL;
	struct shim_guest *g = NULL;
	struct netfront *nf = NULL;
	struct netfront_opts o;
	struct shim_nic_spec spec;
	struct net_guest_pump pump = { 0 };
	struct stream up = { .seed = 11, .guest_sends = true, .port = PORT_UP, .lsock = -1 };
	struct stream down = { .seed = 22, .guest_sends = false, .port = PORT_DOWN, .lsock = -1 };
	struct hb hb_g = { .guest = true, .local_ip = GUEST_IP, .remote_ip = HOST_IP,
			   .local_port = PORT_HB_G, .remote_port = PORT_HB_H };
	struct hb hb_h = { .guest = false, .local_ip = HOST_IP, .remote_ip = GUEST_IP,
			   .local_port = PORT_HB_H, .remote_port = PORT_HB_G };
	struct xs_handle *wxs = NULL;
	double reattach[64], sum = 0, worst = 0, worst_up = 0;
	int nre = 0, nup = 0, writes = 0, done = 0, rc;
	bool first_seen = false, streams = false, hbs = false, pumping = false, loaded = false;
	unsigned int ifindex0, ifindex_bad = 0, brport_lost = 0;
	char err[128], path[128];
	pid_t splitpvd = -1, last = -1;
	uint64_t seed = 0x1234567887654321ull ^ (uint64_t)time(NULL);

	if (kills < 1 || kills > 64)
		kills = 20;
	/* The journal glue alone first: it needs neither root nor namespaces. */
	crash_points();
	if (geteuid() != 0) {
		printf("SKIP: needs root for network namespaces and tap devices\n");
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
	snprintf(gns, sizeof(gns), "splitpv-rv%d", (int)getpid());
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
	splitpvd = lc_start_splitpvd(wopts);
	CHECK(splitpvd > 0, "start splitpvd: %s", strerror(-splitpvd));
	if (splitpvd <= 0)
		goto out;
	cfg.rundir = shim.rundir;
	cfg.script_dir = "tools/hotplug";
	rc = shim_ts_open(&ts, &cfg);
	rc = rc ?: shim_ts_domain_create(ts, DOMID, NULL);
	rc = rc ?: shim_guest_create(&g, shim.rundir, DOMID, 8192, 8192);
	rc = rc ?: shim_nic_spec_parse("bridge=xenbr0,mac=" GUEST_MAC, &spec, err, sizeof(err));
	rc = rc ?: shim_ts_nic_attach(ts, DOMID, &spec);
	CHECK(rc == 0, "setup and vif attach: %s", strerror(-rc));
	if (rc)
		goto out;
	netfront_opts_default(&o);
	o.queues = 2;
	rc = netfront_open(&nf, g, 0, &o);
	CHECK(rc == 0, "netfront_open: %s", strerror(-rc));
	if (rc)
		goto out;
	CHECK(netfront_queues(nf) == 2 && netfront_has_ctrl(nf), "2 queues and a ctrl ring (%u, %d)",
	      netfront_queues(nf), netfront_has_ctrl(nf));
	/* A rate limit below what the guest -> host stream offers: TX slots wait for credit,
	 * taken and unanswered, much of the time, so kills land with TX work in flight. */
	rc = xenbus_write(shim_ts_xs(ts), XBT_NULL, BE, "rate", "800000,50000");
	CHECK(rc == 0, "rate: %s", strerror(-rc));
	ifindex0 = if_nametoindex(VIF);
	CHECK(ifindex0 > 0 && brport(), VIF " exists and is a port of xenbr0");

	/* The frontend's hash configuration, set once, before any kill. */
	CHECK(hash_set(nf) == 0, "hash configuration through the ctrl ring");
	hash_check(nf, 6000, "before the kills");

	/* The guest's kernel on its NIC; the host's on the bridge. */
	pump.nf = nf;
	pump.tapfd = net_guest_tap_open(gns_fd);
	CHECK(pump.tapfd >= 0, "guest tap");
	if (pump.tapfd < 0)
		goto out;
	sh("ip netns exec %s sh -c 'ip link set lo up && ip link set eth0 address " GUEST_MAC
	   " && ip addr add " GUEST_IP "/24 dev eth0 && ip link set eth0 up'",
	   gns);
	pthread_create(&pump.th, NULL, net_guest_pump_main, &pump);
	pumping = true;

	wxs = xenbus_xs_open();
	CHECK(wxs && xs_watch(wxs, BE "/state", "state"), "watch the backend state");

	up.lsock = host_listen(PORT_UP);
	down.lsock = host_listen(PORT_DOWN);
	CHECK(up.lsock >= 0 && down.lsock >= 0, "listen on " HOST_IP);
	if (up.lsock < 0 || down.lsock < 0)
		goto out;
	pthread_create(&up.recv_th, NULL, host_side, &up);
	pthread_create(&up.send_th, NULL, guest_side, &up);
	pthread_create(&down.send_th, NULL, host_side, &down);
	pthread_create(&down.recv_th, NULL, guest_side, &down);
	streams = true;
	pthread_create(&hb_g.th, NULL, hb_main, &hb_g);
	pthread_create(&hb_h.th, NULL, hb_main, &hb_h);
	hbs = true;

	/* Both streams under way before the first kill. */
	for (int i = 0; i < 1000 && (up.progress < (1u << 20) || down.progress < (1u << 20)); i++)
		usleep(10000);
	CHECK(up.progress >= (1u << 20) && down.progress >= (1u << 20),
	      "streams flowing before the kills (%llu / %llu bytes)",
	      (unsigned long long)up.progress, (unsigned long long)down.progress);
	writes += state_writes(wxs, &first_seen);

	loaded = !shim_harness_quiet();
	while (done < kills + UPGRADES && !lc_failures) {
		bool upgrade = done >= kills; /* splitpvd kills its workers and re-executes */
		pid_t w = the_worker(splitpvd);
		int64_t t_kill, a0 = 0, a1 = 0, deadline;
		uint64_t up0 = up.progress, down0 = down.progress;

		if (w <= 0 || w == last) {
			usleep(2000); /* the new worker is not up yet */
			continue;
		}
		__atomic_store_n(&first_after[0], 0, __ATOMIC_RELEASE);
		__atomic_store_n(&first_after[1], 0, __ATOMIC_RELEASE);
		t_kill = now_ns();
		__atomic_store_n(&marker_ns, t_kill, __ATOMIC_RELEASE);
		if (upgrade)
			CHECK(kill(splitpvd, SIGHUP) == 0, "SIGHUP to splitpvd");
		else
			CHECK(kill(w, SIGKILL) == 0, "kill %d", (int)w);
		last = w;
		done++;
		/* Heartbeats sent after the kill arriving at both ends: traffic flows again. */
		/* An overloaded machine drops heartbeats behind the streams (congestion, not
		 * the worker): give them longer there. */
		loaded = loaded || !shim_harness_quiet();
		deadline = t_kill + (loaded ? 10000000000 : 3000000000);
		while (now_ns() < deadline &&
		       (!(a0 = __atomic_load_n(&first_after[0], __ATOMIC_ACQUIRE)) ||
			!(a1 = __atomic_load_n(&first_after[1], __ATOMIC_ACQUIRE))))
			usleep(1000);
		CHECK(a0 && a1, "kill %d: no heartbeat %s within %d s", done,
		      !a0 ? "guest -> host" : "host -> guest", loaded ? 10 : 3);
		if (a0 && a1 && upgrade) {
			double t = (double)((a0 > a1 ? a0 : a1) - t_kill) / 1e9;

			nup++;
			if (t > worst_up)
				worst_up = t;
		} else if (a0 && a1) {
			double t = (double)((a0 > a1 ? a0 : a1) - t_kill) / 1e9;

			reattach[nre++] = t;
			sum += t;
			if (t > worst)
				worst = t;
		}
		if (if_nametoindex(VIF) != ifindex0)
			ifindex_bad++;
		if (!brport())
			brport_lost++;
		writes += state_writes(wxs, &first_seen);
		/* Let the streams run between kills (and make progress: TCP recovered; its
		 * retransmission timer may have backed off while no worker ran). */
		usleep((useconds_t)(150000 + lc_xorshift(&seed) % 200000));
		for (int i = 0; i < 1000 && (up.progress == up0 || down.progress == down0); i++)
			usleep(10000);
		CHECK(up.progress > up0 && down.progress > down0,
		      "kill %d: both streams progress afterwards", done);
	}
	loaded = loaded || !shim_harness_quiet();
	CHECK(done == kills + UPGRADES, "only %d of %d kills and upgrades done", done,
	      kills + UPGRADES);
	usleep(500000);
	stop_streams = true;
	pthread_join(up.send_th, NULL);
	pthread_join(down.send_th, NULL);
	pthread_join(up.recv_th, NULL);
	pthread_join(down.recv_th, NULL);
	streams = false;
	stop_hb = true;
	pthread_join(hb_g.th, NULL);
	pthread_join(hb_h.th, NULL);
	hbs = false;
	writes += state_writes(wxs, &first_seen);

	printf("re-attach times (ms):");
	for (int i = 0; i < nre; i++)
		printf(" %.1f", reattach[i] * 1000);
	printf("\n");
	CHECK(nre == kills, "%d of %d re-attaches timed", nre, kills);
	/* Under 1 s is the goal (issue 6); on an overloaded machine (load average at or
	 * above the CPU count: other jobs, a QEMU) heartbeats queue and drop behind the two
	 * streams, so the time to the first one through says little: the bound is 10 s
	 * there, and the log says so. */
	{
		double bound = loaded ? 10.0 : 1.0;

		if (loaded)
			printf("re-attach bound 10 s, not 1 s: the machine is overloaded (load "
			       "average %.1f on %ld CPUs)\n", shim_harness_load(),
			       sysconf(_SC_NPROCESSORS_ONLN));
		CHECK(worst < bound, "slowest re-attach %.3f s (bound %.0f s)", worst, bound);
		CHECK(nup == UPGRADES && worst_up < bound, "upgrades: %d timed, slowest %.3f s",
		      nup, worst_up);
	}
	CHECK(writes == 0, "the backend state node was written %d time(s)", writes);
	CHECK(lc_failures || (up.send_rc == 0 && up.recv_rc == 0),
	      "guest -> host stream: send %d, receive %d", up.send_rc, up.recv_rc);
	CHECK(lc_failures || (down.send_rc == 0 && down.recv_rc == 0),
	      "host -> guest stream: send %d, receive %d", down.send_rc, down.recv_rc);
	CHECK(up.received == up.sent, "guest -> host: %llu of %llu bytes arrived",
	      (unsigned long long)up.received, (unsigned long long)up.sent);
	CHECK(down.received == down.sent, "host -> guest: %llu of %llu bytes arrived",
	      (unsigned long long)down.received, (unsigned long long)down.sent);
	CHECK(ifindex_bad == 0 && if_nametoindex(VIF) == ifindex0, VIF " kept ifindex %u",
	      ifindex0);
	CHECK(brport_lost == 0 && brport(), VIF " stayed a port of xenbr0");
	printf("kills %d: streams %llu B up, %llu B down, every byte verified; heartbeats %llu/%llu "
	       "up, %llu/%llu down; re-attach mean %.1f ms max %.1f ms; ifindex %u kept\n",
	       kills, (unsigned long long)up.received, (unsigned long long)down.received,
	       (unsigned long long)hb_h.received, (unsigned long long)hb_g.sent,
	       (unsigned long long)hb_g.received, (unsigned long long)hb_h.sent,
	       nre ? sum * 1000 / nre : 0.0, worst * 1000, ifindex0);
	printf("upgrades %d: re-attach max %.1f ms\n", nup, worst_up * 1000);

	pump.stop = true;
	pthread_join(pump.th, NULL);
	pumping = false;
	CHECK(pump.rc == 0, "pump: %d (a ring broke)", pump.rc);
	close(pump.tapfd);
	{
		const struct netfront_stats *s = netfront_stats(nf);

		CHECK(s->tx_rsp_error == 0, "%llu TX error responses",
		      (unsigned long long)s->tx_rsp_error);
		CHECK(s->rx_errors == 0, "%llu RX error responses", (unsigned long long)s->rx_errors);
		CHECK(s->rx_slot_mismatch == 0, "%llu RX responses outside their request's slot",
		      (unsigned long long)s->rx_slot_mismatch);
		printf("frontend: %llu frames sent (%llu okay, %llu error responses), %llu received "
		       "(%llu errors, %llu out of slot)\n",
		       (unsigned long long)s->tx_frames, (unsigned long long)s->tx_rsp_okay,
		       (unsigned long long)s->tx_rsp_error, (unsigned long long)s->rx_frames,
		       (unsigned long long)s->rx_errors, (unsigned long long)s->rx_slot_mismatch);
	}
	hash_check(nf, 7000, "after the kills");
	tx_ids_check(nf);
	writes = state_writes(wxs, &first_seen);
	CHECK(writes == 0, "the backend state node was written %d time(s) at the end", writes);

	/* What the operator sees: the restarts, and counters that carried on. */
	{
		char sock[108], want[64], *text = NULL;
		size_t len = 0;
		FILE *f;

		if (xenbus_supervisor_socket_path(sock, sizeof(sock)) == 0 &&
		    (f = open_memstream(&text, &len)) != NULL) {
			rc = xenbus_supervisor_request(sock, "stats", f);
			fclose(f);
			snprintf(want, sizeof(want), "restarts %d ", kills + UPGRADES);
			CHECK(rc == 0 && text && strstr(text, want), "stats show %s:\n%s", want,
			      text ? text : "");
			CHECK(text && strstr(text, "tx_packets "), "stats carry counters");
			free(text);
		}
	}

	/* A clean detach: the tap is no longer persistent and goes. */
	netfront_close(nf);
	nf = NULL;
	for (int i = 0; i < 300; i++) {
		int st = -1;

		xenbus_read_state(shim_ts_xs(ts), XBT_NULL, BE, &st);
		if (st == XenbusStateClosed)
			break;
		usleep(10000);
	}
	rc = shim_ts_device_detach(ts, DOMID, SHIM_TS_VIF, 0);
	CHECK(rc == 0, "detach: %s", strerror(-rc));
	for (int i = 0; i < 100 && if_nametoindex(VIF); i++)
		usleep(10000);
	CHECK(if_nametoindex(VIF) == 0, VIF " removed after a clean detach");
	left_behind(&g, &cfg, &spec, splitpvd);
out:
	stop_streams = stop_hb = true;
	if (streams) {
		/* Unblock threads still waiting in accept/recv. */
		shutdown(up.lsock, SHUT_RDWR);
		shutdown(down.lsock, SHUT_RDWR);
		pthread_join(up.send_th, NULL);
		pthread_join(down.send_th, NULL);
		pthread_join(up.recv_th, NULL);
		pthread_join(down.recv_th, NULL);
	}
	if (hbs) {
		pthread_join(hb_g.th, NULL);
		pthread_join(hb_h.th, NULL);
	}
	if (pumping) {
		pump.stop = true;
		pthread_join(pump.th, NULL);
		close(pump.tapfd);
	}
	if (up.lsock >= 0)
		close(up.lsock);
	if (down.lsock >= 0)
		close(down.lsock);
	if (wxs)
		xs_close(wxs);
	netfront_close(nf);
	shim_guest_destroy(g);
	shim_ts_close(ts);
	if (splitpvd > 0) {
		kill(splitpvd, SIGTERM);
		waitpid(splitpvd, NULL, 0);
	}
	shim_harness_stop(&shim);
	cleanup_ns();
	printf("%s: %d failure(s)\n", lc_failures ? "FAIL" : "PASS", lc_failures);
	return lc_failures ? 1 : 0;
}
