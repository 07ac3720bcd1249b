/* pgrant — persistent-grant cache (see pgrant.h). */
#include "backends/blk/pgrant.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

static uint32_t bucket_of(const struct pgrant_cache *c, uint32_t gref)
{
	return (gref * 2654435761u) & (c->nbuckets - 1);
}

static void lru_unlink(struct pgrant *p)
{
	p->prev->next = p->next;
	p->next->prev = p->prev;
	p->prev = p->next = p;
}

static void lru_append(struct pgrant_cache *c, struct pgrant *p)
{
	p->prev = c->lru.prev;
	p->next = &c->lru;
	c->lru.prev->next = p;
	c->lru.prev = p;
}

int pgrant_cache_init(struct pgrant_cache *c, struct hv_gnt *gnt, uint32_t domid, uint32_t max)
{
	uint32_t n = 16;

	while (n < max)
		n <<= 1;
	*c = (struct pgrant_cache){ .gnt = gnt, .domid = domid, .max = max, .nbuckets = n };
	c->lru.prev = c->lru.next = &c->lru;
	c->buckets = calloc(n, sizeof(*c->buckets));
	return c->buckets ? 0 : -ENOMEM;
}

static void unmap_entry(struct pgrant_cache *c, struct pgrant *p)
{
	struct pgrant **pp = &c->buckets[bucket_of(c, p->gref)];

	while (*pp != p)
		pp = &(*pp)->hnext;
	*pp = p->hnext;
	lru_unlink(p);
	hv_gnt_unmap(c->gnt, p->addr, 1);
	c->count--;
	free(p);
}

void pgrant_cache_deinit(struct pgrant_cache *c)
{
	if (!c->buckets)
		return;
	for (uint32_t i = 0; i < c->nbuckets; i++) {
		while (c->buckets[i]) {
			assert(c->buckets[i]->users == 0);
			unmap_entry(c, c->buckets[i]);
		}
	}
	free(c->buckets);
	c->buckets = NULL;
}

struct pgrant *pgrant_get(struct pgrant_cache *c, uint32_t gref, uint64_t now_ms)
{
	uint32_t b = bucket_of(c, gref);
	struct pgrant *p;

	for (p = c->buckets[b]; p; p = p->hnext) {
		if (p->gref == gref) {
			if (p->users++ == 0)
				lru_unlink(p);
			p->last_used_ms = now_ms;
			c->hits++;
			return p;
		}
	}
	c->misses++;
	if (c->count >= c->max) {
		if (c->lru.next == &c->lru) {
			errno = EBUSY;
			return NULL;
		}
		unmap_entry(c, c->lru.next);
		c->evictions++;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		errno = ENOMEM;
		return NULL;
	}
	p->addr = hv_gnt_map(c->gnt, c->domid, 1, &gref, true);
	if (!p->addr) {
		int err = errno;

		free(p);
		c->map_failures++;
		errno = err;
		return NULL;
	}
	p->gref = gref;
	p->users = 1;
	p->last_used_ms = now_ms;
	p->prev = p->next = p;
	p->hnext = c->buckets[b];
	c->buckets[b] = p;
	c->count++;
	return p;
}

void pgrant_put(struct pgrant_cache *c, struct pgrant *p, uint64_t now_ms)
{
	assert(p->users > 0);
	p->last_used_ms = now_ms;
	if (--p->users == 0)
		lru_append(c, p);
}

unsigned int pgrant_purge_idle(struct pgrant_cache *c, uint64_t now_ms, uint64_t idle_ms)
{
	unsigned int n = 0;

	/* The LRU list is ordered by last release: stop at the first recent one. */
	while (c->lru.next != &c->lru && now_ms - c->lru.next->last_used_ms >= idle_ms) {
		unmap_entry(c, c->lru.next);
		n++;
	}
	return n;
}
