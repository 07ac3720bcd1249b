/*
 * storage_nbd — the nbd driver: a disk on any NBD server (qemu-nbd, qemu-storage-daemon,
 * nbdkit, ...) through libnbd's asynchronous API, its socket watched by the device's
 * libev loop. params is an NBD URI passed to libnbd verbatim: nbd://host[:port]/export,
 * nbd+unix:///export?socket=/path, nbds:// and nbds+unix:// for TLS. Counterpart of
 * storage_file.c; selected by the registry in storage.c.
 *
 * Operation mapping: READ/WRITE -> NBD_CMD_READ/WRITE (split at the server's maximum
 * payload; scattered iovecs go through a bounce buffer), FUA -> NBD_CMD_FLAG_FUA or a
 * write followed by a flush, FLUSH -> NBD_CMD_FLUSH, DISCARD -> NBD_CMD_TRIM,
 * WRITE_ZEROES -> NBD_CMD_WRITE_ZEROES (-EOPNOTSUPP when the server lacks either).
 *
 * Server outages: when the connection dies, I/O in flight and I/O submitted afterwards is
 * held (not failed) while we reconnect with backoff (20 ms doubling to 2 s); held I/O is
 * re-issued in full after the reconnect (reads and writes are idempotent; a write the old
 * server acknowledged but never flushed is as lost as a volatile disk cache's would be,
 * which is what FLUSH is for). If the server is not back within the hold time
 * (SPLITPV_NBD_HOLD_MS, default 30000) held I/O fails with -EIO, and I/O fails at once
 * until a connection is made again. The first connection (in open) is synchronous,
 * bounded by SPLITPV_NBD_CONNECT_MS (default 5000); later ones never block the loop
 * (name resolution for nbd://host aside: libnbd resolves synchronously).
 */
#include "backends/blk/storage_net.h"
#include "xenbus/log.h"

#include <errno.h>
#include <ev.h>
#include <libnbd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_QD 64u
#define MAX_QD 4096u
#define DEFAULT_HOLD_MS 30000u
#define DEFAULT_CONNECT_MS 5000u
#define BACKOFF_MIN_S 0.02
#define BACKOFF_MAX_S 2.0
#define DEFAULT_MAX_PAYLOAD (32u << 20)  /* libnbd's own limit is 64 MiB */
#define MAX_RANGE_CHUNK (1u << 30)       /* TRIM / WRITE_ZEROES: 32-bit lengths on the wire */

enum nbd_conn_state {
	CONN_DOWN,       /* no handle; the retry timer is running */
	CONN_CONNECTING, /* handle connecting; the fd watcher and connect timer run */
	CONN_READY,      /* commands can be issued */
};

struct nbd_storage;

/* Our side of one blk_io: which list it is on, its commands, its bounce buffer. */
struct nbd_req {
	struct nbd_req *prev, *next;
	struct blk_io *io;
	struct nbd_storage *ns;
	void *bounce;        /* scattered READ/WRITE: one contiguous buffer (malloc'd) */
	unsigned gen;        /* connection generation the commands were issued on */
	unsigned chunks;     /* commands outstanding */
	int err;             /* first error of a command (positive errno), 0 = none */
	bool flush_phase;    /* emulated FUA: the write is done, its flush is running */
	int res;             /* final result, when on the done list */
};

struct req_list {
	struct nbd_req *head, *tail;
	unsigned n;
};

struct nbd_storage {
	struct blk_storage base;
	struct ev_loop *loop;
	char *uri;
	struct nbd_handle *h;
	enum nbd_conn_state state;
	unsigned gen;             /* bumped whenever a handle is dropped */
	bool closing;
	bool servicing;           /* inside service(): submit only queues */
	bool expired;             /* the hold time ran out during this outage */
	double backoff;           /* seconds until the next attempt */
	unsigned hold_ms, connect_ms, qd;
	uint32_t max_payload;
	bool can_fua, can_flush, can_trim, can_zero;
	struct blk_storage_info info;

	struct req_list pend;     /* accepted, not issued (queue depth, or held) */
	struct req_list inflight; /* commands on the wire */
	struct req_list done;     /* finished; done_cb due from the loop */

	ev_io fd_w;               /* the handle's socket */
	int fd_events;            /* what fd_w watches now (0 = stopped) */
	ev_timer retry_t;         /* CONN_DOWN: next connection attempt */
	ev_timer connect_t;       /* CONN_CONNECTING: give up on this attempt */
	ev_timer hold_t;          /* an outage: when held I/O starts failing */
	ev_idle kick;             /* delivers done from the loop */
};

/* ---- lists ---- */

static void list_add(struct req_list *l, struct nbd_req *r, bool front)
{
	r->prev = r->next = NULL;
	if (!l->head) {
		l->head = l->tail = r;
	} else if (front) {
		r->next = l->head;
		l->head->prev = r;
		l->head = r;
	} else {
		r->prev = l->tail;
		l->tail->next = r;
		l->tail = r;
	}
	l->n++;
}

static void list_del(struct req_list *l, struct nbd_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->prev = r->next = NULL;
	l->n--;
}

/* Append src to dst (front: before dst's entries), leaving src empty. */
static void list_splice(struct req_list *dst, struct req_list *src, bool front)
{
	if (!src->head)
		return;
	if (!dst->head) {
		*dst = *src;
	} else if (front) {
		src->tail->next = dst->head;
		dst->head->prev = src->tail;
		dst->head = src->head;
		dst->n += src->n;
	} else {
		dst->tail->next = src->head;
		src->head->prev = dst->tail;
		dst->tail = src->tail;
		dst->n += src->n;
	}
	src->head = src->tail = NULL;
	src->n = 0;
}

/* ---- helpers ---- */

static unsigned env_ms(const char *name, unsigned def)
{
	const char *v = getenv(name);
	char *end;
	unsigned long ms;

	if (!v || !*v)
		return def;
	errno = 0;
	ms = strtoul(v, &end, 10);
	if (errno || *end || ms == 0 || ms > 24ul * 3600 * 1000)
		return def;
	return (unsigned)ms;
}

static bool conn_lost_errno(int e)
{
	/* What libnbd reports for commands a dying connection took with it, and what a
	 * server shutting down answers (NBD_ESHUTDOWN). */
	return e == ENOTCONN || e == ESHUTDOWN || e == ECONNRESET || e == EPIPE ||
	       e == ECONNABORTED || e == ETIMEDOUT;
}

/* libnbd's last error message on this thread, never NULL. */
static const char *errstr(void)
{
	const char *e = nbd_get_error();

	return e ? e : "unknown error";
}

static void finish(struct nbd_storage *ns, struct nbd_req *r, int res)
{
	r->res = res;
	list_add(&ns->done, r, false);
	ev_idle_start(ns->loop, &ns->kick);
}

static void deliver(struct nbd_req *r)
{
	struct blk_io *io = r->io;
	int res = r->res;

	free(r->bounce);
	free(r);
	io->done_cb(io, res);
}

static void set_watch(struct nbd_storage *ns)
{
	int ev = 0, fd;
	unsigned dir;

	if (ns->h && ns->state != CONN_DOWN) {
		dir = nbd_aio_get_direction(ns->h);
		ev = ((dir & LIBNBD_AIO_DIRECTION_READ) ? EV_READ : 0) |
		     ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? EV_WRITE : 0);
	}
	if (ev == ns->fd_events)
		return;
	ev_io_stop(ns->loop, &ns->fd_w);
	ns->fd_events = 0;
	if (!ev)
		return;
	fd = (int)nbd_aio_get_fd(ns->h);
	if (fd < 0)
		return;
	ev_io_set(&ns->fd_w, fd, ev);
	ev_io_start(ns->loop, &ns->fd_w);
	ns->fd_events = ev;
}

/* The iov as one buffer, when its pieces are already adjacent in memory. */
static void *contiguous(const struct blk_io *io)
{
	char *p = io->iov[0].iov_base;
	unsigned i;

	for (i = 1; i < io->iovcnt; i++)
		if ((char *)io->iov[i].iov_base != (char *)io->iov[i - 1].iov_base +
							   io->iov[i - 1].iov_len)
			return NULL;
	return p;
}

static void copy_out(struct blk_io *io, const char *src)
{
	unsigned i;

	for (i = 0; i < io->iovcnt; i++) {
		memcpy(io->iov[i].iov_base, src, io->iov[i].iov_len);
		src += io->iov[i].iov_len;
	}
}

static void copy_in(const struct blk_io *io, char *dst)
{
	unsigned i;

	for (i = 0; i < io->iovcnt; i++) {
		memcpy(dst, io->iov[i].iov_base, io->iov[i].iov_len);
		dst += io->iov[i].iov_len;
	}
}

/* ---- commands ---- */

/*
 * libnbd calls this from inside nbd_aio_notify_* (our loop's thread) with the handle
 * locked: record the result only, no nbd_* calls. Commands of a dropped handle (gen
 * moved on) are ignored: their request was already put back on the held list.
 */
static int chunk_cb(void *user_data, int *error)
{
	struct nbd_req *r = user_data;
	struct nbd_storage *ns = r->ns;

	if (r->gen != ns->gen)
		return 1;
	if (*error && !r->err)
		r->err = *error;
	if (--r->chunks == 0) {
		list_del(&ns->inflight, r);
		r->res = r->err ? -r->err : 0;
		list_add(&ns->done, r, false);
		ev_idle_start(ns->loop, &ns->kick);
	}
	return 1;
}

/* Issue one command; 0 or errno (positive, as libnbd reports it). */
static int issue_one(struct nbd_storage *ns, struct nbd_req *r, enum blk_io_op op, char *buf,
		     uint64_t off, uint64_t len, uint32_t flags)
{
	nbd_completion_callback cb = { .callback = chunk_cb, .user_data = r };
	int64_t cookie = -1;

	switch (op) {
	case BLK_IO_READ:
		cookie = nbd_aio_pread(ns->h, buf, len, off, cb, 0);
		break;
	case BLK_IO_WRITE:
		cookie = nbd_aio_pwrite(ns->h, buf, len, off, cb, flags);
		break;
	case BLK_IO_FLUSH:
		cookie = nbd_aio_flush(ns->h, cb, 0);
		break;
	case BLK_IO_DISCARD:
		cookie = nbd_aio_trim(ns->h, len, off, cb, 0);
		break;
	case BLK_IO_WRITE_ZEROES:
		cookie = nbd_aio_zero(ns->h, len, off, cb, 0);
		break;
	}
	if (cookie >= 0) {
		r->chunks++;
		return 0;
	}
	return nbd_get_errno() ? nbd_get_errno() : EIO;
}

/*
 * Put r on the wire: every chunk, or (first chunk refused) none. Returns 0 (on the
 * inflight list, or on done when a later chunk was refused and none is outstanding),
 * or a positive errno with r on no list.
 */
static int issue(struct nbd_storage *ns, struct nbd_req *r)
{
	struct blk_io *io = r->io;
	enum blk_io_op op = r->flush_phase ? BLK_IO_FLUSH : io->op;
	uint64_t pos = 0, step, n;
	uint32_t flags = 0;
	char *buf = NULL;
	int err = 0;

	r->gen = ns->gen;
	r->chunks = 0;
	r->err = 0;
	if (op == BLK_IO_READ || op == BLK_IO_WRITE) {
		buf = r->bounce ? r->bounce : io->iov[0].iov_base;
		if (op == BLK_IO_WRITE && io->fua && ns->can_fua)
			flags = LIBNBD_CMD_FLAG_FUA;
	}
	step = op == BLK_IO_READ || op == BLK_IO_WRITE ? ns->max_payload : MAX_RANGE_CHUNK;
	/* Listed before issuing: libnbd may complete a command before nbd_aio_* returns
	 * only through notify, but keep the list consistent at every point anyway. */
	list_add(&ns->inflight, r, false);
	do {
		n = op == BLK_IO_FLUSH ? 0 : (io->len - pos < step ? io->len - pos : step);
		err = issue_one(ns, r, op, buf ? buf + pos : NULL, io->offset + pos, n, flags);
		if (err)
			break;
		pos += n;
	} while (pos < io->len && op != BLK_IO_FLUSH);
	if (!err)
		return 0;
	if (r->chunks == 0) {
		list_del(&ns->inflight, r);
		return err;
	}
	/* Some chunks are out: the request finishes with err when they come back. */
	if (!r->err)
		r->err = err;
	return 0;
}

/* Issue held/queued requests up to the queue depth. */
static void pump(struct nbd_storage *ns)
{
	struct nbd_req *r;
	int err;

	while (ns->state == CONN_READY && ns->inflight.n < ns->qd && (r = ns->pend.head)) {
		list_del(&ns->pend, r);
		err = issue(ns, r);
		if (!err)
			continue;
		if (conn_lost_errno(err) || nbd_aio_is_dead(ns->h) || nbd_aio_is_closed(ns->h)) {
			list_add(&ns->pend, r, true); /* held until the reconnect */
			break;
		}
		finish(ns, r, -err);
	}
}

/* ---- connection ---- */

static void start_retry(struct nbd_storage *ns);

static void drop_handle(struct nbd_storage *ns)
{
	ev_io_stop(ns->loop, &ns->fd_w);
	ns->fd_events = 0;
	ev_timer_stop(ns->loop, &ns->connect_t);
	ns->gen++; /* callbacks from here on belong to no request */
	if (ns->h)
		nbd_close(ns->h);
	ns->h = NULL;
	ns->state = CONN_DOWN;
}

/* The connection is gone: hold everything in flight and start reconnecting. */
static void conn_lost(struct nbd_storage *ns, const char *why)
{
	struct nbd_req *r;

	if (ns->state == CONN_READY)
		log_warn(ns->uri, "connection lost (%s): holding I/O up to %u ms, reconnecting",
			 why, ns->hold_ms);
	drop_handle(ns);
	for (r = ns->inflight.head; r; r = r->next)
		r->chunks = 0;
	list_splice(&ns->pend, &ns->inflight, true);
	if (!ev_is_active(&ns->hold_t) && !ns->expired) {
		ev_timer_set(&ns->hold_t, ns->hold_ms / 1000.0, 0.);
		ev_timer_start(ns->loop, &ns->hold_t);
	}
	if (ns->expired) {
		while ((r = ns->pend.head)) {
			list_del(&ns->pend, r);
			finish(ns, r, -EIO);
		}
	}
	start_retry(ns);
}

static void read_caps(struct nbd_storage *ns)
{
	int64_t maxp = nbd_get_block_size(ns->h, LIBNBD_SIZE_MAXIMUM);

	ns->can_fua = nbd_can_fua(ns->h) == 1;
	ns->can_flush = nbd_can_flush(ns->h) == 1;
	ns->can_trim = nbd_can_trim(ns->h) == 1;
	ns->can_zero = nbd_can_zero(ns->h) == 1;
	ns->max_payload = maxp > 0 && maxp < DEFAULT_MAX_PAYLOAD ? (uint32_t)maxp :
								  DEFAULT_MAX_PAYLOAD;
	/* Keep chunks whole logical blocks. */
	if (ns->info.logical_block && ns->max_payload >= ns->info.logical_block)
		ns->max_payload -= ns->max_payload % ns->info.logical_block;
}

/* Geometry and capabilities of a fresh connection into ns->info (open only). */
static int read_info(struct nbd_storage *ns)
{
	struct blk_storage_info *in = &ns->info;
	int64_t size = nbd_get_size(ns->h);
	int64_t minb = nbd_get_block_size(ns->h, LIBNBD_SIZE_MINIMUM);
	int64_t pref = nbd_get_block_size(ns->h, LIBNBD_SIZE_PREFERRED);

	if (size < 0)
		return -(nbd_get_errno() ? nbd_get_errno() : EIO);
	memset(in, 0, sizeof(*in));
	if (minb > 4096) {
		log_err(ns->uri, "server's minimum block size %lld is above 4096",
			(long long)minb);
		return -EINVAL;
	}
	in->logical_block = minb > 512 ? 4096 : 512;
	in->physical_block = in->logical_block;
	if (pref > in->logical_block && pref <= 4096 && !(pref & (pref - 1)))
		in->physical_block = (uint32_t)pref;
	in->size_bytes = (uint64_t)size - (uint64_t)size % in->logical_block;
	if (nbd_is_read_only(ns->h) == 1 && !ns->base.readonly) {
		log_info(ns->uri, "read-only export: serving it read-only");
		ns->base.readonly = true;
	}
	in->readonly = ns->base.readonly;
	read_caps(ns);
	in->can_flush = ns->can_flush;
	in->can_discard = ns->can_trim;
	in->discard_zeroes = false; /* NBD_CMD_TRIM promises nothing about what reads back */
	in->discard_granularity = pref > 0 && pref <= UINT32_MAX ? (uint32_t)pref : 0;
	return 0;
}

static void conn_ready(struct nbd_storage *ns)
{
	int64_t size = nbd_get_size(ns->h);

	ev_timer_stop(ns->loop, &ns->connect_t);
	ev_timer_stop(ns->loop, &ns->hold_t);
	ns->state = CONN_READY;
	ns->expired = false;
	ns->backoff = BACKOFF_MIN_S;
	read_caps(ns);
	if (size >= 0 && (uint64_t)size != ns->info.size_bytes) {
		log_info(ns->uri, "export size is now %lld bytes", (long long)size);
		ns->info.size_bytes = (uint64_t)size - (uint64_t)size % ns->info.logical_block;
	}
	if (nbd_is_read_only(ns->h) == 1 && !ns->base.readonly)
		log_warn(ns->uri, "export became read-only: writes will fail");
	log_info(ns->uri, "connected; re-issuing %u held request(s)", ns->pend.n);
}

static struct nbd_handle *new_handle(struct nbd_storage *ns)
{
	struct nbd_handle *h = nbd_create();

	if (!h)
		return NULL;
	/* params come from the toolstack (dom0 admin), never from the guest: a TLS PSK
	 * file named in the URI is fine to read. */
	if (nbd_set_uri_allow_local_file(h, true) < 0 || nbd_set_handle_name(h, "splitpv") < 0 ||
	    nbd_set_pread_initialize(h, false) < 0) {
		nbd_close(h);
		return NULL;
	}
	return h;
}

/* Start one connection attempt: 0 (CONN_CONNECTING or CONN_READY) or -errno. */
static int attempt(struct nbd_storage *ns)
{
	int e;

	ns->h = new_handle(ns);
	if (!ns->h)
		return -ENOMEM;
	if (nbd_aio_connect_uri(ns->h, ns->uri) < 0) {
		e = nbd_get_errno() ? nbd_get_errno() : ECONNREFUSED;
		log_debug(ns->uri, "connect: %s", errstr());
		drop_handle(ns);
		return -e;
	}
	ns->state = CONN_CONNECTING;
	if (nbd_aio_is_ready(ns->h))
		ns->state = CONN_READY;
	return 0;
}

static void service(struct nbd_storage *ns);

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct nbd_storage *ns = w->data;

	if (attempt(ns) < 0) {
		start_retry(ns);
		return;
	}
	if (ns->state == CONN_READY) {
		conn_ready(ns);
	} else {
		ev_timer_set(&ns->connect_t, ns->connect_ms / 1000.0, 0.);
		ev_timer_start(loop, &ns->connect_t);
	}
	service(ns);
}

static void start_retry(struct nbd_storage *ns)
{
	if (ns->closing)
		return;
	ev_timer_stop(ns->loop, &ns->retry_t);
	ev_timer_set(&ns->retry_t, ns->backoff, 0.);
	ev_timer_start(ns->loop, &ns->retry_t);
	ns->backoff *= 2;
	if (ns->backoff > BACKOFF_MAX_S)
		ns->backoff = BACKOFF_MAX_S;
}

static void connect_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct nbd_storage *ns = w->data;

	log_debug(ns->uri, "connection attempt timed out");
	drop_handle(ns);
	start_retry(ns);
}

static void hold_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct nbd_storage *ns = w->data;
	struct nbd_req *r;

	if (ns->state == CONN_READY)
		return;
	log_err(ns->uri, "server still away after %u ms: failing %u held request(s) with EIO "
			 "(and new ones until it is back)", ns->hold_ms, ns->pend.n);
	ns->expired = true;
	while ((r = ns->pend.head)) {
		list_del(&ns->pend, r);
		finish(ns, r, -EIO);
	}
}

/* ---- the loop side ---- */

/* Finished requests: a failure from a lost connection goes back to held; an emulated
 * FUA write goes on to its flush; a read through a bounce buffer is copied out. */
static void reap(struct nbd_storage *ns, struct nbd_req *r)
{
	struct blk_io *io = r->io;

	if (r->res < 0 && !ns->closing &&
	    (conn_lost_errno(-r->res) || !ns->h || nbd_aio_is_dead(ns->h) ||
	     nbd_aio_is_closed(ns->h))) {
		if (ns->expired && ns->state != CONN_READY) {
			r->res = -EIO;
			deliver(r);
		} else {
			list_add(&ns->pend, r, true); /* held: re-issued after the reconnect */
		}
		return;
	}
	if (r->res == 0 && io->op == BLK_IO_WRITE && io->fua && !ns->can_fua && ns->can_flush &&
	    !r->flush_phase && !ns->closing) {
		r->flush_phase = true;
		list_add(&ns->pend, r, true);
		return;
	}
	if (r->res == 0 && io->op == BLK_IO_READ && r->bounce)
		copy_out(io, r->bounce);
	deliver(r);
}

static void run_done(struct nbd_storage *ns)
{
	struct req_list done = ns->done;
	struct nbd_req *r;

	ns->done.head = ns->done.tail = NULL;
	ns->done.n = 0;
	/* Detached: done_cb may submit more, which lands on fresh lists. */
	while ((r = done.head)) {
		list_del(&done, r);
		reap(ns, r);
	}
}

static void service(struct nbd_storage *ns)
{
	if (ns->servicing)
		return;
	ns->servicing = true;
	ev_idle_stop(ns->loop, &ns->kick);
	for (;;) {
		run_done(ns);
		if (ns->state == CONN_CONNECTING && ns->h) {
			if (nbd_aio_is_ready(ns->h))
				conn_ready(ns);
			else if (nbd_aio_is_dead(ns->h) || nbd_aio_is_closed(ns->h)) {
				log_debug(ns->uri, "connect failed: %s", errstr());
				drop_handle(ns);
				start_retry(ns);
			}
		}
		if (ns->state == CONN_READY && (nbd_aio_is_dead(ns->h) || nbd_aio_is_closed(ns->h)))
			conn_lost(ns, "server closed the connection");
		pump(ns);
		if (!ns->done.head && !(ns->state == CONN_READY && nbd_aio_is_dead(ns->h)))
			break;
	}
	set_watch(ns);
	ns->servicing = false;
}

static void fd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct nbd_storage *ns = w->data;

	if ((revents & EV_READ) && nbd_aio_notify_read(ns->h) < 0)
		log_debug(ns->uri, "notify_read: %s", errstr());
	if ((revents & EV_WRITE) && ns->h && !nbd_aio_is_dead(ns->h) &&
	    nbd_aio_notify_write(ns->h) < 0)
		log_debug(ns->uri, "notify_write: %s", errstr());
	service(ns);
}

static void kick_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	service(w->data);
}

/* ---- ops ---- */

static int ns_submit(struct blk_storage *s, struct blk_io **ios, unsigned n)
{
	struct nbd_storage *ns = (struct nbd_storage *)s;
	struct nbd_req *rs[n ? n : 1];
	unsigned i;

	if (ns->closing)
		return -ESHUTDOWN;
	for (i = 0; i < n; i++) {
		struct blk_io *io = ios[i];

		rs[i] = calloc(1, sizeof(*rs[i]));
		if (!rs[i])
			goto nomem;
		rs[i]->io = io;
		rs[i]->ns = ns;
		if ((io->op == BLK_IO_READ || io->op == BLK_IO_WRITE) && io->iovcnt > 1 &&
		    !contiguous(io)) {
			rs[i]->bounce = malloc(io->len);
			if (!rs[i]->bounce) {
				free(rs[i]);
				goto nomem;
			}
			if (io->op == BLK_IO_WRITE)
				copy_in(io, rs[i]->bounce);
		}
	}
	for (i = 0; i < n; i++) {
		struct blk_io *io = ios[i];

		if (io->op != BLK_IO_FLUSH && io->offset + io->len > ns->info.size_bytes)
			finish(ns, rs[i], -EINVAL);
		else if ((io->op == BLK_IO_DISCARD && !ns->can_trim) ||
			 (io->op == BLK_IO_WRITE_ZEROES && !ns->can_zero))
			finish(ns, rs[i], -EOPNOTSUPP);
		else if (io->op == BLK_IO_FLUSH && !ns->can_flush)
			finish(ns, rs[i], 0); /* no volatile cache announced */
		else if (ns->state != CONN_READY && ns->expired)
			finish(ns, rs[i], -EIO);
		else
			list_add(&ns->pend, rs[i], false);
	}
	if (!ns->servicing) {
		pump(ns);
		/* A server gone while we were idle shows up on the first write. */
		if (ns->state == CONN_READY && (nbd_aio_is_dead(ns->h) || nbd_aio_is_closed(ns->h)))
			conn_lost(ns, "server closed the connection");
		set_watch(ns);
	}
	return 0;
nomem:
	while (i-- > 0) {
		free(rs[i]->bounce);
		free(rs[i]);
	}
	return -ENOMEM;
}

static void ns_close(struct blk_storage *s);

/* The first connection, synchronously: the device can't be described without it. */
static int connect_sync(struct nbd_storage *ns)
{
	struct timespec t0, t;
	long left;
	int rc, e;

	rc = attempt(ns);
	if (rc)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!nbd_aio_is_ready(ns->h)) {
		if (nbd_aio_is_dead(ns->h) || nbd_aio_is_closed(ns->h)) {
			e = nbd_get_errno();
			log_err(ns->uri, "can't connect: %s", errstr());
			return -(e ? e : ECONNREFUSED);
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		left = (long)ns->connect_ms - ((t.tv_sec - t0.tv_sec) * 1000 +
					       (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0) {
			log_err(ns->uri, "no answer from the server in %u ms", ns->connect_ms);
			return -ETIMEDOUT;
		}
		if (nbd_poll(ns->h, (int)left) < 0 && !nbd_aio_is_dead(ns->h)) {
			e = nbd_get_errno();
			log_err(ns->uri, "can't connect: %s", errstr());
			return -(e ? e : EIO);
		}
	}
	ns->state = CONN_READY;
	return 0;
}

static int ns_open(struct blk_storage **out, const char *arg,
			    const struct blk_storage_opts *opts, struct ev_loop *loop)
{
	struct nbd_storage *ns;
	int rc;

	ns = calloc(1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	ns->base.ops = &blk_storage_nbd_ops;
	ns->base.readonly = opts->readonly;
	ns->loop = loop;
	ns->state = CONN_DOWN;
	ns->backoff = BACKOFF_MIN_S;
	ns->hold_ms = env_ms("SPLITPV_NBD_HOLD_MS", DEFAULT_HOLD_MS);
	ns->connect_ms = env_ms("SPLITPV_NBD_CONNECT_MS", DEFAULT_CONNECT_MS);
	ns->qd = opts->queue_depth ? opts->queue_depth : DEFAULT_QD;
	if (ns->qd > MAX_QD)
		ns->qd = MAX_QD;
	ev_init(&ns->fd_w, fd_cb);
	ns->fd_w.data = ns;
	ev_init(&ns->retry_t, retry_cb);
	ns->retry_t.data = ns;
	ev_init(&ns->connect_t, connect_timeout_cb);
	ns->connect_t.data = ns;
	ev_init(&ns->hold_t, hold_cb);
	ns->hold_t.data = ns;
	ev_idle_init(&ns->kick, kick_cb);
	ev_set_priority(&ns->kick, EV_MAXPRI); /* don't starve behind a busy event channel */
	ns->kick.data = ns;
	ns->uri = strdup(arg);
	if (!ns->uri) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = connect_sync(ns);
	if (rc)
		goto fail;
	rc = read_info(ns);
	if (rc)
		goto fail;
	set_watch(ns);
	log_info(ns->uri, "%llu bytes, block %u/%u, max payload %u%s%s%s%s%s",
		 (unsigned long long)ns->info.size_bytes, ns->info.logical_block,
		 ns->info.physical_block, ns->max_payload, ns->can_flush ? ", flush" : "",
		 ns->can_fua ? ", fua" : "", ns->can_trim ? ", trim" : "",
		 ns->can_zero ? ", zero" : "", ns->base.readonly ? ", read-only" : "");
	*out = &ns->base;
	return 0;
fail:
	ns_close(&ns->base);
	return rc;
}

static void ns_close(struct blk_storage *s)
{
	struct nbd_storage *ns = (struct nbd_storage *)s;
	struct nbd_req *r;
	struct timespec t0, t;

	ns->closing = true;
	ev_idle_stop(ns->loop, &ns->kick);
	ev_timer_stop(ns->loop, &ns->retry_t);
	ev_timer_stop(ns->loop, &ns->hold_t);
	ev_io_stop(ns->loop, &ns->fd_w);
	ns->fd_events = 0;
	/* Buffers belong to the caller: let what is on the wire finish (bounded). */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (ns->inflight.n && ns->state == CONN_READY && !nbd_aio_is_dead(ns->h) &&
	       !nbd_aio_is_closed(ns->h)) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec >= 5)
			break;
		if (nbd_poll(ns->h, 1000) < 0)
			break;
	}
	if (ns->state == CONN_READY && !ns->inflight.n && nbd_aio_is_ready(ns->h))
		(void)nbd_shutdown(ns->h, 0);
	drop_handle(ns); /* no callback touches a request after this */
	while ((r = ns->inflight.head)) {
		list_del(&ns->inflight, r);
		r->res = -EIO;
		deliver(r);
	}
	while ((r = ns->done.head)) {
		list_del(&ns->done, r);
		if (r->res == 0 && r->io->op == BLK_IO_READ && r->bounce)
			copy_out(r->io, r->bounce);
		deliver(r);
	}
	while ((r = ns->pend.head)) {
		list_del(&ns->pend, r);
		r->res = -ECANCELED;
		deliver(r);
	}
	ev_idle_stop(ns->loop, &ns->kick); /* completions above may have started it */
	free(ns->uri);
	free(ns);
}

static int ns_info(struct blk_storage *s, struct blk_storage_info *out)
{
	*out = ((struct nbd_storage *)s)->info;
	return 0;
}

/* NBD has no resize notification: the size is re-read at every (re)connection. */
static int ns_refresh_size(struct blk_storage *s, uint64_t *size_bytes)
{
	*size_bytes = ((struct nbd_storage *)s)->info.size_bytes;
	return 0;
}

const struct blk_storage_ops blk_storage_nbd_ops = {
	.name = "nbd",
	.open = ns_open,
	.close = ns_close,
	.info = ns_info,
	.submit = ns_submit,
	.refresh_size = ns_refresh_size,
};
