/*
 * shimhv_evq — the event-channel port table of one handle: eventfds in an epoll set,
 * with /dev/xen/evtchn's pending/mask/unmask semantics (lazy masking: see shimhv.h).
 * Used by hv_shim.c (backend side) and guest.c (guest side); the daemon
 * (shimhv_domain.c) creates the eventfds.
 */
#include "frontend-shim/shimhv.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

int shim_evq_init(struct shim_evq *q)
{
	q->nr_ports = 0;
	for (unsigned p = 0; p <= SHIM_HV_PORTS_MAX; p++) {
		q->ports[p].wait_fd = -1;
		q->ports[p].notify_fd = -1;
		q->ports[p].masked = false;
		q->ports[p].kmasked = false;
	}
	q->single = 0;
	q->nonblock = false;
	q->epfd = epoll_create1(EPOLL_CLOEXEC);
	return q->epfd < 0 ? -errno : 0;
}

void shim_evq_deinit(struct shim_evq *q)
{
	for (unsigned p = 1; p <= SHIM_HV_PORTS_MAX && q->nr_ports; p++)
		if (q->ports[p].wait_fd >= 0)
			shim_evq_remove(q, p);
	if (q->epfd >= 0)
		close(q->epfd);
	q->epfd = -1;
}

bool shim_evq_valid(const struct shim_evq *q, unsigned port)
{
	return port >= 1 && port <= SHIM_HV_PORTS_MAX && q->ports[port].wait_fd >= 0;
}

int shim_evq_free_port(const struct shim_evq *q)
{
	for (unsigned p = 1; p <= SHIM_HV_PORTS_MAX; p++)
		if (q->ports[p].wait_fd < 0)
			return (int)p;
	return -ENOSPC;
}

int shim_evq_add(struct shim_evq *q, unsigned port, int wait_fd, int notify_fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = port };
	int rc = 0;

	if (port < 1 || port > SHIM_HV_PORTS_MAX)
		rc = -EINVAL;
	else if (q->ports[port].wait_fd >= 0)
		rc = -EEXIST;
	else if (epoll_ctl(q->epfd, EPOLL_CTL_ADD, wait_fd, &ev) < 0)
		rc = -errno;
	if (rc < 0) {
		close(wait_fd);
		close(notify_fd);
		return rc;
	}
	q->ports[port].wait_fd = wait_fd;
	q->ports[port].notify_fd = notify_fd;
	q->ports[port].masked = false;
	q->ports[port].kmasked = false;
	q->nr_ports++;
	q->single = q->nr_ports == 1 ? port : 0;
	return 0;
}

int shim_evq_remove(struct shim_evq *q, unsigned port)
{
	struct shim_evq_port *p;

	if (!shim_evq_valid(q, port))
		return -EINVAL;
	p = &q->ports[port];
	epoll_ctl(q->epfd, EPOLL_CTL_DEL, p->wait_fd, NULL);
	close(p->wait_fd);
	close(p->notify_fd);
	p->wait_fd = p->notify_fd = -1;
	p->masked = false;
	p->kmasked = false;
	q->nr_ports--;
	q->single = 0;
	for (unsigned i = 1; q->nr_ports == 1 && i <= SHIM_HV_PORTS_MAX; i++)
		if (q->ports[i].wait_fd >= 0)
			q->single = i;
	return 0;
}

int shim_evq_notify(struct shim_evq *q, unsigned port)
{
	uint64_t one = 1;

	if (!shim_evq_valid(q, port))
		return -EINVAL;
	/* EAGAIN only when the counter is saturated: an event is pending anyway. */
	if (write(q->ports[port].notify_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

/* Take port out of the epoll set: it fired while masked. */
static int kmask(struct shim_evq *q, unsigned port)
{
	struct epoll_event none = { .events = 0 };
	struct shim_evq_port *p = &q->ports[port];

	if (p->kmasked)
		return 0;
	if (epoll_ctl(q->epfd, EPOLL_CTL_MOD, p->wait_fd, &none) < 0)
		return -errno;
	p->kmasked = true;
	return 0;
}

/* Clear a fired, unmasked port and mask it. */
static int deliver(struct shim_evq *q, unsigned port)
{
	struct shim_evq_port *p = &q->ports[port];
	uint64_t v;

	if (read(p->wait_fd, &v, sizeof(v)) < 0)
		return errno == EAGAIN ? -EAGAIN : -errno;
	p->masked = true;
	return (int)port;
}

static int pending_once(struct shim_evq *q)
{
	struct epoll_event ev;
	int n, rc;

	if (q->single) {
		/* One port: its eventfd is the whole story, no epoll_wait needed. */
		if (!q->ports[q->single].masked)
			return deliver(q, q->single);
		rc = kmask(q, q->single);
		return rc < 0 ? rc : -EAGAIN;
	}
	/* Each round either delivers or takes a masked port out of the set: bounded. */
	for (unsigned round = 0; round <= q->nr_ports; round++) {
		unsigned port;

		n = epoll_wait(q->epfd, &ev, 1, 0);
		if (n < 0)
			return errno == EINTR ? -EAGAIN : -errno;
		if (n == 0)
			return -EAGAIN;
		port = ev.data.u32;
		if (!shim_evq_valid(q, port))
			return -EAGAIN;
		if (!q->ports[port].masked) {
			rc = deliver(q, port);
			if (rc != -EAGAIN)
				return rc;
			continue;
		}
		rc = kmask(q, port);
		if (rc < 0)
			return rc;
	}
	return -EAGAIN;
}

/* As a read of /dev/xen/evtchn: with nothing to deliver, -EAGAIN if the handle was made
 * non-blocking, else wait for a port to fire (real Xen's device blocks; a caller that
 * forgot O_NONBLOCK hangs here as it would on Xen). */
int shim_evq_pending(struct shim_evq *q)
{
	for (;;) {
		struct pollfd pfd = { .fd = q->epfd, .events = POLLIN };
		int rc = pending_once(q);

		if (rc != -EAGAIN || q->nonblock)
			return rc;
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			return -errno;
	}
}

/* O_NONBLOCK on the handle's fd: pending() answers -EAGAIN instead of waiting. */
int shim_evq_set_nonblock(struct shim_evq *q)
{
	int fl = fcntl(q->epfd, F_GETFL);

	if (fl < 0 || fcntl(q->epfd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	q->nonblock = true;
	return 0;
}

int shim_evq_unmask(struct shim_evq *q, unsigned port)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = port };
	struct shim_evq_port *p;

	if (!shim_evq_valid(q, port))
		return -EINVAL;
	p = &q->ports[port];
	p->masked = false;
	if (p->kmasked) {
		/* Back into the set: if it fired meanwhile it is readable, and delivered. */
		if (epoll_ctl(q->epfd, EPOLL_CTL_MOD, p->wait_fd, &ev) < 0)
			return -errno;
		p->kmasked = false;
	}
	return 0;
}
