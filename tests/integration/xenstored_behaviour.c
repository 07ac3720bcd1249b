/*
 * The shim's splitpv-xenstored against the real libxenstore (XENSTORED_PATH) and raw
 * sockets: permissions between two guests, watch rules, transaction conflicts, quotas,
 * malformed input and clients that don't read — the daemon must keep serving others.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>
#include <xen/io/xs_wire.h>

static char rundir[] = "/tmp/splitpv-xsd-XXXXXX";
static pid_t daemon_pid = -1;
static int failures;

#define CHECK(cond, ...)                                                                \
	do {                                                                            \
		if (!(cond)) {                                                          \
			failures++;                                                     \
			printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);          \
			printf(__VA_ARGS__);                                            \
			printf("\n");                                                   \
		}                                                                       \
	} while (0)

static void sock_path(unsigned int domid, char *buf, size_t len)
{
	if (domid)
		snprintf(buf, len, "%s/domain-%u.sock", rundir, domid);
	else
		snprintf(buf, len, "%s/socket", rundir);
}

static bool wait_path(const char *p, bool present)
{
	struct stat st;

	for (int i = 0; i < 200; i++) {
		if ((stat(p, &st) == 0) == present)
			return true;
		usleep(25000);
	}
	return false;
}

static struct xs_handle *open_as(unsigned int domid)
{
	char p[256];
	struct xs_handle *h;

	sock_path(domid, p, sizeof(p));
	setenv("XENSTORED_PATH", p, 1);
	h = xs_open(0);
	if (!h)
		printf("cannot connect to %s: %s\n", p, strerror(errno));
	return h;
}

static int raw_connect(unsigned int domid)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sock_path(domid, a.sun_path, sizeof(a.sun_path));
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static bool read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, timeout_ms) != 1)
			return false;
		n = read(fd, (char *)buf + got, len - got);
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

/* Send one message, read one reply: its type and payload (NUL-terminated copy). */
static int raw_req(int fd, uint32_t type, uint32_t req_id, uint32_t tx, const void *pl,
		   uint32_t len, struct xsd_sockmsg *rh, char *rbuf)
{
	struct xsd_sockmsg h = { type, req_id, tx, len };

	if (write(fd, &h, sizeof(h)) != sizeof(h) || (len && write(fd, pl, len) != (ssize_t)len))
		return -1;
	if (!read_full(fd, rh, sizeof(*rh), 3000) || rh->len > XENSTORE_PAYLOAD_MAX ||
	    !read_full(fd, rbuf, rh->len, 3000))
		return -1;
	rbuf[rh->len] = '\0';
	return 0;
}

/* true if the peer closed the connection within timeout_ms (draining what's queued). */
static bool raw_closed(int fd, int timeout_ms)
{
	char buf[65536];
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
			return false;
		if (poll(&p, 1, 100) != 1)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
	}
}

/* Next watch event within ms, or false. */
static bool next_event(struct xs_handle *h, int ms, char *path, size_t plen, char *tok,
		       size_t tlen)
{
	for (int i = 0; i <= ms / 20; i++) {
		char **v = xs_check_watch(h);

		if (v) {
			snprintf(path, plen, "%s", v[XS_WATCH_PATH]);
			snprintf(tok, tlen, "%s", v[XS_WATCH_TOKEN]);
			free(v);
			return true;
		}
		struct pollfd p = { .fd = xs_fileno(h), .events = POLLIN };
		poll(&p, 1, 20);
	}
	return false;
}

static bool expect_event(struct xs_handle *h, const char *path, const char *tok)
{
	char p[512], t[128];

	if (!next_event(h, 2000, p, sizeof(p), t, sizeof(t))) {
		printf("  no event (wanted %s %s)\n", path, tok);
		return false;
	}
	if (strcmp(p, path) || strcmp(t, tok)) {
		printf("  event %s %s (wanted %s %s)\n", p, t, path, tok);
		return false;
	}
	return true;
}

static bool no_event(struct xs_handle *h, int ms)
{
	char p[512], t[128];

	if (next_event(h, ms, p, sizeof(p), t, sizeof(t))) {
		printf("  unexpected event %s %s\n", p, t);
		return false;
	}
	return true;
}

static char *rd(struct xs_handle *h, xs_transaction_t t, const char *path)
{
	unsigned int len;

	return xs_read(h, t, path, &len);
}

static bool set_perms(struct xs_handle *h, const char *path, const char *spec)
{
	struct xs_permissions p[8];
	unsigned int n = 0;
	char *s = strdup(spec), *save = NULL;

	for (char *tok = strtok_r(s, " ", &save); tok && n < 8; tok = strtok_r(NULL, " ", &save))
		n++;
	free(s);
	s = strdup(spec);
	for (char *q = s; *q; q++)
		if (*q == ' ')
			*q = '\0';
	bool ok = xs_strings_to_perms(p, n, s) && xs_set_permissions(h, XBT_NULL, path, p, n);
	free(s);
	return ok;
}

static void test_permissions(struct xs_handle *h0)
{
	struct xs_handle *g1, *g2;
	struct xs_permissions *p;
	unsigned int n;
	char *v, path[64];

	printf("== permissions between two guests\n");
	CHECK(xs_introduce_domain(h0, 1, 0, 0), "introduce 1: %s", strerror(errno));
	CHECK(xs_introduce_domain(h0, 2, 0, 0), "introduce 2: %s", strerror(errno));
	sock_path(2, path, sizeof(path));
	CHECK(wait_path(path, true), "domain-2.sock missing");
	CHECK(xs_is_domain_introduced(h0, 2), "2 not introduced");
	CHECK(!xs_is_domain_introduced(h0, 3), "3 introduced");
	for (unsigned int d = 1; d <= 2; d++) {
		char home[64], spec[16];

		snprintf(home, sizeof(home), "/local/domain/%u", d);
		snprintf(spec, sizeof(spec), "n%u", d);
		CHECK(xs_mkdir(h0, XBT_NULL, home) && set_perms(h0, home, spec), "home %u", d);
	}
	g1 = open_as(1);
	g2 = open_as(2);
	if (!g1 || !g2) {
		failures++;
		return;
	}
	/* Relative paths are the guest's home; the guest owns what it creates. */
	CHECK(xs_write(g1, XBT_NULL, "data/x", "secret", 6), "g1 write: %s", strerror(errno));
	v = rd(h0, XBT_NULL, "/local/domain/1/data/x");
	CHECK(v && !strcmp(v, "secret"), "dom0 reads g1's node");
	free(v);
	p = xs_get_permissions(g1, XBT_NULL, "data/x", &n);
	CHECK(p && n == 1 && p[0].id == 1 && p[0].perms == XS_PERM_NONE, "owner 1 inherited");
	free(p);

	/* The other guest can neither read nor write, nor learn what exists. */
	errno = 0;
	v = rd(g2, XBT_NULL, "/local/domain/1/data/x");
	CHECK(!v && errno == EACCES, "g2 read: %s", strerror(errno));
	free(v);
	v = rd(g2, XBT_NULL, "/local/domain/1/data/nothing");
	CHECK(!v && errno == EACCES, "g2 read of absent node gives EACCES: %s", strerror(errno));
	free(v);
	CHECK(!xs_write(g2, XBT_NULL, "/local/domain/1/data/x", "x", 1) && errno == EACCES,
	      "g2 overwrite: %s", strerror(errno));
	CHECK(!xs_write(g2, XBT_NULL, "/local/domain/1/new", "x", 1) && errno == EACCES,
	      "g2 create: %s", strerror(errno));
	CHECK(!xs_rm(g2, XBT_NULL, "/local/domain/1/data") && errno == EACCES, "g2 rm");
	CHECK(!set_perms(g2, "/local/domain/1/data/x", "b2") && errno == EACCES, "g2 chmod");
	CHECK(!xs_directory(g2, XBT_NULL, "/local/domain/1", &n) && errno == EACCES, "g2 ls");

	/* Owner grants read to 2: read works, write still refused. */
	CHECK(set_perms(g1, "data/x", "n1 r2"), "g1 chmod: %s", strerror(errno));
	v = rd(g2, XBT_NULL, "/local/domain/1/data/x");
	CHECK(v && !strcmp(v, "secret"), "g2 read after grant");
	free(v);
	CHECK(!xs_write(g2, XBT_NULL, "/local/domain/1/data/x", "x", 1) && errno == EACCES,
	      "g2 write with r only");
	CHECK(!set_perms(g1, "data/x", "n2") && errno == EPERM, "guest gives node away: %s",
	      strerror(errno));
	CHECK(set_perms(h0, "/local/domain/1/data/x", "n2"), "dom0 may change the owner");
	CHECK(xs_write(g2, XBT_NULL, "/local/domain/1/data/x", "mine", 4), "new owner writes");

	/* Writable shared dir: a guest-created node is owned by the guest. */
	CHECK(xs_mkdir(h0, XBT_NULL, "/shared") && set_perms(h0, "/shared", "n0 w1"), "shared");
	CHECK(xs_write(g1, XBT_NULL, "/shared/k", "v", 1), "g1 writes shared: %s",
	      strerror(errno));
	p = xs_get_permissions(h0, XBT_NULL, "/shared/k", &n);
	CHECK(p && n == 2 && p[0].id == 1 && p[1].id == 1 && p[1].perms == XS_PERM_WRITE,
	      "created node: owner 1, rest inherited");
	free(p);
	CHECK(!xs_write(g2, XBT_NULL, "/shared/k2", "v", 1) && errno == EACCES, "g2 shared");

	/* Privileged operations are dom0's. */
	CHECK(!xs_is_domain_introduced(g1, 1) && errno == EACCES, "guest IS_DOMAIN_INTRODUCED");
	CHECK(!xs_introduce_domain(g1, 5, 0, 0) && errno == EACCES, "guest INTRODUCE");
	v = xs_get_domain_path(g1, 7);
	CHECK(v && !strcmp(v, "/local/domain/7"), "GET_DOMAIN_PATH");
	free(v);
	xs_close(g1);
	xs_close(g2);
}

static void test_watches(struct xs_handle *h0)
{
	struct xs_handle *w, *g1, *g2;
	xs_transaction_t t;
	char path[64];

	printf("== watch rules\n");
	w = open_as(0);
	if (!w) {
		failures++;
		return;
	}
	CHECK(xs_watch(w, "/w", "top"), "watch");
	CHECK(expect_event(w, "/w", "top"), "fires once on registration");
	CHECK(xs_watch(w, "/w/a/b", "deep"), "watch deep");
	CHECK(expect_event(w, "/w/a/b", "deep"), "initial deep");
	CHECK(!xs_watch(w, "/w", "top") && errno == EEXIST, "duplicate watch");
	CHECK(xs_write(h0, XBT_NULL, "/w/a/b", "1", 1), "write");
	CHECK(expect_event(w, "/w/a/b", "top"), "ancestor watch fires");
	CHECK(expect_event(w, "/w/a/b", "deep"), "descendant fires");
	CHECK(xs_write(h0, XBT_NULL, "/other", "1", 1) && no_event(w, 200), "unrelated path");

	/* rm of a subtree: removed descendants fire exact watches, the root fires up. */
	CHECK(xs_rm(h0, XBT_NULL, "/w/a"), "rm");
	CHECK(expect_event(w, "/w/a/b", "deep"), "rm fires removed descendant");
	CHECK(expect_event(w, "/w/a", "top"), "rm fires the root for parents' watches");
	CHECK(no_event(w, 200), "nothing else");

	/* Transaction: nothing until commit, then the change. */
	t = xs_transaction_start(h0);
	CHECK(t != XBT_NULL, "tx start");
	CHECK(xs_write(h0, t, "/w/tx", "1", 1), "tx write");
	CHECK(no_event(w, 300), "no event before commit");
	CHECK(xs_transaction_end(h0, t, false), "commit: %s", strerror(errno));
	CHECK(expect_event(w, "/w/tx", "top"), "event at commit");
	t = xs_transaction_start(h0);
	CHECK(xs_write(h0, t, "/w/aborted", "1", 1), "tx write 2");
	CHECK(xs_transaction_end(h0, t, true), "abort");
	CHECK(no_event(w, 300), "aborted transaction fires nothing");
	CHECK(xs_unwatch(w, "/w", "top") && xs_unwatch(w, "/w/a/b", "deep"), "unwatch");
	CHECK(!xs_unwatch(w, "/w", "top") && errno == ENOENT, "unwatch twice");

	/* Guest watches: relative paths come back relative; unreadable nodes stay silent. */
	g1 = open_as(1);
	g2 = open_as(2);
	if (!g1 || !g2) {
		failures++;
		xs_close(w);
		return;
	}
	CHECK(xs_watch(g1, "data", "rel"), "relative watch: %s", strerror(errno));
	CHECK(expect_event(g1, "data", "rel"), "relative initial event");
	CHECK(xs_write(h0, XBT_NULL, "/local/domain/1/data/z", "1", 1), "dom0 writes");
	CHECK(expect_event(g1, "data/z", "rel"), "relative event path");
	CHECK(xs_watch(g2, "/local/domain/1/data/z", "spy"), "g2 watch");
	CHECK(expect_event(g2, "/local/domain/1/data/z", "spy"), "initial fires regardless");
	CHECK(xs_write(h0, XBT_NULL, "/local/domain/1/data/z", "2", 1), "dom0 writes again");
	CHECK(no_event(g2, 300), "no event for a node the guest can't read");
	CHECK(set_perms(h0, "/local/domain/1/data/z", "n1 r2"), "grant r2");
	CHECK(expect_event(g2, "/local/domain/1/data/z", "spy"), "chmod fires for new reader");
	CHECK(xs_write(h0, XBT_NULL, "/local/domain/1/data/z", "3", 1), "write 3");
	CHECK(expect_event(g2, "/local/domain/1/data/z", "spy"), "readable: event");

	/* Special watches. Guests don't get them by default. */
	for (int i = 0; i < 3; i++) /* dom0's writes to data/z above */
		CHECK(expect_event(g1, "data/z", "rel"), "g1 sees changes in its home");
	CHECK(xs_watch(w, "@releaseDomain", "rel") && expect_event(w, "@releaseDomain", "rel"),
	      "@releaseDomain watch");
	CHECK(xs_watch(w, "@introduceDomain", "intro") &&
		      expect_event(w, "@introduceDomain", "intro"),
	      "@introduceDomain watch");
	CHECK(xs_watch(g1, "@releaseDomain", "grel") && expect_event(g1, "@releaseDomain", "grel"),
	      "guest special watch");
	CHECK(xs_introduce_domain(h0, 3, 0, 0), "introduce 3");
	CHECK(expect_event(w, "@introduceDomain", "intro"), "@introduceDomain fired");
	CHECK(xs_release_domain(h0, 3), "release 3: %s", strerror(errno));
	CHECK(expect_event(w, "@releaseDomain", "rel"), "@releaseDomain fired");
	CHECK(no_event(g1, 300), "guest without perms on @releaseDomain hears nothing");
	sock_path(3, path, sizeof(path));
	CHECK(wait_path(path, false), "domain-3.sock removed on release");
	CHECK(!xs_release_domain(h0, 3) && errno == ENOENT, "release twice");

	/* Releasing a domain closes its connections. */
	CHECK(xs_release_domain(h0, 2), "release 2");
	CHECK(expect_event(w, "@releaseDomain", "rel"), "@releaseDomain for 2");
	CHECK(!rd(g2, XBT_NULL, "/local/domain/2") , "g2's connection is gone");
	xs_close(g2);
	CHECK(xs_introduce_domain(h0, 2, 0, 0), "re-introduce 2");
	xs_close(g1);
	xs_close(w);
}

static void test_transactions(struct xs_handle *h0)
{
	struct xs_handle *g1;
	xs_transaction_t t, ts[12];
	char *v;
	int i;

	printf("== transactions\n");
	CHECK(xs_write(h0, XBT_NULL, "/c", "a", 1), "init");
	t = xs_transaction_start(h0);
	v = rd(h0, t, "/c");
	free(v);
	CHECK(xs_write(h0, XBT_NULL, "/c", "b", 1), "write outside");
	v = rd(h0, t, "/c");
	CHECK(v && !strcmp(v, "a"), "transaction reads its snapshot");
	free(v);
	CHECK(xs_write(h0, t, "/c", "c", 1), "write inside");
	CHECK(!xs_transaction_end(h0, t, false) && errno == EAGAIN, "conflict: %s",
	      strerror(errno));
	v = rd(h0, XBT_NULL, "/c");
	CHECK(v && !strcmp(v, "b"), "conflicting commit left the store alone");
	free(v);

	/* A created child changes the parent's directory: conflicts too. */
	t = xs_transaction_start(h0);
	free(xs_directory(h0, t, "/c", (unsigned int[]){ 0 }));
	CHECK(xs_write(h0, XBT_NULL, "/c/kid", "1", 1), "kid");
	CHECK(xs_write(h0, t, "/c", "d", 1), "tx write");
	CHECK(!xs_transaction_end(h0, t, false) && errno == EAGAIN, "directory conflict");

	/* Disjoint transactions both commit. */
	t = xs_transaction_start(h0);
	CHECK(xs_write(h0, t, "/c/t1", "1", 1), "t1");
	CHECK(xs_write(h0, XBT_NULL, "/elsewhere2", "1", 1), "outside");
	CHECK(xs_transaction_end(h0, t, false), "disjoint commit: %s", strerror(errno));
	CHECK(!xs_transaction_end(h0, t, false) && errno == ENOENT, "ended transaction id");

	g1 = open_as(1);
	if (!g1) {
		failures++;
		return;
	}
	for (i = 0; i < 10; i++) {
		ts[i] = xs_transaction_start(g1);
		CHECK(ts[i] != XBT_NULL, "guest transaction %d: %s", i, strerror(errno));
	}
	CHECK(xs_transaction_start(g1) == XBT_NULL && errno == ENOSPC,
	      "11th guest transaction: %s", strerror(errno));
	for (i = 0; i < 10; i++)
		xs_transaction_end(g1, ts[i], true);
	t = xs_transaction_start(g1);
	CHECK(t != XBT_NULL, "after ending them");
	xs_transaction_end(g1, t, true);
	xs_close(g1);
}

static void test_quotas(struct xs_handle *h0)
{
	struct xs_handle *g1;
	char buf[4000], p[64];
	int i, ok = 0;

	printf("== quotas\n");
	g1 = open_as(1);
	if (!g1) {
		failures++;
		return;
	}
	memset(buf, 'q', sizeof(buf));
	CHECK(!xs_write(g1, XBT_NULL, "big", buf, 2100) && errno == ENOSPC,
	      "guest value over 2048: %s", strerror(errno));
	CHECK(xs_write(g1, XBT_NULL, "fits", buf, 1900), "guest 1900 bytes: %s", strerror(errno));
	CHECK(xs_write(h0, XBT_NULL, "/dom0big", buf, sizeof(buf)), "dom0 is exempt");
	CHECK(!set_perms(g1, "fits", "n1 r2 r3 r4 r5 r6 r7") && errno == ENOSPC, "perms > 5");
	for (i = 0; i < 128; i++) {
		snprintf(p, sizeof(p), "w%d", i);
		ok += xs_watch(g1, p, "t");
	}
	CHECK(ok == 128, "128 watches: %d", ok);
	CHECK(!xs_watch(g1, "w-extra", "t") && errno == E2BIG, "129th watch: %s",
	      strerror(errno));
	for (i = 0; i < 1100; i++) {
		snprintf(p, sizeof(p), "n/%d", i);
		if (!xs_write(g1, XBT_NULL, p, "", 0))
			break;
	}
	CHECK(i < 1000 && errno == ENOSPC, "node quota after %d nodes: %s", i, strerror(errno));
	CHECK(xs_rm(g1, XBT_NULL, "n"), "rm frees quota");
	CHECK(xs_write(g1, XBT_NULL, "n/again", "", 0), "write after rm");
	xs_rm(g1, XBT_NULL, "n");
	xs_close(g1);
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Another client still gets answers quickly. */
static bool still_serving(void)
{
	struct xs_handle *h = open_as(0);
	double t0 = now_ms();
	char *v;
	bool ok;

	if (!h)
		return false;
	ok = xs_write(h, XBT_NULL, "/alive", "yes", 3);
	v = rd(h, XBT_NULL, "/alive");
	ok = ok && v && !strcmp(v, "yes") && now_ms() - t0 < 1000;
	free(v);
	xs_close(h);
	return ok;
}

static void test_malformed(struct xs_handle *h0)
{
	struct xsd_sockmsg rh, h;
	char rbuf[XENSTORE_PAYLOAD_MAX + 1], big[4000];
	int fd, fd2, i, sent;

	printf("== malformed input and clients that don't read\n");
	fd = raw_connect(0);
	CHECK(fd >= 0, "connect");
	CHECK(raw_req(fd, 99, 42, 0, "x", 2, &rh, rbuf) == 0 && rh.type == XS_ERROR &&
		      rh.req_id == 42 && !strcmp(rbuf, "EINVAL"),
	      "unknown type -> EINVAL (got %u %s)", rh.type, rbuf);
	CHECK(raw_req(fd, XS_READ, 7, 0, "/local", 6, &rh, rbuf) == 0 && rh.type == XS_ERROR &&
		      rh.req_id == 7 && !strcmp(rbuf, "EINVAL"),
	      "READ without NUL -> EINVAL");
	CHECK(raw_req(fd, XS_READ, 8, 0, "bad//path", 10, &rh, rbuf) == 0 &&
		      !strcmp(rbuf, "EINVAL"), "invalid path");
	CHECK(raw_req(fd, XS_READ, 9, 0, "/x y", 5, &rh, rbuf) == 0 && !strcmp(rbuf, "EINVAL"),
	      "invalid char");
	CHECK(raw_req(fd, XS_READ, 10, 77, "/local", 7, &rh, rbuf) == 0 && rh.tx_id == 77 &&
		      !strcmp(rbuf, "ENOENT"), "unknown transaction -> ENOENT, tx_id echoed");
	CHECK(raw_req(fd, XS_SET_PERMS, 11, 0, "/alive\0zz\0", 10, &rh, rbuf) == 0 &&
		      !strcmp(rbuf, "EINVAL"), "bad perms string");
	CHECK(raw_req(fd, XS_TRANSACTION_END, 12, 0, "T", 2, &rh, rbuf) == 0 &&
		      !strcmp(rbuf, "ENOENT"), "end without transaction");
	CHECK(raw_req(fd, XS_READ, 13, 0, "/local/domain/0/domid", 22, &rh, rbuf) == 0 &&
		      rh.type == XS_READ && rh.len == 1 && rbuf[0] == '0', "still in sync");
	/* Too long: the connection is closed, others go on. */
	h = (struct xsd_sockmsg){ XS_READ, 1, 0, XENSTORE_PAYLOAD_MAX + 1 };
	CHECK(write(fd, &h, sizeof(h)) == sizeof(h), "send huge header");
	CHECK(raw_closed(fd, 3000), "len > 4096 closes the connection");
	close(fd);
	CHECK(still_serving(), "daemon serves others after a bad client");

	/* Garbage. */
	fd = raw_connect(0);
	memset(big, 0xa5, sizeof(big));
	CHECK(write(fd, big, sizeof(big)) == sizeof(big), "garbage");
	CHECK(raw_closed(fd, 3000), "garbage closes the connection");
	close(fd);
	CHECK(still_serving(), "serving after garbage");

	/* A half message then silence: nobody waits for it. */
	fd = raw_connect(0);
	h = (struct xsd_sockmsg){ XS_WRITE, 1, 0, 100 };
	CHECK(write(fd, &h, sizeof(h)) == sizeof(h) && write(fd, "/half", 5) == 5, "half");
	CHECK(still_serving(), "serving while a message is half sent");
	close(fd);

	/* A client that floods requests and never reads replies: it stalls itself only. */
	CHECK(xs_write(h0, XBT_NULL, "/bigval", big, sizeof(big)), "big value");
	fd = raw_connect(0);
	struct {
		struct xsd_sockmsg h;
		char p[8];
	} rq = { { XS_READ, 0, 0, 8 }, "/bigval" };
	for (i = 0, sent = 0; i < 20000; i++) {
		ssize_t n = send(fd, &rq, sizeof(rq), MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0)
			break;
		sent++;
	}
	CHECK(sent > 100, "flood sent %d requests", sent);
	printf("  a client flooded %d requests without reading\n", sent);
	CHECK(still_serving(), "serving while a client doesn't read its replies");

	/* A client that doesn't read its watch events is disconnected at the bound. */
	fd2 = raw_connect(0);
	CHECK(raw_req(fd2, XS_WATCH, 1, 0, "/flood\0tok\0", 11, &rh, rbuf) == 0 &&
		      rh.type == XS_WATCH, "raw watch");
	{
		struct xs_handle *wh = open_as(0);
		char p[200];
		double t0 = now_ms();

		for (i = 0; wh && i < 20000; i++) {
			/* Spread over 200 directories: a parent's child list is copied per
			 * change, so one 20000-entry directory would measure that instead. */
			snprintf(p, sizeof(p), "/flood/%03d/%06d-%s", i % 200, i,
				 "padding-padding-padding-padding-padding-padding-padding-padding");
			if (!xs_write(wh, XBT_NULL, p, "", 0))
				break;
		}
		printf("  20000 writes under a non-reading watcher: %.0f ms\n", now_ms() - t0);
		CHECK(i == 20000, "writer stopped at %d: %s", i, strerror(errno));
		CHECK(now_ms() - t0 < 30000, "writer was not stalled (%.0f ms)", now_ms() - t0);
		xs_close(wh);
	}
	CHECK(raw_closed(fd2, 5000), "non-reading watcher disconnected at the output bound");
	CHECK(still_serving(), "serving after the flood");
	close(fd2);
	close(fd);
	CHECK(xs_rm(h0, XBT_NULL, "/flood"), "cleanup");
}

int main(void)
{
	const char *build = getenv("SPLITPV_BUILD");
	char bin[512], sp[256];
	struct xs_handle *h0;
	int st;

	snprintf(bin, sizeof(bin), "%s/bin/splitpv-xenstored", build ? build : "build/default");
	if (access(bin, X_OK) != 0) {
		printf("FAIL: %s not built\n", bin);
		return 1;
	}
	if (!mkdtemp(rundir)) {
		perror("mkdtemp");
		return 1;
	}
	daemon_pid = fork();
	if (daemon_pid == 0) {
		execl(bin, bin, "--rundir", rundir, "--foreground", (char *)NULL);
		_exit(127);
	}
	sock_path(0, sp, sizeof(sp));
	if (!wait_path(sp, true)) {
		printf("FAIL: no socket %s\n", sp);
		kill(daemon_pid, SIGKILL);
		return 1;
	}
	h0 = open_as(0);
	if (!h0) {
		kill(daemon_pid, SIGKILL);
		return 1;
	}
	test_permissions(h0);
	test_watches(h0);
	test_transactions(h0);
	test_quotas(h0);
	test_malformed(h0);
	xs_close(h0);

	kill(daemon_pid, SIGTERM);
	CHECK(waitpid(daemon_pid, &st, 0) == daemon_pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "daemon exit status %d", st);
	CHECK(access(sp, F_OK) != 0, "socket removed");
	rmdir(rundir);
	printf("%s (%d failures)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
