/*
 * guest — a simulated guest domain on the shim (see guest.h): domain creation over
 * DIR/hv.sock, guest memory and grant-table bookkeeping, guest-side event channels.
 * The backend side of the same objects is hv_shim.c; the daemon is shimhv_server.c.
 */
#include "frontend-shim/guest.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xenstore.h>

#include "frontend-shim/shimhv.h"
#include "frontend-shim/xenstored.h"

struct shim_guest {
	int sock;
	uint32_t domid;
	uint32_t mem_pages;
	uint32_t grant_entries;
	uint8_t *mem;
	size_t mem_len;
	struct grant_entry_v1 *gnttab;
	size_t gnttab_len;
	uint8_t *page_used; /* per frame */
	uint8_t *ref_used;  /* per grant ref: handed out by shim_guest_grant */
	uint32_t ref_hint;
	char *rundir;
	struct shim_evq q;
};

int shim_guest_create(struct shim_guest **out, const char *rundir, unsigned domid,
		      unsigned mem_pages, unsigned grant_entries)
{
	struct shim_hv_req req = { .op = SHIM_HV_DOMAIN_CREATE, .domid = domid,
				   .arg0 = mem_pages, .arg1 = grant_entries };
	struct shim_hv_rsp rsp;
	struct shim_guest *g;
	int fds[2] = { -1, -1 };
	int rc;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->sock = -1;
	g->q.epfd = -1;
	g->mem = MAP_FAILED;
	g->gnttab = MAP_FAILED;
	rc = shim_evq_init(&g->q);
	if (rc == 0)
		rc = shim_evq_set_nonblock(&g->q); /* frontends drain until -EAGAIN */
	if (rc < 0)
		goto fail;
	g->rundir = strdup(rundir);
	if (!g->rundir) {
		rc = -ENOMEM;
		goto fail;
	}
	g->sock = shim_hv_connect(rundir);
	if (g->sock < 0) {
		rc = g->sock;
		goto fail;
	}
	rc = shim_hv_call(g->sock, &req, &rsp, fds, 2);
	if (rc < 0)
		goto fail;
	g->domid = domid;
	g->mem_pages = mem_pages;
	g->grant_entries = grant_entries;
	g->mem_len = (size_t)mem_pages * HV_PAGE_SIZE;
	g->gnttab_len = shim_hv_gnttab_bytes(grant_entries);
	g->mem = mmap(NULL, g->mem_len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
	if (g->mem == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	g->gnttab = mmap(NULL, g->gnttab_len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0);
	if (g->gnttab == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	g->page_used = calloc(mem_pages, 1);
	g->ref_used = calloc(grant_entries, 1);
	if (!g->page_used || !g->ref_used) {
		rc = -ENOMEM;
		goto fail;
	}
	g->ref_used[0] = 1; /* reserved, as Linux does */
	g->ref_hint = 1;
	close(fds[0]);
	close(fds[1]);
	*out = g;
	return 0;
fail:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	shim_guest_destroy(g);
	return rc;
}

void shim_guest_destroy(struct shim_guest *g)
{
	if (!g)
		return;
	shim_evq_deinit(&g->q);
	if (g->sock >= 0)
		close(g->sock); /* the daemon destroys the domain */
	if (g->mem != MAP_FAILED)
		munmap(g->mem, g->mem_len);
	if (g->gnttab != MAP_FAILED)
		munmap(g->gnttab, g->gnttab_len);
	free(g->page_used);
	free(g->ref_used);
	free(g->rundir);
	free(g);
}

unsigned shim_guest_domid(const struct shim_guest *g)
{
	return g->domid;
}

unsigned shim_guest_mem_pages(const struct shim_guest *g)
{
	return g->mem_pages;
}

void *shim_guest_mem(struct shim_guest *g)
{
	return g->mem;
}

void *shim_guest_gnttab(struct shim_guest *g)
{
	return g->gnttab;
}

unsigned shim_guest_grant_entries(const struct shim_guest *g)
{
	return g->grant_entries;
}

int shim_guest_page_alloc(struct shim_guest *g, unsigned count, uint32_t *first_frame)
{
	uint32_t run = 0;

	if (count == 0)
		return -EINVAL;
	for (uint32_t f = 0; f < g->mem_pages; f++) {
		run = g->page_used[f] ? 0 : run + 1;
		if (run == count) {
			uint32_t first = f + 1 - count;

			memset(g->page_used + first, 1, count);
			*first_frame = first;
			return 0;
		}
	}
	return -ENOMEM;
}

void shim_guest_page_free(struct shim_guest *g, uint32_t first_frame, unsigned count)
{
	for (uint64_t f = first_frame; f < (uint64_t)first_frame + count && f < g->mem_pages; f++)
		g->page_used[f] = 0;
}

void *shim_guest_frame_ptr(struct shim_guest *g, uint32_t frame)
{
	if (frame >= g->mem_pages)
		return NULL;
	return g->mem + (size_t)frame * HV_PAGE_SIZE;
}

int shim_guest_grant(struct shim_guest *g, uint32_t frame, unsigned domid, bool readonly)
{
	struct grant_entry_v1 *ent;
	uint32_t ref = g->ref_hint;

	if (frame >= g->mem_pages || domid > SHIM_HV_DOMID_MAX)
		return -EINVAL;
	for (uint32_t n = 0; n < g->grant_entries; n++, ref++) {
		if (ref >= g->grant_entries)
			ref = 1;
		if (!g->ref_used[ref])
			break;
	}
	if (ref >= g->grant_entries || g->ref_used[ref])
		return -ENOSPC;
	g->ref_used[ref] = 1;
	g->ref_hint = ref + 1;
	ent = &g->gnttab[ref];
	ent->frame = frame;
	ent->domid = (domid_t)domid;
	/* frame and domid must be visible before the entry becomes valid. */
	__atomic_store_n(&ent->flags,
			 (uint16_t)(GTF_permit_access | (readonly ? GTF_readonly : 0)),
			 __ATOMIC_RELEASE);
	return (int)ref;
}

int shim_guest_revoke(struct shim_guest *g, uint32_t ref)
{
	struct grant_entry_v1 *ent;
	uint16_t flags;

	if (ref == 0 || ref >= g->grant_entries || !g->ref_used[ref])
		return -EINVAL;
	ent = &g->gnttab[ref];
	flags = __atomic_load_n(&ent->flags, __ATOMIC_ACQUIRE);
	do {
		/* The backend holds a mapping: the page must stay granted. */
		if (flags & (GTF_reading | GTF_writing))
			return -EBUSY;
	} while (!__atomic_compare_exchange_n(&ent->flags, &flags, 0, false, __ATOMIC_SEQ_CST,
					      __ATOMIC_ACQUIRE));
	g->ref_used[ref] = 0;
	return 0;
}

int shim_guest_evtchn_alloc_unbound(struct shim_guest *g, unsigned remote_domid)
{
	struct shim_hv_req req = { .op = SHIM_HV_EVTCHN_ALLOC_UNBOUND, .domid = g->domid,
				   .arg0 = remote_domid };
	struct shim_hv_rsp rsp;
	int fds[2];
	int rc;

	rc = shim_hv_call(g->sock, &req, &rsp, fds, 2);
	if (rc < 0)
		return rc;
	rc = shim_evq_add(&g->q, rsp.val0, fds[0], fds[1]);
	if (rc < 0) {
		struct shim_hv_req cl = { .op = SHIM_HV_EVTCHN_CLOSE, .domid = g->domid,
					  .arg0 = rsp.val0 };

		shim_hv_call(g->sock, &cl, &rsp, NULL, 0);
		return rc;
	}
	return (int)rsp.val0;
}

int shim_guest_evtchn_close(struct shim_guest *g, unsigned port)
{
	struct shim_hv_req req = { .op = SHIM_HV_EVTCHN_CLOSE, .domid = g->domid,
				   .arg0 = port };
	struct shim_hv_rsp rsp;
	int rc;

	rc = shim_evq_remove(&g->q, port);
	if (rc < 0)
		return rc;
	return shim_hv_call(g->sock, &req, &rsp, NULL, 0);
}

int shim_guest_evtchn_notify(struct shim_guest *g, unsigned port)
{
	return shim_evq_notify(&g->q, port);
}

int shim_guest_evtchn_fd(struct shim_guest *g)
{
	return g->q.epfd;
}

int shim_guest_evtchn_pending(struct shim_guest *g)
{
	return shim_evq_pending(&g->q);
}

int shim_guest_evtchn_unmask(struct shim_guest *g, unsigned port)
{
	return shim_evq_unmask(&g->q, port);
}

struct xs_handle *shim_guest_xs_open(struct shim_guest *g)
{
	char path[PATH_MAX];
	char *saved = NULL;
	const char *old = getenv("XENSTORED_PATH");
	struct xs_handle *xs;
	int rc, err;

	rc = shim_xs_socket_path(g->rundir, g->domid, path, sizeof(path));
	if (rc < 0) {
		errno = -rc;
		return NULL;
	}
	if (old) {
		saved = strdup(old);
		if (!saved) {
			errno = ENOMEM;
			return NULL;
		}
	}
	if (setenv("XENSTORED_PATH", path, 1) < 0) {
		free(saved);
		return NULL;
	}
	xs = xs_open(0);
	err = errno;
	if (saved)
		setenv("XENSTORED_PATH", saved, 1);
	else
		unsetenv("XENSTORED_PATH");
	free(saved);
	errno = err;
	return xs;
}
