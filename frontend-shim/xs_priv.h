/*
 * xs_priv — internals shared by the shim xenstored's files: connection I/O and the
 * public API (xenstored.c), request handling, watches and transactions (xs_ops.c).
 * Not a public header: only frontend-shim/xenstored*.c, xs_*.c and tests include it.
 */
#ifndef SPLITPV_SHIM_XS_PRIV_H
#define SPLITPV_SHIM_XS_PRIV_H

#include "frontend-shim/xenstored.h"
#include "frontend-shim/xs_store.h"

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/io/xs_wire.h>

/* Quotas for guest connections, as C xenstored 4.17's defaults. dom0 is exempt. */
#define SHIM_XS_QUOTA_NODES 1000u      /* nodes owned per domain -> ENOSPC */
#define SHIM_XS_QUOTA_WATCHES 128u     /* watches per domain -> E2BIG */
#define SHIM_XS_QUOTA_TRANSACTIONS 10u /* open transactions per connection -> ENOSPC */
#define SHIM_XS_QUOTA_OUTSTANDING 20u  /* unsent replies before we stop reading */
#define SHIM_XS_QUOTA_NODE_SIZE 2048u  /* stored record size -> ENOSPC */
#define SHIM_XS_QUOTA_PERMS 5u         /* permissions per node -> ENOSPC */
#define SHIM_XS_QUOTA_TX_NODES 1024u   /* nodes accessed by one transaction -> ENOSPC */

/* Output bounds per connection (all kinds): above SOFT we stop reading its requests,
 * above HARD (a client that doesn't read its watch events) it is disconnected. */
#define SHIM_XS_OUT_SOFT (64u * 1024)
#define SHIM_XS_OUT_HARD (1024u * 1024)

#define SHIM_XS_HDR_LEN ((uint32_t)sizeof(struct xsd_sockmsg))
/* Input buffer: room for several maximal messages. */
#define SHIM_XS_IN_CAP (4 * (SHIM_XS_HDR_LEN + XENSTORE_PAYLOAD_MAX))

/* First reserved domid (DOMID_FIRST_RESERVED): ids at or above are not domains. */
#define SHIM_XS_DOMID_MAX 0x7FEFu

struct shim_xs_outmsg {
	struct shim_xs_outmsg *next;
	struct shim_xs_outmsg *hnext; /* pending-event index chain (deduplicated events) */
	uint32_t hash;
	uint32_t len;  /* header + payload */
	bool is_event; /* WATCH_EVENT (not a reply) */
	bool indexed;  /* on the pending-event index */
	uint8_t data[];
};

struct shim_xs_watch {
	struct shim_xs_watch *next;
	char *node;    /* canonical path or @special */
	char *token;
	size_t relative; /* >0: events are reported with this many leading chars cut */
};

struct shim_xs_txevent {
	struct shim_xs_txevent *next;
	char *path;
	bool exact;
	struct shim_xs_perm *perms; /* perms at the time (for removed nodes), or NULL */
	uint32_t nperms;
};

struct shim_xs_tx {
	struct shim_xs_tx *next;
	uint32_t id;
	struct shim_xs_table acc; /* accessed nodes (overlay) */
	struct shim_xs_txevent *ev_head, **ev_tail;
	int created;  /* nodes this connection's domain gained in the tx (quota hint) */
	bool failed;  /* a change could not be fully recorded: commit must fail */
};

struct shim_xs_dom;

struct shim_xs_conn {
	struct shim_xs_conn *next;
	struct shim_xs *xs;
	unsigned int domid;
	int fd;       /* -1 for fake connections */
	bool fake;    /* no socket: output stays queued for shim_xs_conn_take_output */
	bool discard; /* fake and output is dropped (fuzzing) */
	bool closing; /* dead: skipped everywhere, reaped later */
	bool linked;  /* on xs->conns */
	ev_io rio, wio;
	uint8_t *in;
	size_t in_len;
	struct shim_xs_outmsg *out_head, *out_tail;
	size_t out_off;   /* bytes of out_head already sent */
	size_t out_bytes; /* queued bytes */
	unsigned int out_replies;
	/* Index of queued events by payload, so that duplicates are found without walking
	 * a long queue (a watcher that doesn't read could otherwise cost O(n) per event). */
	struct shim_xs_outmsg **evidx;
	size_t evidx_n, evidx_count;
	struct shim_xs_watch *watches;
	struct shim_xs_tx *txs;
	unsigned int ntx;
	uint32_t next_txid;
	struct shim_xs_tx *cur_tx; /* while handling one request */
};

struct shim_xs_dom {
	struct shim_xs_dom *next;
	struct shim_xs *xs;
	unsigned int domid;
	unsigned int nwatches;
	bool has_target;
	unsigned int target;
	int lfd; /* listening socket, -1 if none */
	ev_io lio;
	char *sockpath; /* NULL if none */
};

struct shim_xs {
	struct ev_loop *loop; /* NULL: detached (tests, fuzzing): no sockets */
	char *rundir;
	struct shim_xs_store store;
	struct shim_xs_conn *conns;
	struct shim_xs_dom *doms; /* dom0 first, then introduced guests */
	/* Permissions of the special nodes: [0] @introduceDomain, [1] @releaseDomain. */
	struct shim_xs_perm *special_perms[2];
	uint32_t special_nperms[2];
	int depth;   /* >0 while inside our own processing: defer reaping */
};

/* ---- xs_ops.c ---- */
/* Build the initial tree. 0 or -ENOMEM. */
int shim_xs_ops_init_tree(struct shim_xs *xs);
/* Handle one complete request (hdr + payload of hdr->len bytes) from c. */
void shim_xs_ops_handle(struct shim_xs_conn *c, const struct xsd_sockmsg *hdr,
			const char *payload);
/* Drop every watch / transaction of c. */
void shim_xs_ops_conn_cleanup(struct shim_xs_conn *c);
/* Fire a special watch ("@introduceDomain", "@releaseDomain"). */
void shim_xs_ops_fire_special(struct shim_xs *xs, const char *name);

/* ---- xenstored.c ---- */
/* Queue a message (header + payload) to c; kills c if its output is over the bound.
 * Events identical to one already queued are dropped (as C xenstored). */
void shim_xs_conn_queue(struct shim_xs_conn *c, uint32_t type, uint32_t req_id,
			uint32_t tx_id, const void *payload, uint32_t len);
/* Mark c dead (closes its socket, drops its watches/transactions); freed later. */
void shim_xs_conn_kill(struct shim_xs_conn *c);
struct shim_xs_dom *shim_xs_dom_find(struct shim_xs *xs, unsigned int domid);

#endif
