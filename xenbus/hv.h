/*
 * hv — the platform seam: grant tables and event channels for backends.
 * Two implementations behind one ops table: hv_xen.c (libxengnttab/libxenevtchn on
 * real Xen) and frontend-shim/hv_shim.c (the project's simulated hypervisor).
 * Backends include only this header, never <xengnttab.h> or <xenevtchn.h>.
 */
#ifndef SPLITPV_HV_H
#define SPLITPV_HV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HV_PAGE_SIZE 4096u

/* Grant status codes, as Xen's GNTST_* (xen/grant_table.h). */
enum {
	HV_GNTST_OKAY = 0,
	HV_GNTST_GENERAL_ERROR = -1,
	HV_GNTST_BAD_DOMAIN = -2,
	HV_GNTST_BAD_GNTREF = -3,
	HV_GNTST_PERMISSION_DENIED = -8,
	HV_GNTST_BAD_PAGE = -9,
	HV_GNTST_BAD_COPY_ARG = -10,
};

/* Copy-segment flags: which side is a foreign grant (else a local pointer). */
#define HV_COPY_SOURCE_GREF (1u << 0)
#define HV_COPY_DEST_GREF (1u << 1)

/*
 * One segment of a batched grant copy. Same layout as libxengnttab's
 * xengnttab_grant_copy_segment_t (hv_xen.c passes the array through unchanged).
 * The foreign side must satisfy offset + len <= HV_PAGE_SIZE.
 */
union hv_copy_ptr {
	void *virt;
	struct {
		uint32_t ref;
		uint16_t offset;
		uint16_t domid;
	} foreign;
};
struct hv_copy_seg {
	union hv_copy_ptr source, dest;
	uint16_t len;
	uint16_t flags;  /* HV_COPY_*_GREF */
	int16_t status;  /* out: HV_GNTST_* per segment */
};

struct hv_gnt; /* grant-table handle: one per device thread */
struct hv_evt; /* event-channel handle: one pollable fd */

/* The ops table each platform provides. All return 0 / a port / a pointer, or -errno
 * (pointer-returning ops: NULL with errno set). */
struct hv_ops {
	const char *name;
	int (*gnt_open)(struct hv_gnt **out);
	void (*gnt_close)(struct hv_gnt *g);
	void *(*gnt_map)(struct hv_gnt *g, uint32_t domid, uint32_t count,
			 const uint32_t *refs, bool writable);
	int (*gnt_unmap)(struct hv_gnt *g, void *addr, uint32_t count);
	int (*gnt_copy)(struct hv_gnt *g, uint32_t count, struct hv_copy_seg *segs);

	int (*evt_open)(struct hv_evt **out);
	void (*evt_close)(struct hv_evt *e);
	int (*evt_fd)(struct hv_evt *e);
	int (*evt_bind_interdomain)(struct hv_evt *e, uint32_t domid, uint32_t remote_port);
	int (*evt_unbind)(struct hv_evt *e, uint32_t port);
	int (*evt_notify)(struct hv_evt *e, uint32_t port);
	int (*evt_pending)(struct hv_evt *e);
	int (*evt_unmask)(struct hv_evt *e, uint32_t port);
	/* Only interdomain binds with domid from now on (else -EACCES); irrevocable. */
	int (*evt_restrict)(struct hv_evt *e, uint32_t domid);
	/* A new handle on the same grant-table access as shared (which stays open), for a
	 * process that can no longer open the device itself. */
	int (*gnt_share)(struct hv_gnt *shared, struct hv_gnt **out);
};

/* Every handle starts with this, so the wrappers below can dispatch. */
struct hv_gnt {
	const struct hv_ops *ops;
};
#define HV_EVT_POOL_BINDS 8 /* ports one pooled handle may have bound at once */
struct hv_evt {
	const struct hv_ops *ops;
	/* hv.c's bookkeeping for handles of the worker pool (hv_worker_init) */
	bool pooled;
	unsigned int nbound;
	uint32_t bound[HV_EVT_POOL_BINDS];
};

extern const struct hv_ops hv_xen_ops;  /* xenbus/hv_xen.c */
extern const struct hv_ops hv_shim_ops; /* frontend-shim/hv_shim.c */

/*
 * The platform this process uses: the shim when SPLITPV_SHIM (the shim's run
 * directory) is set in the environment, real Xen otherwise. Never NULL.
 */
const struct hv_ops *hv_platform(void);

/* Grant table. gnt_open: 0 or -errno; the handle is closed with hv_gnt_close (NULL ok). */
int hv_gnt_open(struct hv_gnt **out);
void hv_gnt_close(struct hv_gnt *g);
/*
 * Map count grants of domid contiguously. All or nothing. Returns the address or
 * NULL with errno. writable=false maps read-only: a write faults.
 * The caller unmaps with exactly the same count.
 */
void *hv_gnt_map(struct hv_gnt *g, uint32_t domid, uint32_t count, const uint32_t *refs,
		 bool writable);
int hv_gnt_unmap(struct hv_gnt *g, void *addr, uint32_t count);
/*
 * Batched grant copy. Returns 0 if the batch was processed (then check every
 * segs[i].status) or -errno if it could not be issued at all.
 */
int hv_gnt_copy(struct hv_gnt *g, uint32_t count, struct hv_copy_seg *segs);

/*
 * Event channels, with /dev/xen/evtchn semantics: hv_evt_pending returns one fired
 * port (or -EAGAIN); that port stays masked until hv_evt_unmask, and a notify that
 * arrives meanwhile is delivered after the unmask, never lost. hv_evt_fd is readable
 * while a port is pending (level-triggered). Don't share a handle across threads.
 */
int hv_evt_open(struct hv_evt **out);
void hv_evt_close(struct hv_evt *e);
int hv_evt_fd(struct hv_evt *e);
/* Returns the local port (>= 0) or -errno. */
int hv_evt_bind_interdomain(struct hv_evt *e, uint32_t domid, uint32_t remote_port);
int hv_evt_unbind(struct hv_evt *e, uint32_t port);
int hv_evt_notify(struct hv_evt *e, uint32_t port);
int hv_evt_pending(struct hv_evt *e);
int hv_evt_unmask(struct hv_evt *e, uint32_t port);

/*
 * Worker mode: what a backend worker opens while it is still root, before it drops to
 * its guest's uid (after which /dev/xen/gntdev, /dev/xen/evtchn and the shim's hv.sock
 * can no longer be opened). Call once, before any device thread exists:
 *   - one grant-table handle; from then on every hv_gnt_open returns a new handle that
 *     shares it (real Xen: the same gntdev fd, which is safe to share between threads;
 *     shim: a connection cloned from it), so hv_gnt_open keeps working after the drop;
 *   - pool_size event-channel handles, each restricted to domid (xenevtchn_restrict:
 *     binding any other domain's port fails with -EACCES, and can't be undone).
 *     hv_evt_open takes one (-EMFILE, logged, when none is left); hv_evt_close unbinds
 *     whatever is still bound on it and gives it back, so reconnects never exhaust it.
 *     On Xen a port that fired just before its unbind may still be read once by the
 *     handle's next user (Linux doesn't purge the handle's ring on unbind): callers
 *     treat any pending port as a kick, so that costs one spurious ring check.
 * 0 or -errno (then nothing is kept open).
 */
int hv_worker_init(uint32_t domid, unsigned int pool_size);
/* Free handles left in the pool (tests, logs). */
unsigned int hv_worker_pool_free(void);

#endif
