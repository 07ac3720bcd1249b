/*
 * hv_xen — the hv seam over libxengnttab and libxenevtchn (real Xen).
 * No logic here: each op is one library call, -1/errno turned into -errno.
 * Its counterpart for machines without Xen is frontend-shim/hv_shim.c.
 */
#include "xenbus/hv.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <xenevtchn.h>
#include <xengnttab.h>

_Static_assert(sizeof(struct hv_copy_seg) == sizeof(xengnttab_grant_copy_segment_t),
	       "hv_copy_seg must match xengnttab_grant_copy_segment_t");
_Static_assert(offsetof(struct hv_copy_seg, len) ==
		       offsetof(xengnttab_grant_copy_segment_t, len), "len offset");
_Static_assert(offsetof(struct hv_copy_seg, flags) ==
		       offsetof(xengnttab_grant_copy_segment_t, flags), "flags offset");
_Static_assert(offsetof(struct hv_copy_seg, status) ==
		       offsetof(xengnttab_grant_copy_segment_t, status), "status offset");
_Static_assert(offsetof(struct hv_copy_seg, dest) ==
		       offsetof(xengnttab_grant_copy_segment_t, dest), "dest offset");
_Static_assert(HV_COPY_SOURCE_GREF == GNTCOPY_source_gref, "source flag");
_Static_assert(HV_COPY_DEST_GREF == GNTCOPY_dest_gref, "dest flag");

struct xen_gnt {
	struct hv_gnt base;
	xengnttab_handle *xgt;
	bool borrowed; /* gnt_share: xgt belongs to the worker's shared handle */
};

struct xen_evt {
	struct hv_evt base;
	xenevtchn_handle *xce;
};

static inline int neg_errno(int rc)
{
	return rc < 0 ? -(errno ? errno : EIO) : rc;
}

static int xen_gnt_open(struct hv_gnt **out)
{
	struct xen_gnt *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	g->base.ops = &hv_xen_ops;
	g->xgt = xengnttab_open(NULL, 0);
	if (!g->xgt) {
		int err = errno ? errno : ENODEV;

		free(g);
		return -err;
	}
	*out = &g->base;
	return 0;
}

static void xen_gnt_close(struct hv_gnt *base)
{
	struct xen_gnt *g = (struct xen_gnt *)base;

	if (!g->borrowed)
		xengnttab_close(g->xgt);
	free(g);
}

/* gntdev is ioctls and mmap on one fd: one handle serves every thread. Mappings are
 * unmapped by address, so each device still unmaps only what it mapped. */
static int xen_gnt_share(struct hv_gnt *shared, struct hv_gnt **out)
{
	struct xen_gnt *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	g->base.ops = &hv_xen_ops;
	g->xgt = ((struct xen_gnt *)shared)->xgt;
	g->borrowed = true;
	*out = &g->base;
	return 0;
}

static void *xen_gnt_map(struct hv_gnt *base, uint32_t domid, uint32_t count,
			 const uint32_t *refs, bool writable)
{
	struct xen_gnt *g = (struct xen_gnt *)base;

	return xengnttab_map_domain_grant_refs(g->xgt, count, domid, (uint32_t *)refs,
					       writable ? PROT_READ | PROT_WRITE : PROT_READ);
}

static int xen_gnt_unmap(struct hv_gnt *base, void *addr, uint32_t count)
{
	return neg_errno(xengnttab_unmap(((struct xen_gnt *)base)->xgt, addr, count));
}

static int xen_gnt_copy(struct hv_gnt *base, uint32_t count, struct hv_copy_seg *segs)
{
	return neg_errno(xengnttab_grant_copy(((struct xen_gnt *)base)->xgt, count,
					      (xengnttab_grant_copy_segment_t *)segs));
}

static int xen_evt_open(struct hv_evt **out)
{
	struct xen_evt *e = calloc(1, sizeof(*e));
	int fl;

	if (!e)
		return -ENOMEM;
	e->base.ops = &hv_xen_ops;
	e->xce = xenevtchn_open(NULL, 0);
	if (!e->xce) {
		int err = errno ? errno : ENODEV;

		free(e);
		return -err;
	}
	/* hv.h promises -EAGAIN when nothing is pending; /dev/xen/evtchn blocks instead
	 * unless the fd is non-blocking (honoured by every kernel with the evtchn device
	 * that Xen 4.17's tools support). */
	fl = fcntl(xenevtchn_fd(e->xce), F_GETFL);
	if (fl < 0 || fcntl(xenevtchn_fd(e->xce), F_SETFL, fl | O_NONBLOCK) < 0) {
		int err = errno;

		xenevtchn_close(e->xce);
		free(e);
		return -err;
	}
	*out = &e->base;
	return 0;
}

static void xen_evt_close(struct hv_evt *base)
{
	struct xen_evt *e = (struct xen_evt *)base;

	xenevtchn_close(e->xce);
	free(e);
}

#define XCE(base) (((struct xen_evt *)(base))->xce)

static int xen_evt_fd(struct hv_evt *e)
{
	return xenevtchn_fd(XCE(e));
}

static int xen_evt_bind_interdomain(struct hv_evt *e, uint32_t domid, uint32_t remote_port)
{
	return neg_errno(xenevtchn_bind_interdomain(XCE(e), domid, remote_port));
}

static int xen_evt_unbind(struct hv_evt *e, uint32_t port)
{
	return neg_errno(xenevtchn_unbind(XCE(e), port));
}

static int xen_evt_notify(struct hv_evt *e, uint32_t port)
{
	return neg_errno(xenevtchn_notify(XCE(e), port));
}

static int xen_evt_pending(struct hv_evt *e)
{
	return neg_errno(xenevtchn_pending(XCE(e)));
}

static int xen_evt_unmask(struct hv_evt *e, uint32_t port)
{
	return neg_errno(xenevtchn_unmask(XCE(e), port));
}

static int xen_evt_restrict(struct hv_evt *e, uint32_t domid)
{
	if (domid == 0 || domid >= 0x7FF0)
		return -EINVAL;
	return neg_errno(xenevtchn_restrict(XCE(e), (domid_t)domid));
}

const struct hv_ops hv_xen_ops = {
	.name = "xen",
	.gnt_open = xen_gnt_open,
	.gnt_close = xen_gnt_close,
	.gnt_map = xen_gnt_map,
	.gnt_unmap = xen_gnt_unmap,
	.gnt_copy = xen_gnt_copy,
	.evt_open = xen_evt_open,
	.evt_close = xen_evt_close,
	.evt_fd = xen_evt_fd,
	.evt_bind_interdomain = xen_evt_bind_interdomain,
	.evt_unbind = xen_evt_unbind,
	.evt_notify = xen_evt_notify,
	.evt_pending = xen_evt_pending,
	.evt_unmask = xen_evt_unmask,
	.evt_restrict = xen_evt_restrict,
	.gnt_share = xen_gnt_share,
};
