/*
 * xs_mux — many libxenstore handles of one worker over one xenstored connection (see
 * xs_mux.h). Requests get a mux-wide request id (the client's is put back on the
 * reply); watch tokens get the client's id as a prefix ("<hex>:token"), stripped again
 * on delivery. What a client leaves behind when it closes (watches, transactions) is
 * removed upstream in its name.
 */
#include "xenbus/xs_mux.h"

#include "xenbus/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <xen/io/xs_wire.h>

#define HDR sizeof(struct xsd_sockmsg)
#define CLIENT_OUT_MAX (16u << 20) /* a client this far behind its replies is dropped */

struct buf {
	char *data;
	size_t len, cap;
};

struct mux_watch {
	struct mux_watch *next;
	char *path;
	char *token; /* as sent upstream (prefixed) */
};

struct mux_tx {
	struct mux_tx *next;
	uint32_t id;
};

struct mux_client {
	struct mux_client *next;
	struct xenbus_xs_mux *m;
	uint32_t id;
	int fd;
	ev_io rio, wio;
	struct buf in, out;
	struct mux_watch *watches;
	struct mux_tx *txs;
};

struct mux_pending {
	struct mux_pending *next;
	uint32_t req_id, orig_req_id, type;
	struct mux_client *c; /* NULL: ours (cleanup) or the client is gone */
};

struct xenbus_xs_mux {
	struct ev_loop *loop;
	char *path;
	int lfd, up;
	ev_io lio, urio, uwio;
	struct buf uin, uout;
	struct mux_client *clients;
	struct mux_pending *pend, *pend_tail;
	uint32_t next_req, next_client;
};

static int buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *d;

		while (cap < b->len + n)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d)
			return -ENOMEM;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static void buf_consume(struct buf *b, size_t n)
{
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

/* Write what we can; 0, or -errno on a dead peer. */
static int flush(int fd, struct buf *b)
{
	while (b->len) {
		ssize_t n = send(fd, b->data, b->len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, b->data, b->len); /* /dev/xen/xenbus */
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		buf_consume(b, (size_t)n);
	}
	return 0;
}

/* Read what is there into b; 0, or -errno / -ECONNRESET at EOF. */
static int fill(int fd, struct buf *b)
{
	char tmp[8192];

	for (;;) {
		ssize_t n = read(fd, tmp, sizeof(tmp));

		if (n == 0)
			return -ECONNRESET;
		if (n < 0)
			return errno == EAGAIN ? 0 : errno == EINTR ? 0 : -errno;
		if (buf_add(b, tmp, (size_t)n))
			return -ENOMEM;
		if ((size_t)n < sizeof(tmp))
			return 0;
	}
}

static void upstream_dead(struct xenbus_xs_mux *m, int err);

static int send_msg(struct buf *b, uint32_t type, uint32_t req_id, uint32_t tx_id,
		    const void *payload, uint32_t len)
{
	struct xsd_sockmsg h = { .type = type, .req_id = req_id, .tx_id = tx_id, .len = len };
	int rc = buf_add(b, &h, HDR);

	return rc ? rc : buf_add(b, payload, len);
}

static void up_kick(struct xenbus_xs_mux *m)
{
	int rc = flush(m->up, &m->uout);

	if (rc) {
		upstream_dead(m, rc);
		return;
	}
	if (m->uout.len)
		ev_io_start(m->loop, &m->uwio);
	else
		ev_io_stop(m->loop, &m->uwio);
}

static void client_close(struct mux_client *c);

static void client_kick(struct mux_client *c)
{
	int rc = flush(c->fd, &c->out);

	if (rc || c->out.len > CLIENT_OUT_MAX) {
		client_close(c);
		return;
	}
	if (c->out.len)
		ev_io_start(c->m->loop, &c->wio);
	else
		ev_io_stop(c->m->loop, &c->wio);
}

/* Send upstream in c's name (c NULL: ours; the reply is dropped). */
static int forward(struct xenbus_xs_mux *m, struct mux_client *c, uint32_t type,
		   uint32_t orig_req_id, uint32_t tx_id, const void *payload, uint32_t len)
{
	struct mux_pending *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return -ENOMEM;
	if (++m->next_req == 0)
		m->next_req = 1;
	p->req_id = m->next_req;
	p->orig_req_id = orig_req_id;
	p->type = type;
	p->c = c;
	rc = send_msg(&m->uout, type, p->req_id, tx_id, payload, len);
	if (rc) {
		free(p);
		return rc;
	}
	if (m->pend_tail)
		m->pend_tail->next = p;
	else
		m->pend = p;
	m->pend_tail = p;
	return 0;
}

static void client_error(struct mux_client *c, const struct xsd_sockmsg *h, const char *err)
{
	send_msg(&c->out, XS_ERROR, h->req_id, h->tx_id, err, (uint32_t)strlen(err) + 1);
}

/* "path\0token\0": both strings, nothing after. */
static int split_watch(const char *p, uint32_t len, const char **path, const char **token)
{
	const char *nul = memchr(p, '\0', len);

	if (!nul || (size_t)(nul - p) + 1 >= len || p[len - 1] != '\0' ||
	    memchr(nul + 1, '\0', len - (size_t)(nul - p) - 1) != p + len - 1)
		return -EINVAL;
	*path = p;
	*token = nul + 1;
	return 0;
}

static void client_watch(struct mux_client *c, const struct xsd_sockmsg *h, const char *p)
{
	const char *path, *token;
	char payload[XENSTORE_PAYLOAD_MAX + 32], tok[XENSTORE_PAYLOAD_MAX + 16];
	size_t pl, tl;

	if (split_watch(p, h->len, &path, &token)) {
		client_error(c, h, "EINVAL");
		return;
	}
	snprintf(tok, sizeof(tok), "%x:%s", c->id, token);
	pl = strlen(path) + 1;
	tl = strlen(tok) + 1;
	if (pl + tl > XENSTORE_PAYLOAD_MAX) {
		client_error(c, h, "E2BIG");
		return;
	}
	memcpy(payload, path, pl);
	memcpy(payload + pl, tok, tl);
	if (h->type == XS_WATCH) {
		struct mux_watch *w = calloc(1, sizeof(*w));

		if (!w || !(w->path = strdup(path)) || !(w->token = strdup(tok))) {
			if (w)
				free(w->path);
			free(w);
			client_error(c, h, "ENOMEM");
			return;
		}
		w->next = c->watches;
		c->watches = w;
	} else {
		for (struct mux_watch **pp = &c->watches; *pp; pp = &(*pp)->next) {
			struct mux_watch *w = *pp;

			if (strcmp(w->path, path) == 0 && strcmp(w->token, tok) == 0) {
				*pp = w->next;
				free(w->path);
				free(w->token);
				free(w);
				break;
			}
		}
	}
	if (forward(c->m, c, h->type, h->req_id, h->tx_id, payload, (uint32_t)(pl + tl)))
		client_error(c, h, "ENOMEM");
}

static void client_msg(struct mux_client *c, const struct xsd_sockmsg *h, const char *p)
{
	switch (h->type) {
	case XS_WATCH_EVENT:
	case XS_RESET_WATCHES: /* would remove every other device's watches too */
		client_error(c, h, "EACCES");
		return;
	case XS_WATCH:
	case XS_UNWATCH:
		client_watch(c, h, p);
		return;
	case XS_TRANSACTION_END:
		for (struct mux_tx **pp = &c->txs; *pp; pp = &(*pp)->next) {
			if ((*pp)->id == h->tx_id) {
				struct mux_tx *t = *pp;

				*pp = t->next;
				free(t);
				break;
			}
		}
		break;
	default:
		break;
	}
	if (forward(c->m, c, h->type, h->req_id, h->tx_id, p, h->len))
		client_error(c, h, "ENOMEM");
}

static void client_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct mux_client *c = io->data;
	struct xenbus_xs_mux *m = c->m;
	size_t off = 0;
	int rc = fill(c->fd, &c->in);

	while (rc == 0 && c->in.len - off >= HDR) {
		struct xsd_sockmsg h;

		memcpy(&h, c->in.data + off, HDR);
		if (h.len > XENSTORE_PAYLOAD_MAX) {
			rc = -EMSGSIZE;
			break;
		}
		if (c->in.len - off < HDR + h.len)
			break;
		client_msg(c, &h, c->in.data + off + HDR);
		off += HDR + h.len;
	}
	if (rc) {
		client_close(c);
	} else {
		buf_consume(&c->in, off);
		client_kick(c);
	}
	if (m->up >= 0)
		up_kick(m);
}

static void client_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	client_kick(io->data);
}

static void client_close(struct mux_client *c)
{
	struct xenbus_xs_mux *m = c->m;

	for (struct mux_client **pp = &m->clients; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	ev_io_stop(m->loop, &c->rio);
	ev_io_stop(m->loop, &c->wio);
	close(c->fd);
	for (struct mux_pending *p = m->pend; p; p = p->next)
		if (p->c == c)
			p->c = NULL;
	/* What the handle left registered upstream goes with it (xs_close doesn't
	 * unwatch; a dead thread can't). */
	while (c->watches) {
		struct mux_watch *w = c->watches;
		char payload[XENSTORE_PAYLOAD_MAX + 32];
		size_t pl = strlen(w->path) + 1, tl = strlen(w->token) + 1;

		c->watches = w->next;
		if (m->up >= 0 && pl + tl <= sizeof(payload)) {
			memcpy(payload, w->path, pl);
			memcpy(payload + pl, w->token, tl);
			forward(m, NULL, XS_UNWATCH, 0, 0, payload, (uint32_t)(pl + tl));
		}
		free(w->path);
		free(w->token);
		free(w);
	}
	while (c->txs) {
		struct mux_tx *t = c->txs;

		c->txs = t->next;
		if (m->up >= 0)
			forward(m, NULL, XS_TRANSACTION_END, 0, t->id, "F", 2);
		free(t);
	}
	free(c->in.data);
	free(c->out.data);
	free(c);
	if (m->up >= 0)
		up_kick(m);
}

static struct mux_client *client_find(struct xenbus_xs_mux *m, uint32_t id)
{
	for (struct mux_client *c = m->clients; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void up_event(struct xenbus_xs_mux *m, const struct xsd_sockmsg *h, const char *p)
{
	const char *path, *token, *colon;
	struct mux_client *c;
	char payload[XENSTORE_PAYLOAD_MAX + 1];
	unsigned long id;
	size_t pl, tl;
	char *end;

	if (split_watch(p, h->len, &path, &token))
		return;
	colon = strchr(token, ':');
	if (!colon)
		return;
	errno = 0;
	id = strtoul(token, &end, 16);
	if (errno || end != colon || id > UINT32_MAX)
		return;
	c = client_find(m, (uint32_t)id);
	if (!c)
		return; /* its device is gone: drop */
	pl = strlen(path) + 1;
	tl = strlen(colon + 1) + 1;
	memcpy(payload, path, pl);
	memcpy(payload + pl, colon + 1, tl);
	if (send_msg(&c->out, XS_WATCH_EVENT, h->req_id, h->tx_id, payload,
		     (uint32_t)(pl + tl)) == 0)
		client_kick(c);
}

static void up_reply(struct xenbus_xs_mux *m, const struct xsd_sockmsg *h, const char *p)
{
	struct mux_pending **pp = &m->pend, *q = NULL;
	struct mux_client *c;

	for (; *pp; pp = &(*pp)->next) {
		if ((*pp)->req_id == h->req_id) {
			q = *pp;
			*pp = q->next;
			break;
		}
	}
	if (!q)
		return; /* not ours to answer */
	if (m->pend_tail == q) {
		m->pend_tail = NULL;
		for (struct mux_pending *t = m->pend; t; t = t->next)
			m->pend_tail = t;
	}
	c = q->c;
	if (c && q->type == XS_TRANSACTION_START && h->type == XS_TRANSACTION_START) {
		char id[16];
		struct mux_tx *t;

		snprintf(id, sizeof(id), "%.*s", (int)(h->len < 15 ? h->len : 15), p);
		t = calloc(1, sizeof(*t));
		if (t) {
			t->id = (uint32_t)strtoul(id, NULL, 10);
			t->next = c->txs;
			c->txs = t;
		}
	}
	if (c && send_msg(&c->out, h->type, q->orig_req_id, h->tx_id, p, h->len) == 0)
		client_kick(c);
	free(q);
}

static void up_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct xenbus_xs_mux *m = io->data;
	size_t off = 0;
	int rc = fill(m->up, &m->uin);

	while (rc == 0 && m->uin.len - off >= HDR) {
		struct xsd_sockmsg h;

		memcpy(&h, m->uin.data + off, HDR);
		if (h.len > XENSTORE_PAYLOAD_MAX) {
			rc = -EPROTO;
			break;
		}
		if (m->uin.len - off < HDR + h.len)
			break;
		if (h.type == XS_WATCH_EVENT)
			up_event(m, &h, m->uin.data + off + HDR);
		else
			up_reply(m, &h, m->uin.data + off + HDR);
		off += HDR + h.len;
	}
	if (rc) {
		upstream_dead(m, rc);
		return;
	}
	buf_consume(&m->uin, off);
}

static void up_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	up_kick(io->data);
}

static void upstream_dead(struct xenbus_xs_mux *m, int err)
{
	log_err(NULL, "lost the xenstore connection (%s): every device's handle fails now",
		strerror(-err));
	ev_io_stop(m->loop, &m->urio);
	ev_io_stop(m->loop, &m->uwio);
	close(m->up);
	m->up = -1;
	if (m->lfd >= 0) {
		ev_io_stop(m->loop, &m->lio);
		close(m->lfd);
		m->lfd = -1;
	}
	while (m->clients)
		client_close(m->clients);
}

static void listen_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct xenbus_xs_mux *m = io->data;
	struct mux_client *c;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	/* Our own threads only (the socket is 0600 in a 0700 directory already). */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.pid != getpid()) {
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->m = m;
	c->fd = fd;
	if (++m->next_client == 0)
		m->next_client = 1;
	c->id = m->next_client;
	ev_io_init(&c->rio, client_read_cb, fd, EV_READ);
	c->rio.data = c;
	ev_io_init(&c->wio, client_write_cb, fd, EV_WRITE);
	c->wio.data = c;
	ev_io_start(loop, &c->rio);
	c->next = m->clients;
	m->clients = c;
}

/* The connection libxenstore's xs_open would make, as a raw fd. */
static int upstream_open(void)
{
	const char *env = getenv("XENSTORED_PATH"), *shim = getenv("SPLITPV_SHIM");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, n;

	if (env && *env)
		n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", env);
	else if (shim && *shim)
		n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/socket", shim);
	else
		n = snprintf(sa.sun_path, sizeof(sa.sun_path), "/var/run/xenstored/socket");
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	close(fd);
	if (env && *env)
		return -errno;
	fd = open("/dev/xen/xenbus", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

int xenbus_xs_mux_open(struct xenbus_xs_mux **out, struct ev_loop *loop, const char *sock_path,
		       uid_t uid, gid_t gid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct xenbus_xs_mux *m;
	int rc;

	if (strlen(sock_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->loop = loop;
	m->lfd = -1;
	m->up = upstream_open();
	if (m->up < 0) {
		rc = m->up;
		free(m);
		return rc;
	}
	m->path = strdup(sock_path);
	m->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (!m->path || m->lfd < 0) {
		rc = m->path ? -errno : -ENOMEM;
		goto fail;
	}
	strcpy(sa.sun_path, sock_path);
	unlink(sock_path);
	if (bind(m->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(m->lfd, 64) < 0 ||
	    chmod(sock_path, 0600) < 0 || chown(sock_path, uid, gid) < 0) {
		rc = -errno;
		unlink(sock_path);
		goto fail;
	}
	if (setenv("XENSTORED_PATH", sock_path, 1) != 0) {
		rc = -errno;
		unlink(sock_path);
		goto fail;
	}
	ev_io_init(&m->lio, listen_cb, m->lfd, EV_READ);
	m->lio.data = m;
	ev_io_start(loop, &m->lio);
	ev_io_init(&m->urio, up_read_cb, m->up, EV_READ);
	m->urio.data = m;
	ev_io_start(loop, &m->urio);
	ev_io_init(&m->uwio, up_write_cb, m->up, EV_WRITE);
	m->uwio.data = m;
	*out = m;
	return 0;
fail:
	if (m->lfd >= 0)
		close(m->lfd);
	close(m->up);
	free(m->path);
	free(m);
	return rc;
}

void xenbus_xs_mux_close(struct xenbus_xs_mux *m)
{
	if (!m)
		return;
	while (m->clients)
		client_close(m->clients);
	if (m->lfd >= 0) {
		ev_io_stop(m->loop, &m->lio);
		close(m->lfd);
	}
	unlink(m->path);
	if (m->up >= 0) {
		flush(m->up, &m->uout);
		ev_io_stop(m->loop, &m->urio);
		ev_io_stop(m->loop, &m->uwio);
		close(m->up);
	}
	while (m->pend) {
		struct mux_pending *p = m->pend;

		m->pend = p->next;
		free(p);
	}
	free(m->uin.data);
	free(m->uout.data);
	free(m->path);
	free(m);
}
