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
	struct pgrant_chunk *ch = p->chunk;

	while (*pp != p)
		pp = &(*pp)->hnext;
	*pp = p->hnext;
	lru_unlink(p);
	free(p);
	if (--ch->live == 0) {
		hv_gnt_unmap(c->gnt, ch->base, ch->pages);
		c->count -= ch->pages;
		free(ch);
	}
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

static struct pgrant *lookup(struct pgrant_cache *c, uint32_t gref)
{
	for (struct pgrant *p = c->buckets[bucket_of(c, gref)]; p; p = p->hnext)
		if (p->gref == gref)
			return p;
	return NULL;
}

static void take(struct pgrant *p, uint64_t now_ms)
{
	if (p->users++ == 0)
		lru_unlink(p);
	p->last_used_ms = now_ms;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Map the refs of miss[0..m) (duplicates allowed) in one call and enter them unused, at
 * the young end of the LRU list. Evicts older unused entries while the pool is full.
 * 0, or -1 with errno (EBUSY: no room).
 */
static int map_misses(struct pgrant_cache *c, unsigned int m, uint32_t *miss, uint64_t now_ms)
{
	struct pgrant *ents[PGRANT_BATCH_MAX] = { NULL };
	struct pgrant_chunk *ch;
	unsigned int u = 0, i;
	int err = ENOMEM;

	qsort(miss, m, sizeof(*miss), cmp_u32);
	for (i = 0; i < m; i++)
		if (u == 0 || miss[u - 1] != miss[i])
			miss[u++] = miss[i];
	while (c->count + u > c->max && c->lru.next != &c->lru) {
		unmap_entry(c, c->lru.next);
		c->evictions++;
	}
	if (c->count + u > c->max) {
		errno = EBUSY;
		return -1;
	}
	ch = calloc(1, sizeof(*ch));
	for (i = 0; ch && i < u; i++)
		if (!(ents[i] = calloc(1, sizeof(**ents))))
			goto fail;
	if (!ch)
		goto fail;
	c->map_calls++;
	ch->base = hv_gnt_map(c->gnt, c->domid, u, miss, true);
	if (!ch->base) {
		err = errno;
		c->map_failures++;
		goto fail;
	}
	ch->pages = ch->live = u;
	c->count += u;
	for (i = 0; i < u; i++) {
		struct pgrant *p = ents[i];
		uint32_t b = bucket_of(c, miss[i]);

		p->gref = miss[i];
		p->addr = (uint8_t *)ch->base + (size_t)i * HV_PAGE_SIZE;
		p->chunk = ch;
		p->last_used_ms = now_ms;
		p->hnext = c->buckets[b];
		c->buckets[b] = p;
		lru_append(c, p);
	}
	return 0;
fail:
	for (i = 0; i < u; i++)
		free(ents[i]);
	free(ch);
	errno = err;
	return -1;
}

int pgrant_get_many(struct pgrant_cache *c, unsigned int n, const uint32_t *grefs,
		    struct pgrant **out, uint64_t now_ms)
{
	uint32_t miss[PGRANT_BATCH_MAX];
	unsigned int m = 0, i;
	int err;

	for (i = 0; i < n; i++)
		out[i] = NULL;
	/* Hits are taken at once (eviction can't touch them); misses are mapped in
	 * batches, then looked up and taken in a second pass. */
	for (i = 0; i < n; i++) {
		out[i] = lookup(c, grefs[i]);
		if (out[i]) {
			take(out[i], now_ms);
			c->hits++;
			continue;
		}
		c->misses++;
		miss[m++] = grefs[i];
		if (m == PGRANT_BATCH_MAX || (m && i == n - 1)) {
			if (map_misses(c, m, miss, now_ms) < 0) {
				err = errno;
				goto undo;
			}
			m = 0;
		}
	}
	for (i = 0; i < n; i++) {
		if (out[i])
			continue;
		/* gone only if a later batch had to evict it: the pool is too small */
		out[i] = lookup(c, grefs[i]);
		if (!out[i]) {
			err = EBUSY;
			goto undo;
		}
		take(out[i], now_ms);
	}
	return 0;
undo:
	for (i = 0; i < n; i++) {
		if (out[i])
			pgrant_put(c, out[i], now_ms);
		out[i] = NULL;
	}
	errno = err;
	return -1;
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
