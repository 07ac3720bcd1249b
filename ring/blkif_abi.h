/*
 * blkif_abi — which blkif request/response layout a frontend speaks (its xenstore
 * "protocol" key) and the translation between the x86_32-abi layout and the native
 * x86_64 structs the rest of splitpv uses. Pure functions; no allocation.
 */
#ifndef SPLITPV_RING_BLKIF_ABI_H
#define SPLITPV_RING_BLKIF_ABI_H

#include <stddef.h>

#include "ring/abi.h"

enum blkif_abi {
	BLKIF_ABI_NATIVE, /* protocol key absent: the backend's own (x86_64) layout */
	BLKIF_ABI_X86_32, /* "x86_32-abi": 4-byte aligned uint64_t, 108-byte slots */
	BLKIF_ABI_X86_64, /* "x86_64-abi" (and "arm-abi", which has the same layout) */
};

/*
 * protocol: the frontend's "protocol" key, NULL if absent (-> native). "arm-abi" maps to
 * BLKIF_ABI_X86_64: ARM EABI and AArch64 align uint64_t to 8 exactly as x86_64 does.
 * Returns 0, or -EINVAL for anything else (including "").
 */
int blkif_abi_parse(const char *protocol, enum blkif_abi *out);

/* Bytes per ring slot: 112 (native, x86_64) or 108 (x86_32). */
size_t blkif_abi_ent_size(enum blkif_abi abi);

/* Bytes to copy out of a slot per request (the guest-layout request struct). */
size_t blkif_abi_req_size(enum blkif_abi abi);

/* Bytes of a guest-layout response: 16 or 12. */
size_t blkif_abi_rsp_size(enum blkif_abi abi);

/*
 * Translate a copied-out request (blkif_abi_req_size() bytes in the guest's layout; any
 * alignment) into the native struct blkif_request, laid out exactly as a native frontend
 * would have written it: the operation byte selects rw, discard or indirect; for an
 * unknown operation the common header (bytes 0-3, id, sector) is copied so an error
 * response can be built. Padding in *out is zero. in and out must not overlap.
 */
void blkif_abi_req_to_native(enum blkif_abi abi, const void *in, struct blkif_request *out);

/*
 * Build the guest-layout response from a native one, field by field, with every padding
 * byte zero (XSA-216). out must hold blkif_abi_rsp_size(abi) bytes; returns that size.
 */
size_t blkif_abi_rsp_from_native(enum blkif_abi abi, const struct blkif_response *in, void *out);

#endif
