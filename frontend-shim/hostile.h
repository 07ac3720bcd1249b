/*
 * hostile — a frontend that breaks the protocol on purpose, for the hostile-frontend
 * conformance suite (tests/integration/hostile_*.c). A raw blkif frontend and a raw
 * netif frontend whose keys, ring indices, slots and grants the test writes byte by
 * byte, plus helpers any backend's suite can reuse: watching a worker process (alive,
 * RSS, CPU), notification storms and a thread that keeps rewriting shared memory
 * (double fetch). Counterpart of the backends it attacks (backends/blk/, backends/net/).
 *
 * Threading: a struct hostile_vbd or hostile_vif is driven by one thread; a
 * hostile_flipper runs its own thread over memory the caller owns. Errors: 0 / a value
 * >= 0, or -errno.
 */
#ifndef SPLITPV_SHIM_HOSTILE_H
#define SPLITPV_SHIM_HOSTILE_H

#include "frontend-shim/guest.h"
#include "ring/abi.h"
#include "ring/blkif_abi.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- watching the backend's processes ---- */

/* The child of parent serving backend_path: one with that path, or another device of
 * the same guest and type (same directory), among its arguments (splitpvd's workers:
 * per device, or per guest and type). -ESRCH if none. */
pid_t hostile_worker_pid(pid_t parent, const char *backend_path);
/* true if pid exists and is not a zombie. */
bool hostile_pid_alive(pid_t pid);
/* VmRSS of pid in KiB, or -errno. */
long hostile_rss_kb(pid_t pid);
/* utime + stime of pid (all threads) in milliseconds, or -errno. */
long hostile_cpu_ms(pid_t pid);

/* ---- xenstore ---- */

/* Wait until dir/state is one of the states in want_mask (1 << XenbusState*). 0 with
 * *state, or -ETIMEDOUT with the last state seen in *state (-1: none). */
int hostile_wait_state(struct xs_handle *xs, const char *dir, unsigned int want_mask,
		       int timeout_ms, int *state);

/* ---- shared-memory attackers ---- */

/* Notify port as fast as possible (or at most rate per second; 0 = no limit) for
 * duration_ms. Returns the number of notifications sent, or -errno. */
long hostile_notify_storm(struct shim_guest *g, unsigned int port, unsigned int duration_ms,
			  unsigned long rate);

/*
 * A thread rewriting len bytes at dst with version a, then b, then a, ... until
 * hostile_flipper_stop or until *stop_when differs from stop_value (e.g. rsp_prod
 * moving). a and b are copied. The caller owns dst and keeps it mapped.
 */
struct hostile_flipper {
	pthread_t thread;
	volatile void *dst;
	uint8_t a[4096], b[4096];
	size_t len;
	const volatile uint32_t *stop_when;
	uint32_t stop_value;
	volatile bool stop;
	unsigned long flips;
	bool running;
};
int hostile_flipper_start(struct hostile_flipper *f, volatile void *dst, const void *a,
			  const void *b, size_t len, const volatile uint32_t *stop_when,
			  uint32_t stop_value);
/* Join; returns the number of rewrites done. No-op if not running. */
unsigned long hostile_flipper_stop(struct hostile_flipper *f);

/* ---- a raw blkif frontend ---- */

/* One xenstore key the hostile frontend writes after the normal ones (value NULL:
 * remove the key). dir NULL = the frontend directory, else relative to it. */
struct hostile_key {
	const char *key;
	const char *value;
};

struct hostile_vbd_opts {
	unsigned int ring_order;       /* ring pages = 1 << ring_order (<= 5) */
	enum blkif_abi abi;            /* layout; writes the matching protocol key */
	bool persistent;               /* write feature-persistent=1 */
	unsigned int data_pages;       /* guest frames granted rw for data (default 64) */
	const struct hostile_key *keys; /* written last, in order; NULL-key terminated */
	uint32_t req_prod_at_connect;  /* req_prod already in the ring when we go Initialised */
	int timeout_ms;                /* handshake waits; 0 = 5000 */
};

struct hostile_vbd {
	struct shim_guest *g;
	struct xs_handle *xs;
	unsigned int devid, backend_id;
	char fe[256], be[256];
	struct hostile_vbd_opts o;
	/* ring */
	volatile uint8_t *sring;       /* header at 0, slots at 64 */
	uint32_t ring_frame, nr_ents;
	uint32_t ring_grefs[32];
	size_t ent_size, req_size, rsp_size;
	int port;
	uint32_t req_prod_pvt, rsp_cons;
	uint8_t *shadow;               /* what we last wrote in each slot (nr_ents * ent_size) */
	/* data */
	uint32_t data_frame;
	uint32_t *data_grefs;          /* one rw grant per data page */
	int backend_state;             /* after hostile_vbd_open */
};

/*
 * Attach to device/vbd/<devid> of g: wait for the backend's InitWait, make the ring
 * (header zeroed, every slot filled with 0xA5), grant it, allocate the event channel
 * and data pages, write ring-ref(s), event-channel, protocol, feature-persistent, then
 * o->keys, and switch to Initialised. Does not wait for Connected (see
 * hostile_vbd_wait). The caller frees with hostile_vbd_close.
 */
int hostile_vbd_open(struct hostile_vbd **out, struct shim_guest *g, unsigned int devid,
		     const struct hostile_vbd_opts *o);
/* Write Closing, wait for the backend to follow (up to timeout), Closed, revoke and
 * free. NULL ok. */
void hostile_vbd_close(struct hostile_vbd *h);
/* Wait for the backend state to be in want_mask; as hostile_wait_state. */
int hostile_vbd_wait(struct hostile_vbd *h, unsigned int want_mask, int timeout_ms, int *state);
/* Write our state key. */
int hostile_vbd_set_state(struct hostile_vbd *h, int state);

/* Header fields of the shared ring. */
volatile uint32_t *hostile_vbd_req_prod(struct hostile_vbd *h);
volatile uint32_t *hostile_vbd_rsp_prod(struct hostile_vbd *h);
/* Slot idx (mod nr_ents) of the shared ring. */
volatile uint8_t *hostile_vbd_slot(struct hostile_vbd *h, uint32_t idx);
/* Write a guest-layout request (req_size bytes: a struct blkif_request for native and
 * x86_64, blkif_x86_32_request for x86_32) into the next slot; not yet published. */
void hostile_vbd_put(struct hostile_vbd *h, const void *req);
/* req_prod = the private producer (release) and notify. */
void hostile_vbd_publish(struct hostile_vbd *h);
int hostile_vbd_notify(struct hostile_vbd *h);
/* Wait until rsp_prod - rsp_cons >= n; 0, or -ETIMEDOUT. */
int hostile_vbd_wait_responses(struct hostile_vbd *h, uint32_t n, int timeout_ms);

/*
 * Check the response in slot rsp_cons against what is expected, byte by byte: id, the
 * operation, the status, zero padding, and the rest of the slot unchanged since we put
 * the request (the backend wrote only rsp_size bytes). Returns 0, or -EPROTO with a
 * description in why. Advances rsp_cons (and rsp_event) when consume is set.
 */
int hostile_vbd_check_rsp(struct hostile_vbd *h, uint64_t id, uint8_t op, int16_t status,
			  bool consume, char *why, size_t why_len);

/* Data page i: its memory and its rw grant. */
void *hostile_vbd_data(struct hostile_vbd *h, unsigned int i);
uint32_t hostile_vbd_data_gref(struct hostile_vbd *h, unsigned int i);

/* A native request with every byte 0xA5 and the header set (so the padding a response
 * reuses is non-zero). */
void hostile_req_init(struct blkif_request *r, uint8_t op, uint8_t nr_segments, uint64_t id,
		      uint64_t sector);
/* Translate a native request into h's guest layout in out (>= sizeof(*r) bytes). */
void hostile_vbd_layout(const struct hostile_vbd *h, const struct blkif_request *r, void *out);

/* ---- a raw netif frontend ---- */

/* One shared ring page of a hostile vif (TX, RX or ctrl), owned by the frontend. */
struct hostile_ring {
	volatile uint8_t *sring;       /* header at 0, slots at 64 */
	uint32_t frame, gref;
	uint32_t nr_ents;
	size_t ent_size;               /* bytes per slot */
	uint32_t req_prod_pvt, rsp_cons;
	uint8_t *shadow;               /* what we last wrote in each slot (nr_ents * ent_size) */
};

#define HOSTILE_VIF_MAX_QUEUES 8u

struct hostile_vif_opts {
	unsigned int queues;           /* 0: no multi-queue key, one queue at the top level;
					* n >= 1: multi-queue-num-queues = n, queue-N/ dirs if n > 1 */
	bool split_evtchn;             /* event-channel-tx/-rx instead of event-channel */
	bool ctrl_ring;                /* ctrl-ring-ref + event-channel-ctrl */
	unsigned int data_pages;       /* guest frames granted rw for data (default 32) */
	const struct hostile_key *keys; /* written last, in order; NULL-key terminated */
	uint32_t tx_req_prod_at_connect; /* tx req_prod already set when we go Connected */
	int timeout_ms;                /* handshake waits; 0 = 5000 */
};

struct hostile_vif_queue {
	struct hostile_ring tx, rx;
	int tx_port, rx_port;          /* equal unless split */
};

struct hostile_vif {
	struct shim_guest *g;
	struct xs_handle *xs;
	unsigned int devid, backend_id;
	char fe[256], be[256];
	struct hostile_vif_opts o;
	unsigned int nq;
	struct hostile_vif_queue q[HOSTILE_VIF_MAX_QUEUES];
	struct hostile_ring ctrl;
	int ctrl_port;
	uint32_t data_frame;
	uint32_t *data_grefs;          /* one rw grant per data page */
	int backend_state;             /* last seen by hostile_vif_wait */
};

/*
 * Attach to device/vif/<devid> of g: wait for the backend's InitWait, make the TX and
 * RX rings of every queue (and the ctrl ring if asked; headers zeroed, every slot
 * filled with 0xA5), grant them, allocate event channels and data pages, write
 * tx-ring-ref, rx-ring-ref, event-channel(-tx/-rx) (under queue-N/ for several
 * queues), multi-queue-num-queues, ctrl-ring-ref, event-channel-ctrl,
 * request-rx-copy=1, feature-rx-notify=1, feature-sg=1, feature-gso-tcpv4/6=1,
 * feature-ipv6-csum-offload=1, then o->keys, and switch to Connected (as Linux
 * netfront). Does not wait for the backend's Connected (see hostile_vif_wait).
 * The caller frees with hostile_vif_close.
 */
int hostile_vif_open(struct hostile_vif **out, struct shim_guest *g, unsigned int devid,
		     const struct hostile_vif_opts *o);
/* Write Closing, wait for the backend to follow (up to timeout), Closed, revoke and
 * free. NULL ok. */
void hostile_vif_close(struct hostile_vif *h);
/* Wait for the backend state to be in want_mask; as hostile_wait_state. */
int hostile_vif_wait(struct hostile_vif *h, unsigned int want_mask, int timeout_ms, int *state);
int hostile_vif_set_state(struct hostile_vif *h, int state);
/* Notify the backend on one of our ports; drain the ports the backend notified. */
int hostile_vif_notify(struct hostile_vif *h, int port);
void hostile_vif_drain_events(struct hostile_vif *h);

/* Data page i: its memory and its rw grant. */
void *hostile_vif_data(struct hostile_vif *h, unsigned int i);
uint32_t hostile_vif_data_gref(struct hostile_vif *h, unsigned int i);

/* Header fields and slots of a ring. */
volatile uint32_t *hostile_ring_req_prod(struct hostile_ring *r);
volatile uint32_t *hostile_ring_rsp_prod(struct hostile_ring *r);
volatile uint32_t *hostile_ring_rsp_event(struct hostile_ring *r);
volatile uint8_t *hostile_ring_slot(struct hostile_ring *r, uint32_t idx);
/* Write len (<= ent_size) bytes as the next request, the slot's rest the 0xA5 pattern;
 * not yet published. */
void hostile_ring_put(struct hostile_ring *r, const void *req, size_t len);
/* req_prod = the private producer (release). No notification. */
void hostile_ring_publish(struct hostile_ring *r);
/* Wait until rsp_prod - rsp_cons >= n, draining h's events; 0, or -ETIMEDOUT. */
int hostile_ring_wait_responses(struct hostile_vif *h, struct hostile_ring *r, uint32_t n,
				int timeout_ms);
/*
 * Copy the response in slot rsp_cons (rsp_size bytes) to rsp and check that the rest of
 * the slot is unchanged since we put the request there (the backend wrote only
 * rsp_size bytes). Advances rsp_cons and sets rsp_event = rsp_cons + 1. 0, or -EPROTO
 * with a description in why (the response is still copied and consumed).
 */
int hostile_ring_take_rsp(struct hostile_ring *r, void *rsp, size_t rsp_size, char *why,
			  size_t why_len);

#endif
