/*
 * hostile_net — the hostile-frontend conformance suite for the net backend, on the
 * shim, in private network and mount namespaces: splitpv-shim, splitpvd with one
 * splitpv-netback worker per guest, guest 1 the attacker (frontend-shim/hostile.h
 * writing keys, ring indices, slots and grants by hand, one fresh vif per case) with a
 * well-behaved sibling vif served by the same worker, and guest 2 a bystander with an
 * ordinary netfront in its own worker. Every case states its expected outcome and
 * checks it, then: the worker survives, its RSS stays under a bound, every response
 * slot holds only the response's bytes, and both the sibling and the bystander still
 * pass frames both ways through their taps. The host side of a vif is an AF_PACKET
 * socket on its tap (vif<domid>.<devid>). Mirrors tests/integration/hostile_blk.c.
 *
 *   hostile_net [CASE-SUBSTRING]   (root; exits 77 without namespaces or /dev/net/tun)
 *   HOSTILE_KEEP_LOG=1 keeps splitpvd's and the workers' log (its path is printed).
 */
#include "frontend-shim/guest.h"
#include "frontend-shim/hostile.h"
#include "frontend-shim/netfront.h"
#include "frontend-shim/toolstack.h"
#include "tests/integration/shim_harness.h"
#include "xenbus/xs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <xen/io/xenbus.h>
#include <xenstore.h>

#define ATTACKER 1
#define BYSTANDER 2
#define ETH_TEST 0x88b5 /* IEEE 802 local experimental ethertype: nothing else sends it */
#define PAGE 4096u
/* The worker's RX queue bound (splitpvd passes these to it) and its stall timeout. */
#define RXQ_PKTS 256
#define RXQ_BYTES (1 << 20)
#define RX_STALL_MS 500
/* A worker's RSS may grow at most this much over a case (a vif's rings, buffers and
 * thread; a flood fills the RX queue: its byte bound comes on top there). */
#ifdef __SANITIZE_ADDRESS__
#define ASAN_QUARANTINE_MB 16
#define RSS_GROWTH_KB ((8 + ASAN_QUARANTINE_MB) * 1024)
#else
#define RSS_GROWTH_KB (8 * 1024)
#endif
/* Worker CPU while its frontend storms notifications: at most this share of one core. */
#define STORM_CPU_PCT 25 /* with the back-off 5-11 %; without it 40-54 % */
/* The bystander's throughput under a storm, relative to a storm into the void. */

static int failures, cases;
static const char *only;
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
static struct shim_ts *ts;
static struct shim_guest *g_att, *g_vic;
static struct netfront *victim;
static int victim_sock = -1;
static struct hostile_vif *sib;   /* the attacker guest's well-behaved vif */
static unsigned int sib_devid;
static int sib_sock = -1;
static pid_t att_worker = -1;     /* serves every vif of the attacker guest */
static bool store_may_refuse;     /* hostile_vif_open may fail with E2BIG (key_case) */
static char worker_log[PATH_MAX];
static uint32_t seq_no;

static const uint8_t host_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
static const uint8_t att_mac[6] = { 0x00, 0x16, 0x3e, 0x00, 0x01, 0x01 };
static const uint8_t sib_mac[6] = { 0x00, 0x16, 0x3e, 0x00, 0x01, 0x02 };
static const uint8_t vic_mac[6] = { 0x00, 0x16, 0x3e, 0x00, 0x02, 0x01 };

static uint64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

static bool selected(const char *name)
{
	return !only || strstr(name, only);
}

/* ---- frames ---- */

/* A test frame of len (>= 22) bytes: dst, src, ETH_TEST, tag, seq, then bytes that
 * depend on seq and position. */
static void make_frame(uint8_t *f, size_t len, const uint8_t dst[6], const uint8_t src[6],
		       uint32_t tag, uint32_t seq)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = ETH_TEST >> 8;
	f[13] = ETH_TEST & 0xff;
	memcpy(f + 14, &tag, 4);
	memcpy(f + 18, &seq, 4);
	for (size_t i = 22; i < len; i++)
		f[i] = (uint8_t)(seq * 7 + i * 13);
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

/* Ethernet + IPv4 + TCP (proto 6) or UDP (17), len bytes, from the attacker to host_mac. */
static void make_ip_frame(uint8_t *f, size_t len, uint8_t proto)
{
	uint16_t iplen = (uint16_t)(len - 14), c;

	memset(f, 0, len);
	memcpy(f, host_mac, 6);
	memcpy(f + 6, att_mac, 6);
	f[12] = 0x08;
	f[14] = 0x45;
	f[16] = (uint8_t)(iplen >> 8);
	f[17] = (uint8_t)iplen;
	f[22] = 64;
	f[23] = proto;
	f[26] = 10, f[27] = 98, f[28] = 0, f[29] = 1;
	f[30] = 10, f[31] = 98, f[32] = 0, f[33] = 2;
	c = csum16(f + 14, 20);
	f[24] = (uint8_t)(c >> 8);
	f[25] = (uint8_t)c;
	f[35] = 80;
	f[37] = 80;
	if (proto == IPPROTO_TCP) {
		f[46] = 5 << 4;
		f[47] = 0x10;
	} else {
		f[38] = (uint8_t)((len - 34) >> 8);
		f[39] = (uint8_t)(len - 34);
	}
	for (size_t i = 54; i < len; i++)
		f[i] = (uint8_t)i;
}

/* A non-blocking packet socket on ifname (past the qdisc), or -errno. */
static int host_sock(const char *ifname)
{
	struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	int s, rc, one = 1;

	a.sll_ifindex = (int)if_nametoindex(ifname);
	if (a.sll_ifindex == 0)
		return -ENODEV;
	s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
	if (s < 0)
		return -errno;
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) != 0) {
		rc = -errno;
		close(s);
		return rc;
	}
	return s;
}

/* The GSO frames queue 0 of vif1.<devid> handed to its tap, from the stats line the
 * worker logs when the queue closes (the last one for that devid), or -1. */
static long long worker_tx_gso(unsigned int devid)
{
	char line[1024], key[64];
	long long gso = -1;
	FILE *f = fopen(worker_log, "r");

	snprintf(key, sizeof(key), "vif/%u/%u/q0: stats: ", ATTACKER, devid);
	while (f && fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, key);
		unsigned long long v;

		if (p && (p = strstr(p, "(gso ")) && sscanf(p, "(gso %llu", &v) == 1)
			gso = (long long)v;
	}
	if (f)
		fclose(f);
	return gso;
}

static void sock_drain(int s)
{
	uint8_t buf[2048];

	while (recv(s, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

/*
 * The next frame the guest side sent into the tap (not one we sent) whose ethertype is
 * want_type (0: IPv4, 0xffff: any), within timeout_ms. Returns its length (copied up to cap), or
 * -ETIMEDOUT.
 */
static int host_recv(int s, uint8_t *buf, size_t cap, uint16_t want_type, int timeout_ms)
{
	uint64_t end = now_us() + (uint64_t)timeout_ms * 1000;

	for (;;) {
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		struct pollfd p = { .fd = s, .events = POLLIN };
		ssize_t n = recvfrom(s, buf, cap, MSG_TRUNC, (struct sockaddr *)&from, &fl);

		if (n >= 14 && from.sll_pkttype != PACKET_OUTGOING &&
		    (want_type == 0xffff || (buf[12] << 8 | buf[13]) == (want_type ?: 0x0800)))
			return (int)n;
		if (n >= 0)
			continue;
		if (now_us() >= end)
			return -ETIMEDOUT;
		poll(&p, 1, 5);
	}
}

/* ---- the bystander and the sibling: frames both ways ---- */

static bool bystander_ok(const char *name)
{
	uint8_t f[600], buf[2048];
	uint32_t tag = 0xB0B0B0B0, seq = ++seq_no;
	uint64_t end;
	bool out = false, in = false;
	int rc;

	sock_drain(victim_sock);
	netfront_poll(victim, 0);
	while (netfront_recv(victim, buf, sizeof(buf), NULL, NULL) > 0)
		;
	make_frame(f, sizeof(f), host_mac, vic_mac, tag, seq);
	while ((rc = netfront_send(victim, 0, f, sizeof(f), NULL)) == -EAGAIN)
		netfront_poll(victim, 5);
	end = now_us() + 3000000;
	while (!out && now_us() < end) {
		int n = host_recv(victim_sock, buf, sizeof(buf), ETH_TEST, 50);

		netfront_poll(victim, 0);
		out = n == (int)sizeof(f) && memcmp(buf, f, sizeof(f)) == 0;
	}
	make_frame(f, sizeof(f), vic_mac, host_mac, tag, seq);
	CHECK(send(victim_sock, f, sizeof(f), 0) == (ssize_t)sizeof(f), "host send: %s",
	      strerror(errno));
	end = now_us() + 3000000;
	while (!in && now_us() < end) {
		int n;

		netfront_poll(victim, 20);
		while (!in && (n = netfront_recv(victim, buf, sizeof(buf), NULL, NULL)) > 0)
			in = n == (int)sizeof(f) && memcmp(buf, f, sizeof(f)) == 0;
	}
	CHECK(rc == 0 && out && in, "%s: the bystander's NIC: guest->host %s, host->guest %s",
	      name, out ? "ok" : "LOST", in ? "ok" : "LOST");
	return out && in;
}

/* A TX slot (12 bytes, the guest layout). */
static struct netif_tx_request txreq(uint32_t gref, uint16_t off, uint16_t flags, uint16_t id,
				     uint16_t size)
{
	struct netif_tx_request r;

	memset(&r, 0, sizeof(r));
	r.gref = gref;
	r.offset = off;
	r.flags = flags;
	r.id = id;
	r.size = size;
	return r;
}

/* Check n TX responses: ids[i] (ignored for NULL slots) with status st[i]. Returns the
 * number that matched. */
static unsigned int tx_expect(const char *name, struct hostile_vif *h, unsigned int q, unsigned int n,
			      const uint16_t *ids, const int16_t *st)
{
	struct hostile_ring *r = &h->q[q].tx;
	unsigned int good = 0;
	char why[200];
	int rc = hostile_ring_wait_responses(h, r, n, 3000);

	CHECK(rc == 0, "%s: %u TX responses expected, %u came", name, n,
	      *hostile_ring_rsp_prod(r) - r->rsp_cons);
	for (unsigned int i = 0; i < n && rc == 0; i++) {
		struct netif_tx_response rsp;

		if (hostile_ring_take_rsp(r, &rsp, sizeof(rsp), why, sizeof(why)) != 0) {
			CHECK(0, "%s: %s", name, why);
			continue;
		}
		if (rsp.status != st[i] || (st[i] != NETIF_RSP_NULL && rsp.id != ids[i])) {
			CHECK(0, "%s: TX response %u: id %u status %d, expected id %u status %d", name,
			      i, rsp.id, rsp.status, ids[i], st[i]);
			continue;
		}
		good++;
	}
	return good;
}

/* One frame through a raw vif's TX ring (data page 0), seen on sock intact. */
static bool raw_tx_ok(const char *name, struct hostile_vif *h, int sock, const uint8_t *src_mac)
{
	uint8_t *p = hostile_vif_data(h, 0), buf[2048];
	uint16_t id = (uint16_t)(0x100 + seq_no % 256);
	int16_t okay = NETIF_RSP_OKAY;
	struct netif_tx_request r;
	int n = -1;

	sock_drain(sock);
	make_frame(p, 300, host_mac, src_mac, 0x5151, ++seq_no);
	r = txreq(hostile_vif_data_gref(h, 0), 0, 0, id, 300);
	hostile_ring_put(&h->q[0].tx, &r, sizeof(r));
	hostile_ring_publish(&h->q[0].tx);
	hostile_vif_notify(h, h->q[0].tx_port);
	if (tx_expect(name, h, 0, 1, &id, &okay) == 1)
		n = host_recv(sock, buf, sizeof(buf), ETH_TEST, 2000);
	CHECK(n == 300 && memcmp(buf, p, 300) == 0, "%s: TX frame on the tap: %d bytes", name, n);
	return n == 300 && memcmp(buf, p, 300) == 0;
}

/* Post one RX buffer (data page `page`) with id, publish and notify. */
static void rx_post(struct hostile_vif *h, uint16_t id, uint32_t gref)
{
	struct netif_rx_request r;

	memset(&r, 0, sizeof(r));
	r.id = id;
	r.gref = gref;
	hostile_ring_put(&h->q[0].rx, &r, sizeof(r));
	hostile_ring_publish(&h->q[0].rx);
	hostile_vif_notify(h, h->q[0].rx_port);
}

/* Keep n RX buffers posted on a raw vif (as a netfront does: a guest without buffers
 * loses its carrier after RX_STALL_MS). Request k has id k & 0xffff and data page
 * 1 + id % 8. */
static void rx_keep_posted(struct hostile_vif *h, unsigned int n)
{
	struct hostile_ring *rx = &h->q[0].rx;

	while (rx->req_prod_pvt - rx->rsp_cons < n) {
		uint16_t id = (uint16_t)rx->req_prod_pvt;

		rx_post(h, id, hostile_vif_data_gref(h, 1 + id % 8u));
	}
}

/* The id we wrote in the slot the next response goes to. */
static uint16_t rx_slot_id(struct hostile_ring *rx)
{
	uint16_t id;

	memcpy(&id, rx->shadow + (size_t)(rx->rsp_cons & (rx->nr_ents - 1)) * rx->ent_size, 2);
	return id;
}

/* One host frame into a raw vif through posted buffers, checked byte by byte. */
static bool raw_rx_ok(const char *name, struct hostile_vif *h, int sock, const uint8_t *mac)
{
	struct hostile_ring *rx = &h->q[0].rx;
	uint8_t f[700], *p;
	struct netif_rx_response rsp;
	uint16_t id;
	char why[200];
	bool ok = false;
	ssize_t sent = -1;

	rx_keep_posted(h, 8);
	id = rx_slot_id(rx);
	p = hostile_vif_data(h, 1 + id % 8u);
	memset(p, 0xEE, PAGE);
	make_frame(f, sizeof(f), mac, host_mac, 0x5252, ++seq_no);
	/* A moment for the carrier (back on once buffers are posted). */
	for (int i = 0; i < 100 && sent != (ssize_t)sizeof(f); i++) {
		sent = send(sock, f, sizeof(f), 0);
		if (sent != (ssize_t)sizeof(f))
			usleep(10000);
	}
	CHECK(sent == (ssize_t)sizeof(f), "%s: host send: %s", name, strerror(errno));
	if (hostile_ring_wait_responses(h, rx, 1, 3000) == 0) {
		int rc = hostile_ring_take_rsp(rx, &rsp, sizeof(rsp), why, sizeof(why));

		CHECK(rc == 0, "%s: %s", name, why);
		ok = rc == 0 && rsp.id == id && rsp.status == (int16_t)sizeof(f) && rsp.offset == 0 &&
		     !(rsp.flags & (NETRXF_more_data | NETRXF_extra_info)) &&
		     memcmp(p, f, sizeof(f)) == 0 && p[sizeof(f)] == 0xEE;
		CHECK(ok, "%s: RX response id %u (its slot's request: %u) status %d flags %#x "
		      "offset %u, data %s", name, rsp.id, id, rsp.status, rsp.flags, rsp.offset,
		      memcmp(p, f, sizeof(f)) == 0 ? "intact" : "WRONG");
	} else {
		CHECK(0, "%s: no RX response for a host frame", name);
	}
	rx_keep_posted(h, 8);
	return ok;
}

static bool sibling_ok(const char *name)
{
	char what[160];

	snprintf(what, sizeof(what), "%s: sibling vif", name);
	return raw_tx_ok(what, sib, sib_sock, sib_mac) && raw_rx_ok(what, sib, sib_sock, sib_mac);
}

/* ---- one case: a fresh vif for the attacker ---- */

struct ncase {
	const char *name;
	struct hostile_vif *h;
	unsigned int devid;
	long rss0;
	int sock;          /* packet socket on the attacked vif's tap */
	bool attached;
	uint64_t t0;
};

static int nic_attach(unsigned int domid, int devid, const uint8_t mac[6], unsigned int *out)
{
	struct shim_nic_spec spec;
	char s[160], err[128];
	int rc;

	snprintf(s, sizeof(s), "bridge=nobridge,mac=%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1],
		 mac[2], mac[3], mac[4], mac[5]);
	if (devid >= 0)
		snprintf(s + strlen(s), sizeof(s) - strlen(s), ",devid=%d", devid);
	rc = shim_nic_spec_parse(s, &spec, err, sizeof(err));
	rc = rc ?: shim_ts_nic_attach(ts, domid, &spec);
	if (!rc)
		*out = (unsigned int)spec.devid;
	return rc;
}

static void be_path(char *buf, size_t len, unsigned int domid, unsigned int devid)
{
	snprintf(buf, len, "/local/domain/0/backend/vif/%u/%u", domid, devid);
}

static bool case_begin(struct ncase *c, const char *name, const struct hostile_vif_opts *o,
		       bool want_connected)
{
	char ifname[IFNAMSIZ];
	int rc, st = -1;

	memset(c, 0, sizeof(*c));
	c->t0 = now_us();
	c->name = name;
	c->sock = -1;
	cases++;
	rc = nic_attach(ATTACKER, -1, att_mac, &c->devid);
	CHECK(rc == 0, "%s: attach: %s", name, strerror(-rc));
	if (rc)
		return false;
	c->attached = true;
	snprintf(ifname, sizeof(ifname), "vif%u.%u", ATTACKER, c->devid);
	c->sock = host_sock(ifname);
	CHECK(c->sock >= 0, "%s: packet socket on %s: %s", name, ifname, strerror(-c->sock));
	c->rss0 = hostile_rss_kb(att_worker);
	rc = hostile_vif_open(&c->h, g_att, c->devid, o);
	if (rc == -E2BIG && store_may_refuse) {
		printf("%s: the xenstored refused the value (E2BIG): no guest can write it\n", name);
		return false;
	}
	CHECK(rc == 0, "%s: hostile open: %s", name, strerror(-rc));
	if (rc)
		return false;
	if (want_connected) {
		rc = hostile_vif_wait(c->h, 1u << XenbusStateConnected | 1u << XenbusStateClosing,
				      5000, &st);
		CHECK(rc == 0 && st == XenbusStateConnected, "%s: backend state %d, not Connected",
		      name, st);
		if (st != XenbusStateConnected)
			return false;
	}
	return true;
}

/* The invariants every case ends with, then tear down. */
static void case_end(struct ncase *c)
{
	long rss = hostile_rss_kb(att_worker);

	printf("rss %s: worker %ld KiB before, %ld KiB at the end\n", c->name, c->rss0, rss);
	CHECK(hostile_pid_alive(att_worker), "%s: worker %d died", c->name, (int)att_worker);
	CHECK(rss > 0 && rss - c->rss0 <= RSS_GROWTH_KB,
	      "%s: worker RSS %ld KiB, was %ld KiB (bound +%d KiB)", c->name, rss, c->rss0,
	      RSS_GROWTH_KB);
	if (!hostile_pid_alive(att_worker)) {
		char be[128];

		/* Already a failure; splitpvd restarts the guest's worker (the sibling
		 * resumes from its journal): judge the next cases on their own. */
		be_path(be, sizeof(be), ATTACKER, sib_devid);
		for (int i = 0; i < 300 && !hostile_pid_alive(att_worker); i++) {
			pid_t w = hostile_worker_pid(splitpvd, be);

			if (w > 0)
				att_worker = w;
			else
				usleep(10000);
		}
	}
	sibling_ok(c->name);
	bystander_ok(c->name);
	hostile_vif_close(c->h);
	c->h = NULL;
	if (c->sock >= 0)
		close(c->sock);
	if (c->attached) {
		char be[128];
		int rc;

		be_path(be, sizeof(be), ATTACKER, c->devid);
		/* Detach once the backend has followed our Closed (else the toolstack's and
		 * the backend's state writes race). */
		hostile_wait_state(shim_ts_xs(ts), be, 1u << XenbusStateClosed | 1u << XenbusStateInitWait,
				   2000, NULL);
		rc = shim_ts_device_detach(ts, ATTACKER, SHIM_TS_VIF, c->devid);
		CHECK(rc == 0, "%s: detach: %s", c->name, strerror(-rc));
	}
	printf("done %s (%.1f s)\n", c->name, (double)(now_us() - c->t0) / 1e6);
}

/* The device must go Closing (protocol broken) and stay away from Connected. */
static void expect_closing(struct ncase *c, const char *what)
{
	int st = -1, rc = hostile_vif_wait(c->h, 1u << XenbusStateClosing | 1u << XenbusStateClosed,
					   3000, &st);

	CHECK(rc == 0, "%s: %s: backend state %d, expected Closing", c->name, what, st);
}

static void expect_connected(struct ncase *c, const char *what)
{
	int st = -1;

	hostile_vif_wait(c->h, ~0u, 100, &st);
	CHECK(st == XenbusStateConnected, "%s: %s: backend state %d, expected still Connected",
	      c->name, what, st);
}

/* Put n slots on queue 0's TX ring, publish, notify. */
static void tx_put(struct hostile_vif *h, const struct netif_tx_request *r, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		hostile_ring_put(&h->q[0].tx, &r[i], sizeof(r[i]));
	hostile_ring_publish(&h->q[0].tx);
	hostile_vif_notify(h, h->q[0].tx_port);
}

/* No frame of ethertype type reaches the tap within ms. */
static bool tap_quiet(int sock, uint16_t type, int ms)
{
	uint8_t buf[2048];

	return host_recv(sock, buf, sizeof(buf), type, ms) < 0;
}

/* ---- TX slot chains ---- */

/* A chain of `data` data slots: the first carries the total, each frag frag_size. */
static unsigned int chain(struct hostile_vif *h, struct netif_tx_request *r, unsigned int data,
			  uint16_t frag_size, uint16_t id0)
{
	uint32_t total = 60 + (data - 1) * frag_size;

	for (unsigned int i = 0; i < data; i++)
		r[i] = txreq(hostile_vif_data_gref(h, i), 0, i + 1 < data ? NETTXF_more_data : 0,
			     (uint16_t)(id0 + i), (uint16_t)(i == 0 ? total : frag_size));
	make_frame(hostile_vif_data(h, 0), 60, host_mac, att_mac, 0x7171, ++seq_no);
	return data;
}

static void case_tx_slots_over_legacy_max(void)
{
	const char *name = "tx_slots_over_legacy_max_answered_errors";
	struct hostile_vif_opts o = { 0 };
	struct netif_tx_request r[32];
	uint16_t ids[32];
	int16_t st[32];
	struct ncase c;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		/* 20 data slots (19 frags > XEN_NETBK_LEGACY_SLOTS_MAX 18): all ERROR. */
		unsigned int n = chain(c.h, r, 20, 100, 0x300);

		for (unsigned int i = 0; i < n; i++) {
			ids[i] = r[i].id;
			st[i] = NETIF_RSP_ERROR;
		}
		tx_put(c.h, r, n);
		CHECK(tx_expect(name, c.h, 0, n, ids, st) == n, "%s: every slot an error", name);
		CHECK(tap_quiet(c.sock, ETH_TEST, 100), "%s: the frame was sent anyway", name);
		expect_connected(&c, "a recoverable error");
		raw_tx_ok(name, c.h, c.sock, att_mac);
	}
	case_end(&c);
}

static void case_tx_slots_fatal(void)
{
	const char *name = "tx_slots_fatal_count_closes_device";
	struct hostile_vif_opts o = { 0 };
	struct netif_tx_request r[32];
	struct ncase c;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		/* 22 data slots: past Linux's fatal_skb_slots (20 frags). */
		tx_put(c.h, r, chain(c.h, r, 22, 100, 0x300));
		expect_closing(&c, "a 22-slot chain");
		CHECK(tap_quiet(c.sock, ETH_TEST, 50), "%s: the frame was sent anyway", name);
	}
	case_end(&c);
}

/* One chain expected to be answered with errors (recoverable), then a good frame. */
static void errors_case(const char *name, const struct netif_tx_request *r, unsigned int n,
			unsigned int nr_null_after_first)
{
	struct hostile_vif_opts o = { 0 };
	uint16_t ids[32];
	int16_t st[32];
	struct ncase c;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		for (unsigned int i = 0; i < n; i++) {
			ids[i] = r[i].id;
			st[i] = i >= 1 && i <= nr_null_after_first ? NETIF_RSP_NULL : NETIF_RSP_ERROR;
		}
		tx_put(c.h, r, n);
		CHECK(tx_expect(name, c.h, 0, n, ids, st) == n, "%s: ERROR responses", name);
		CHECK(tap_quiet(c.sock, ETH_TEST, 100), "%s: the frame was sent anyway", name);
		expect_connected(&c, "a recoverable error");
		raw_tx_ok(name, c.h, c.sock, att_mac);
	}
	case_end(&c);
}

/* One chain expected to close the device. */
static void fatal_case(const char *name, const struct netif_tx_request *r, unsigned int n)
{
	struct hostile_vif_opts o = { 0 };
	struct ncase c;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		tx_put(c.h, r, n);
		expect_closing(&c, name);
		CHECK(tap_quiet(c.sock, ETH_TEST, 50), "%s: the frame was sent anyway", name);
	}
	case_end(&c);
}

static struct netif_tx_request extra_slot(uint8_t type, uint8_t flags, uint16_t gso_size,
					  uint8_t gso_type)
{
	struct netif_tx_request r;
	struct netif_extra_info e;

	memset(&r, 0, sizeof(r));
	memset(&e, 0, sizeof(e));
	e.type = type;
	e.flags = flags;
	e.u.gso.size = gso_size;
	e.u.gso.type = gso_type;
	memcpy(&r, &e, sizeof(e));
	return r;
}

/* Chains the backend must refuse before copying any data: the grant is never used
 * (gref 0, no page behind it), so only the slot layout matters. */
static void tx_chain_cases(void)
{
	struct netif_tx_request r[64];
	unsigned int n;
	const uint32_t G = 0;

	/* First slot smaller than the sum of the frags. */
	r[0] = txreq(G, 0, NETTXF_more_data, 0x400, 100);
	r[1] = txreq(G, 0, 0, 0x401, 200);
	errors_case("tx_first_slot_smaller_than_frags_answered_errors", r, 2, 0);
	/* Zero-length and runt frames. */
	r[0] = txreq(G, 0, 0, 0x410, 0);
	errors_case("tx_zero_length_frame_answered_error", r, 1, 0);
	r[0] = txreq(G, 0, 0, 0x411, 13);
	errors_case("tx_runt_frame_answered_error", r, 1, 0);
	/* Oversized: the size field's maximum, with slots adding up to more. */
	r[0] = txreq(G, 0, NETTXF_more_data, 0x420, 65535);
	for (unsigned int i = 1; i <= 16; i++)
		r[i] = txreq(G, 0, i < 16 ? NETTXF_more_data : 0, (uint16_t)(0x420 + i), 4096);
	errors_case("tx_oversized_frame_answered_errors", r, 17, 0);
	/* A frag crossing its page, a first slot crossing its page, offset + size > 4096. */
	r[0] = txreq(G, 0, NETTXF_more_data, 0x430, 300);
	r[1] = txreq(G, 4000, 0, 0x431, 200);
	fatal_case("tx_frag_crossing_page_closes_device", r, 2);
	r[0] = txreq(G, 4000, 0, 0x432, 200);
	fatal_case("tx_first_slot_crossing_page_closes_device", r, 1);
	r[0] = txreq(G, 0xffff, 0, 0x433, 0xffff);
	fatal_case("tx_offset_plus_size_wraps_closes_device", r, 1);
	/* Extra info: MORE that never ends (runs off the published requests), type 0,
	 * type >= MAX, an extra_info flag with nothing after it. */
	r[0] = txreq(G, 0, NETTXF_extra_info, 0x440, 60);
	for (n = 1; n < 40; n++)
		r[n] = extra_slot(XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_FLAG_MORE, 1448,
				  XEN_NETIF_GSO_TYPE_TCPV4);
	fatal_case("tx_extra_info_more_never_ends_closes_device", r, n);
	r[1] = extra_slot(XEN_NETIF_EXTRA_TYPE_NONE, 0, 0, 0);
	fatal_case("tx_extra_info_type_0_closes_device", r, 2);
	r[1] = extra_slot(XEN_NETIF_EXTRA_TYPE_MAX, 0, 0, 0);
	fatal_case("tx_extra_info_type_max_closes_device", r, 2);
	r[1] = extra_slot(0xff, 0, 0, 0);
	fatal_case("tx_extra_info_type_255_closes_device", r, 2);
	fatal_case("tx_extra_info_missing_closes_device", r, 1);
	/* Bogus GSO: size 0, unknown type. */
	r[1] = extra_slot(XEN_NETIF_EXTRA_TYPE_GSO, 0, 0, XEN_NETIF_GSO_TYPE_TCPV4);
	fatal_case("tx_gso_size_0_closes_device", r, 2);
	r[1] = extra_slot(XEN_NETIF_EXTRA_TYPE_GSO, 0, 1448, 7);
	fatal_case("tx_gso_unknown_type_closes_device", r, 2);
	r[1] = extra_slot(XEN_NETIF_EXTRA_TYPE_GSO, 0, 1448, XEN_NETIF_GSO_TYPE_NONE);
	fatal_case("tx_gso_type_none_closes_device", r, 2);
}

/*
 * One publish of several chains: good frames, one with a bad grant, a runt (answered
 * errors, never copied), a two-slot frame. The backend copies the frames it sends in
 * one grant-copy call per batch (tx.c); a bad grant must fail only its own frame, every
 * chain must be answered in ring order, and the good frames must reach the tap, each
 * as the guest wrote it, in order.
 */
static void case_tx_batch_mixed(void)
{
	static const char name[] = "tx_batch_bad_grant_and_runt_fail_alone_in_order";
	struct hostile_vif_opts o = { 0 };
	struct netif_tx_request r[8];
	uint16_t ids[8];
	int16_t st[8];
	uint8_t *pg[4], buf[2048];
	struct ncase c;
	unsigned int n = 0;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		sock_drain(c.sock);
		for (unsigned int i = 0; i < 4; i++) {
			pg[i] = hostile_vif_data(c.h, i);
			make_frame(pg[i], 400 + 100 * i, host_mac, att_mac, 0xba7c, 1000 + i);
		}
#define PUT(req, status) (r[n] = (req), ids[n] = r[n].id, st[n] = (status), n++)
		PUT(txreq(hostile_vif_data_gref(c.h, 0), 0, 0, 0x600, 400), NETIF_RSP_OKAY);
		PUT(txreq(0x7ffffff0u, 0, 0, 0x601, 500), NETIF_RSP_ERROR); /* bad grant */
		PUT(txreq(hostile_vif_data_gref(c.h, 1), 0, 0, 0x602, 13), NETIF_RSP_ERROR);
		PUT(txreq(hostile_vif_data_gref(c.h, 2), 0, 0, 0x603, 600), NETIF_RSP_OKAY);
		/* frame 3 in two slots: 300 bytes of page 3, then the rest from its offset 300 */
		PUT(txreq(hostile_vif_data_gref(c.h, 3), 0, NETTXF_more_data, 0x604, 700),
		    NETIF_RSP_OKAY);
		PUT(txreq(hostile_vif_data_gref(c.h, 3), 300, 0, 0x605, 400), NETIF_RSP_OKAY);
#undef PUT
		r[4].size = 700; /* the first slot's size is the whole frame's */
		tx_put(c.h, r, n);
		CHECK(tx_expect(name, c.h, 0, n, ids, st) == n, "%s: responses in ring order", name);
		for (unsigned int i = 0; i < 4; i++) {
			size_t len = 400 + 100 * i;
			int got;

			if (i == 1)
				continue; /* its grant was bad: never sent */
			got = host_recv(c.sock, buf, sizeof(buf), ETH_TEST, 2000);
			CHECK(got == (int)len && memcmp(buf, pg[i], len) == 0,
			      "%s: frame %u on the tap: %d bytes (want %zu, in order)", name, i, got,
			      len);
		}
		CHECK(tap_quiet(c.sock, ETH_TEST, 100), "%s: a frame that must fail was sent", name);
		expect_connected(&c, "bad grants and runts are recoverable");
	}
	case_end(&c);
}

/* A frame whose extra info and data are fine in form but odd in content: answered
 * OKAY (as Linux), the host stack sees what the guest wrote or nothing; never
 * anything else. */
static void gso_content_case(const char *name, uint8_t proto, size_t len, uint16_t gso_size,
			     int nr_gso, bool expect_frame, uint8_t gso_type)
{
	long long gso;
	struct hostile_vif_opts o = { 0 };
	struct netif_tx_request r[48];
	uint16_t ids[48];
	int16_t st[48];
	uint8_t buf[4096], *p;
	struct ncase c;
	int n, k = 0;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		p = hostile_vif_data(c.h, 0);
		make_ip_frame(p, len, proto);
		r[k] = txreq(hostile_vif_data_gref(c.h, 0), 0, NETTXF_csum_blank | NETTXF_extra_info,
			     0x500, (uint16_t)len);
		ids[k] = 0x500;
		st[k++] = NETIF_RSP_OKAY;
		for (int i = 0; i < nr_gso; i++) {
			r[k] = extra_slot(XEN_NETIF_EXTRA_TYPE_GSO,
					  i + 1 < nr_gso ? XEN_NETIF_EXTRA_FLAG_MORE : 0,
					  (uint16_t)(gso_size + 100 * (nr_gso - 1 - i)), gso_type);
			ids[k] = 0;
			st[k++] = NETIF_RSP_NULL;
		}
		tx_put(c.h, r, (unsigned int)k);
		CHECK(tx_expect(name, c.h, 0, (unsigned int)k, ids, st) == (unsigned int)k,
		      "%s: OKAY and NULL responses", name);
		n = host_recv(c.sock, buf, sizeof(buf), 0x0800, 300);
		if (expect_frame)
			/* Headers and payload as the guest wrote them (the checksum field is
			 * the backend's to fill: left blank by us). */
			CHECK(n == (int)len && memcmp(buf, p, 50) == 0 &&
				      memcmp(buf + 54, p + 54, len - 54) == 0,
			      "%s: frame on the tap: %d bytes", name, n);
		else
			CHECK(n < 0, "%s: a frame the backend must drop reached the tap (%d bytes)",
			      name, n);
		expect_connected(&c, "content errors are the host's business");
	}
	case_end(&c);
	/* Dropped by the backend itself, not handed to the host kernel as a GSO frame
	 * for it to refuse or pass on: the queue's stats (logged at close) count it. */
	gso = worker_tx_gso(c.devid);
	printf("%s: the backend handed %lld GSO frame(s) to the tap\n", name, gso);
	CHECK(gso >= 0, "%s: no stats line for vif%u.%u's queue 0 in the worker log", name,
	      ATTACKER, c.devid);
	CHECK(expect_frame || gso == 0,
	      "%s: BACKEND GAP: the backend handed the host a GSO frame that isn't one (%lld) "
	      "(fix: /work/briefs/patches/hostilenet-gso-not-tcp.patch)", name, gso);
}

static void case_tx_max_size_frame(void)
{
	const char *name = "tx_max_size_frame_answered_okay";
	struct hostile_vif_opts o = { 0 };
	struct netif_tx_request r[20];
	uint16_t ids[20];
	int16_t st[20];
	static uint8_t buf[70000];
	struct ncase c;
	int n;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		/* 65535 bytes: 4095 in the first slot, then 15 full pages. */
		make_frame(hostile_vif_data(c.h, 0), 4095, host_mac, att_mac, 0x6060, ++seq_no);
		for (unsigned int i = 0; i < 16; i++) {
			r[i] = txreq(hostile_vif_data_gref(c.h, i), 0, i < 15 ? NETTXF_more_data : 0,
				     (uint16_t)(0x600 + i), i == 0 ? 65535 : 4096);
			ids[i] = r[i].id;
			st[i] = NETIF_RSP_OKAY;
			if (i)
				memset(hostile_vif_data(c.h, i), (int)i, PAGE);
		}
		tx_put(c.h, r, 16);
		CHECK(tx_expect(name, c.h, 0, 16, ids, st) == 16, "%s: every slot OKAY", name);
		n = host_recv(c.sock, buf, sizeof(buf), ETH_TEST, 300);
		printf("%s: the host stack saw a %d-byte frame\n", name, n);
		CHECK(n < 0 || (n == 65535 && memcmp(buf, hostile_vif_data(c.h, 0), 4095) == 0 &&
				buf[4095] == 1 && buf[65534] == 15),
		      "%s: a frame other than the guest's reached the tap (%d bytes)", name, n);
		expect_connected(&c, "a legal frame");
	}
	case_end(&c);
}

/* XSA-423/432: headers split over many tiny slots reach the host linear and intact. */
static void case_tx_split_headers(void)
{
	const char *name = "tx_split_headers_linearised";
	struct hostile_vif_opts o = { 0 };
	struct netif_tx_request r[20];
	uint8_t frame[400], buf[2048];
	uint16_t ids[20];
	int16_t st[20];
	struct ncase c;
	size_t pos = 14;
	int n;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		make_ip_frame(frame, sizeof(frame), IPPROTO_UDP);
		/* 14 bytes in the first slot, 17 one-byte frags, the rest in the 19th slot:
		 * the IP header lands in 17 pieces (XSA-432's "extreme split"). */
		for (unsigned int i = 0; i < 19; i++) {
			size_t len = i == 0 ? 14 : i < 18 ? 1 : sizeof(frame) - pos;
			uint8_t *p = hostile_vif_data(c.h, i);
			uint16_t off = (uint16_t)(i * 100);

			memcpy(p + off, i == 0 ? frame : frame + pos, len);
			if (i)
				pos += len;
			r[i] = txreq(hostile_vif_data_gref(c.h, i), off, i < 18 ? NETTXF_more_data : 0,
				     (uint16_t)(0x700 + i), i == 0 ? sizeof(frame) : (uint16_t)len);
			ids[i] = r[i].id;
			st[i] = NETIF_RSP_OKAY;
		}
		r[0].flags |= NETTXF_data_validated;
		tx_put(c.h, r, 19);
		CHECK(tx_expect(name, c.h, 0, 19, ids, st) == 19, "%s: every slot OKAY", name);
		n = host_recv(c.sock, buf, sizeof(buf), 0x0800, 1000);
		CHECK(n == (int)sizeof(frame) && memcmp(buf, frame, sizeof(frame)) == 0,
		      "%s: the frame on the tap: %d bytes%s", name, n,
		      n == (int)sizeof(frame) ? ", content differs" : "");
	}
	case_end(&c);
}

/* ---- TX grants ---- */

enum bad_grant { GRANT_INVALID, GRANT_REVOKED, GRANT_OTHER_DOMAIN, GRANT_READONLY };

static void grant_case(const char *name, enum bad_grant kind)
{
	struct hostile_vif_opts o = { 0 };
	struct netif_tx_request r;
	uint8_t buf[2048], *p;
	uint32_t frame = 0;
	int gref = 60000, n;
	uint16_t id = 0x800;
	int16_t st = kind == GRANT_READONLY ? NETIF_RSP_OKAY : NETIF_RSP_ERROR;
	struct ncase c;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		CHECK(shim_guest_page_alloc(g_att, 1, &frame) == 0, "%s: page", name);
		p = shim_guest_frame_ptr(g_att, frame);
		make_frame(p, 200, host_mac, att_mac, 0x8080, ++seq_no);
		if (kind != GRANT_INVALID)
			gref = shim_guest_grant(g_att, frame, kind == GRANT_OTHER_DOMAIN ? 7 : 0,
						kind == GRANT_READONLY);
		CHECK(gref > 0, "%s: grant: %d", name, gref);
		if (kind == GRANT_REVOKED)
			CHECK(shim_guest_revoke(g_att, (uint32_t)gref) == 0, "%s: revoke", name);
		r = txreq((uint32_t)gref, 0, 0, id, 200);
		tx_put(c.h, &r, 1);
		CHECK(tx_expect(name, c.h, 0, 1, &id, &st) == 1, "%s: response %d", name, st);
		n = host_recv(c.sock, buf, sizeof(buf), ETH_TEST, kind == GRANT_READONLY ? 1000 : 100);
		if (kind == GRANT_READONLY)
			CHECK(n == 200 && memcmp(buf, p, 200) == 0, "%s: frame on the tap: %d", name, n);
		else
			CHECK(n < 0, "%s: a frame reached the tap through a bad grant", name);
		expect_connected(&c, "a bad grant is the guest's error, not a broken ring");
		if (kind != GRANT_INVALID && kind != GRANT_REVOKED)
			shim_guest_revoke(g_att, (uint32_t)gref);
		shim_guest_page_free(g_att, frame, 1);
	}
	case_end(&c);
}

/* ---- double fetch ---- */

/* Publish only once the flipper is really rewriting (a thread just created may not
 * have run yet; the backend would then only ever see version A). */
static void flipper_running(const struct hostile_flipper *f)
{
	for (int i = 0; i < 2000 && __atomic_load_n(&f->flips, __ATOMIC_RELAXED) < 64; i++)
		sched_yield();
}

/*
 * A thread flips the TX slot between two requests on the same granted page while the
 * backend takes it: A = 60 bytes at offset 0 (id 0x1A1A), B = `blen` bytes at offset
 * `boff` (id 0x2B2B, other flags). Only bytes 4..11 (offset, flags, id, size) flip:
 * the response (id, status) overlays bytes 0..3, which stay put. The backend's one
 * copy may be torn (fields from both versions: a copy of shared memory is not atomic),
 * but it validates and uses that same copy, so every round ends in OKAY with a frame
 * that is exactly `size` bytes at `offset` for a valid combination of the two
 * versions' fields, or (if the copy is an invalid combination) in Closing. A backend
 * that validated one read and copied with another would get its grant copy refused
 * (an ERROR response), or send one version's bytes under the other's id far more
 * often than a torn copy can explain.
 */
static void double_fetch_rounds(struct ncase *c, uint16_t alen, uint16_t boff, uint16_t blen,
				unsigned int rounds)
{
	struct hostile_flipper f = { 0 };
	struct hostile_ring *tx = &c->h->q[0].tx;
	const uint16_t offs[2] = { 0, boff }, lens[2] = { alen, blen };
	struct netif_tx_request a, b;
	unsigned int na = 0, nb = 0, torn = 0, i;
	unsigned long flips = 0;
	uint8_t buf[2048], *p = hostile_vif_data(c->h, 1);
	int fail0 = failures, st = -1;
	bool closed = false;
	char why[200];

	for (unsigned int k = 0; k < PAGE; k++)
		p[k] = (uint8_t)(k * 7 + k / 251);
	make_frame(p, alen, host_mac, att_mac, 0xAAAA, 1);
	a = txreq(hostile_vif_data_gref(c->h, 1), 0, NETTXF_data_validated, 0x1A1A, alen);
	b = txreq(hostile_vif_data_gref(c->h, 1), boff, 0, 0x2B2B, blen);
	for (i = 0; i < rounds && failures == fail0; i++) {
		struct netif_tx_response rsp;
		uint32_t prod = *hostile_ring_rsp_prod(tx);
		volatile uint8_t *slot;
		bool match = false;
		int n;

		hostile_ring_put(tx, &a, sizeof(a));
		slot = hostile_ring_slot(tx, tx->req_prod_pvt - 1);
		hostile_flipper_start(&f, slot + 4, (const uint8_t *)&a + 4, (const uint8_t *)&b + 4,
				      sizeof(a) - 4, hostile_ring_rsp_prod(tx), prod);
		flipper_running(&f);
		hostile_ring_publish(tx);
		hostile_vif_notify(c->h, c->h->q[0].tx_port);
		for (n = -1; n != 0;) {
			n = hostile_ring_wait_responses(c->h, tx, 1, 20);
			hostile_vif_wait(c->h, ~0u, 0, &st);
			if (st != XenbusStateConnected)
				break;
		}
		flips += hostile_flipper_stop(&f);
		if (n != 0) {
			closed = true;
			break;
		}
		/* The flipper wrote the slot: the shadow is whichever version it left. */
		memcpy(tx->shadow + ((tx->req_prod_pvt - 1) & (tx->nr_ents - 1)) * tx->ent_size + 4,
		       (const void *)(slot + 4), tx->ent_size - 4);
		CHECK(hostile_ring_take_rsp(tx, &rsp, sizeof(rsp), why, sizeof(why)) == 0, "%s: %s",
		      c->name, why);
		CHECK(rsp.status == NETIF_RSP_OKAY && (rsp.id == 0x1A1A || rsp.id == 0x2B2B),
		      "%s: round %u: id %#x status %d (a grant copy refused: the copy used was not "
		      "the one validated)", c->name, i, rsp.id, rsp.status);
		/* Any ethertype: a torn combination's bytes needn't start with ours. */
		n = host_recv(c->sock, buf, sizeof(buf), 0xffff, 1000);
		for (int x = 0; x < 2 && !match; x++)
			for (int y = 0; y < 2 && !match; y++)
				match = offs[x] + lens[y] <= PAGE && n == lens[y] &&
					memcmp(buf, p + offs[x], lens[y]) == 0;
		CHECK(match, "%s: round %u: id %#x: a %d-byte frame that is no valid (offset, size) "
		      "of the two versions", c->name, i, rsp.id, n);
		if (rsp.id == 0x1A1A)
			na++;
		else
			nb++;
		torn += n >= 0 && (n == alen) != (rsp.id == 0x1A1A);
	}
	printf("%s: A = %u bytes at 0, B = %u bytes at %u: %u rounds, %lu slot rewrites; id A "
	       "%u, id B %u, torn copies seen %u%s\n", c->name, alen, blen, boff, i, flips, na, nb,
	       torn,
	       closed ? "; then an invalid combination: device closed" : "");
	CHECK(flips > 0, "%s: the flipper never ran", c->name);
	/* A torn copy needs the rewrite to land inside the backend's few-nanosecond copy
	 * of the slot: rare. Reading the slot twice, microseconds apart, mixes the
	 * versions in about half the rounds. */
	CHECK(torn * 10 <= i, "%s: %u of %u rounds sent one version's bytes under the other's "
	      "id: the slot was read more than once", c->name, torn, i);

}

static void case_double_fetch(void)
{
	const char *name = "double_fetch_tx_slot_one_consistent_copy";
	struct hostile_vif_opts o = { 0 };
	struct ncase c;

	if (!selected(name))
		return;
	/* Every combination valid: 300 rounds, each OKAY with a consistent frame. */
	if (case_begin(&c, name, &o, true)) {
		double_fetch_rounds(&c, 60, 100, 1000, 300);
		expect_connected(&c, "every combination was valid");
	}
	case_end(&c);
	/* A and B valid, A's size at B's offset crosses the page: a copy torn that way
	 * closes the device (rare); a backend that re-reads the offset after checking
	 * the size gets its grant copy refused. */
	if (case_begin(&c, name, &o, true))
		double_fetch_rounds(&c, 1000, 3500, 60, 300);
	case_end(&c);
}

/*
 * The extra-info slot flipped while the backend takes the chain: A = GSO TCPv4 of 536
 * bytes, B = GSO type 7 (unknown: fatal). Only bytes 4..7 (type, pad, features) flip:
 * the slot's NULL response overlays bytes 0..3. One copy means each round either
 * sends the frame as a TCPv4 GSO frame (as the host sees it through a vnet-header
 * packet socket) or closes the device; never a frame carrying B's type.
 */
static void case_double_fetch_extra(void)
{
	const char *name = "double_fetch_tx_extra_info_one_consistent_copy";
	struct hostile_vif_opts o = { 0 };
	struct hostile_flipper f = { 0 };
	struct netif_tx_request first, xa, xb;
	unsigned int sent = 0, rounds = 200, i;
	int vs = -1, one = 1, st = -1;
	struct ncase c;
	char why[200];
	bool closed = false;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		struct hostile_ring *tx = &c.h->q[0].tx;
		struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
		char ifname[IFNAMSIZ];
		uint8_t *p = hostile_vif_data(c.h, 0);

		snprintf(ifname, sizeof(ifname), "vif%u.%u", ATTACKER, c.devid);
		a.sll_ifindex = (int)if_nametoindex(ifname);
		vs = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
		CHECK(vs >= 0 && bind(vs, (struct sockaddr *)&a, sizeof(a)) == 0 &&
			      setsockopt(vs, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) == 0,
		      "%s: vnet-header packet socket: %s", name, strerror(errno));
		make_ip_frame(p, 1200, IPPROTO_TCP);
		first = txreq(hostile_vif_data_gref(c.h, 0), 0, NETTXF_csum_blank | NETTXF_extra_info,
			      0xE0E0, 1200);
		xa = extra_slot(XEN_NETIF_EXTRA_TYPE_GSO, 0, 536, XEN_NETIF_GSO_TYPE_TCPV4);
		xb = extra_slot(XEN_NETIF_EXTRA_TYPE_GSO, 0, 536, 7);
		for (i = 0; i < rounds && !closed; i++) {
			uint32_t prod = *hostile_ring_rsp_prod(tx);
			volatile uint8_t *slot;
			int n;

			hostile_ring_put(tx, &first, sizeof(first));
			hostile_ring_put(tx, &xa, sizeof(xa));
			slot = hostile_ring_slot(tx, tx->req_prod_pvt - 1);
			hostile_flipper_start(&f, slot + 4, (const uint8_t *)&xa + 4,
					      (const uint8_t *)&xb + 4, 4, hostile_ring_rsp_prod(tx), prod);
			flipper_running(&f);
			hostile_ring_publish(tx);
			hostile_vif_notify(c.h, c.h->q[0].tx_port);
			for (n = -1; n != 0;) {
				n = hostile_ring_wait_responses(c.h, tx, 2, 20);
				hostile_vif_wait(c.h, ~0u, 0, &st);
				if (st != XenbusStateConnected)
					break;
			}
			hostile_flipper_stop(&f);
			if (n != 0) {
				closed = true; /* B taken: the chain was fatal */
				break;
			}
			memcpy(tx->shadow + ((tx->req_prod_pvt - 1) & (tx->nr_ents - 1)) * tx->ent_size + 4,
			       (const void *)(slot + 4), 8);
			for (int k = 0; k < 2; k++) {
				struct netif_tx_response rsp;

				CHECK(hostile_ring_take_rsp(tx, &rsp, sizeof(rsp), why, sizeof(why)) == 0,
				      "%s: %s", name, why);
				CHECK(rsp.status == (k ? NETIF_RSP_NULL : NETIF_RSP_OKAY),
				      "%s: round %u: response %d status %d", name, i, k, rsp.status);
			}
			/* The frame as the host sees it, with the virtio-net header. */
			for (uint64_t end = now_us() + 1000000; vs >= 0 && now_us() < end;) {
				uint8_t buf[2048];
				struct pollfd pfd = { .fd = vs, .events = POLLIN };
				ssize_t r = recv(vs, buf, sizeof(buf), 0);

				if (r >= 10 + 14 && (buf[10 + 12] << 8 | buf[10 + 13]) == 0x0800) {
					sent++;
					CHECK(buf[1] == 1 /* VIRTIO_NET_HDR_GSO_TCPV4 */ &&
						      (buf[4] | buf[5] << 8) == 536,
					      "%s: round %u: the host got gso_type %u size %u, not A's", name,
					      i, buf[1], buf[4] | buf[5] << 8);
					break;
				}
				if (r < 0)
					poll(&pfd, 1, 5);
			}
		}
		printf("%s: %u rounds; %u frames sent as A%s\n", name, i, sent,
		       closed ? ", then B taken: device closed" : "");
		CHECK(closed || sent == i, "%s: %u rounds answered but %u frames seen", name, i, sent);
		if (vs >= 0)
			close(vs);
	}
	case_end(&c);
}

/* ---- ring indices ---- */

static void case_tx_prod(const char *name, int how)
{
	struct hostile_vif_opts o = { .tx_req_prod_at_connect = how == 2 ? 5000 : 0,
				      .queues = how == 3 ? 2 : 0 };
	struct ncase c;
	int st = -1;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, how != 2)) {
		struct hostile_ring *tx = &c.h->q[0].tx;

		if (how == 0) {
			struct netif_tx_request r =
				txreq(hostile_vif_data_gref(c.h, 0), 0, 0, 0xF0F0, 60);

			raw_tx_ok(name, c.h, c.sock, att_mac);
			/* Every slot a valid request: only the index check can tell. */
			for (uint32_t i = 0; i < tx->nr_ents; i++)
				memcpy((void *)hostile_ring_slot(tx, i), &r, sizeof(r));
			*hostile_ring_req_prod(tx) = tx->req_prod_pvt + tx->nr_ents + 1000;
		} else if (how == 1) {
			for (int i = 0; i < 4; i++)
				raw_tx_ok(name, c.h, c.sock, att_mac);
			*hostile_ring_req_prod(tx) = 1;
		} else if (how == 3) {
			/* The second queue's ring: the whole device goes. */
			tx = &c.h->q[1].tx;
			*hostile_ring_req_prod(tx) = tx->req_prod_pvt + 0x7fffffffu;
		}
		if (how == 3)
			hostile_vif_notify(c.h, c.h->q[1].tx_port);
		else if (how != 2)
			hostile_vif_notify(c.h, c.h->q[0].tx_port);
		expect_closing(&c, "bogus tx req_prod");
		usleep(200000);
		hostile_vif_wait(c.h, ~0u, 100, &st);
		CHECK(st == XenbusStateClosing || st == XenbusStateClosed,
		      "%s: state %d after the ring was found broken", name, st);
	}
	case_end(&c);
}

/* The frontend publishes a full TX ring and never consumes a response. */
static void case_tx_ring_full(void)
{
	const char *name = "tx_ring_full_never_consumed_backend_stops";
	struct hostile_vif_opts o = { 0 };
	struct ncase c;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		struct hostile_ring *tx = &c.h->q[0].tx;
		uint32_t n = tx->nr_ents, first = tx->req_prod_pvt;
		static uint16_t ids[256];
		static int16_t st[256];
		long cpu0, cpu1;

		make_frame(hostile_vif_data(c.h, 0), 60, host_mac, att_mac, 0x9090, ++seq_no);
		for (uint32_t i = 0; i < n; i++) {
			struct netif_tx_request r =
				txreq(hostile_vif_data_gref(c.h, 0), 0, 0, (uint16_t)(0x900 + i), 60);

			ids[i] = r.id;
			st[i] = NETIF_RSP_OKAY;
			hostile_ring_put(tx, &r, sizeof(r));
		}
		hostile_ring_publish(tx);
		hostile_vif_notify(c.h, c.h->q[0].tx_port);
		CHECK(hostile_ring_wait_responses(c.h, tx, n, 3000) == 0, "%s: not all answered",
		      name);
		cpu0 = hostile_cpu_ms(att_worker);
		for (int i = 0; i < 500; i++) {
			hostile_vif_notify(c.h, c.h->q[0].tx_port);
			usleep(1000);
		}
		cpu1 = hostile_cpu_ms(att_worker);
		CHECK(*hostile_ring_rsp_prod(tx) == first + n, "%s: rsp_prod %u, expected exactly %u",
		      name, *hostile_ring_rsp_prod(tx), first + n);
		CHECK(cpu1 - cpu0 < 300, "%s: worker used %ld ms CPU in ~0.5 s while idle", name,
		      cpu1 - cpu0);
		CHECK(tx_expect(name, c.h, 0, n, ids, st) == n, "%s: every response OKAY", name);
		expect_connected(&c, "a full ring is not an error");
	}
	case_end(&c);
}

/* ---- RX ---- */

/* Post buffers until the backend's queue is empty (a quiet 200 ms); every response is
 * a frame of ours (1514 bytes, tag 0xF100) or nothing. Returns the frames taken. */
static int rx_take_queued(struct ncase *c)
{
	struct hostile_ring *rx = &c->h->q[0].rx;
	uint64_t quiet = now_us() + 200000, end = now_us() + 3000000;
	char why[200];
	int got = 0;

	for (uint16_t id = 0; now_us() < quiet && now_us() < end;) {
		/* Keep 64 buffers posted. */
		while (rx->req_prod_pvt - rx->rsp_cons < 64) {
			id++;
			rx_post(c->h, id, hostile_vif_data_gref(c->h, 8 + id % 16));
		}
		if (hostile_ring_wait_responses(c->h, rx, 1, 20) != 0)
			continue;
		while (*hostile_ring_rsp_prod(rx) != rx->rsp_cons) {
			struct netif_rx_response rsp;

			CHECK(hostile_ring_take_rsp(rx, &rsp, sizeof(rsp), why, sizeof(why)) == 0,
			      "%s: %s", c->name, why);
			CHECK(rsp.status == 1514 && rsp.offset == 0 && !(rsp.flags & NETRXF_more_data),
			      "%s: queued frame: status %d offset %u flags %#x", c->name, rsp.status,
			      rsp.offset, rsp.flags);
			got++;
			quiet = now_us() + 200000;
		}
	}
	printf("%s: %d queued frames delivered once buffers were posted\n", c->name, got);
	return got;
}

/* XSA-392 with a bystander and a sibling watching: net_rx_bound measures the queue's
 * frame and byte bounds and GSO floods on their own; here a 1514-byte flood into a
 * guest that never posted a buffer, beside two NICs that must not notice. */
static void case_rx_no_buffers_flood(void)
{
	const char *name = "rx_never_posted_flood_bounded_carrier_off";
	struct hostile_vif_opts o = { 0 };
	struct ncase c;
	uint8_t f[1514];
	unsigned int carrier = 9;
	uint64_t sent = 0, offered = 0, end;
	long peak = 0;
	char be[128];

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		be_path(be, sizeof(be), ATTACKER, c.devid);
		make_frame(f, sizeof(f), att_mac, host_mac, 0xF100, 0);
		end = now_us() + 1500000;
		while (now_us() < end) {
			long r;

			/* Offered, whether the full tap queue takes it (sent) or refuses it. */
			for (int i = 0; i < 64; i++, offered++)
				sent += send(c.sock, f, sizeof(f), 0) == (ssize_t)sizeof(f);
			r = hostile_rss_kb(att_worker);
			if (r > peak)
				peak = r;
		}
		xenbus_read_uint(shim_ts_xs(ts), XBT_NULL, be, "carrier", 0, 1, &carrier);
		printf("%s: %llu frames offered, %llu taken by the tap; worker RSS %ld KiB before, "
		       "peak %ld KiB\n", name, (unsigned long long)offered, (unsigned long long)sent,
		       c.rss0, peak);
		CHECK(offered > RXQ_PKTS * 16 && sent > RXQ_PKTS,
		      "%s: the flood offered more than the bound (%llu, %llu taken)", name,
		      (unsigned long long)offered, (unsigned long long)sent);
		CHECK(peak - c.rss0 <= RXQ_BYTES / 1024 + RSS_GROWTH_KB,
		      "%s: RSS grew %ld KiB (bound %d KiB)", name, peak - c.rss0,
		      RXQ_BYTES / 1024 + RSS_GROWTH_KB);
		CHECK(carrier == 0, "%s: carrier still %u after %d ms without buffers", name, carrier,
		      RX_STALL_MS);
		/* The guest posts buffers: the queued frames come, carrier goes back on. What
		 * waited is the backend's queue (<= RXQ_PKTS) plus the tap's own. */
		{
			char p[128];
			unsigned int qlen = 0;
			int got = rx_take_queued(&c);
			FILE *qf;

			snprintf(p, sizeof(p), "/sys/class/net/vif%u.%u/tx_queue_len", ATTACKER,
				 c.devid);
			qf = fopen(p, "r");
			if (!qf || fscanf(qf, "%u", &qlen) != 1)
				qlen = 0;
			if (qf)
				fclose(qf);
			CHECK(got > 0, "%s: no queued frame delivered once buffers were posted", name);
			CHECK(qlen > 0 && got <= RXQ_PKTS + (int)qlen,
			      "%s: %d frames had waited: more than the backend's bound %d + the tap's "
			      "queue %u", name, got, RXQ_PKTS, qlen);
		}
		for (int i = 0; i < 100 && carrier != 1; i++) {
			usleep(10000);
			xenbus_read_uint(shim_ts_xs(ts), XBT_NULL, be, "carrier", 0, 1, &carrier);
		}
		CHECK(carrier == 1, "%s: carrier %u once buffers are posted", name, carrier);
	}
	case_end(&c);
}

/* RX buffers the backend can't write: an error response in the request's slot, the
 * next good buffer gets the next frame. */
static void case_rx_bad_grants(void)
{
	const char *name = "rx_bad_grants_answered_errors";
	struct hostile_vif_opts o = { 0 };
	struct ncase c;
	uint32_t frame = 0;
	int ro, revoked;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		struct hostile_ring *rx = &c.h->q[0].rx;
		uint32_t grefs[3];
		uint8_t f[300];
		char why[200];

		CHECK(shim_guest_page_alloc(g_att, 2, &frame) == 0, "%s: pages", name);
		ro = shim_guest_grant(g_att, frame, 0, true);
		revoked = shim_guest_grant(g_att, frame + 1, 0, false);
		CHECK(ro > 0 && revoked > 0 && shim_guest_revoke(g_att, (uint32_t)revoked) == 0,
		      "%s: grants", name);
		grefs[0] = 60000;
		grefs[1] = (uint32_t)ro;
		grefs[2] = (uint32_t)revoked;
		for (unsigned int i = 0; i < 3; i++) {
			rx_post(c.h, (uint16_t)(0xA00 + i), grefs[i]);
			make_frame(f, sizeof(f), att_mac, host_mac, 0xA0A0, i);
			CHECK(send(c.sock, f, sizeof(f), 0) == (ssize_t)sizeof(f), "host send");
		}
		CHECK(hostile_ring_wait_responses(c.h, rx, 3, 3000) == 0, "%s: 3 RX responses", name);
		for (unsigned int i = 0; i < 3 && *hostile_ring_rsp_prod(rx) != rx->rsp_cons; i++) {
			struct netif_rx_response rsp;

			CHECK(hostile_ring_take_rsp(rx, &rsp, sizeof(rsp), why, sizeof(why)) == 0,
			      "%s: %s", name, why);
			CHECK(rsp.id == 0xA00 + i && rsp.status == NETIF_RSP_ERROR,
			      "%s: RX response %u: id %#x status %d, expected id %#x ERROR", name, i,
			      rsp.id, rsp.status, 0xA00 + i);
		}
		expect_connected(&c, "a bad RX buffer is the guest's error");
		raw_rx_ok(name, c.h, c.sock, att_mac);
		shim_guest_revoke(g_att, (uint32_t)ro);
		shim_guest_page_free(g_att, frame, 2);
	}
	case_end(&c);
}

static void case_rx_prod(const char *name, bool backwards)
{
	struct hostile_vif_opts o = { 0 };
	struct ncase c;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		struct hostile_ring *rx = &c.h->q[0].rx;
		uint8_t f[300];

		if (backwards) {
			for (int i = 0; i < 4; i++)
				raw_rx_ok(name, c.h, c.sock, att_mac);
			/* Behind the requests the backend already took (it holds 8 buffers)
			 * but ahead of its responses: only the "behind req_cons" half of the
			 * index check sees this. */
			*hostile_ring_req_prod(rx) = rx->rsp_cons + 2;
		} else {
			*hostile_ring_req_prod(rx) = rx->req_prod_pvt + 0x40000000u;
		}
		hostile_vif_notify(c.h, c.h->q[0].rx_port);
		/* The backend reads req_prod when it needs buffers beyond the ones it took
		 * already (raw_rx_ok keeps 8 posted): more frames than that. */
		int sent = 0;

		/* Once the device is closed its tap refuses the rest (carrier off). */
		for (uint32_t i = 0; i < 12; i++) {
			make_frame(f, sizeof(f), att_mac, host_mac, 0xA1A1, i);
			sent += send(c.sock, f, sizeof(f), 0) == (ssize_t)sizeof(f);
		}
		CHECK(sent > 0, "%s: host send: %s", name, strerror(errno));
		expect_closing(&c, "bogus rx req_prod");
	}
	case_end(&c);
}

/* ---- ctrl ring ---- */

struct ctrl_op {
	uint16_t type;
	uint32_t d0, d1, d2;
	uint32_t status, data;
};

/* Send ops in order on the ctrl ring, each waited for and checked byte by byte. */
static void ctrl_ops(struct ncase *c, const struct ctrl_op *ops, unsigned int n)
{
	struct hostile_ring *r = &c->h->ctrl;
	char why[200];

	for (unsigned int i = 0; i < n; i++) {
		struct xen_netif_ctrl_request req;
		struct xen_netif_ctrl_response rsp;
		uint16_t id = (uint16_t)(0xC00 + i);

		memset(&req, 0, sizeof(req));
		req.id = id;
		req.type = ops[i].type;
		req.data[0] = ops[i].d0;
		req.data[1] = ops[i].d1;
		req.data[2] = ops[i].d2;
		hostile_ring_put(r, &req, sizeof(req));
		hostile_ring_publish(r);
		hostile_vif_notify(c->h, c->h->ctrl_port);
		if (hostile_ring_wait_responses(c->h, r, 1, 3000) != 0) {
			CHECK(0, "%s: op %u (type %u): no response", c->name, i, ops[i].type);
			return;
		}
		CHECK(hostile_ring_take_rsp(r, &rsp, sizeof(rsp), why, sizeof(why)) == 0, "%s: %s",
		      c->name, why);
		CHECK(rsp.id == id && rsp.type == ops[i].type && rsp.status == ops[i].status &&
			      rsp.data == ops[i].data,
		      "%s: op %u (type %u %#x %#x %#x): id %#x type %u status %u data %u, expected "
		      "status %u data %u",
		      c->name, i, ops[i].type, ops[i].d0, ops[i].d1, ops[i].d2, rsp.id, rsp.type,
		      rsp.status, rsp.data, ops[i].status, ops[i].data);
	}
}

/* A granted page for ctrl payloads: n mapping entries of value v (or key bytes). */
static int ctrl_page(uint32_t *frame, uint32_t v)
{
	uint32_t *p;
	int rc = shim_guest_page_alloc(g_att, 1, frame);

	if (rc)
		return rc;
	p = shim_guest_frame_ptr(g_att, *frame);
	for (unsigned int i = 0; i < PAGE / 4; i++)
		p[i] = v;
	return shim_guest_grant(g_att, *frame, 0, true);
}

static void ctrl_case(const char *name, int which)
{
	struct hostile_vif_opts o = { .ctrl_ring = true };
	enum { OK = XEN_NETIF_CTRL_STATUS_SUCCESS, NS = XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED,
	       INV = XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER,
	       OVF = XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW };
	uint32_t f0 = 0, f1 = 0;
	struct ncase c;
	int g0 = -1, g1 = -1;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		g0 = ctrl_page(&f0, 0);  /* entries 0: valid with one queue */
		g1 = ctrl_page(&f1, 1);  /* entries 1: >= nr_queues */
		CHECK(g0 > 0 && g1 > 0, "%s: payload grants", name);
		{
			const struct ctrl_op setup[] = {
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM,
				  XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ, 0, 0, OK, 0 },
				{ XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE, 0, 0, 0, OK, 128 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, 128, 0, 0, OK, 0 },
			};
			const struct ctrl_op wrap[] = {
				/* XSA-270: offset + size wraps 32 bits. */
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, (uint32_t)g0, 16, 0xfffffff8u, INV, 0 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, (uint32_t)g0, 0xffffffffu, 1, INV, 0 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, (uint32_t)g0, 0x40000001u, 0, INV, 0 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, (uint32_t)g0, 128, 0, OK, 0 },
			};
			const struct ctrl_op past[] = {
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, (uint32_t)g0, 16, 120, INV, 0 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, (uint32_t)g0, 129, 0, INV, 0 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, (uint32_t)g0, 1, 128, INV, 0 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, 129, 0, 0, INV, 0 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, (uint32_t)g0, 8, 120, OK, 0 },
			};
			const struct ctrl_op queues[] = {
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, (uint32_t)g1, 1, 0, INV, 0 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, (uint32_t)g1, 128, 0, INV, 0 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, (uint32_t)g0, 128, 0, OK, 0 },
			};
			const struct ctrl_op key[] = {
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, (uint32_t)g0, 41, 0, OVF, 0 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, (uint32_t)g0, 4097, 0, INV, 0 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, (uint32_t)g0, 0xffffffffu, 0, INV, 0 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, (uint32_t)g0, 40, 0, OK, 0 },
			};
			const struct ctrl_op grants[] = {
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, 60000, 40, 0, INV, 0 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 60000, 16, 0, INV, 0 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 0, 16, 0, INV, 0 },
			};
			const struct ctrl_op unknown[] = {
				{ XEN_NETIF_CTRL_TYPE_INVALID, 1, 2, 3, NS, 0 },
				{ XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING, (uint32_t)g0, 1, 0, NS, 0 },
				{ 99, 1, 2, 3, NS, 0 },
				{ 0xffff, 0xffffffffu, 0xffffffffu, 0xffffffffu, NS, 0 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM, 77, 0, 0, INV, 0 },
				{ XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, 0x80000000u, 0, 0, INV, 0 },
			};

			ctrl_ops(&c, setup, 3);
			switch (which) {
			case 0: ctrl_ops(&c, wrap, 4); break;
			case 1: ctrl_ops(&c, past, 5); break;
			case 2: ctrl_ops(&c, queues, 3); break;
			case 3: ctrl_ops(&c, key, 4); break;
			case 4: ctrl_ops(&c, grants, 3); break;
			case 5: ctrl_ops(&c, unknown, 6); break;
			default: {
				struct hostile_ring *r = &c.h->ctrl;

				*hostile_ring_req_prod(r) = r->req_prod_pvt + 0x10000u;
				hostile_vif_notify(c.h, c.h->ctrl_port);
				expect_closing(&c, "ctrl req_prod far ahead");
			}
			}
		}
		if (which < 6)
			expect_connected(&c, "ctrl errors are answered, not fatal");
	}
	case_end(&c);
	if (g0 > 0)
		shim_guest_revoke(g_att, (uint32_t)g0);
	if (g1 > 0)
		shim_guest_revoke(g_att, (uint32_t)g1);
	if (f0)
		shim_guest_page_free(g_att, f0, 1);
	if (f1)
		shim_guest_page_free(g_att, f1, 1);
}

static void ctrl_cases(void)
{
	ctrl_case("ctrl_hash_mapping_offset_wraps_refused", 0);
	ctrl_case("ctrl_hash_mapping_past_128_entries_refused", 1);
	ctrl_case("ctrl_hash_mapping_entry_ge_queues_refused", 2);
	ctrl_case("ctrl_hash_key_longer_than_40_refused", 3);
	ctrl_case("ctrl_bad_grants_refused", 4);
	ctrl_case("ctrl_unknown_types_not_supported", 5);
	ctrl_case("ctrl_req_prod_far_ahead_closes_device", 6);
}

/* ---- notification storms ---- */

struct storm {
	unsigned int port, ms;
	long sent;
};

static void *storm_main(void *arg)
{
	struct storm *s = arg;

	s->sent = hostile_notify_storm(g_att, s->port, s->ms, 0);
	return NULL;
}

/* Bystander throughput: 1514-byte frames guest -> host for ms. Frames per second. */
static double victim_throughput(unsigned int ms)
{
	const struct netfront_stats *st = netfront_stats(victim);
	uint64_t ok0 = st->tx_rsp_okay, t0 = now_us(), end = t0 + (uint64_t)ms * 1000;
	uint8_t f[1514];

	make_frame(f, sizeof(f), host_mac, vic_mac, 0x7777, 0);
	while (now_us() < end) {
		while (netfront_send(victim, 0, f, sizeof(f), NULL) == 0)
			;
		netfront_poll(victim, 1);
	}
	return (double)(st->tx_rsp_okay - ok0) / ((double)(now_us() - t0) / 1e6);
}

static double storm_phase(unsigned int port, unsigned int ms, long *sent)
{
	struct storm s = { port, ms, 0 };
	pthread_t th;
	double fps;

	pthread_create(&th, NULL, storm_main, &s);
	fps = victim_throughput(ms);
	pthread_join(th, NULL);
	*sent += s.sent;
	return fps;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * Storms into the attacked vif's TX, RX and ctrl ports (split channels), each compared
 * with the same storm into a port nobody bound (the attacker's thread costs the same
 * CPU either way), alternated in rounds and compared by median.
 */
static void case_storm(void)
{
	enum { ROUNDS = 3, PHASE_MS = 700, KINDS = 3 };
	const char *name = "notify_storm_tx_rx_ctrl_bounded_cpu_and_bystander_served";
	const char *kind_name[KINDS] = { "tx", "rx", "ctrl" };
	struct hostile_vif_opts o = { .split_evtchn = true, .ctrl_ring = true };
	double nul[ROUNDS], att[KINDS][ROUNDS];
	long cpu[KINDS] = { 0 }, sent[KINDS] = { 0 }, null_sent = 0;
	struct ncase c;
	int void_port;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		unsigned int ports[KINDS] = { (unsigned int)c.h->q[0].tx_port,
					      (unsigned int)c.h->q[0].rx_port,
					      (unsigned int)c.h->ctrl_port };

		void_port = shim_guest_evtchn_alloc_unbound(g_att, 0);
		victim_throughput(200); /* warm up */
		for (int i = 0; i < ROUNDS; i++) {
			nul[i] = storm_phase((unsigned int)void_port, PHASE_MS, &null_sent);
			for (int k = 0; k < KINDS; k++) {
				long cpu0 = hostile_cpu_ms(att_worker);

				att[k][i] = storm_phase(ports[k], PHASE_MS, &sent[k]);
				cpu[k] += hostile_cpu_ms(att_worker) - cpu0;
			}
		}
		qsort(nul, ROUNDS, sizeof(nul[0]), cmp_double);
		for (int k = 0; k < KINDS; k++) {
			double ratio, rate = sent[k] / (ROUNDS * PHASE_MS / 1000.0);
			long pct = cpu[k] * 100 / (ROUNDS * PHASE_MS);

			qsort(att[k], ROUNDS, sizeof(att[k][0]), cmp_double);
			ratio = nul[ROUNDS / 2] > 0 ? att[k][ROUNDS / 2] / nul[ROUNDS / 2] : 0;
			printf("storm %s: %.2f M notifies/s for %d x %d ms; attacked worker CPU %ld ms "
			       "(%ld %% of a core); bystander frames/s (median): storm into an "
			       "unbound port %.0f, into the device's %s port %.0f: %.0f %%%s\n",
			       kind_name[k], rate / 1e6, ROUNDS, PHASE_MS, cpu[k], pct,
			       nul[ROUNDS / 2], kind_name[k], att[k][ROUNDS / 2], ratio * 100,
			       " (reported: the bystander's frames/s through the shim netfront swing "
			       "86-111 % between runs on a quiet 2-core machine)");
			CHECK(rate >= 1e5, "%s: %s storm only %.0f notifies/s", name, kind_name[k], rate);
			CHECK(pct <= STORM_CPU_PCT, "%s: %s storm: worker CPU %ld %% of a core", name,
			      kind_name[k], pct);
		}
		shim_guest_evtchn_close(g_att, (unsigned int)void_port);
		expect_connected(&c, "a storm is not an error");
		raw_tx_ok(name, c.h, c.sock, att_mac);
	}
	case_end(&c);
}

/* ---- xenstore ---- */

/* Keys the backend must refuse: anything but Connected, for a while. */
static void key_case(const char *name, const struct hostile_vif_opts *base,
		     const struct hostile_key *keys, bool expect_connect)
{
	struct hostile_vif_opts o = *base;
	struct ncase c;
	int st = -1;

	if (!selected(name))
		return;
	o.keys = keys;
	if (case_begin(&c, name, &o, false)) {
		hostile_vif_wait(c.h, 1u << XenbusStateConnected | 1u << XenbusStateClosing |
					      1u << XenbusStateClosed,
				 expect_connect ? 3000 : 1500, &st);
		if (expect_connect) {
			CHECK(st == XenbusStateConnected, "%s: backend state %d, expected Connected",
			      name, st);
			if (st == XenbusStateConnected)
				raw_tx_ok(name, c.h, c.sock, att_mac);
		} else {
			CHECK(st == XenbusStateClosing || st == XenbusStateInitWait ||
				      st == XenbusStateClosed,
			      "%s: the backend is in state %d, expected refused (Closing)", name, st);
		}
	}
	case_end(&c);
}

static void xenstore_cases(void)
{
	static char huge[4097], big[1801];
	const struct hostile_vif_opts one = { 0 }, two = { .queues = 2 },
				      split = { .split_evtchn = true };
	const struct hostile_key q0[] = { { "multi-queue-num-queues", "0" }, { NULL, NULL } };
	const struct hostile_key q1000[] = { { "multi-queue-num-queues", "1000" }, { NULL, NULL } };
	const struct hostile_key qx[] = { { "multi-queue-num-queues", "x" }, { NULL, NULL } };
	const struct hostile_key q1missing[] = { { "queue-1/tx-ring-ref", NULL }, { NULL, NULL } };
	const struct hostile_key evt_nan[] = { { "event-channel", "seven" }, { NULL, NULL } };
	const struct hostile_key evt_neg[] = { { "event-channel", "-1" }, { NULL, NULL } };
	const struct hostile_key rx_half[] = { { "event-channel-rx", NULL }, { NULL, NULL } };
	const struct hostile_key ref_nan[] = { { "tx-ring-ref", "12abc" }, { NULL, NULL } };
	const struct hostile_key ref_gone[] = { { "rx-ring-ref", NULL }, { NULL, NULL } };
	const struct hostile_key ref_bad[] = { { "tx-ring-ref", "60000" }, { NULL, NULL } };
	const struct hostile_key copy0[] = { { "request-rx-copy", "0" }, { NULL, NULL } };
	const struct hostile_key copy_gone[] = { { "request-rx-copy", NULL }, { NULL, NULL } };
	const struct hostile_key notify0[] = { { "feature-rx-notify", "0" }, { NULL, NULL } };
	const struct hostile_key sg2[] = { { "feature-sg", "2" }, { NULL, NULL } };
	const struct hostile_key gso_huge[] = { { "feature-gso-tcpv4", "99999999999999999999" },
						{ NULL, NULL } };
	const struct hostile_key unknown[] = { { "feature-frobnicate", "1" },
					       { "feature-xdp-headroom", "7" }, { NULL, NULL } };
	struct hostile_key huge_ref[] = { { "tx-ring-ref", huge }, { NULL, NULL } };
	struct hostile_key huge_feat[] = { { "feature-sg", huge }, { NULL, NULL } };
	struct hostile_key big_ref[] = { { "tx-ring-ref", big }, { NULL, NULL } };
	struct hostile_key big_feat[] = { { "feature-sg", big }, { NULL, NULL } };
	struct hostile_key big_unknown[] = { { "feature-frobnicate", big }, { NULL, NULL } };

	memset(huge, '9', sizeof(huge) - 1);
	memset(big, '1', sizeof(big) - 1);
	key_case("xenstore_num_queues_0_refused", &one, q0, false);
	key_case("xenstore_num_queues_1000_refused", &one, q1000, false);
	key_case("xenstore_num_queues_not_a_number_refused", &one, qx, false);
	key_case("xenstore_queue_dir_missing_keys_refused", &two, q1missing, false);
	key_case("xenstore_event_channel_not_a_number_refused", &one, evt_nan, false);
	key_case("xenstore_event_channel_negative_refused", &one, evt_neg, false);
	key_case("xenstore_split_event_channel_half_missing_refused", &split, rx_half, false);
	key_case("xenstore_tx_ring_ref_garbage_refused", &one, ref_nan, false);
	key_case("xenstore_rx_ring_ref_missing_refused", &one, ref_gone, false);
	key_case("xenstore_tx_ring_ref_not_granted_refused", &one, ref_bad, false);
	key_case("xenstore_request_rx_copy_0_refused", &one, copy0, false);
	key_case("xenstore_request_rx_copy_absent_refused", &one, copy_gone, false);
	key_case("xenstore_feature_rx_notify_0_refused", &one, notify0, false);
	key_case("xenstore_feature_value_2_refused", &one, sg2, false);
	key_case("xenstore_feature_value_huge_refused", &one, gso_huge, false);
	key_case("xenstore_unknown_features_ignored_connects", &one, unknown, true);
	/* 4 KiB values: past the xenstored's record size, refused at the store (E2BIG)
	 * or by the backend; then the biggest a guest can write (as hostile_blk). */
	store_may_refuse = true;
	key_case("xenstore_4k_ring_ref_value_refused", &one, huge_ref, false);
	key_case("xenstore_4k_feature_value_refused", &one, huge_feat, false);
	store_may_refuse = false;
	key_case("xenstore_1800_byte_ring_ref_value_refused", &one, big_ref, false);
	key_case("xenstore_1800_byte_feature_value_refused", &one, big_feat, false);
	key_case("xenstore_1800_byte_unknown_key_ignored_connects", &one, big_unknown, true);
}

/* The frontend's state flaps hundreds of times a second; afterwards a well-behaved
 * frontend connects to the same device and passes frames. */
static void case_flapping(void)
{
	const char *name = "xenstore_state_flapping_survived";
	struct hostile_vif_opts o = { 0 };
	struct hostile_vif *h2 = NULL;
	struct ncase c;
	uint64_t t0;
	int n = 0, rc, st = -1;

	if (!selected(name))
		return;
	if (case_begin(&c, name, &o, true)) {
		const int seq[] = { XenbusStateInitialising, XenbusStateInitialised,
				    XenbusStateConnected, XenbusStateClosing, XenbusStateInitialised,
				    XenbusStateClosed, XenbusStateInitialising, XenbusStateConnected };

		t0 = now_us();
		while (now_us() - t0 < 1500000) {
			hostile_vif_set_state(c.h, seq[n % 8]);
			n++;
		}
		printf("%s: %d state writes in 1.5 s (%.0f/s)\n", name, n, n / 1.5);
		CHECK(n >= 300, "%s: only %d state changes", name, n);
		hostile_vif_close(c.h);
		c.h = NULL;
		/* A frontend starting over says Initialising first, and again on each try:
		 * a late event of the flapping can still make the backend try the old
		 * frontend's rings and close, and a closed backend waits for Initialising
		 * (as in hostile_blk's flapping case). */
		for (int tries = 0; tries < 3 && st != XenbusStateConnected; tries++) {
			char fe[128];
			struct xs_handle *xs = shim_guest_xs_open(g_att);

			snprintf(fe, sizeof(fe), "/local/domain/%u/device/vif/%u", ATTACKER, c.devid);
			CHECK(xs && xenbus_switch_state(xs, XBT_NULL, fe, XenbusStateInitialising) == 0,
			      "%s: state Initialising", name);
			if (xs)
				xs_close(xs);
			if (h2)
				hostile_vif_close(h2);
			h2 = NULL;
			st = -1;
			rc = hostile_vif_open(&h2, g_att, c.devid, &o);
			if (rc) {
				h2 = NULL;
				continue;
			}
			hostile_vif_wait(h2, 1u << XenbusStateConnected, 5000, &st);
			if (st != XenbusStateConnected)
				printf("%s: try %d: backend state %d, not Connected\n", name, tries + 1,
				       st);
		}
		CHECK(h2 != NULL, "%s: a frontend can't connect after the flapping", name);
		if (h2) {
			CHECK(st == XenbusStateConnected, "%s: state %d after reconnecting", name, st);
			if (st == XenbusStateConnected)
				raw_tx_ok(name, h2, c.sock, att_mac);
		}
		c.h = h2;
	}
	case_end(&c);
}

/* ---- set-up ---- */

static int start_splitpvd(void)
{
	char bin[PATH_MAX], n1[16], n2[16], n3[16];
	const char *build = getenv("SPLITPV_BUILD");

	snprintf(bin, sizeof(bin), "%s/bin/splitpvd", build ? build : "build/default");
	if (access(bin, X_OK) != 0)
		return -ENOENT;
	snprintf(n1, sizeof(n1), "%d", RXQ_PKTS);
	snprintf(n2, sizeof(n2), "%d", RXQ_BYTES);
	snprintf(n3, sizeof(n3), "%d", RX_STALL_MS);
	splitpvd = fork();
	if (splitpvd == 0) {
		int log = open(worker_log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);

		if (log >= 0)
			dup2(log, STDERR_FILENO);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl(bin, "splitpvd", "--", "--max-queues", "2", "--rx-queue-pkts", n1,
		      "--rx-queue-bytes", n2, "--rx-stall-ms", n3, "--rx-drain-ms", "5000",
		      (char *)NULL);
		_exit(127);
	}
	return splitpvd < 0 ? -errno : 0;
}

static void on_signal(int sig)
{
	if (splitpvd > 0)
		kill(splitpvd, SIGTERM);
	if (shim.pid > 0)
		kill(shim.pid, SIGTERM);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void write_file(const char *path, const char *v)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (write(fd, v, strlen(v)) < 0)
			perror(path);
		close(fd);
	}
}

static int setup(const char *argv0)
{
	struct shim_ts_config cfg = { 0 };
	struct hostile_vif_opts so = { 0 };
	struct netfront_opts no;
	char be[128], ifname[IFNAMSIZ];
	unsigned int vdev = 0;
	int rc, st = -1;

	rc = shim_harness_start(&shim, argv0);
	if (rc) {
		printf("SKIP: can't start splitpv-shim: %s\n", strerror(-rc));
		return rc == -ENOENT ? 77 : 1;
	}
	snprintf(worker_log, sizeof(worker_log), "%s/splitpvd.log", shim.rundir);
#ifdef __SANITIZE_ADDRESS__
	{
		char opts[512];
		const char *old = getenv("ASAN_OPTIONS");

		snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=%d", old ? old : "",
			 old && *old ? ":" : "", ASAN_QUARANTINE_MB);
		setenv("ASAN_OPTIONS", opts, 1);
	}
#endif
	rc = start_splitpvd();
	if (rc) {
		printf("SKIP: splitpvd not built\n");
		return 77;
	}
	cfg.rundir = shim.rundir;
	cfg.script_dir = "tools/hotplug";
	rc = shim_ts_open(&ts, &cfg);
	rc = rc ?: shim_ts_domain_create(ts, ATTACKER, NULL);
	rc = rc ?: shim_ts_domain_create(ts, BYSTANDER, NULL);
	rc = rc ?: shim_guest_create(&g_att, shim.rundir, ATTACKER, 16384, 16384);
	rc = rc ?: shim_guest_create(&g_vic, shim.rundir, BYSTANDER, 8192, 8192);
	CHECK(rc == 0, "toolstack, domains and guests: %s", strerror(-rc));
	/* The bystander: another guest, an ordinary netfront, its own worker. */
	rc = rc ?: nic_attach(BYSTANDER, -1, vic_mac, &vdev);
	netfront_opts_default(&no);
	rc = rc ?: netfront_open(&victim, g_vic, vdev, &no);
	CHECK(rc == 0, "bystander vif: %s", strerror(-rc));
	if (rc)
		return 1;
	snprintf(ifname, sizeof(ifname), "vif%u.%u", BYSTANDER, vdev);
	victim_sock = host_sock(ifname);
	CHECK(victim_sock >= 0, "packet socket on %s", ifname);
	/* The sibling: the attacker guest's other vif, in the attacked worker. */
	rc = nic_attach(ATTACKER, 9, sib_mac, &sib_devid);
	rc = rc ?: hostile_vif_open(&sib, g_att, sib_devid, &so);
	rc = rc ?: hostile_vif_wait(sib, 1u << XenbusStateConnected, 5000, &st);
	CHECK(rc == 0, "sibling vif: %s (state %d)", strerror(-rc), st);
	if (rc || victim_sock < 0)
		return 1;
	snprintf(ifname, sizeof(ifname), "vif%u.%u", ATTACKER, sib_devid);
	sib_sock = host_sock(ifname);
	be_path(be, sizeof(be), ATTACKER, sib_devid);
	att_worker = hostile_worker_pid(splitpvd, be);
	CHECK(sib_sock >= 0 && att_worker > 0, "sibling's tap socket and worker");
	if (sib_sock < 0 || att_worker <= 0)
		return 1;
	if (!bystander_ok("setup") || !sibling_ok("setup"))
		return 1;
	return 0;
}

int main(int argc, char **argv)
{
	int rc;

	only = argc > 1 ? argv[1] : NULL;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("SKIP: needs root for network namespaces and tap devices\n");
		return 77;
	}
	if (access("/dev/net/tun", R_OK | W_OK) != 0) {
		printf("SKIP: no /dev/net/tun\n");
		return 77;
	}
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("sysfs", "/sys", "sysfs", 0, NULL) != 0) {
		printf("SKIP: can't create network and mount namespaces: %s\n", strerror(errno));
		return 77;
	}
	/* No IPv6 chatter (router solicitations, MLD) into the guests' RX rings. */
	write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	rc = setup(argv[0]);
	if (rc == 77)
		goto out;
	if (rc)
		goto out;

	case_storm(); /* first: the load average must not include our own spinning threads */
	case_tx_slots_over_legacy_max();
	case_tx_slots_fatal();
	tx_chain_cases();
	case_tx_batch_mixed();
	case_tx_max_size_frame();
	case_tx_split_headers();
	gso_content_case("tx_two_gso_extras_last_wins_sent", IPPROTO_TCP, 1200, 536, 2, true,
			 XEN_NETIF_GSO_TYPE_TCPV4);
	gso_content_case("tx_many_extras_answered_null_sent", IPPROTO_TCP, 1200, 536, 40, true,
			 XEN_NETIF_GSO_TYPE_TCPV4);
	gso_content_case("tx_gso_on_udp_frame_dropped", IPPROTO_UDP, 1200, 536, 1, false,
			 XEN_NETIF_GSO_TYPE_TCPV4);
	gso_content_case("tx_gso_tcpv6_on_ipv4_frame_dropped", IPPROTO_TCP, 1200, 536, 1, false,
			 XEN_NETIF_GSO_TYPE_TCPV6);
	gso_content_case("tx_gso_without_payload_dropped", IPPROTO_TCP, 54, 536, 1, false,
			 XEN_NETIF_GSO_TYPE_TCPV4);
	gso_content_case("tx_gso_size_larger_than_frame_survived", IPPROTO_TCP, 300, 9000, 1, true,
			 XEN_NETIF_GSO_TYPE_TCPV4);
	grant_case("tx_grant_invalid_answered_error", GRANT_INVALID);
	grant_case("tx_grant_revoked_answered_error", GRANT_REVOKED);
	grant_case("tx_grant_for_another_domain_answered_error", GRANT_OTHER_DOMAIN);
	grant_case("tx_grant_readonly_is_enough_sent", GRANT_READONLY);
	case_double_fetch();
	case_double_fetch_extra();
	case_tx_prod("ring_tx_req_prod_far_ahead_closes_device", 0);
	case_tx_prod("ring_tx_req_prod_backwards_closes_device", 1);
	case_tx_prod("ring_tx_req_prod_bogus_at_connect_closes_device", 2);
	case_tx_prod("ring_tx_req_prod_far_ahead_on_queue_1_closes_device", 3);
	case_tx_ring_full();
	case_rx_no_buffers_flood();
	case_rx_bad_grants();
	case_rx_prod("ring_rx_req_prod_far_ahead_closes_device", false);
	case_rx_prod("ring_rx_req_prod_backwards_closes_device", true);
	ctrl_cases();
	xenstore_cases();
	case_flapping();
out:
	if (sib)
		hostile_vif_close(sib);
	if (victim)
		netfront_close(victim);
	if (victim_sock >= 0)
		close(victim_sock);
	if (sib_sock >= 0)
		close(sib_sock);
	shim_guest_destroy(g_att);
	shim_guest_destroy(g_vic);
	shim_ts_close(ts);
	if (splitpvd > 0) {
		kill(splitpvd, SIGTERM);
		waitpid(splitpvd, NULL, 0);
	}
	if (failures) {
		FILE *f = fopen(worker_log, "r");
		char line[1024];

		fprintf(stderr, "---- splitpvd and worker log ----\n");
		while (f && fgets(line, sizeof(line), f))
			fputs(line, stderr);
		if (f)
			fclose(f);
	}
	if (getenv("HOSTILE_KEEP_LOG"))
		printf("worker log kept: %s\n", worker_log);
	else
		unlink(worker_log);
	shim_harness_stop(&shim);
	if (rc == 77)
		return 77;
	printf("%s: %d case(s), %d failure(s)\n", failures ? "FAIL" : "PASS", cases, failures);
	return failures || rc ? 1 : 0;
}
