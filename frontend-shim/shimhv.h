/*
 * shimhv — the shim's simulated hypervisor: domains (guest memory, v1 grant tables),
 * event channels, and the control-socket protocol over DIR/hv.sock.
 * Daemon side: shimhv_server.c, shimhv_domain.c. Clients: frontend-shim/hv_shim.c
 * (backends, through xenbus/hv.h) and frontend-shim/guest.c (simulated guests).
 */
#ifndef SPLITPV_SHIM_SHIMHV_H
#define SPLITPV_SHIM_SHIMHV_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ring/abi.h"
#include "xenbus/hv.h"

/* ---- limits ---- */
#define SHIM_HV_SOCK_NAME "hv.sock"
#define SHIM_HV_DOMID_MAX 32767u          /* domids 1..32767; 0 is the backend's */
#define SHIM_HV_MEM_PAGES_MAX (1u << 18)   /* 1 GiB of guest memory */
#define SHIM_HV_GRANT_ENTRIES_MAX (1u << 16)
#define SHIM_HV_PORTS_MAX 1024u           /* per domain, and per backend handle */
#define SHIM_HV_CONNS_MAX 1024u
#define SHIM_HV_PIN_MAX 0x7fffu           /* per ref and kind: more pins are refused */
#define SHIM_HV_MAX_FDS 4

/* ---- wire protocol: one SOCK_SEQPACKET request, one reply (with fds), in order ---- */
enum shim_hv_op {
	/* guest: domid, arg0 = mem_pages, arg1 = grant_entries.
	 * reply fds: [guest memory memfd, grant table memfd]. The connection becomes the
	 * domain: closing it destroys the domain. */
	SHIM_HV_DOMAIN_CREATE = 1,
	/* backend: domid. reply val0 = mem_pages, val1 = grant_entries; fds: [memory,
	 * grant table, pin table (struct shim_hv_pins), this connection's own pin counts]. */
	SHIM_HV_DOMAIN_ATTACH,
	/* guest: arg0 = remote domid. reply val0 = port; fds: [wait (A), notify (B)]. */
	SHIM_HV_EVTCHN_ALLOC_UNBOUND,
	/* guest: arg0 = port. */
	SHIM_HV_EVTCHN_CLOSE,
	/* backend: domid, arg0 = remote port. reply serial; fds: [wait (B), notify (A)]. */
	SHIM_HV_EVTCHN_BIND,
	/* backend: domid, arg0 = remote port, serial from EVTCHN_BIND. */
	SHIM_HV_EVTCHN_UNBIND,
	/* backend: domid. From now on this connection binds only domid's ports (else
	 * -EACCES, as Linux's IOCTL_EVTCHN_RESTRICT_DOMID); a second restrict: -EACCES. */
	SHIM_HV_EVTCHN_RESTRICT,
	/* backend: reply fds: [a new connection with this one's rights and restriction].
	 * How a worker that can no longer connect to hv.sock opens more handles. */
	SHIM_HV_CONN_CLONE,
};

struct shim_hv_req {
	uint32_t op;         /* enum shim_hv_op */
	uint32_t self_domid; /* backend ops: the caller's own domid (SPLITPV_SHIM_DOMID) */
	uint32_t domid;      /* the domain operated on */
	uint32_t arg0;
	uint32_t arg1;
	uint32_t pad;
	uint64_t serial;
};

struct shim_hv_rsp {
	int32_t err; /* 0 or -errno */
	uint32_t val0;
	uint32_t val1;
	uint32_t pad;
	uint64_t serial;
};

/*
 * Hypervisor-private per-domain state, in a memfd the guest never receives (Xen's
 * active grant table). Page 0 is this header; the pin words start at SHIM_HV_PINS_OFF.
 * Pin word per grant ref: bits 0-15 read-only map pins, bits 16-31 writable map pins.
 * Every pin update and every GTF_reading/GTF_writing change made by a backend happens
 * with `lock` held (robust and process-shared: a backend that dies holding it does not
 * wedge the others).
 */
struct shim_hv_pins {
	uint32_t magic;         /* SHIM_HV_PINS_MAGIC */
	uint32_t dead;          /* set (release) by the daemon when the domain is destroyed */
	uint32_t mem_pages;
	uint32_t grant_entries;
	pthread_mutex_t lock;
};
#define SHIM_HV_PINS_MAGIC 0x73687076u
#define SHIM_HV_PINS_OFF 4096u
#define SHIM_HV_PIN_RD 1u
#define SHIM_HV_PIN_WR (1u << 16)
#define SHIM_HV_PIN_RD_COUNT(w) ((w) & 0xffffu)
#define SHIM_HV_PIN_WR_COUNT(w) ((w) >> 16)

/* Bytes of the grant table memfd / the pin memfd for n entries (page-rounded). */
size_t shim_hv_gnttab_bytes(uint32_t grant_entries);
size_t shim_hv_pins_bytes(uint32_t grant_entries);
size_t shim_hv_connpins_bytes(uint32_t grant_entries);

/*
 * Lock/unlock the pin table: recovers a lock whose owner died (EOWNERDEAD).
 * 0 or -errno.
 */
int shim_hv_pins_lock(struct shim_hv_pins *p);
void shim_hv_pins_unlock(struct shim_hv_pins *p);

/*
 * Drop one pin of kind (SHIM_HV_PIN_RD or _WR) from ref's pin word and clear
 * GTF_writing / GTF_reading in the guest's entry when the last one goes. Caller holds
 * the pin lock. Counts never go below zero.
 */
void shim_hv_unpin(uint32_t *pin, struct grant_entry_v1 *ent, uint32_t kind);

/* ---- client helpers (guest.c, hv_shim.c) ---- */

/* Connect to rundir/hv.sock. Returns the socket fd (CLOEXEC) or -errno. */
int shim_hv_connect(const char *rundir);

/*
 * One request/reply round trip. On success exactly nfds_max fds were received into
 * fds (CLOEXEC; the caller owns them). Returns rsp->err (0 or -errno) or a transport
 * -errno (-ECONNRESET: the daemon went away, -EPROTO: malformed reply); on any error
 * every fds[i] is -1 and nothing is left open. One caller at a time per socket.
 */
int shim_hv_call(int sock, const struct shim_hv_req *req, struct shim_hv_rsp *rsp,
		 int *fds, unsigned nfds_max);

/*
 * ---- event-channel ports of one handle (guest side and backend side alike) ----
 * Each port owns a wait eventfd (registered in the handle's epoll fd, data = port) and
 * a notify eventfd. /dev/xen/evtchn semantics: pending() returns one fired port,
 * clears it (reads its eventfd) and masks it; unmask() ends the mask. A notify that
 * arrives while masked leaves the eventfd readable and is delivered once after the
 * unmask, never lost.
 * Masking is lazy (the hot path costs no epoll_ctl): a masked port only leaves the
 * epoll set (EPOLL_CTL_MOD to no events) when it fires while masked; that wakeup is
 * answered by pending() with -EAGAIN, and unmask() re-arms EPOLLIN. So the epoll fd can
 * be readable once, spuriously, per masked port: callers poll, then call pending()
 * and accept -EAGAIN (as with /dev/xen/evtchn opened O_NONBLOCK). Ports are 1..SHIM_HV_PORTS_MAX.
 * Not thread-safe.
 */
struct shim_evq_port {
	int wait_fd;   /* -1: port free */
	int notify_fd;
	bool masked;   /* delivered, not yet unmasked */
	bool kmasked;  /* also out of the epoll set (fired while masked) */
};
struct shim_evq {
	int epfd;
	unsigned nr_ports;
	unsigned single;  /* the only port when nr_ports == 1: pending() skips epoll_wait */
	bool nonblock;    /* set by shim_evq_set_nonblock (with O_NONBLOCK on epfd) */
	struct shim_evq_port ports[SHIM_HV_PORTS_MAX + 1];
};
/* 0 or -errno. deinit closes every port's fds and the epoll fd; safe twice. */
int shim_evq_init(struct shim_evq *q);
void shim_evq_deinit(struct shim_evq *q);
/* Lowest free port, or -ENOSPC. */
int shim_evq_free_port(const struct shim_evq *q);
/* Takes ownership of both fds, also on failure. 0 or -errno (-EEXIST: port in use). */
int shim_evq_add(struct shim_evq *q, unsigned port, int wait_fd, int notify_fd);
/* Closes the port's fds. -EINVAL if not in use. */
int shim_evq_remove(struct shim_evq *q, unsigned port);
bool shim_evq_valid(const struct shim_evq *q, unsigned port);
int shim_evq_notify(struct shim_evq *q, unsigned port);
/* A fired port (now masked). With none: -EAGAIN when the epoll fd is O_NONBLOCK,
 * else it waits, as a read of /dev/xen/evtchn does (a new queue blocks, like a freshly
 * opened device). */
int shim_evq_pending(struct shim_evq *q);
/* Make pending() non-blocking (O_NONBLOCK on the epoll fd). 0 or -errno. */
int shim_evq_set_nonblock(struct shim_evq *q);
int shim_evq_unmask(struct shim_evq *q, unsigned port);

/* ---- daemon ---- */
struct shim_hv;

/* Domain lifecycle hooks (the daemon wires these to the xenstored). May be NULL. */
struct shim_hv_hooks {
	int (*domain_introduce_cb)(void *opaque, unsigned domid);
	void (*domain_release_cb)(void *opaque, unsigned domid);
	void *opaque;
};

/*
 * Listen on rundir/hv.sock (an existing stale socket is replaced) and serve from
 * loop. Like Xen's root-only device nodes, only uid 0 may connect (SO_PEERCRED; others
 * are closed at once): a backend that dropped root keeps what it opened before. 0 or -errno. Freed with shim_hv_close (NULL ok), which destroys every domain,
 * closes every connection and unlinks the socket. Single-threaded: the loop's thread.
 */
int shim_hv_open(struct shim_hv **out, struct ev_loop *loop, const char *rundir,
		 const struct shim_hv_hooks *hooks);
void shim_hv_close(struct shim_hv *hv);
/* Number of live domains (tests, logs). */
unsigned shim_hv_nr_domains(const struct shim_hv *hv);

#endif
