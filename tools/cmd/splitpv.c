/*
 * splitpv — the operations CLI: asks splitpvd over its control socket.
 *   splitpv status      devices, states, negotiated features, queues, workers, restarts
 *   splitpv stats       per-device counters and per-queue ring positions
 *   splitpv top [secs]  stats refreshed every second (Ctrl-C to leave)
 *   splitpv upgrade     splitpvd re-executes its binary; guests stay attached
 * Counterpart: xenbus/cmd/splitpvd.c (the server), xenbus/supervisor.h (the protocol).
 */
#include "xenbus/supervisor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: splitpv [--socket PATH] status|stats|top [seconds]|upgrade\n"
		   "  The socket defaults to $SPLITPV_SOCKET, $SPLITPV_SHIM/splitpvd.sock on the\n"
		   "  shim, else /run/splitpv/splitpvd.sock.\n");
}

int main(int argc, char **argv)
{
	char sock[108];
	const char *cmd;
	int i = 1, rc;

	if (xenbus_supervisor_socket_path(sock, sizeof(sock)) != 0)
		return 1;
	if (argc > 2 && strcmp(argv[1], "--socket") == 0) {
		snprintf(sock, sizeof(sock), "%s", argv[2]);
		i = 3;
	}
	if (i >= argc || strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
		usage(i >= argc ? stderr : stdout);
		return i >= argc ? 2 : 0;
	}
	cmd = argv[i];
	if (strcmp(cmd, "top") == 0) {
		int secs = i + 1 < argc ? atoi(argv[i + 1]) : 0;
		time_t end = time(NULL) + secs;

		do {
			time_t now = time(NULL);

			printf("\033[H\033[2Jsplitpv top — %s", ctime(&now));
			rc = xenbus_supervisor_request(sock, "status", stdout);
			rc = rc ?: xenbus_supervisor_request(sock, "stats", stdout);
			fflush(stdout);
			if (rc)
				break;
			sleep(1);
		} while (!secs || time(NULL) < end);
	} else if (strcmp(cmd, "status") == 0 || strcmp(cmd, "stats") == 0 ||
		   strcmp(cmd, "upgrade") == 0) {
		rc = xenbus_supervisor_request(sock, cmd, stdout);
	} else {
		usage(stderr);
		return 2;
	}
	if (rc) {
		fprintf(stderr, "splitpv: %s: %s (is splitpvd running?)\n", sock, strerror(-rc));
		return 1;
	}
	return 0;
}
