/*
 * splitpv-shim — the shim daemon: the project's simulated Xen for machines without
 * one. Hosts the xenstored (frontend-shim/xenstored.h) and the simulated hypervisor
 * (frontend-shim/shimhv.h: domains, grant tables, event channels) on one libev loop.
 *
 *   splitpv-shim --rundir DIR
 *
 * Runs in the foreground; DIR/socket (xenstored) and DIR/hv.sock are ready when
 * "splitpv-shim: ready" is printed. SIGTERM/SIGINT: clean exit, sockets removed.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "frontend-shim/shimhv.h"
#include "frontend-shim/xenstored.h"

/* opaque: the struct shim_xs * variable of main (opened after the hv socket). */
static int introduce_cb(void *opaque, unsigned domid)
{
	return shim_xs_domain_introduce(*(struct shim_xs **)opaque, domid);
}

static void release_cb(void *opaque, unsigned domid)
{
	int rc = shim_xs_domain_release(*(struct shim_xs **)opaque, domid);

	if (rc < 0 && rc != -ENOENT)
		fprintf(stderr, "splitpv-shim: xenstore release of domain %u: %s\n", domid,
			strerror(-rc));
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: splitpv-shim --rundir DIR\n"
		   "  Simulated Xen: xenstored on DIR/socket (guests: DIR/domain-<N>.sock),\n"
		   "  hypervisor (domains, grants, event channels) on DIR/hv.sock.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rundir", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *rundir = NULL;
	struct ev_loop *loop;
	struct shim_xs *xs = NULL;
	struct shim_hv *hv = NULL;
	struct shim_hv_hooks hooks = { introduce_cb, release_cb, NULL };
	ev_signal sigterm, sigint;
	int c, rc;

	while ((c = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			rundir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!rundir || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (mkdir(rundir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "splitpv-shim: mkdir %s: %s\n", rundir, strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	{
		/* Each domain holds 3 memfds and 2 eventfds per port: one guest must not be
		 * able to run the daemon out of descriptors at the default soft limit. */
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	loop = ev_default_loop(EVFLAG_AUTO);
	if (!loop) {
		fprintf(stderr, "splitpv-shim: no libev loop\n");
		return 1;
	}
	/* hv.sock first: it refuses to start over a live daemon, before the xenstored
	 * would replace that daemon's socket. Nothing is served until ev_run. */
	hooks.opaque = &xs;
	rc = shim_hv_open(&hv, loop, rundir, &hooks);
	if (rc < 0) {
		fprintf(stderr, "splitpv-shim: %s/%s: %s\n", rundir, SHIM_HV_SOCK_NAME,
			strerror(-rc));
		return 1;
	}
	rc = shim_xs_open(&xs, loop, rundir);
	if (rc < 0) {
		fprintf(stderr, "splitpv-shim: xenstored on %s: %s\n", rundir, strerror(-rc));
		shim_hv_close(hv);
		return 1;
	}
	ev_signal_init(&sigterm, stop_cb, SIGTERM);
	ev_signal_init(&sigint, stop_cb, SIGINT);
	ev_signal_start(loop, &sigterm);
	ev_signal_start(loop, &sigint);
	printf("splitpv-shim: ready\n");
	fflush(stdout);

	ev_run(loop, 0);

	ev_signal_stop(loop, &sigterm);
	ev_signal_stop(loop, &sigint);
	/* Domains first (their release reaches the xenstored), then the store. */
	shim_hv_close(hv);
	shim_xs_close(xs);
	return 0;
}
