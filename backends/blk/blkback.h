/*
 * blkback — the blkif backend for one virtual block device: control path (xenbus.c:
 * features, frontend keys, connect/disconnect), data path (datapath.c: copy-out,
 * parse, grant copy or persistent grants, storage I/O, responses). One device is
 * served by one libev loop in one thread; every queue (ring + event channel) of the
 * device lives on that loop.
 * Counterpart: Linux drivers/block/xen-blkback/{xenbus.c,blkback.c}.
 */
#ifndef SPLITPV_BLK_BLKBACK_H
#define SPLITPV_BLK_BLKBACK_H

#include "backends/blk/parse.h"
#include "backends/blk/pgrant.h"
#include "backends/blk/storage.h"
#include "ring/blkif_abi.h"
#include "ring/ring.h"
#include "xenbus/device.h"
#include "xenbus/evt_storm.h"
#include "xenbus/hv.h"
#include "xenbus/journal.h"

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

/* Administrator's configuration of a device (defaults from blk_config_default). */
struct blk_config {
	unsigned int max_queues;            /* multi-queue-max-queues */
	unsigned int max_ring_order;        /* max-ring-page-order (<= RING_MAX_ORDER) */
	unsigned int max_indirect_segments; /* feature-max-indirect-segments (0: off) */
	bool persistent;                    /* offer feature-persistent */
	unsigned int max_persistent_grants; /* per queue */
	unsigned int sector_size;           /* logical sector to present: 0 = storage's */
	bool direct;                        /* O_DIRECT when the storage allows */
	unsigned int bounce_pages;          /* per-queue bound on grant-copy bounce pages */
	unsigned int resize_poll_ms;        /* how often to look for a size change (0: off) */
};
void blk_config_default(struct blk_config *cfg);

#define BLK_LAT_BUCKETS 25 /* up to ~33 s */

/* Per-device counters (Linux blkback's statistics/ plus what we can see). */
struct blk_stats {
	uint64_t rd_req, wr_req, flush_req, barrier_req, discard_req, indirect_req;
	uint64_t rd_sect, wr_sect;
	uint64_t errors, eopnotsupp;        /* responses other than OKAY */
	uint64_t oo_req;                    /* times we stopped taking requests (no resources) */
	uint64_t notify_in, notify_out;
	uint64_t storm_pauses;              /* evt_storm: notifications ignored for a moment */
	uint64_t pgrant_hits, pgrant_misses;
	/* Request latency, taken to answered: bucket i counts [2^i, 2^(i+1)) us. */
	uint64_t lat_hist[BLK_LAT_BUCKETS];
};
/* Latency percentile (0 < pct < 100) from the histogram, as the bucket's upper bound in
 * us; 0 when nothing was counted. */
uint64_t blk_stats_latency_us(const struct blk_stats *s, double pct);

struct blk_dev;

/* One request between copy-out and its response. */
struct blk_inflight {
	struct blk_queue *q;
	struct blk_req req;                 /* validated; req.seg points at segs */
	struct blk_seg *segs;               /* capacity: q's max segments */
	struct iovec *iov;                  /* one per segment */
	void **pages;                       /* bounce pages (grant copy) or NULL entries */
	struct pgrant **pg;                 /* persistent mappings in use, or NULL entries */
	uint16_t nr_pages;                  /* bounce pages held */
	uint8_t stage;                      /* index in the request's storage-op chain */
	bool copy_path;                     /* data moves by grant copy (else persistent) */
	bool has_buffers;                   /* buffers attached (and write data copied in) */
	uint64_t t_taken_ns;                /* when it left the ring (latency histogram) */
	int status;                         /* BLKIF_RSP_* so far */
	struct blk_io io;
	int jent;                           /* its crash-journal entry, or -1 */
	struct blk_inflight *next_free;     /* free list, or the parked FIFO */
};

struct blk_queue {
	struct blk_dev *dev;
	unsigned int idx;
	char name[80];
	/* ring */
	struct ring_back ring;
	void *ring_addr;
	unsigned int ring_pages;
	uint8_t *reqbuf;                    /* private copy-out area for a batch */
	/* event channel */
	struct hv_evt *evt;
	int lport;
	ev_io evt_io;
	struct evt_storm storm;             /* notification-storm back-off */
	ev_prepare push_prep;               /* push responses + notify once per iteration */
	bool need_push;
	/* requests */
	struct blk_inflight *slots;         /* nr_ents of them */
	struct blk_inflight *free;
	unsigned int inflight;
	/* Taken requests that can't start yet, in ring order: waiting for bounce pages, a
	 * WRITE_BARRIER waiting for everything before it to complete, and whatever came
	 * after them. */
	struct blk_inflight *parked, *parked_tail;
	unsigned int nparked;
	bool starved;                       /* stopped taking: every request slot in use */
	bool kicking, rekick;               /* blk_queue_kick re-entrancy guard */
	/* memory for the data path: one mapping, bounce pages then the indirect pages */
	void *bounce_mem;
	size_t bounce_bytes;
	void **bounce_free;                 /* stack of free 4 KiB pages */
	unsigned int bounce_nfree, bounce_total;
	void *indirect_buf;                 /* 8 pages: indirect descriptors copy-out */
	struct pgrant_cache pgrants;
	bool persistent;
	bool indirect_by_copy;              /* a persistent map of an indirect page failed */
	bool connected;
	bool zombie;                        /* disconnected with I/O in flight: freed at 0 */
	/* crash journal (NULL jq: none): entries of requests whose response isn't out */
	struct xenbus_journal_queue *jq;
	unsigned int jnents;                /* entries in the table (2 x ring entries) */
	unsigned int *jfree, jnfree;        /* stack of free entry indices */
	unsigned int *jfifo;                /* responded entries in response order */
	uint32_t jfifo_head, jfifo_tail;    /* jnents is a power of two */
	bool jstarved;                      /* stopped taking: no free journal entry */
};

struct blk_dev {
	struct xenbus_device xb;
	struct blk_config cfg;
	char *params;
	struct blk_storage *st;
	struct blk_storage_info info;
	struct blk_limits lim;
	bool readonly, cdrom, removable, discard_enable;
	/* negotiated at connect */
	enum blkif_abi abi;
	unsigned int nr_queues, ring_order;
	bool persistent, large_sector;
	struct blk_queue **queues;
	struct hv_gnt *gnt;
	ev_timer resize_timer, purge_timer, stats_timer;
	struct blk_stats stats;
	/* crash journal kept by the supervisor (journal.fd -1: none) */
	struct xenbus_journal journal;
	bool journal_on;                    /* formatted (or resumed) for this connection */
	bool resuming;                      /* this connect takes over a live connection */
};

/* Set up a device's journal before xenbus_device_start/resume: fd -1 for none.
 * The fd stays the caller's; blk_remove unmaps. */
void blk_dev_journal_init(struct blk_dev *dev, int fd);
/* Write the stats snapshot (text "key value" lines) into the journal. */
void blk_dev_stats_snapshot(struct blk_dev *dev);

/* Device ops for xenbus_device_start (xenbus.c). priv = a struct blk_dev with cfg set. */
extern const struct xenbus_device_ops blk_xenbus_ops;

/* ---- datapath.c ---- */
/* Build a connected queue over a mapped ring; called by connect. 0 or -errno. */
int blk_queue_open(struct blk_dev *dev, unsigned int idx, void *ring_addr,
		   unsigned int ring_pages, struct hv_evt *evt, int lport,
		   struct blk_queue **out);
/* Stop serving: watchers stopped, event channel unbound, ring unmapped. If I/O is still
 * in flight the queue becomes a zombie freed by the last completion. Idempotent via
 * the caller clearing its pointer. */
void blk_queue_close(struct blk_queue *q);
/* Service the ring (evtchn fired, or resources came back). */
void blk_queue_kick(struct blk_queue *q);

uint64_t blk_now_ms(void);

#endif
