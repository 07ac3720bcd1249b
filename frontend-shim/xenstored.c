/*
 * xenstored — the shim's xenstore daemon core (API in xenstored.h): UNIX sockets served
 * from one libev loop, per-connection input and output buffers with bounds, domains.
 * Message semantics are in xs_ops.c, the node map in xs_store.c.
 */
#include "frontend-shim/xenstored.h"
#include "frontend-shim/xs_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents);

int shim_xs_socket_path(const char *rundir, unsigned int domid, char *buf, size_t len)
{
	int n;

	if (!rundir || !buf)
		return -EINVAL;
	if (domid == 0)
		n = snprintf(buf, len, "%s/socket", rundir);
	else
		n = snprintf(buf, len, "%s/domain-%u.sock", rundir, domid);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

struct shim_xs_dom *shim_xs_dom_find(struct shim_xs *xs, unsigned int domid)
{
	for (struct shim_xs_dom *d = xs->doms; d; d = d->next)
		if (d->domid == domid)
			return d;
	return NULL;
}

/* ---- connections ---- */

static bool conn_throttled(const struct shim_xs_conn *c)
{
	/* A client that doesn't read its replies stops being read; guests also get
	 * xenstored's "outstanding requests" quota. */
	return c->out_bytes >= SHIM_XS_OUT_SOFT ||
	       (c->domid != 0 && c->out_replies >= SHIM_XS_QUOTA_OUTSTANDING);
}

static void conn_update_io(struct shim_xs_conn *c)
{
	struct ev_loop *loop = c->xs->loop;

	if (c->fake || c->closing || !loop)
		return;
	if (conn_throttled(c))
		ev_io_stop(loop, &c->rio);
	else
		ev_io_start(loop, &c->rio);
	if (c->out_head)
		ev_io_start(loop, &c->wio);
	else
		ev_io_stop(loop, &c->wio);
}

static uint32_t payload_hash(const void *p, uint32_t len)
{
	const unsigned char *b = p;
	uint32_t h = 2166136261u;

	for (uint32_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static void evidx_grow(struct shim_xs_conn *c)
{
	size_t n = c->evidx_n ? c->evidx_n * 2 : 64;
	struct shim_xs_outmsg **t = calloc(n, sizeof(*t));

	if (!t) /* longer chains, still correct */
		return;
	for (size_t i = 0; i < c->evidx_n; i++) {
		struct shim_xs_outmsg *m = c->evidx[i];

		while (m) {
			struct shim_xs_outmsg *next = m->hnext;

			m->hnext = t[m->hash & (n - 1)];
			t[m->hash & (n - 1)] = m;
			m = next;
		}
	}
	free(c->evidx);
	c->evidx = t;
	c->evidx_n = n;
}

static void evidx_remove(struct shim_xs_conn *c, struct shim_xs_outmsg *m)
{
	struct shim_xs_outmsg **pp;

	if (!m->indexed)
		return;
	for (pp = &c->evidx[m->hash & (c->evidx_n - 1)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == m) {
			*pp = m->hnext;
			c->evidx_count--;
			break;
		}
	}
	m->indexed = false;
}

static void out_free_all(struct shim_xs_conn *c)
{
	free(c->evidx);
	c->evidx = NULL;
	c->evidx_n = c->evidx_count = 0;
	while (c->out_head) {
		struct shim_xs_outmsg *m = c->out_head;

		c->out_head = m->next;
		free(m);
	}
	c->out_tail = NULL;
	c->out_off = c->out_bytes = 0;
	c->out_replies = 0;
}

static void conn_free(struct shim_xs_conn *c)
{
	if (!c)
		return;
	out_free_all(c);
	free(c->in);
	free(c);
}

static void conn_unlink(struct shim_xs_conn *c)
{
	struct shim_xs_conn **pp;

	if (!c->linked)
		return;
	for (pp = &c->xs->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	c->next = NULL;
	c->linked = false;
}

/* Free dead socket connections; only outside our own processing (lists are walked). */
static void reap(struct shim_xs *xs)
{
	struct shim_xs_conn **pp = &xs->conns;

	if (xs->depth)
		return;
	while (*pp) {
		struct shim_xs_conn *c = *pp;

		if (!c->closing) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		c->next = NULL;
		c->linked = false;
		if (!c->fake)
			conn_free(c);
	}
}

void shim_xs_conn_kill(struct shim_xs_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	shim_xs_ops_conn_cleanup(c);
	if (c->xs->loop && !c->fake) {
		ev_io_stop(c->xs->loop, &c->rio);
		ev_io_stop(c->xs->loop, &c->wio);
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	out_free_all(c);
}

static struct shim_xs_conn *conn_new(struct shim_xs *xs, unsigned int domid, int fd)
{
	struct shim_xs_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->xs = xs;
	c->domid = domid;
	c->next_txid = 1;
	c->in = malloc(SHIM_XS_IN_CAP);
	if (!c->in) {
		free(c);
		return NULL;
	}
	if (fd >= 0) {
		ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
		ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
		c->rio.data = c->wio.data = c;
	}
	c->next = xs->conns;
	xs->conns = c;
	c->linked = true;
	return c;
}

void shim_xs_conn_queue(struct shim_xs_conn *c, uint32_t type, uint32_t req_id,
			uint32_t tx_id, const void *payload, uint32_t len)
{
	struct xsd_sockmsg h = { .type = type, .req_id = req_id, .tx_id = tx_id, .len = len };
	bool is_event = type == XS_WATCH_EVENT;
	bool dedup = is_event && len && ((const char *)payload)[0] != '@';
	uint32_t hash = 0;
	struct shim_xs_outmsg *m;

	if (c->closing || c->discard)
		return;
	if (dedup) {
		/* An identical event still queued says it all (as C xenstored). */
		hash = payload_hash(payload, len);
		if (c->evidx_n)
			for (m = c->evidx[hash & (c->evidx_n - 1)]; m; m = m->hnext)
				if (m->hash == hash && m->len == SHIM_XS_HDR_LEN + len &&
				    memcmp(m->data + SHIM_XS_HDR_LEN, payload, len) == 0)
					return;
		if (c->evidx_count >= c->evidx_n)
			evidx_grow(c);
	}
	m = malloc(sizeof(*m) + SHIM_XS_HDR_LEN + len);
	if (!m) { /* a lost reply desynchronises the client: drop it instead */
		shim_xs_conn_kill(c);
		return;
	}
	m->next = m->hnext = NULL;
	m->hash = hash;
	m->len = SHIM_XS_HDR_LEN + len;
	m->is_event = is_event;
	m->indexed = dedup && c->evidx_n;
	if (m->indexed) {
		m->hnext = c->evidx[hash & (c->evidx_n - 1)];
		c->evidx[hash & (c->evidx_n - 1)] = m;
		c->evidx_count++;
	}
	memcpy(m->data, &h, SHIM_XS_HDR_LEN);
	if (len)
		memcpy(m->data + SHIM_XS_HDR_LEN, payload, len);
	if (c->out_tail)
		c->out_tail->next = m;
	else
		c->out_head = m;
	c->out_tail = m;
	c->out_bytes += m->len;
	if (!is_event)
		c->out_replies++;
	if (c->out_bytes > SHIM_XS_OUT_HARD) {
		fprintf(stderr, "splitpv-xenstored: dom%u connection not reading its output, "
				"closing it\n", c->domid);
		shim_xs_conn_kill(c);
		return;
	}
	if (c->xs->loop && !c->fake)
		ev_io_start(c->xs->loop, &c->wio);
}

/* Handle every complete buffered message we are allowed to. */
static void process_input(struct shim_xs_conn *c)
{
	static char payload[XENSTORE_PAYLOAD_MAX + 1];
	size_t off = 0;

	c->xs->depth++;
	while (!c->closing && !conn_throttled(c) && c->in_len - off >= SHIM_XS_HDR_LEN) {
		struct xsd_sockmsg h;

		memcpy(&h, c->in + off, SHIM_XS_HDR_LEN);
		if (h.len > XENSTORE_PAYLOAD_MAX) { /* as xenstored: the stream is lost */
			shim_xs_conn_kill(c);
			break;
		}
		if (c->in_len - off < SHIM_XS_HDR_LEN + h.len)
			break;
		memcpy(payload, c->in + off + SHIM_XS_HDR_LEN, h.len);
		payload[h.len] = '\0'; /* guard only: handlers check their own bounds */
		off += SHIM_XS_HDR_LEN + h.len;
		shim_xs_ops_handle(c, &h, payload);
	}
	if (!c->closing && off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	c->xs->depth--;
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct shim_xs_conn *c = w->data;
	struct shim_xs *xs = c->xs;
	ssize_t n;

	(void)loop;
	(void)revents;
	if (conn_throttled(c) || c->in_len == SHIM_XS_IN_CAP) {
		conn_update_io(c);
		return;
	}
	n = recv(c->fd, c->in + c->in_len, SHIM_XS_IN_CAP - c->in_len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		shim_xs_conn_kill(c);
		reap(xs);
		return;
	}
	c->in_len += (size_t)n;
	process_input(c);
	conn_update_io(c);
	reap(xs);
}

/* Drop n sent bytes from the head of the output queue. */
static void out_consume(struct shim_xs_conn *c, size_t n)
{
	while (n && c->out_head) {
		struct shim_xs_outmsg *m = c->out_head;
		size_t left = m->len - c->out_off;

		if (n < left) {
			c->out_off += n;
			return;
		}
		n -= left;
		c->out_head = m->next;
		if (!c->out_head)
			c->out_tail = NULL;
		c->out_off = 0;
		c->out_bytes -= m->len;
		if (!m->is_event)
			c->out_replies--;
		evidx_remove(c, m);
		free(m);
	}
}

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct shim_xs_conn *c = w->data;
	struct shim_xs *xs = c->xs;
	bool was_throttled = conn_throttled(c);

	(void)loop;
	(void)revents;
	while (c->out_head) {
		struct shim_xs_outmsg *m = c->out_head;
		ssize_t n = send(c->fd, m->data + c->out_off, m->len - c->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			shim_xs_conn_kill(c);
			reap(xs);
			return;
		}
		out_consume(c, (size_t)n);
	}
	if (was_throttled && !conn_throttled(c))
		process_input(c);
	conn_update_io(c);
	reap(xs);
}

/* ---- listening sockets and domains ---- */

static void listen_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct shim_xs_dom *d = w->data;

	(void)revents;
	for (;;) {
		struct shim_xs_conn *c;
		struct ucred cred;
		socklen_t len = sizeof(cred);
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fprintf(stderr, "splitpv-xenstored: accept: %s\n", strerror(errno));
			return;
		}
		/* As Xen's /var/run/xenstored/socket (0600 root): root only. A backend
		 * that dropped root keeps the connection it opened before. */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0) {
			close(fd);
			continue;
		}
		c = conn_new(d->xs, d->domid, fd);
		if (!c) {
			close(fd);
			continue;
		}
		ev_io_start(loop, &c->rio);
	}
}

static int listener_open(struct shim_xs *xs, struct shim_xs_dom *d)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char path[sizeof(addr.sun_path)];
	int fd, ret;

	ret = shim_xs_socket_path(xs->rundir, d->domid, path, sizeof(path));
	if (ret < 0)
		return ret;
	d->sockpath = strdup(path);
	if (!d->sockpath)
		return -ENOMEM;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	strcpy(addr.sun_path, path);
	unlink(path); /* a stale socket from a previous run */
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 64) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	d->lfd = fd;
	ev_io_init(&d->lio, listen_cb, fd, EV_READ);
	d->lio.data = d;
	ev_io_start(xs->loop, &d->lio);
	return 0;
}

static void dom_free(struct shim_xs *xs, struct shim_xs_dom *d)
{
	if (!d)
		return;
	if (d->lfd >= 0) {
		ev_io_stop(xs->loop, &d->lio);
		close(d->lfd);
		unlink(d->sockpath);
	}
	free(d->sockpath);
	free(d);
}

static int dom_add(struct shim_xs *xs, unsigned int domid, struct shim_xs_dom **out)
{
	struct shim_xs_dom *d = calloc(1, sizeof(*d)), **pp;
	int ret;

	if (!d)
		return -ENOMEM;
	d->xs = xs;
	d->domid = domid;
	d->lfd = -1;
	if (xs->loop) {
		ret = listener_open(xs, d);
		if (ret < 0) {
			dom_free(xs, d);
			return ret;
		}
	}
	for (pp = &xs->doms; *pp; pp = &(*pp)->next)
		;
	*pp = d;
	if (out)
		*out = d;
	return 0;
}

int shim_xs_domain_introduce(struct shim_xs *xs, unsigned int domid)
{
	int ret;

	if (!xs || domid == 0 || domid > SHIM_XS_DOMID_MAX)
		return -EINVAL;
	if (shim_xs_dom_find(xs, domid))
		return -EEXIST;
	ret = dom_add(xs, domid, NULL);
	if (ret < 0)
		return ret;
	xs->depth++;
	shim_xs_ops_fire_special(xs, "@introduceDomain");
	xs->depth--;
	reap(xs);
	return 0;
}

int shim_xs_domain_release(struct shim_xs *xs, unsigned int domid)
{
	struct shim_xs_dom *d, **pp;

	if (!xs || domid == 0)
		return -EINVAL;
	d = shim_xs_dom_find(xs, domid);
	if (!d)
		return -ENOENT;
	xs->depth++;
	for (struct shim_xs_conn *c = xs->conns; c; c = c->next)
		if (c->domid == domid)
			shim_xs_conn_kill(c);
	for (pp = &xs->doms; *pp != d; pp = &(*pp)->next)
		;
	*pp = d->next;
	dom_free(xs, d);
	shim_xs_ops_fire_special(xs, "@releaseDomain");
	xs->depth--;
	reap(xs);
	return 0;
}

/* ---- open / close ---- */

static int xs_alloc(struct shim_xs **out)
{
	struct shim_xs *xs = calloc(1, sizeof(*xs));
	int ret;

	if (!xs)
		return -ENOMEM;
	ret = shim_xs_store_init(&xs->store);
	if (ret == 0)
		ret = shim_xs_ops_init_tree(xs);
	if (ret < 0) {
		shim_xs_close(xs);
		return ret;
	}
	*out = xs;
	return 0;
}

int shim_xs_open_detached(struct shim_xs **out)
{
	struct shim_xs *xs;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	ret = xs_alloc(&xs);
	if (ret == 0)
		ret = dom_add(xs, 0, NULL);
	if (ret < 0) {
		shim_xs_close(xs);
		return ret;
	}
	*out = xs;
	return 0;
}

int shim_xs_open(struct shim_xs **out, struct ev_loop *loop, const char *rundir)
{
	struct shim_xs *xs = NULL;
	int ret;

	if (!out || !loop || !rundir)
		return -EINVAL;
	*out = NULL;
	if (mkdir(rundir, 0755) < 0 && errno != EEXIST)
		return -errno;
	ret = xs_alloc(&xs);
	if (ret < 0)
		return ret;
	xs->loop = loop;
	xs->rundir = strdup(rundir);
	ret = xs->rundir ? dom_add(xs, 0, NULL) : -ENOMEM;
	if (ret < 0) {
		shim_xs_close(xs);
		return ret;
	}
	*out = xs;
	return 0;
}

void shim_xs_close(struct shim_xs *xs)
{
	if (!xs)
		return;
	xs->depth++;
	for (struct shim_xs_conn *c = xs->conns; c; c = c->next)
		shim_xs_conn_kill(c);
	while (xs->conns) {
		struct shim_xs_conn *c = xs->conns;

		xs->conns = c->next;
		conn_free(c);
	}
	while (xs->doms) {
		struct shim_xs_dom *d = xs->doms;

		xs->doms = d->next;
		dom_free(xs, d);
	}
	shim_xs_store_deinit(&xs->store);
	free(xs->special_perms[0]);
	free(xs->special_perms[1]);
	free(xs->rundir);
	free(xs);
}

/* ---- fake connections ---- */

int shim_xs_conn_open_fake(struct shim_xs *xs, unsigned int domid, bool discard_output,
			   struct shim_xs_conn **out)
{
	struct shim_xs_conn *c;

	if (!xs || !out)
		return -EINVAL;
	if (!shim_xs_dom_find(xs, domid))
		return -ENOENT;
	c = conn_new(xs, domid, -1);
	if (!c)
		return -ENOMEM;
	c->fake = true;
	c->discard = discard_output;
	*out = c;
	return 0;
}

void shim_xs_conn_close_fake(struct shim_xs_conn *c)
{
	if (!c)
		return;
	shim_xs_conn_kill(c);
	conn_unlink(c);
	conn_free(c);
}

int shim_xs_conn_feed(struct shim_xs_conn *c, const void *buf, size_t len, size_t *taken)
{
	size_t done = 0;

	while (done < len && !c->closing) {
		size_t room = SHIM_XS_IN_CAP - c->in_len, n = len - done;

		if (!room)
			break;
		if (n > room)
			n = room;
		memcpy(c->in + c->in_len, (const char *)buf + done, n);
		c->in_len += n;
		done += n;
		process_input(c);
	}
	reap(c->xs);
	if (taken)
		*taken = done;
	if (c->closing)
		return -EPIPE;
	return done < len ? -EAGAIN : 0;
}

size_t shim_xs_conn_take_output(struct shim_xs_conn *c, void *buf, size_t cap)
{
	size_t done = 0;
	bool was_throttled = conn_throttled(c);

	while (c->out_head && done < cap) {
		struct shim_xs_outmsg *m = c->out_head;
		size_t n = m->len - c->out_off;

		if (n > cap - done)
			n = cap - done;
		memcpy((char *)buf + done, m->data + c->out_off, n);
		done += n;
		out_consume(c, n);
	}
	if (was_throttled && !conn_throttled(c) && !c->closing) {
		process_input(c);
		reap(c->xs);
	}
	return done;
}
