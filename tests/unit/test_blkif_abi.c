/*
 * Unit tests for ring/blkif_abi.c: protocol-key parsing and x86_32-abi translation,
 * checked field by field with a distinct byte pattern in every field.
 */
#include "ring/blkif_abi.h"
#include "ring/ring.h"
#include "tests/unit/unit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void blkif_abi_parse_accepts_known_protocols(void)
{
	enum blkif_abi abi = BLKIF_ABI_X86_32;

	CU_ASSERT_EQUAL(blkif_abi_parse(NULL, &abi), 0);
	CU_ASSERT_EQUAL(abi, BLKIF_ABI_NATIVE);
	CU_ASSERT_EQUAL(blkif_abi_parse("x86_32-abi", &abi), 0);
	CU_ASSERT_EQUAL(abi, BLKIF_ABI_X86_32);
	CU_ASSERT_EQUAL(blkif_abi_parse("x86_64-abi", &abi), 0);
	CU_ASSERT_EQUAL(abi, BLKIF_ABI_X86_64);
	abi = BLKIF_ABI_X86_32;
	CU_ASSERT_EQUAL(blkif_abi_parse("arm-abi", &abi), 0);
	CU_ASSERT_EQUAL(abi, BLKIF_ABI_X86_64);
}

static void blkif_abi_parse_rejects_unknown_protocol(void)
{
	static const char *const bad[] = { "", "x86_32", "X86_32-ABI", "x86_32-abi ",
					   "x86_64-abi\n", "ppc-abi", "x86_32-abix" };
	enum blkif_abi abi = BLKIF_ABI_X86_32;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CU_ASSERT_EQUAL(blkif_abi_parse(bad[i], &abi), -EINVAL);
		CU_ASSERT_EQUAL(abi, BLKIF_ABI_X86_32); /* untouched on error */
	}
}

static void blkif_abi_sizes_match_each_layout(void)
{
	CU_ASSERT_EQUAL(blkif_abi_ent_size(BLKIF_ABI_NATIVE), 112);
	CU_ASSERT_EQUAL(blkif_abi_ent_size(BLKIF_ABI_X86_64), 112);
	CU_ASSERT_EQUAL(blkif_abi_ent_size(BLKIF_ABI_X86_32), 108);
	CU_ASSERT_EQUAL(blkif_abi_req_size(BLKIF_ABI_NATIVE), 112);
	CU_ASSERT_EQUAL(blkif_abi_req_size(BLKIF_ABI_X86_32), 108);
	CU_ASSERT_EQUAL(blkif_abi_rsp_size(BLKIF_ABI_NATIVE), 16);
	CU_ASSERT_EQUAL(blkif_abi_rsp_size(BLKIF_ABI_X86_32), 12);
	/* Both ring variants give 32 slots per page. */
	CU_ASSERT_EQUAL(ring_nr_ents(4096, blkif_abi_ent_size(BLKIF_ABI_X86_32)), 32);
}

/* Little-endian helpers so the expected bytes are written independently of the structs. */
static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

#define ID 0x1122334455667788ull
#define SECTOR 0x99aabbccddeeff01ull

static void blkif_abi_x86_32_rw_translates_every_field(void)
{
	static const uint8_t ops[] = { BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_OP_WRITE_BARRIER,
				       BLKIF_OP_FLUSH_DISKCACHE };

	for (size_t o = 0; o < sizeof(ops); o++) {
		uint8_t in[108], want[112];
		struct blkif_request out;

		/* Guest bytes by offset (x86_32: id@4 sector@12 seg@20). */
		memset(in, 0, sizeof(in));
		in[0] = ops[o];
		in[1] = 11;
		put16(in + 2, 0xbeef);
		put64(in + 4, ID);
		put64(in + 12, SECTOR);
		/* Native: same fields at id@8 sector@16 seg@24, padding 4..7 zero. */
		memset(want, 0, sizeof(want));
		want[0] = ops[o];
		want[1] = 11;
		put16(want + 2, 0xbeef);
		put64(want + 8, ID);
		put64(want + 16, SECTOR);
		for (unsigned s = 0; s < 11; s++) {
			put32(in + 20 + 8 * s, 0xa0000000u + s * 0x01010101u);
			in[20 + 8 * s + 4] = (uint8_t)s;
			in[20 + 8 * s + 5] = (uint8_t)(7 - s % 8);
			in[20 + 8 * s + 6] = 0x5a; /* segment tail padding travels as is */
			in[20 + 8 * s + 7] = 0xa5;
			memcpy(want + 24 + 8 * s, in + 20 + 8 * s, 8);
		}
		memset(&out, 0xcc, sizeof(out));
		blkif_abi_req_to_native(BLKIF_ABI_X86_32, in, &out);
		CU_ASSERT_EQUAL(memcmp(&out, want, sizeof(want)), 0);
		CU_ASSERT_EQUAL(out.operation, ops[o]);
		CU_ASSERT_EQUAL(out.nr_segments, 11);
		CU_ASSERT_EQUAL(out.handle, 0xbeef);
		CU_ASSERT_EQUAL(out.id, ID);
		CU_ASSERT_EQUAL(out.sector_number, SECTOR);
		CU_ASSERT_EQUAL(out.seg[10].gref, 0xa0000000u + 10 * 0x01010101u);
		CU_ASSERT_EQUAL(out.seg[10].first_sect, 10);
		CU_ASSERT_EQUAL(out.seg[10].last_sect, 7 - 10 % 8);
	}
}

static void blkif_abi_x86_32_discard_translates_every_field(void)
{
	uint8_t in[108], want[112];
	struct blkif_request out;
	struct blkif_request_discard d;

	/* x86_32 discard: op@0 flag@1 handle@2 id@4 sector@12 nr_sectors@20. */
	memset(in, 0x77, sizeof(in)); /* bytes past the discard struct are ignored */
	in[0] = BLKIF_OP_DISCARD;
	in[1] = BLKIF_DISCARD_SECURE;
	put16(in + 2, 0x1234);
	put64(in + 4, ID);
	put64(in + 12, SECTOR);
	put64(in + 20, 0x0102030405060708ull);
	/* Native discard: op@0 flag@1 handle@2 id@8 sector@16 nr_sectors@24, rest zero. */
	memset(want, 0, sizeof(want));
	want[0] = BLKIF_OP_DISCARD;
	want[1] = BLKIF_DISCARD_SECURE;
	put16(want + 2, 0x1234);
	put64(want + 8, ID);
	put64(want + 16, SECTOR);
	put64(want + 24, 0x0102030405060708ull);
	memset(&out, 0xcc, sizeof(out));
	blkif_abi_req_to_native(BLKIF_ABI_X86_32, in, &out);
	CU_ASSERT_EQUAL(memcmp(&out, want, sizeof(want)), 0);
	memcpy(&d, &out, sizeof(d));
	CU_ASSERT_EQUAL(d.operation, BLKIF_OP_DISCARD);
	CU_ASSERT_EQUAL(d.flag, BLKIF_DISCARD_SECURE);
	CU_ASSERT_EQUAL(d.handle, 0x1234);
	CU_ASSERT_EQUAL(d.id, ID);
	CU_ASSERT_EQUAL(d.sector_number, SECTOR);
	CU_ASSERT_EQUAL(d.nr_sectors, 0x0102030405060708ull);
}

static void blkif_abi_x86_32_indirect_translates_every_field(void)
{
	uint8_t in[108], want[112];
	struct blkif_request out;
	struct blkif_request_indirect ind;

	/* x86_32 indirect: op@0 indirect_op@1 nr_segments@2 id@4 sector@12 handle@20 grefs@24. */
	memset(in, 0x66, sizeof(in));
	in[0] = BLKIF_OP_INDIRECT;
	in[1] = BLKIF_OP_WRITE;
	put16(in + 2, 0x0fed);
	put64(in + 4, ID);
	put64(in + 12, SECTOR);
	put16(in + 20, 0xcafe);
	/* Native indirect: ... id@8 sector@16 handle@24 grefs@28, rest zero. */
	memset(want, 0, sizeof(want));
	want[0] = BLKIF_OP_INDIRECT;
	want[1] = BLKIF_OP_WRITE;
	put16(want + 2, 0x0fed);
	put64(want + 8, ID);
	put64(want + 16, SECTOR);
	put16(want + 24, 0xcafe);
	for (unsigned i = 0; i < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++) {
		put32(in + 24 + 4 * i, 0xf0e0d000u + i);
		put32(want + 28 + 4 * i, 0xf0e0d000u + i);
	}
	memset(&out, 0xcc, sizeof(out));
	blkif_abi_req_to_native(BLKIF_ABI_X86_32, in, &out);
	CU_ASSERT_EQUAL(memcmp(&out, want, sizeof(want)), 0);
	memcpy(&ind, &out, sizeof(ind));
	CU_ASSERT_EQUAL(ind.operation, BLKIF_OP_INDIRECT);
	CU_ASSERT_EQUAL(ind.indirect_op, BLKIF_OP_WRITE);
	CU_ASSERT_EQUAL(ind.nr_segments, 0x0fed);
	CU_ASSERT_EQUAL(ind.id, ID);
	CU_ASSERT_EQUAL(ind.sector_number, SECTOR);
	CU_ASSERT_EQUAL(ind.handle, 0xcafe);
	CU_ASSERT_EQUAL(ind.indirect_grefs[0], 0xf0e0d000u);
	CU_ASSERT_EQUAL(ind.indirect_grefs[7], 0xf0e0d007u);
}

static void blkif_abi_x86_32_unknown_op_keeps_header_for_error_response(void)
{
	uint8_t in[108];
	struct blkif_request out;

	memset(in, 0x55, sizeof(in));
	in[0] = 0xee;
	in[1] = 0x42;
	put16(in + 2, 0x9876);
	put64(in + 4, ID);
	put64(in + 12, SECTOR);
	blkif_abi_req_to_native(BLKIF_ABI_X86_32, in, &out);
	CU_ASSERT_EQUAL(out.operation, 0xee);
	CU_ASSERT_EQUAL(out.nr_segments, 0x42);
	CU_ASSERT_EQUAL(out.handle, 0x9876);
	CU_ASSERT_EQUAL(out.id, ID);
	CU_ASSERT_EQUAL(out.sector_number, SECTOR);
	/* Nothing else of the guest's bytes leaks into the native request. */
	CU_ASSERT_EQUAL(out.seg[0].gref, 0);
	CU_ASSERT_EQUAL(out.seg[10].last_sect, 0);
}

static void blkif_abi_native_request_passes_through_verbatim(void)
{
	uint8_t in[112];
	struct blkif_request out;

	for (unsigned i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7 + 3);
	blkif_abi_req_to_native(BLKIF_ABI_NATIVE, in, &out);
	CU_ASSERT_EQUAL(memcmp(&out, in, sizeof(in)), 0);
	blkif_abi_req_to_native(BLKIF_ABI_X86_64, in, &out);
	CU_ASSERT_EQUAL(memcmp(&out, in, sizeof(in)), 0);
}

static void blkif_abi_responses_are_built_field_by_field_without_stray_bytes(void)
{
	struct blkif_response in;
	uint8_t out[32], want[16];

	/* Garbage in the native struct's padding must not reach the guest (XSA-216). */
	memset(&in, 0xab, sizeof(in));
	in.id = ID;
	in.operation = BLKIF_OP_WRITE;
	in.status = BLKIF_RSP_EOPNOTSUPP;

	memset(out, 0xcd, sizeof(out));
	CU_ASSERT_EQUAL(blkif_abi_rsp_from_native(BLKIF_ABI_X86_32, &in, out), 12);
	memset(want, 0, sizeof(want));
	put64(want, ID);
	want[8] = BLKIF_OP_WRITE;
	put16(want + 10, (uint16_t)BLKIF_RSP_EOPNOTSUPP);
	CU_ASSERT_EQUAL(memcmp(out, want, 12), 0);
	CU_ASSERT_EQUAL(out[12], 0xcd); /* wrote exactly 12 bytes */

	memset(out, 0xcd, sizeof(out));
	CU_ASSERT_EQUAL(blkif_abi_rsp_from_native(BLKIF_ABI_NATIVE, &in, out), 16);
	memset(want, 0, sizeof(want));
	put64(want, ID);
	want[8] = BLKIF_OP_WRITE;
	put16(want + 10, (uint16_t)BLKIF_RSP_EOPNOTSUPP);
	CU_ASSERT_EQUAL(memcmp(out, want, 16), 0);
	CU_ASSERT_EQUAL(out[16], 0xcd);
}

/* An x86_32 guest's ring: 108-byte slots, copied out by the engine, translated. */
static void blkif_abi_x86_32_ring_round_trip(void)
{
	const size_t ent = blkif_abi_ent_size(BLKIF_ABI_X86_32);
	uint8_t *s = calloc(1, RING_PAGE_SIZE);
	struct ring_front f;
	struct ring_back b;
	uint8_t reqs[32][108], rsp[12], got[4][12];

	CU_ASSERT_FATAL(s != NULL);
	CU_ASSERT_FATAL(ring_front_init(&f, s, RING_PAGE_SIZE, ent) == 0);
	CU_ASSERT_FATAL(ring_back_attach(&b, s, RING_PAGE_SIZE, ent, 0) == 0);
	for (unsigned i = 0; i < 4; i++) {
		uint8_t q[108];

		memset(q, 0, sizeof(q));
		q[0] = BLKIF_OP_WRITE;
		q[1] = 1;
		put64(q + 4, ID + i);
		put64(q + 12, i * 8);
		CU_ASSERT_EQUAL(ring_front_put(&f, q, sizeof(q)), 0);
	}
	ring_front_push(&f);
	CU_ASSERT_EQUAL_FATAL(ring_back_take(&b, reqs, blkif_abi_req_size(BLKIF_ABI_X86_32), 32), 4);
	for (unsigned i = 0; i < 4; i++) {
		struct blkif_request n;
		struct blkif_response r;

		blkif_abi_req_to_native(BLKIF_ABI_X86_32, reqs[i], &n);
		CU_ASSERT_EQUAL(n.id, ID + i);
		CU_ASSERT_EQUAL(n.sector_number, i * 8);
		memset(&r, 0, sizeof(r));
		r.id = n.id;
		r.operation = n.operation;
		r.status = BLKIF_RSP_OKAY;
		ring_back_put(&b, rsp, blkif_abi_rsp_from_native(BLKIF_ABI_X86_32, &r, rsp));
	}
	ring_back_push(&b);
	CU_ASSERT_EQUAL_FATAL(ring_front_take(&f, got, sizeof(got[0]), 4), 4);
	for (unsigned i = 0; i < 4; i++) {
		uint64_t id;

		memcpy(&id, got[i], 8);
		CU_ASSERT_EQUAL(id, ID + i);
		CU_ASSERT_EQUAL(got[i][8], BLKIF_OP_WRITE);
	}
	free(s);
}

static const struct unit_test blkif_abi_tests[] = {
	{ "blkif_abi_parse_accepts_known_protocols", blkif_abi_parse_accepts_known_protocols },
	{ "blkif_abi_parse_rejects_unknown_protocol", blkif_abi_parse_rejects_unknown_protocol },
	{ "blkif_abi_sizes_match_each_layout", blkif_abi_sizes_match_each_layout },
	{ "blkif_abi_x86_32_rw_translates_every_field",
	  blkif_abi_x86_32_rw_translates_every_field },
	{ "blkif_abi_x86_32_discard_translates_every_field",
	  blkif_abi_x86_32_discard_translates_every_field },
	{ "blkif_abi_x86_32_indirect_translates_every_field",
	  blkif_abi_x86_32_indirect_translates_every_field },
	{ "blkif_abi_x86_32_unknown_op_keeps_header_for_error_response",
	  blkif_abi_x86_32_unknown_op_keeps_header_for_error_response },
	{ "blkif_abi_native_request_passes_through_verbatim",
	  blkif_abi_native_request_passes_through_verbatim },
	{ "blkif_abi_responses_are_built_field_by_field_without_stray_bytes",
	  blkif_abi_responses_are_built_field_by_field_without_stray_bytes },
	{ "blkif_abi_x86_32_ring_round_trip", blkif_abi_x86_32_ring_round_trip },
	{ NULL, NULL },
};

UNIT_SUITE(blkif_abi, blkif_abi_tests)
