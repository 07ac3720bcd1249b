/*
 * xs_store — the shim xenstored's node database: a flat map from absolute path to node
 * (value, permissions, NUL-separated child names, generation), like C xenstored's TDB.
 * Pure data structure, no I/O; the request layer (xs_ops.c) keeps the tree consistent.
 */
#ifndef SPLITPV_SHIM_XS_STORE_H
#define SPLITPV_SHIM_XS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Permission bits (same values as libxenstore's XS_PERM_*). */
#define SHIM_XS_PERM_NONE 0u
#define SHIM_XS_PERM_READ 1u
#define SHIM_XS_PERM_WRITE 2u
#define SHIM_XS_PERM_OWNER 8u

struct shim_xs_perm {
	uint32_t id;   /* domid; entry 0 is the owner, its bits are the default */
	uint32_t bits; /* SHIM_XS_PERM_READ | SHIM_XS_PERM_WRITE */
};

struct shim_xs_node {
	struct shim_xs_node *hnext; /* hash chain */
	char *path;                 /* absolute, canonical */
	uint64_t gen;               /* store generation of the last change (0: never stored) */
	char *value;
	uint32_t vlen;
	struct shim_xs_perm *perms; /* nperms >= 1 */
	uint32_t nperms;
	char *children; /* "a\0b\0", insertion order */
	uint32_t clen;
	/* Transaction overlays only: */
	uint64_t base_gen; /* generation in the store at first access (0: absent) */
	bool present;      /* the node exists in the transaction's view */
	bool modified;     /* written/removed in the transaction (fields above valid) */
};

struct shim_xs_table {
	struct shim_xs_node **bucket;
	size_t nbucket; /* power of two */
	size_t count;
};

/* One per owner domid that owns at least one node (quota accounting). */
struct shim_xs_owner {
	unsigned int domid;
	unsigned int nodes;
};

struct shim_xs_store {
	struct shim_xs_table nodes;
	uint64_t gen; /* last generation handed out */
	struct shim_xs_owner *owners;
	size_t nowners, owners_cap;
};

/* ---- nodes: malloc'd, owned by whoever holds them; free with shim_xs_node_free ---- */

/* New node with the given path, empty value/children, a copy of perms. NULL on ENOMEM. */
struct shim_xs_node *shim_xs_node_new(const char *path, const struct shim_xs_perm *perms,
				      uint32_t nperms);
/* Deep copy (hnext cleared). NULL on ENOMEM. */
struct shim_xs_node *shim_xs_node_dup(const struct shim_xs_node *n);
void shim_xs_node_free(struct shim_xs_node *n);
/* Replace value / perms. 0 or -ENOMEM (node unchanged on failure). */
int shim_xs_node_set_value(struct shim_xs_node *n, const void *val, uint32_t len);
int shim_xs_node_set_perms(struct shim_xs_node *n, const struct shim_xs_perm *p, uint32_t np);
/* Append child name / remove it. 0, -ENOMEM, -ENOENT (remove of an absent name). */
int shim_xs_node_add_child(struct shim_xs_node *n, const char *name);
int shim_xs_node_del_child(struct shim_xs_node *n, const char *name);
bool shim_xs_node_has_child(const struct shim_xs_node *n, const char *name);

/* ---- table: a chained hash map path -> node, owning its nodes ---- */
int shim_xs_table_init(struct shim_xs_table *t);
/* Frees every node. Safe on a zeroed table and twice. */
void shim_xs_table_deinit(struct shim_xs_table *t);
struct shim_xs_node *shim_xs_table_get(const struct shim_xs_table *t, const char *path);
/* Insert n (takes ownership); returns the node it replaced (caller frees) or NULL.
 * Never fails: the table grows best-effort. */
struct shim_xs_node *shim_xs_table_put(struct shim_xs_table *t, struct shim_xs_node *n);
/* Unlink and return (caller frees), or NULL. */
struct shim_xs_node *shim_xs_table_take(struct shim_xs_table *t, const char *path);
/* Iterate: *it starts at 0; returns NULL at the end. No changes while iterating. */
struct shim_xs_node *shim_xs_table_next(const struct shim_xs_table *t, size_t *bucket,
					struct shim_xs_node **cursor);

/* ---- store: the committed tree ---- */
int shim_xs_store_init(struct shim_xs_store *s);
void shim_xs_store_deinit(struct shim_xs_store *s);
const struct shim_xs_node *shim_xs_store_get(const struct shim_xs_store *s, const char *path);
/* Store n (takes ownership, even on failure), stamping a new generation and moving
 * the node count from the old owner to the new one. 0 or -ENOMEM. */
int shim_xs_store_put(struct shim_xs_store *s, struct shim_xs_node *n);
/* Remove one node (not its children). 0 or -ENOENT. */
int shim_xs_store_del(struct shim_xs_store *s, const char *path);
/* Nodes owned by domid. */
unsigned int shim_xs_store_owned(const struct shim_xs_store *s, unsigned int domid);

#endif
