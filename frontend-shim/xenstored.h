/*
 * xenstored — the shim's xenstore daemon core: xs_wire.h over UNIX sockets, served
 * from a libev loop. The real libxenstore reaches it through XENSTORED_PATH.
 * Hosted by the shim daemon (frontend-shim/cmd/splitpv-shim.c) or standalone
 * (frontend-shim/cmd/splitpv-xenstored.c).
 *
 * Sockets, in rundir:
 *   socket          connections act as dom0 (privileged, relative paths → /local/domain/0)
 *   domain-<N>.sock connections act as guest domid N (permissions enforced, quotas apply,
 *                   relative paths → /local/domain/N); exists while N is introduced.
 */
#ifndef SPLITPV_SHIM_XENSTORED_H
#define SPLITPV_SHIM_XENSTORED_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

struct shim_xs;

/* Create the store (/, /local, /local/domain, /tool) and listen on rundir/socket.
 * 0 or -errno. Caller frees with shim_xs_close (NULL ok), which closes every connection
 * and unlinks the sockets it created. Single-threaded: call from the loop's thread. */
int shim_xs_open(struct shim_xs **out, struct ev_loop *loop, const char *rundir);
void shim_xs_close(struct shim_xs *xs);

/* Mark domid introduced (as XS_INTRODUCE): create rundir/domain-<domid>.sock and fire
 * @introduceDomain. -EEXIST if already introduced. */
int shim_xs_domain_introduce(struct shim_xs *xs, unsigned int domid);

/* Release domid (as XS_RELEASE / domain death): close that domain's connections, drop
 * its watches and transactions, remove its socket, fire @releaseDomain.
 * Does not delete its nodes (the toolstack does). -ENOENT if not introduced. */
int shim_xs_domain_release(struct shim_xs *xs, unsigned int domid);

/* Socket path a connection acting as domid uses (domid 0: the privileged socket). */
int shim_xs_socket_path(const char *rundir, unsigned int domid, char *buf, size_t len);

/* ---- Without sockets: unit tests and fuzzing drive the message processor directly ---- */

struct shim_xs_conn;

/* A store with no loop and no sockets (introduce/release only mark domains).
 * 0 or -errno; free with shim_xs_close. */
int shim_xs_open_detached(struct shim_xs **out);

/* A connection without a socket acting as domid (0 = dom0; a guest must be introduced,
 * else -ENOENT). Replies and events queue up for shim_xs_conn_take_output; with
 * discard_output they are dropped (fuzzing). Free with shim_xs_conn_close_fake before
 * shim_xs_close. */
int shim_xs_conn_open_fake(struct shim_xs *xs, unsigned int domid, bool discard_output,
			   struct shim_xs_conn **out);
void shim_xs_conn_close_fake(struct shim_xs_conn *c);

/* Feed bytes as if read from the connection's socket and process every complete message.
 * 0; -EPIPE once the connection was closed by the daemon (protocol violation, output
 * bound, domain released); -EAGAIN if input is being held back (output not drained) and
 * some bytes could not be taken: *taken (may be NULL) says how many were. */
int shim_xs_conn_feed(struct shim_xs_conn *c, const void *buf, size_t len, size_t *taken);

/* Copy up to cap bytes of queued output (whole or partial messages, in order) into buf
 * and drop them from the queue. Returns the number of bytes copied. */
size_t shim_xs_conn_take_output(struct shim_xs_conn *c, void *buf, size_t cap);

#endif
