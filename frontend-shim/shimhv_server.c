/*
 * shimhv_server — the shim hypervisor's control socket DIR/hv.sock: accepts guest and
 * backend connections, dispatches one request at a time per connection, replies with
 * fds. A guest connection is its domain: EOF destroys it. Domains: shimhv_domain.c.
 */
#include "frontend-shim/shimhv_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void conn_close(struct shim_hv_conn *c)
{
	struct shim_hv *hv = c->hv;

	for (struct shim_hv_conn **pp = &hv->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			hv->nr_conns--;
			break;
		}
	}
	ev_io_stop(hv->loop, &c->w);
	if (c->dom)
		shim_hv_dom_destroy(c->dom);
	while (c->attaches) {
		struct shim_hv_attach *a = c->attaches;

		c->attaches = a->next;
		shim_hv_attach_free(a);
	}
	shim_hv_conn_unbind_all(hv, c);
	close(c->fd);
	free(c);
}

static int reply(struct shim_hv_conn *c, const struct shim_hv_rsp *rsp, const int *fds,
		 unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * SHIM_HV_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = (void *)rsp, .iov_len = sizeof(*rsp) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds) {
		struct cmsghdr *cm;

		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	/* Never block the loop on a client that doesn't read its replies. */
	do
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(*rsp) ? 0 : -EIO;
}

static struct shim_hv_conn *conn_new(struct shim_hv *hv, int fd);

static int handle(struct shim_hv_conn *c, const struct shim_hv_req *req)
{
	struct shim_hv *hv = c->hv;
	struct shim_hv_rsp rsp = { 0 };
	struct shim_hv_dom *d;
	int fds[SHIM_HV_MAX_FDS];
	unsigned nfds = 0;
	int rc;

	switch (req->op) {
	case SHIM_HV_DOMAIN_CREATE:
		if (c->used) {
			rc = -EPERM;
			break;
		}
		rc = shim_hv_dom_create(hv, c, req->domid, req->arg0, req->arg1, &d);
		if (rc < 0)
			break;
		c->dom = d;
		fds[0] = d->mem_fd;
		fds[1] = d->gnttab_fd;
		nfds = 2;
		rsp.val0 = d->mem_pages;
		rsp.val1 = d->grant_entries;
		break;
	case SHIM_HV_DOMAIN_ATTACH: {
		struct shim_hv_attach *a;

		if (c->dom) {
			rc = -EPERM;
			break;
		}
		d = shim_hv_dom_find(hv, req->domid);
		if (!d) {
			rc = -ESRCH;
			break;
		}
		rc = shim_hv_dom_attach(d, c, &a);
		if (rc < 0)
			break;
		fds[0] = d->mem_fd;
		fds[1] = d->gnttab_fd;
		fds[2] = d->pins_fd;
		fds[3] = a->connpins_fd;
		nfds = 4;
		rsp.val0 = d->mem_pages;
		rsp.val1 = d->grant_entries;
		break;
	}
	case SHIM_HV_EVTCHN_ALLOC_UNBOUND: {
		struct shim_hv_chan *ch;

		if (!c->dom) {
			rc = -EPERM;
			break;
		}
		rc = shim_hv_chan_alloc(c->dom, req->arg0, &ch);
		if (rc < 0)
			break;
		fds[0] = ch->fd_a;
		fds[1] = ch->fd_b;
		nfds = 2;
		rsp.val0 = ch->port;
		break;
	}
	case SHIM_HV_EVTCHN_CLOSE:
		rc = c->dom ? shim_hv_chan_close(c->dom, req->arg0) : -EPERM;
		break;
	case SHIM_HV_EVTCHN_BIND: {
		struct shim_hv_chan *ch;

		if (c->dom) {
			rc = -EPERM;
			break;
		}
		if (c->restricted && req->domid != c->restrict_domid) {
			rc = -EACCES;
			break;
		}
		d = shim_hv_dom_find(hv, req->domid);
		if (!d) {
			rc = -ESRCH;
			break;
		}
		rc = shim_hv_chan_bind(d, c, req->self_domid, req->arg0, &ch);
		if (rc < 0)
			break;
		fds[0] = ch->fd_b;
		fds[1] = ch->fd_a;
		nfds = 2;
		rsp.val0 = ch->port;
		rsp.serial = ch->serial;
		break;
	}
	case SHIM_HV_EVTCHN_UNBIND:
		if (c->dom) {
			rc = -EPERM;
			break;
		}
		d = shim_hv_dom_find(hv, req->domid);
		rc = d ? shim_hv_chan_unbind(d, c, req->arg0, req->serial) : -ESRCH;
		break;
	case SHIM_HV_EVTCHN_RESTRICT:
		if (c->dom || c->restricted) {
			rc = -EACCES;
			break;
		}
		if (req->domid == 0 || req->domid > SHIM_HV_DOMID_MAX) {
			rc = -EINVAL;
			break;
		}
		c->restricted = true;
		c->restrict_domid = req->domid;
		rc = 0;
		break;
	case SHIM_HV_CONN_CLONE: {
		struct shim_hv_conn *n;
		int sv[2];

		if (c->dom) {
			rc = -EPERM;
			break;
		}
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
			rc = -errno;
			break;
		}
		n = conn_new(hv, sv[0]);
		if (!n) {
			close(sv[0]);
			close(sv[1]);
			rc = -EMFILE;
			break;
		}
		n->restricted = c->restricted;
		n->restrict_domid = c->restrict_domid;
		fds[0] = sv[1];
		nfds = 1;
		rc = 0;
		break;
	}
	default:
		rc = -ENOSYS;
		break;
	}
	c->used = true;
	rsp.err = rc;
	rc = reply(c, &rsp, fds, rc < 0 ? 0 : nfds);
	if (req->op == SHIM_HV_CONN_CLONE && nfds == 1)
		close(fds[0]); /* the client has its copy (or the reply failed) */
	return rc;
}

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct shim_hv_conn *c = w->data;
	union {
		char buf[CMSG_SPACE(sizeof(int) * SHIM_HV_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	struct shim_hv_req req;
	struct iovec iov = { .iov_base = &req, .iov_len = sizeof(req) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf) };
	ssize_t n;
	bool fds_sent = false;

	n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* Clients never send fds; close any they did. */
	for (struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm;
	     cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
			close(fd);
			fds_sent = true;
		}
	}
	/* EOF, error or a malformed message: the connection (and a guest's domain) ends. */
	if (n != (ssize_t)sizeof(req) || fds_sent || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    handle(c, &req) < 0)
		conn_close(c);
}

/* A connection on fd (ours from here on, unless NULL is returned). */
static struct shim_hv_conn *conn_new(struct shim_hv *hv, int fd)
{
	struct shim_hv_conn *c;

	if (hv->nr_conns >= SHIM_HV_CONNS_MAX)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->hv = hv;
	c->fd = fd;
	ev_io_init(&c->w, conn_cb, fd, EV_READ);
	c->w.data = c;
	ev_io_start(hv->loop, &c->w);
	c->next = hv->conns;
	hv->conns = c;
	hv->nr_conns++;
	return c;
}

static void listen_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct shim_hv *hv = w->data;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd = accept4(hv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	/* As /dev/xen/gntdev and /dev/xen/evtchn (0600 root): root only. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0) {
		close(fd);
		return;
	}
	if (!conn_new(hv, fd))
		close(fd);
}

/* Refuse to steal the socket of a live daemon; remove a stale one. */
static int claim_path(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (rc == 0)
		return -EADDRINUSE;
	return unlink(path) < 0 ? -errno : 0;
}

int shim_hv_open(struct shim_hv **out, struct ev_loop *loop, const char *rundir,
		 const struct shim_hv_hooks *hooks)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct shim_hv *hv;
	bool bound = false;
	int rc, n;

	hv = calloc(1, sizeof(*hv));
	if (!hv)
		return -ENOMEM;
	hv->loop = loop;
	hv->listen_fd = -1;
	if (hooks)
		hv->hooks = *hooks;
	if (asprintf(&hv->sock_path, "%s/%s", rundir, SHIM_HV_SOCK_NAME) < 0) {
		hv->sock_path = NULL;
		rc = -ENOMEM;
		goto fail;
	}
	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", hv->sock_path);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		rc = -ENAMETOOLONG;
		goto fail;
	}
	rc = claim_path(hv->sock_path);
	if (rc < 0)
		goto fail;
	hv->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (hv->listen_fd < 0) {
		rc = -errno;
		goto fail;
	}
	if (bind(hv->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		goto fail;
	}
	bound = true;
	if (listen(hv->listen_fd, 64) < 0) {
		rc = -errno;
		goto fail;
	}
	ev_io_init(&hv->listen_w, listen_cb, hv->listen_fd, EV_READ);
	hv->listen_w.data = hv;
	ev_io_start(loop, &hv->listen_w);
	*out = hv;
	return 0;
fail:
	if (bound)
		unlink(hv->sock_path);
	if (hv->listen_fd >= 0)
		close(hv->listen_fd);
	free(hv->sock_path);
	free(hv);
	return rc;
}

void shim_hv_close(struct shim_hv *hv)
{
	if (!hv)
		return;
	ev_io_stop(hv->loop, &hv->listen_w);
	while (hv->conns)
		conn_close(hv->conns);
	while (hv->doms)
		shim_hv_dom_destroy(hv->doms);
	close(hv->listen_fd);
	unlink(hv->sock_path);
	free(hv->sock_path);
	free(hv);
}

unsigned shim_hv_nr_domains(const struct shim_hv *hv)
{
	return hv->nr_doms;
}
