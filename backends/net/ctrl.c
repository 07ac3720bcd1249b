/*
 * ctrl — the netif control ring: hash algorithm, flags, key, mapping size and
 * mapping, applied by net_ctrl_handle (parse.c); grant-referenced payloads are fetched
 * with a grant copy. Every request is journaled and the resulting state recorded in the
 * journal before its answer is published (a restarted worker keeps both).
 * Counterpart: Linux xen-netback hash.c + interface.c (ctrl ring).
 */
#include "backends/net/netback.h"

#include "xenbus/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int ctrl_copy_in(void *opaque, uint32_t gref, uint32_t offset, void *buf, uint32_t len)
{
	struct net_dev *dev = opaque;
	struct hv_copy_seg s;

	if ((uint64_t)offset + len > NET_PAGE_SIZE)
		return -EINVAL;
	memset(&s, 0, sizeof(s));
	s.source.foreign.ref = gref;
	s.source.foreign.offset = (uint16_t)offset;
	s.source.foreign.domid = (uint16_t)dev->xb.otherend_id;
	s.dest.virt = buf;
	s.len = (uint16_t)len;
	s.flags = HV_COPY_SOURCE_GREF;
	if (hv_gnt_copy(dev->gnt, 1, &s) != 0 || s.status != HV_GNTST_OKAY)
		return -EFAULT;
	return 0;
}

/* Answer one request (taken, journaled); the caller pushes. */
static void ctrl_answer(struct net_dev *dev, const struct xen_netif_ctrl_request *req)
{
	struct xen_netif_ctrl_response rsp;

	net_ctrl_handle(&dev->hash, dev->nr_queues, req, &rsp, ctrl_copy_in, dev);
	if (rsp.status != XEN_NETIF_CTRL_STATUS_SUCCESS)
		log_guest(dev->xb.name, "ctrl: request type %u answered status %u", req->type,
			  rsp.status);
	/* The configuration survives a worker restart only if recorded before the frontend
	 * is told it took effect. */
	net_dev_save_state(dev);
	ring_back_put(&dev->ctrl, &rsp, sizeof(rsp));
}

static void ctrl_push(struct net_dev *dev)
{
	if (net_ring_push(dev, dev->jctrl, &dev->ctrl))
		hv_evt_notify(dev->ctrl_evt, (uint32_t)dev->ctrl_port);
}

void net_ctrl_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct net_dev *dev = w->data;
	uint32_t cons = dev->ctrl.req_cons;
	int port;

	while ((port = hv_evt_pending(dev->ctrl_evt)) >= 0)
		hv_evt_unmask(dev->ctrl_evt, (uint32_t)port);
	for (;;) {
		struct xen_netif_ctrl_request req;
		int n = ring_back_take(&dev->ctrl, &req, sizeof(req), 1);

		if (n < 0) {
			xenbus_device_fatal(&dev->xb, "ctrl ring: bogus request index");
			return;
		}
		if (n == 0) {
			if (ring_back_final_check(&dev->ctrl))
				continue;
			break;
		}
		net_journal_taken(dev, dev->jctrl, &dev->ctrl, &req, sizeof(req), 1);
		ctrl_answer(dev, &req);
		ctrl_push(dev);
	}
	evt_storm_note(&dev->ctrl_storm, loop, dev->ctrl.req_cons != cons);
}

int net_ctrl_resume(struct net_dev *dev)
{
	struct xen_netif_ctrl_request *reqs = calloc(dev->ctrl.nr_ents, sizeof(*reqs));
	int n;

	if (!reqs)
		return -ENOMEM;
	n = net_journal_resume(dev, dev->jctrl, &dev->ctrl, reqs, sizeof(*reqs));
	/* Setting the same hash state again is harmless; the frontend keeps its grants
	 * until it has the answer. */
	for (int i = 0; i < n; i++)
		ctrl_answer(dev, &reqs[i]);
	if (n > 0)
		ctrl_push(dev);
	free(reqs);
	return n < 0 ? n : 0;
}
