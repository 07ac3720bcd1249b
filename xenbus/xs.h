/*
 * xs — xenstore helpers over the real libxenstore: typed reads with range checks,
 * writes, transactions retried on EAGAIN, and watches delivered into a libev loop.
 * Everything a frontend writes is hostile: the parsers here are strict and pure
 * (unit-tested and fuzzed directly).
 */
#ifndef SPLITPV_XENBUS_XS_H
#define SPLITPV_XENBUS_XS_H

#include <ev.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xenstore.h>

/* Longest value we accept from xenstore (XENSTORE_PAYLOAD_MAX). */
#define XENBUS_VALUE_MAX 4096u
/* Longest path we build (XENSTORE_ABS_PATH_MAX). */
#define XENBUS_PATH_MAX 3072u

/*
 * xs_open for splitpv's processes: when SPLITPV_SHIM names the shim's run directory and
 * XENSTORED_PATH is unset, point libxenstore at the shim's xenstored (rundir/socket)
 * first. NULL with errno on failure; close with xs_close.
 */
struct xs_handle *xenbus_xs_open(void);

/* ---- pure parsers (no I/O) ---- */

/*
 * Strict unsigned decimal: one or more digits and nothing else (no sign, spaces, hex
 * or trailing bytes; leading zeros are accepted, "007" = 7). len is the value length
 * (the value need not be NUL-terminated). Returns 0, -EINVAL (not a number) or
 * -ERANGE (overflows or lies outside [min, max]).
 */
int xenbus_parse_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out);

/* "0" or "1" only. 0 or -EINVAL. */
int xenbus_parse_bool(const char *s, size_t len, bool *out);

/* A XenbusState number 0..8 (XenbusStateUnknown..Reconfigured). 0 or -EINVAL/-ERANGE. */
int xenbus_parse_state(const char *s, size_t len, int *out);

/* Human name of a XenbusState ("InitWait"); "invalid" outside 0..8. */
const char *xenbus_state_name(int state);

/*
 * Split "/local/domain/<bdom>/backend/<type>/<fe>/<devid>[/...]" (or the relative
 * "backend/<type>/<fe>/<devid>") into its parts. type is copied into a caller buffer of
 * type_len bytes. Returns 0, or -EINVAL if the path doesn't have that shape.
 * *rest points into path at what follows <devid> ("" or "/key...").
 */
int xenbus_parse_backend_path(const char *path, unsigned int *bdom, char *type,
			      size_t type_len, unsigned int *fe_domid, unsigned int *devid,
			      const char **rest);

/* buf = dir + "/" + key (key NULL or "" -> dir). 0 or -ENAMETOOLONG. */
int xenbus_path(char *buf, size_t len, const char *dir, const char *key);

/* ---- reads and writes (t = XBT_NULL outside a transaction) ---- */

/*
 * Read dir/key into a malloc'd NUL-terminated string (caller frees). Returns 0,
 * -ENOENT if absent, -E2BIG if longer than XENBUS_VALUE_MAX, -errno otherwise.
 * A value containing a NUL byte is -EINVAL (keys we read are text).
 */
int xenbus_read_str(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		    const char *key, char **out);
/* Read and range-check an unsigned decimal. -ENOENT, -EINVAL, -ERANGE, -errno. */
int xenbus_read_u64(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		    const char *key, uint64_t min, uint64_t max, uint64_t *out);
int xenbus_read_uint(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		     const char *key, unsigned int min, unsigned int max, unsigned int *out);
/* As xenbus_read_uint, but an absent key yields def (other errors still fail). */
int xenbus_read_uint_default(struct xs_handle *xs, xs_transaction_t t, const char *dir,
			     const char *key, unsigned int min, unsigned int max,
			     unsigned int def, unsigned int *out);
/* "0"/"1"; absent -> def. */
int xenbus_read_bool(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		     const char *key, bool def, bool *out);
int xenbus_read_state(struct xs_handle *xs, xs_transaction_t t, const char *dir, int *out);

int xenbus_write(struct xs_handle *xs, xs_transaction_t t, const char *dir, const char *key,
		 const char *value);
int xenbus_printf(struct xs_handle *xs, xs_transaction_t t, const char *dir, const char *key,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int xenbus_rm(struct xs_handle *xs, xs_transaction_t t, const char *dir, const char *key);
/* Write "state" = state under dir. */
int xenbus_switch_state(struct xs_handle *xs, xs_transaction_t t, const char *dir, int state);

/*
 * Run fn inside a transaction, retrying the whole of it on EAGAIN (conflict) up to
 * max_tries times. fn returns 0 to commit, or -errno to abort (returned as is).
 * Returns 0, fn's error, -EAGAIN after max_tries conflicts, or -errno.
 */
int xenbus_transaction(struct xs_handle *xs, int (*fn)(struct xs_handle *xs,
						       xs_transaction_t t, void *arg),
		       void *arg, unsigned int max_tries);

/* ---- watches in a libev loop ---- */

struct xenbus_watcher;
typedef void xenbus_watch_cb(struct xenbus_watcher *w, const char *path, const char *token);

/*
 * Delivers the xs handle's watch events into loop. Caller allocates (embed it);
 * init/deinit pair; deinit stops the ev_io (watches themselves are removed with
 * xenbus_unwatch or by closing the handle). Events are drained at most
 * XENBUS_WATCH_BATCH per wake-up so a flood of events can't starve the loop: libev
 * calls back while more are queued.
 */
#define XENBUS_WATCH_BATCH 64
struct xenbus_watcher {
	ev_io io;
	struct ev_loop *loop;
	struct xs_handle *xs;
	xenbus_watch_cb *cb;
	void *opaque;
	bool started;
	/* Optional: the connection to xenstore failed (err = -errno); no more events will
	 * come on this handle. Set after xenbus_watcher_init. */
	void (*error_cb)(struct xenbus_watcher *w, int err);
};
int xenbus_watcher_init(struct xenbus_watcher *w, struct ev_loop *loop, struct xs_handle *xs,
			xenbus_watch_cb *cb, void *opaque);
void xenbus_watcher_deinit(struct xenbus_watcher *w);
/* Watch path with token; fires once at once (xenstore semantics). 0 or -errno. */
int xenbus_watch(struct xenbus_watcher *w, const char *path, const char *token);
int xenbus_unwatch(struct xenbus_watcher *w, const char *path, const char *token);

#endif
