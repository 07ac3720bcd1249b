/*
 * guest — the frontend side of the shim: a simulated guest domain. Connects to the
 * shim daemon (DIR/hv.sock), creates its domain, and gives the guest its memory, its
 * v1 grant table and its event channels. Used by the userspace blkfront/netfront,
 * tests, benchmarks and the hostile frontend (which writes shim_guest_mem() directly).
 * Counterpart of frontend-shim/hv_shim.c (the backend side).
 *
 * Threading: one thread per struct shim_guest. Fork: only shim_guest_destroy is safe in
 * a child (the domain belongs to the connection, which the child shares).
 * Errors: 0 / a value >= 0, or -errno.
 */
#ifndef SPLITPV_SHIM_GUEST_H
#define SPLITPV_SHIM_GUEST_H

#include <stdbool.h>
#include <stdint.h>

struct shim_guest;
struct xs_handle;

/*
 * Connect to rundir/hv.sock and create domain domid (1..32767) with mem_pages pages of
 * zeroed memory (frames 0..mem_pages-1) and a grant table of grant_entries v1 entries.
 * -EEXIST: domid exists; -EINVAL: bad sizes or domid; -ENOENT/-ECONNREFUSED: no daemon.
 * The domain lives until shim_guest_destroy or until this process dies.
 * The caller frees *out with shim_guest_destroy.
 */
int shim_guest_create(struct shim_guest **out, const char *rundir, unsigned domid,
		      unsigned mem_pages, unsigned grant_entries);

/* Close the connection: the domain dies (channels closed, @releaseDomain fired).
 * Unmaps memory and the grant table. NULL ok. */
void shim_guest_destroy(struct shim_guest *g);

unsigned shim_guest_domid(const struct shim_guest *g);
unsigned shim_guest_mem_pages(const struct shim_guest *g);

/* Base of guest memory (frame 0); frame f is at base + f * 4096. Valid until destroy. */
void *shim_guest_mem(struct shim_guest *g);

/* The guest's grant table (grant_entry_v1[grant_entries]), for hostile tooling. */
void *shim_guest_gnttab(struct shim_guest *g);
unsigned shim_guest_grant_entries(const struct shim_guest *g);

/* Allocate count contiguous free frames (first fit). 0 with *first_frame, -EINVAL for
 * count 0, -ENOMEM if no such run. Frames are not zeroed on reuse. */
int shim_guest_page_alloc(struct shim_guest *g, unsigned count, uint32_t *first_frame);
/* Free frames allocated by shim_guest_page_alloc. Out-of-range frames are ignored. */
void shim_guest_page_free(struct shim_guest *g, uint32_t first_frame, unsigned count);
/* Pointer to frame, or NULL if frame >= mem_pages. */
void *shim_guest_frame_ptr(struct shim_guest *g, uint32_t frame);

/*
 * Grant domid access to frame (read-only if readonly), as gnttab_grant_foreign_access:
 * fills frame and domid, then publishes GTF_permit_access. Returns the ref (>= 1; ref
 * 0 is reserved as in Linux), -EINVAL for a bad frame/domid, -ENOSPC if the table is full.
 */
int shim_guest_grant(struct shim_guest *g, uint32_t frame, unsigned domid, bool readonly);

/*
 * End access, as gnttab_end_foreign_access_ref: atomically clears the entry unless the
 * backend has it mapped (GTF_reading/GTF_writing set): then -EBUSY and the grant stays.
 * -EINVAL for a ref this library did not hand out. On 0 the ref is free for reuse.
 */
int shim_guest_revoke(struct shim_guest *g, uint32_t ref);

/* Allocate an unbound event-channel port that remote_domid may bind. Returns the port
 * (>= 1) or -errno (-ENOSPC: too many ports). */
int shim_guest_evtchn_alloc_unbound(struct shim_guest *g, unsigned remote_domid);
/* Close a port; a bound backend's notifications then go nowhere. -EINVAL: not open. */
int shim_guest_evtchn_close(struct shim_guest *g, unsigned port);
/* Signal the backend bound to port (dropped if none is bound). -EINVAL: not open. */
int shim_guest_evtchn_notify(struct shim_guest *g, unsigned port);
/* The epoll fd: readable while a port is pending (level-triggered). Owned by g. */
int shim_guest_evtchn_fd(struct shim_guest *g);
/* One fired port, now cleared and masked until shim_guest_evtchn_unmask, or -EAGAIN.
 * Notifications while masked are delivered (once) after the unmask, never lost. */
int shim_guest_evtchn_pending(struct shim_guest *g);
int shim_guest_evtchn_unmask(struct shim_guest *g, unsigned port);

/*
 * Open a libxenstore handle acting as this domain: XENSTORED_PATH is set to the
 * domain's xenstored socket for the duration of xs_open and then restored (not
 * thread-safe with respect to the environment). NULL with errno on failure. The caller
 * closes it with xs_close, before shim_guest_destroy.
 */
struct xs_handle *shim_guest_xs_open(struct shim_guest *g);

#endif
