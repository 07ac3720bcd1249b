/*
 * hv_shim — the hv seam (xenbus/hv.h) on the shim's simulated hypervisor, selected by
 * SPLITPV_SHIM=<rundir>; SPLITPV_SHIM_DOMID (default 0) is this backend's domid.
 * Counterpart of xenbus/hv_xen.c; the daemon side is shimhv_server.c/shimhv_domain.c.
 *
 * Grants: DOMAIN_ATTACH hands us a domain's memory, its (guest-written, hostile) v1
 * grant table and the private pin table. Maps pin entries as Xen does (CAS on the
 * shared flags, GTF_reading/GTF_writing, pin counts) and mmap the granted frames with
 * the granted protection; copies validate and memcpy, with no syscall.
 * errno/-errno, as gntdev where it has one: EINVAL for a bad ref, a non-permitted
 * entry, a wrong domid, a frame outside guest memory, a wrong unmap count; EPERM for a
 * writable map of a read-only grant; ESRCH for an unknown or dead domain; ENOSPC past
 * SHIM_GNT_MAX_MAPPED pages per handle.
 * After fork() only close is safe in the child (as libxengnttab).
 */
#include "xenbus/hv.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "frontend-shim/shimhv.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "flags+domid read as one 32-bit word (Xen's grant_combo) assumes little endian");

#define SHIM_GNT_MAX_MAPPED (1u << 16) /* pages mapped per handle, as gntdev's limit */
#define SHIM_GNT_MAP_BUCKETS 256u

/* One attached domain. */
struct shim_view {
	struct shim_view *next;
	uint32_t domid;
	uint32_t mem_pages;
	uint32_t grant_entries;
	int mem_fd;
	uint8_t *mem;
	size_t mem_len;
	struct grant_entry_v1 *gnttab; /* the guest writes it at any time */
	size_t gnttab_len;
	struct shim_hv_pins *pins;
	size_t pins_len;
	uint32_t *pin;                 /* pins + SHIM_HV_PINS_OFF */
	uint32_t *connpins;            /* the pins this handle holds (daemon cleans up) */
	size_t connpins_len;
	unsigned nr_maps;              /* live mappings using this view */
	bool stale;                    /* the domain died: freed with its last mapping */
};

struct shim_map {
	struct shim_map *next;
	uint8_t *addr;
	uint32_t count;
	bool writable;
	struct shim_view *view;
	uint32_t refs[];
};

struct shim_gnt {
	struct hv_gnt base;
	int sock;
	uint32_t self_domid;
	struct shim_view *views;
	struct shim_view *last; /* lookup cache for copies */
	uint32_t mapped_pages;
	struct shim_map *maps[SHIM_GNT_MAP_BUCKETS];
};

struct shim_evt {
	struct hv_evt base;
	int sock;
	uint32_t self_domid;
	struct {
		uint32_t domid;
		uint32_t remote_port;
		uint64_t serial;
	} bind[SHIM_HV_PORTS_MAX + 1];
	struct shim_evq q;
};

/* The rundir and our domid from the environment; 0 or -errno. */
static int shim_env(const char **rundir, uint32_t *self_domid)
{
	const char *dir = getenv("SPLITPV_SHIM");
	const char *dom = getenv("SPLITPV_SHIM_DOMID");

	if (!dir || !*dir)
		return -ENOENT;
	*rundir = dir;
	*self_domid = 0;
	if (dom && *dom) {
		char *end;
		unsigned long v;

		errno = 0;
		v = strtoul(dom, &end, 10);
		if (errno || *end || v > SHIM_HV_DOMID_MAX)
			return -EINVAL;
		*self_domid = (uint32_t)v;
	}
	return 0;
}

/* ------------------------------------------------------------------ views */

static void view_free(struct shim_gnt *g, struct shim_view *v)
{
	for (struct shim_view **pp = &g->views; *pp; pp = &(*pp)->next) {
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	}
	if (g->last == v)
		g->last = NULL;
	if (v->mem)
		munmap(v->mem, v->mem_len);
	if (v->gnttab)
		munmap(v->gnttab, v->gnttab_len);
	if (v->pins)
		munmap(v->pins, v->pins_len);
	if (v->connpins)
		munmap(v->connpins, v->connpins_len);
	if (v->mem_fd >= 0)
		close(v->mem_fd);
	free(v);
}

static void view_mark_stale(struct shim_gnt *g, struct shim_view *v)
{
	v->stale = true;
	if (g->last == v)
		g->last = NULL;
	if (v->nr_maps == 0)
		view_free(g, v);
}

static void *map_shared(int fd, size_t len, int *rc)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED) {
		*rc = -errno;
		return NULL;
	}
	return p;
}

static int view_attach(struct shim_gnt *g, uint32_t domid, struct shim_view **out)
{
	struct shim_hv_req req = { .op = SHIM_HV_DOMAIN_ATTACH, .self_domid = g->self_domid,
				   .domid = domid };
	struct shim_hv_rsp rsp;
	struct shim_view *v;
	int fds[4];
	int rc;

	if (domid > SHIM_HV_DOMID_MAX)
		return -ESRCH;
	rc = shim_hv_call(g->sock, &req, &rsp, fds, 4);
	if (rc < 0)
		return rc;
	v = calloc(1, sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
		goto out;
	}
	v->domid = domid;
	v->mem_fd = -1;
	/* The daemon is trusted, but check the sizes it claims against the hard limits. */
	if (rsp.val0 == 0 || rsp.val0 > SHIM_HV_MEM_PAGES_MAX || rsp.val1 == 0 ||
	    rsp.val1 > SHIM_HV_GRANT_ENTRIES_MAX) {
		rc = -EPROTO;
		goto out;
	}
	v->mem_pages = rsp.val0;
	v->grant_entries = rsp.val1;
	v->mem_len = (size_t)v->mem_pages * HV_PAGE_SIZE;
	v->gnttab_len = shim_hv_gnttab_bytes(v->grant_entries);
	v->pins_len = shim_hv_pins_bytes(v->grant_entries);
	v->connpins_len = shim_hv_connpins_bytes(v->grant_entries);
	if (!(v->mem = map_shared(fds[0], v->mem_len, &rc)) ||
	    !(v->gnttab = map_shared(fds[1], v->gnttab_len, &rc)) ||
	    !(v->pins = map_shared(fds[2], v->pins_len, &rc)) ||
	    !(v->connpins = map_shared(fds[3], v->connpins_len, &rc)))
		goto out;
	if (v->pins->magic != SHIM_HV_PINS_MAGIC) {
		rc = -EPROTO;
		goto out;
	}
	v->pin = (uint32_t *)((uint8_t *)v->pins + SHIM_HV_PINS_OFF);
	v->mem_fd = fds[0]; /* kept: every map is an mmap of it */
	fds[0] = -1;
	v->next = g->views;
	g->views = v;
	*out = v;
out:
	for (int i = 0; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (rc < 0 && v) {
		v->next = NULL;
		if (v->mem)
			munmap(v->mem, v->mem_len);
		if (v->gnttab)
			munmap(v->gnttab, v->gnttab_len);
		if (v->pins)
			munmap(v->pins, v->pins_len);
		if (v->connpins)
			munmap(v->connpins, v->connpins_len);
		if (v->mem_fd >= 0)
			close(v->mem_fd);
		free(v);
	}
	return rc;
}

static inline bool view_dead(const struct shim_view *v)
{
	return __atomic_load_n(&v->pins->dead, __ATOMIC_ACQUIRE) != 0;
}

/* The live view of domid, attaching on first use. 0 or -errno (-ESRCH: no such domain). */
static int view_get(struct shim_gnt *g, uint32_t domid, struct shim_view **out)
{
	struct shim_view *v = g->last;
	int rc;

	if (v && v->domid == domid && !view_dead(v)) {
		*out = v;
		return 0;
	}
	for (v = g->views; v; v = v->next) {
		if (v->stale || v->domid != domid)
			continue;
		if (view_dead(v)) {
			view_mark_stale(g, v);
			break;
		}
		g->last = v;
		*out = v;
		return 0;
	}
	rc = view_attach(g, domid, &v);
	if (rc < 0)
		return rc;
	g->last = v;
	*out = v;
	return 0;
}

/* ------------------------------------------------------------------ pins */

static inline uint32_t *combo_word(struct grant_entry_v1 *ent)
{
	return (uint32_t *)ent; /* flags (low 16 bits) and domid, as Xen's grant_combo */
}

/* Clear the in-use flags we may have set if nothing holds the entry (pin lock held). */
static void drop_unpinned_flags(uint32_t pin, struct grant_entry_v1 *ent)
{
	if (SHIM_HV_PIN_WR_COUNT(pin) == 0)
		__atomic_fetch_and(&ent->flags, (uint16_t)~GTF_writing, __ATOMIC_SEQ_CST);
	if (pin == 0)
		__atomic_fetch_and(&ent->flags, (uint16_t)~GTF_reading, __ATOMIC_SEQ_CST);
}

/* Pin one ref (pin lock held). 0 or -errno; *frame: the frame to map. */
static int pin_one(struct shim_gnt *g, struct shim_view *v, uint32_t ref, bool writable,
		   uint32_t *frame)
{
	uint32_t kind = writable ? SHIM_HV_PIN_WR : SHIM_HV_PIN_RD;
	struct grant_entry_v1 *ent;
	uint32_t pin, f;
	unsigned retries = 0;

	if (ref >= v->grant_entries)
		return -EINVAL;
	ent = &v->gnttab[ref];
	pin = v->pin[ref];
	if (SHIM_HV_PIN_WR_COUNT(pin) >= SHIM_HV_PIN_MAX ||
	    SHIM_HV_PIN_RD_COUNT(pin) >= SHIM_HV_PIN_MAX)
		return -EINVAL;
	for (;;) {
		uint32_t old = __atomic_load_n(combo_word(ent), __ATOMIC_ACQUIRE);
		uint16_t flags = (uint16_t)old;
		uint32_t want = old | GTF_reading | (writable ? GTF_writing : 0);

		/* Re-checked on every attempt: the guest may be revoking right now. */
		if ((flags & GTF_type_mask) != GTF_permit_access || (old >> 16) != g->self_domid)
			return -EINVAL;
		if (writable && (flags & GTF_readonly))
			return -EPERM;
		if (want == old ||
		    __atomic_compare_exchange_n(combo_word(ent), &old, want, false,
						__ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE))
			break;
		if (++retries == 5) {
			drop_unpinned_flags(pin, ent);
			return -EINVAL; /* Xen: "shared grant entry is unstable" */
		}
	}
	f = __atomic_load_n(&ent->frame, __ATOMIC_ACQUIRE);
	if (f >= v->mem_pages) {
		drop_unpinned_flags(pin, ent);
		return -EINVAL;
	}
	/* Domain-wide pin first, ours second: a crash in between leaks, never frees. */
	__atomic_store_n(&v->pin[ref], pin + kind, __ATOMIC_RELAXED);
	__atomic_store_n(&v->connpins[ref], v->connpins[ref] + kind, __ATOMIC_RELAXED);
	*frame = f;
	return 0;
}

static void unpin_one(struct shim_view *v, uint32_t ref, bool writable)
{
	uint32_t kind = writable ? SHIM_HV_PIN_WR : SHIM_HV_PIN_RD;
	uint32_t mine = v->connpins[ref];

	if (writable ? SHIM_HV_PIN_WR_COUNT(mine) : SHIM_HV_PIN_RD_COUNT(mine))
		__atomic_store_n(&v->connpins[ref], mine - kind, __ATOMIC_RELAXED);
	shim_hv_unpin(&v->pin[ref], &v->gnttab[ref], kind);
}

/* ------------------------------------------------------------------ grant ops */

static int shim_gnt_open(struct hv_gnt **out)
{
	const char *rundir;
	struct shim_gnt *g;
	int rc;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->base.ops = &hv_shim_ops;
	rc = shim_env(&rundir, &g->self_domid);
	if (rc == 0)
		rc = g->sock = shim_hv_connect(rundir);
	if (rc < 0) {
		free(g);
		return rc;
	}
	*out = &g->base;
	return 0;
}

/* A worker's handles after its privilege drop: each is a connection cloned from the
 * one it opened as root (hv.sock accepts root only). Device threads may clone at the
 * same time; the shared socket takes one call at a time. */
static pthread_mutex_t clone_lock = PTHREAD_MUTEX_INITIALIZER;

static int shim_gnt_share(struct hv_gnt *shared_base, struct hv_gnt **out)
{
	struct shim_gnt *shared = (struct shim_gnt *)shared_base, *g;
	struct shim_hv_req req = { .op = SHIM_HV_CONN_CLONE, .self_domid = shared->self_domid };
	struct shim_hv_rsp rsp;
	int fd, rc;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->base.ops = &hv_shim_ops;
	g->self_domid = shared->self_domid;
	pthread_mutex_lock(&clone_lock);
	rc = shim_hv_call(shared->sock, &req, &rsp, &fd, 1);
	pthread_mutex_unlock(&clone_lock);
	if (rc < 0) {
		free(g);
		return rc;
	}
	g->sock = fd;
	*out = &g->base;
	return 0;
}

static unsigned map_bucket(const void *addr)
{
	return (unsigned)(((uintptr_t)addr / HV_PAGE_SIZE) % SHIM_GNT_MAP_BUCKETS);
}

static void unmap_and_free(struct shim_gnt *g, struct shim_map *m)
{
	struct shim_view *v = m->view;

	munmap(m->addr, (size_t)m->count * HV_PAGE_SIZE);
	if (shim_hv_pins_lock(v->pins) == 0) {
		for (uint32_t i = 0; i < m->count; i++)
			unpin_one(v, m->refs[i], m->writable);
		shim_hv_pins_unlock(v->pins);
	}
	g->mapped_pages -= m->count;
	v->nr_maps--;
	if (v->stale && v->nr_maps == 0)
		view_free(g, v);
	free(m);
}

static void shim_gnt_close(struct hv_gnt *base)
{
	struct shim_gnt *g = (struct shim_gnt *)base;

	for (unsigned b = 0; b < SHIM_GNT_MAP_BUCKETS; b++) {
		while (g->maps[b]) {
			struct shim_map *m = g->maps[b];

			g->maps[b] = m->next;
			unmap_and_free(g, m);
		}
	}
	while (g->views)
		view_free(g, g->views);
	close(g->sock); /* the daemon drops whatever pins are left */
	free(g);
}

/* mmap frames[0..count) of v's memory at addr, coalescing runs of consecutive frames. */
static int map_frames(struct shim_view *v, uint8_t *addr, uint32_t count,
		      const uint32_t *frames, int prot)
{
	uint32_t i = 0;

	while (i < count) {
		uint32_t run = 1;

		while (i + run < count && frames[i + run] == frames[i] + run)
			run++;
		if (mmap(addr + (size_t)i * HV_PAGE_SIZE, (size_t)run * HV_PAGE_SIZE, prot,
			 MAP_SHARED | MAP_FIXED, v->mem_fd,
			 (off_t)frames[i] * HV_PAGE_SIZE) == MAP_FAILED)
			return -errno;
		i += run;
	}
	return 0;
}

static void *shim_gnt_map(struct hv_gnt *base, uint32_t domid, uint32_t count,
			  const uint32_t *refs, bool writable)
{
	struct shim_gnt *g = (struct shim_gnt *)base;
	struct shim_view *v;
	struct shim_map *m = NULL;
	uint32_t *frames = NULL;
	uint32_t pinned = 0;
	void *addr = MAP_FAILED;
	int rc;

	if (count == 0 || count > SHIM_GNT_MAX_MAPPED - g->mapped_pages) {
		rc = count == 0 ? -EINVAL : -ENOSPC;
		goto fail;
	}
	rc = view_get(g, domid, &v);
	if (rc < 0)
		goto fail;
	m = malloc(sizeof(*m) + sizeof(uint32_t) * count);
	frames = malloc(sizeof(uint32_t) * count);
	if (!m || !frames) {
		rc = -ENOMEM;
		goto fail;
	}
	memcpy(m->refs, refs, sizeof(uint32_t) * count);
	rc = shim_hv_pins_lock(v->pins);
	if (rc < 0)
		goto fail;
	for (; pinned < count; pinned++) {
		rc = pin_one(g, v, m->refs[pinned], writable, &frames[pinned]);
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		while (pinned)
			unpin_one(v, m->refs[--pinned], writable);
	}
	shim_hv_pins_unlock(v->pins);
	if (rc < 0)
		goto fail;

	/* Reserve the whole range, then put each granted frame in it: contiguous VA. */
	addr = mmap(NULL, (size_t)count * HV_PAGE_SIZE, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (addr == MAP_FAILED) {
		rc = -errno;
		goto fail_unpin;
	}
	rc = map_frames(v, addr, count, frames, writable ? PROT_READ | PROT_WRITE : PROT_READ);
	if (rc < 0)
		goto fail_unpin;
	free(frames);
	m->addr = addr;
	m->count = count;
	m->writable = writable;
	m->view = v;
	v->nr_maps++;
	g->mapped_pages += count;
	m->next = g->maps[map_bucket(addr)];
	g->maps[map_bucket(addr)] = m;
	return addr;

fail_unpin:
	if (addr != MAP_FAILED)
		munmap(addr, (size_t)count * HV_PAGE_SIZE);
	if (shim_hv_pins_lock(v->pins) == 0) {
		for (uint32_t i = 0; i < count; i++)
			unpin_one(v, m->refs[i], writable);
		shim_hv_pins_unlock(v->pins);
	}
fail:
	free(frames);
	free(m);
	errno = -rc;
	return NULL;
}

static int shim_gnt_unmap(struct hv_gnt *base, void *addr, uint32_t count)
{
	struct shim_gnt *g = (struct shim_gnt *)base;
	struct shim_map **pp = &g->maps[map_bucket(addr)];

	for (; *pp; pp = &(*pp)->next) {
		struct shim_map *m = *pp;

		if (m->addr != addr)
			continue;
		/* As gntdev: no partial unmaps. */
		if (m->count != count)
			return -EINVAL;
		*pp = m->next;
		unmap_and_free(g, m);
		return 0;
	}
	return -EINVAL;
}

/*
 * Resolve one foreign side of a copy to a pointer, as Xen's acquire_grant_for_copy:
 * GNTST_bad_gntref for a ref past the table, GNTST_general_error for an entry that
 * doesn't permit access to us or a write to a read-only grant, GNTST_bad_page for a
 * frame outside guest memory. Copies don't pin: a guest that revokes a grant under an
 * in-flight copy only corrupts its own page.
 */
static inline int16_t foreign_ptr(const struct shim_gnt *g, const struct shim_view *v,
				  uint32_t ref, bool write, uint8_t **page)
{
	const struct grant_entry_v1 *ent;
	uint32_t combo, frame;

	if (ref >= v->grant_entries)
		return HV_GNTST_BAD_GNTREF;
	ent = &v->gnttab[ref];
	combo = __atomic_load_n((const uint32_t *)ent, __ATOMIC_ACQUIRE);
	if ((combo & GTF_type_mask) != GTF_permit_access || (combo >> 16) != g->self_domid)
		return HV_GNTST_GENERAL_ERROR;
	if (write && (combo & GTF_readonly))
		return HV_GNTST_GENERAL_ERROR;
	frame = __atomic_load_n(&ent->frame, __ATOMIC_RELAXED);
	if (frame >= v->mem_pages)
		return HV_GNTST_BAD_PAGE;
	*page = v->mem + (size_t)frame * HV_PAGE_SIZE;
	return HV_GNTST_OKAY;
}

static int16_t copy_one(struct shim_gnt *g, struct hv_copy_seg *s)
{
	struct shim_view *sv = NULL, *dv = NULL;
	uint8_t *src = s->source.virt, *dst = s->dest.virt;
	int16_t st;

	/* Same order of checks as Xen's gnttab_copy_one: domains, source, dest, bounds. */
	if ((s->flags & HV_COPY_SOURCE_GREF) && view_get(g, s->source.foreign.domid, &sv) < 0)
		return HV_GNTST_BAD_DOMAIN;
	if ((s->flags & HV_COPY_DEST_GREF) && view_get(g, s->dest.foreign.domid, &dv) < 0)
		return HV_GNTST_BAD_DOMAIN;
	if (sv) {
		st = foreign_ptr(g, sv, s->source.foreign.ref, false, &src);
		if (st != HV_GNTST_OKAY)
			return st;
		if ((uint32_t)s->source.foreign.offset + s->len > HV_PAGE_SIZE)
			return HV_GNTST_BAD_COPY_ARG;
		src += s->source.foreign.offset;
	}
	if (dv) {
		st = foreign_ptr(g, dv, s->dest.foreign.ref, true, &dst);
		if (st != HV_GNTST_OKAY)
			return st;
		if ((uint32_t)s->dest.foreign.offset + s->len > HV_PAGE_SIZE)
			return HV_GNTST_BAD_COPY_ARG;
		dst += s->dest.foreign.offset;
	}
	memcpy(dst, src, s->len);
	return HV_GNTST_OKAY;
}

static int shim_gnt_copy(struct hv_gnt *base, uint32_t count, struct hv_copy_seg *segs)
{
	struct shim_gnt *g = (struct shim_gnt *)base;

	for (uint32_t i = 0; i < count; i++)
		segs[i].status = copy_one(g, &segs[i]);
	return 0;
}

/* ------------------------------------------------------------------ event channels */

static int shim_evt_open(struct hv_evt **out)
{
	const char *rundir;
	struct shim_evt *e;
	int rc;

	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->base.ops = &hv_shim_ops;
	e->sock = -1;
	rc = shim_evq_init(&e->q);
	/* hv.h promises -EAGAIN when nothing is pending: like hv_xen.c with /dev/xen/evtchn,
	 * the handle (which blocks by default, as Xen's device does) is made non-blocking. */
	if (rc == 0)
		rc = shim_evq_set_nonblock(&e->q);
	if (rc == 0)
		rc = shim_env(&rundir, &e->self_domid);
	if (rc == 0)
		rc = e->sock = shim_hv_connect(rundir);
	if (rc < 0) {
		shim_evq_deinit(&e->q);
		free(e);
		return rc;
	}
	*out = &e->base;
	return 0;
}

static void shim_evt_close(struct hv_evt *base)
{
	struct shim_evt *e = (struct shim_evt *)base;

	shim_evq_deinit(&e->q);
	close(e->sock); /* the daemon returns every channel we bound to unbound */
	free(e);
}

static int shim_evt_fd(struct hv_evt *base)
{
	return ((struct shim_evt *)base)->q.epfd;
}

static int shim_evt_bind_interdomain(struct hv_evt *base, uint32_t domid, uint32_t remote_port)
{
	struct shim_evt *e = (struct shim_evt *)base;
	struct shim_hv_req req = { .op = SHIM_HV_EVTCHN_BIND, .self_domid = e->self_domid,
				   .domid = domid, .arg0 = remote_port };
	struct shim_hv_rsp rsp;
	int fds[2];
	int port, rc;

	port = shim_evq_free_port(&e->q);
	if (port < 0)
		return port;
	rc = shim_hv_call(e->sock, &req, &rsp, fds, 2);
	if (rc < 0)
		return rc;
	rc = shim_evq_add(&e->q, (unsigned)port, fds[0], fds[1]);
	if (rc < 0) {
		struct shim_hv_req un = { .op = SHIM_HV_EVTCHN_UNBIND, .self_domid = e->self_domid,
					  .domid = domid, .arg0 = remote_port,
					  .serial = rsp.serial };

		shim_hv_call(e->sock, &un, &rsp, NULL, 0);
		return rc;
	}
	e->bind[port].domid = domid;
	e->bind[port].remote_port = remote_port;
	e->bind[port].serial = rsp.serial;
	return port;
}

static int shim_evt_unbind(struct hv_evt *base, uint32_t port)
{
	struct shim_evt *e = (struct shim_evt *)base;
	struct shim_hv_req req = { .op = SHIM_HV_EVTCHN_UNBIND, .self_domid = e->self_domid };
	struct shim_hv_rsp rsp;

	if (!shim_evq_valid(&e->q, port))
		return -EINVAL;
	req.domid = e->bind[port].domid;
	req.arg0 = e->bind[port].remote_port;
	req.serial = e->bind[port].serial;
	shim_evq_remove(&e->q, port);
	/* The guest may have closed its end or died meanwhile (the daemon then answers
	 * -EINVAL/-ESRCH): our end is gone either way, which is all unbind promises. */
	shim_hv_call(e->sock, &req, &rsp, NULL, 0);
	return 0;
}

static int shim_evt_restrict(struct hv_evt *base, uint32_t domid)
{
	struct shim_evt *e = (struct shim_evt *)base;
	struct shim_hv_req req = { .op = SHIM_HV_EVTCHN_RESTRICT, .self_domid = e->self_domid,
				   .domid = domid };
	struct shim_hv_rsp rsp;

	return shim_hv_call(e->sock, &req, &rsp, NULL, 0);
}

static int shim_evt_notify(struct hv_evt *base, uint32_t port)
{
	return shim_evq_notify(&((struct shim_evt *)base)->q, port);
}

static int shim_evt_pending(struct hv_evt *base)
{
	return shim_evq_pending(&((struct shim_evt *)base)->q);
}

static int shim_evt_unmask(struct hv_evt *base, uint32_t port)
{
	return shim_evq_unmask(&((struct shim_evt *)base)->q, port);
}

const struct hv_ops hv_shim_ops = {
	.name = "shim",
	.gnt_open = shim_gnt_open,
	.gnt_close = shim_gnt_close,
	.gnt_map = shim_gnt_map,
	.gnt_unmap = shim_gnt_unmap,
	.gnt_copy = shim_gnt_copy,
	.evt_open = shim_evt_open,
	.evt_close = shim_evt_close,
	.evt_fd = shim_evt_fd,
	.evt_bind_interdomain = shim_evt_bind_interdomain,
	.evt_unbind = shim_evt_unbind,
	.evt_notify = shim_evt_notify,
	.evt_pending = shim_evt_pending,
	.evt_unmask = shim_evt_unmask,
	.evt_restrict = shim_evt_restrict,
	.gnt_share = shim_gnt_share,
};
