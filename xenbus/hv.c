/*
 * hv — platform selection, the thin dispatch wrappers declared in hv.h, and worker
 * mode: one shared grant-table handle and a pool of restricted event-channel handles
 * opened before a worker drops its privileges. The implementations are hv_xen.c and
 * frontend-shim/hv_shim.c.
 */
#include "xenbus/hv.h"

#include "xenbus/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

const struct hv_ops *hv_platform(void)
{
	const char *shim = getenv("SPLITPV_SHIM");

	return (shim && *shim) ? &hv_shim_ops : &hv_xen_ops;
}

/* Worker mode (hv_worker_init). Set once before device threads exist; the pool is
 * shared by every device thread, hence the lock. */
static struct hv_gnt *worker_gnt;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hv_evt **pool;
static unsigned int pool_size, pool_free;
static uint32_t pool_domid;

int hv_worker_init(uint32_t domid, unsigned int size)
{
	const struct hv_ops *ops = hv_platform();
	struct hv_gnt *g = NULL;
	struct hv_evt **p;
	unsigned int n = 0;
	int rc;

	if (worker_gnt || size == 0)
		return -EINVAL;
	p = calloc(size, sizeof(*p));
	if (!p)
		return -ENOMEM;
	rc = ops->gnt_open(&g);
	for (; rc == 0 && n < size; n++) {
		rc = ops->evt_open(&p[n]);
		if (rc)
			break;
		p[n]->pooled = true;
		rc = ops->evt_restrict(p[n], domid);
		if (rc) {
			ops->evt_close(p[n]);
			break;
		}
	}
	if (rc) {
		while (n > 0)
			ops->evt_close(p[--n]);
		if (g)
			ops->gnt_close(g);
		free(p);
		return rc;
	}
	pool = p;
	pool_size = pool_free = size;
	pool_domid = domid;
	worker_gnt = g;
	return 0;
}

unsigned int hv_worker_pool_free(void)
{
	unsigned int n;

	pthread_mutex_lock(&pool_lock);
	n = pool_free;
	pthread_mutex_unlock(&pool_lock);
	return n;
}

int hv_gnt_open(struct hv_gnt **out)
{
	if (worker_gnt)
		return worker_gnt->ops->gnt_share(worker_gnt, out);
	return hv_platform()->gnt_open(out);
}

void hv_gnt_close(struct hv_gnt *g)
{
	if (g)
		g->ops->gnt_close(g);
}

void *hv_gnt_map(struct hv_gnt *g, uint32_t domid, uint32_t count, const uint32_t *refs,
		 bool writable)
{
	if (count == 0) {
		errno = EINVAL;
		return NULL;
	}
	return g->ops->gnt_map(g, domid, count, refs, writable);
}

int hv_gnt_unmap(struct hv_gnt *g, void *addr, uint32_t count)
{
	return g->ops->gnt_unmap(g, addr, count);
}

int hv_gnt_copy(struct hv_gnt *g, uint32_t count, struct hv_copy_seg *segs)
{
	return g->ops->gnt_copy(g, count, segs);
}

int hv_evt_open(struct hv_evt **out)
{
	struct hv_evt *e = NULL;

	if (!pool)
		return hv_platform()->evt_open(out);
	pthread_mutex_lock(&pool_lock);
	if (pool_free > 0)
		e = pool[--pool_free];
	pthread_mutex_unlock(&pool_lock);
	if (!e) {
		log_err(NULL, "all %u event-channel handles of dom%u's worker are in use", pool_size,
			pool_domid);
		return -EMFILE;
	}
	e->nbound = 0;
	*out = e;
	return 0;
}

void hv_evt_close(struct hv_evt *e)
{
	if (!e)
		return;
	if (!e->pooled) {
		e->ops->evt_close(e);
		return;
	}
	/* Back to the pool clean: nothing the next device could receive or signal. */
	while (e->nbound > 0)
		e->ops->evt_unbind(e, e->bound[--e->nbound]);
	pthread_mutex_lock(&pool_lock);
	pool[pool_free++] = e;
	pthread_mutex_unlock(&pool_lock);
}

int hv_evt_fd(struct hv_evt *e)
{
	return e->ops->evt_fd(e);
}

int hv_evt_bind_interdomain(struct hv_evt *e, uint32_t domid, uint32_t remote_port)
{
	int port;

	if (e->pooled && e->nbound >= HV_EVT_POOL_BINDS)
		return -ENOSPC;
	port = e->ops->evt_bind_interdomain(e, domid, remote_port);
	if (port >= 0 && e->pooled)
		e->bound[e->nbound++] = (uint32_t)port;
	return port;
}

int hv_evt_unbind(struct hv_evt *e, uint32_t port)
{
	int rc = e->ops->evt_unbind(e, port);

	for (unsigned int i = 0; e->pooled && i < e->nbound; i++) {
		if (e->bound[i] == port) {
			e->bound[i] = e->bound[--e->nbound];
			break;
		}
	}
	return rc;
}

int hv_evt_notify(struct hv_evt *e, uint32_t port)
{
	return e->ops->evt_notify(e, port);
}

int hv_evt_pending(struct hv_evt *e)
{
	return e->ops->evt_pending(e);
}

int hv_evt_unmask(struct hv_evt *e, uint32_t port)
{
	return e->ops->evt_unmask(e, port);
}
