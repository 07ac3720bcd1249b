/*
 * Fuzz the blkif request parser (backends/blk/parse.c): bytes -> limits + request +
 * indirect segments -> blk_parse_request / blk_parse_indirect.
 * Layout: 16 bytes of limits, 112 bytes of request, then indirect segments (8 bytes each,
 * zero-padded). Invariants on acceptance: every segment within its page, the sector range
 * inside the disk without wrapping, the operation allowed by the limits.
 */
#include "backends/blk/parse.h"

#include <assert.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct blk_seg segbuf[BLK_MAX_INDIRECT_SEGMENTS + 16];
static struct blkif_request_segment isegs[BLK_MAX_INDIRECT_SEGMENTS];

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void check_accepted(const struct blk_req *r, const struct blk_limits *lim)
{
	uint64_t sum = 0, mask = lim->sector_size / 512 - 1;

	assert(r->op == BLKIF_OP_READ || r->op == BLKIF_OP_WRITE ||
	       r->op == BLKIF_OP_FLUSH_DISKCACHE || r->op == BLKIF_OP_WRITE_BARRIER ||
	       r->op == BLKIF_OP_DISCARD);
	if (r->op != BLKIF_OP_READ)
		assert(!lim->readonly);
	if (r->op == BLKIF_OP_DISCARD) {
		assert(lim->discard && r->nr_segments == 0);
		assert(!r->secure || lim->discard_secure);
	}
	if (r->op == BLKIF_OP_FLUSH_DISKCACHE)
		assert(lim->flush);
	if (r->op == BLKIF_OP_WRITE_BARRIER)
		assert(lim->barrier);
	if (r->op == BLKIF_OP_READ || r->op == BLKIF_OP_WRITE)
		assert(r->nr_segments >= 1);
	for (unsigned i = 0; i < r->nr_segments; i++) {
		const struct blk_seg *s = &r->seg[i];

		assert(s->len > 0 && s->len % 512 == 0 && s->offset % 512 == 0);
		assert((uint32_t)s->offset + s->len <= ABI_PAGE_SIZE);
		assert(((s->len / 512) & mask) == 0);
		sum += s->len / 512;
	}
	if (r->op != BLKIF_OP_DISCARD)
		assert(sum == r->nr_sectors);
	assert(r->sector <= lim->sectors);
	assert(r->nr_sectors <= lim->sectors - r->sector);
	if (r->nr_sectors)
		assert((r->sector & mask) == 0 && (r->nr_sectors & mask) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct blk_limits lim;
	struct blkif_request req;
	struct blk_req out;
	size_t nseg;
	int rc;

	if (size < 16 + sizeof(req))
		return 0;
	memset(&lim, 0, sizeof(lim));
	/* Small capacities make the range checks reachable; the top bit gives huge ones. */
	lim.sectors = (data[0] & 0x80) ? UINT64_MAX - data[1] : get64(data + 2) % (1u << 24);
	lim.sector_size = 512u << (data[0] & 3);
	if (lim.sector_size > 4096)
		lim.sector_size = 4096;
	lim.readonly = data[10] & 1;
	lim.discard = data[10] & 2;
	lim.discard_secure = data[10] & 4;
	lim.flush = data[10] & 8;
	lim.barrier = data[10] & 16;
	lim.max_indirect_segments = (uint32_t)data[11] << 5 | data[12]; /* up to 8191 */
	if (lim.max_indirect_segments > BLK_MAX_INDIRECT_SEGMENTS)
		lim.max_indirect_segments = BLK_MAX_INDIRECT_SEGMENTS + (data[13] & 1);
	data += 16;
	size -= 16;
	memcpy(&req, data, sizeof(req));
	data += sizeof(req);
	size -= sizeof(req);

	out.seg = segbuf;
	rc = blk_parse_request(&req, &lim, &out);
	assert(rc >= BLKIF_RSP_EOPNOTSUPP && rc <= 1);
	assert(out.seg == segbuf);
	if (rc < 0) {
		assert(out.nr_segments == 0 && out.nr_sectors == 0 && out.op == 0);
		return 0;
	}
	if (rc == 1) {
		assert(req.operation == BLKIF_OP_INDIRECT);
		assert(out.nr_segments >= 1 && out.nr_segments <= lim.max_indirect_segments);
		assert(out.nr_segments <= BLK_MAX_INDIRECT_SEGMENTS);
		assert(out.nr_indirect_pages ==
		       (out.nr_segments + BLK_SEGS_PER_INDIRECT_PAGE - 1) / BLK_SEGS_PER_INDIRECT_PAGE);
		assert(out.rsp_op == out.op);
		nseg = size / sizeof(isegs[0]);
		if (nseg > BLK_MAX_INDIRECT_SEGMENTS)
			nseg = BLK_MAX_INDIRECT_SEGMENTS;
		memset(isegs, 0, out.nr_segments * sizeof(isegs[0]));
		memcpy(isegs, data, (nseg < out.nr_segments ? nseg : out.nr_segments) * sizeof(isegs[0]));
		rc = blk_parse_indirect(isegs, &lim, &out);
		assert(rc == 0 || rc == BLKIF_RSP_ERROR);
		if (rc)
			return 0;
	} else {
		assert(out.rsp_op == req.operation);
		assert(out.nr_indirect_pages == 0);
	}
	check_accepted(&out, &lim);
	return 0;
}
