/*
 * ctrl — the netif control ring: hash algorithm, flags, key, mapping size and
 * mapping, applied by net_ctrl_handle (parse.c); grant-referenced payloads are fetched
 * with a grant copy. Counterpart: Linux xen-netback hash.c + interface.c (ctrl ring).
 */
#include "backends/net/netback.h"

#include "xenbus/log.h"

#include <errno.h>
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

void net_ctrl_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct net_dev *dev = w->data;
	int port;

	while ((port = hv_evt_pending(dev->ctrl_evt)) >= 0)
		hv_evt_unmask(dev->ctrl_evt, (uint32_t)port);
	for (;;) {
		struct xen_netif_ctrl_request req;
		struct xen_netif_ctrl_response rsp;
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
		net_ctrl_handle(&dev->hash, dev->nr_queues, &req, &rsp, ctrl_copy_in, dev);
		if (rsp.status != XEN_NETIF_CTRL_STATUS_SUCCESS)
			log_guest(dev->xb.name, "ctrl: request type %u answered status %u", req.type,
				  rsp.status);
		ring_back_put(&dev->ctrl, &rsp, sizeof(rsp));
		if (ring_back_push(&dev->ctrl))
			hv_evt_notify(dev->ctrl_evt, (uint32_t)dev->ctrl_port);
	}
}
