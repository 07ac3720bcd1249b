/*
 * netfront — a userspace netif frontend for simulated guests: negotiates what Linux's
 * xen-netfront does (rx-copy, rx-notify, SG, GSO v4/v6, checksum offload, multi-queue,
 * split event channels, the ctrl ring, multicast control) with any netif backend
 * through the shim, and moves Ethernet frames through an API, or between the rings and
 * a tap device (netfront_tap_pump) so ordinary tools can use the guest's NIC.
 * Counterpart: Linux drivers/net/xen-netfront.c. Single-threaded: one caller thread.
 */
#ifndef SPLITPV_SHIM_NETFRONT_H
#define SPLITPV_SHIM_NETFRONT_H

#include "frontend-shim/guest.h"
#include "ring/abi.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct netfront_opts {
	unsigned int queues;     /* wanted multi-queue-num-queues (capped by the backend) */
	bool sg, gso4, gso6;     /* feature-sg, feature-gso-tcpv4/6 */
	bool csum;               /* false: feature-no-csum-offload=1 */
	bool csum6;              /* feature-ipv6-csum-offload */
	bool split_evtchn;       /* use event-channel-tx/-rx if offered */
	bool ctrl_ring;          /* set up the ctrl ring if offered */
	bool mcast_ctrl;         /* request-multicast-control */
	int timeout_ms;          /* per handshake step; 0 = 10000 */
};
void netfront_opts_default(struct netfront_opts *o);

/* Per-frame metadata, as the netif flags and GSO extra carry it. */
struct netfront_meta {
	bool csum_blank;         /* checksum left to the other side (partial) */
	bool data_validated;
	uint8_t gso_type;        /* XEN_NETIF_GSO_TYPE_* (0 = none) */
	uint16_t gso_size;
};

struct netfront_stats {
	uint64_t tx_frames, tx_rsp_okay, tx_rsp_error, tx_rsp_null, rx_frames, rx_errors;
	uint64_t rx_slot_mismatch;   /* a response not in its request's slot */
};

struct netfront;

/*
 * Connect device/vif/<devid> of guest g: wait for InitWait, read the features, grant
 * rings, post every RX buffer, write keys, go Connected, wait for the backend's
 * Connected. 0 or -errno (-ETIMEDOUT). Caller frees with netfront_close.
 */
int netfront_open(struct netfront **out, struct shim_guest *g, unsigned int devid,
		  const struct netfront_opts *opts);
/* Closing, wait for the backend, Closed; revoke grants; free. NULL ok. */
void netfront_close(struct netfront *nf);
unsigned int netfront_queues(const struct netfront *nf);
bool netfront_has_ctrl(const struct netfront *nf);
const struct netfront_stats *netfront_stats(const struct netfront *nf);

/* Queue one frame (14..65549 bytes) on queue q and notify. -EAGAIN: no room (poll),
 * -EINVAL: bad size or GSO the backend didn't offer. */
int netfront_send(struct netfront *nf, unsigned int q, const void *frame, size_t len,
		  const struct netfront_meta *m);
/* Wait up to timeout_ms for events; take TX completions and RX frames (re-posting
 * buffers). Returns the number of frames now waiting in netfront_recv, or -errno
 * (-EPROTO: the backend broke a ring; -ENOTCONN: the backend left Connected). */
int netfront_poll(struct netfront *nf, int timeout_ms);
/* Take one received frame: copies up to cap bytes, returns its full length, or
 * -EAGAIN if none. *q_out (optional) = the queue it arrived on. */
int netfront_recv(struct netfront *nf, void *buf, size_t cap, struct netfront_meta *m,
		  unsigned int *q_out);

/* One ctrl-ring request, waited for. 0 and *status / *data, or -errno. */
int netfront_ctrl(struct netfront *nf, uint16_t type, uint32_t d0, uint32_t d1, uint32_t d2,
		  uint32_t *status, uint32_t *data);
/* Grant a page holding len bytes for a ctrl request (key, mapping). Returns gref or -errno. */
int netfront_ctrl_buf(struct netfront *nf, const void *data, size_t len);
/* Multicast add/del through a TX extra slot; returns the response status or -errno. */
int netfront_mcast(struct netfront *nf, bool add, const uint8_t mac[6]);

/*
 * Forward frames between tapfd (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, non-blocking, in the
 * guest's namespace) and queue 0.. of the NIC until *stop becomes true. 0 or -errno.
 */
int netfront_tap_pump(struct netfront *nf, int tapfd, volatile bool *stop);

/* ---- raw access for hostile tests ---- */
/* Put n raw TX slots (12 bytes each; ids >= 1024 so they never alias our own) and
 * notify. -EAGAIN if the ring lacks room. Responses are counted in the stats. */
int netfront_raw_tx(struct netfront *nf, unsigned int q, const struct netif_tx_request *reqs,
		    unsigned int n);
/* A granted page with data at offset 0 for raw requests; gref or -errno. */
int netfront_raw_grant(struct netfront *nf, const void *data, size_t len);
/* Whether the backend still says Connected. */
bool netfront_backend_connected(struct netfront *nf);

#endif
