/*
 * splitpv-guest — a simulated guest: creates domain DOMID in the shim (its memory,
 * grant table and event channels live as long as this process) and drives its
 * frontends, one after the other in the order given. Used by `make demo` and by hand.
 *
 *   splitpv-guest [--rundir DIR] --domid N [options] {disk VDEV | nic DEVID}...
 *     disk: connects the userspace blkfront to device/vbd/<VDEV>, prints what was
 *     negotiated, writes and verifies data, and measures throughput.
 *     nic: connects the userspace netfront to device/vif/<DEVID> and prints what was
 *     negotiated. With --netns NS (root): the NIC becomes tap "eth0" in network
 *     namespace NS with --addr, the guest pings --peer and moves a verified TCP
 *     payload to and from it (the peer's side runs in this process's own namespace).
 *     Without: it sends UDP frames through the backend and counts the answers.
 */
#include "frontend-shim/blkfront.h"
#include "frontend-shim/guest.h"
#include "frontend-shim/netfront.h"
#include "frontend-shim/toolstack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void pattern(uint8_t *buf, size_t len, uint64_t block)
{
	uint64_t s = block * 0x9E3779B97F4A7C15ull + 1;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t v = rnd(&s);

		memcpy(buf + i, &v, 8);
	}
}

struct qd_state {
	unsigned int done;
	unsigned int errors;
};

static void qd_done(struct blkfront_io *io)
{
	struct qd_state *st = io->opaque;

	st->done++;
	if (io->status != BLKIF_RSP_OKAY)
		st->errors++;
}

/* Random 4 KiB reads at queue depth qd for secs seconds; returns IOPS. */
static double random_read_iops(struct blkfront *bf, uint64_t span_sectors, unsigned int qd,
			       double secs, unsigned int *errors)
{
	struct blkfront_io *ios = calloc(qd, sizeof(*ios));
	uint8_t *bufs = malloc((size_t)qd * 4096);
	struct qd_state st = { 0, 0 };
	uint64_t seed = 42, submitted = 0;
	double t0 = now_s(), t;

	for (unsigned int i = 0; i < qd; i++) {
		ios[i] = (struct blkfront_io){ .op = BF_READ, .len = 4096, .buf = bufs + i * 4096,
					       .done = qd_done, .opaque = &st, .queue = i,
					       .status = 99 /* in flight */ };
		ios[i].sector = (rnd(&seed) % (span_sectors / 8)) * 8;
		if (blkfront_submit(bf, &ios[i]) == 0)
			submitted++;
	}
	blkfront_kick(bf);
	while ((t = now_s()) - t0 < secs) {
		unsigned int before = st.done;

		if (blkfront_poll(bf, 100) < 0)
			break;
		/* resubmit the ones that completed (their slots are free again) */
		for (unsigned int i = 0; i < qd && st.done != before; i++) {
			if (ios[i].status != 99) { /* completed: reuse it */
				ios[i].status = 99;
				ios[i].sector = (rnd(&seed) % (span_sectors / 8)) * 8;
				if (blkfront_submit(bf, &ios[i]) == 0)
					submitted++;
			}
		}
		blkfront_kick(bf);
	}
	while (blkfront_inflight(bf))
		blkfront_poll(bf, 100);
	*errors = st.errors;
	free(ios);
	free(bufs);
	return st.done / (now_s() - t0);
}

static int disk_demo(struct shim_guest *g, const char *vdev, const struct blkfront_opts *o,
		     unsigned int size_mb)
{
	const struct blkfront_info *in;
	struct blkfront *bf;
	unsigned int devid, errors = 0;
	size_t chunk, bytes;
	uint8_t *buf, *rd;
	double t, wr_mbs, rd_mbs, iops;
	uint64_t mismatches = 0;
	int rc;

	if (shim_vdev_to_devid(vdev, &devid) != 0) {
		fprintf(stderr, "splitpv-guest: bad vdev '%s'\n", vdev);
		return 2;
	}
	rc = blkfront_open(&bf, g, devid, o);
	if (rc) {
		fprintf(stderr, "splitpv-guest: connecting %s: %s\n", vdev, strerror(-rc));
		return 1;
	}
	in = blkfront_info(bf);
	printf("guest %u: %s connected: %llu sectors of %u bytes (%.0f MiB)%s\n",
	       shim_guest_domid(g), vdev, (unsigned long long)in->sectors, in->sector_size,
	       (double)in->sectors * in->sector_size / 1048576.0, in->readonly ? ", read-only" : "");
	printf("  negotiated: %u queue(s), ring-page-order %u, indirect segments %u, "
	       "persistent grants %s, protocol %s\n",
	       in->queues, in->ring_order, in->max_indirect, in->persistent ? "yes" : "no",
	       o->abi == BLKIF_ABI_X86_32 ? "x86_32-abi" : "x86_64-abi");
	printf("  backend offers: flush %s, barrier %s, discard %s (granularity %u)\n",
	       in->flush ? "yes" : "no", in->barrier ? "yes" : "no", in->discard ? "yes" : "no",
	       in->discard_granularity);

	bytes = (size_t)size_mb << 20;
	if (bytes > in->sectors * in->sector_size)
		bytes = in->sectors * in->sector_size;
	chunk = blkfront_max_io(bf) / 4096 * 4096;
	buf = malloc(chunk);
	rd = malloc(chunk);

	t = now_s();
	for (size_t off = 0; off < bytes; off += chunk) {
		size_t n = bytes - off < chunk ? bytes - off : chunk;

		pattern(buf, n, off);
		if ((rc = blkfront_write(bf, off / 512, buf, n)) != 0)
			break;
	}
	rc = rc ?: blkfront_flush(bf);
	wr_mbs = bytes / 1048576.0 / (now_s() - t);
	t = now_s();
	for (size_t off = 0; off < bytes && !rc; off += chunk) {
		size_t n = bytes - off < chunk ? bytes - off : chunk;

		if ((rc = blkfront_read(bf, off / 512, rd, n)) != 0)
			break;
		pattern(buf, n, off);
		if (memcmp(buf, rd, n) != 0)
			mismatches++;
	}
	rd_mbs = bytes / 1048576.0 / (now_s() - t);
	free(buf);
	free(rd);
	if (rc) {
		fprintf(stderr, "splitpv-guest: I/O error: %s\n", strerror(-rc));
		blkfront_close(bf);
		return 1;
	}
	printf("  wrote and verified %zu MiB in %zu KiB requests: %s\n", bytes >> 20, chunk >> 10,
	       mismatches ? "MISMATCH" : "all data correct");
	printf("  sequential write %.0f MiB/s, sequential read %.0f MiB/s\n", wr_mbs, rd_mbs);
	iops = random_read_iops(bf, bytes / 512, 32, 2.0, &errors);
	printf("  random 4 KiB reads at queue depth 32: %.0f IOPS (%u errors)\n", iops, errors);
	blkfront_close(bf);
	return mismatches || errors ? 1 : 0;
}

/* ---- nic ---- */

struct nic_opts {
	const char *netns;    /* guest namespace for the tap (NULL: API-only demo) */
	const char *addr;     /* "10.99.0.2/24" */
	const char *peer;     /* the host side's address */
	const char *mac;      /* the tap's MAC (the vif's) */
	unsigned int tcp_mb;  /* each way */
};

/* Run argv (no shell); 0 if it exited 0. */
static int run(char *const argv[])
{
	int st;
	pid_t pid = fork();

	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* Move the calling thread into network namespace name. 0 or -errno. */
static int ns_enter(const char *name)
{
	char path[256];
	int fd, rc = 0;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (setns(fd, CLONE_NEWNET) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* The guest's NIC as tap "eth0" (vnet header, offloads on) inside namespace name. */
static int tap_in_ns(const char *name)
{
	struct ifreq ifr;
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), fd = -1, rc;

	if (self < 0)
		return -errno;
	rc = ns_enter(name);
	if (rc == 0) {
		fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth0");
		ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
		if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0 ||
		    ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) < 0) {
			rc = -errno;
			if (fd >= 0)
				close(fd);
			fd = -1;
		}
		if (setns(self, CLONE_NEWNET) != 0 && !rc)
			rc = -errno;
	}
	close(self);
	return fd >= 0 && !rc ? fd : rc ? rc : -EIO;
}

struct pump {
	struct netfront *nf;
	int tapfd, rc;
	volatile bool stop;
};

static void *pump_main(void *arg)
{
	struct pump *p = arg;

	p->rc = netfront_tap_pump(p->nf, p->tapfd, &p->stop);
	return NULL;
}

static uint16_t icmp_csum(const uint8_t *b, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(b[i] << 8 | b[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

struct guest_job {
	const struct nic_opts *no;
	int replies;
	int rc;               /* TCP: 0 = sent and verified what came back */
	double up_s, down_s;
};

/* In the guest's namespace: 4 echo requests to the peer, printing each reply. */
static void *ping_main(void *arg)
{
	struct guest_job *j = arg;
	struct sockaddr_in a = { .sin_family = AF_INET };
	int s;

	if (ns_enter(j->no->netns) != 0 || (s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)) < 0)
		return NULL;
	inet_pton(AF_INET, j->no->peer, &a.sin_addr);
	for (int i = 0; i < 4; i++) {
		uint8_t pkt[64], in[1500];
		struct icmphdr *h = (struct icmphdr *)pkt;
		double t0 = now_s();

		memset(pkt, 0x5a, sizeof(pkt));
		h->type = ICMP_ECHO;
		h->code = 0;
		h->checksum = 0;
		h->un.echo.id = htons(0x5170);
		h->un.echo.sequence = htons((uint16_t)i);
		h->checksum = icmp_csum(pkt, sizeof(pkt));
		sendto(s, pkt, sizeof(pkt), 0, (struct sockaddr *)&a, sizeof(a));
		while (now_s() - t0 < 2) {
			struct pollfd pfd = { .fd = s, .events = POLLIN };
			ssize_t n;

			if (poll(&pfd, 1, 100) <= 0)
				continue;
			n = recv(s, in, sizeof(in), 0);
			if (n >= 28) {
				const struct icmphdr *r = (const void *)(in + (in[0] & 15) * 4);

				if (r->type == ICMP_ECHOREPLY && r->un.echo.id == htons(0x5170) &&
				    r->un.echo.sequence == htons((uint16_t)i)) {
					printf("  64 bytes from %s: icmp_seq=%d time=%.3f ms\n",
					       j->no->peer, i, (now_s() - t0) * 1e3);
					j->replies++;
					break;
				}
			}
		}
		usleep(200000);
	}
	close(s);
	return NULL;
}

static int send_all(int s, uint64_t bytes, uint64_t seed)
{
	static __thread uint8_t buf[65536];

	for (uint64_t off = 0; off < bytes; off += sizeof(buf)) {
		pattern(buf, sizeof(buf), seed + off);
		for (size_t done = 0; done < sizeof(buf);) {
			ssize_t w = send(s, buf + done, sizeof(buf) - done, MSG_NOSIGNAL);

			if (w <= 0)
				return -EIO;
			done += (size_t)w;
		}
	}
	return 0;
}

static int recv_verify(int s, uint64_t bytes, uint64_t seed)
{
	static __thread uint8_t buf[65536], want[65536];

	for (uint64_t off = 0; off < bytes; off += sizeof(buf)) {
		for (size_t got = 0; got < sizeof(buf);) {
			ssize_t r = recv(s, buf + got, sizeof(buf) - got, 0);

			if (r <= 0)
				return -EIO;
			got += (size_t)r;
		}
		pattern(want, sizeof(want), seed + off);
		if (memcmp(buf, want, sizeof(buf)) != 0)
			return -EBADMSG;
	}
	return 0;
}

/* In the guest's namespace: connect to the peer, send, then receive and verify. */
static void *tcp_main(void *arg)
{
	struct guest_job *j = arg;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(5001) };
	struct timeval tv = { 20, 0 };
	uint64_t bytes = (uint64_t)j->no->tcp_mb << 20;
	double t;
	int s;

	j->rc = -EIO;
	if (ns_enter(j->no->netns) != 0 || (s = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return NULL;
	inet_pton(AF_INET, j->no->peer, &a.sin_addr);
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0) {
		t = now_s();
		j->rc = send_all(s, bytes, 1);
		shutdown(s, SHUT_WR);
		j->up_s = now_s() - t;
		t = now_s();
		j->rc = j->rc ?: recv_verify(s, bytes, 2);
		j->down_s = now_s() - t;
	}
	close(s);
	return NULL;
}

/* The peer's side, in our own namespace: accept, verify what comes, send back. */
static int tcp_peer(const struct nic_opts *no, struct guest_job *j)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(5001) };
	struct timeval tv = { 20, 0 };
	uint64_t bytes = (uint64_t)no->tcp_mb << 20;
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), s = -1, one = 1, rc = -EIO;
	pthread_t th;

	inet_pton(AF_INET, no->peer, &a.sin_addr);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 1) != 0) {
		rc = -errno;
		fprintf(stderr, "splitpv-guest: listening on %s:5001: %s\n", no->peer, strerror(errno));
		goto out;
	}
	setsockopt(ls, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	pthread_create(&th, NULL, tcp_main, j);
	s = accept(ls, NULL, NULL);
	if (s >= 0) {
		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		rc = recv_verify(s, bytes, 1);
		rc = rc ?: send_all(s, bytes, 2);
		shutdown(s, SHUT_WR);
	}
	pthread_join(th, NULL);
	rc = rc ?: j->rc;
out:
	if (s >= 0)
		close(s);
	if (ls >= 0)
		close(ls);
	return rc;
}

/* No namespace: UDP broadcasts straight through the netfront API. */
static int nic_api_demo(struct netfront *nf)
{
	static const uint8_t hdr[42] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x16, 0x3e, 0x00, 0x00, 0x01, 0x08, 0x00,
		0x45, 0x00, 0x00, 0x1c + 64, 0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0,
		0xff, 0xff, 0xff, 0xff, 0x13, 0x88, 0x13, 0x88, 0x00, 0x08 + 64, 0, 0,
	};
	uint8_t frame[42 + 64];
	const struct netfront_stats *st = netfront_stats(nf);
	unsigned int sent = 0;
	double t0 = now_s();

	memcpy(frame, hdr, sizeof(hdr));
	memset(frame + sizeof(hdr), 0x5a, 64);
	while (sent < 1000 && now_s() - t0 < 5) {
		int rc = netfront_send(nf, sent, frame, sizeof(frame), NULL);

		if (rc == -EAGAIN) {
			netfront_poll(nf, 10);
			continue;
		}
		if (rc)
			return 1;
		sent++;
	}
	while (st->tx_rsp_okay + st->tx_rsp_error < st->tx_frames && now_s() - t0 < 5)
		netfront_poll(nf, 10);
	printf("  sent %u UDP broadcast frames through the backend: %llu answered OKAY, %llu "
	       "errors\n",
	       sent, (unsigned long long)st->tx_rsp_okay, (unsigned long long)st->tx_rsp_error);
	return st->tx_rsp_okay == sent ? 0 : 1;
}

static int nic_demo(struct shim_guest *g, const char *devid_s, const struct nic_opts *no)
{
	struct netfront_opts o;
	struct netfront *nf = NULL;
	struct pump pump = { .tapfd = -1 };
	struct guest_job j = { .no = no };
	pthread_t pth, th;
	char *end;
	unsigned long devid = strtoul(devid_s, &end, 10);
	int rc;

	if (*end || end == devid_s || devid > 0xffff) {
		fprintf(stderr, "splitpv-guest: bad nic devid '%s'\n", devid_s);
		return 2;
	}
	netfront_opts_default(&o);
	o.queues = 2;
	o.mcast_ctrl = true;
	rc = netfront_open(&nf, g, (unsigned int)devid, &o);
	if (rc) {
		fprintf(stderr, "splitpv-guest: connecting vif %lu: %s\n", devid, strerror(-rc));
		return 1;
	}
	printf("guest %u: vif %lu connected: %u queue(s), ctrl ring %s, split event channels, "
	       "rx-copy, SG, GSO TCPv4/v6, checksum offload, multicast control\n",
	       shim_guest_domid(g), devid, netfront_queues(nf), netfront_has_ctrl(nf) ? "yes" : "no");
	if (!no->netns) {
		rc = nic_api_demo(nf);
		netfront_close(nf);
		return rc;
	}
	pump.nf = nf;
	pump.tapfd = tap_in_ns(no->netns);
	if (pump.tapfd < 0) {
		fprintf(stderr, "splitpv-guest: tap in namespace %s: %s\n", no->netns,
			strerror(-pump.tapfd));
		netfront_close(nf);
		return 1;
	}
	{
		char *up[] = { "ip", "-n", (char *)no->netns, "link", "set", "eth0", "up", NULL };
		char *lo[] = { "ip", "-n", (char *)no->netns, "link", "set", "lo", "up", NULL };
		char *mac[] = { "ip", "-n", (char *)no->netns, "link", "set", "eth0", "address",
				(char *)no->mac, NULL };
		char *ad[] = { "ip", "-n", (char *)no->netns, "addr", "add", (char *)no->addr,
			       "dev", "eth0", NULL };

		rc = run(lo);
		rc = rc ?: no->mac ? run(mac) : 0;
		rc = rc ?: run(ad);
		rc = rc ?: run(up);
	}
	if (rc) {
		fprintf(stderr, "splitpv-guest: configuring eth0 in %s failed\n", no->netns);
		goto out;
	}
	printf("  the NIC is eth0 (%s) in network namespace %s, frames pumped by netfront\n",
	       no->addr, no->netns);
	pthread_create(&pth, NULL, pump_main, &pump);
	printf("  guest pings %s:\n", no->peer);
	pthread_create(&th, NULL, ping_main, &j);
	pthread_join(th, NULL);
	printf("  %d/4 replies\n", j.replies);
	rc = j.replies > 0 ? 0 : 1;
	if (!rc && no->tcp_mb) {
		rc = tcp_peer(no, &j);
		if (rc)
			printf("  TCP with %s: %s\n", no->peer, strerror(-rc));
		else
			printf("  TCP: %u MiB guest -> host in %.2f s (%.0f MiB/s), %u MiB host -> "
			       "guest in %.2f s (%.0f MiB/s), every byte verified\n",
			       no->tcp_mb, j.up_s, no->tcp_mb / j.up_s, no->tcp_mb, j.down_s,
			       no->tcp_mb / j.down_s);
	}
	pump.stop = true;
	pthread_join(pth, NULL);
out:
	printf("  netfront: %llu frames sent, %llu received\n",
	       (unsigned long long)netfront_stats(nf)->tx_frames,
	       (unsigned long long)netfront_stats(nf)->rx_frames);
	close(pump.tapfd);
	netfront_close(nf);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: splitpv-guest [--rundir DIR] --domid N [--mem-mb M] [--queues N]\n"
		   "         [--ring-order N] [--indirect N] [--no-persistent] [--x86-32]\n"
		   "         [--size-mb M] [--netns NS --addr A/LEN --peer IP [--mac MAC]\n"
		   "         [--tcp-mb M]] {disk VDEV | nic DEVID}...\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "rundir", required_argument, NULL, 'r' },
		{ "domid", required_argument, NULL, 'd' },
		{ "mem-mb", required_argument, NULL, 'm' },
		{ "queues", required_argument, NULL, 'q' },
		{ "ring-order", required_argument, NULL, 'o' },
		{ "indirect", required_argument, NULL, 'i' },
		{ "no-persistent", no_argument, NULL, 'P' },
		{ "x86-32", no_argument, NULL, '3' },
		{ "size-mb", required_argument, NULL, 's' },
		{ "netns", required_argument, NULL, 'n' },
		{ "addr", required_argument, NULL, 'a' },
		{ "peer", required_argument, NULL, 'p' },
		{ "mac", required_argument, NULL, 'M' },
		{ "tcp-mb", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *rundir = getenv("SPLITPV_SHIM");
	unsigned int domid = 0, mem_mb = 256, size_mb = 64;
	struct nic_opts no = { .addr = "10.99.0.2/24", .peer = "10.99.0.1", .tcp_mb = 64 };
	struct blkfront_opts o;
	struct shim_guest *g;
	int c, rc = 0;

	blkfront_opts_default(&o);
	o.queues = 2;
	o.ring_order = 4;
	o.max_indirect = 256;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r': rundir = optarg; break;
		case 'd': domid = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'm': mem_mb = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'q': o.queues = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'o': o.ring_order = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'i': o.max_indirect = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'P': o.persistent = false; break;
		case '3': o.abi = BLKIF_ABI_X86_32; break;
		case 's': size_mb = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'n': no.netns = optarg; break;
		case 'a': no.addr = optarg; break;
		case 'p': no.peer = optarg; break;
		case 'M': no.mac = optarg; break;
		case 't': no.tcp_mb = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!rundir || !domid || argc - optind < 2 || (argc - optind) % 2) {
		usage(stderr);
		return 2;
	}
	for (int i = optind; i < argc; i += 2)
		if (strcmp(argv[i], "disk") != 0 && strcmp(argv[i], "nic") != 0) {
			usage(stderr);
			return 2;
		}
	signal(SIGPIPE, SIG_IGN);
	rc = shim_guest_create(&g, rundir, domid, mem_mb * 256, 65536);
	if (rc) {
		fprintf(stderr, "splitpv-guest: creating domain %u: %s\n", domid, strerror(-rc));
		return 1;
	}
	/* Each device in turn; the exit status is the first failure's. */
	for (int i = optind; i < argc; i += 2) {
		int r = strcmp(argv[i], "disk") == 0 ? disk_demo(g, argv[i + 1], &o, size_mb)
						      : nic_demo(g, argv[i + 1], &no);

		rc = rc ?: r;
	}
	shim_guest_destroy(g);
	return rc;
}
