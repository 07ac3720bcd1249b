/*
 * xs_mux — one xenstore connection shared by every thread of a backend worker. A worker
 * opens it while still root, then drops to its guest's uid, after which xenstored's
 * socket (0600 root on Xen, root-only on the shim) can't be opened again. Each
 * xenbus_xs_open() in a device thread (libxenstore's xs_open, which has no fdopen) then
 * connects to this worker-private socket instead; the mux, run by the worker's main
 * loop, forwards every request on the one upstream connection and routes replies by
 * request id and watch events by token, so every handle keeps libxenstore's semantics
 * (its own watches, transactions, xs_close) and a device that is gone just drops its
 * events. Counterpart: the xenstored (C xenstored, the shim's frontend-shim/xenstored.c).
 */
#ifndef SPLITPV_XENBUS_XS_MUX_H
#define SPLITPV_XENBUS_XS_MUX_H

#include <ev.h>
#include <sys/types.h>

struct xenbus_xs_mux;

/*
 * Connect upstream (XENSTORED_PATH, the shim's rundir/socket under SPLITPV_SHIM, else
 * /var/run/xenstored/socket, else /dev/xen/xenbus, as libxenstore does), listen on
 * sock_path (a stale socket there is replaced; chowned to uid:gid, mode 0600; only this
 * process may connect) and point XENSTORED_PATH at it for every later xs_open in this
 * process. Served from loop (one thread). 0 or -errno. Free with xenbus_xs_mux_close
 * (NULL ok): closes every client and unlinks sock_path.
 * If the upstream connection is lost, every client is disconnected (libxenstore calls
 * then fail as with a dead xenstored) and no new one is accepted: a worker that dropped
 * root can't reconnect.
 */
int xenbus_xs_mux_open(struct xenbus_xs_mux **out, struct ev_loop *loop, const char *sock_path,
		       uid_t uid, gid_t gid);
void xenbus_xs_mux_close(struct xenbus_xs_mux *m);

#endif
