/*
 * parse — the pure blkif request parser: a private copy of one guest request plus the
 * device's limits in, a validated struct blk_req (or the status to answer with) out.
 * No I/O, no allocation, no global state; called by the data path, unit tests and fuzzers.
 * Counterpart of Linux blkback's dispatch_rw_block_io / xen_blkbk_parse_indirect /
 * dispatch_discard_io / xen_vbd_translate checks.
 */
#ifndef SPLITPV_BLK_PARSE_H
#define SPLITPV_BLK_PARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "ring/abi.h"

/* The device's view, fixed at connect. Filled by the control path; never guest data. */
struct blk_limits {
	uint64_t sectors;               /* capacity in 512-byte sectors */
	uint32_t sector_size;           /* logical: 512 or 4096 (any power of two 512..4096) */
	bool readonly;                  /* mode=r or read-only media */
	bool discard;                   /* feature-discard advertised */
	bool discard_secure;            /* discard-secure advertised */
	bool flush, barrier;            /* feature-flush-cache / feature-barrier advertised */
	uint32_t max_indirect_segments; /* advertised; 0 = indirect not offered */
};

/* One data segment: bytes within the guest's 4 KiB frame (offset + len <= 4096). */
struct blk_seg {
	uint32_t gref;
	uint16_t offset;
	uint16_t len;
};

/* A validated request. Every field is initialised by blk_parse_request (XSA-216 habit). */
struct blk_req {
	uint64_t id;                /* echoed in the response */
	uint8_t op;                 /* BLKIF_OP_READ/WRITE/FLUSH_DISKCACHE/WRITE_BARRIER/DISCARD */
	uint8_t rsp_op;             /* operation to echo in the response (see below) */
	bool secure;                /* discard: BLKIF_DISCARD_SECURE (only if discard_secure) */
	uint64_t sector;            /* 512-byte units; 0 when nr_sectors == 0 and not a discard */
	uint64_t nr_sectors;        /* 512-byte units (rw: sum of segments; discard: request) */
	uint16_t nr_segments;       /* entries of seg[] filled */
	uint8_t nr_indirect_pages;  /* indirect: pages to fetch for stage 2; else 0 */
	uint32_t indirect_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST]; /* [nr_indirect_pages..] = 0 */
	struct blk_seg *seg;        /* caller-provided, see blk_parse_request */
};

/* Segments carried by one indirect page, and the most one request may carry. */
#define BLK_SEGS_PER_INDIRECT_PAGE ((uint32_t)ABI_SEGS_PER_INDIRECT_PAGE)
#define BLK_MAX_INDIRECT_SEGMENTS ((uint32_t)ABI_MAX_INDIRECT_SEGMENTS)

/*
 * Stage 1: the request header (and, for direct requests, the segments).
 *
 * copy: a private copy already translated to the native layout (never the shared ring).
 * out->seg must point to an array of at least BLKIF_MAX_SEGMENTS_PER_REQUEST entries, and
 * at least lim->max_indirect_segments entries if indirect requests are offered; every
 * other field of *out is overwritten.
 *
 * Returns:
 *   0  valid; *out describes the whole request.
 *   1  valid header of an indirect request: copy nr_indirect_pages pages
 *      (out->indirect_grefs) into a private buffer and call blk_parse_indirect.
 *   BLKIF_RSP_ERROR (-1) or BLKIF_RSP_EOPNOTSUPP (-2): answer with that status,
 *      echoing out->id and out->rsp_op; the other fields are zero.
 *
 * rsp_op is the operation the response must carry: the request's operation byte, except
 * for indirect requests where it is indirect_op (Linux blkback answers that way and
 * Linux blkfront, since 2021, rejects a response whose operation differs from it).
 *
 * Rules (Linux blkback's, unless noted):
 *  - READ/WRITE need 1..11 segments; FLUSH_DISKCACHE and WRITE_BARRIER take 0..11 (with
 *    segments they are a write followed by a flush: blkfront sends FUA writes that way).
 *    The data path must write the segments, then flush.
 *  - FLUSH_DISKCACHE / WRITE_BARRIER / DISCARD / INDIRECT not advertised -> EOPNOTSUPP
 *    (stricter than blkback, which lets the block layer fail them); unknown op -> EOPNOTSUPP.
 *  - INDIRECT: indirect_op READ or WRITE only, 1 <= nr_segments <= max_indirect_segments,
 *    ceil(nr_segments / 512) <= 8 pages.
 *  - each segment first_sect <= last_sect <= 7.
 *  - sector_size > 512: start sector and every segment length (and a discard's range)
 *    multiples of the logical sector ("Misaligned I/O" in blkback).
 *  - sector + nr_sectors neither wraps nor passes lim->sectors (a 0-length discard still
 *    needs sector <= sectors; a 0-segment flush ignores sector_number).
 *  - anything but READ on a read-only device -> ERROR (blkback refuses flushes too).
 *  - BLKIF_DISCARD_SECURE without discard_secure -> EOPNOTSUPP (blkback silently
 *    downgrades to a plain discard; we refuse to pretend an erase was secure).
 */
int blk_parse_request(const struct blkif_request *copy, const struct blk_limits *lim,
		      struct blk_req *out);

/*
 * Stage 2 of an indirect request: segs is a private copy of the first out->nr_segments
 * entries of the indirect pages (page i holds entries [i*512, i*512+511]). Fills
 * out->seg[0..nr_segments-1], out->nr_sectors, and checks the segment, alignment and range
 * rules above. Returns 0 or BLKIF_RSP_ERROR; on error out->id/out->rsp_op stay valid.
 * Call only after blk_parse_request returned 1 for this out.
 */
int blk_parse_indirect(const struct blkif_request_segment *segs, const struct blk_limits *lim,
		       struct blk_req *out);

#endif
