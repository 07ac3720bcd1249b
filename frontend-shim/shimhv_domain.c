/*
 * shimhv_domain — the shim hypervisor's domains: guest memory and grant-table memfds,
 * the private pin table (Xen's active grant table), backend attaches and event
 * channels. Driven by shimhv_server.c; the backend half is frontend-shim/hv_shim.c.
 */
#include "frontend-shim/shimhv_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

struct shim_hv_dom *shim_hv_dom_find(struct shim_hv *hv, uint32_t domid)
{
	for (struct shim_hv_dom *d = hv->doms; d; d = d->next)
		if (d->domid == domid)
			return d;
	return NULL;
}

static int memfd_sized(const char *what, uint32_t domid, size_t len)
{
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "splitpv-shim-d%u-%s", domid, what);
	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)len) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

static void *map_fd(int fd, size_t len, int *err)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED) {
		*err = -errno;
		return NULL;
	}
	return p;
}

static int pins_init(struct shim_hv_pins *p, uint32_t mem_pages, uint32_t grant_entries)
{
	pthread_mutexattr_t a;
	int rc;

	p->magic = SHIM_HV_PINS_MAGIC;
	p->mem_pages = mem_pages;
	p->grant_entries = grant_entries;
	p->dead = 0;
	rc = pthread_mutexattr_init(&a);
	if (rc)
		return -rc;
	rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (!rc)
		rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (!rc)
		rc = pthread_mutex_init(&p->lock, &a);
	pthread_mutexattr_destroy(&a);
	return -rc;
}

static void dom_free(struct shim_hv_dom *d)
{
	if (d->gnttab)
		munmap(d->gnttab, d->gnttab_len);
	if (d->pins)
		munmap(d->pins, d->pins_len);
	if (d->mem_fd >= 0)
		close(d->mem_fd);
	if (d->gnttab_fd >= 0)
		close(d->gnttab_fd);
	if (d->pins_fd >= 0)
		close(d->pins_fd);
	free(d);
}

int shim_hv_dom_create(struct shim_hv *hv, struct shim_hv_conn *owner, uint32_t domid,
		       uint32_t mem_pages, uint32_t grant_entries, struct shim_hv_dom **out)
{
	struct shim_hv_dom *d;
	int rc = 0;

	if (domid == 0 || domid > SHIM_HV_DOMID_MAX)
		return -EINVAL;
	if (mem_pages == 0 || mem_pages > SHIM_HV_MEM_PAGES_MAX || grant_entries == 0 ||
	    grant_entries > SHIM_HV_GRANT_ENTRIES_MAX)
		return -EINVAL;
	if (shim_hv_dom_find(hv, domid))
		return -EEXIST;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->hv = hv;
	d->domid = domid;
	d->mem_pages = mem_pages;
	d->grant_entries = grant_entries;
	d->owner = owner;
	d->mem_fd = d->gnttab_fd = d->pins_fd = -1;
	d->gnttab_len = shim_hv_gnttab_bytes(grant_entries);
	d->pins_len = shim_hv_pins_bytes(grant_entries);

	d->mem_fd = memfd_sized("mem", domid, (size_t)mem_pages * HV_PAGE_SIZE);
	if (d->mem_fd < 0) {
		rc = d->mem_fd;
		goto fail;
	}
	d->gnttab_fd = memfd_sized("gnttab", domid, d->gnttab_len);
	if (d->gnttab_fd < 0) {
		rc = d->gnttab_fd;
		goto fail;
	}
	d->pins_fd = memfd_sized("pins", domid, d->pins_len);
	if (d->pins_fd < 0) {
		rc = d->pins_fd;
		goto fail;
	}
	d->gnttab = map_fd(d->gnttab_fd, d->gnttab_len, &rc);
	if (!d->gnttab)
		goto fail;
	d->pins = map_fd(d->pins_fd, d->pins_len, &rc);
	if (!d->pins)
		goto fail;
	rc = pins_init(d->pins, mem_pages, grant_entries);
	if (rc < 0)
		goto fail;
	if (hv->hooks.domain_introduce_cb) {
		rc = hv->hooks.domain_introduce_cb(hv->hooks.opaque, domid);
		if (rc < 0)
			goto fail;
	}
	d->next = hv->doms;
	hv->doms = d;
	hv->nr_doms++;
	*out = d;
	return 0;
fail:
	dom_free(d);
	return rc;
}

static void chan_free(struct shim_hv_chan *ch)
{
	if (ch->binder)
		ch->binder->nr_binds--;
	if (ch->fd_a >= 0)
		close(ch->fd_a);
	if (ch->fd_b >= 0)
		close(ch->fd_b);
	free(ch);
}

void shim_hv_dom_destroy(struct shim_hv_dom *d)
{
	struct shim_hv *hv = d->hv;

	for (struct shim_hv_dom **pp = &hv->doms; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			hv->nr_doms--;
			break;
		}
	}
	/* Backends that still map its memory see this on their next map or copy. */
	__atomic_store_n(&d->pins->dead, 1, __ATOMIC_RELEASE);
	for (struct shim_hv_conn *c = hv->conns; c; c = c->next) {
		for (struct shim_hv_attach **pp = &c->attaches; *pp;) {
			struct shim_hv_attach *a = *pp;

			if (a->dom != d) {
				pp = &a->next;
				continue;
			}
			*pp = a->next;
			c->nr_attaches--;
			/* The guest is gone: nobody will look at its grant flags again. */
			munmap(a->connpins, a->connpins_len);
			close(a->connpins_fd);
			free(a);
		}
	}
	/* Closing our ends of every channel: peers' notifications now go nowhere. */
	for (unsigned p = 1; p <= SHIM_HV_PORTS_MAX; p++) {
		if (d->chans[p]) {
			chan_free(d->chans[p]);
			d->chans[p] = NULL;
		}
	}
	if (d->owner)
		d->owner->dom = NULL;
	if (hv->hooks.domain_release_cb)
		hv->hooks.domain_release_cb(hv->hooks.opaque, d->domid);
	dom_free(d);
}

int shim_hv_dom_attach(struct shim_hv_dom *d, struct shim_hv_conn *c,
		       struct shim_hv_attach **out)
{
	struct shim_hv_attach *a;
	int rc = 0;

	for (a = c->attaches; a; a = a->next)
		if (a->dom == d)
			return -EEXIST;
	if (c->nr_attaches >= SHIM_HV_ATTACH_MAX)
		return -ENOSPC;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->dom = d;
	a->connpins_len = shim_hv_connpins_bytes(d->grant_entries);
	a->connpins_fd = memfd_sized("connpins", d->domid, a->connpins_len);
	if (a->connpins_fd < 0) {
		rc = a->connpins_fd;
		free(a);
		return rc;
	}
	a->connpins = map_fd(a->connpins_fd, a->connpins_len, &rc);
	if (!a->connpins) {
		close(a->connpins_fd);
		free(a);
		return rc;
	}
	a->next = c->attaches;
	c->attaches = a;
	c->nr_attaches++;
	*out = a;
	return 0;
}

void shim_hv_attach_free(struct shim_hv_attach *a)
{
	struct shim_hv_dom *d = a->dom;
	uint32_t *pins = (uint32_t *)((char *)d->pins + SHIM_HV_PINS_OFF);

	/* As gntdev does when a mapping process dies: its grants are unmapped. The
	 * backend bumped the domain-wide pin before its own and drops its own first,
	 * so a crash mid-update can only leave a pin leaked, never one too few. */
	if (shim_hv_pins_lock(d->pins) == 0) {
		for (uint32_t ref = 0; ref < d->grant_entries; ref++) {
			uint32_t w = __atomic_load_n(&a->connpins[ref], __ATOMIC_RELAXED);

			for (uint32_t i = 0; i < SHIM_HV_PIN_WR_COUNT(w); i++)
				shim_hv_unpin(&pins[ref], &d->gnttab[ref], SHIM_HV_PIN_WR);
			for (uint32_t i = 0; i < SHIM_HV_PIN_RD_COUNT(w); i++)
				shim_hv_unpin(&pins[ref], &d->gnttab[ref], SHIM_HV_PIN_RD);
			a->connpins[ref] = 0;
		}
		shim_hv_pins_unlock(d->pins);
	}
	munmap(a->connpins, a->connpins_len);
	close(a->connpins_fd);
	free(a);
}

int shim_hv_chan_alloc(struct shim_hv_dom *d, uint32_t remote_domid, struct shim_hv_chan **out)
{
	struct shim_hv_chan *ch;
	uint32_t port;
	int rc;

	if (remote_domid > SHIM_HV_DOMID_MAX)
		return -EINVAL;
	for (port = 1; port <= SHIM_HV_PORTS_MAX; port++)
		if (!d->chans[port])
			break;
	if (port > SHIM_HV_PORTS_MAX)
		return -ENOSPC;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	ch->port = port;
	ch->remote_domid = remote_domid;
	ch->fd_a = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ch->fd_b = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ch->fd_a < 0 || ch->fd_b < 0) {
		rc = -errno;
		chan_free(ch);
		return rc;
	}
	d->chans[port] = ch;
	d->nr_chans++;
	*out = ch;
	return 0;
}

static struct shim_hv_chan *chan_get(struct shim_hv_dom *d, uint32_t port)
{
	if (port == 0 || port > SHIM_HV_PORTS_MAX)
		return NULL;
	return d->chans[port];
}

int shim_hv_chan_close(struct shim_hv_dom *d, uint32_t port)
{
	struct shim_hv_chan *ch = chan_get(d, port);

	if (!ch)
		return -EINVAL;
	d->chans[port] = NULL;
	d->nr_chans--;
	chan_free(ch);
	return 0;
}

int shim_hv_chan_bind(struct shim_hv_dom *d, struct shim_hv_conn *c, uint32_t self_domid,
		      uint32_t port, struct shim_hv_chan **out)
{
	struct shim_hv_chan *ch = chan_get(d, port);

	/* Xen's evtchn_bind_interdomain: the remote port must be unbound and offered
	 * to us; anything else is -EINVAL. */
	if (!ch || ch->binder || ch->remote_domid != self_domid)
		return -EINVAL;
	if (c->nr_binds >= SHIM_HV_PORTS_MAX)
		return -ENOSPC;
	ch->binder = c;
	ch->serial = ++d->hv->next_serial;
	c->nr_binds++;
	*out = ch;
	return 0;
}

static void chan_unbind(struct shim_hv_chan *ch)
{
	uint64_t v;

	ch->binder->nr_binds--;
	ch->binder = NULL;
	/* Notifications the guest sent meanwhile must not reach the next binder. */
	if (read(ch->fd_b, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing was pending. */
	}
}

int shim_hv_chan_unbind(struct shim_hv_dom *d, struct shim_hv_conn *c, uint32_t port,
			uint64_t serial)
{
	struct shim_hv_chan *ch = chan_get(d, port);

	if (!ch || ch->binder != c || ch->serial != serial)
		return -EINVAL;
	chan_unbind(ch);
	return 0;
}

void shim_hv_conn_unbind_all(struct shim_hv *hv, struct shim_hv_conn *c)
{
	for (struct shim_hv_dom *d = hv->doms; d && c->nr_binds; d = d->next) {
		if (!d->nr_chans)
			continue;
		for (unsigned p = 1; p <= SHIM_HV_PORTS_MAX; p++)
			if (d->chans[p] && d->chans[p]->binder == c)
				chan_unbind(d->chans[p]);
	}
}
