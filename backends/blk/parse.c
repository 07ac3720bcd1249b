/*
 * parse — validation of guest blkif requests (see parse.h for the rules and their
 * origin). Everything here reads only the caller's private copy; the data path
 * (its counterpart) acts only on what these functions accept.
 */
#include "backends/blk/parse.h"

#include <assert.h>
#include <string.h>

#define SECTOR_SHIFT 9
#define SECTORS_PER_PAGE (ABI_PAGE_SIZE >> SECTOR_SHIFT) /* 8 */

static void reset_out(struct blk_req *out, uint64_t id, uint8_t rsp_op)
{
	struct blk_seg *seg = out->seg;

	memset(out, 0, sizeof(*out));
	out->seg = seg;
	out->id = id;
	out->rsp_op = rsp_op;
}

/* Error exit: keep only what the response needs (id, rsp_op); zero the rest. */
static int fail(struct blk_req *out, int status)
{
	reset_out(out, out->id, out->rsp_op);
	return status;
}

static uint32_t align_mask(const struct blk_limits *lim)
{
	uint32_t ss = lim->sector_size;

	/* Limits come from our control path: a bad value is our bug, not the guest's. */
	assert(ss >= 512 && ss <= ABI_PAGE_SIZE && (ss & (ss - 1)) == 0);
	return (ss >> SECTOR_SHIFT) - 1;
}

/* One segment from the guest; 0 or BLKIF_RSP_ERROR. */
static int parse_seg(const struct blkif_request_segment *in, uint32_t mask, struct blk_seg *seg,
		     uint64_t *nr_sectors)
{
	uint8_t first = in->first_sect, last = in->last_sect; /* read once */
	uint32_t nsec;

	if (last >= SECTORS_PER_PAGE || first > last)
		return BLKIF_RSP_ERROR;
	nsec = (uint32_t)last - first + 1;
	if (nsec & mask)
		return BLKIF_RSP_ERROR;
	seg->gref = in->gref;
	seg->offset = (uint16_t)(first << SECTOR_SHIFT);
	seg->len = (uint16_t)(nsec << SECTOR_SHIFT);
	*nr_sectors += nsec; /* <= 4096 segments * 8: no overflow */
	return 0;
}

/* [sector, sector + nr) inside the disk, without wrapping. */
static bool range_ok(uint64_t sector, uint64_t nr, uint64_t capacity)
{
	return sector <= capacity && nr <= capacity - sector;
}

static int parse_discard(const struct blkif_request *copy, const struct blk_limits *lim,
			 struct blk_req *out)
{
	struct blkif_request_discard d;
	uint32_t mask = align_mask(lim);

	memcpy(&d, copy, sizeof(d));
	if (!lim->discard)
		return fail(out, BLKIF_RSP_EOPNOTSUPP);
	if ((d.flag & BLKIF_DISCARD_SECURE) && !lim->discard_secure)
		return fail(out, BLKIF_RSP_EOPNOTSUPP);
	if (lim->readonly)
		return fail(out, BLKIF_RSP_ERROR);
	if ((d.sector_number & mask) || (d.nr_sectors & mask))
		return fail(out, BLKIF_RSP_ERROR);
	if (!range_ok(d.sector_number, d.nr_sectors, lim->sectors))
		return fail(out, BLKIF_RSP_ERROR);
	out->op = BLKIF_OP_DISCARD;
	out->secure = (d.flag & BLKIF_DISCARD_SECURE) != 0;
	out->sector = d.sector_number;
	out->nr_sectors = d.nr_sectors;
	return 0;
}

static int parse_indirect_header(const struct blkif_request *copy, const struct blk_limits *lim,
				 struct blk_req *out)
{
	struct blkif_request_indirect ind;
	uint32_t pages, i, mask = align_mask(lim);

	memcpy(&ind, copy, sizeof(ind));
	out->rsp_op = ind.indirect_op; /* what blkfront expects back, see parse.h */
	if (lim->max_indirect_segments == 0)
		return fail(out, BLKIF_RSP_EOPNOTSUPP);
	if (ind.indirect_op != BLKIF_OP_READ && ind.indirect_op != BLKIF_OP_WRITE)
		return fail(out, BLKIF_RSP_ERROR);
	if (ind.nr_segments == 0 || ind.nr_segments > lim->max_indirect_segments)
		return fail(out, BLKIF_RSP_ERROR);
	pages = (ind.nr_segments + BLK_SEGS_PER_INDIRECT_PAGE - 1) / BLK_SEGS_PER_INDIRECT_PAGE;
	if (pages > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST)
		return fail(out, BLKIF_RSP_ERROR);
	if (ind.indirect_op == BLKIF_OP_WRITE && lim->readonly)
		return fail(out, BLKIF_RSP_ERROR);
	/* Every segment carries >= 1 sector: refuse early what stage 2 would refuse anyway. */
	if ((ind.sector_number & mask) || ind.sector_number >= lim->sectors)
		return fail(out, BLKIF_RSP_ERROR);

	out->op = ind.indirect_op;
	out->sector = ind.sector_number;
	out->nr_segments = ind.nr_segments;
	out->nr_indirect_pages = (uint8_t)pages;
	for (i = 0; i < pages; i++)
		out->indirect_grefs[i] = ind.indirect_grefs[i];
	return 1;
}

int blk_parse_request(const struct blkif_request *copy, const struct blk_limits *lim,
		      struct blk_req *out)
{
	uint8_t op = copy->operation;
	uint32_t i, nseg, mask;
	uint64_t nr = 0;

	assert(out->seg);
	reset_out(out, copy->id, op);
	mask = align_mask(lim);

	switch (op) {
	case BLKIF_OP_READ:
	case BLKIF_OP_WRITE:
		break;
	case BLKIF_OP_FLUSH_DISKCACHE:
		if (!lim->flush)
			return fail(out, BLKIF_RSP_EOPNOTSUPP);
		break;
	case BLKIF_OP_WRITE_BARRIER:
		if (!lim->barrier)
			return fail(out, BLKIF_RSP_EOPNOTSUPP);
		break;
	case BLKIF_OP_DISCARD:
		return parse_discard(copy, lim, out);
	case BLKIF_OP_INDIRECT:
		return parse_indirect_header(copy, lim, out);
	default:
		return fail(out, BLKIF_RSP_EOPNOTSUPP);
	}

	nseg = copy->nr_segments;
	if (nseg > BLKIF_MAX_SEGMENTS_PER_REQUEST)
		return fail(out, BLKIF_RSP_ERROR);
	if (nseg == 0 && (op == BLKIF_OP_READ || op == BLKIF_OP_WRITE))
		return fail(out, BLKIF_RSP_ERROR);
	if (op != BLKIF_OP_READ && lim->readonly)
		return fail(out, BLKIF_RSP_ERROR);

	for (i = 0; i < nseg; i++)
		if (parse_seg(&copy->seg[i], mask, &out->seg[i], &nr))
			return fail(out, BLKIF_RSP_ERROR);
	if (nseg > 0) {
		if ((copy->sector_number & mask) || !range_ok(copy->sector_number, nr, lim->sectors))
			return fail(out, BLKIF_RSP_ERROR);
		out->sector = copy->sector_number;
	}
	out->op = op;
	out->nr_segments = (uint16_t)nseg;
	out->nr_sectors = nr;
	return 0;
}

int blk_parse_indirect(const struct blkif_request_segment *segs, const struct blk_limits *lim,
		       struct blk_req *out)
{
	uint32_t i, mask = align_mask(lim);
	uint64_t nr = 0;

	assert(out->nr_indirect_pages > 0 && out->nr_segments > 0);
	for (i = 0; i < out->nr_segments; i++) {
		struct blkif_request_segment s;

		memcpy(&s, &segs[i], sizeof(s));
		if (parse_seg(&s, mask, &out->seg[i], &nr))
			return fail(out, BLKIF_RSP_ERROR);
	}
	if (!range_ok(out->sector, nr, lim->sectors))
		return fail(out, BLKIF_RSP_ERROR);
	out->nr_sectors = nr;
	return 0;
}
