/* Unit tests for the block backend's latency percentiles (backends/blk/datapath.c). */
#include "backends/blk/blkback.h"
#include "tests/unit/unit.h"

#include <string.h>

static void blk_latency_percentiles_are_bucket_upper_bounds(void)
{
	struct blk_stats s;

	memset(&s, 0, sizeof(s));
	CU_ASSERT_EQUAL(blk_stats_latency_us(&s, 50), 0); /* nothing counted */
	s.lat_hist[3] = 90;  /* [8, 16) us */
	s.lat_hist[10] = 9;  /* [1024, 2048) us */
	s.lat_hist[20] = 1;  /* about a second */
	CU_ASSERT_EQUAL(blk_stats_latency_us(&s, 50), 16);
	CU_ASSERT_EQUAL(blk_stats_latency_us(&s, 90), 16);
	CU_ASSERT_EQUAL(blk_stats_latency_us(&s, 95), 2048);
	CU_ASSERT_EQUAL(blk_stats_latency_us(&s, 99), 2048);
	CU_ASSERT_EQUAL(blk_stats_latency_us(&s, 99.9), 2u << 20);
}

static const struct unit_test tests[] = {
	{ "blk_latency_percentiles_are_bucket_upper_bounds",
	  blk_latency_percentiles_are_bucket_upper_bounds },
	{ NULL, NULL },
};
UNIT_SUITE(blk_latency, tests)
