/*
 * blkif_abi — protocol-key parsing and x86_32-abi <-> native blkif translation.
 * Contract in ring/blkif_abi.h; the layouts are pinned by ring/abi.h.
 */
#include "ring/blkif_abi.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

int blkif_abi_parse(const char *protocol, enum blkif_abi *out)
{
	if (!protocol)
		*out = BLKIF_ABI_NATIVE;
	else if (strcmp(protocol, XEN_IO_PROTO_ABI_X86_32) == 0)
		*out = BLKIF_ABI_X86_32;
	else if (strcmp(protocol, XEN_IO_PROTO_ABI_X86_64) == 0 ||
		 strcmp(protocol, XEN_IO_PROTO_ABI_ARM) == 0)
		*out = BLKIF_ABI_X86_64;
	else
		return -EINVAL;
	return 0;
}

size_t blkif_abi_ent_size(enum blkif_abi abi)
{
	assert(abi == BLKIF_ABI_NATIVE || abi == BLKIF_ABI_X86_32 || abi == BLKIF_ABI_X86_64);
	return abi == BLKIF_ABI_X86_32 ? sizeof(union blkif_x86_32_sring_entry)
				       : sizeof(union blkif_sring_entry);
}

size_t blkif_abi_req_size(enum blkif_abi abi)
{
	assert(abi == BLKIF_ABI_NATIVE || abi == BLKIF_ABI_X86_32 || abi == BLKIF_ABI_X86_64);
	return abi == BLKIF_ABI_X86_32 ? sizeof(struct blkif_x86_32_request)
				       : sizeof(struct blkif_request);
}

size_t blkif_abi_rsp_size(enum blkif_abi abi)
{
	assert(abi == BLKIF_ABI_NATIVE || abi == BLKIF_ABI_X86_32 || abi == BLKIF_ABI_X86_64);
	return abi == BLKIF_ABI_X86_32 ? sizeof(struct blkif_x86_32_response)
				       : sizeof(struct blkif_response);
}

/* The three x86_32 request shapes; in is copied here first so alignment never matters. */
union x86_32_req {
	struct blkif_x86_32_request rw;
	struct blkif_x86_32_request_discard discard;
	struct blkif_x86_32_request_indirect indirect;
	uint8_t bytes[sizeof(struct blkif_x86_32_request)];
};

static void x86_32_to_native(const void *in, struct blkif_request *out)
{
	union x86_32_req src;

	memcpy(src.bytes, in, sizeof(src.bytes));
	memset(out, 0, sizeof(*out));
	switch (src.rw.operation) {
	case BLKIF_OP_READ:
	case BLKIF_OP_WRITE:
	case BLKIF_OP_WRITE_BARRIER:
	case BLKIF_OP_FLUSH_DISKCACHE:
		out->operation = src.rw.operation;
		out->nr_segments = src.rw.nr_segments;
		out->handle = src.rw.handle;
		out->id = src.rw.id;
		out->sector_number = src.rw.sector_number;
		/* All slots: nr_segments is validated later, on the copy, by the parser. */
		memcpy(out->seg, src.rw.seg, sizeof(out->seg));
		break;
	case BLKIF_OP_DISCARD: {
		struct blkif_request_discard d;

		memset(&d, 0, sizeof(d));
		d.operation = src.discard.operation;
		d.flag = src.discard.flag;
		d.handle = src.discard.handle;
		d.id = src.discard.id;
		d.sector_number = src.discard.sector_number;
		d.nr_sectors = src.discard.nr_sectors;
		memcpy(out, &d, sizeof(d));
		break;
	}
	case BLKIF_OP_INDIRECT: {
		struct blkif_request_indirect ind;

		memset(&ind, 0, sizeof(ind));
		ind.operation = src.indirect.operation;
		ind.indirect_op = src.indirect.indirect_op;
		ind.nr_segments = src.indirect.nr_segments;
		ind.id = src.indirect.id;
		ind.sector_number = src.indirect.sector_number;
		ind.handle = src.indirect.handle;
		memcpy(ind.indirect_grefs, src.indirect.indirect_grefs, sizeof(ind.indirect_grefs));
		memcpy(out, &ind, sizeof(ind));
		break;
	}
	default:
		/* Unknown op: keep what an error response and a log line need. */
		memcpy(out, src.bytes, 4);
		out->id = src.rw.id;
		out->sector_number = src.rw.sector_number;
		break;
	}
}

void blkif_abi_req_to_native(enum blkif_abi abi, const void *in, struct blkif_request *out)
{
	if (abi == BLKIF_ABI_X86_32)
		x86_32_to_native(in, out);
	else
		memcpy(out, in, sizeof(*out));
}

size_t blkif_abi_rsp_from_native(enum blkif_abi abi, const struct blkif_response *in, void *out)
{
	if (abi == BLKIF_ABI_X86_32) {
		struct blkif_x86_32_response r;

		memset(&r, 0, sizeof(r));
		r.id = in->id;
		r.operation = in->operation;
		r.status = in->status;
		memcpy(out, &r, sizeof(r));
		return sizeof(r);
	} else {
		struct blkif_response r;

		memset(&r, 0, sizeof(r));
		r.id = in->id;
		r.operation = in->operation;
		r.status = in->status;
		memcpy(out, &r, sizeof(r));
		return sizeof(r);
	}
}
