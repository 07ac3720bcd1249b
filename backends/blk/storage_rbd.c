/*
 * storage_rbd — the rbd driver: a Ceph RBD image through librbd's asynchronous API.
 * params "rbd:pool[/namespace]/image[@snap][:id=client][:conf=/etc/ceph/ceph.conf]
 * [:key=value...]" (QEMU's syntax; see storage_net.h). Counterpart of storage_nbd.c.
 *
 * librbd completes I/O on its own threads: the completion callback only stores the result,
 * pushes the request on a lock-free list and writes an eventfd the device's loop watches;
 * every blk_io and all driver state are touched on the loop's thread only. Image resizes
 * arrive the same way (rbd_update_watch -> flag + eventfd) and refresh_size reports them.
 * librbd/librados are loaded with dlopen on the first open, so hosts without Ceph need
 * neither library (open fails with -ENOSYS and says why).
 *
 * Operation mapping: READ/WRITE -> rbd_aio_readv/writev, FLUSH -> rbd_aio_flush,
 * DISCARD -> rbd_aio_discard, WRITE_ZEROES -> rbd_aio_write_zeroes, FUA -> the write
 * then a flush. The first connection (rados_connect, rbd_open) blocks the device thread,
 * bounded by client_mount_timeout (SPLITPV_RBD_CONNECT_S, default 10 s).
 */
#include "backends/blk/storage_net.h"
#include "xenbus/log.h"

#include <dlfcn.h>
#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <rados/librados.h>
#include <rbd/librbd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ---- params ---- */

/* Split s at the first unescaped sep (removing escapes as we go); returns the rest or
 * NULL. Unescaping happens in place. */
static char *split_unescape(char *s, char sep, int *err)
{
	char *r = s, *w = s;

	for (; *r; r++) {
		if (*r == '\\') {
			if (!r[1]) {
				*err = -EINVAL;
				return NULL;
			}
			*w++ = *++r;
			continue;
		}
		if (*r == sep) {
			*w = '\0';
			return r + 1;
		}
		*w++ = *r;
	}
	*w = '\0';
	return NULL;
}

int blk_rbd_parse_params(const char *arg, struct blk_rbd_params *out)
{
	char *name, *rest, *opt, *slash, *at, *eq;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (!arg || !*arg)
		return -EINVAL;
	out->buf = strdup(arg);
	if (!out->buf)
		return -ENOMEM;
	name = out->buf;
	rest = split_unescape(name, ':', &err);
	if (err)
		goto bad;
	/* pool/image or pool/namespace/image; @snap at the end. */
	slash = strchr(name, '/');
	if (!slash)
		goto bad;
	*slash = '\0';
	out->pool = name;
	out->image = slash + 1;
	slash = strchr(out->image, '/');
	if (slash) {
		*slash = '\0';
		out->ns = out->image;
		out->image = slash + 1;
		if (!*out->ns)
			goto bad;
	}
	at = strchr(out->image, '@');
	if (at) {
		*at = '\0';
		out->snap = at + 1;
		if (!*out->snap)
			goto bad;
	}
	if (!*out->pool || !*out->image || strchr(out->image, '/'))
		goto bad;
	while (rest) {
		opt = rest;
		rest = split_unescape(opt, ':', &err);
		if (err)
			goto bad;
		/* The '=' is searched in the unescaped text: keys never contain one. */
		eq = strchr(opt, '=');
		if (!eq || eq == opt)
			goto bad;
		*eq = '\0';
		if (!strcmp(opt, "id")) {
			out->id = eq + 1;
		} else if (!strcmp(opt, "conf")) {
			out->conf = eq + 1;
		} else {
			if (out->nopts == BLK_RBD_MAX_OPTS)
				goto bad;
			out->key[out->nopts] = opt;
			out->val[out->nopts++] = eq + 1;
		}
	}
	return 0;
bad:
	blk_rbd_params_free(out);
	return -EINVAL;
}

void blk_rbd_params_free(struct blk_rbd_params *p)
{
	free(p->buf);
	memset(p, 0, sizeof(*p));
}

/* ---- librbd / librados, loaded at run time ---- */

#define RBD_SYMS(X)                                                                    \
	X(rados_create2) X(rados_conf_read_file) X(rados_conf_parse_env) X(rados_conf_set) \
	X(rados_connect) X(rados_shutdown) X(rados_ioctx_create) X(rados_ioctx_destroy)    \
	X(rados_ioctx_set_namespace) X(rbd_open) X(rbd_open_read_only) X(rbd_close)        \
	X(rbd_get_size) X(rbd_aio_readv) X(rbd_aio_writev) X(rbd_aio_flush)                \
	X(rbd_aio_discard) X(rbd_aio_write_zeroes) X(rbd_aio_create_completion)            \
	X(rbd_aio_get_return_value) X(rbd_aio_release) X(rbd_update_watch)                 \
	X(rbd_update_unwatch)

static struct {
#define X(f) typeof(f) *f;
	RBD_SYMS(X)
#undef X
} api;
static int api_rc = 1; /* 1 = not tried yet */
static pthread_once_t api_once = PTHREAD_ONCE_INIT;

static void api_load(void)
{
	void *rados = dlopen("librados.so.2", RTLD_NOW | RTLD_GLOBAL);
	void *rbd = rados ? dlopen("librbd.so.1", RTLD_NOW | RTLD_LOCAL) : NULL;

	if (!rados || !rbd) {
		log_err("rbd", "can't load librbd/librados (package librbd1): %s", dlerror());
		api_rc = -ENOSYS;
		return;
	}
#define X(f)                                                                           \
	api.f = (typeof(f) *)dlsym(!strncmp(#f, "rados_", 6) ? rados : rbd, #f);       \
	if (!api.f) {                                                                  \
		log_err("rbd", "librbd lacks %s", #f);                                 \
		api_rc = -ENOSYS;                                                      \
		return;                                                                \
	}
	RBD_SYMS(X)
#undef X
	/* Never dlclose: librados keeps threads and atexit handlers. */
	api_rc = 0;
}

/* ---- driver ---- */

#define DEFAULT_CONNECT_S "10"

struct rbd_req {
	struct rbd_req *next;
	struct blk_io *io;
	struct rbd_storage *rs;
	ssize_t ret;         /* librbd's result, set on its thread */
	bool flush_phase;    /* FUA write done, its flush running */
};

struct rbd_storage {
	struct blk_storage base;
	struct ev_loop *loop;
	char *name;                        /* for logs: pool/image */
	struct blk_rbd_params p;
	rados_t cluster;
	rados_ioctx_t ioctx;
	rbd_image_t image;
	uint64_t watch;
	bool watching, closing;
	unsigned inflight;                 /* loop thread only */
	struct blk_storage_info info;

	int efd;
	ev_io efd_w;
	_Atomic(struct rbd_req *) completed; /* pushed by librbd threads, LIFO */
	atomic_bool resized;                 /* set by the update watch */
	struct rbd_req *done_head, *done_tail; /* loop-side failures awaiting done_cb */
	ev_idle kick;
};

/* librbd's thread: publish and wake the loop; nothing else. */
static void rs_io_cb(rbd_completion_t c, void *arg)
{
	struct rbd_req *r = arg;
	struct rbd_storage *rs = r->rs;
	struct rbd_req *old;

	r->ret = api.rbd_aio_get_return_value(c);
	api.rbd_aio_release(c);
	old = atomic_load_explicit(&rs->completed, memory_order_relaxed);
	do {
		r->next = old;
	} while (!atomic_compare_exchange_weak_explicit(&rs->completed, &old, r,
							memory_order_release,
							memory_order_relaxed));
	(void)eventfd_write(rs->efd, 1);
}

static void rs_update_cb(void *arg)
{
	struct rbd_storage *rs = arg;

	atomic_store(&rs->resized, true);
	(void)eventfd_write(rs->efd, 1);
}

static void fail_later(struct rbd_storage *rs, struct rbd_req *r, int res)
{
	r->ret = res;
	r->next = NULL;
	if (rs->done_tail)
		rs->done_tail->next = r;
	else
		rs->done_head = r;
	rs->done_tail = r;
	ev_idle_start(rs->loop, &rs->kick);
}

static void deliver(struct rbd_req *r, int res)
{
	struct blk_io *io = r->io;

	free(r);
	io->done_cb(io, res);
}

/* Start r's librbd call: 0 or -errno (r is then not in flight). */
static int issue(struct rbd_storage *rs, struct rbd_req *r)
{
	struct blk_io *io = r->io;
	rbd_completion_t c;
	int rc;

	rc = api.rbd_aio_create_completion(r, rs_io_cb, &c);
	if (rc < 0)
		return rc;
	if (r->flush_phase) {
		rc = api.rbd_aio_flush(rs->image, c);
	} else {
		switch (io->op) {
		case BLK_IO_READ:
			rc = api.rbd_aio_readv(rs->image, io->iov, (int)io->iovcnt, io->offset, c);
			break;
		case BLK_IO_WRITE:
			rc = api.rbd_aio_writev(rs->image, io->iov, (int)io->iovcnt, io->offset, c);
			break;
		case BLK_IO_FLUSH:
			rc = api.rbd_aio_flush(rs->image, c);
			break;
		case BLK_IO_DISCARD:
			rc = api.rbd_aio_discard(rs->image, io->offset, io->len, c);
			break;
		case BLK_IO_WRITE_ZEROES:
			rc = api.rbd_aio_write_zeroes(rs->image, io->offset, io->len, c, 0, 0);
			break;
		default:
			rc = -EINVAL;
		}
	}
	if (rc < 0) {
		api.rbd_aio_release(c);
		return rc;
	}
	rs->inflight++;
	return 0;
}

/* A librbd result for r, on the loop: 0/-errno, or r went out again (FUA's flush). */
static void finish(struct rbd_storage *rs, struct rbd_req *r)
{
	struct blk_io *io = r->io;
	ssize_t ret = r->ret;
	int res;

	if (ret < 0)
		res = (int)ret;
	else if (io->op == BLK_IO_READ && !r->flush_phase && (uint64_t)ret != io->len)
		res = -EIO; /* short read: the image shrank under us */
	else
		res = 0;
	if (res == 0 && io->op == BLK_IO_WRITE && io->fua && !r->flush_phase && !rs->closing) {
		r->flush_phase = true;
		res = issue(rs, r);
		if (res == 0)
			return;
	}
	deliver(r, res);
}

static void refresh(struct rbd_storage *rs)
{
	uint64_t size;

	if (!atomic_exchange(&rs->resized, false))
		return;
	if (api.rbd_get_size(rs->image, &size) == 0 && size != rs->info.size_bytes) {
		log_info(rs->name, "image resized: %llu -> %llu bytes",
			 (unsigned long long)rs->info.size_bytes, (unsigned long long)size);
		rs->info.size_bytes = size - size % 512;
	}
}

/* Take everything librbd finished, oldest first, and finish it. */
static void drain(struct rbd_storage *rs)
{
	struct rbd_req *r = atomic_exchange_explicit(&rs->completed, NULL, memory_order_acquire);
	struct rbd_req *fifo = NULL, *next;

	for (; r; r = next) {
		next = r->next;
		r->next = fifo;
		fifo = r;
	}
	for (r = fifo; r; r = next) {
		next = r->next;
		rs->inflight--;
		finish(rs, r);
	}
}

static void efd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rbd_storage *rs = w->data;
	eventfd_t v;

	(void)eventfd_read(rs->efd, &v); /* reset before draining: no lost wake-up */
	refresh(rs);
	drain(rs);
}

static void kick_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct rbd_storage *rs = w->data;
	struct rbd_req *r = rs->done_head, *next;

	ev_idle_stop(loop, w);
	rs->done_head = rs->done_tail = NULL;
	for (; r; r = next) {
		next = r->next;
		deliver(r, (int)r->ret);
	}
}

static int rs_submit(struct blk_storage *s, struct blk_io **ios, unsigned n)
{
	struct rbd_storage *rs = (struct rbd_storage *)s;
	struct rbd_req *reqs[n ? n : 1];
	unsigned i;
	int rc;

	if (rs->closing)
		return -ESHUTDOWN;
	for (i = 0; i < n; i++) {
		reqs[i] = calloc(1, sizeof(*reqs[i]));
		if (!reqs[i]) {
			while (i-- > 0)
				free(reqs[i]);
			return -ENOMEM;
		}
		reqs[i]->io = ios[i];
		reqs[i]->rs = rs;
	}
	for (i = 0; i < n; i++) {
		struct blk_io *io = ios[i];

		if (io->op != BLK_IO_FLUSH && io->offset + io->len > rs->info.size_bytes) {
			fail_later(rs, reqs[i], -EINVAL);
			continue;
		}
		/* librbd completes on its threads, never inside the call: done_cb can't run
		 * from here. A refused call fails through the loop like any other. */
		rc = issue(rs, reqs[i]);
		if (rc)
			fail_later(rs, reqs[i], rc);
	}
	return 0;
}

static void rs_close(struct blk_storage *s);

static int cluster_connect(struct rbd_storage *rs)
{
	const char *t = getenv("SPLITPV_RBD_CONNECT_S");
	unsigned i;
	int rc;

	char full[256];

	rc = snprintf(full, sizeof(full), "client.%s", rs->p.id ? rs->p.id : "admin");
	if (rc < 0 || (size_t)rc >= sizeof(full))
		return -EINVAL;
	rc = api.rados_create2(&rs->cluster, "ceph", full, 0);
	if (rc < 0) {
		rs->cluster = NULL;
		return rc;
	}
	rc = api.rados_conf_read_file(rs->cluster, rs->p.conf); /* NULL: the usual places */
	if (rc < 0 && (rs->p.conf || rc != -ENOENT)) {
		log_err(rs->name, "can't read ceph config %s: %s",
			rs->p.conf ? rs->p.conf : "(default)", strerror(-rc));
		return rc;
	}
	(void)api.rados_conf_parse_env(rs->cluster, NULL); /* CEPH_ARGS */
	for (i = 0; i < rs->p.nopts; i++) {
		rc = api.rados_conf_set(rs->cluster, rs->p.key[i], rs->p.val[i]);
		if (rc < 0) {
			log_err(rs->name, "ceph option %s: %s", rs->p.key[i], strerror(-rc));
			return rc;
		}
	}
	rc = api.rados_conf_set(rs->cluster, "client_mount_timeout",
				t && *t ? t : DEFAULT_CONNECT_S);
	if (rc < 0)
		return rc;
	rc = api.rados_connect(rs->cluster);
	if (rc < 0) {
		log_err(rs->name, "can't connect to the cluster: %s", strerror(-rc));
		return rc;
	}
	rc = api.rados_ioctx_create(rs->cluster, rs->p.pool, &rs->ioctx);
	if (rc < 0) {
		log_err(rs->name, "pool %s: %s", rs->p.pool, strerror(-rc));
		return rc;
	}
	if (rs->p.ns)
		api.rados_ioctx_set_namespace(rs->ioctx, rs->p.ns);
	return 0;
}

static int rs_open(struct blk_storage **out, const char *arg,
			     const struct blk_storage_opts *opts, struct ev_loop *loop)
{
	struct rbd_storage *rs;
	uint64_t size;
	int rc;

	pthread_once(&api_once, api_load);
	if (api_rc)
		return api_rc;
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	rs->base.ops = &blk_storage_rbd_ops;
	rs->loop = loop;
	rs->efd = -1;
	atomic_init(&rs->completed, NULL);
	atomic_init(&rs->resized, false);
	ev_idle_init(&rs->kick, kick_cb);
	ev_set_priority(&rs->kick, EV_MAXPRI);
	rs->kick.data = rs;
	rc = blk_rbd_parse_params(arg, &rs->p);
	if (rc) {
		log_err("rbd", "bad params '%s' (rbd:pool/image[@snap][:key=value...])", arg);
		goto fail;
	}
	/* A snapshot is read-only whatever the toolstack asked. */
	rs->base.readonly = opts->readonly || rs->p.snap;
	if (asprintf(&rs->name, "rbd:%s/%s", rs->p.pool, rs->p.image) < 0) {
		rs->name = NULL;
		rc = -ENOMEM;
		goto fail;
	}
	rs->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (rs->efd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = cluster_connect(rs);
	if (rc)
		goto fail;
	if (rs->base.readonly)
		rc = api.rbd_open_read_only(rs->ioctx, rs->p.image, &rs->image, rs->p.snap);
	else
		rc = api.rbd_open(rs->ioctx, rs->p.image, &rs->image, NULL);
	if (rc < 0) {
		log_err(rs->name, "can't open image: %s", strerror(-rc));
		rs->image = NULL;
		goto fail;
	}
	rc = api.rbd_get_size(rs->image, &size);
	if (rc < 0)
		goto fail;
	rc = api.rbd_update_watch(rs->image, &rs->watch, rs_update_cb, rs);
	if (rc < 0)
		log_warn(rs->name, "no resize notifications: %s", strerror(-rc));
	else
		rs->watching = true;
	rs->info.size_bytes = size - size % 512;
	rs->info.logical_block = 512;
	rs->info.physical_block = 4096;
	rs->info.readonly = rs->base.readonly;
	rs->info.can_flush = true;      /* librbd's writeback cache may hold writes */
	rs->info.can_discard = true;
	rs->info.discard_zeroes = true; /* discarded RBD extents read back as zeros */
	rs->info.discard_granularity = 4096;
	ev_io_init(&rs->efd_w, efd_cb, rs->efd, EV_READ);
	rs->efd_w.data = rs;
	ev_io_start(loop, &rs->efd_w);
	log_info(rs->name, "%llu bytes%s", (unsigned long long)rs->info.size_bytes,
		 rs->base.readonly ? ", read-only" : "");
	*out = &rs->base;
	return 0;
fail:
	rs_close(&rs->base);
	return rc;
}

static void rs_close(struct blk_storage *s)
{
	struct rbd_storage *rs = (struct rbd_storage *)s;

	rs->closing = true;
	ev_io_stop(rs->loop, &rs->efd_w);
	if (rs->image) {
		if (rs->watching)
			(void)api.rbd_update_unwatch(rs->image, rs->watch);
		/* rbd_close waits for our I/O in flight: the callers' buffers stay in use
		 * until then. Its completions are finished below. */
		(void)api.rbd_close(rs->image);
	}
	drain(rs);
	kick_cb(rs->loop, &rs->kick, 0);
	if (rs->ioctx)
		api.rados_ioctx_destroy(rs->ioctx);
	if (rs->cluster)
		api.rados_shutdown(rs->cluster);
	if (rs->efd >= 0)
		close(rs->efd);
	blk_rbd_params_free(&rs->p);
	free(rs->name);
	free(rs);
}

static int rs_info(struct blk_storage *s, struct blk_storage_info *out)
{
	*out = ((struct rbd_storage *)s)->info;
	return 0;
}

static int rs_refresh_size(struct blk_storage *s, uint64_t *size_bytes)
{
	struct rbd_storage *rs = (struct rbd_storage *)s;

	refresh(rs);
	*size_bytes = rs->info.size_bytes;
	return 0;
}

const struct blk_storage_ops blk_storage_rbd_ops = {
	.name = "rbd",
	.open = rs_open,
	.close = rs_close,
	.info = rs_info,
	.submit = rs_submit,
	.refresh_size = rs_refresh_size,
};
