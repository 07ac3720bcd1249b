/*
 * xs_mux — the worker's xenstore multiplexer (xenbus/xs_mux.h) against the shim's
 * xenstored: several libxenstore handles of one process over one upstream connection.
 * The upstream is a guest domain's connection, so xenstored's quotas (10 open
 * transactions per connection, 128 watches per domain) make leaks visible.
 *  1. reads and writes through two handles;
 *  2. the same watch (path and token) on two handles: each gets every event, with its
 *     own token unchanged (also a token containing ':');
 *  3. 30 handles closed inside a transaction: each transaction is aborted upstream (else
 *     the 11th start fails with ENOSPC) and never commits;
 *  4. 200 handles opened, watching, closed: their watches are removed upstream (else the
 *     129th fails), the others keep working, no fd leak;
 *  5. another process can't use the mux socket.
 *
 *   xs_mux
 */
#include "frontend-shim/guest.h"
#include "frontend-shim/toolstack.h"
#include "frontend-shim/xenstored.h"
#include "tests/integration/shim_harness.h"
#include "xenbus/xs_mux.h"

#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <xenstore.h>

#define DOM 3
#define D "/local/domain/3"

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

static struct ev_loop *loop;
static ev_async quit;

static void quit_cb(struct ev_loop *l, ev_async *a, int revents)
{
	ev_break(l, EVBREAK_ALL);
}

static void *loop_main(void *arg)
{
	ev_run(loop, 0);
	return NULL;
}

/* Wait up to ms for a watch event on h; 0 and its path/token, or -1. */
static int next_event(struct xs_handle *h, int ms, char *path, char *token, size_t len)
{
	struct pollfd p = { .fd = xs_fileno(h), .events = POLLIN };

	for (;;) {
		char **v = xs_check_watch(h);

		if (v) {
			snprintf(path, len, "%s", v[XS_WATCH_PATH]);
			snprintf(token, len, "%s", v[XS_WATCH_TOKEN]);
			free(v);
			return 0;
		}
		if (poll(&p, 1, ms) <= 0)
			return -1;
	}
}

static bool got_event(struct xs_handle *h, const char *path, const char *token)
{
	char p[256], t[256];

	while (next_event(h, 2000, p, t, sizeof(p)) == 0)
		if (strcmp(p, path) == 0 && strcmp(t, token) == 0)
			return true;
	return false;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	struct shim_harness shim;
	struct shim_ts_config cfg = { 0 };
	struct shim_ts *ts = NULL;
	struct shim_guest *g = NULL;
	char guest_sock[300];
	struct xenbus_xs_mux *mux = NULL;
	struct xs_handle *direct = NULL, *h1 = NULL, *h2 = NULL;
	char sock[300], direct_path[300], *v;
	pthread_t th;
	int rc, fds_before;

	rc = shim_harness_start(&shim, argv[0]);
	if (rc) {
		printf("SKIP: can't start splitpv-shim: %s\n", strerror(-rc));
		return rc == -ENOENT ? 77 : 1;
	}
	cfg.rundir = shim.rundir;
	rc = shim_ts_open(&ts, &cfg);
	rc = rc ?: shim_ts_domain_create(ts, DOM, NULL);
	rc = rc ?: shim_guest_create(&g, shim.rundir, DOM, 4096, 1024);
	rc = rc ?: shim_xs_socket_path(shim.rundir, DOM, guest_sock, sizeof(guest_sock));
	CHECK(rc == 0, "guest domain %d: %s", DOM, strerror(-rc));
	if (rc)
		goto out_stop;
	snprintf(direct_path, sizeof(direct_path), "%s/socket", shim.rundir);
	setenv("XENSTORED_PATH", direct_path, 1);
	direct = xs_open(0);
	CHECK(direct != NULL, "direct connection: %s", strerror(errno));
	snprintf(sock, sizeof(sock), "%s/mux.sock", shim.rundir);
	loop = ev_loop_new(EVFLAG_AUTO);
	/* Upstream as the guest: its quotas apply. */
	setenv("XENSTORED_PATH", guest_sock, 1);
	rc = xenbus_xs_mux_open(&mux, loop, sock, getuid(), getgid());
	CHECK(rc == 0, "mux: %s", strerror(-rc));
	if (rc || !direct)
		goto out_stop;
	CHECK(strcmp(getenv("XENSTORED_PATH"), sock) == 0, "XENSTORED_PATH points at the mux");
	ev_async_init(&quit, quit_cb);
	ev_async_start(loop, &quit);
	pthread_create(&th, NULL, loop_main, NULL);

	/* 1 */
	h1 = xs_open(0);
	h2 = xs_open(0);
	CHECK(h1 && h2, "two handles through the mux");
	if (!h1 || !h2)
		goto out;
	CHECK(xs_write(h1, XBT_NULL, D "/data/a", "1", 1), "write through h1");
	v = xs_read(h2, XBT_NULL, D "/data/a", NULL);
	CHECK(v && strcmp(v, "1") == 0, "h2 reads h1's write");
	free(v);
	v = xs_read(direct, XBT_NULL, D "/data/a", NULL);
	CHECK(v && strcmp(v, "1") == 0, "it is in xenstore");
	free(v);

	/* 2 */
	CHECK(xs_watch(h1, D "/data/w", "tok") && xs_watch(h2, D "/data/w", "tok") &&
	      xs_watch(h2, D "/data/w", "a:b"), "same watch on two handles");
	CHECK(got_event(h1, D "/data/w", "tok"), "h1: the registration event, token intact");
	CHECK(got_event(h2, D "/data/w", "tok"), "h2: the registration event");
	CHECK(got_event(h2, D "/data/w", "a:b"), "h2: the second token's registration event");
	CHECK(xs_write(direct, XBT_NULL, D "/data/w", "x", 1), "write from outside");
	CHECK(got_event(h1, D "/data/w", "tok"), "h1 sees the change");
	CHECK(got_event(h2, D "/data/w", "tok"), "h2 sees the change (token tok)");

	/* 3 */
	xs_close(h1);
	h1 = NULL;
	for (int i = 0; i < 30; i++) {
		struct xs_handle *h = xs_open(0);
		xs_transaction_t t = h ? xs_transaction_start(h) : XBT_NULL;

		CHECK(t != XBT_NULL, "transaction %d: %s", i, strerror(errno));
		CHECK(t != XBT_NULL && xs_write(h, t, D "/data/tx", "v", 1), "write inside it");
		if (h)
			xs_close(h); /* with the transaction open */
		if (failures)
			break;
	}
	usleep(100000); /* the mux notices the last close */
	v = xs_read(direct, XBT_NULL, D "/data/tx", NULL);
	CHECK(!v && errno == ENOENT, "no closed handle's transaction committed");
	free(v);
	CHECK(xs_write(direct, XBT_NULL, D "/data/w", "y", 1), "write after 31 handles closed");
	CHECK(got_event(h2, D "/data/w", "tok"), "h2 still gets its events");

	/* 4 */
	fds_before = count_fds();
	for (int i = 0; i < 200; i++) {
		struct xs_handle *h = xs_open(0);
		char tok[32];

		snprintf(tok, sizeof(tok), "churn%d", i);
		CHECK(h && xs_watch(h, D "/data/w", tok) && got_event(h, D "/data/w", tok),
		      "churn %d: open and watch: %s", i, strerror(errno));
		if (h)
			xs_close(h);
		if (failures)
			break;
	}
	/* The mux (in this process) closes its end of the last handle a moment later. */
	for (int i = 0; i < 100 && count_fds() != fds_before; i++)
		usleep(10000);
	CHECK(count_fds() == fds_before, "fds %d -> %d", fds_before, count_fds());
	v = xs_read(h2, XBT_NULL, D "/data/a", NULL);
	CHECK(v && strcmp(v, "1") == 0, "h2 after 200 handles came and went");
	free(v);
	printf("two handles, shared watches, 30 transactions aborted at close, 200 watching "
	       "handles churned within a 128-watch quota\n");

	/* 5 */
	{
		pid_t pid = fork();
		int st;

		if (pid == 0) {
			struct xs_handle *h = xs_open(0);
			char *r = h ? xs_read(h, XBT_NULL, D "/data/a", NULL) : NULL;

			_exit(r ? 1 : 0);
		}
		CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
		      WEXITSTATUS(st) == 0, "another process is refused by the mux");
	}
out:
	if (h1)
		xs_close(h1);
	if (h2)
		xs_close(h2);
	ev_async_send(loop, &quit);
	pthread_join(th, NULL);
	xenbus_xs_mux_close(mux);
	ev_loop_destroy(loop);
out_stop:
	if (direct)
		xs_close(direct);
	shim_guest_destroy(g);
	shim_ts_close(ts);
	shim_harness_stop(&shim);
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
