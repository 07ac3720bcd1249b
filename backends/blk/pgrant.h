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

/* Most pages one hv_gnt_map call maps (a longer request maps in several calls). */
#define PGRANT_BATCH_MAX 256u

/* One hv_gnt_map call's pages: unmapped when its last entry goes. */
struct pgrant_chunk {
	void *base;
	uint32_t pages;        /* mapped by the call */
	uint32_t live;         /* entries still in the cache */
};

struct pgrant {
	uint32_t gref;
	uint32_t users;        /* requests using the mapping now */
	uint64_t last_used_ms; /* for the idle purge */
	void *addr;            /* the mapped 4 KiB page */
	struct pgrant_chunk *chunk;
	struct pgrant *hnext;  /* hash chain */
	struct pgrant *prev, *next; /* LRU list of unused entries (users == 0) */
};

struct pgrant_cache {
	struct hv_gnt *gnt;
	uint32_t domid;
	uint32_t max;          /* bound on mapped pages */
	uint32_t count;        /* pages mapped now (an evicted entry's page stays mapped
				* until the rest of its chunk goes) */
	uint32_t nbuckets;     /* power of two */
	struct pgrant **buckets;
	struct pgrant lru;     /* sentinel: lru.next is the least recently used */
	uint64_t hits, misses, evictions, map_failures, map_calls;
};

/* 0 or -ENOMEM. max: the pool bound (Linux's default is 1056). */
int pgrant_cache_init(struct pgrant_cache *c, struct hv_gnt *gnt, uint32_t domid, uint32_t max);
/* Unmap everything. Entries still in use are a caller bug (asserted). Idempotent. */
void pgrant_cache_deinit(struct pgrant_cache *c);

/*
 * The pages behind grefs[0..n), mapped writable, each with a use taken (release each
 * with pgrant_put): out[i] for grefs[i]. What isn't cached yet is mapped in one call
 * (one hypercall batch instead of one per page: the first use of a frontend's pool
 * costs a map per request, not per segment), evicting unused entries while the pool is
 * full. All or nothing: 0, or -1 with errno EBUSY (the pool is full of entries in use:
 * fall back to grant copy) or the map error (a bad or revoked grant among the misses:
 * fail the request), with nothing taken.
 */
int pgrant_get_many(struct pgrant_cache *c, unsigned int n, const uint32_t *grefs,
		    struct pgrant **out, uint64_t now_ms);
void pgrant_put(struct pgrant_cache *c, struct pgrant *p, uint64_t now_ms);

/* Unmap unused entries idle for at least idle_ms. Returns how many were unmapped. */
unsigned int pgrant_purge_idle(struct pgrant_cache *c, uint64_t now_ms, uint64_t idle_ms);

#endif
