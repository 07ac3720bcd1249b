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

#endif
