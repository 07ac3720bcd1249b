/*
 * abi — the wire ABI shared with guests: Xen's public io/ring.h, io/blkif.h,
 * io/netif.h (Debian libxen-dev) are the source of truth; this header includes them
 * safely, adds the x86_32-abi blkif layouts a 64-bit backend must also speak, and
 * pins every size and offset splitpv relies on with _Static_assert.
 */
#ifndef SPLITPV_RING_ABI_H
#define SPLITPV_RING_ABI_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * ring.h maps xen_mb() to bare mb() unless __XEN_INTERFACE_VERSION__ is recent (the
 * Makefile sets it); define the barriers ourselves before including it.
 */
#ifndef xen_mb
#define xen_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define xen_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define xen_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#endif

#include <xen/xen.h>
#include <xen/grant_table.h>
#include <xen/io/ring.h>
#include <xen/io/blkif.h>
#include <xen/io/netif.h>
#include <xen/io/protocols.h>
#include <xen/io/xenbus.h>

#define ABI_PAGE_SIZE 4096u
#define ABI_SRING_HDR_SIZE 64u /* req_prod, req_event, rsp_prod, rsp_event, pvt, pad */

/* ---- shared ring header (io/ring.h DEFINE_RING_TYPES) ---- */
_Static_assert(offsetof(struct blkif_sring, req_prod) == 0, "req_prod");
_Static_assert(offsetof(struct blkif_sring, req_event) == 4, "req_event");
_Static_assert(offsetof(struct blkif_sring, rsp_prod) == 8, "rsp_prod");
_Static_assert(offsetof(struct blkif_sring, rsp_event) == 12, "rsp_event");
_Static_assert(offsetof(struct blkif_sring, ring) == ABI_SRING_HDR_SIZE, "ring entries at 64");
_Static_assert(offsetof(struct netif_tx_sring, ring) == ABI_SRING_HDR_SIZE, "tx entries at 64");
_Static_assert(offsetof(struct netif_rx_sring, ring) == ABI_SRING_HDR_SIZE, "rx entries at 64");

/* ---- blkif, native x86_64 layout ---- */
_Static_assert(sizeof(struct blkif_request_segment) == 8, "segment");
_Static_assert(sizeof(struct blkif_request) == 112, "blkif_request");
_Static_assert(offsetof(struct blkif_request, operation) == 0, "operation");
_Static_assert(offsetof(struct blkif_request, nr_segments) == 1, "nr_segments");
_Static_assert(offsetof(struct blkif_request, handle) == 2, "handle");
_Static_assert(offsetof(struct blkif_request, id) == 8, "id");
_Static_assert(offsetof(struct blkif_request, sector_number) == 16, "sector_number");
_Static_assert(offsetof(struct blkif_request, seg) == 24, "seg");
_Static_assert(sizeof(struct blkif_request_discard) == 32, "discard");
_Static_assert(offsetof(struct blkif_request_discard, nr_sectors) == 24, "nr_sectors");
_Static_assert(sizeof(struct blkif_request_indirect) == 64, "indirect");
_Static_assert(offsetof(struct blkif_request_indirect, indirect_op) == 1, "indirect_op");
_Static_assert(offsetof(struct blkif_request_indirect, nr_segments) == 2, "ind nr_segments");
_Static_assert(offsetof(struct blkif_request_indirect, id) == 8, "ind id");
_Static_assert(offsetof(struct blkif_request_indirect, sector_number) == 16, "ind sector");
_Static_assert(offsetof(struct blkif_request_indirect, handle) == 24, "ind handle");
_Static_assert(offsetof(struct blkif_request_indirect, indirect_grefs) == 28, "ind grefs");
_Static_assert(sizeof(struct blkif_response) == 16, "blkif_response");
_Static_assert(offsetof(struct blkif_response, status) == 10, "status");
_Static_assert(sizeof(union blkif_sring_entry) == 112, "blkif entry");

/* Segments per indirect page and the most a request can carry (8 pages). */
#define ABI_SEGS_PER_INDIRECT_PAGE (ABI_PAGE_SIZE / sizeof(struct blkif_request_segment))
#define ABI_MAX_INDIRECT_SEGMENTS \
	(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * ABI_SEGS_PER_INDIRECT_PAGE)

/* ---- blkif, x86_32-abi layout (4-byte aligned uint64_t) ---- */
#pragma pack(push, 4)
struct blkif_x86_32_request {
	uint8_t operation;
	uint8_t nr_segments;
	blkif_vdev_t handle;
	uint64_t id;
	blkif_sector_t sector_number;
	struct blkif_request_segment seg[BLKIF_MAX_SEGMENTS_PER_REQUEST];
};
struct blkif_x86_32_request_discard {
	uint8_t operation;
	uint8_t flag;
	blkif_vdev_t handle;
	uint64_t id;
	blkif_sector_t sector_number;
	uint64_t nr_sectors;
};
struct blkif_x86_32_request_indirect {
	uint8_t operation;
	uint8_t indirect_op;
	uint16_t nr_segments;
	uint64_t id;
	blkif_sector_t sector_number;
	blkif_vdev_t handle;
	uint16_t pad1;
	grant_ref_t indirect_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
	uint64_t pad2; /* 64 bytes, as i386 Xen pads it */
};
struct blkif_x86_32_response {
	uint64_t id;
	uint8_t operation;
	int16_t status;
};
#pragma pack(pop)
DEFINE_RING_TYPES(blkif_x86_32, struct blkif_x86_32_request, struct blkif_x86_32_response);

_Static_assert(sizeof(struct blkif_x86_32_request) == 108, "x86_32 request");
_Static_assert(offsetof(struct blkif_x86_32_request, id) == 4, "x86_32 id");
_Static_assert(offsetof(struct blkif_x86_32_request, sector_number) == 12, "x86_32 sector");
_Static_assert(offsetof(struct blkif_x86_32_request, seg) == 20, "x86_32 seg");
_Static_assert(sizeof(struct blkif_x86_32_request_discard) == 28, "x86_32 discard");
_Static_assert(offsetof(struct blkif_x86_32_request_discard, nr_sectors) == 20, "x86_32 nr_sectors");
_Static_assert(sizeof(struct blkif_x86_32_request_indirect) == 64, "x86_32 indirect");
_Static_assert(offsetof(struct blkif_x86_32_request_indirect, handle) == 20, "x86_32 ind handle");
_Static_assert(offsetof(struct blkif_x86_32_request_indirect, indirect_grefs) == 24, "x86_32 grefs");
_Static_assert(sizeof(struct blkif_x86_32_response) == 12, "x86_32 response");
_Static_assert(offsetof(struct blkif_x86_32_response, status) == 10, "x86_32 status");
_Static_assert(sizeof(union blkif_x86_32_sring_entry) == 108, "x86_32 entry");

/* ---- netif ---- */
_Static_assert(sizeof(struct netif_tx_request) == 12, "tx request");
_Static_assert(offsetof(struct netif_tx_request, offset) == 4, "tx offset");
_Static_assert(offsetof(struct netif_tx_request, flags) == 6, "tx flags");
_Static_assert(offsetof(struct netif_tx_request, id) == 8, "tx id");
_Static_assert(offsetof(struct netif_tx_request, size) == 10, "tx size");
_Static_assert(sizeof(struct netif_tx_response) == 4, "tx response");
_Static_assert(sizeof(struct netif_rx_request) == 8, "rx request");
_Static_assert(offsetof(struct netif_rx_request, gref) == 4, "rx gref");
_Static_assert(sizeof(struct netif_rx_response) == 8, "rx response");
_Static_assert(offsetof(struct netif_rx_response, status) == 6, "rx status");
_Static_assert(sizeof(struct netif_extra_info) == 8, "extra info");
_Static_assert(sizeof(union netif_tx_sring_entry) == 12, "tx entry");
_Static_assert(sizeof(union netif_rx_sring_entry) == 8, "rx entry");
_Static_assert(sizeof(struct xen_netif_ctrl_request) == 16, "ctrl request");
_Static_assert(sizeof(struct xen_netif_ctrl_response) == 12, "ctrl response");

/* ---- grant table v1 entry (what the shim lays out for its guests) ---- */
_Static_assert(sizeof(struct grant_entry_v1) == 8, "grant_entry_v1");
_Static_assert(offsetof(struct grant_entry_v1, domid) == 2, "grant domid");
_Static_assert(offsetof(struct grant_entry_v1, frame) == 4, "grant frame");

#endif
