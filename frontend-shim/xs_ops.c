/*
 * xs_ops — the shim xenstored's request handling: every xs_wire.h message, node
 * permissions, watches and transactions, with C xenstored 4.17's semantics and error
 * strings. Connection I/O is in xenstored.c; the node map in xs_store.c.
 */
#include "frontend-shim/xs_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_BUF (XENSTORE_ABS_PATH_MAX + 64)
/* Stored record header as C xenstored lays it out (generation, counts): node-size quota. */
#define RECORD_HDR 24u

struct req {
	struct shim_xs *xs;
	struct shim_xs_conn *c;
	struct shim_xs_tx *tx; /* NULL: the committed store */
	const struct xsd_sockmsg *hdr;
	bool priv;
};

static const struct shim_xs_perm default_special = { 0, SHIM_XS_PERM_NONE };

/* ---- small helpers ---- */

static bool parse_domid(const char *s, unsigned int *out)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 5)
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (i == 0 || v > 65535)
		return false;
	*out = (unsigned int)v;
	return true;
}

/* The payload holds exactly one string, NUL-terminated at its last byte. */
static const char *onearg(const char *p, uint32_t len)
{
	if (!len || memchr(p, 0, len) != p + len - 1)
		return NULL;
	return p;
}

static unsigned int count_strings(const char *p, uint32_t len)
{
	unsigned int n = 0;

	for (uint32_t i = 0; i < len; i++)
		n += p[i] == '\0';
	return n;
}

/* Split a payload of exactly n NUL-terminated strings. */
static bool split_strings(const char *p, uint32_t len, const char **v, unsigned int n)
{
	uint32_t off = 0;

	if (!len || p[len - 1] != '\0' || count_strings(p, len) != n)
		return false;
	for (unsigned int i = 0; i < n; i++) {
		v[i] = p + off;
		off += strlen(p + off) + 1;
	}
	return true;
}

static bool valid_chars(const char *s)
{
	static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				 "0123456789-/_@";

	return strspn(s, ok) == strlen(s);
}

/* C xenstored's is_valid_nodename, with the guest path-length quota (the part after a
 * /local/domain/<id>/ prefix must fit XENSTORE_REL_PATH_MAX). */
static bool valid_path(const struct req *r, const char *p)
{
	size_t len = strlen(p);

	if (p[0] != '/' || (len > 1 && p[len - 1] == '/') || strstr(p, "//"))
		return false;
	if (len > XENSTORE_ABS_PATH_MAX || !valid_chars(p))
		return false;
	if (!r->priv) {
		size_t off = 0;

		if (strncmp(p, "/local/domain/", 14) == 0) {
			const char *q = p + 14;

			while (*q >= '0' && *q <= '9')
				q++;
			if (q > p + 14 && *q == '/')
				off = (size_t)(q + 1 - p);
		}
		if (len - off > XENSTORE_REL_PATH_MAX)
			return false;
	}
	return true;
}

/* Relative paths live under the connection's home. */
static int canonicalize(const struct req *r, const char *in, char *out)
{
	int n;

	if (in[0] == '/' || in[0] == '@')
		n = snprintf(out, PATH_BUF, "%s", in);
	else
		n = snprintf(out, PATH_BUF, "/local/domain/%u/%s", r->c->domid, in);
	return (n < 0 || n >= PATH_BUF) ? -EINVAL : 0;
}

static void parent_of(const char *path, char *out)
{
	const char *slash = strrchr(path, '/');

	if (!slash || slash == path) {
		strcpy(out, "/");
		return;
	}
	memcpy(out, path, (size_t)(slash - path));
	out[slash - path] = '\0';
}

static const char *base_of(const char *path)
{
	return strrchr(path, '/') + 1;
}

static unsigned int perm_for(const struct shim_xs_conn *c, const struct shim_xs_perm *p,
			     uint32_t np)
{
	const unsigned int all = SHIM_XS_PERM_READ | SHIM_XS_PERM_WRITE | SHIM_XS_PERM_OWNER;
	struct shim_xs_dom *d;
	bool tgt = false;
	unsigned int target = 0;

	if (c->domid == 0)
		return all;
	d = shim_xs_dom_find(c->xs, c->domid);
	if (d && d->has_target) {
		tgt = true;
		target = d->target;
	}
	if (p[0].id == c->domid || (tgt && p[0].id == target))
		return all;
	for (uint32_t i = 1; i < np; i++)
		if (p[i].id == c->domid || (tgt && p[i].id == target))
			return p[i].bits & (SHIM_XS_PERM_READ | SHIM_XS_PERM_WRITE);
	return p[0].bits & (SHIM_XS_PERM_READ | SHIM_XS_PERM_WRITE);
}

static bool too_big(const struct req *r, const struct shim_xs_node *n)
{
	return !r->priv && RECORD_HDR + 8u * n->nperms + n->vlen + n->clen >=
				   SHIM_XS_QUOTA_NODE_SIZE;
}

static void reply(struct req *r, uint32_t type, const void *data, uint32_t len);

static int send_err(struct req *r, int err)
{
	static const char *const names[] = {
		[EINVAL] = "EINVAL", [EACCES] = "EACCES", [EEXIST] = "EEXIST",
		[EISDIR] = "EISDIR", [ENOENT] = "ENOENT", [ENOMEM] = "ENOMEM",
		[ENOSPC] = "ENOSPC", [EIO] = "EIO",	  [ENOTEMPTY] = "ENOTEMPTY",
		[ENOSYS] = "ENOSYS", [EROFS] = "EROFS",	  [EBUSY] = "EBUSY",
		[EAGAIN] = "EAGAIN", [EISCONN] = "EISCONN", [E2BIG] = "E2BIG",
		[EPERM] = "EPERM",
	};
	const char *s = NULL;

	if (err > 0 && (size_t)err < sizeof(names) / sizeof(names[0]))
		s = names[err];
	if (!s)
		s = "EINVAL"; /* untranslatable: as C xenstored */
	shim_xs_conn_queue(r->c, XS_ERROR, r->hdr->req_id, r->hdr->tx_id, s,
			   (uint32_t)strlen(s) + 1);
	return 0;
}

static void reply(struct req *r, uint32_t type, const void *data, uint32_t len)
{
	if (len > XENSTORE_PAYLOAD_MAX) {
		send_err(r, E2BIG);
		return;
	}
	shim_xs_conn_queue(r->c, type, r->hdr->req_id, r->hdr->tx_id, data, len);
}

static void ack(struct req *r)
{
	reply(r, r->hdr->type, "OK", 3);
}

/* ---- views: the committed store, or a transaction's overlay on it ---- */

/* Record the first access of path in the transaction. */
static struct shim_xs_node *tx_touch(struct req *r, const char *path, int *err)
{
	struct shim_xs_node *e = shim_xs_table_get(&r->tx->acc, path);
	const struct shim_xs_node *m;

	if (e)
		return e;
	if (!r->priv && r->tx->acc.count >= SHIM_XS_QUOTA_TX_NODES) {
		*err = ENOSPC;
		return NULL;
	}
	/* Snapshot the node at first access (as C xenstored): later reads in the
	 * transaction see this copy even if the store moves on (the commit then fails). */
	m = shim_xs_store_get(&r->xs->store, path);
	e = m ? shim_xs_node_dup(m) : shim_xs_node_new(path, &default_special, 1);
	if (!e) {
		r->tx->failed = true;
		*err = ENOMEM;
		return NULL;
	}
	e->base_gen = m ? m->gen : 0;
	e->present = m != NULL;
	e->modified = false;
	shim_xs_table_put(&r->tx->acc, e);
	return e;
}

/* The node at path in r's view, or NULL with *err (ENOENT, ENOSPC, ENOMEM). */
static const struct shim_xs_node *view_get(struct req *r, const char *path, int *err)
{
	*err = ENOENT;
	if (r->tx) {
		struct shim_xs_node *e = tx_touch(r, path, err);

		if (!e)
			return NULL;
		*err = ENOENT;
		return e->present ? e : NULL;
	}
	return shim_xs_store_get(&r->xs->store, path);
}

static void fire(struct shim_xs *xs, const char *path, bool exact,
		 const struct shim_xs_perm *perms, uint32_t np);

/* Store n (always consumed). */
static int view_put(struct req *r, struct shim_xs_node *n)
{
	struct shim_xs_node *e;
	int err = 0;

	if (!r->tx)
		return shim_xs_store_put(&r->xs->store, n);
	e = tx_touch(r, n->path, &err);
	if (!e) {
		shim_xs_node_free(n);
		return -err;
	}
	n->base_gen = e->base_gen;
	n->present = true;
	n->modified = true;
	shim_xs_node_free(shim_xs_table_put(&r->tx->acc, n));
	return 0;
}

static int view_del(struct req *r, const char *path)
{
	struct shim_xs_node *e;
	int err = 0;

	if (!r->tx)
		return shim_xs_store_del(&r->xs->store, path);
	e = tx_touch(r, path, &err);
	if (!e)
		return -err;
	e->present = false;
	e->modified = true;
	return 0;
}

/* A change to announce: now, or at commit for transactions. */
static void changed(struct req *r, const char *path, bool exact, const struct shim_xs_node *n)
{
	struct shim_xs_txevent *ev;

	if (!r->tx) {
		fire(r->xs, path, exact, n ? n->perms : NULL, n ? n->nperms : 0);
		return;
	}
	ev = calloc(1, sizeof(*ev));
	if (!ev || !(ev->path = strdup(path))) {
		free(ev);
		r->tx->failed = true;
		return;
	}
	ev->exact = exact;
	if (n) {
		ev->perms = malloc(sizeof(*n->perms) * n->nperms);
		if (ev->perms) {
			memcpy(ev->perms, n->perms, sizeof(*n->perms) * n->nperms);
			ev->nperms = n->nperms;
		}
	}
	*r->tx->ev_tail = ev;
	r->tx->ev_tail = &ev->next;
}

/* C xenstored's get_node: the node if the connection has perm on it; otherwise ENOENT
 * only when the nearest existing ancestor would grant perm, else EACCES (no leaking
 * whether a node exists). */
static const struct shim_xs_node *get_node(struct req *r, const char *path, unsigned int perm,
					   int *err)
{
	const struct shim_xs_node *n;
	char cur[PATH_BUF];

	if (!valid_path(r, path)) {
		*err = EINVAL;
		return NULL;
	}
	n = view_get(r, path, err);
	if (n) {
		if ((perm_for(r->c, n->perms, n->nperms) & perm) == perm)
			return n;
		*err = EACCES;
	}
	if (*err == ENOMEM || *err == ENOSPC)
		return NULL;
	strcpy(cur, path);
	while (strcmp(cur, "/") != 0) {
		const struct shim_xs_node *p;
		int perr;

		parent_of(cur, cur);
		p = view_get(r, cur, &perr);
		if (p) {
			if (!(perm_for(r->c, p->perms, p->nperms) & perm))
				*err = EACCES;
			return NULL;
		}
		if (perr != ENOENT) {
			*err = perr;
			return NULL;
		}
	}
	*err = EACCES;
	return NULL;
}

/* ---- node creation and removal ---- */

static int create_node(struct req *r, const char *path, const void *val, uint32_t vlen)
{
	char cur[PATH_BUF];
	const struct shim_xs_node *top;
	struct shim_xs_node *parent = NULL, *n = NULL;
	struct shim_xs_node probe;
	unsigned int levels = 0;
	int err = 0, ret;

	/* Find the nearest existing ancestor; everything below it is created. */
	strcpy(cur, path);
	for (;;) {
		levels++;
		parent_of(cur, cur);
		top = view_get(r, cur, &err);
		if (top)
			break;
		if (err != ENOENT || strcmp(cur, "/") == 0)
			return -(err == ENOENT ? EIO : err);
	}
	if (!r->priv) {
		unsigned int owned = shim_xs_store_owned(&r->xs->store, r->c->domid);
		int extra = r->tx ? r->tx->created : 0;

		if ((long)owned + extra + levels > (long)SHIM_XS_QUOTA_NODES)
			return -ENOSPC;
	}
	/* Check every record size before changing anything. */
	probe = *top;
	{
		/* the ancestor gains one child name; each new node holds one child or the value */
		const char *after = path + strlen(cur) + (strcmp(cur, "/") ? 1 : 0);
		size_t first = strcspn(after, "/");

		probe.clen = top->clen + (uint32_t)first + 1;
		if (too_big(r, &probe))
			return -ENOSPC;
		probe.nperms = top->nperms;
		probe.vlen = 0;
		for (const char *q = after; *q;) {
			size_t l = strcspn(q, "/");

			q += l;
			if (*q == '/') {
				q++;
				probe.clen = (uint32_t)strcspn(q, "/") + 1;
			} else {
				probe.clen = 0;
				probe.vlen = vlen;
			}
			if (too_big(r, &probe))
				return -ENOSPC;
		}
	}

	parent = shim_xs_node_dup(top);
	if (!parent)
		return -ENOMEM;
	/* Walk down from the ancestor creating one level at a time. */
	while (levels--) {
		char name[PATH_BUF];
		const char *end;
		size_t plen = strlen(parent->path);
		const char *rest = path + plen + (plen > 1 ? 1 : 0);

		end = strchr(rest, '/');
		if (!end)
			end = rest + strlen(rest);
		memcpy(name, path, (size_t)(end - path));
		name[end - path] = '\0';
		n = shim_xs_node_new(name, parent->perms, parent->nperms);
		if (!n || shim_xs_node_add_child(parent, base_of(name)) < 0) {
			ret = -ENOMEM;
			goto fail;
		}
		/* Inherit the parent's permissions; guests own what they create. */
		if (!r->priv)
			n->perms[0].id = r->c->domid;
		ret = view_put(r, parent);
		parent = n;
		n = NULL;
		if (ret < 0)
			goto fail;
		if (r->tx && !r->priv)
			r->tx->created++;
	}
	ret = shim_xs_node_set_value(parent, val, vlen);
	if (ret < 0)
		goto fail;
	return view_put(r, parent);
fail:
	if (r->tx)
		r->tx->failed = true;
	shim_xs_node_free(parent);
	shim_xs_node_free(n);
	return ret;
}

/* Remove path and everything below; events for descendants are exact, for the root
 * not (C xenstored's delnode_sub), children first. */
static int rm_tree(struct req *r, const char *path, bool exact)
{
	const struct shim_xs_node *n;
	char *kids;
	uint32_t klen;
	int err, ret = 0;

	n = view_get(r, path, &err);
	if (!n)
		return err == ENOENT ? 0 : -err;
	klen = n->clen;
	kids = malloc(klen ? klen : 1);
	if (!kids)
		return -ENOMEM;
	if (klen)
		memcpy(kids, n->children, klen);
	for (uint32_t off = 0; off < klen && ret == 0; off += (uint32_t)strlen(kids + off) + 1) {
		char *child;

		if (asprintf(&child, "%s/%s", path, kids + off) < 0) {
			ret = -ENOMEM;
			break;
		}
		ret = rm_tree(r, child, true);
		free(child);
	}
	free(kids);
	if (ret < 0)
		return ret;
	n = view_get(r, path, &err);
	if (!n)
		return 0;
	changed(r, path, exact, n);
	return view_del(r, path);
}

/* ---- watches ---- */

static bool is_child(const char *child, const char *parent)
{
	size_t len = strlen(parent);

	if (strcmp(parent, "/") == 0)
		return child[0] == '/';
	return strncmp(child, parent, len) == 0 && (child[len] == '/' || child[len] == '\0');
}

static bool watch_permitted(struct shim_xs_conn *c, const char *path,
			    const struct shim_xs_perm *perms, uint32_t np)
{
	const struct shim_xs_node *n;
	char par[PATH_BUF];

	if (c->domid == 0)
		return true;
	if (perms && (perm_for(c, perms, np) & SHIM_XS_PERM_READ))
		return true;
	n = shim_xs_store_get(&c->xs->store, path);
	if (!n)
		return false;
	if (perm_for(c, n->perms, n->nperms) & SHIM_XS_PERM_READ)
		return true;
	parent_of(path, par);
	n = shim_xs_store_get(&c->xs->store, par);
	return n && (perm_for(c, n->perms, n->nperms) & SHIM_XS_PERM_READ);
}

static void queue_event(struct shim_xs_conn *c, const struct shim_xs_watch *w, const char *path)
{
	const char *rel = path;
	size_t pl, tl;
	char *buf;

	if (w->relative) {
		rel = path + w->relative;
		if (*rel == '/')
			rel++;
	}
	pl = strlen(rel) + 1;
	tl = strlen(w->token) + 1;
	if (pl + tl > XENSTORE_PAYLOAD_MAX)
		return;
	buf = malloc(pl + tl);
	if (!buf)
		return;
	memcpy(buf, rel, pl);
	memcpy(buf + pl, w->token, tl);
	shim_xs_conn_queue(c, XS_WATCH_EVENT, 0, 0, buf, (uint32_t)(pl + tl));
	free(buf);
}

static int special_index(const char *name)
{
	if (strcmp(name, "@introduceDomain") == 0)
		return 0;
	if (strcmp(name, "@releaseDomain") == 0)
		return 1;
	return -1;
}

static void fire(struct shim_xs *xs, const char *path, bool exact,
		 const struct shim_xs_perm *perms, uint32_t np)
{
	bool special = path[0] == '@';
	int si = special ? special_index(path) : -1;

	for (struct shim_xs_conn *c = xs->conns; c; c = c->next) {
		bool checked = false, ok = false;

		if (c->closing)
			continue;
		for (struct shim_xs_watch *w = c->watches; w; w = w->next) {
			bool match = (exact || special) ? strcmp(path, w->node) == 0
							 : is_child(path, w->node);

			if (!match)
				continue;
			if (!checked) {
				checked = true;
				if (special)
					ok = c->domid == 0 ||
					     (si >= 0 && (perm_for(c, xs->special_perms[si],
								   xs->special_nperms[si]) &
							  SHIM_XS_PERM_READ));
				else
					ok = watch_permitted(c, path, perms, np);
			}
			if (!ok)
				break;
			queue_event(c, w, path);
			if (c->closing) /* output bound exceeded: watches are gone */
				break;
		}
	}
}

void shim_xs_ops_fire_special(struct shim_xs *xs, const char *name)
{
	fire(xs, name, false, NULL, 0);
}

static void free_watch(struct shim_xs_watch *w)
{
	free(w->node);
	free(w->token);
	free(w);
}

static void txevents_free(struct shim_xs_tx *tx)
{
	struct shim_xs_txevent *ev = tx->ev_head;

	while (ev) {
		struct shim_xs_txevent *next = ev->next;

		free(ev->path);
		free(ev->perms);
		free(ev);
		ev = next;
	}
	tx->ev_head = NULL;
	tx->ev_tail = &tx->ev_head;
}

static void tx_free(struct shim_xs_tx *tx)
{
	if (!tx)
		return;
	shim_xs_table_deinit(&tx->acc);
	txevents_free(tx);
	free(tx);
}

static void drop_watches(struct shim_xs_conn *c)
{
	struct shim_xs_dom *d = shim_xs_dom_find(c->xs, c->domid);

	while (c->watches) {
		struct shim_xs_watch *w = c->watches;

		c->watches = w->next;
		free_watch(w);
		if (d && d->nwatches)
			d->nwatches--;
	}
}

static void drop_transactions(struct shim_xs_conn *c)
{
	while (c->txs) {
		struct shim_xs_tx *tx = c->txs;

		c->txs = tx->next;
		tx_free(tx);
	}
	c->ntx = 0;
}

void shim_xs_ops_conn_cleanup(struct shim_xs_conn *c)
{
	drop_watches(c);
	drop_transactions(c);
}

/* ---- handlers: return 0 (reply queued) or -errno (error reply) ---- */

static int do_read(struct req *r, const char *p, uint32_t len)
{
	char path[PATH_BUF];
	const struct shim_xs_node *n;
	int err;

	if (!(p = onearg(p, len)) || canonicalize(r, p, path) < 0)
		return -EINVAL;
	n = get_node(r, path, SHIM_XS_PERM_READ, &err);
	if (!n)
		return -err;
	reply(r, XS_READ, n->value, n->vlen);
	return 0;
}

static int do_directory(struct req *r, const char *p, uint32_t len)
{
	char path[PATH_BUF];
	const struct shim_xs_node *n;
	int err;

	if (!(p = onearg(p, len)) || canonicalize(r, p, path) < 0)
		return -EINVAL;
	n = get_node(r, path, SHIM_XS_PERM_READ, &err);
	if (!n)
		return -err;
	reply(r, XS_DIRECTORY, n->children, n->clen);
	return 0;
}

static int do_directory_part(struct req *r, const char *p, uint32_t len)
{
	const char *v[2];
	char path[PATH_BUF], gen[24], *out;
	const struct shim_xs_node *n;
	unsigned long off = 0;
	uint32_t glen, chunk = 0, maxlen;
	int err;

	if (!split_strings(p, len, v, 2) || canonicalize(r, v[0], path) < 0)
		return -EINVAL;
	if (!v[1][0] || strspn(v[1], "0123456789") != strlen(v[1]) || strlen(v[1]) > 9)
		return -EINVAL;
	off = strtoul(v[1], NULL, 10);
	n = get_node(r, path, SHIM_XS_PERM_READ, &err);
	if (!n)
		return -err;
	glen = (uint32_t)snprintf(gen, sizeof(gen), "%llu", (unsigned long long)n->gen) + 1;
	out = malloc(XENSTORE_PAYLOAD_MAX + 1);
	if (!out)
		return -ENOMEM;
	memcpy(out, gen, glen);
	if (off >= n->clen) {
		out[glen] = '\0';
		reply(r, XS_DIRECTORY_PART, out, glen + 1);
		free(out);
		return 0;
	}
	/* Offsets must point at the start of a name. */
	if (off && n->children[off - 1] != '\0') {
		free(out);
		return -EINVAL;
	}
	maxlen = XENSTORE_PAYLOAD_MAX - glen - 1;
	while (off + chunk < n->clen) {
		uint32_t l = (uint32_t)strlen(n->children + off + chunk) + 1;

		if (chunk + l > maxlen)
			break;
		chunk += l;
	}
	memcpy(out + glen, n->children + off, chunk);
	if (off + chunk == n->clen)
		out[glen + chunk++] = '\0';
	reply(r, XS_DIRECTORY_PART, out, glen + chunk);
	free(out);
	return 0;
}

static int do_get_perms(struct req *r, const char *p, uint32_t len)
{
	static const char letters[] = "nrwb";
	char path[PATH_BUF], *out;
	const struct shim_xs_node *n;
	size_t used = 0;
	int err;

	if (!(p = onearg(p, len)) || canonicalize(r, p, path) < 0)
		return -EINVAL;
	n = get_node(r, path, SHIM_XS_PERM_READ, &err);
	if (!n)
		return -err;
	out = malloc((size_t)n->nperms * 16);
	if (!out)
		return -ENOMEM;
	for (uint32_t i = 0; i < n->nperms; i++)
		used += (size_t)sprintf(out + used, "%c%u", letters[n->perms[i].bits & 3],
					n->perms[i].id) + 1;
	reply(r, XS_GET_PERMS, out, (uint32_t)used);
	free(out);
	return 0;
}

static int do_write(struct req *r, const char *p, uint32_t len)
{
	char path[PATH_BUF];
	const struct shim_xs_node *n;
	struct shim_xs_node *w;
	const char *val;
	uint32_t vlen;
	int err, ret;

	if (!memchr(p, 0, len) || canonicalize(r, p, path) < 0)
		return -EINVAL;
	val = p + strlen(p) + 1;
	vlen = len - (uint32_t)(val - p);
	n = get_node(r, path, SHIM_XS_PERM_WRITE, &err);
	if (!n) {
		if (err != ENOENT)
			return -err;
		ret = create_node(r, path, val, vlen);
	} else {
		w = shim_xs_node_dup(n);
		if (!w)
			return -ENOMEM;
		if (shim_xs_node_set_value(w, val, vlen) < 0) {
			shim_xs_node_free(w);
			return -ENOMEM;
		}
		if (too_big(r, w)) {
			shim_xs_node_free(w);
			return -ENOSPC;
		}
		ret = view_put(r, w);
	}
	if (ret < 0)
		return ret;
	changed(r, path, false, NULL);
	ack(r);
	return 0;
}

static int do_mkdir(struct req *r, const char *p, uint32_t len)
{
	char path[PATH_BUF];
	const struct shim_xs_node *n;
	int err, ret;

	if (!(p = onearg(p, len)) || canonicalize(r, p, path) < 0)
		return -EINVAL;
	n = get_node(r, path, SHIM_XS_PERM_WRITE, &err);
	if (!n) {
		if (err != ENOENT)
			return -err;
		ret = create_node(r, path, NULL, 0);
		if (ret < 0)
			return ret;
		changed(r, path, false, NULL);
	}
	ack(r);
	return 0;
}

static int do_rm(struct req *r, const char *p, uint32_t len)
{
	char path[PATH_BUF], par[PATH_BUF];
	const struct shim_xs_node *n, *pn;
	struct shim_xs_node *pw;
	int err, ret;

	if (!(p = onearg(p, len)) || canonicalize(r, p, path) < 0)
		return -EINVAL;
	n = get_node(r, path, SHIM_XS_PERM_WRITE, &err);
	if (!n) {
		if (err != ENOENT)
			return -err;
		/* Already gone is fine if the parent exists. */
		parent_of(path, par);
		if (!view_get(r, par, &err))
			return -(err == ENOENT ? ENOENT : err);
		ack(r);
		return 0;
	}
	if (strcmp(path, "/") == 0)
		return -EINVAL;
	parent_of(path, par);
	pn = view_get(r, par, &err);
	if (!pn)
		return -(err == ENOENT ? EINVAL : err);
	pw = shim_xs_node_dup(pn);
	if (!pw)
		return -ENOMEM;
	ret = rm_tree(r, path, false);
	if (ret < 0) {
		shim_xs_node_free(pw);
		if (r->tx)
			r->tx->failed = true;
		return ret;
	}
	shim_xs_node_del_child(pw, base_of(path));
	ret = view_put(r, pw);
	if (ret < 0)
		return ret;
	ack(r);
	return 0;
}

/* "r5", "b0", ...: one letter n/r/w/b and a decimal domid, nothing else. */
static bool parse_perm(const char *s, struct shim_xs_perm *out)
{
	static const char letters[] = "nrwb";
	const char *l = s[0] ? strchr(letters, s[0]) : NULL;

	if (!l || !parse_domid(s + 1, &out->id))
		return false;
	out->bits = (uint32_t)(l - letters);
	return true;
}

static int do_set_perms(struct req *r, const char *p, uint32_t len)
{
	char path[PATH_BUF];
	struct shim_xs_perm *perms, *oldp = NULL;
	const struct shim_xs_node *n;
	struct shim_xs_node *w;
	unsigned int np;
	const char *s;
	uint32_t oldn;
	int err, ret, si;

	if (!len || p[len - 1] != '\0')
		return -EINVAL;
	np = count_strings(p, len);
	if (np < 2)
		return -EINVAL;
	np--;
	if (!r->priv && np > SHIM_XS_QUOTA_PERMS)
		return -ENOSPC;
	perms = calloc(np, sizeof(*perms));
	if (!perms)
		return -ENOMEM;
	s = p + strlen(p) + 1;
	for (unsigned int i = 0; i < np; i++, s += strlen(s) + 1) {
		if (!parse_perm(s, &perms[i])) {
			free(perms);
			return -EINVAL;
		}
	}
	if (p[0] == '@') {
		si = special_index(p);
		if (si < 0) {
			ret = -EINVAL;
		} else if (!(perm_for(r->c, r->xs->special_perms[si], r->xs->special_nperms[si]) &
			     SHIM_XS_PERM_WRITE)) {
			ret = -EACCES;
		} else {
			free(r->xs->special_perms[si]);
			r->xs->special_perms[si] = perms;
			r->xs->special_nperms[si] = np;
			ack(r);
			return 0;
		}
		free(perms);
		return ret;
	}
	if (canonicalize(r, p, path) < 0) {
		free(perms);
		return -EINVAL;
	}
	n = get_node(r, path, SHIM_XS_PERM_WRITE | SHIM_XS_PERM_OWNER, &err);
	if (!n) {
		free(perms);
		return -err;
	}
	if (!r->priv && perms[0].id != n->perms[0].id) { /* guests can't give nodes away */
		free(perms);
		return -EPERM;
	}
	w = shim_xs_node_dup(n);
	oldn = n->nperms;
	oldp = malloc(sizeof(*oldp) * oldn);
	if (!w || !oldp || shim_xs_node_set_perms(w, perms, np) < 0) {
		shim_xs_node_free(w);
		free(oldp);
		free(perms);
		return -ENOMEM;
	}
	memcpy(oldp, n->perms, sizeof(*oldp) * oldn);
	free(perms);
	if (too_big(r, w)) {
		shim_xs_node_free(w);
		free(oldp);
		return -ENOSPC;
	}
	ret = view_put(r, w);
	if (ret == 0) {
		/* A watcher losing access still hears about it: old perms count too. */
		struct shim_xs_node old = { .perms = oldp, .nperms = oldn };

		changed(r, path, false, &old);
		ack(r);
	}
	free(oldp);
	return ret;
}

static int do_watch(struct req *r, const char *p, uint32_t len)
{
	const char *v[2];
	char path[PATH_BUF];
	struct shim_xs_watch *w, **tail;
	struct shim_xs_dom *d;
	bool relative;

	if (!len || p[len - 1] != '\0' || count_strings(p, len) < 2)
		return -EINVAL;
	v[0] = p;
	v[1] = p + strlen(p) + 1;
	if (v[0][0] == '@') {
		if (strlen(v[0]) > XENSTORE_REL_PATH_MAX)
			return -EINVAL;
		relative = false;
		strcpy(path, v[0]);
	} else {
		relative = v[0][0] != '/';
		if (canonicalize(r, v[0], path) < 0 || !valid_path(r, path))
			return -EINVAL;
	}
	tail = &r->c->watches;
	for (w = r->c->watches; w; w = w->next) {
		if (strcmp(w->node, path) == 0 && strcmp(w->token, v[1]) == 0)
			return -EEXIST;
		tail = &w->next;
	}
	d = shim_xs_dom_find(r->xs, r->c->domid);
	if (!r->priv && d && d->nwatches >= SHIM_XS_QUOTA_WATCHES)
		return -E2BIG;
	w = calloc(1, sizeof(*w));
	if (!w || !(w->node = strdup(path)) || !(w->token = strdup(v[1]))) {
		if (w)
			free(w->node);
		free(w);
		return -ENOMEM;
	}
	if (relative) /* "/local/domain/<id>" */
		w->relative = strlen(path) - strlen(v[0]) - 1;
	*tail = w;
	if (d)
		d->nwatches++;
	ack(r);
	/* Fire once on registration, unconditionally (clients rely on it). */
	if (!r->c->closing)
		queue_event(r->c, w, w->node);
	return 0;
}

static int do_unwatch(struct req *r, const char *p, uint32_t len)
{
	const char *v[2];
	char path[PATH_BUF];
	struct shim_xs_dom *d;

	if (!len || p[len - 1] != '\0' || count_strings(p, len) < 2)
		return -EINVAL;
	v[0] = p;
	v[1] = p + strlen(p) + 1;
	if (canonicalize(r, v[0], path) < 0)
		return -EINVAL;
	for (struct shim_xs_watch **pw = &r->c->watches; *pw; pw = &(*pw)->next) {
		struct shim_xs_watch *w = *pw;

		if (strcmp(w->node, path) == 0 && strcmp(w->token, v[1]) == 0) {
			*pw = w->next;
			free_watch(w);
			d = shim_xs_dom_find(r->xs, r->c->domid);
			if (d && d->nwatches)
				d->nwatches--;
			ack(r);
			return 0;
		}
	}
	return -ENOENT;
}

static int do_reset_watches(struct req *r, const char *p, uint32_t len)
{
	(void)p;
	(void)len;
	shim_xs_ops_conn_cleanup(r->c);
	ack(r);
	return 0;
}

static struct shim_xs_tx *tx_lookup(struct shim_xs_conn *c, uint32_t id)
{
	for (struct shim_xs_tx *t = c->txs; t; t = t->next)
		if (t->id == id)
			return t;
	return NULL;
}

static int do_tx_start(struct req *r, const char *p, uint32_t len)
{
	struct shim_xs_tx *tx;
	char buf[16];

	(void)p;
	(void)len;
	if (r->tx)
		return -EBUSY; /* no nesting */
	if (!r->priv && r->c->ntx >= SHIM_XS_QUOTA_TRANSACTIONS)
		return -ENOSPC;
	tx = calloc(1, sizeof(*tx));
	if (!tx || shim_xs_table_init(&tx->acc) < 0) {
		free(tx);
		return -ENOMEM;
	}
	tx->ev_tail = &tx->ev_head;
	do { /* ids are non-zero and unique on the connection */
		tx->id = r->c->next_txid++;
	} while (tx->id == 0 || tx_lookup(r->c, tx->id));
	tx->next = r->c->txs;
	r->c->txs = tx;
	r->c->ntx++;
	reply(r, XS_TRANSACTION_START, buf, (uint32_t)snprintf(buf, sizeof(buf), "%u", tx->id) + 1);
	return 0;
}

static int tx_commit(struct req *r, struct shim_xs_tx *tx)
{
	struct shim_xs_store *st = &r->xs->store;
	struct shim_xs_node *e = NULL, **copies;
	size_t b = 0, nmod = 0, i = 0;
	long delta = 0;

	if (tx->failed)
		return -ENOMEM;
	/* Conflict: any node read or written changed since we first looked at it. */
	while ((e = shim_xs_table_next(&tx->acc, &b, &e))) {
		const struct shim_xs_node *m = shim_xs_store_get(st, e->path);

		if ((m ? m->gen : 0) != e->base_gen)
			return -EAGAIN;
		if (e->modified) {
			nmod++;
			if (m && m->perms[0].id == r->c->domid)
				delta--;
			if (e->present && e->perms[0].id == r->c->domid)
				delta++;
		}
	}
	if (!r->priv && delta > 0 &&
	    shim_xs_store_owned(st, r->c->domid) + delta > SHIM_XS_QUOTA_NODES)
		return -ENOSPC;
	copies = calloc(nmod ? nmod : 1, sizeof(*copies));
	if (!copies)
		return -ENOMEM;
	/* Copy first so that nothing can fail half-way through the apply. */
	b = 0;
	e = NULL;
	while ((e = shim_xs_table_next(&tx->acc, &b, &e))) {
		if (!e->modified)
			continue;
		if (e->present && !(copies[i] = shim_xs_node_dup(e))) {
			while (i--)
				shim_xs_node_free(copies[i]);
			free(copies);
			return -ENOMEM;
		}
		i++;
	}
	i = 0;
	b = 0;
	e = NULL;
	while ((e = shim_xs_table_next(&tx->acc, &b, &e))) {
		if (!e->modified)
			continue;
		if (e->present)
			shim_xs_store_put(st, copies[i]);
		else
			shim_xs_store_del(st, e->path);
		i++;
	}
	free(copies);
	for (struct shim_xs_txevent *ev = tx->ev_head; ev; ev = ev->next)
		fire(r->xs, ev->path, ev->exact, ev->perms, ev->nperms);
	return 0;
}

static int do_tx_end(struct req *r, const char *p, uint32_t len)
{
	struct shim_xs_tx *tx = r->tx, **pp;
	int ret = 0;

	if (!tx)
		return -ENOENT;
	if (!(p = onearg(p, len)) || (strcmp(p, "T") != 0 && strcmp(p, "F") != 0))
		return -EINVAL;
	for (pp = &r->c->txs; *pp != tx; pp = &(*pp)->next)
		;
	*pp = tx->next;
	r->c->ntx--;
	r->tx = NULL;
	if (p[0] == 'T')
		ret = tx_commit(r, tx);
	tx_free(tx);
	if (ret == 0)
		ack(r);
	return ret;
}

static int do_get_domain_path(struct req *r, const char *p, uint32_t len)
{
	unsigned int domid;
	char buf[32];

	if (!(p = onearg(p, len)) || !parse_domid(p, &domid))
		return -EINVAL;
	reply(r, XS_GET_DOMAIN_PATH, buf,
	      (uint32_t)snprintf(buf, sizeof(buf), "/local/domain/%u", domid) + 1);
	return 0;
}

static int do_is_introduced(struct req *r, const char *p, uint32_t len)
{
	unsigned int domid;
	bool yes;

	if (!(p = onearg(p, len)) || !parse_domid(p, &domid))
		return -EINVAL;
	yes = shim_xs_dom_find(r->xs, domid) != NULL;
	reply(r, XS_IS_DOMAIN_INTRODUCED, yes ? "T" : "F", 2);
	return 0;
}

static int do_introduce(struct req *r, const char *p, uint32_t len)
{
	const char *v[3];
	unsigned long long x;
	unsigned int domid;
	char *end;
	int ret;

	if (!split_strings(p, len, v, 3) || !parse_domid(v[0], &domid))
		return -EINVAL;
	for (int i = 1; i < 3; i++) { /* gfn, event channel: numbers we don't use */
		if (!v[i][0] || v[i][0] == '-')
			return -EINVAL;
		errno = 0;
		x = strtoull(v[i], &end, 10);
		if (*end || errno)
			return -EINVAL;
		(void)x;
	}
	ret = shim_xs_domain_introduce(r->xs, domid);
	if (ret < 0 && ret != -EEXIST)
		return ret;
	ack(r);
	return 0;
}

static int domid_arg(struct req *r, const char *p, uint32_t len, unsigned int *domid)
{
	if (!(p = onearg(p, len)) || !parse_domid(p, domid) || *domid == 0)
		return -EINVAL;
	if (!shim_xs_dom_find(r->xs, *domid))
		return -ENOENT;
	return 0;
}

static int do_release(struct req *r, const char *p, uint32_t len)
{
	unsigned int domid;
	int ret = domid_arg(r, p, len, &domid);

	if (ret == 0)
		ret = shim_xs_domain_release(r->xs, domid);
	if (ret == 0)
		ack(r);
	return ret;
}

static int do_resume(struct req *r, const char *p, uint32_t len)
{
	unsigned int domid;
	int ret = domid_arg(r, p, len, &domid);

	if (ret == 0)
		ack(r);
	return ret;
}

static int do_set_target(struct req *r, const char *p, uint32_t len)
{
	const char *v[2];
	unsigned int domid, target;
	struct shim_xs_dom *d;

	if (!split_strings(p, len, v, 2) || !parse_domid(v[0], &domid) ||
	    !parse_domid(v[1], &target) || domid == 0)
		return -EINVAL;
	d = shim_xs_dom_find(r->xs, domid);
	if (!d || !shim_xs_dom_find(r->xs, target))
		return -ENOENT;
	d->has_target = true;
	d->target = target;
	ack(r);
	return 0;
}

static int do_control(struct req *r, const char *p, uint32_t len)
{
	static const char help[] = "check\nhelp\nprint <string>\n";

	if (!len || p[len - 1] != '\0' || count_strings(p, len) < 1)
		return -EINVAL;
	if (strcmp(p, "print") == 0 || strcmp(p, "check") == 0) {
		ack(r);
		return 0;
	}
	if (strcmp(p, "help") == 0) {
		reply(r, XS_CONTROL, help, sizeof(help));
		return 0;
	}
	return -EINVAL;
}

typedef int (*handler_fn)(struct req *r, const char *p, uint32_t len);

#define FLAG_NOTID 1u /* ignores tx_id */
#define FLAG_PRIV 2u  /* dom0 only (EACCES for guests) */

static const struct {
	handler_fn fn;
	unsigned int flags;
} handlers[XS_TYPE_COUNT] = {
	[XS_CONTROL] = { do_control, FLAG_PRIV },
	[XS_DIRECTORY] = { do_directory, 0 },
	[XS_READ] = { do_read, 0 },
	[XS_GET_PERMS] = { do_get_perms, 0 },
	[XS_WATCH] = { do_watch, FLAG_NOTID },
	[XS_UNWATCH] = { do_unwatch, FLAG_NOTID },
	[XS_TRANSACTION_START] = { do_tx_start, 0 },
	[XS_TRANSACTION_END] = { do_tx_end, 0 },
	[XS_INTRODUCE] = { do_introduce, FLAG_PRIV },
	[XS_RELEASE] = { do_release, FLAG_PRIV },
	[XS_GET_DOMAIN_PATH] = { do_get_domain_path, 0 },
	[XS_WRITE] = { do_write, 0 },
	[XS_MKDIR] = { do_mkdir, 0 },
	[XS_RM] = { do_rm, 0 },
	[XS_SET_PERMS] = { do_set_perms, 0 },
	[XS_IS_DOMAIN_INTRODUCED] = { do_is_introduced, FLAG_PRIV },
	[XS_RESUME] = { do_resume, FLAG_PRIV },
	[XS_SET_TARGET] = { do_set_target, FLAG_PRIV },
	[XS_RESET_WATCHES] = { do_reset_watches, 0 },
	[XS_DIRECTORY_PART] = { do_directory_part, 0 },
};

void shim_xs_ops_handle(struct shim_xs_conn *c, const struct xsd_sockmsg *hdr,
			const char *payload)
{
	struct req r = { .xs = c->xs, .c = c, .hdr = hdr, .priv = c->domid == 0 };
	int ret;

	if (hdr->type >= XS_TYPE_COUNT || !handlers[hdr->type].fn) {
		send_err(&r, EINVAL);
		return;
	}
	if ((handlers[hdr->type].flags & FLAG_PRIV) && !r.priv) {
		send_err(&r, EACCES);
		return;
	}
	if (!(handlers[hdr->type].flags & FLAG_NOTID) && hdr->tx_id) {
		r.tx = tx_lookup(c, hdr->tx_id);
		if (!r.tx) {
			send_err(&r, ENOENT);
			return;
		}
	}
	ret = handlers[hdr->type].fn(&r, payload, hdr->len);
	if (ret < 0)
		send_err(&r, -ret);
}

/* ---- initial tree ---- */

static int mknode(struct shim_xs *xs, const char *path, const char *children, size_t clen,
		  const char *value)
{
	struct shim_xs_node *n = shim_xs_node_new(path, &default_special, 1);

	if (!n)
		return -ENOMEM;
	if ((clen && !(n->children = malloc(clen))) ||
	    (value && shim_xs_node_set_value(n, value, (uint32_t)strlen(value)) < 0)) {
		shim_xs_node_free(n);
		return -ENOMEM;
	}
	if (clen)
		memcpy(n->children, children, clen);
	n->clen = (uint32_t)clen;
	return shim_xs_store_put(&xs->store, n);
}

int shim_xs_ops_init_tree(struct shim_xs *xs)
{
	static const char root[] = "tool\0local";
	static const char dom0[] = "domid\0name";
	int ret = 0;

	for (int i = 0; i < 2; i++) {
		xs->special_perms[i] = malloc(sizeof(default_special));
		if (!xs->special_perms[i])
			return -ENOMEM;
		xs->special_perms[i][0] = default_special;
		xs->special_nperms[i] = 1;
	}
	ret = ret ?: mknode(xs, "/", root, sizeof(root), NULL);
	ret = ret ?: mknode(xs, "/tool", "xenstored", sizeof("xenstored"), NULL);
	ret = ret ?: mknode(xs, "/tool/xenstored", NULL, 0, NULL);
	ret = ret ?: mknode(xs, "/local", "domain", sizeof("domain"), NULL);
	ret = ret ?: mknode(xs, "/local/domain", "0", sizeof("0"), NULL);
	ret = ret ?: mknode(xs, "/local/domain/0", dom0, sizeof(dom0), NULL);
	ret = ret ?: mknode(xs, "/local/domain/0/domid", NULL, 0, "0");
	ret = ret ?: mknode(xs, "/local/domain/0/name", NULL, 0, "Domain-0");
	return ret;
}
