/*
 * shimhv_proto — pieces of the shim hypervisor shared by the daemon and its clients:
 * control-socket round trips with SCM_RIGHTS, pin-table layout, locking and unpinning.
 * Daemon: shimhv_server.c; clients: hv_shim.c (backends), guest.c (guests).
 */
#include "frontend-shim/shimhv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static size_t page_round(size_t n)
{
	return (n + HV_PAGE_SIZE - 1) / HV_PAGE_SIZE * HV_PAGE_SIZE;
}

size_t shim_hv_gnttab_bytes(uint32_t grant_entries)
{
	return page_round((size_t)grant_entries * sizeof(struct grant_entry_v1));
}

size_t shim_hv_pins_bytes(uint32_t grant_entries)
{
	return SHIM_HV_PINS_OFF + page_round((size_t)grant_entries * sizeof(uint32_t));
}

size_t shim_hv_connpins_bytes(uint32_t grant_entries)
{
	return page_round((size_t)grant_entries * sizeof(uint32_t));
}

int shim_hv_pins_lock(struct shim_hv_pins *p)
{
	int rc = pthread_mutex_lock(&p->lock);

	if (rc == EOWNERDEAD) {
		/* A backend died mid-update: its pins are at worst leaked (pins are taken
		 * before flags are dropped), never freed early. Carry on. */
		pthread_mutex_consistent(&p->lock);
		rc = 0;
	}
	return -rc;
}

void shim_hv_pins_unlock(struct shim_hv_pins *p)
{
	pthread_mutex_unlock(&p->lock);
}

void shim_hv_unpin(uint32_t *pin, struct grant_entry_v1 *ent, uint32_t kind)
{
	uint32_t w = __atomic_load_n(pin, __ATOMIC_RELAXED);
	uint32_t have = kind == SHIM_HV_PIN_WR ? SHIM_HV_PIN_WR_COUNT(w) : SHIM_HV_PIN_RD_COUNT(w);

	if (have == 0)
		return;
	w -= kind;
	__atomic_store_n(pin, w, __ATOMIC_RELAXED);
	/* The guest may rewrite its entry at any time: only ever clear our bits, atomically. */
	if (SHIM_HV_PIN_WR_COUNT(w) == 0)
		__atomic_fetch_and(&ent->flags, (uint16_t)~GTF_writing, __ATOMIC_SEQ_CST);
	if (w == 0)
		__atomic_fetch_and(&ent->flags, (uint16_t)~GTF_reading, __ATOMIC_SEQ_CST);
}

int shim_hv_connect(const char *rundir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, n;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", rundir, SHIM_HV_SOCK_NAME);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

static void close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

int shim_hv_call(int sock, const struct shim_hv_req *req, struct shim_hv_rsp *rsp,
		 int *fds, unsigned nfds_max)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * SHIM_HV_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = rsp, .iov_len = sizeof(*rsp) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int got[SHIM_HV_MAX_FDS];
	unsigned ngot = 0;
	ssize_t n;
	int rc = 0;

	for (unsigned i = 0; i < nfds_max; i++)
		fds[i] = -1;
	do
		n = send(sock, req, sizeof(*req), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != sizeof(*req))
		return -EPROTO;

	memset(&cbuf, 0, sizeof(cbuf));
	mh.msg_control = cbuf.buf;
	mh.msg_controllen = sizeof(cbuf.buf);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (ngot < SHIM_HV_MAX_FDS)
				got[ngot++] = fd;
			else
				close(fd);
		}
	}
	if (n == 0)
		rc = -ECONNRESET;
	else if ((size_t)n != sizeof(*rsp) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		rc = -EPROTO;
	else if (rsp->err > 0 || rsp->err < -4095)
		rc = -EPROTO;
	else if (rsp->err < 0)
		rc = rsp->err;
	else if (ngot != nfds_max)
		rc = -EPROTO;
	if (rc < 0) {
		close_fds(got, ngot);
		return rc;
	}
	for (unsigned i = 0; i < ngot; i++)
		fds[i] = got[i];
	return 0;
}
