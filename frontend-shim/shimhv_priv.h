/*
 * shimhv_priv — the shim hypervisor daemon's internal state, shared by
 * shimhv_domain.c (domains, grant bookkeeping, event channels) and shimhv_server.c
 * (hv.sock, connections, request dispatch). Public API: shimhv.h.
 */
#ifndef SPLITPV_SHIM_SHIMHV_PRIV_H
#define SPLITPV_SHIM_SHIMHV_PRIV_H

#include <stdbool.h>

#include "frontend-shim/shimhv.h"

#define SHIM_HV_ATTACH_MAX 256u /* domains one backend connection may attach */

struct shim_hv_conn;

struct shim_hv_chan {
	uint32_t port;                /* in the guest's port space */
	uint32_t remote_domid;        /* who may bind it */
	int fd_a;                     /* eventfd the guest waits on, the backend notifies */
	int fd_b;                     /* eventfd the backend waits on, the guest notifies */
	struct shim_hv_conn *binder;  /* the backend connection bound to it; NULL: unbound */
	uint64_t serial;              /* of the current binding */
};

struct shim_hv_dom {
	struct shim_hv_dom *next;
	struct shim_hv *hv;
	uint32_t domid;
	uint32_t mem_pages;
	uint32_t grant_entries;
	int mem_fd;
	int gnttab_fd;
	int pins_fd;
	struct grant_entry_v1 *gnttab; /* guest-writable: every read is hostile input */
	struct shim_hv_pins *pins;     /* private; shared with attached backends only */
	size_t gnttab_len;
	size_t pins_len;
	struct shim_hv_conn *owner;    /* the guest's connection; its close kills us */
	unsigned nr_chans;
	struct shim_hv_chan *chans[SHIM_HV_PORTS_MAX + 1]; /* port 0 is never used */
};

/* One backend connection's view of one domain: the pins it holds, for cleanup. */
struct shim_hv_attach {
	struct shim_hv_attach *next;
	struct shim_hv_dom *dom;
	int connpins_fd;
	uint32_t *connpins;
	size_t connpins_len;
};

struct shim_hv_conn {
	struct shim_hv_conn *next;
	struct shim_hv *hv;
	ev_io w;
	int fd;
	struct shim_hv_dom *dom;          /* set: a guest connection (one domain) */
	struct shim_hv_attach *attaches;  /* backend connection: attached domains */
	unsigned nr_attaches;
	unsigned nr_binds;
	bool used;                        /* issued any request: may no longer create */
	bool restricted;                  /* EVTCHN_RESTRICT: binds only restrict_domid */
	uint32_t restrict_domid;
};

struct shim_hv {
	struct ev_loop *loop;
	ev_io listen_w;
	int listen_fd;
	char *sock_path;
	struct shim_hv_hooks hooks;
	struct shim_hv_conn *conns;
	unsigned nr_conns;
	struct shim_hv_dom *doms;
	unsigned nr_doms;
	uint64_t next_serial;
};

/* shimhv_domain.c. All 0 or -errno; fds in *fds are owned by the domain (don't close). */
struct shim_hv_dom *shim_hv_dom_find(struct shim_hv *hv, uint32_t domid);
int shim_hv_dom_create(struct shim_hv *hv, struct shim_hv_conn *owner, uint32_t domid,
		       uint32_t mem_pages, uint32_t grant_entries, struct shim_hv_dom **out);
/* Idempotent per domain: marks it dead, drops every attach and channel, fires release. */
void shim_hv_dom_destroy(struct shim_hv_dom *d);
int shim_hv_dom_attach(struct shim_hv_dom *d, struct shim_hv_conn *c,
		       struct shim_hv_attach **out);
/* Give back every pin c still holds on the attach's domain, then free the attach. */
void shim_hv_attach_free(struct shim_hv_attach *a);
int shim_hv_chan_alloc(struct shim_hv_dom *d, uint32_t remote_domid, struct shim_hv_chan **out);
int shim_hv_chan_close(struct shim_hv_dom *d, uint32_t port);
int shim_hv_chan_bind(struct shim_hv_dom *d, struct shim_hv_conn *c, uint32_t self_domid,
		      uint32_t port, struct shim_hv_chan **out);
int shim_hv_chan_unbind(struct shim_hv_dom *d, struct shim_hv_conn *c, uint32_t port,
			uint64_t serial);
/* Unbind every channel c holds (its connection is closing). */
void shim_hv_conn_unbind_all(struct shim_hv *hv, struct shim_hv_conn *c);

#endif
