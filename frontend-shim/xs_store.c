/*
 * xs_store — node database of the shim xenstored (see xs_store.h): chained hash map of
 * path -> node plus per-owner node counts for quotas.
 */
#include "frontend-shim/xs_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct shim_xs_node *shim_xs_node_new(const char *path, const struct shim_xs_perm *perms,
				      uint32_t nperms)
{
	struct shim_xs_node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->path = strdup(path);
	n->perms = malloc(sizeof(*perms) * (nperms ? nperms : 1));
	if (!n->path || !n->perms) {
		shim_xs_node_free(n);
		return NULL;
	}
	if (nperms)
		memcpy(n->perms, perms, sizeof(*perms) * nperms);
	else
		n->perms[0] = (struct shim_xs_perm){ 0, SHIM_XS_PERM_NONE };
	n->nperms = nperms ? nperms : 1;
	n->present = true;
	return n;
}

static void *memdup0(const void *p, size_t len)
{
	void *r = malloc(len ? len : 1);

	if (r && len)
		memcpy(r, p, len);
	return r;
}

struct shim_xs_node *shim_xs_node_dup(const struct shim_xs_node *n)
{
	struct shim_xs_node *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	*d = *n;
	d->hnext = NULL;
	d->path = strdup(n->path);
	d->value = n->vlen ? memdup0(n->value, n->vlen) : NULL;
	d->children = n->clen ? memdup0(n->children, n->clen) : NULL;
	d->perms = memdup0(n->perms, sizeof(*n->perms) * n->nperms);
	if (!d->path || (n->vlen && !d->value) || (n->clen && !d->children) || !d->perms) {
		shim_xs_node_free(d);
		return NULL;
	}
	return d;
}

void shim_xs_node_free(struct shim_xs_node *n)
{
	if (!n)
		return;
	free(n->path);
	free(n->value);
	free(n->perms);
	free(n->children);
	free(n);
}

int shim_xs_node_set_value(struct shim_xs_node *n, const void *val, uint32_t len)
{
	char *v = NULL;

	if (len) {
		v = memdup0(val, len);
		if (!v)
			return -ENOMEM;
	}
	free(n->value);
	n->value = v;
	n->vlen = len;
	return 0;
}

int shim_xs_node_set_perms(struct shim_xs_node *n, const struct shim_xs_perm *p, uint32_t np)
{
	struct shim_xs_perm *c;

	if (!np)
		return -EINVAL;
	c = memdup0(p, sizeof(*p) * np);
	if (!c)
		return -ENOMEM;
	free(n->perms);
	n->perms = c;
	n->nperms = np;
	return 0;
}

static long find_child(const struct shim_xs_node *n, const char *name)
{
	uint32_t off = 0;

	while (off < n->clen) {
		size_t l = strlen(n->children + off);

		if (strcmp(n->children + off, name) == 0)
			return off;
		off += l + 1;
	}
	return -1;
}

bool shim_xs_node_has_child(const struct shim_xs_node *n, const char *name)
{
	return find_child(n, name) >= 0;
}

int shim_xs_node_add_child(struct shim_xs_node *n, const char *name)
{
	size_t l = strlen(name) + 1;
	char *c;

	if (find_child(n, name) >= 0)
		return 0;
	c = realloc(n->children, n->clen + l);
	if (!c)
		return -ENOMEM;
	memcpy(c + n->clen, name, l);
	n->children = c;
	n->clen += l;
	return 0;
}

int shim_xs_node_del_child(struct shim_xs_node *n, const char *name)
{
	long off = find_child(n, name);
	size_t l;

	if (off < 0)
		return -ENOENT;
	l = strlen(name) + 1;
	memmove(n->children + off, n->children + off + l, n->clen - off - l);
	n->clen -= l;
	return 0;
}

/* ---- table ---- */

static size_t hash_path(const char *s)
{
	size_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

int shim_xs_table_init(struct shim_xs_table *t)
{
	t->nbucket = 64;
	t->count = 0;
	t->bucket = calloc(t->nbucket, sizeof(*t->bucket));
	return t->bucket ? 0 : -ENOMEM;
}

void shim_xs_table_deinit(struct shim_xs_table *t)
{
	for (size_t i = 0; t->bucket && i < t->nbucket; i++) {
		struct shim_xs_node *n = t->bucket[i];

		while (n) {
			struct shim_xs_node *next = n->hnext;

			shim_xs_node_free(n);
			n = next;
		}
	}
	free(t->bucket);
	t->bucket = NULL;
	t->nbucket = t->count = 0;
}

struct shim_xs_node *shim_xs_table_get(const struct shim_xs_table *t, const char *path)
{
	struct shim_xs_node *n;

	if (!t->nbucket)
		return NULL;
	for (n = t->bucket[hash_path(path) & (t->nbucket - 1)]; n; n = n->hnext)
		if (strcmp(n->path, path) == 0)
			return n;
	return NULL;
}

static void table_grow(struct shim_xs_table *t)
{
	size_t nb = t->nbucket * 2;
	struct shim_xs_node **b = calloc(nb, sizeof(*b));

	if (!b) /* keep the longer chains: still correct */
		return;
	for (size_t i = 0; i < t->nbucket; i++) {
		struct shim_xs_node *n = t->bucket[i];

		while (n) {
			struct shim_xs_node *next = n->hnext;
			size_t h = hash_path(n->path) & (nb - 1);

			n->hnext = b[h];
			b[h] = n;
			n = next;
		}
	}
	free(t->bucket);
	t->bucket = b;
	t->nbucket = nb;
}

struct shim_xs_node *shim_xs_table_put(struct shim_xs_table *t, struct shim_xs_node *n)
{
	struct shim_xs_node *old = shim_xs_table_take(t, n->path);
	size_t h;

	if (t->count >= t->nbucket)
		table_grow(t);
	h = hash_path(n->path) & (t->nbucket - 1);
	n->hnext = t->bucket[h];
	t->bucket[h] = n;
	t->count++;
	return old;
}

struct shim_xs_node *shim_xs_table_take(struct shim_xs_table *t, const char *path)
{
	struct shim_xs_node **pp;

	if (!t->nbucket)
		return NULL;
	for (pp = &t->bucket[hash_path(path) & (t->nbucket - 1)]; *pp; pp = &(*pp)->hnext) {
		struct shim_xs_node *n = *pp;

		if (strcmp(n->path, path) == 0) {
			*pp = n->hnext;
			n->hnext = NULL;
			t->count--;
			return n;
		}
	}
	return NULL;
}

struct shim_xs_node *shim_xs_table_next(const struct shim_xs_table *t, size_t *bucket,
					struct shim_xs_node **cursor)
{
	if (*cursor && (*cursor)->hnext) {
		*cursor = (*cursor)->hnext;
		return *cursor;
	}
	if (*cursor)
		(*bucket)++;
	for (; *bucket < t->nbucket; (*bucket)++) {
		if (t->bucket[*bucket]) {
			*cursor = t->bucket[*bucket];
			return *cursor;
		}
	}
	*cursor = NULL;
	return NULL;
}

/* ---- store ---- */

int shim_xs_store_init(struct shim_xs_store *s)
{
	memset(s, 0, sizeof(*s));
	return shim_xs_table_init(&s->nodes);
}

void shim_xs_store_deinit(struct shim_xs_store *s)
{
	shim_xs_table_deinit(&s->nodes);
	free(s->owners);
	s->owners = NULL;
	s->nowners = s->owners_cap = 0;
}

const struct shim_xs_node *shim_xs_store_get(const struct shim_xs_store *s, const char *path)
{
	return shim_xs_table_get(&s->nodes, path);
}

static struct shim_xs_owner *owner_find(const struct shim_xs_store *s, unsigned int domid)
{
	for (size_t i = 0; i < s->nowners; i++)
		if (s->owners[i].domid == domid)
			return &s->owners[i];
	return NULL;
}

static int owner_add(struct shim_xs_store *s, unsigned int domid, int delta)
{
	struct shim_xs_owner *o = owner_find(s, domid);

	if (!o) {
		if (delta < 0)
			return 0;
		if (s->nowners == s->owners_cap) {
			size_t cap = s->owners_cap ? s->owners_cap * 2 : 8;
			struct shim_xs_owner *no = realloc(s->owners, cap * sizeof(*no));

			if (!no)
				return -ENOMEM;
			s->owners = no;
			s->owners_cap = cap;
		}
		o = &s->owners[s->nowners++];
		o->domid = domid;
		o->nodes = 0;
	}
	if (delta < 0 && o->nodes < (unsigned int)-delta)
		o->nodes = 0;
	else
		o->nodes += delta;
	return 0;
}

int shim_xs_store_put(struct shim_xs_store *s, struct shim_xs_node *n)
{
	struct shim_xs_node *old;

	/* Reserve the owner slot first so that nothing can fail after the insert. */
	if (owner_add(s, n->perms[0].id, 0) < 0) {
		shim_xs_node_free(n);
		return -ENOMEM;
	}
	n->gen = ++s->gen;
	n->present = true;
	n->modified = false;
	n->base_gen = 0;
	old = shim_xs_table_put(&s->nodes, n);
	if (old)
		owner_add(s, old->perms[0].id, -1);
	owner_add(s, n->perms[0].id, 1);
	shim_xs_node_free(old);
	return 0;
}

int shim_xs_store_del(struct shim_xs_store *s, const char *path)
{
	struct shim_xs_node *old = shim_xs_table_take(&s->nodes, path);

	if (!old)
		return -ENOENT;
	owner_add(s, old->perms[0].id, -1);
	shim_xs_node_free(old);
	s->gen++;
	return 0;
}

unsigned int shim_xs_store_owned(const struct shim_xs_store *s, unsigned int domid)
{
	const struct shim_xs_owner *o = owner_find(s, domid);

	return o ? o->nodes : 0;
}
