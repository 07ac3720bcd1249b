/*
 * Unit tests of the persistent-grant cache (backends/blk/pgrant.c) over a fake grant
 * table that records every map and unmap call: misses of one request mapped in one
 * call, hits mapped never again, the page bound, chunks unmapped when their last entry
 * goes, all-or-nothing failures.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backends/blk/pgrant.h"
#include "tests/unit/unit.h"

#define NREF 4096u
#define BAD_REF 13u /* the fake refuses to map it */

static struct {
	unsigned int map_calls, unmap_calls, pages_mapped;
	uint32_t last_count;
} fk;

static void *fake_map(struct hv_gnt *g, uint32_t domid, uint32_t count, const uint32_t *refs,
		      bool writable)
{
	uint8_t *base;

	(void)g;
	(void)domid;
	CU_ASSERT_TRUE(writable);
	for (uint32_t i = 0; i < count; i++) {
		CU_ASSERT_TRUE(refs[i] < NREF);
		for (uint32_t k = 0; k < i; k++)
			CU_ASSERT_NOT_EQUAL(refs[k], refs[i]); /* never the same ref twice */
		if (refs[i] == BAD_REF) {
			errno = EINVAL;
			return NULL;
		}
	}
	base = malloc((size_t)count * HV_PAGE_SIZE);
	for (uint32_t i = 0; i < count; i++) /* each page says which ref it is */
		memcpy(base + (size_t)i * HV_PAGE_SIZE, &refs[i], sizeof(refs[i]));
	fk.map_calls++;
	fk.pages_mapped += count;
	fk.last_count = count;
	return base;
}

static int fake_unmap(struct hv_gnt *g, void *addr, uint32_t count)
{
	(void)g;
	fk.unmap_calls++;
	CU_ASSERT_TRUE(fk.pages_mapped >= count);
	fk.pages_mapped -= count;
	free(addr);
	return 0;
}

static const struct hv_ops fake_ops = { .name = "fake", .gnt_map = fake_map, .gnt_unmap = fake_unmap };
static struct hv_gnt fake_gnt = { .ops = &fake_ops };

static void setup(struct pgrant_cache *c, uint32_t max)
{
	memset(&fk, 0, sizeof(fk));
	CU_ASSERT_EQUAL_FATAL(pgrant_cache_init(c, &fake_gnt, 3, max), 0);
}

static uint32_t ref_of(const struct pgrant *p)
{
	uint32_t r;

	memcpy(&r, p->addr, sizeof(r));
	return r;
}

static void put_all(struct pgrant_cache *c, struct pgrant **pg, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		pgrant_put(c, pg[i], 1);
}

static void pgrant_misses_of_a_request_are_mapped_in_one_call(void)
{
	struct pgrant_cache c;
	struct pgrant *pg[32];
	uint32_t refs[32];

	setup(&c, 1056);
	for (unsigned int i = 0; i < 32; i++)
		refs[i] = 100 + 31 - i; /* any order */
	CU_ASSERT_EQUAL(pgrant_get_many(&c, 32, refs, pg, 1), 0);
	CU_ASSERT_EQUAL(fk.map_calls, 1);
	CU_ASSERT_EQUAL(fk.last_count, 32);
	for (unsigned int i = 0; i < 32; i++)
		CU_ASSERT_EQUAL(ref_of(pg[i]), refs[i]);
	put_all(&c, pg, 32);
	/* again, plus 4 new ones: only those 4 are mapped */
	refs[3] = 500, refs[9] = 501, refs[20] = 502, refs[31] = 503;
	CU_ASSERT_EQUAL(pgrant_get_many(&c, 32, refs, pg, 2), 0);
	CU_ASSERT_EQUAL(fk.map_calls, 2);
	CU_ASSERT_EQUAL(fk.last_count, 4);
	for (unsigned int i = 0; i < 32; i++)
		CU_ASSERT_EQUAL(ref_of(pg[i]), refs[i]);
	CU_ASSERT_EQUAL(c.hits, 28);
	CU_ASSERT_EQUAL(c.misses, 36);
	put_all(&c, pg, 32);
	pgrant_cache_deinit(&c);
	CU_ASSERT_EQUAL(fk.pages_mapped, 0);
	CU_ASSERT_EQUAL(fk.unmap_calls, 2);
}

static void pgrant_a_ref_named_twice_is_mapped_once_and_used_twice(void)
{
	struct pgrant_cache c;
	struct pgrant *pg[5];
	uint32_t refs[5] = { 7, 8, 7, 9, 7 };

	setup(&c, 64);
	CU_ASSERT_EQUAL(pgrant_get_many(&c, 5, refs, pg, 1), 0);
	CU_ASSERT_EQUAL(fk.last_count, 3);
	CU_ASSERT_PTR_EQUAL(pg[0], pg[2]);
	CU_ASSERT_PTR_EQUAL(pg[0], pg[4]);
	CU_ASSERT_EQUAL(pg[0]->users, 3);
	CU_ASSERT_EQUAL(pg[1]->users, 1);
	put_all(&c, pg, 5);
	CU_ASSERT_EQUAL(pg[0]->users, 0);
	pgrant_cache_deinit(&c);
	CU_ASSERT_EQUAL(fk.pages_mapped, 0);
}

static void pgrant_chunk_is_unmapped_when_its_last_entry_goes(void)
{
	struct pgrant_cache c;
	struct pgrant *pg[8];
	uint32_t a[4] = { 1, 2, 3, 4 }, b[4] = { 5, 6, 7, 8 }, one;

	setup(&c, 8);
	CU_ASSERT_EQUAL(pgrant_get_many(&c, 4, a, pg, 1), 0);
	CU_ASSERT_EQUAL(pgrant_get_many(&c, 4, b, pg + 4, 2), 0);
	put_all(&c, pg, 8); /* LRU: 1 2 3 4 (one chunk), then 5 6 7 8 */
	CU_ASSERT_EQUAL(c.count, 8);
	/* one new page: the oldest entries go until a whole chunk's pages are free */
	one = 9;
	CU_ASSERT_EQUAL(pgrant_get_many(&c, 1, &one, pg, 3), 0);
	CU_ASSERT_EQUAL(fk.unmap_calls, 1);
	CU_ASSERT_EQUAL(c.count, 5);
	CU_ASSERT_TRUE(c.count <= c.max);
	CU_ASSERT_EQUAL(c.evictions, 4);
	pgrant_put(&c, pg[0], 4);
	/* 5..8 are still cached: no map */
	CU_ASSERT_EQUAL(pgrant_get_many(&c, 4, b, pg, 5), 0);
	CU_ASSERT_EQUAL(fk.map_calls, 3);
	put_all(&c, pg, 4);
	pgrant_cache_deinit(&c);
	CU_ASSERT_EQUAL(fk.pages_mapped, 0);
}

static void pgrant_full_pool_of_busy_entries_is_ebusy_and_takes_nothing(void)
{
	struct pgrant_cache c;
	struct pgrant *pg[4], *more[2] = { (void *)1, (void *)1 };
	uint32_t a[4] = { 1, 2, 3, 4 }, b[2] = { 1, 20 };

	setup(&c, 4);
	CU_ASSERT_EQUAL(pgrant_get_many(&c, 4, a, pg, 1), 0);
	errno = 0;
	CU_ASSERT_EQUAL(pgrant_get_many(&c, 2, b, more, 2), -1);
	CU_ASSERT_EQUAL(errno, EBUSY);
	CU_ASSERT_PTR_NULL(more[0]);
	CU_ASSERT_PTR_NULL(more[1]);
	CU_ASSERT_EQUAL(pg[0]->users, 1); /* the hit on ref 1 was given back */
	CU_ASSERT_EQUAL(fk.map_calls, 1);
	put_all(&c, pg, 4);
	pgrant_cache_deinit(&c);
	CU_ASSERT_EQUAL(fk.pages_mapped, 0);
}

static void pgrant_bad_grant_fails_the_whole_batch(void)
{
	struct pgrant_cache c;
	struct pgrant *pg[3];
	uint32_t ok[1] = { 2 }, bad[3] = { 2, BAD_REF, 4 };

	setup(&c, 16);
	CU_ASSERT_EQUAL(pgrant_get_many(&c, 1, ok, pg, 1), 0);
	pgrant_put(&c, pg[0], 1);
	errno = 0;
	CU_ASSERT_EQUAL(pgrant_get_many(&c, 3, bad, pg, 2), -1);
	CU_ASSERT_EQUAL(errno, EINVAL);
	CU_ASSERT_EQUAL(c.map_failures, 1);
	CU_ASSERT_EQUAL(c.count, 1);
	/* ref 2 was a hit and is unused again: it can be evicted, and 4 was not entered */
	CU_ASSERT_EQUAL(pgrant_purge_idle(&c, 100, 10), 1);
	CU_ASSERT_EQUAL(c.count, 0);
	pgrant_cache_deinit(&c);
	CU_ASSERT_EQUAL(fk.pages_mapped, 0);
}

static void pgrant_long_request_maps_in_batches_within_the_bound(void)
{
	struct pgrant_cache c;
	static struct pgrant *pg[600];
	static uint32_t refs[600];

	setup(&c, 1056);
	for (unsigned int i = 0; i < 600; i++)
		refs[i] = 1000 + i;
	CU_ASSERT_EQUAL(pgrant_get_many(&c, 600, refs, pg, 1), 0);
	CU_ASSERT_EQUAL(fk.map_calls, 3); /* 256 + 256 + 88 */
	for (unsigned int i = 0; i < 600; i++)
		CU_ASSERT_EQUAL(ref_of(pg[i]), refs[i]);
	put_all(&c, pg, 600);
	/* a pool smaller than one request: a later batch would evict an earlier one's
	 * pages before they are handed out, so the request gets EBUSY (grant copy) */
	pgrant_cache_deinit(&c);
	setup(&c, 300);
	errno = 0;
	CU_ASSERT_EQUAL(pgrant_get_many(&c, 600, refs, pg, 1), -1);
	CU_ASSERT_EQUAL(errno, EBUSY);
	CU_ASSERT_TRUE(c.count <= c.max);
	pgrant_cache_deinit(&c);
	CU_ASSERT_EQUAL(fk.pages_mapped, 0);
}

static const struct unit_test tests[] = {
	{ "pgrant_misses_of_a_request_are_mapped_in_one_call",
	  pgrant_misses_of_a_request_are_mapped_in_one_call },
	{ "pgrant_a_ref_named_twice_is_mapped_once_and_used_twice",
	  pgrant_a_ref_named_twice_is_mapped_once_and_used_twice },
	{ "pgrant_chunk_is_unmapped_when_its_last_entry_goes",
	  pgrant_chunk_is_unmapped_when_its_last_entry_goes },
	{ "pgrant_full_pool_of_busy_entries_is_ebusy_and_takes_nothing",
	  pgrant_full_pool_of_busy_entries_is_ebusy_and_takes_nothing },
	{ "pgrant_bad_grant_fails_the_whole_batch", pgrant_bad_grant_fails_the_whole_batch },
	{ "pgrant_long_request_maps_in_batches_within_the_bound",
	  pgrant_long_request_maps_in_batches_within_the_bound },
	{ NULL, NULL },
};

UNIT_SUITE(blk_pgrant, tests)
