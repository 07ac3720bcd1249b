/*
 * blkfront — a userspace blkif frontend for simulated guests: negotiates what Linux's
 * xen-blkfront does (multi-page rings, multi-queue, indirect descriptors, persistent
 * grants, x86_32 or x86_64 layout) with any blkif backend through the shim, and offers
 * synchronous helpers and an asynchronous batch API for tests, benchmarks and the demo.
 * Counterpart: Linux drivers/block/xen-blkfront.c. Single-threaded: one caller thread.
 */
#ifndef SPLITPV_SHIM_BLKFRONT_H
#define SPLITPV_SHIM_BLKFRONT_H

#include "frontend-shim/guest.h"
#include "ring/blkif_abi.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct blkfront_opts {
	unsigned int queues;         /* wanted multi-queue-num-queues (capped by backend) */
	unsigned int ring_order;     /* wanted ring-page-order (capped by backend) */
	unsigned int max_indirect;   /* segments per indirect request we use (0 = no indirect) */
	bool persistent;             /* offer feature-persistent */
	bool large_sector;           /* write feature-large-sector-size=1 */
	enum blkif_abi abi;          /* layout we put on the ring */
	unsigned int max_inflight;   /* per queue; 0 = min(ring entries, 64) */
	int timeout_ms;              /* for each handshake step; 0 = 10000 */
};
void blkfront_opts_default(struct blkfront_opts *o);

/* What was negotiated, and the disk's properties. */
struct blkfront_info {
	uint64_t sectors;            /* in sector_size units, as the backend wrote */
	uint32_t sector_size, physical_sector_size;
	uint32_t vdisk_info;         /* VDISK_* */
	bool readonly;
	unsigned int queues, ring_order, max_indirect; /* in use */
	bool persistent, flush, barrier, discard, discard_secure;
	uint32_t discard_granularity;
};

struct blkfront;

/*
 * Connect device/vbd/<devid> of guest g: wait for the backend's InitWait, read its
 * features, allocate rings and event channels, write our keys, go Initialised, wait
 * for Connected, read the disk's properties, go Connected. 0 or -errno (-ETIMEDOUT if
 * the backend doesn't get there in time). Caller frees with blkfront_close.
 */
int blkfront_open(struct blkfront **out, struct shim_guest *g, unsigned int devid,
		  const struct blkfront_opts *opts);
/* Close as Linux does (Closing, wait for the backend, Closed), revoke every grant and
 * free. Waits for in-flight requests up to the timeout. NULL ok. */
void blkfront_close(struct blkfront *bf);
const struct blkfront_info *blkfront_info(const struct blkfront *bf);

/* ---- asynchronous I/O ---- */
enum blkfront_op { BF_READ, BF_WRITE, BF_FLUSH, BF_BARRIER, BF_DISCARD };
struct blkfront_io {
	enum blkfront_op op;
	uint64_t sector;        /* 512-byte units */
	void *buf;              /* READ/WRITE/BARRIER data (private memory; copied) */
	size_t len;             /* bytes: multiple of 512; DISCARD: length to discard */
	bool secure;            /* DISCARD */
	unsigned int queue;     /* which queue (mod the number in use) */
	int status;             /* out: BLKIF_RSP_* */
	void (*done)(struct blkfront_io *io);
	void *opaque;
	/* private */
	struct blkfront_io *next;
};
/* Queue an I/O (len up to the request size limit: 11 pages direct, max_indirect pages
 * with indirect). -EAGAIN if its queue has no free slot (poll first), -EINVAL for a bad
 * size. Requests are pushed (and the backend notified) by blkfront_kick. */
int blkfront_submit(struct blkfront *bf, struct blkfront_io *io);
/* Publish queued requests and notify where the backend asked. */
void blkfront_kick(struct blkfront *bf);
/* Wait up to timeout_ms for responses and complete them (done callbacks run here).
 * Returns the number completed, or -errno (-EPROTO: the backend broke the ring). */
int blkfront_poll(struct blkfront *bf, int timeout_ms);
unsigned int blkfront_inflight(const struct blkfront *bf);
/* Largest len one request can carry. */
size_t blkfront_max_io(const struct blkfront *bf);

/* ---- synchronous helpers: any length (split as needed); 0 or -EIO / -EOPNOTSUPP ---- */
int blkfront_read(struct blkfront *bf, uint64_t sector, void *buf, size_t len);
int blkfront_write(struct blkfront *bf, uint64_t sector, const void *buf, size_t len);
int blkfront_flush(struct blkfront *bf);
int blkfront_barrier_write(struct blkfront *bf, uint64_t sector, const void *buf, size_t len);
int blkfront_discard(struct blkfront *bf, uint64_t sector, uint64_t nr_sectors, bool secure);

/* Re-read sectors (after the backend signalled a resize). 0 or -errno. */
int blkfront_refresh(struct blkfront *bf);

/* ---- raw access for hostile tests ---- */
/* The shared ring page(s) and the event channel of queue q, to write bogus contents. */
void *blkfront_raw_sring(struct blkfront *bf, unsigned int q);
int blkfront_raw_notify(struct blkfront *bf, unsigned int q);

#endif
