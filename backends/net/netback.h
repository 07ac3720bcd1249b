/*
 * netback — the netif backend for one virtual NIC: control path (xenbus.c: features,
 * frontend keys, queues, ctrl ring, rate), host side (tap.c: the vif<domid>.<devid>
 * tap with IFF_VNET_HDR, multi-queue), TX (tx.c: guest → tap), RX (rx.c: tap → guest)
 * and the ctrl ring (ctrl.c). One device is served by one libev loop in one thread.
 * Counterpart: Linux drivers/net/xen-netback/{xenbus.c,interface.c,netback.c,rx.c,hash.c}.
 */
#ifndef SPLITPV_NET_NETBACK_H
#define SPLITPV_NET_NETBACK_H

#include "backends/net/parse.h"
#include "ring/ring.h"
#include "xenbus/device.h"
#include "xenbus/evt_storm.h"
#include "xenbus/hv.h"
#include "xenbus/journal.h"

#include <ev.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#define NET_MAX_QUEUES 8u
#define NET_MCAST_MAX 64u             /* XEN_NETBK_MCAST_MAX */
#define NET_FRAME_MAX (65535u + NET_ETH_HLEN + 4u)
#define NET_RX_BATCH 64u              /* frames per grant-copy batch */
/* Crash journal: TX ring of queue i is journal queue 2i, its RX ring 2i + 1, the ctrl
 * ring 2 * nr_queues; entries per journal queue (>= every netif ring's size). */
#define NET_JOURNAL_ENTS 256u
#define NET_JQ_TX(i) (2u * (i))
#define NET_JQ_RX(i) (2u * (i) + 1u)
#define NET_JQ_CTRL(nq) (2u * (nq))

/* Administrator's configuration (defaults from net_config_default). */
struct net_config {
	unsigned int max_queues;          /* multi-queue-max-queues (1..NET_MAX_QUEUES) */
	unsigned int rx_queue_max_pkts;   /* frames waiting for guest buffers, per queue */
	size_t rx_queue_max_bytes;        /* ... and their bytes */
	unsigned int rx_stall_ms;         /* no guest buffers this long: carrier off */
	unsigned int rx_drain_ms;         /* frames older than this are dropped */
	bool ctrl_ring;                   /* offer feature-ctrl-ring */
	bool split_evtchn;                /* offer feature-split-event-channels */
};
void net_config_default(struct net_config *cfg);

/* Per-queue counters (Linux netback's plus what userspace can see). */
struct net_stats {
	uint64_t tx_packets, tx_bytes, tx_gso, tx_csum_blank;
	uint64_t tx_errors;               /* chains answered with NETIF_RSP_ERROR */
	uint64_t tx_bad_grant;            /* ... because a grant copy failed */
	uint64_t tx_tap_errors;           /* tap write failed */
	uint64_t tx_csum_fixup;           /* GSO without csum_blank, or setup failed */
	uint64_t tx_credit_waits;         /* times the rate limit held TX back */
	uint64_t rx_packets, rx_bytes, rx_gso;
	uint64_t rx_dropped_expired;      /* waited longer than rx_drain_ms (XSA-392) */
	uint64_t rx_dropped_filtered;     /* multicast not subscribed */
	uint64_t rx_dropped_unsupported;  /* too big without SG, GSO the guest can't take */
	uint64_t rx_copy_errors;          /* grant copy into a guest buffer failed */
	uint64_t rx_queue_full;           /* times tap reading paused: queue at its bound */
	uint64_t rx_queue_peak_pkts;      /* highest queue length seen */
	uint64_t rx_stalls;
	uint64_t notify_in, notify_out;
	uint64_t storm_pauses;            /* evt_storm: notifications ignored for a moment */
};

/* A frame read from the tap, waiting for guest buffers. */
struct net_frame {
	struct net_frame *next;
	uint64_t t_ms;                    /* when it was read */
	struct net_vnet_hdr h;
	uint32_t len;
	uint8_t data[];
};

struct net_dev;

/* TX grant copies batched across packets (tx.c): at most NET_TX_BATCH packets and
 * NET_TX_ARENA bytes of them (a 64 KiB frame always fits an empty arena). */
#define NET_TX_BATCH 16u
#define NET_TX_ARENA (256u * 1024u)
struct net_tx_staged {
	struct net_tx_pkt pkt;
	uint32_t off;                     /* its vnet header in the arena; the frame follows */
	uint16_t seg0, nseg;              /* its grant-copy segments */
	uint8_t segslot[NET_TX_FATAL_SLOTS + 1]; /* segment k copies data slot segslot[k] */
};

struct net_queue {
	struct net_dev *dev;
	unsigned int idx;
	char name[96];
	/* rings */
	struct ring_back tx, rx;
	void *tx_addr, *rx_addr;
	/* event channels (tx_port == rx_port unless split) */
	struct hv_evt *evt;
	int tx_port, rx_port;
	ev_io evt_io;
	struct evt_storm storm;             /* notification-storm back-off */
	/* host side */
	int tapfd;                        /* borrowed from the device */
	ev_io tap_io;
	bool tap_reading;
	/* TX: requests copied out but not yet consumed by a complete chain */
	struct netif_tx_request *txreqs;  /* tx.nr_ents */
	unsigned int tx_have;
	/* TX packets staged for one grant-copy call (tx.c): each one's vnet header and
	 * linear frame in the arena txpkt (NET_TX_ARENA bytes), its segments in txsegs */
	uint8_t *txpkt;
	struct hv_copy_seg *txsegs;       /* NET_TX_BATCH * (NET_TX_FATAL_SLOTS + 1) */
	struct net_tx_staged *txb;        /* NET_TX_BATCH */
	unsigned int txb_n, txb_segs;
	uint32_t txb_used;
	/* rate limit (Linux tx_credit_exceeded) */
	uint64_t credit_bytes, credit_usec;
	uint64_t remaining_credit;
	uint64_t credit_window_us;        /* start of the current window (monotonic us) */
	ev_timer credit_timer;
	bool credit_wait;
	/* RX */
	struct netif_rx_request *rxreqs;  /* taken, not yet answered (in ring order) */
	unsigned int rx_have, rx_first;
	struct net_frame *rxq_head, *rxq_tail;
	struct net_frame *rx_spare;       /* the next tap read lands here (NET_FRAME_MAX) */
	unsigned int rxq_pkts;
	size_t rxq_bytes;
	ev_timer rx_timer;                /* drain and stall checks while frames wait */
	uint64_t rx_last_progress_ms;
	bool stalled;
	struct hv_copy_seg *rxsegs;       /* NET_RX_BATCH * 17 */
	struct net_stats stats;
	int jtx, jrx;                     /* journal queues of the rings, -1: none */
	bool need_tx_notify, need_rx_notify;
	ev_prepare push_prep;             /* push and notify once per loop iteration */
};

/* The frontend's keys of one connection (read at connect; the journal records them so a
 * take-over can check it is the same connection: same rings, same channels). */
struct net_fe_keys {
	uint32_t nr_queues;
	uint32_t tx_ref[NET_MAX_QUEUES], rx_ref[NET_MAX_QUEUES];
	uint32_t tx_port[NET_MAX_QUEUES], rx_port[NET_MAX_QUEUES]; /* equal unless split */
	uint32_t split[NET_MAX_QUEUES];
	uint32_t ctrl;                    /* 1: ctrl-ring-ref and event-channel-ctrl given */
	uint32_t ctrl_ref, ctrl_port;
};

struct net_dev {
	struct xenbus_device xb;
	struct net_config cfg;
	/* probe */
	char ifname[IFNAMSIZ];
	int tapfds[NET_MAX_QUEUES];
	unsigned int ntapfds;
	unsigned int mtu;
	/* negotiated at connect */
	struct net_fe_keys fe;
	unsigned int nr_queues;
	bool sg, gso4, gso6, csum4, csum6, rx_notify, mcast_ctrl;
	struct net_queue **queues;
	struct hv_gnt *gnt;
	/* ctrl ring */
	struct ring_back ctrl;
	void *ctrl_addr;
	struct hv_evt *ctrl_evt;
	int ctrl_port;
	ev_io ctrl_io;
	struct evt_storm ctrl_storm;      /* storm back-off, as the queues' */
	int jctrl;                        /* journal queue of the ctrl ring, -1: none */
	struct net_hash hash;
	/* multicast filter */
	uint8_t mcast[NET_MCAST_MAX][6];
	unsigned int nr_mcast;
	/* request-multicast-control watched while connected (Linux xen_mcast_ctrl_changed):
	 * a handle of its own, so its events reach our callback, not the device's. */
	struct xs_handle *mcast_xs;
	struct xenbus_watcher mcast_watcher;
	char mcast_key[XENBUS_PATH_MAX];
	bool mcast_watching;
	/* rate as last read from the backend's "rate" key (bytes, usecs; 0 = unlimited) */
	uint64_t rate_bytes, rate_usecs;
	bool carrier;
	bool tap_persist;                 /* TUNSETPERSIST on: the tap outlives this worker */
	/* crash journal kept by the supervisor (journal.fd -1: none) */
	struct xenbus_journal journal;
	bool journal_on;                  /* formatted (or resumed) for this connection */
	bool resuming;                    /* this worker takes over a live connection */
	ev_timer stats_timer;             /* stats snapshot into the journal */
	struct net_stats stats_base;      /* counters of the workers before this one */
};

/* Device ops for xenbus_device_start (xenbus.c). priv = a struct net_dev with cfg set. */
extern const struct xenbus_device_ops net_xenbus_ops;
/* Zero the device and set every sentinel (fds -1) before xenbus_device_start. */
void net_dev_init(struct net_dev *dev, const struct net_config *cfg);
/* Sum of every queue's counters. */
void net_dev_stats(const struct net_dev *dev, struct net_stats *sum);
/* Adopt the device's crash journal (fd -1: none) before xenbus_device_start/resume, in
 * the device's thread. Returns true if the journal says the device is live (Connected
 * under a worker that died): resume it. The fd stays the caller's. */
bool net_dev_journal_init(struct net_dev *dev, int fd);
/* Final counters to the log and the journal, journal unmapped. */
void net_dev_done(struct net_dev *dev);
/* Record the state the frontend set up through the rings (hash configuration,
 * multicast list) in the journal; before the response that confirms it is published. */
void net_dev_save_state(struct net_dev *dev);

/* ---- tap.c ---- */
/* Create (or attach to) tap ifname with n queues (IFF_MULTI_QUEUE when n > 1), vnet
 * header on, non-blocking. fds[0..n-1] receive the fds. 0 or -errno. */
int net_tap_open(const char *ifname, unsigned int n, int *fds);
/* TUNSETOFFLOAD with what the guest can take on RX. 0 or -errno. */
int net_tap_set_offload(int fd, bool csum, bool tso4, bool tso6);
/* IFF_ATTACH_QUEUE / IFF_DETACH_QUEUE. 0 or -errno. */
int net_tap_queue_enable(int fd, bool on);
int net_tap_set_carrier(int fd, bool on);
/* TUNSETPERSIST: a persistent tap survives its last fd closing (a dead worker), with
 * its ifindex, address and bridge port; the next worker attaches to it by name. */
int net_tap_set_persist(int fd, bool on);
int net_tap_set_mtu(const char *ifname, unsigned int mtu);
int net_tap_set_mac(const char *ifname, const uint8_t mac[6]);

/* ---- queue.c ---- */
/* Build a connected queue over mapped rings; 0 or -errno. */
int net_queue_open(struct net_dev *dev, unsigned int idx, void *tx_addr, void *rx_addr,
		   struct hv_evt *evt, int tx_port, int rx_port, struct net_queue **out);
/* Stop watchers, unbind, unmap, free queued frames. NULL ok. */
void net_queue_close(struct net_queue *q);
/*
 * Journaling of a netif ring. Every netif ring answers its requests one response per
 * request slot, in request order (TX: first slot, NULL per extra, then each frag; RX: a
 * GSO extra-info response takes a request slot as well; ctrl: one to one), so request
 * index i is answered at index i and journaled in entry i mod the ring size.
 * jqi < 0 or no journal: plain ring operations.
 */
/* The n requests just taken (at reqs, req_size each, the last at req_cons - 1). */
void net_journal_taken(struct net_dev *dev, int jqi, const struct ring_back *r,
		       const void *reqs, size_t req_size, unsigned int n);
/* Publish the responses written: journaled responded and rsp_prod first, then the ring;
 * their entries free after. Returns ring_back_push's "notify". */
bool net_ring_push(struct net_dev *dev, int jqi, struct ring_back *r);
/* Take over a ring from a worker that died: position r at the journal's indices, copy
 * the requests taken and not answered into reqs (oldest first, at most r->nr_ents) and
 * publish the responses already made. Returns their count or -EPROTO/-ENOMEM. */
int net_journal_resume(struct net_dev *dev, int jqi, struct ring_back *r, void *reqs,
		       size_t req_size);

/* New credit parameters (rate key changed). */
void net_queue_set_rate(struct net_queue *q, uint64_t bytes, uint64_t usecs);

/* ---- tx.c ---- */
void net_tx_kick(struct net_queue *q);
/* ---- rx.c ---- */
void net_rx_tap_cb(struct ev_loop *loop, ev_io *w, int revents);
void net_rx_kick(struct net_queue *q);
void net_rx_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
/* Enqueue a frame for queue q (takes ownership); applies the queue bound. */
void net_rx_enqueue(struct net_queue *q, struct net_frame *f);
bool net_mcast_ok(const struct net_dev *dev, const uint8_t *frame, size_t len);
int net_mcast_add(struct net_dev *dev, const uint8_t addr[6]);
void net_mcast_del(struct net_dev *dev, const uint8_t addr[6]);
/* ---- ctrl.c ---- */
void net_ctrl_cb(struct ev_loop *loop, ev_io *w, int revents);
/* After a worker died: answer the ctrl requests it had taken and not answered. 0 or
 * -errno (-EPROTO: journal unusable). */
int net_ctrl_resume(struct net_dev *dev);

uint64_t net_now_us(void);

#endif
