/*
 * xs — xenstore helpers over libxenstore (see xs.h). The parsers are pure; the rest
 * is thin glue that turns libxenstore's bool/NULL + errno into 0 / -errno.
 */
#include "xenbus/xs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xen/io/xenbus.h>

static int errno_or(int fallback)
{
	return errno ? -errno : -fallback;
}

struct xs_handle *xenbus_xs_open(void)
{
	const char *shim = getenv("SPLITPV_SHIM");

	if (shim && *shim && !getenv("XENSTORED_PATH")) {
		char path[XENBUS_PATH_MAX];

		snprintf(path, sizeof(path), "%s/socket", shim);
		setenv("XENSTORED_PATH", path, 0);
	}
	return xs_open(0);
}

int xenbus_parse_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned int d;

		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		d = (unsigned int)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int xenbus_parse_bool(const char *s, size_t len, bool *out)
{
	if (len != 1 || (s[0] != '0' && s[0] != '1'))
		return -EINVAL;
	*out = s[0] == '1';
	return 0;
}

int xenbus_parse_state(const char *s, size_t len, int *out)
{
	uint64_t v;
	int rc = xenbus_parse_u64(s, len, XenbusStateUnknown, XenbusStateReconfigured, &v);

	if (rc == 0)
		*out = (int)v;
	return rc;
}

const char *xenbus_state_name(int state)
{
	static const char *const names[] = {
		"Unknown", "Initialising", "InitWait", "Initialised", "Connected",
		"Closing", "Closed", "Reconfiguring", "Reconfigured",
	};

	if (state < 0 || state >= (int)(sizeof(names) / sizeof(names[0])))
		return "invalid";
	return names[state];
}

/* Parse one path component as a bounded decimal; advance *p past it. */
static int take_uint(const char **p, unsigned int max, unsigned int *out)
{
	const char *s = *p;
	size_t n = strcspn(s, "/");
	uint64_t v;

	if (xenbus_parse_u64(s, n, 0, max, &v) != 0)
		return -EINVAL;
	*out = (unsigned int)v;
	*p = s + n;
	return 0;
}

static int take_literal(const char **p, const char *lit)
{
	size_t n = strlen(lit);

	if (strncmp(*p, lit, n) != 0)
		return -EINVAL;
	*p += n;
	return 0;
}

int xenbus_parse_backend_path(const char *path, unsigned int *bdom, char *type,
			      size_t type_len, unsigned int *fe_domid, unsigned int *devid,
			      const char **rest)
{
	const char *p = path;
	size_t n;

	*bdom = 0;
	if (*p == '/') {
		if (take_literal(&p, "/local/domain/") || take_uint(&p, 0x7FEF, bdom) ||
		    take_literal(&p, "/"))
			return -EINVAL;
	}
	if (take_literal(&p, "backend/"))
		return -EINVAL;
	n = strcspn(p, "/");
	if (n == 0 || n >= type_len || p[n] != '/')
		return -EINVAL;
	memcpy(type, p, n);
	type[n] = '\0';
	p += n + 1;
	if (take_uint(&p, 0x7FEF, fe_domid) || take_literal(&p, "/") ||
	    take_uint(&p, UINT32_MAX >> 1, devid))
		return -EINVAL;
	if (*p != '\0' && *p != '/')
		return -EINVAL;
	*rest = p;
	return 0;
}

int xenbus_path(char *buf, size_t len, const char *dir, const char *key)
{
	int n;

	if (key && *key)
		n = snprintf(buf, len, "%s/%s", dir, key);
	else
		n = snprintf(buf, len, "%s", dir);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

int xenbus_read_str(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		    const char *key, char **out)
{
	char path[XENBUS_PATH_MAX];
	unsigned int len = 0;
	char *v;
	int rc = xenbus_path(path, sizeof(path), dir, key);

	if (rc)
		return rc;
	errno = 0;
	v = xs_read(xs, t, path, &len);
	if (!v)
		return errno_or(EIO);
	if (len > XENBUS_VALUE_MAX) {
		free(v);
		return -E2BIG;
	}
	if (memchr(v, '\0', len)) {
		free(v);
		return -EINVAL;
	}
	*out = v; /* libxenstore NUL-terminates */
	return 0;
}

int xenbus_read_u64(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		    const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
	char *v;
	int rc = xenbus_read_str(xs, t, dir, key, &v);

	if (rc)
		return rc;
	rc = xenbus_parse_u64(v, strlen(v), min, max, out);
	free(v);
	return rc;
}

int xenbus_read_uint(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		     const char *key, unsigned int min, unsigned int max, unsigned int *out)
{
	uint64_t v;
	int rc = xenbus_read_u64(xs, t, dir, key, min, max, &v);

	if (rc == 0)
		*out = (unsigned int)v;
	return rc;
}

int xenbus_read_uint_default(struct xs_handle *xs, xs_transaction_t t, const char *dir,
			     const char *key, unsigned int min, unsigned int max,
			     unsigned int def, unsigned int *out)
{
	int rc = xenbus_read_uint(xs, t, dir, key, min, max, out);

	if (rc == -ENOENT) {
		*out = def;
		return 0;
	}
	return rc;
}

int xenbus_read_bool(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		     const char *key, bool def, bool *out)
{
	char *v;
	int rc = xenbus_read_str(xs, t, dir, key, &v);

	if (rc == -ENOENT) {
		*out = def;
		return 0;
	}
	if (rc)
		return rc;
	rc = xenbus_parse_bool(v, strlen(v), out);
	free(v);
	return rc;
}

int xenbus_read_state(struct xs_handle *xs, xs_transaction_t t, const char *dir, int *out)
{
	char *v;
	int rc = xenbus_read_str(xs, t, dir, "state", &v);

	if (rc)
		return rc;
	rc = xenbus_parse_state(v, strlen(v), out);
	free(v);
	return rc;
}

int xenbus_write(struct xs_handle *xs, xs_transaction_t t, const char *dir, const char *key,
		 const char *value)
{
	char path[XENBUS_PATH_MAX];
	int rc = xenbus_path(path, sizeof(path), dir, key);

	if (rc)
		return rc;
	errno = 0;
	if (!xs_write(xs, t, path, value, (unsigned int)strlen(value)))
		return errno_or(EIO);
	return 0;
}

int xenbus_printf(struct xs_handle *xs, xs_transaction_t t, const char *dir, const char *key,
		  const char *fmt, ...)
{
	char value[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(value))
		return -E2BIG;
	return xenbus_write(xs, t, dir, key, value);
}

int xenbus_rm(struct xs_handle *xs, xs_transaction_t t, const char *dir, const char *key)
{
	char path[XENBUS_PATH_MAX];
	int rc = xenbus_path(path, sizeof(path), dir, key);

	if (rc)
		return rc;
	errno = 0;
	if (!xs_rm(xs, t, path))
		return errno == ENOENT ? 0 : errno_or(EIO);
	return 0;
}

int xenbus_switch_state(struct xs_handle *xs, xs_transaction_t t, const char *dir, int state)
{
	return xenbus_printf(xs, t, dir, "state", "%d", state);
}

int xenbus_transaction(struct xs_handle *xs,
		       int (*fn)(struct xs_handle *xs, xs_transaction_t t, void *arg),
		       void *arg, unsigned int max_tries)
{
	for (unsigned int i = 0; i < max_tries; i++) {
		xs_transaction_t t;
		int rc;

		errno = 0;
		t = xs_transaction_start(xs);
		if (t == XBT_NULL)
			return errno_or(EIO);
		rc = fn(xs, t, arg);
		if (rc) {
			int saved = errno;

			xs_transaction_end(xs, t, true);
			errno = saved;
			return rc;
		}
		errno = 0;
		if (xs_transaction_end(xs, t, false))
			return 0;
		if (errno != EAGAIN)
			return errno_or(EIO);
	}
	return -EAGAIN;
}

static void watcher_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct xenbus_watcher *w = io->data;

	for (unsigned int i = 0; i < XENBUS_WATCH_BATCH; i++) {
		char **vec;

		errno = 0;
		vec = xs_check_watch(w->xs);
		if (!vec) {
			int err = errno;

			if (err == EAGAIN || err == 0)
				return; /* drained (the pipe byte goes with the last event) */
			/* The connection is gone: say so instead of going quiet forever. */
			ev_io_stop(w->loop, &w->io);
			w->started = false;
			if (w->error_cb)
				w->error_cb(w, -err);
			return;
		}
		w->cb(w, vec[XS_WATCH_PATH], vec[XS_WATCH_TOKEN]);
		free(vec);
		if (!w->started)
			return; /* the callback deinitialised us (device removed) */
	}
	/* Budget spent: the fd stays readable, libev calls back on the next iteration. */
}

int xenbus_watcher_init(struct xenbus_watcher *w, struct ev_loop *loop, struct xs_handle *xs,
			xenbus_watch_cb *cb, void *opaque)
{
	memset(w, 0, sizeof(*w));
	w->loop = loop;
	w->xs = xs;
	w->cb = cb;
	w->opaque = opaque;
	return 0;
}

void xenbus_watcher_deinit(struct xenbus_watcher *w)
{
	if (w->started)
		ev_io_stop(w->loop, &w->io);
	w->started = false;
}

int xenbus_watch(struct xenbus_watcher *w, const char *path, const char *token)
{
	errno = 0;
	if (!xs_watch(w->xs, path, token))
		return errno_or(EIO);
	/* xs_fileno is only meaningful once a watch exists (it starts the reader thread). */
	if (!w->started) {
		int fd = xs_fileno(w->xs);

		if (fd < 0)
			return errno_or(EIO);
		ev_io_init(&w->io, watcher_io_cb, fd, EV_READ);
		w->io.data = w;
		ev_io_start(w->loop, &w->io);
		w->started = true;
	}
	return 0;
}

int xenbus_unwatch(struct xenbus_watcher *w, const char *path, const char *token)
{
	errno = 0;
	if (!xs_unwatch(w->xs, path, token))
		return errno_or(EIO);
	return 0;
}
