/*
 * shimhv_evq — the event-channel port table of one handle: eventfds in an epoll set,
 * with /dev/xen/evtchn's pending/mask/unmask semantics. Used by hv_shim.c (backend
 * side) and guest.c (guest side); the daemon (shimhv_domain.c) creates the eventfds.
 */
#include "frontend-shim/shimhv.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

int shim_evq_init(struct shim_evq *q)
{
	q->nr_ports = 0;
	for (unsigned p = 0; p <= SHIM_HV_PORTS_MAX; p++) {
		q->ports[p].wait_fd = -1;
		q->ports[p].notify_fd = -1;
		q->ports[p].masked = false;
	}
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
	q->nr_ports++;
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
	q->nr_ports--;
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

int shim_evq_pending(struct shim_evq *q)
{
	struct epoll_event ev;
	struct epoll_event none = { .events = 0 };
	struct shim_evq_port *p;
	uint64_t v;
	unsigned port;
	int n;

	n = epoll_wait(q->epfd, &ev, 1, 0);
	if (n < 0)
		return errno == EINTR ? -EAGAIN : -errno;
	if (n == 0)
		return -EAGAIN;
	port = ev.data.u32;
	if (!shim_evq_valid(q, port))
		return -EAGAIN;
	p = &q->ports[port];
	/* Clear, then mask: a notify after the read re-arms the eventfd, which stays
	 * readable until unmask re-adds EPOLLIN. */
	if (read(p->wait_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	if (epoll_ctl(q->epfd, EPOLL_CTL_MOD, p->wait_fd, &none) < 0)
		return -errno;
	p->masked = true;
	return (int)port;
}

int shim_evq_unmask(struct shim_evq *q, unsigned port)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = port };
	struct shim_evq_port *p;

	if (!shim_evq_valid(q, port))
		return -EINVAL;
	p = &q->ports[port];
	if (!p->masked)
		return 0;
	if (epoll_ctl(q->epfd, EPOLL_CTL_MOD, p->wait_fd, &ev) < 0)
		return -errno;
	p->masked = false;
	return 0;
}
