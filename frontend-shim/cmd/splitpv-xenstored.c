/*
 * splitpv-xenstored — the shim's xenstored as a standalone daemon:
 *   splitpv-xenstored --rundir DIR [--foreground]
 * Serves DIR/socket (dom0) and DIR/domain-<N>.sock for introduced guests. Without
 * --foreground it detaches once the socket is listening (the parent exits 0 then), so
 * "splitpv-xenstored --rundir D && xenstore-read ..." needs no wait. Prints nothing but
 * errors; SIGTERM/SIGINT close every connection, remove the sockets and exit 0.
 */
#include "frontend-shim/xenstored.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: splitpv-xenstored --rundir DIR [--foreground]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rundir", required_argument, NULL, 'r' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *rundir = NULL;
	bool foreground = false;
	int opt, ready[2] = { -1, -1 }, ret;
	struct ev_loop *loop;
	struct shim_xs *xs = NULL;
	ev_signal sigterm, sigint;
	char ok = 'R';

	while ((opt = getopt_long(argc, argv, "r:fh", opts, NULL)) != -1) {
		switch (opt) {
		case 'r':
			rundir = optarg;
			break;
		case 'f':
			foreground = true;
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
	signal(SIGPIPE, SIG_IGN);
	if (!foreground) {
		pid_t pid;

		if (pipe(ready) < 0) {
			perror("splitpv-xenstored: pipe");
			return 1;
		}
		pid = fork();
		if (pid < 0) {
			perror("splitpv-xenstored: fork");
			return 1;
		}
		if (pid > 0) { /* parent: exit once the child listens */
			char c;

			close(ready[1]);
			return read(ready[0], &c, 1) == 1 && c == ok ? 0 : 1;
		}
		close(ready[0]);
		setsid();
	}
	loop = ev_default_loop(EVFLAG_AUTO);
	if (!loop) {
		fprintf(stderr, "splitpv-xenstored: cannot create the event loop\n");
		return 1;
	}
	ret = shim_xs_open(&xs, loop, rundir);
	if (ret < 0) {
		fprintf(stderr, "splitpv-xenstored: %s: %s\n", rundir, strerror(-ret));
		return 1;
	}
	ev_signal_init(&sigterm, stop_cb, SIGTERM);
	ev_signal_init(&sigint, stop_cb, SIGINT);
	ev_signal_start(loop, &sigterm);
	ev_signal_start(loop, &sigint);
	if (!foreground) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			close(null);
		}
		if (write(ready[1], &ok, 1) != 1)
			return 1;
		close(ready[1]);
	}
	ev_run(loop, 0);
	ev_signal_stop(loop, &sigterm);
	ev_signal_stop(loop, &sigint);
	shim_xs_close(xs);
	ev_loop_destroy(loop);
	return 0;
}
