/*
 * hv — platform selection and the thin dispatch wrappers declared in hv.h.
 * The implementations are hv_xen.c and frontend-shim/hv_shim.c.
 */
#include "xenbus/hv.h"

#include <errno.h>
#include <stdlib.h>

const struct hv_ops *hv_platform(void)
{
	const char *shim = getenv("SPLITPV_SHIM");

	return (shim && *shim) ? &hv_shim_ops : &hv_xen_ops;
}

int hv_gnt_open(struct hv_gnt **out)
{
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
	return hv_platform()->evt_open(out);
}

void hv_evt_close(struct hv_evt *e)
{
	if (e)
		e->ops->evt_close(e);
}

int hv_evt_fd(struct hv_evt *e)
{
	return e->ops->evt_fd(e);
}

int hv_evt_bind_interdomain(struct hv_evt *e, uint32_t domid, uint32_t remote_port)
{
	return e->ops->evt_bind_interdomain(e, domid, remote_port);
}

int hv_evt_unbind(struct hv_evt *e, uint32_t port)
{
	return e->ops->evt_unbind(e, port);
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
