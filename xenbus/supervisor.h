/*
 * supervisor — what splitpvd and the `splitpv` operations CLI share: where the
 * supervisor's control socket lives and how a request is made over it.
 * Counterpart: xenbus/cmd/splitpvd.c (server), tools/cmd/splitpv.c (client).
 *
 * Protocol: connect to the UNIX stream socket, write one command line ("status\n",
 * "stats\n", "upgrade\n"), read the text answer until EOF.
 */
#ifndef SPLITPV_XENBUS_SUPERVISOR_H
#define SPLITPV_XENBUS_SUPERVISOR_H

#include <stddef.h>
#include <stdio.h>

/* The socket path: $SPLITPV_SOCKET, else $SPLITPV_SHIM/splitpvd.sock on the shim, else
 * /run/splitpv/splitpvd.sock. 0 or -ENAMETOOLONG. */
int xenbus_supervisor_socket_path(char *out, size_t len);

/* Send cmd (no newline needed) to the supervisor at path and copy the answer to out.
 * 0 or -errno (-ENOENT/-ECONNREFUSED: no splitpvd running). */
int xenbus_supervisor_request(const char *path, const char *cmd, FILE *out);

#endif
