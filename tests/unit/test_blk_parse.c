/* Unit tests for the pure blkif request parser in backends/blk/parse.c. */
#include "tests/unit/unit.h"
#include "backends/blk/parse.h"

#include <string.h>

static struct blk_seg segbuf[8192];
static struct blk_req out;

static struct blk_limits lim_default(void)
{
	struct blk_limits l = {
		.sectors = 1u << 20, /* 512 MiB */
		.sector_size = 512,
		.readonly = false,
		.discard = true,
		.discard_secure = false,
		.flush = true,
		.barrier = true,
		.max_indirect_segments = 256,
	};
	return l;
}

static void seg_set(struct blkif_request_segment *s, uint32_t gref, uint8_t first, uint8_t last)
{
	s->gref = gref;
	s->first_sect = first;
	s->last_sect = last;
}

static struct blkif_request rw_req(uint8_t op, uint8_t nseg, uint64_t sector)
{
	struct blkif_request r;

	memset(&r, 0, sizeof(r));
	r.operation = op;
	r.nr_segments = nseg;
	r.handle = 51712;
	r.id = 0x1122334455667788ull;
	r.sector_number = sector;
	for (unsigned i = 0; i < nseg; i++)
		seg_set(&r.seg[i], 100 + i, 0, 7);
	return r;
}

static struct blkif_request discard_req(uint64_t sector, uint64_t nr, uint8_t flag)
{
	struct blkif_request r;
	struct blkif_request_discard d;

	memset(&d, 0, sizeof(d));
	d.operation = BLKIF_OP_DISCARD;
	d.flag = flag;
	d.id = 77;
	d.sector_number = sector;
	d.nr_sectors = nr;
	memset(&r, 0xa5, sizeof(r)); /* tail beyond the discard layout is garbage */
	memcpy(&r, &d, sizeof(d));
	return r;
}

static struct blkif_request indirect_req(uint8_t iop, uint16_t nseg, uint64_t sector)
{
	struct blkif_request r;
	struct blkif_request_indirect ind;

	memset(&ind, 0, sizeof(ind));
	ind.operation = BLKIF_OP_INDIRECT;
	ind.indirect_op = iop;
	ind.nr_segments = nseg;
	ind.id = 99;
	ind.sector_number = sector;
	for (unsigned i = 0; i < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++)
		ind.indirect_grefs[i] = 1000 + i;
	memset(&r, 0x5a, sizeof(r));
	memcpy(&r, &ind, sizeof(ind));
	return r;
}

static int parse(const struct blkif_request *r, const struct blk_limits *l)
{
	memset(&out, 0xee, sizeof(out)); /* poison: the parser must set every field */
	out.seg = segbuf;
	return blk_parse_request(r, l, &out);
}

static void expect_zeroed_error(uint64_t id, uint8_t rsp_op)
{
	CU_ASSERT_EQUAL(out.id, id);
	CU_ASSERT_EQUAL(out.rsp_op, rsp_op);
	CU_ASSERT_EQUAL(out.op, 0);
	CU_ASSERT_EQUAL(out.sector, 0);
	CU_ASSERT_EQUAL(out.nr_sectors, 0);
	CU_ASSERT_EQUAL(out.nr_segments, 0);
	CU_ASSERT_EQUAL(out.nr_indirect_pages, 0);
	CU_ASSERT_EQUAL(out.secure, false);
	CU_ASSERT_PTR_EQUAL(out.seg, segbuf);
}

/* ---- accepted requests, exact fields ---- */

static void blk_parse_accepts_read_with_exact_fields(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_READ, 3, 1000);

	seg_set(&r.seg[0], 7, 1, 7);  /* 7 sectors at byte 512 */
	seg_set(&r.seg[1], 8, 0, 7);  /* 8 */
	seg_set(&r.seg[2], 9, 3, 3);  /* 1 at byte 1536 */
	CU_ASSERT_EQUAL(parse(&r, &l), 0);
	CU_ASSERT_EQUAL(out.id, 0x1122334455667788ull);
	CU_ASSERT_EQUAL(out.op, BLKIF_OP_READ);
	CU_ASSERT_EQUAL(out.rsp_op, BLKIF_OP_READ);
	CU_ASSERT_EQUAL(out.secure, false);
	CU_ASSERT_EQUAL(out.sector, 1000);
	CU_ASSERT_EQUAL(out.nr_sectors, 16);
	CU_ASSERT_EQUAL(out.nr_segments, 3);
	CU_ASSERT_EQUAL(out.nr_indirect_pages, 0);
	for (unsigned i = 0; i < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++)
		CU_ASSERT_EQUAL(out.indirect_grefs[i], 0);
	CU_ASSERT_EQUAL(out.seg[0].gref, 7);
	CU_ASSERT_EQUAL(out.seg[0].offset, 512);
	CU_ASSERT_EQUAL(out.seg[0].len, 3584);
	CU_ASSERT_EQUAL(out.seg[1].offset, 0);
	CU_ASSERT_EQUAL(out.seg[1].len, 4096);
	CU_ASSERT_EQUAL(out.seg[2].gref, 9);
	CU_ASSERT_EQUAL(out.seg[2].offset, 1536);
	CU_ASSERT_EQUAL(out.seg[2].len, 512);
}

static void blk_parse_accepts_write_of_11_segments_ending_at_capacity(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_WRITE, 11, l.sectors - 88);

	CU_ASSERT_EQUAL(parse(&r, &l), 0);
	CU_ASSERT_EQUAL(out.op, BLKIF_OP_WRITE);
	CU_ASSERT_EQUAL(out.nr_sectors, 88);
	CU_ASSERT_EQUAL(out.nr_segments, 11);
	CU_ASSERT_EQUAL(out.seg[10].gref, 110);
}

static void blk_parse_accepts_flush_without_segments(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_FLUSH_DISKCACHE, 0, 0xffffffffffffull);

	/* blkback allows 0 segments for flush/barrier only; sector_number is ignored. */
	CU_ASSERT_EQUAL(parse(&r, &l), 0);
	CU_ASSERT_EQUAL(out.op, BLKIF_OP_FLUSH_DISKCACHE);
	CU_ASSERT_EQUAL(out.rsp_op, BLKIF_OP_FLUSH_DISKCACHE);
	CU_ASSERT_EQUAL(out.nr_segments, 0);
	CU_ASSERT_EQUAL(out.nr_sectors, 0);
	CU_ASSERT_EQUAL(out.sector, 0);
	r = rw_req(BLKIF_OP_WRITE_BARRIER, 0, 0);
	CU_ASSERT_EQUAL(parse(&r, &l), 0);
	CU_ASSERT_EQUAL(out.op, BLKIF_OP_WRITE_BARRIER);
}

static void blk_parse_accepts_flush_carrying_data(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_FLUSH_DISKCACHE, 2, 64);

	CU_ASSERT_EQUAL(parse(&r, &l), 0);
	CU_ASSERT_EQUAL(out.op, BLKIF_OP_FLUSH_DISKCACHE);
	CU_ASSERT_EQUAL(out.nr_segments, 2);
	CU_ASSERT_EQUAL(out.nr_sectors, 16);
	CU_ASSERT_EQUAL(out.sector, 64);
}

static void blk_parse_accepts_discard_with_exact_fields(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = discard_req(4096, 2048, 0);

	CU_ASSERT_EQUAL(parse(&r, &l), 0);
	CU_ASSERT_EQUAL(out.id, 77);
	CU_ASSERT_EQUAL(out.op, BLKIF_OP_DISCARD);
	CU_ASSERT_EQUAL(out.rsp_op, BLKIF_OP_DISCARD);
	CU_ASSERT_EQUAL(out.sector, 4096);
	CU_ASSERT_EQUAL(out.nr_sectors, 2048);
	CU_ASSERT_EQUAL(out.nr_segments, 0);
	CU_ASSERT_EQUAL(out.secure, false);
}

static void blk_parse_accepts_secure_discard_when_advertised(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = discard_req(0, l.sectors, BLKIF_DISCARD_SECURE);

	l.discard_secure = true;
	CU_ASSERT_EQUAL(parse(&r, &l), 0);
	CU_ASSERT_EQUAL(out.secure, true);
	CU_ASSERT_EQUAL(out.nr_sectors, l.sectors);
}

static void blk_parse_accepts_indirect_in_two_stages(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = indirect_req(BLKIF_OP_WRITE, 513, 8);
	static struct blkif_request_segment segs[513];

	CU_ASSERT_EQUAL(parse(&r, &l), -1); /* 513 > 256 advertised */
	l.max_indirect_segments = 1024;
	CU_ASSERT_EQUAL(parse(&r, &l), 1);
	CU_ASSERT_EQUAL(out.id, 99);
	CU_ASSERT_EQUAL(out.op, BLKIF_OP_WRITE);
	CU_ASSERT_EQUAL(out.rsp_op, BLKIF_OP_WRITE);
	CU_ASSERT_EQUAL(out.nr_segments, 513);
	CU_ASSERT_EQUAL(out.nr_indirect_pages, 2);
	CU_ASSERT_EQUAL(out.indirect_grefs[0], 1000);
	CU_ASSERT_EQUAL(out.indirect_grefs[1], 1001);
	CU_ASSERT_EQUAL(out.indirect_grefs[2], 0); /* beyond nr_indirect_pages: cleared */
	CU_ASSERT_EQUAL(out.sector, 8);

	for (unsigned i = 0; i < 513; i++)
		seg_set(&segs[i], 5000 + i, 0, 7);
	seg_set(&segs[512], 9999, 2, 5);
	CU_ASSERT_EQUAL(blk_parse_indirect(segs, &l, &out), 0);
	CU_ASSERT_EQUAL(out.nr_sectors, 512 * 8 + 4);
	CU_ASSERT_EQUAL(out.seg[0].gref, 5000);
	CU_ASSERT_EQUAL(out.seg[511].len, 4096);
	CU_ASSERT_EQUAL(out.seg[512].gref, 9999);
	CU_ASSERT_EQUAL(out.seg[512].offset, 1024);
	CU_ASSERT_EQUAL(out.seg[512].len, 2048);
}

static void blk_parse_accepts_aligned_io_on_4k_sectors(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_READ, 2, 16);

	l.sector_size = 4096;
	CU_ASSERT_EQUAL(parse(&r, &l), 0);
	CU_ASSERT_EQUAL(out.nr_sectors, 16); /* still in 512-byte units */
	r = discard_req(8, 64, 0);
	CU_ASSERT_EQUAL(parse(&r, &l), 0);
}

/* ---- operation checks ---- */

static void blk_parse_rejects_unknown_op_eopnotsupp(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(0xc3, 1, 0);

	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_EOPNOTSUPP);
	expect_zeroed_error(r.id, 0xc3);
	r.operation = BLKIF_OP_RESERVED_1;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_EOPNOTSUPP);
	CU_ASSERT_EQUAL(out.rsp_op, BLKIF_OP_RESERVED_1);
}

static void blk_parse_rejects_flush_not_advertised_eopnotsupp(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_FLUSH_DISKCACHE, 0, 0);

	l.flush = false;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_EOPNOTSUPP);
	expect_zeroed_error(r.id, BLKIF_OP_FLUSH_DISKCACHE);
	r.operation = BLKIF_OP_WRITE_BARRIER; /* barrier still advertised */
	CU_ASSERT_EQUAL(parse(&r, &l), 0);
}

static void blk_parse_rejects_barrier_not_advertised_eopnotsupp(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_WRITE_BARRIER, 0, 0);

	l.barrier = false;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_EOPNOTSUPP);
	expect_zeroed_error(r.id, BLKIF_OP_WRITE_BARRIER);
}

static void blk_parse_rejects_discard_not_advertised_eopnotsupp(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = discard_req(0, 8, 0);

	l.discard = false;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_EOPNOTSUPP);
	expect_zeroed_error(77, BLKIF_OP_DISCARD);
}

static void blk_parse_rejects_secure_discard_not_advertised_eopnotsupp(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = discard_req(0, 8, BLKIF_DISCARD_SECURE);

	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_EOPNOTSUPP);
	expect_zeroed_error(77, BLKIF_OP_DISCARD);
}

static void blk_parse_rejects_indirect_not_offered_eopnotsupp(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = indirect_req(BLKIF_OP_READ, 16, 0);

	l.max_indirect_segments = 0;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_EOPNOTSUPP);
	expect_zeroed_error(99, BLKIF_OP_READ);
}

static void blk_parse_rejects_indirect_op_other_than_read_write(void)
{
	struct blk_limits l = lim_default();
	uint8_t bad[] = { BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_WRITE_BARRIER, BLKIF_OP_DISCARD,
			  BLKIF_OP_INDIRECT, 200 };

	for (unsigned i = 0; i < sizeof(bad); i++) {
		struct blkif_request r = indirect_req(bad[i], 16, 0);

		CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
		expect_zeroed_error(99, bad[i]);
	}
}

/* ---- segment counts ---- */

static void blk_parse_rejects_zero_segment_read_and_write(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_READ, 0, 0);

	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	expect_zeroed_error(r.id, BLKIF_OP_READ);
	r.operation = BLKIF_OP_WRITE;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
}

static void blk_parse_rejects_more_than_11_direct_segments(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_READ, 11, 0);

	r.nr_segments = 12;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	r.nr_segments = 255;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	r.operation = BLKIF_OP_FLUSH_DISKCACHE;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	expect_zeroed_error(r.id, BLKIF_OP_FLUSH_DISKCACHE);
}

static void blk_parse_rejects_indirect_zero_segments(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = indirect_req(BLKIF_OP_READ, 0, 0);

	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	expect_zeroed_error(99, BLKIF_OP_READ);
}

static void blk_parse_rejects_indirect_over_advertised_segments(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = indirect_req(BLKIF_OP_READ, 257, 0);

	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	r = indirect_req(BLKIF_OP_READ, 256, 0);
	CU_ASSERT_EQUAL(parse(&r, &l), 1);
	CU_ASSERT_EQUAL(out.nr_indirect_pages, 1);
}

static void blk_parse_rejects_indirect_over_8_pages(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = indirect_req(BLKIF_OP_READ, 4097, 0);

	l.max_indirect_segments = 65535; /* a careless advertised value must not widen it */
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	expect_zeroed_error(99, BLKIF_OP_READ);
	r = indirect_req(BLKIF_OP_READ, 4096, 0);
	CU_ASSERT_EQUAL(parse(&r, &l), 1);
	CU_ASSERT_EQUAL(out.nr_indirect_pages, 8);
	CU_ASSERT_EQUAL(out.indirect_grefs[7], 1007);
}

/* ---- segment bounds ---- */

static void blk_parse_rejects_last_sect_beyond_page(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_READ, 2, 0);

	seg_set(&r.seg[1], 1, 0, 8);
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	expect_zeroed_error(r.id, BLKIF_OP_READ);
	seg_set(&r.seg[1], 1, 7, 255);
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
}

static void blk_parse_rejects_first_sect_after_last_sect(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_WRITE, 1, 0);

	seg_set(&r.seg[0], 1, 5, 4);
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	seg_set(&r.seg[0], 1, 255, 0);
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
}

static void blk_parse_rejects_bad_segment_in_indirect_page(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = indirect_req(BLKIF_OP_READ, 20, 0);
	struct blkif_request_segment segs[20];

	for (unsigned i = 0; i < 20; i++)
		seg_set(&segs[i], i, 0, 7);
	seg_set(&segs[19], 1, 0, 8);
	CU_ASSERT_EQUAL(parse(&r, &l), 1);
	CU_ASSERT_EQUAL(blk_parse_indirect(segs, &l, &out), BLKIF_RSP_ERROR);
	expect_zeroed_error(99, BLKIF_OP_READ);

	seg_set(&segs[19], 1, 6, 5);
	CU_ASSERT_EQUAL(parse(&r, &l), 1);
	CU_ASSERT_EQUAL(blk_parse_indirect(segs, &l, &out), BLKIF_RSP_ERROR);
}

/* ---- sector range ---- */

static void blk_parse_rejects_sector_wraps(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_READ, 2, UINT64_MAX - 7);

	l.sectors = UINT64_MAX; /* even an "infinite" disk must not accept a wrapping range */
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	expect_zeroed_error(r.id, BLKIF_OP_READ);
	r = discard_req(UINT64_MAX - 7, 16, 0);
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	r = discard_req(16, UINT64_MAX - 7, 0);
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
}

static void blk_parse_rejects_past_end(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_READ, 1, l.sectors - 7);

	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	r.sector_number = l.sectors - 8;
	CU_ASSERT_EQUAL(parse(&r, &l), 0);
	r.sector_number = l.sectors;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
}

static void blk_parse_rejects_discard_past_end(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = discard_req(l.sectors - 8, 9, 0);

	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	expect_zeroed_error(77, BLKIF_OP_DISCARD);
	r = discard_req(l.sectors + 1, 0, 0);
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	r = discard_req(l.sectors, 0, 0); /* empty range at the end: harmless */
	CU_ASSERT_EQUAL(parse(&r, &l), 0);
}

static void blk_parse_rejects_indirect_past_end(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = indirect_req(BLKIF_OP_READ, 16, l.sectors - 120);
	struct blkif_request_segment segs[16];

	for (unsigned i = 0; i < 16; i++)
		seg_set(&segs[i], i, 0, 7);
	CU_ASSERT_EQUAL(parse(&r, &l), 1);
	CU_ASSERT_EQUAL(blk_parse_indirect(segs, &l, &out), BLKIF_RSP_ERROR);
	expect_zeroed_error(99, BLKIF_OP_READ);
	r = indirect_req(BLKIF_OP_READ, 16, l.sectors); /* refused at stage 1 */
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	r = indirect_req(BLKIF_OP_READ, 16, l.sectors - 128);
	CU_ASSERT_EQUAL(parse(&r, &l), 1);
	CU_ASSERT_EQUAL(blk_parse_indirect(segs, &l, &out), 0);
	CU_ASSERT_EQUAL(out.nr_sectors, 128);
}

/* ---- read-only ---- */

static void blk_parse_rejects_write_on_readonly(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_WRITE, 1, 0);

	l.readonly = true;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	expect_zeroed_error(r.id, BLKIF_OP_WRITE);
	r.operation = BLKIF_OP_READ;
	CU_ASSERT_EQUAL(parse(&r, &l), 0);
}

static void blk_parse_rejects_barrier_and_flush_on_readonly(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_WRITE_BARRIER, 0, 0);

	l.readonly = true;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	r.operation = BLKIF_OP_FLUSH_DISKCACHE;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
}

static void blk_parse_rejects_discard_on_readonly(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = discard_req(0, 8, 0);

	l.readonly = true;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	expect_zeroed_error(77, BLKIF_OP_DISCARD);
}

static void blk_parse_rejects_indirect_write_on_readonly(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = indirect_req(BLKIF_OP_WRITE, 16, 0);

	l.readonly = true;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	expect_zeroed_error(99, BLKIF_OP_WRITE);
	r = indirect_req(BLKIF_OP_READ, 16, 0);
	CU_ASSERT_EQUAL(parse(&r, &l), 1);
}

/* ---- logical sector alignment ---- */

static void blk_parse_rejects_misaligned_start_on_4k_sectors(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_READ, 1, 9);

	l.sector_size = 4096;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	expect_zeroed_error(r.id, BLKIF_OP_READ);
	l.sector_size = 512;
	CU_ASSERT_EQUAL(parse(&r, &l), 0);
}

static void blk_parse_rejects_partial_segment_on_4k_sectors(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = rw_req(BLKIF_OP_WRITE, 2, 8);

	seg_set(&r.seg[1], 1, 0, 3);
	l.sector_size = 4096;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	l.sector_size = 2048; /* 4 sectors is a whole 2 KiB logical sector */
	CU_ASSERT_EQUAL(parse(&r, &l), 0);
}

static void blk_parse_rejects_misaligned_discard_on_4k_sectors(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = discard_req(8, 12, 0);

	l.sector_size = 4096;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	r = discard_req(4, 8, 0);
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
}

static void blk_parse_rejects_misaligned_indirect_on_4k_sectors(void)
{
	struct blk_limits l = lim_default();
	struct blkif_request r = indirect_req(BLKIF_OP_READ, 2, 4);
	struct blkif_request_segment segs[2];

	l.sector_size = 4096;
	CU_ASSERT_EQUAL(parse(&r, &l), BLKIF_RSP_ERROR);
	r = indirect_req(BLKIF_OP_READ, 2, 8);
	seg_set(&segs[0], 1, 0, 7);
	seg_set(&segs[1], 2, 4, 7);
	CU_ASSERT_EQUAL(parse(&r, &l), 1);
	CU_ASSERT_EQUAL(blk_parse_indirect(segs, &l, &out), BLKIF_RSP_ERROR);
}

static const struct unit_test tests[] = {
	{ "blk_parse_accepts_read_with_exact_fields", blk_parse_accepts_read_with_exact_fields },
	{ "blk_parse_accepts_write_of_11_segments_ending_at_capacity",
	  blk_parse_accepts_write_of_11_segments_ending_at_capacity },
	{ "blk_parse_accepts_flush_without_segments", blk_parse_accepts_flush_without_segments },
	{ "blk_parse_accepts_flush_carrying_data", blk_parse_accepts_flush_carrying_data },
	{ "blk_parse_accepts_discard_with_exact_fields", blk_parse_accepts_discard_with_exact_fields },
	{ "blk_parse_accepts_secure_discard_when_advertised",
	  blk_parse_accepts_secure_discard_when_advertised },
	{ "blk_parse_accepts_indirect_in_two_stages", blk_parse_accepts_indirect_in_two_stages },
	{ "blk_parse_accepts_aligned_io_on_4k_sectors", blk_parse_accepts_aligned_io_on_4k_sectors },
	{ "blk_parse_rejects_unknown_op_eopnotsupp", blk_parse_rejects_unknown_op_eopnotsupp },
	{ "blk_parse_rejects_flush_not_advertised_eopnotsupp",
	  blk_parse_rejects_flush_not_advertised_eopnotsupp },
	{ "blk_parse_rejects_barrier_not_advertised_eopnotsupp",
	  blk_parse_rejects_barrier_not_advertised_eopnotsupp },
	{ "blk_parse_rejects_discard_not_advertised_eopnotsupp",
	  blk_parse_rejects_discard_not_advertised_eopnotsupp },
	{ "blk_parse_rejects_secure_discard_not_advertised_eopnotsupp",
	  blk_parse_rejects_secure_discard_not_advertised_eopnotsupp },
	{ "blk_parse_rejects_indirect_not_offered_eopnotsupp",
	  blk_parse_rejects_indirect_not_offered_eopnotsupp },
	{ "blk_parse_rejects_indirect_op_other_than_read_write",
	  blk_parse_rejects_indirect_op_other_than_read_write },
	{ "blk_parse_rejects_zero_segment_read_and_write",
	  blk_parse_rejects_zero_segment_read_and_write },
	{ "blk_parse_rejects_more_than_11_direct_segments",
	  blk_parse_rejects_more_than_11_direct_segments },
	{ "blk_parse_rejects_indirect_zero_segments", blk_parse_rejects_indirect_zero_segments },
	{ "blk_parse_rejects_indirect_over_advertised_segments",
	  blk_parse_rejects_indirect_over_advertised_segments },
	{ "blk_parse_rejects_indirect_over_8_pages", blk_parse_rejects_indirect_over_8_pages },
	{ "blk_parse_rejects_last_sect_beyond_page", blk_parse_rejects_last_sect_beyond_page },
	{ "blk_parse_rejects_first_sect_after_last_sect",
	  blk_parse_rejects_first_sect_after_last_sect },
	{ "blk_parse_rejects_bad_segment_in_indirect_page",
	  blk_parse_rejects_bad_segment_in_indirect_page },
	{ "blk_parse_rejects_sector_wraps", blk_parse_rejects_sector_wraps },
	{ "blk_parse_rejects_past_end", blk_parse_rejects_past_end },
	{ "blk_parse_rejects_discard_past_end", blk_parse_rejects_discard_past_end },
	{ "blk_parse_rejects_indirect_past_end", blk_parse_rejects_indirect_past_end },
	{ "blk_parse_rejects_write_on_readonly", blk_parse_rejects_write_on_readonly },
	{ "blk_parse_rejects_barrier_and_flush_on_readonly",
	  blk_parse_rejects_barrier_and_flush_on_readonly },
	{ "blk_parse_rejects_discard_on_readonly", blk_parse_rejects_discard_on_readonly },
	{ "blk_parse_rejects_indirect_write_on_readonly",
	  blk_parse_rejects_indirect_write_on_readonly },
	{ "blk_parse_rejects_misaligned_start_on_4k_sectors",
	  blk_parse_rejects_misaligned_start_on_4k_sectors },
	{ "blk_parse_rejects_partial_segment_on_4k_sectors",
	  blk_parse_rejects_partial_segment_on_4k_sectors },
	{ "blk_parse_rejects_misaligned_discard_on_4k_sectors",
	  blk_parse_rejects_misaligned_discard_on_4k_sectors },
	{ "blk_parse_rejects_misaligned_indirect_on_4k_sectors",
	  blk_parse_rejects_misaligned_indirect_on_4k_sectors },
	{ NULL, NULL },
};
UNIT_SUITE(blk_parse, tests)
