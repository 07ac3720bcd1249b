/*
 * pgrant — the persistent-grant cache of one blkif queue (feature-persistent): each
 * grant the frontend reuses is mapped once, kept in a bounded pool and handed out as a
 * pointer, so I/O goes straight to and from guest memory without a map/unmap per
 * request. Least-recently-used unused entries are unmapped when the pool is full or
 * they have been idle too long. Counterpart: Linux blkback's persistent_gnts tree.
 * Single-threaded: owned by the queue's loop.
 */
#ifndef SPLITPV_BLK_PGRANT_H
#define SPLITPV_BLK_PGRANT_H

#include "xenbus/hv.h"

#include <stdbool.h>
#include <stdint.h>

struct pgrant {
	uint32_t gref;
	uint32_t users;        /* requests using the mapping now */
	uint64_t last_used_ms; /* for the idle purge */
	void *addr;            /* the mapped 4 KiB page */
	struct pgrant *hnext;  /* hash chain */
	struct pgrant *prev, *next; /* LRU list of unused entries (users == 0) */
};

struct pgrant_cache {
	struct hv_gnt *gnt;
	uint32_t domid;
	uint32_t max;          /* bound on mapped grants */
	uint32_t count;        /* mapped now */
	uint32_t nbuckets;     /* power of two */
	struct pgrant **buckets;
	struct pgrant lru;     /* sentinel: lru.next is the least recently used */
	uint64_t hits, misses, evictions, map_failures;
};

/* 0 or -ENOMEM. max: the pool bound (Linux's default is 1056). */
int pgrant_cache_init(struct pgrant_cache *c, struct hv_gnt *gnt, uint32_t domid, uint32_t max);
/* Unmap everything. Entries still in use are a caller bug (asserted). Idempotent. */
void pgrant_cache_deinit(struct pgrant_cache *c);

/*
 * The page behind gref, mapped writable, with a use taken (release with pgrant_put).
 * Maps on a miss, evicting an unused entry when the pool is full. Returns NULL with
 * errno: EBUSY (pool full of entries in use: fall back to grant copy), or the map error
 * (bad or revoked grant: fail the request).
 */
struct pgrant *pgrant_get(struct pgrant_cache *c, uint32_t gref, uint64_t now_ms);
void pgrant_put(struct pgrant_cache *c, struct pgrant *p, uint64_t now_ms);

/* Unmap unused entries idle for at least idle_ms. Returns how many were unmapped. */
unsigned int pgrant_purge_idle(struct pgrant_cache *c, uint64_t now_ms, uint64_t idle_ms);

#endif
